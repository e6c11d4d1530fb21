//! Id maps: customer or product UUID strings → dense indices, in first-seen order.
//!
//! On disk a map is UTF-8 text, one id per line as written in the ratings file, line `i`
//! (0-based) holding the id mapped to `i`. Plain text keeps the artifact diffable and its bytes
//! depend only on the ids and their order, so a changed rating leaves the maps' hashes (and every
//! stage that reads only the maps) untouched.
//!
//! `ingest` looks up two ids per row, so the index uses foldhash (the hasher hashbrown itself
//! defaults to) rather than std's DoS-resistant SipHash, which costs several times as much on
//! 36-byte keys; ids come from the project's own data files, not from an adversary.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::shown::escape_controls;

/// The most customers (or products) a model can tell apart: ids reach it as float32 (its
/// `user` and `product` inputs, `[N, 1]`), which holds every whole number exactly only up to
/// 2²⁴.
pub const MAX_IDS: u64 = 1 << 24;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    ids: Vec<String>,
    index: HashMap<String, u32, foldhash::fast::RandomState>,
}

impl IdMap {
    /// The index of `id`, adding it at the end when first seen.
    pub fn intern(&mut self, id: &str) -> u32 {
        if let Some(&index) = self.index.get(id) {
            return index;
        }
        let index = self.ids.len() as u32;
        self.ids.push(id.to_string());
        self.index.insert(id.to_string(), index);
        index
    }

    pub fn get(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// Ids in index order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = String::with_capacity(self.ids.len() * 37);
        for id in &self.ids {
            text.push_str(id);
            text.push('\n');
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut map = Self::default();
        for (line_number, id) in text.lines().enumerate() {
            if map.get(id).is_some() {
                bail!(
                    "{}:{}: id `{}` appears twice",
                    path.display(),
                    line_number + 1,
                    escape_controls(id)
                );
            }
            map.intern(id);
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_first_seen_order_and_round_trips() {
        let mut map = IdMap::default();
        assert_eq!(map.intern("b"), 0);
        assert_eq!(map.intern("a"), 1);
        assert_eq!(map.intern("b"), 0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.txt");
        map.write(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\na\n");
        assert_eq!(IdMap::read(&path).unwrap(), map);
    }
}
