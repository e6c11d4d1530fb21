//! Line and column of every key and value of a YAML document.
//!
//! serde_yaml reports positions for syntax and type errors but hands deserialized values over
//! without them; the checks after deserializing (unknown kind, missing dependency, a cycle, …)
//! look the place up here. The index ([`Positions`]) is built from yaml-rust2's marked event
//! stream, which also reveals duplicate keys (serde would silently keep the last one).
//!
//! Indexing is a second parse of the whole file and a map entry per node — at 100,000 stages
//! more than a quarter of loading — and a valid pipeline never needs it. So the loader keeps
//! the text in [`Places`] and indexes it on the first lookup only: when a message must name a
//! place. A matrix stage's variants are not copied into the index either: a lookup under a
//! variant's name is redirected to the stage as written (see [`Places::alias`]).

use std::collections::HashMap;
use std::sync::OnceLock;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A node path: keys and sequence indexes joined by `/`, e.g. `stages/train/deps/0`.
pub type NodePath = String;

#[derive(Debug, Default)]
pub struct Positions {
    keys: HashMap<NodePath, (usize, usize)>,
    values: HashMap<NodePath, (usize, usize)>,
    /// `(path of the repeated key, line and column of the repeat, line of the first)`.
    pub duplicates: Vec<(NodePath, (usize, usize), usize)>,
}

impl Positions {
    /// Indexes `text`; `None` when it is not valid YAML (serde_yaml then says why).
    pub fn index(text: &str) -> Option<Positions> {
        let mut builder = Builder::default();
        Parser::new_from_str(text).load(&mut builder, false).ok()?;
        Some(builder.positions)
    }

    /// Where the key of the node at `path` starts (falls back to its value), if indexed.
    fn key(&self, path: &str) -> Option<(usize, usize)> {
        self.keys
            .get(path)
            .or_else(|| self.values.get(path))
            .copied()
    }

    /// Where the value of the node at `path` starts (falls back to its key), if indexed.
    fn value(&self, path: &str) -> Option<(usize, usize)> {
        self.values
            .get(path)
            .or_else(|| self.keys.get(path))
            .copied()
    }
}

/// The places of a pipeline file's nodes, indexed when first asked for (see the module doc).
#[derive(Debug, Default)]
pub struct Places {
    /// The text as parsed.
    text: String,
    /// Built on the first lookup; `None` when yaml-rust2 cannot parse the text (every place is
    /// then line 1, column 1).
    index: OnceLock<Option<Positions>>,
    /// A variant's node prefix (`stages/train@a=1`) → its matrix stage's (`stages/train`).
    aliases: HashMap<NodePath, NodePath>,
    /// A node placed at another node's value (a variant's param → its matrix value).
    placed: HashMap<NodePath, NodePath>,
}

