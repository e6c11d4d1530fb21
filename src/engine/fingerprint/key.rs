//! The stage key and what goes into it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{ContentHash, PathHashes};

/// Everything a stage's key is computed from; also what the lock file records per stage, so
/// `explain` can name the part that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInputs {
    /// `kind <name>@<version>` or `cmd <command text>`.
    pub action: String,
    /// Param name → its value in canonical form (see [`canonical_param`]).
    pub params: BTreeMap<String, serde_json::Value>,
    /// `dep <role> <path>` / `out <role> <path>` (role `-` for cmd stages), in declaration order.
    pub ports: Vec<String>,
    /// Input path (relative to the project) → content hash.
    pub inputs: PathHashes,
}

/// A stage key: blake3 of the canonical JSON of [`KeyInputs`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StageKey(ContentHash);

impl KeyInputs {
    pub fn key(&self) -> StageKey {
        let canonical = serde_json::to_vec(self).expect("maps of strings serialize");
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"warez-pipe stage key 1\n");
        hasher.update(&canonical);
        StageKey(ContentHash::from_blake3(hasher.finalize()))
    }
}

impl StageKey {
    pub fn as_hash(&self) -> &ContentHash {
        &self.0
    }

    /// A key written as 64 hex digits (e.g. a run record's file name).
    pub fn parse(text: &str) -> Option<StageKey> {
        ContentHash::parse(text).map(StageKey)
    }
}

impl fmt::Display for StageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A param value in canonical form: a JSON value (hashed as JSON text, floats in their
/// shortest round-trip form, map keys sorted), so `0.10` and `0.1` are one value while `1` and
/// `1.0` stay two. YAML that JSON cannot hold (non-string map keys) is kept as its debug text.
pub fn canonical_param(value: &serde_yaml::Value) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_else(|_| serde_json::Value::String(format!("{value:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> KeyInputs {
        KeyInputs {
            action: "cmd echo".into(),
            params: BTreeMap::from([(
                "x".into(),
                canonical_param(&serde_yaml::from_str("0.10").unwrap()),
            )]),
            ports: vec!["out - a".into()],
            inputs: PathHashes::default(),
        }
    }

    #[test]
    fn key_follows_every_part() {
        let base = inputs();
        let mut same = inputs();
        same.params.insert(
            "x".into(),
            canonical_param(&serde_yaml::from_str("0.1").unwrap()),
        );
        assert_eq!(base.key(), same.key());
        let mut param = inputs();
        param.params.insert(
            "x".into(),
            canonical_param(&serde_yaml::from_str("0.2").unwrap()),
        );
        assert_ne!(base.key(), param.key());
        let mut input = inputs();
        input.inputs = [("f".into(), ContentHash::of_bytes(b"f"))]
            .into_iter()
            .collect();
        assert_ne!(base.key(), input.key());
        let mut action = inputs();
        action.action = "cmd echo ".into();
        assert_ne!(base.key(), action.key());
    }
}
