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
//!
//! A lock file that cannot be used (empty, not YAML, not a lock file, or holding git
//! merge-conflict markers) is a [`BrokenLockFile`]: `run` and `status` treat it as absent and
//! warn ([`LockFile::read_or_broken`]); the run cache still finds every recorded run by its key,
//! so `run` restores them and writes a whole new file.
//!
//! At thousands of stages, parsing the lock file costs about as much as loading the pipeline;
//! [`LockFile::prefetch`] lets the two run side by side.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::engine::files::write_atomic;
use crate::engine::fingerprint::{KeyInputs, PathHashes, StageKey};

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
    pub outputs: PathHashes,
}

/// A lock file that exists but cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLockFile {
    pub path: PathBuf,
    pub problem: LockProblem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockProblem {
    /// Git merge-conflict markers, the first on this 1-based line.
    ConflictMarkers { line: usize },
    /// Nothing but blank lines and comments.
    Empty,
    /// Not UTF-8, not YAML, or YAML that is not a lock file.
    Unreadable(String),
}

impl fmt::Display for BrokenLockFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.problem {
            LockProblem::ConflictMarkers { line } => write!(
                f,
                "{path}:{line}: the lock file holds git merge-conflict markers (resolve the \
                 conflict, or delete the file and run)"
            ),
            LockProblem::Empty => write!(f, "{path}: the lock file is empty"),
            LockProblem::Unreadable(why) => write!(f, "{path}: not a valid lock file: {why}"),
        }
    }
}

/// The bytes of a lock file, and their parse.
type Parsed = (Vec<u8>, Result<LockFile, LockProblem>);

/// A lock file being read and parsed on another thread (`None`: it could not be read).
struct Prefetch {
    path: PathBuf,
    parsed: JoinHandle<Option<Parsed>>,
}

/// The one prefetch in flight (a command reads one pipeline's lock file).
static PREFETCH: Mutex<Option<Prefetch>> = Mutex::new(None);

impl LockFile {
    /// Starts reading and parsing the lock file at `path` on another thread. The next
    /// [`Self::read_or_broken`] of that path takes the parse, if the file still holds the
    /// bytes that were parsed (it reads them again to compare: a run waiting for another to
    /// finish must not act on a lock file the other has since rewritten).
    pub fn prefetch(path: &Path) {
        let file = path.to_path_buf();
        let parsed = std::thread::spawn(move || {
            let bytes = std::fs::read(&file).ok()?;
            let parsed = Self::parse(&bytes);
            Some((bytes, parsed))
        });
        *PREFETCH.lock().unwrap_or_else(|p| p.into_inner()) = Some(Prefetch {
            path: path.to_path_buf(),
            parsed,
        });
    }

    /// The prefetched parse of `bytes` read from `path`, if there is one.
    fn prefetched(path: &Path, bytes: &[u8]) -> Option<Result<LockFile, LockProblem>> {
        let prefetch = PREFETCH.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        if prefetch.path != path {
            return None;
        }
        let (seen, parsed) = prefetch.parsed.join().ok()??;
        (seen == bytes).then_some(parsed)
    }

    /// Reads a lock file; a missing one is empty, a broken one an error saying why.
    pub fn read(path: &Path) -> anyhow::Result<LockFile> {
        Self::read_or_broken(path)?.map_err(|broken| anyhow::anyhow!("{broken}"))
    }

    /// Reads a lock file; a missing one is empty. A file that exists but cannot be used is
    /// returned as the `Err` inside; only failing to read it at all is the outer error.
    pub fn read_or_broken(path: &Path) -> anyhow::Result<Result<LockFile, BrokenLockFile>> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(Ok(LockFile::default()))
            }
            Err(error) => anyhow::bail!("{}: {error}", path.display()),
        };
        let parsed = Self::prefetched(path, &bytes).unwrap_or_else(|| Self::parse(&bytes));
        Ok(parsed.map_err(|problem| BrokenLockFile {
            path: path.to_path_buf(),
            problem,
        }))
    }

    fn parse(bytes: &[u8]) -> Result<LockFile, LockProblem> {
        let text = std::str::from_utf8(bytes)
            .map_err(|error| LockProblem::Unreadable(format!("not UTF-8 text ({error})")))?;
        if let Some(line) = text.lines().position(is_conflict_marker) {
            return Err(LockProblem::ConflictMarkers { line: line + 1 });
        }
        let content = |line: &&str| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with('#')
        };
        if !text.lines().any(|line| content(&line)) {
            return Err(LockProblem::Empty);
        }
        if let Some(lock) = super::lock_text::parse(text) {
            return Ok(lock);
        }
        serde_yaml::from_str(text).map_err(|error| LockProblem::Unreadable(error.to_string()))
    }

    pub fn write(&self, path: &Path) -> io::Result<()> {
        let text = serde_yaml::to_string(self).map_err(io::Error::other)?;
        write_atomic(path, format!("{HEADER}{text}").as_bytes())
    }

    /// The entry of the stage named `name`, the pipeline's `index`th stage. Looked for first at
    /// `index`, where the writer puts it (it keeps pipeline order, [`Self::retain_in_order`]):
    /// stage after stage, that reads the entries in order, where a lookup by name in the map of
    /// a 100,000-stage lock file costs a cache miss or two. By name when another stage is there
    /// (a stage added or never run, a hand edit).
    pub fn stage(&self, index: usize, name: &str) -> Option<&LockedStage> {
        match self.stages.get_index(index) {
            Some((at, stage)) if at == name => Some(stage),
            _ => self.stages.get(name),
        }
    }

    /// Whether the lock file holds an entry for a stage not in `stage_order` (the pipeline's
    /// names, in its order). The entries are usually a subsequence of it (the writer keeps
    /// pipeline order), which one walk over both shows; otherwise each name is looked up.
    pub fn holds_others(&self, stage_order: &[&str]) -> bool {
        let mut pipeline = stage_order.iter();
        let in_order = (self.stages.keys()).all(|name| pipeline.any(|stage| stage == name));
        if in_order {
            return false;
        }
        let names: std::collections::HashSet<&str> = stage_order.iter().copied().collect();
        self.stages
            .keys()
            .any(|name| !names.contains(name.as_str()))
    }

    /// Keeps only `stage_order`'s stages, in that order (drops stages removed from the pipeline).
    pub fn retain_in_order(&mut self, stage_order: &[&str]) {
        let mut ordered = IndexMap::new();
        for name in stage_order {
            if let Some(stage) = self.stages.swap_remove(*name) {
                ordered.insert((*name).to_string(), stage);
            }
        }
        self.stages = ordered;
    }
}

