//! [`PathHashes`]: path → content hash, the inputs of a stage key and the outputs of a lock
//! file entry.
//!
//! A `BTreeMap` allocates a whole node (~540 bytes for these entries) even for the one or two
//! paths most stages have, and a command holds two per stage (its key's inputs and the lock
//! file's outputs): at 100,000 stages that was ~110 MB of mostly empty nodes, whose page faults
//! and cache misses made the lock file parse grow faster than the stage count. This is one
//! sorted `Vec` instead, built whole ([`FromIterator`]: one sort, a later repeated path
//! replacing an earlier one, as `BTreeMap::insert` does; from a `Vec`, in its buffer) and looked
//! up by binary search. It
//! iterates, compares and serializes exactly as the `BTreeMap` it replaces (a map, sorted by
//! path), so lock files and stage keys keep their bytes.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ContentHash;

/// Path → content hash, sorted by path, each path once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathHashes(Vec<(String, ContentHash)>);

impl PathHashes {
    pub fn get(&self, path: &str) -> Option<&ContentHash> {
        self.0
            .binary_search_by(|(entry, _)| entry.as_str().cmp(path))
            .ok()
            .map(|index| &self.0[index].1)
    }

    pub fn contains_key(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries, sorted by path.
    pub fn iter(&self) -> Iter<'_> {
        self.0.iter().map(|(path, hash)| (path, hash))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(path, _)| path)
    }

    pub fn values(&self) -> impl Iterator<Item = &ContentHash> {
        self.0.iter().map(|(_, hash)| hash)
    }
}

/// [`PathHashes::iter`]'s iterator.
pub type Iter<'a> = std::iter::Map<
    std::slice::Iter<'a, (String, ContentHash)>,
    fn(&'a (String, ContentHash)) -> (&'a String, &'a ContentHash),
>;

impl From<Vec<(String, ContentHash)>> for PathHashes {
    /// Sorts `entries` in place (no other allocation: give it the capacity it needs).
    fn from(mut entries: Vec<(String, ContentHash)>) -> Self {
        // Stable: of entries with one path, the last given ends up last and is the one kept.
        entries.sort_by(|(a, _), (b, _)| a.cmp(b));
        entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(&mut later.1, &mut kept.1);
            }
            same
        });
        PathHashes(entries)
    }
}

impl FromIterator<(String, ContentHash)> for PathHashes {
    fn from_iter<I: IntoIterator<Item = (String, ContentHash)>>(entries: I) -> Self {
        PathHashes::from(entries.into_iter().collect::<Vec<_>>())
    }
}

impl<'a> IntoIterator for &'a PathHashes {
    type Item = (&'a String, &'a ContentHash);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for PathHashes {
    type Item = (String, ContentHash);
    type IntoIter = std::vec::IntoIter<(String, ContentHash)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Serialize for PathHashes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for PathHashes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = PathHashes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                // The `BTreeMap`'s own words, so a wrong type reads as before.
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PathHashes, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(PathHashes::from(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn hash(text: &str) -> ContentHash {
        ContentHash::of_bytes(text.as_bytes())
    }

    /// The same entries as a `BTreeMap` filled by `insert` in the same order.
    fn both(entries: &[(&str, &str)]) -> (PathHashes, BTreeMap<String, ContentHash>) {
        let owned = || entries.iter().map(|(p, h)| (p.to_string(), hash(h)));
        (owned().collect(), owned().collect())
    }

    #[test]
    fn behaves_as_the_btree_map_it_replaces() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("out/a", "1")],
            &[("b", "1"), ("a", "2"), ("c", "3")],
            // A repeated path: the later hash wins, as with `BTreeMap::insert`.
            &[("x", "1"), ("a", "2"), ("x", "3"), ("x", "4"), ("a", "5")],
            &[
                ("out/m/10", "1"),
                ("out/m/9", "2"),
                ("out/m/1", "3"),
                ("out/m", "4"),
            ],
        ];
        for entries in cases {
            let (ours, btree) = both(entries);
            assert!(ours.iter().eq(btree.iter()), "{entries:?}");
            assert!(ours.keys().eq(btree.keys()));
            assert!(ours.values().eq(btree.values()));
            assert_eq!(ours.len(), btree.len());
            assert_eq!(ours.is_empty(), btree.is_empty());
            for path in ["a", "b", "x", "out/m/9", "out/m", "missing", ""] {
                assert_eq!(ours.get(path), btree.get(path), "{path} in {entries:?}");
                assert_eq!(ours.contains_key(path), btree.contains_key(path));
            }
            assert_eq!(
                serde_json::to_string(&ours).unwrap(),
                serde_json::to_string(&btree).unwrap()
            );
            let yaml = serde_yaml::to_string(&ours).unwrap();
            assert_eq!(yaml, serde_yaml::to_string(&btree).unwrap());
            let back: PathHashes = serde_yaml::from_str(&yaml).unwrap();
            assert_eq!(back, ours);
            assert!(ours.clone().into_iter().eq(btree.into_iter()));
        }
    }

    #[test]
    fn reads_a_repeated_key_as_the_btree_map_does() {
        let yaml = format!("a: {}\nb: {}\na: {}\n", hash("1"), hash("2"), hash("3"));
        let ours: Result<PathHashes, _> = serde_yaml::from_str(&yaml);
        let btree: Result<BTreeMap<String, ContentHash>, _> = serde_yaml::from_str(&yaml);
        match (ours, btree) {
            (Ok(ours), Ok(btree)) => assert!(ours.iter().eq(btree.iter())),
            (Err(ours), Err(btree)) => assert_eq!(ours.to_string(), btree.to_string()),
            (ours, btree) => panic!("{ours:?} against {btree:?}"),
        }
        let wrong: Result<PathHashes, _> = serde_yaml::from_str("[1, 2]");
        let btree: Result<BTreeMap<String, ContentHash>, _> = serde_yaml::from_str("[1, 2]");
        assert_eq!(
            wrong.unwrap_err().to_string(),
            btree.unwrap_err().to_string()
        );
    }
}
