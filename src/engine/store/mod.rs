//! The cache: content-addressed objects, run records, the run lock, and the pipeline's lock file.
//!
//! On-disk layout of a cache folder (default `<project>/cache`, else `--cache` / `WAREZ_CACHE`):
//!
//! ```text
//! objects/ab/cdef…        a file's bytes, named by their blake3 hash (ab = first two digits)
//! trees/ab/cdef…          a folder output's tree manifest (see fingerprint::Content), named by its hash
//! runs/ab/cdef….json      run record of one stage key: {"stage", "outputs": [{"path","hash","tree"}], "last_used"}
//! stat-cache.json         (path, size, mtime, ctime, inode) → hash; only a speed-up
//! history.json            each stage's last result and time (see exec/history.rs); only informative
//! run.lock                held (flock) by the running `warez-pipe run`; holds its pid
//! swaps/<stage>-….json    journal of a stage's outputs being replaced (see swap.rs)
//! tmp/                    temp files of atomic writes and staging folders of built-in stages
//! logs/<stage>.log        output of the latest run of each stage
//! tools/                  tools kinds download for themselves (StageContext::tools_dir)
//! ```
//!
//! Every write is temp file + rename, so a killed run leaves whole files or none. Order makes
//! it crash safe: a stage's new outputs go into place first (its previous ones kept aside, see
//! [`Swap`]), then its objects, then its run record, then its lock file entry, and only then are
//! the previous outputs dropped; a run killed anywhere before the lock file entry gets the
//! previous outputs back when the next command takes the run lock, and the stage is redone (or
//! restored) next time, because freshness is decided by comparing hashes, never by "it ran".
//! Run records are never overwritten with other outputs (a key determines its outputs), and
//! all keys ever seen are kept until `gc`: switching a param back restores the old outputs.
//!
//! The lock file (`pipelines/x.yaml` → `pipelines/x.lock`, see [`LockFile`]) is the project's
//! record of the latest run, meant to be committed; `status`/`explain` compare against it.

mod exchange;
mod gc;
mod lock_file;
mod lock_text;
mod objects;
mod records;
mod run_lock;
mod swap;

use std::io;
use std::path::{Path, PathBuf};

pub use gc::{collect_garbage, GcPolicy, GcReport};
pub use lock_file::{BrokenLockFile, HashField, LockFile, LockProblem, LockedStage};
pub use objects::{remove_inside, remove_path, RestoreError, RESTORE_PREFIX};
pub use records::{now_unix, RecordedOutput, RunRecord};
pub use run_lock::RunLock;
pub use swap::{Replacement, Swap};

use crate::engine::fingerprint::ContentHash;

/// The cache's folder for tools kinds provision for themselves.
const TOOLS_DIR: &str = "tools";

/// A cache folder.
pub struct Store {
    root: PathBuf,
    /// `root` with every symlink resolved: nothing outside it is ever removed.
    real_root: PathBuf,
    /// `<root>/tools`, unless shared with another cache ([`Store::sharing_tools_of`]).
    tools: PathBuf,
    /// A reflink into the cache failed once: the file systems cannot share blocks, copy.
    no_reflink: std::sync::atomic::AtomicBool,
}

impl Store {
    /// Opens (creating if needed) the cache at `root`.
    pub fn open(root: &Path) -> io::Result<Store> {
        for dir in ["objects", "trees", "runs", "tmp", "logs"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
            real_root: root.canonicalize()?,
            tools: root.join(TOOLS_DIR),
            no_reflink: Default::default(),
        })
    }

    /// This cache, using the tools folder of the cache at `other` (which need not exist yet):
    /// a scratch cache (`run --check`) reuses what the project's cache has provisioned, e.g.
    /// ONNX Runtime, instead of installing it again.
    pub fn sharing_tools_of(self, other: &Path) -> Store {
        Store {
            tools: other.join(TOOLS_DIR),
            ..self
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cache folder with every symlink resolved.
    pub fn real_root(&self) -> &Path {
        &self.real_root
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn tools_dir(&self) -> PathBuf {
        self.tools.clone()
    }

    pub fn log_file(&self, stage: &str) -> PathBuf {
        self.root.join("logs").join(format!("{stage}.log"))
    }

    pub fn stat_cache_file(&self) -> PathBuf {
        self.root.join("stat-cache.json")
    }

    pub fn history_file(&self) -> PathBuf {
        self.root.join("history.json")
    }

    fn sharded(&self, dir: &str, hash: &ContentHash, extension: &str) -> PathBuf {
        let hex = hash.text();
        self.root
            .join(dir)
            .join(&hex[..2])
            .join(format!("{}{extension}", &hex[2..]))
    }

    fn object_path(&self, hash: &ContentHash) -> PathBuf {
        self.sharded("objects", hash, "")
    }

    fn tree_path(&self, hash: &ContentHash) -> PathBuf {
        self.sharded("trees", hash, "")
    }
}

impl Store {
    /// Everything in the cache folder that warez-pipe itself writes and `clean --cache-too`
    /// may remove (never `tools/`, never files it does not know).
    pub fn owned_entries(&self) -> Vec<PathBuf> {
        [
            "objects",
            "trees",
            "runs",
            "tmp",
            "logs",
            "stat-cache.json",
            "history.json",
        ]
        .iter()
        .map(|name| self.root.join(name))
        .collect()
    }

    /// Empties `tmp/` (left over by killed runs); call only while holding the run lock.
    pub fn clear_tmp(&self) -> io::Result<()> {
        for leftover in objects::read_dir_or_empty(&self.tmp_dir())? {
            self.remove(&leftover)?;
        }
        Ok(())
    }

    /// Removes one of the cache's own files or folders; refuses (an error) when a symlink in
    /// the cache would make that remove something outside it.
    pub fn remove(&self, path: &Path) -> io::Result<()> {
        remove_inside(path, &self.real_root)
    }
}