/// A line git writes around a merge conflict: `<<<<<<< ours`, `|||||||` (diff3), `=======`,
/// `>>>>>>> theirs`.
fn is_conflict_marker(line: &str) -> bool {
    let line = line.trim_end();
    ["<<<<<<<", "|||||||", ">>>>>>>"].iter().any(|marker| {
        line.strip_prefix(marker)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
    }) || line == "======="
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> Option<LockProblem> {
        LockFile::parse(text.as_bytes()).err()
    }

    #[test]
    fn tells_what_is_wrong_with_a_broken_lock_file() {
        assert_eq!(problem(""), Some(LockProblem::Empty));
        assert_eq!(problem(HEADER), Some(LockProblem::Empty));
        assert_eq!(problem("\n  \n"), Some(LockProblem::Empty));
        let conflict =
            "pipeline: p\nstages:\n<<<<<<< HEAD\n  a: 1\n=======\n  a: 2\n>>>>>>> other\n";
        assert_eq!(
            problem(conflict),
            Some(LockProblem::ConflictMarkers { line: 3 })
        );
        assert_eq!(
            problem("pipeline: p\n=======\n"),
            Some(LockProblem::ConflictMarkers { line: 2 })
        );
        assert!(matches!(
            problem("garbage"),
            Some(LockProblem::Unreadable(_))
        ));
        assert!(matches!(problem("{[}"), Some(LockProblem::Unreadable(_))));
        assert!(
            matches!(problem("stages: {}\n"), Some(LockProblem::Unreadable(why)) if why.contains("pipeline"))
        );
        assert!(matches!(
            LockFile::parse(b"\xff\xfe"),
            Err(LockProblem::Unreadable(why)) if why.contains("UTF-8")
        ));
        // A YAML string that merely contains the characters is no marker.
        assert_eq!(problem("pipeline: \"<<<<<<< x\"\nstages: {}\n"), None);
    }

    #[test]
    fn finds_entries_at_their_index_or_by_name() {
        let entry = |action: &str| {
            let key_inputs = KeyInputs {
                action: action.to_string(),
                params: Default::default(),
                ports: Vec::new(),
                inputs: PathHashes::default(),
            };
            LockedStage {
                key: key_inputs.key(),
                key_inputs,
                outputs: PathHashes::default(),
            }
        };
        let lock = LockFile {
            pipeline: "p".into(),
            stages: ["a", "c", "d"]
                .into_iter()
                .map(|name| (name.to_string(), entry(name)))
                .collect(),
        };
        let action = |index, name| {
            lock.stage(index, name)
                .map(|s| s.key_inputs.action.as_str())
        };
        assert_eq!(action(0, "a"), Some("a"), "at its index");
        assert_eq!(action(2, "c"), Some("c"), "moved up: b never ran");
        assert_eq!(action(2, "b"), None);
        assert_eq!(action(7, "d"), Some("d"), "past the end");
        assert!(!lock.holds_others(&["a", "b", "c", "d", "e"]));
        assert!(!lock.holds_others(&["d", "c", "a"]), "in another order");
        assert!(lock.holds_others(&["a", "c"]));
        assert!(lock.holds_others(&[]));
        assert!(!LockFile::default().holds_others(&[]));
    }

    #[test]
    fn a_missing_file_is_empty_and_a_broken_one_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.lock");
        assert_eq!(
            LockFile::read_or_broken(&path).unwrap(),
            Ok(LockFile::default())
        );
        std::fs::write(&path, "garbage").unwrap();
        let error = LockFile::read(&path).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{}: not a valid lock file", path.display())),
            "{error}"
        );
    }
}