impl Places {
    pub fn new(text: String) -> Places {
        Places {
            text,
            ..Places::default()
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The index of the text, built now if it was not yet.
    pub fn index(&self) -> Option<&Positions> {
        self.index
            .get_or_init(|| Positions::index(&self.text))
            .as_ref()
    }

    /// Lookups of `to` and of any node under it go to the same node under `from`: a matrix
    /// stage's variants point into the stage as written.
    pub fn alias(&mut self, from: &str, to: &str) {
        self.aliases.insert(to.to_string(), from.to_string());
    }

    /// The node at `path` (key and value) is where the value of the node `at` is.
    pub fn place(&mut self, path: &str, at: &str) {
        self.placed.insert(path.to_string(), at.to_string());
    }

    /// Where the key of the node at `path` starts (falls back to its value).
    pub fn key(&self, path: &str) -> (usize, usize) {
        if let Some(at) = self.placed.get(path) {
            return self.value(at);
        }
        let Some(index) = self.index() else {
            return (1, 1);
        };
        index.key(&self.unaliased(path)).unwrap_or((1, 1))
    }

    /// Where the value of the node at `path` starts (falls back to its key, then its parent).
    pub fn value(&self, path: &str) -> (usize, usize) {
        if let Some(at) = self.placed.get(path) {
            return self.value(at);
        }
        let Some(index) = self.index() else {
            return (1, 1);
        };
        if let Some(at) = index.value(&self.unaliased(path)) {
            return at;
        }
        match path.rsplit_once('/') {
            Some((parent, _)) => self.value(parent),
            None => (1, 1),
        }
    }

    /// `path` with a variant's prefix replaced by its matrix stage's.
    fn unaliased(&self, path: &str) -> NodePath {
        if self.aliases.is_empty() {
            return path.to_string();
        }
        let prefixes = path
            .match_indices('/')
            .map(|(end, _)| end)
            .chain([path.len()]);
        for end in prefixes {
            if let Some(from) = self.aliases.get(&path[..end]) {
                return format!("{from}{}", &path[end..]);
            }
        }
        path.to_string()
    }
}

enum Frame {
    Map {
        path: NodePath,
        key: Option<String>,
        seen: HashMap<String, usize>,
    },
    Seq {
        path: NodePath,
        index: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    positions: Positions,
}

impl Builder {
    /// Path of the node that starts now (the value of the current key or the next item).
    fn child_path(&self) -> NodePath {
        match self.stack.last() {
            Some(Frame::Map { path, key, .. }) => join(path, key.as_deref().unwrap_or_default()),
            Some(Frame::Seq { path, index }) => join(path, &index.to_string()),
            None => String::new(),
        }
    }

    /// A value node finished: the enclosing map waits for its next key, a sequence moves on.
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { index, .. }) => *index += 1,
            None => {}
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }
}

fn join(parent: &str, child: &str) -> NodePath {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}/{child}")
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let at = (mark.line(), mark.col() + 1);
        match event {
            Event::Scalar(text, ..) if self.expecting_key() => {
                let Some(Frame::Map { path, key, seen }) = self.stack.last_mut() else {
                    return;
                };
                let child = join(path, &text);
                if let Some(first_line) = seen.get(&text) {
                    self.positions
                        .duplicates
                        .push((child.clone(), at, *first_line));
                } else {
                    seen.insert(text.clone(), at.0);
                }
                self.positions.keys.entry(child).or_insert(at);
                *key = Some(text);
            }
            Event::Scalar(..) | Event::Alias(_) => {
                let path = self.child_path();
                self.positions.values.entry(path).or_insert(at);
                self.value_done();
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if self.expecting_key() {
                    // A complex (non-scalar) key: index it under a placeholder name.
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some("?".to_string());
                    }
                }
                let path = self.child_path();
                self.positions.values.entry(path.clone()).or_insert(at);
                self.stack
                    .push(if matches!(event, Event::MappingStart(..)) {
                        Frame::Map {
                            path,
                            key: None,
                            seen: HashMap::new(),
                        }
                    } else {
                        Frame::Seq { path, index: 0 }
                    });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn indexes_keys_values_and_duplicates() {
        let text =
            "name: x\nstages:\n  a:\n    cmd: echo\n    deps: [one, two]\n  a:\n    cmd: b\n";
        let places = Places::new(text.to_string());
        assert_eq!(places.key("stages/a"), (3, 3));
        assert_eq!(places.value("stages/a/cmd"), (4, 10));
        assert_eq!(places.value("stages/a/deps/1"), (5, 17));
        assert_eq!(places.value("stages/a/deps/1/nothing/here"), (5, 17));
        let positions = places.index().unwrap();
        assert_eq!(positions.duplicates.len(), 1);
        assert_eq!(positions.duplicates[0].0, "stages/a");
        assert_eq!(positions.duplicates[0].1, (6, 3));
        assert_eq!(positions.duplicates[0].2, 3);
    }

    /// The index as it was built before places were looked up lazily: every variant's nodes
    /// copied under its name, a matrix value's place written over its param's. Kept here only
    /// to check that [`Places`] answers every lookup the same.
    struct Eager(Positions);

    impl Eager {
        fn alias(&mut self, from: &str, to: &str) {
            for map in [&mut self.0.keys, &mut self.0.values] {
                let copies: Vec<(NodePath, (usize, usize))> = map
                    .iter()
                    .filter_map(|(path, at)| {
                        let rest = path.strip_prefix(from)?;
                        (rest.is_empty() || rest.starts_with('/'))
                            .then(|| (format!("{to}{rest}"), *at))
                    })
                    .collect();
                map.extend(copies);
            }
        }

        fn place(&mut self, path: &str, at: (usize, usize)) {
            self.0.keys.insert(path.to_string(), at);
            self.0.values.insert(path.to_string(), at);
        }

        fn key(&self, path: &str) -> (usize, usize) {
            self.0.key(path).unwrap_or((1, 1))
        }

        fn value(&self, path: &str) -> (usize, usize) {
            if let Some(at) = self.0.value(path) {
                return at;
            }
            match path.rsplit_once('/') {
                Some((parent, _)) => self.value(parent),
                None => (1, 1),
            }
        }
    }

    /// A generated stage: its name's number, its deps (block style when `true`), its params and
    /// its matrix (key → number of values).
    type GeneratedStage = (u8, Vec<String>, bool, Vec<(String, u8)>, Vec<(String, u8)>);

    fn pipeline_text(stages: &[GeneratedStage]) -> String {
        let mut text = String::from("name: p\nparams: { seed: 1 }\nstages:\n");
        for (name, deps, block, params, matrix) in stages {
            text += &format!("  s{name}:\n    cmd: echo {name}\n");
            if *block {
                text += "    deps:\n";
                deps.iter()
                    .for_each(|dep| text += &format!("      - {dep}\n"));
            } else {
                text += &format!("    deps: [{}]\n", deps.join(", "));
            }
            if !params.is_empty() {
                text += "    params:\n";
                for (key, value) in params {
                    text += &format!("      {key}: {{ nested: [{value}, {value}] }}\n");
                }
            }
            if !matrix.is_empty() {
                let axes: Vec<String> = (matrix.iter())
                    .map(|(key, count)| {
                        let values: Vec<String> = (0..*count).map(|v| v.to_string()).collect();
                        format!("{key}: [{}]", values.join(", "))
                    })
                    .collect();
                text += &format!("    matrix: {{ {} }}\n", axes.join(", "));
            }
        }
        text
    }

    fn generated_stages() -> impl Strategy<Value = Vec<GeneratedStage>> {
        let words = || proptest::collection::vec(("[a-c]", 1u8..4), 0..3);
        let unique = |pairs: Vec<(String, u8)>| {
            let mut seen = std::collections::BTreeMap::new();
            for (key, count) in pairs {
                seen.entry(key).or_insert(count);
            }
            seen.into_iter().collect::<Vec<_>>()
        };
        let stage = (
            0u8..20,
            proptest::collection::vec("[a-z]{1,6}(/[a-z]{1,4})?", 0..4),
            any::<bool>(),
            words().prop_map(unique),
            words().prop_map(unique),
        );
        proptest::collection::vec(stage, 1..6).prop_map(|mut stages| {
            let mut names = std::collections::BTreeSet::new();
            stages.retain(|stage| names.insert(stage.0));
            stages
        })
    }

    proptest::proptest! {
        /// Lazy places (variants redirected, matrix values placed by node) answer every lookup
        /// as the eager index with copied variants did.
        #[test]
        fn lazy_places_match_the_eager_index(stages in generated_stages()) {
            let text = pipeline_text(&stages);
            let mut places = Places::new(text.clone());
            let mut eager = Eager(Positions::index(&text).unwrap());
            for (name, _, _, _, matrix) in &stages {
                let prefix = format!("stages/s{name}");
                let Some((key, count)) = matrix.first() else {
                    continue;
                };
                for index in 0..*count {
                    let variant = format!("stages/s{name}@{key}={index}");
                    places.alias(&prefix, &variant);
                    eager.alias(&prefix, &variant);
                    let cell = format!("{prefix}/matrix/{key}/{index}");
                    let param = format!("{variant}/params/{key}");
                    places.place(&param, &cell);
                    let at = eager.value(&cell);
                    eager.place(&param, at);
                }
            }
            let indexed: Vec<NodePath> =
                eager.0.keys.keys().chain(eager.0.values.keys()).cloned().collect();
            for path in indexed {
                for query in [path.clone(), format!("{path}/deeper/still"), format!("{path}x")] {
                    prop_assert_eq!(places.key(&query), eager.key(&query), "key {}", query);
                    prop_assert_eq!(places.value(&query), eager.value(&query), "value {}", query);
                }
            }
        }
    }
}
