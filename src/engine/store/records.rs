//! Run records: stage key → the outputs that key produced.

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::Store;
use crate::engine::files::write_atomic;
use crate::engine::fingerprint::{Content, ContentHash, StageKey};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The stage that first produced this key (informational).
    pub stage: String,
    pub outputs: Vec<RecordedOutput>,
    /// Unix seconds of the latest run or restore (gc's age policy reads it).
    pub last_used: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedOutput {
    /// Relative to the project folder.
    pub path: String,
    pub hash: ContentHash,
    /// A folder (the hash names its tree manifest).
    pub tree: bool,
    #[serde(default)]
    pub executable: bool,
}

impl RecordedOutput {
    pub fn new(path: &str, content: &Content) -> RecordedOutput {
        RecordedOutput {
            path: path.to_string(),
            hash: content.hash().clone(),
            tree: content.is_tree(),
            executable: matches!(
                content,
                Content::File {
                    executable: true,
                    ..
                }
            ),
        }
    }
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default()
}

impl Store {
    pub(super) fn record_path(&self, key: &StageKey) -> std::path::PathBuf {
        self.sharded("runs", key.as_hash(), ".json")
    }

    /// The record of `key`, if that key ever ran; an unreadable record counts as none.
    pub fn record(&self, key: &StageKey) -> Option<RunRecord> {
        let bytes = std::fs::read(self.record_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The file holding the record of `key`, if there is one (whether or not it reads as a
    /// record): what a message about a record [`Store::record`] did not find names.
    pub fn record_file(&self, key: &StageKey) -> Option<std::path::PathBuf> {
        Some(self.record_path(key)).filter(|path| path.exists())
    }

    pub fn write_record(&self, key: &StageKey, record: &RunRecord) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        write_atomic(&self.record_path(key), &bytes)
    }

    /// Marks a record as used now (keeps it young for gc).
    pub fn touch_record(&self, key: &StageKey, record: &RunRecord) -> io::Result<()> {
        let record = RunRecord {
            last_used: now_unix(),
            ..record.clone()
        };
        self.write_record(key, &record)
    }

    /// Every record: (key file, record).
    /// Every run record file in the cache, sorted, with its record (`None` when unreadable).
    pub fn all_records(&self) -> io::Result<Vec<(std::path::PathBuf, Option<RunRecord>)>> {
        let mut records = Vec::new();
        for shard in super::objects::read_dir_or_empty(&self.root.join("runs"))? {
            for file in super::objects::read_dir_or_empty(&shard)? {
                let record = std::fs::read(&file)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok());
                records.push((file, record));
            }
        }
        records.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(records)
    }
}
