//! The stat cache: `(path, size, mtime, ctime, inode) → content hash`, so an unchanged input is
//! not read again. Any change of those stat fields means the file is re-hashed.
//!
//! A file modified within [`RACY_WINDOW`] of being hashed is not remembered: a write in the same
//! timestamp tick as the hash could otherwise leave the stat fields unchanged with other bytes
//! (git's "racy clean" problem). The cache is a file of the cache folder (`stat-cache.json`);
//! losing or corrupting it only costs a re-hash.
//!
//! The exception is a new output the store hashed while copying it into the cache
//! ([`StatCache::remember`]): its hash serves the rest of the run (the stages that read it, the
//! re-check of their inputs), so its bytes are read once, but it is not saved until a later
//! run finds the file settled.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::content::{hash_file_bytes, ContentHash};

const RACY_WINDOW: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stat {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    inode: u64,
}

impl Stat {
    fn of(metadata: &Metadata) -> Stat {
        Stat {
            size: metadata.len(),
            mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
            ctime_ns: i128::from(metadata.ctime()) * 1_000_000_000
                + i128::from(metadata.ctime_nsec()),
            inode: metadata.ino(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    stat: Stat,
    hash: ContentHash,
    /// Hashed within the racy window: trusted for this run only, never saved.
    #[serde(skip)]
    this_run_only: bool,
}

pub struct StatCache {
    file: Option<PathBuf>,
    entries: Mutex<HashMap<PathBuf, Entry>>,
    changed: AtomicBool,
}

impl StatCache {
    /// Loads the cache file; a missing or unreadable one starts empty.
    pub fn load(file: PathBuf) -> StatCache {
        let entries = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(SavedEntries(HashMap::new()));
        StatCache {
            file: Some(file),
            entries: Mutex::new(entries.0),
            changed: AtomicBool::new(false),
        }
    }

    /// A cache that is never saved.
    pub fn in_memory() -> StatCache {
        StatCache {
            file: None,
            entries: Mutex::new(HashMap::new()),
            changed: AtomicBool::new(false),
        }
    }

    /// The content hash of a file, read from disk only when its stat fields changed.
    pub fn file_hash(&self, path: &Path, metadata: &Metadata) -> io::Result<ContentHash> {
        if let Some(hash) = self.cached_hash(path, metadata) {
            return Ok(hash);
        }
        let stat = Stat::of(metadata);
        let hash = hash_file_bytes(path, stat.size)?;
        let mut entries = self.lock();
        if settled(&stat) {
            entries.insert(
                path.to_path_buf(),
                Entry {
                    stat,
                    hash: hash.clone(),
                    this_run_only: false,
                },
            );
        } else {
            entries.remove(path);
        }
        self.changed.store(true, Ordering::Relaxed);
        Ok(hash)
    }

    /// The hash remembered for a file with these stat fields; `None` when its bytes would have
    /// to be read.
    pub fn cached_hash(&self, path: &Path, metadata: &Metadata) -> Option<ContentHash> {
        let stat = Stat::of(metadata);
        self.lock()
            .get(path)
            .filter(|entry| entry.stat == stat)
            .map(|entry| entry.hash.clone())
    }

    /// Remembers the hash of a file the caller has just read whole, with the `metadata` it had
    /// before and still has after that read; see the module doc for the racy window.
    pub fn remember(&self, path: &Path, metadata: &Metadata, hash: ContentHash) {
        let stat = Stat::of(metadata);
        let this_run_only = !settled(&stat);
        let entry = Entry {
            stat,
            hash,
            this_run_only,
        };
        self.lock().insert(path.to_path_buf(), entry);
        self.changed.store(true, Ordering::Relaxed);
    }

    /// Drops the entries of files that no longer exist (used by `gc`).
    pub fn prune(&self) {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|path, _| path.exists());
        if entries.len() != before {
            self.changed.store(true, Ordering::Relaxed);
        }
    }

    /// Writes the cache back if anything changed.
    pub fn save(&self) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if !self.changed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let entries = self.lock();
        let saved: HashMap<&PathBuf, &Entry> = entries
            .iter()
            .filter(|(_, entry)| !entry.this_run_only)
            .collect();
        let bytes = serde_json::to_vec(&saved).map_err(io::Error::other)?;
        drop(entries);
        crate::engine::files::write_atomic(file, &bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The entries of a cache file, in a map sized once for all of them: filled entry by entry, it
/// re-hashed every path at each doubling (the cache of a 100,000-stage pipeline holds 100,000
/// paths). As with `HashMap`'s own `Deserialize`, a repeated path keeps its last entry.
struct SavedEntries(HashMap<PathBuf, Entry>);

impl<'de> Deserialize<'de> for SavedEntries {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> serde::de::Visitor<'de> for EntriesVisitor {
            type Value = SavedEntries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SavedEntries, A::Error> {
                let mut entries: Vec<(PathBuf, Entry)> = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                let mut sized = HashMap::with_capacity(entries.len());
                sized.extend(entries);
                Ok(SavedEntries(sized))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// Whether a file with these stat fields was last changed before the racy window.
fn settled(stat: &Stat) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i128;
    stat.mtime_ns.max(stat.ctime_ns) + (RACY_WINDOW.as_nanos() as i128) < now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_cache_reads_back_as_a_hash_map_would() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stat-cache.json");
        let cache = StatCache::load(file.clone());
        for (number, name) in ["a", "b", "c"].into_iter().enumerate() {
            let entry = Entry {
                stat: Stat {
                    size: number as u64,
                    mtime_ns: -1,
                    ctime_ns: i128::MAX,
                    inode: 7,
                },
                hash: ContentHash::of_bytes(name.as_bytes()),
                this_run_only: false,
            };
            cache.lock().insert(dir.path().join(name), entry);
        }
        cache.changed.store(true, Ordering::Relaxed);
        cache.save().unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        // A repeated path (a hand edit) keeps its last entry, as `HashMap`'s own reader does.
        let repeated = text.replacen('{', &format!("{{\"{}\":{{\"stat\":{{\"size\":9,\"mtime_ns\":0,\"ctime_ns\":0,\"inode\":0}},\"hash\":\"{}\"}},", dir.path().join("b").display(), ContentHash::of_bytes(b"x")), 1);
        for text in [text, repeated] {
            let ours = serde_json::from_str::<SavedEntries>(&text).unwrap().0;
            let theirs: HashMap<PathBuf, Entry> = serde_json::from_str(&text).unwrap();
            assert_eq!(ours.len(), 3);
            assert_eq!(
                format!("{:?}", sorted(&ours)),
                format!("{:?}", sorted(&theirs))
            );
        }
        assert_eq!(StatCache::load(file).lock().len(), 3);
    }

    fn sorted(entries: &HashMap<PathBuf, Entry>) -> std::collections::BTreeMap<&PathBuf, &Entry> {
        entries.iter().collect()
    }

    #[test]
    fn settled_files_are_served_from_the_cache_and_changed_ones_rehashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "one").unwrap();
        let cache = StatCache::in_memory();
        let fresh = std::fs::metadata(&path).unwrap();
        assert_eq!(
            cache.file_hash(&path, &fresh).unwrap(),
            ContentHash::of_bytes(b"one")
        );
        assert!(
            cache.lock().is_empty(),
            "a file younger than the racy window is not remembered"
        );
        std::thread::sleep(RACY_WINDOW + Duration::from_millis(100));
        let settled = std::fs::metadata(&path).unwrap();
        cache.file_hash(&path, &settled).unwrap();
        // Same stat fields: the remembered hash comes back without reading the bytes.
        std::fs::write(&path, "two").unwrap();
        assert_eq!(
            cache.file_hash(&path, &settled).unwrap(),
            ContentHash::of_bytes(b"one")
        );
        // Real stat fields of the changed file: re-hashed.
        let changed = std::fs::metadata(&path).unwrap();
        assert_eq!(
            cache.file_hash(&path, &changed).unwrap(),
            ContentHash::of_bytes(b"two")
        );
    }
}
