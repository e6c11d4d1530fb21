//! Id maps: customer or product UUID strings → dense indices, in first-seen order.
//!
//! On disk a map is UTF-8 text, one id per line as written in the ratings file, line `i`
//! (0-based) holding the id mapped to `i`. Plain text keeps the artifact diffable and its bytes
//! depend only on the ids and their order, so a changed rating leaves the maps' hashes (and every
//! stage that reads only the maps) untouched.
//!
//! The index is a `hashbrown::HashTable` of positions into that text (no second copy of the ids
//! as keys), built on the first lookup (a map that is only written, as `ingest` writes its maps,
//! never pays for it: a million ids' index costs a cache miss per id), hashed with foldhash (the hasher hashbrown itself defaults to) rather than std's
//! DoS-resistant SipHash, which costs several times as much on 36-byte keys; ids come from the
//! project's own data files, not from an adversary.

use std::hash::BuildHasher;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, Result};
use hashbrown::HashTable;

use super::shown::escape_controls;
use super::uuid_table::{canonical_uuid, UuidTable};

/// The most customers (or products) a model can tell apart: ids reach it as float32 (its
/// `user` and `product` inputs, `[N, 1]`), which holds every whole number exactly only up to
/// 2²⁴.
pub const MAX_IDS: u64 = 1 << 24;

/// The ids are held once, as the file's own text: a 1M-customer map is one 37 MB string plus
/// 8 bytes of start offset and a 4-byte index slot per id, where a `String` per id (and a second
/// one as the hash map's key) cost four times that in allocations that also take long to free.
#[derive(Debug, Clone, Default)]
pub struct IdMap {
    /// The map file's bytes: every id followed by `\n`, in index order.
    text: String,
    /// Where each id's `\n` is in `text`: an id runs from the end of the one before to there.
    ends: Vec<usize>,
    /// Indices into `ends`, found by the hash of their id: built by the first lookup.
    index: OnceLock<HashTable<u32>>,
    hasher: foldhash::fast::RandomState,
}

impl PartialEq for IdMap {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for IdMap {}

impl IdMap {
    /// The index of `id`, adding it at the end when first seen. `id` must not contain a line
    /// break (ids reach the map as validated UUIDs).
    pub fn intern(&mut self, id: &str) -> u32 {
        if let Some(index) = self.get(id) {
            return index;
        }
        debug_assert!(!id.contains('\n'), "an id with a line break");
        self.text.push_str(id);
        self.ends.push(self.text.len());
        self.text.push('\n');
        self.index_last()
    }

    /// Indexes the last id of `ends`, already in `text`, when the index is built; returns its
    /// index.
    fn index_last(&mut self) -> u32 {
        let index = self.ends.len() - 1;
        let Self {
            text,
            ends,
            index: table,
            hasher,
        } = self;
        if let Some(table) = table.get_mut() {
            table.insert_unique(
                hasher.hash_one(id_at(text, ends, index)),
                index as u32,
                |&other| hasher.hash_one(id_at(text, ends, other as usize)),
            );
        }
        index as u32
    }

    pub fn get(&self, id: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(id);
        self.index
            .get_or_init(|| {
                let mut table = HashTable::with_capacity(self.len());
                for (index, id) in self.ids().enumerate() {
                    table.insert_unique(self.hasher.hash_one(id), index as u32, |&other| {
                        self.hasher.hash_one(self.id(other as usize))
                    });
                }
                table
            })
            .find(hash, |&index| self.id(index as usize) == id)
            .copied()
    }

    /// The id at `index` (`index < len`).
    pub fn id(&self, index: usize) -> &str {
        id_at(&self.text, &self.ends, index)
    }

