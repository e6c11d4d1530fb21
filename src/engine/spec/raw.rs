//! The pipeline file as written: serde types that reject unknown keys and wrong types.

use std::fmt;
use std::marker::PhantomData;

use indexmap::IndexMap;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::path::unprotect_in_place;

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a pipeline: a map with `stages:` (and optionally `name:`, `params:`, …)"
)]
pub struct RawPipeline {
    pub name: Option<String>,
    pub project_dir: Option<String>,
    pub model_path: Option<String>,
    /// The shared remote cache's URL (`--remote` and `WAREZ_REMOTE` take precedence).
    pub remote: Option<String>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub params: IndexMap<String, serde_yaml::Value>,
    #[serde(deserialize_with = "unique_keys")]
    pub stages: IndexMap<String, RawStage>,
}

impl RawPipeline {
    /// Puts back the braces of `${…}` hidden while parsing (see `path::protect_variables`).
    pub fn unprotect(&mut self) {
        for text in [&mut self.name, &mut self.project_dir, &mut self.model_path]
            .into_iter()
            .flatten()
        {
            unprotect_in_place(text);
        }
        self.params.values_mut().for_each(unprotect_value);
        for stage in self.stages.values_mut() {
            for text in [&mut stage.kind, &mut stage.cmd].into_iter().flatten() {
                unprotect_in_place(text);
            }
            for ports in [&mut stage.deps, &mut stage.outs].into_iter().flatten() {
                match ports {
                    RawPorts::List(paths) => paths.iter_mut().for_each(unprotect_in_place),
                    RawPorts::Roles(roles) => roles.values_mut().for_each(unprotect_in_place),
                }
            }
            stage.params.values_mut().for_each(unprotect_value);
        }
    }
}

fn unprotect_value(value: &mut serde_yaml::Value) {
    match value {
        serde_yaml::Value::String(text) => unprotect_in_place(text),
        serde_yaml::Value::Sequence(items) => items.iter_mut().for_each(unprotect_value),
        serde_yaml::Value::Mapping(map) => map.values_mut().for_each(unprotect_value),
        _ => {}
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a stage: a map with `kind:` or `cmd:`"
)]
pub struct RawStage {
    pub kind: Option<String>,
    pub cmd: Option<String>,
    pub deps: Option<RawPorts>,
    pub outs: Option<RawPorts>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub params: IndexMap<String, serde_yaml::Value>,
    /// `matrix:` as written (checked and expanded by `matrix::expand`).
    pub matrix: Option<serde_yaml::Value>,
    /// A `select` stage's matrix stage, whose variants it compares.
    pub from: Option<String>,
}

/// `deps:`/`outs:`: a list of paths (cmd stages) or a map role → path (built-in kinds).
#[derive(Debug, Clone, PartialEq)]
pub enum RawPorts {
    List(Vec<String>),
    Roles(IndexMap<String, String>),
}

// By hand rather than `#[serde(untagged)]`: untagged enums swallow the inner error and its
// position; this visitor keeps serde_yaml's message ("invalid type … at line 7 column 9").
impl<'de> Deserialize<'de> for RawPorts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PortsVisitor;
        impl<'de> Visitor<'de> for PortsVisitor {
            type Value = RawPorts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of paths or a map of role: path")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawPorts, A::Error> {
                let mut paths = Vec::new();
                while let Some(path) = seq.next_element::<String>()? {
                    paths.push(path);
                }
                Ok(RawPorts::List(paths))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawPorts, A::Error> {
                UniqueKeys(PhantomData).visit_map(map).map(RawPorts::Roles)
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawPorts, E> {
                Ok(RawPorts::List(Vec::new()))
            }
        }
        deserializer.deserialize_any(PortsVisitor)
    }
}

/// A map that refuses a repeated key, as serde_yaml's own `Mapping` does, where serde would keep
/// the last value: the loader then indexes the file to name both places (see `positions`).
fn unique_keys<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
    deserializer: D,
) -> Result<IndexMap<String, V>, D::Error> {
    deserializer.deserialize_map(UniqueKeys(PhantomData))
}

struct UniqueKeys<V>(PhantomData<V>);

impl<'de, V: Deserialize<'de>> Visitor<'de> for UniqueKeys<V> {
    type Value = IndexMap<String, V>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        // IndexMap's own words, so a wrong type reads as before.
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = IndexMap::with_capacity(map.size_hint().unwrap_or(0));
        while let Some((key, value)) = map.next_entry::<String, V>()? {
            match entries.entry(key) {
                indexmap::map::Entry::Occupied(entry) => {
                    let key = entry.key();
                    return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
                }
                indexmap::map::Entry::Vacant(entry) => {
                    entry.insert(value);
                }
            }
        }
        Ok(entries)
    }
}
