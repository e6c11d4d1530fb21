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
//!
//! The entries stay in the order they were first remembered (the order a run hashed its files,
//! stage after stage), in the file and in memory ([`Entries`]): a later command looks them up
//! in about that order, so its lookups can walk the entries and their keys forwards instead of
//! jumping to a random heap key each (at 100,000 paths, the `HashMap<PathBuf, _>` this replaces
//! made the lookups grow ~1.5× faster than the stage count; BENCHMARKS.md has what the order
//! and the key type each measured).

use std::ffi::OsString;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::content::{hash_file_bytes, ContentHash};

/// Path → entry, in the order the paths were first remembered. Keyed by the path's bytes, not
/// by `PathBuf`, whose hash and comparison walk its components; hashed with foldhash (the
/// paths are the project's own files, not adversarial input).
type Entries = IndexMap<OsString, Entry, foldhash::fast::RandomState>;

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
    entries: Mutex<Entries>,
    /// Where the next lookup likely finds its path: after the furthest entry found so far (see
    /// [`Self::cached_hash`]). Only a hint, read and written under the `entries` lock.
    next: AtomicUsize,
    changed: AtomicBool,
}

impl StatCache {
    /// Loads the cache file; a missing or unreadable one starts empty.
    pub fn load(file: PathBuf) -> StatCache {
        let entries = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<SavedEntries<Entries>>(&bytes).ok())
            .unwrap_or_default();
        StatCache {
            file: Some(file),
            entries: Mutex::new(entries.0),
            next: AtomicUsize::new(0),
            changed: AtomicBool::new(false),
        }
    }

    /// A cache that is never saved.
    pub fn in_memory() -> StatCache {
        StatCache {
            file: None,
            entries: Mutex::new(Entries::default()),
            next: AtomicUsize::new(0),
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
                path.as_os_str().to_owned(),
                Entry {
                    stat,
                    hash: hash.clone(),
                    this_run_only: false,
                },
            );
        } else {
            // Swapped with the last entry (keeping the order would move every later entry).
            entries.swap_remove(path.as_os_str());
        }
        self.changed.store(true, Ordering::Relaxed);
        Ok(hash)
    }

    /// The hash remembered for a file with these stat fields; `None` when its bytes would have
    /// to be read.
    ///
    /// Commands look the files up in about the order a run remembered them, stage after stage:
    /// the entry after the furthest one found so far, or that one again (a chain's stage reads
    /// the output of the stage before it), is compared first, and the map is asked only when
    /// neither is the path. At 100,000 entries the map's lookup is a cache miss or two; those
    /// two entries are at hand.
    pub fn cached_hash(&self, path: &Path, metadata: &Metadata) -> Option<ContentHash> {
        let stat = Stat::of(metadata);
        let key = path.as_os_str();
        let entries = self.lock();
        let next = self.next.load(Ordering::Relaxed);
        let at = [next, next.wrapping_sub(1)]
            .into_iter()
            .find(|&at| entries.get_index(at).is_some_and(|(path, _)| path == key))
            .or_else(|| entries.get_index_of(key))?;
        // Never back: a path many stages read (a fan's source) would send it there each time.
        self.next.fetch_max(at + 1, Ordering::Relaxed);
        let (_, entry) = entries.get_index(at)?;
        (entry.stat == stat).then(|| entry.hash.clone())
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
        self.lock().insert(path.as_os_str().to_owned(), entry);
        self.changed.store(true, Ordering::Relaxed);
    }

    /// Drops the entries of files that no longer exist (used by `gc`).
    pub fn prune(&self) {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|path, _| Path::new(path).exists());
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
        let bytes = serde_json::to_vec(&SavedEntries(&*entries)).map_err(io::Error::other)?;
        drop(entries);
        crate::engine::files::write_atomic(file, &bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The entries as the cache file holds them: a JSON map of path → entry, in their order. Read
/// into a map sized once for all of them (filled entry by entry, it re-hashed every path at
/// each doubling); as with `HashMap`'s own `Deserialize`, a repeated path keeps its last entry
/// (at the place of its first). Written as a map of `Path`s, as `HashMap<PathBuf, Entry>` was
/// (a path that is not UTF-8 cannot be saved), leaving out the entries trusted for this run
/// only.
struct SavedEntries<E>(E);

impl Serialize for SavedEntries<&Entries> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            self.0
                .iter()
                .filter(|(_, entry)| !entry.this_run_only)
                .map(|(path, entry)| (Path::new(path), entry)),
        )
    }
}