    /// Ids in index order.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = &str> + Clone + '_ {
        (0..self.len()).map(|index| self.id(index))
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, &self.text).with_context(|| format!("writing {}", path.display()))
    }

    /// Reads a map file: one id per line (a final line without `\n`, and `\r\n` line ends of a
    /// hand-edited file, are accepted). An id listed twice is an error naming its line.
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let twice = |line: usize, id: &str| {
            anyhow::anyhow!(
                "{}:{}: id `{}` appears twice",
                path.display(),
                line + 1,
                escape_controls(id)
            )
        };
        if text.ends_with('\n') && !text.contains('\r') {
            // What `write` writes: the text is kept as it is, and only checked.
            return Self::from_text(text).map_err(|repeated| twice(repeated.line, &repeated.id));
        }
        let mut map = Self::default();
        for (line, id) in text.lines().enumerate() {
            if map.get(id).is_some() {
                return Err(twice(line, id));
            }
            map.intern(id);
        }
        Ok(map)
    }

    /// The map whose file text is `text`: ids each followed by `\n` (anything after the last
    /// `\n` is not an id), or the first id listed twice. The index is left to the first lookup
    /// (`write_avro` never makes one); the check keeps ids of the usual UUID form by their 128
    /// bits in a [`UuidTable`], a batch of ids prefetched at a time, so that a million ids cost
    /// about as much per id as a thousand.
    pub fn from_text(text: String) -> std::result::Result<Self, Repeated> {
        let map = Self::from_distinct_text(text);
        match map.first_repeated() {
            Some(repeated) => Err(repeated),
            None => Ok(map),
        }
    }

    /// The first id listed a second time, if any (see [`from_text`](Self::from_text)).
    fn first_repeated(&self) -> Option<Repeated> {
        const BATCH: usize = 256;
        let mut uuids = UuidTable::with_capacity(self.len());
        let mut others = hashbrown::HashSet::<&str, foldhash::fast::RandomState>::default();
        let mut keys = Vec::with_capacity(BATCH);
        for batch_start in (0..self.len()).step_by(BATCH) {
            let batch = batch_start..self.len().min(batch_start + BATCH);
            keys.clear();
            keys.extend(
                batch
                    .clone()
                    .map(|index| canonical_uuid(self.id(index).as_bytes())),
            );
            for &key in keys.iter().flatten() {
                uuids.prefetch(key);
            }
            for (index, key) in batch.zip(&keys) {
                let id = self.id(index);
                let repeated = match *key {
                    Some(key) if uuids.get(key).is_some() => true,
                    Some(key) => {
                        uuids.insert(key, index as u32);
                        false
                    }
                    None => !others.insert(id),
                };
                if repeated {
                    return Some(Repeated {
                        line: index,
                        id: id.to_string(),
                    });
                }
            }
        }
        None
    }

    /// The map whose file text is `text`, which lists each id once (its maker ensured it: not
    /// checked here, and not indexed until the first lookup).
    pub fn from_distinct_text(text: String) -> Self {
        let ends = memchr::memchr_iter(b'\n', text.as_bytes()).collect();
        Self {
            text,
            ends,
            ..Self::default()
        }
    }
}

/// An id that a map's text lists twice: its second line (0-based) and the id.
#[derive(Debug)]
pub struct Repeated {
    pub line: usize,
    pub id: String,
}

/// The id at `index` of a map's `text` and `ends`.
fn id_at<'a>(text: &'a str, ends: &[usize], index: usize) -> &'a str {
    let start = if index == 0 { 0 } else { ends[index - 1] + 1 };
    &text[start..ends[index]]
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
        assert_eq!(map.ids().collect::<Vec<_>>(), ["b", "a"]);
    }

    #[test]
    fn a_map_from_distinct_text_is_indexed_by_its_first_lookup() {
        let mut map = IdMap::from_distinct_text("b\na\nc\n".to_string());
        assert!(map.index.get().is_none());
        assert_eq!(map.ids().collect::<Vec<_>>(), ["b", "a", "c"]);
        assert_eq!(
            (map.get("c"), map.get("b"), map.get("d")),
            (Some(2), Some(0), None)
        );
        assert_eq!(map.intern("d"), 3);
        assert_eq!(map.intern("a"), 1);
        assert_eq!(map, IdMap::from_text("b\na\nc\nd\n".to_string()).unwrap());
    }

    #[test]
    fn a_uuid_listed_twice_is_found_batches_apart_and_other_spellings_are_other_ids() {
        let id = |n: u32| format!("{n:08x}-0000-4000-8000-{n:012x}");
        let mut text: String = (0..600).map(|n| id(n) + "\n").collect();
        text.push_str(&(id(171).to_uppercase() + "\n"));
        let map = IdMap::from_text(text.clone()).unwrap();
        assert_eq!(map.get(&id(599)), Some(599));
        assert_eq!(map.get(&id(171).to_uppercase()), Some(600));
        text.push_str(&(id(171) + "\n"));
        let repeated = IdMap::from_text(text).unwrap_err();
        assert_eq!((repeated.line, repeated.id), (601, id(171)));
    }

    #[test]
    fn reads_hand_edited_maps_and_names_a_repeated_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.txt");
        std::fs::write(&path, "b\r\na\r\nc").unwrap();
        let map = IdMap::read(&path).unwrap();
        assert_eq!(map.ids().collect::<Vec<_>>(), ["b", "a", "c"]);
        assert_eq!(map.get("c"), Some(2));
        for text in ["b\na\nb\n", "b\r\na\r\nb"] {
            std::fs::write(&path, text).unwrap();
            let error = IdMap::read(&path).unwrap_err().to_string();
            assert!(
                error.ends_with("map.txt:3: id `b` appears twice"),
                "{error}"
            );
        }
    }
}
