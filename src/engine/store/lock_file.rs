//! The lock file beside a pipeline (`pipelines/x.yaml` → `pipelines/x.lock`): per stage its
//! key, what the key was computed from, and the hashes of its outputs. Deterministic YAML
//! (stages in pipeline order, maps sorted), meant to be committed and diffed:
//!
//! ```yaml
//! pipeline: recommender
//! stages:
//!   ingest:
//!     key: 0ec98052…                      # blake3 of the key inputs below (fingerprint::KeyInputs)
//!     action: kind ingest@1               # or `cmd <command text>`
//!     params: { on_bad_rows: error }      # every resolved param, canonical form
//!     ports: [dep ratings data/ratings_small.csv, out ratings models/recommender/ratings.bin, …]
//!     inputs: { data/ratings_small.csv: 74a3ca01… }
//!     outputs: { models/recommender/ratings.bin: 6310df77…, … }
//! ```

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::engine::files::write_atomic;
use crate::engine::fingerprint::{ContentHash, KeyInputs, StageKey};

const HEADER: &str = "# Written by `warez-pipe run`: the latest run of each stage. Commit it.\n";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LockFile {
    pub pipeline: String,
    pub stages: IndexMap<String, LockedStage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedStage {
    pub key: StageKey,
    #[serde(flatten)]
    pub key_inputs: KeyInputs,
    /// Output path → content hash.
    pub outputs: BTreeMap<String, ContentHash>,
}

impl LockFile {
    /// Reads a lock file; a missing one is empty.
    pub fn read(path: &Path) -> anyhow::Result<LockFile> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_yaml::from_str(&text)
                .map_err(|error| anyhow::anyhow!("{}: {error}", path.display())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(LockFile::default()),
            Err(error) => Err(anyhow::anyhow!("{}: {error}", path.display())),
        }
    }

    pub fn write(&self, path: &Path) -> io::Result<()> {
        let text = serde_yaml::to_string(self).map_err(io::Error::other)?;
        write_atomic(path, format!("{HEADER}{text}").as_bytes())
    }

    /// Keeps only `stage_order`'s stages, in that order (drops stages removed from the pipeline).
    pub fn retain_in_order(&mut self, stage_order: &[&str]) {
        let mut ordered = IndexMap::new();
        for name in stage_order {
            if let Some(stage) = self.stages.shift_remove(*name) {
                ordered.insert((*name).to_string(), stage);
            }
        }
        self.stages = ordered;
    }
}