impl<'de> Deserialize<'de> for SavedEntries<Entries> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> serde::de::Visitor<'de> for EntriesVisitor {
            type Value = SavedEntries<Entries>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(PathBuf, Entry)> = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                let mut sized =
                    Entries::with_capacity_and_hasher(entries.len(), Default::default());
                // An entry whose hash is no hash (a hand edit) is forgotten: the file is hashed
                // anew, instead of being taken for changed.
                sized.extend(
                    (entries.into_iter())
                        .filter(|(_, entry)| entry.hash.is_digest())
                        .map(|(path, entry)| (path.into_os_string(), entry)),
                );
                Ok(SavedEntries(sized))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

impl Default for SavedEntries<Entries> {
    fn default() -> Self {
        SavedEntries(Entries::default())
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
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    #[test]
    fn a_saved_cache_reads_back_as_a_hash_map_would_in_the_order_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stat-cache.json");
        let cache = StatCache::load(file.clone());
        // Not in sorted order; `d` is trusted for this run only and not saved.
        for (number, name) in ["c", "a", "d", "b"].into_iter().enumerate() {
            let entry = Entry {
                stat: Stat {
                    size: number as u64,
                    mtime_ns: -1,
                    ctime_ns: i128::MAX,
                    inode: 7,
                },
                hash: ContentHash::of_bytes(name.as_bytes()),
                this_run_only: name == "d",
            };
            cache
                .lock()
                .insert(dir.path().join(name).into_os_string(), entry);
        }
        cache.changed.store(true, Ordering::Relaxed);
        cache.save().unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let at = |name: &str| text.find(&format!("{}\"", dir.path().join(name).display()));
        assert!(at("c") < at("a") && at("a") < at("b") && at("d").is_none());
        // A repeated path (a hand edit) keeps its last entry, as `HashMap`'s own reader does.
        let repeated = text.replacen('{', &format!("{{\"{}\":{{\"stat\":{{\"size\":9,\"mtime_ns\":0,\"ctime_ns\":0,\"inode\":0}},\"hash\":\"{}\"}},", dir.path().join("b").display(), ContentHash::of_bytes(b"x")), 1);
        for text in [text, repeated] {
            let ours = serde_json::from_str::<SavedEntries<Entries>>(&text)
                .unwrap()
                .0;
            let theirs: HashMap<PathBuf, Entry> = serde_json::from_str(&text).unwrap();
            assert_eq!(ours.len(), 3);
            let ours: BTreeMap<PathBuf, &Entry> = ours
                .iter()
                .map(|(path, entry)| (PathBuf::from(path), entry))
                .collect();
            let theirs: BTreeMap<PathBuf, &Entry> =
                theirs.iter().map(|(p, e)| (p.clone(), e)).collect();
            assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
        }
        assert_eq!(StatCache::load(file).lock().len(), 3);
    }

    #[test]
    fn finds_every_entry_whatever_the_order_of_the_lookups() {
        let dir = tempfile::tempdir().unwrap();
        let metadata = std::fs::metadata(dir.path()).unwrap();
        let cache = StatCache::in_memory();
        let names: Vec<String> = (0..8).map(|i| format!("f{i}")).collect();
        for name in &names {
            let hash = ContentHash::of_bytes(name.as_bytes());
            cache.remember(&dir.path().join(name), &metadata, hash);
        }
        // In order, a shared one between (a fan's source), backwards, repeated, unknown.
        let order = [0, 1, 0, 2, 0, 3, 3, 7, 6, 5, 4, 2, 1, 9, 0];
        for i in order {
            let path = dir.path().join(format!("f{i}"));
            let expected = (i < 8).then(|| ContentHash::of_bytes(format!("f{i}").as_bytes()));
            assert_eq!(cache.cached_hash(&path, &metadata), expected, "f{i}");
        }
        let other = std::fs::metadata(dir.path().join("..")).unwrap();
        assert_eq!(cache.cached_hash(&dir.path().join("f3"), &other), None);
    }

    #[test]
    fn an_entry_whose_hash_is_no_hash_is_forgotten_and_the_file_hashed_anew() {
        let dir = tempfile::tempdir().unwrap();
        let (path, file) = (dir.path().join("f"), dir.path().join("stat-cache.json"));
        std::fs::write(&path, "one").unwrap();
        let metadata = std::fs::metadata(&path).unwrap();
        let cache = StatCache::load(file.clone());
        cache.remember(&path, &metadata, ContentHash::of_bytes(b"one"));
        cache.lock()[0].this_run_only = false;
        cache.changed.store(true, Ordering::Relaxed);
        cache.save().unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let digits = ContentHash::of_bytes(b"one").text().to_string();
        assert!(text.contains(&digits), "{text}");
        std::fs::write(&file, text.replace(&digits, "zz")).unwrap();
        let edited = StatCache::load(file);
        assert_eq!(edited.cached_hash(&path, &metadata), None);
        assert_eq!(
            edited.file_hash(&path, &metadata).unwrap(),
            ContentHash::of_bytes(b"one")
        );
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
