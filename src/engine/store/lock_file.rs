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
//! A lock file that cannot be used (empty, not YAML, not a lock file, holding git
//! merge-conflict markers, a field left without a value or a stage key or input or output hash
//! that is no hash by a hand edit, or recording another pipeline than the one it sits beside) is
//! a [`BrokenLockFile`]: `run` and `status` treat it as absent and warn
//! ([`LockFile::read_or_broken`]); the run cache still finds every recorded run by its key, so
//! `run` restores them and writes a whole new file.
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
use crate::engine::fingerprint::{ContentHash, KeyInputs, PathHashes, StageKey};

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
    /// `field:` (of `stage`, or at the top) or `stage:` with nothing after it, on this
    /// 1-based line: YAML reads an empty map or list there, which would pass for a stage that
    /// recorded nothing.
    NoValue {
        line: usize,
        stage: Option<String>,
        field: Option<String>,
    },
    /// A hash of `stage`'s entry, on this 1-based line, is `text`, no hash (64 lowercase hex
    /// digits): a hand edit, which would otherwise pass for the key of another warez-pipe
    /// version, or for an input or output that changed.
    NotAHash {
        line: usize,
        stage: String,
        field: HashField,
        text: String,
    },
    /// The `pipeline:` field, on this 1-based line, names another pipeline: the file was
    /// copied from one, or the pipeline renamed.
    OtherPipeline {
        line: usize,
        found: String,
        expected: String,
    },
}

/// Where in a stage's entry a hash belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashField {
    /// The stage's `key:`.
    Key,
    /// The hash of the input at this path, in `inputs:`.
    Input(String),
    /// The hash of the output at this path, in `outputs:`.
    Output(String),
}

impl HashField {
    /// The map of the entry holding the hash (`None`: the entry itself), and its key there.
    fn place(&self) -> (Option<&'static str>, &str) {
        match self {
            HashField::Key => (None, "key"),
            HashField::Input(path) => (Some("inputs"), path),
            HashField::Output(path) => (Some("outputs"), path),
        }
    }
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
            LockProblem::NoValue { line, stage, field } => {
                write!(f, "{path}:{line}: not a valid lock file: ")?;
                match (stage, field) {
                    (Some(stage), Some(field)) => write!(
                        f,
                        "stage `{}`: `{}:` has no value",
                        stage.escape_debug(),
                        field.escape_debug()
                    ),
                    (Some(stage), None) => {
                        let stage = stage.escape_debug();
                        write!(f, "stage `{stage}`: `{stage}:` has no value")
                    }
                    (None, field) => write!(
                        f,
                        "`{}:` has no value",
                        field.as_deref().unwrap_or_default().escape_debug()
                    ),
                }
            }
            LockProblem::NotAHash {
                line,
                stage,
                field,
                text,
            } => {
                let (stage, text) = (stage.escape_debug(), text.escape_debug());
                write!(f, "{path}:{line}: not a valid lock file: stage `{stage}`: ")?;
                match field {
                    HashField::Key => write!(f, "`key: {text}` is not a stage key")?,
                    HashField::Input(file) => write!(
                        f,
                        "input `{}`: `{text}` is not a content hash",
                        file.escape_debug()
                    )?,
                    HashField::Output(file) => write!(
                        f,
                        "output `{}`: `{text}` is not a content hash",
                        file.escape_debug()
                    )?,
                }
                write!(f, " (64 lowercase hex digits; edited by hand?)")
            }
            LockProblem::OtherPipeline {
                line,
                found,
                expected,
            } => write!(
                f,
                "{path}:{line}: the lock file records pipeline `{}`, not `{}` (copied from \
                 another pipeline, or the pipeline renamed?)",
                found.escape_debug(),
                expected.escape_debug()
            ),
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

    /// Reads the lock file of the pipeline named `pipeline`; a missing one is empty, a broken
    /// one an error saying why.
    pub fn read(path: &Path, pipeline: &str) -> anyhow::Result<LockFile> {
        Self::read_or_broken(path, pipeline)?.map_err(|broken| anyhow::anyhow!("{broken}"))
    }

    /// Reads the lock file of the pipeline named `pipeline`; a missing one is empty. A file
    /// that exists but cannot be used (one recording another pipeline included) is returned
    /// as the `Err` inside; only failing to read it at all is the outer error.
    pub fn read_or_broken(
        path: &Path,
        pipeline: &str,
    ) -> anyhow::Result<Result<LockFile, BrokenLockFile>> {
        Self::read_checked(path, Some(pipeline))
    }

    /// Reads a lock file whatever pipeline it records (another pipeline's, whose name is not
    /// known); a missing one is empty, a broken one an error saying why.
    pub fn read_any(path: &Path) -> anyhow::Result<LockFile> {
        Self::read_checked(path, None)?.map_err(|broken| anyhow::anyhow!("{broken}"))
    }

    fn read_checked(
        path: &Path,
        pipeline: Option<&str>,
    ) -> anyhow::Result<Result<LockFile, BrokenLockFile>> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(Ok(LockFile::default()))
            }
            Err(error) => anyhow::bail!("{}: {error}", path.display()),
        };
        let parsed = Self::prefetched(path, &bytes).unwrap_or_else(|| Self::parse(&bytes));
        let checked = parsed.and_then(|lock| match pipeline {
            Some(expected) if lock.pipeline != expected => Err(LockProblem::OtherPipeline {
                // The text is UTF-8: it parsed.
                line: Scan::of(&String::from_utf8_lossy(&bytes), None).pipeline_line,
                found: lock.pipeline,
                expected: expected.to_string(),
            }),
            _ => Ok(lock),
        });
        Ok(checked.map_err(|problem| BrokenLockFile {
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
        // serde_yaml reads `outputs:` with nothing after it as an empty map: a hand edit that
        // would pass for a stage that recorded nothing. The scan finds such a field; it runs
        // only when serde_yaml failed (to name the field's own line) or read something empty.
        let parsed: Result<LockFile, _> = serde_yaml::from_str(text);
        let suspect = parsed.as_ref().map_or(true, |lock| {
            lock.stages.is_empty() || lock.stages.values().any(LockedStage::has_empty_part)
        });
        if let Some(no_value) = suspect.then(|| Scan::of(text, None).no_value).flatten() {
            return Err(no_value);
        }
        let lock = parsed.map_err(|error| LockProblem::Unreadable(error.to_string()))?;
        // `key: zz` reads as a key that is no hash: it would pass for one of another format;
        // `models/x.bin: zz` for an output that changed. (The fast path read no such text: it
        // takes only hashes.)
        let not_a_hash =
            (lock.stages.iter()).find_map(|(stage, locked)| Some((stage, locked.not_a_hash()?)));
        if let Some((stage, (field, found))) = not_a_hash {
            return Err(LockProblem::NotAHash {
                line: Scan::of(text, Some((stage, &field))).hash_line,
                stage: stage.clone(),
                field,
                text: found,
            });
        }
        Ok(lock)
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

impl LockedStage {
    /// The first hash of the entry that is no hash (a hand edit), and the text read there.
    fn not_a_hash(&self) -> Option<(HashField, String)> {
        let text = |hash: &ContentHash| hash.text().to_string();
        if !self.key.as_hash().is_digest() {
            return Some((HashField::Key, text(self.key.as_hash())));
        }
        let first = |hashes: &PathHashes| {
            (hashes.iter().find(|(_, hash)| !hash.is_digest()))
                .map(|(path, hash)| (path.clone(), text(hash)))
        };
        if let Some((path, found)) = first(&self.key_inputs.inputs) {
            return Some((HashField::Input(path), found));
        }
        first(&self.outputs).map(|(path, found)| (HashField::Output(path), found))
    }

    /// Whether a map or list of the entry is empty (as a field without a value reads).
    fn has_empty_part(&self) -> bool {
        let inputs = &self.key_inputs;
        self.outputs.is_empty()
            || inputs.inputs.is_empty()
            || inputs.params.is_empty()
            || inputs.ports.is_empty()
    }
}

/// What a message about a lock file needs to know of its text, from libyaml's events (the
/// parser serde_yaml uses, in its safe Rust port): read only when a message needs it.
struct Scan {
    /// The line of the top-level `pipeline:` key (1 when there is none).
    pipeline_line: usize,
    /// The first top-level field, stage or stage field with nothing after it.
    no_value: Option<LockProblem>,
    /// The line of the hash [`Scan::of`] was asked about (1 when there is none).
    hash_line: usize,
}

/// A map or list being read: the key it is the value of (`-` for a list item, empty for the
/// document) and its line; for a map, the key read last, until its value comes.
struct Open {
    key: (String, usize),
    map: bool,
    pending: Option<(String, usize)>,
}

impl Scan {
    /// The scan of `text`, finding the line of the hash `hash_of` (a stage's name and where in
    /// its entry).
    fn of(text: &str, hash_of: Option<(&str, &HashField)>) -> Scan {
        use libyaml_safer::{EventData, Parser, ScalarStyle};

        let mut scan = Scan {
            pipeline_line: 1,
            no_value: None,
            hash_line: 1,
        };
        let mut open: Vec<Open> = Vec::new();
        let mut input = text.as_bytes();
        let mut parser = Parser::new();
        parser.set_input_string(&mut input);
        // A syntax error ends the scan: serde_yaml names it.
        while let Ok(event) = parser.parse() {
            let line = usize::try_from(event.start_mark.line).map_or(usize::MAX, |l| l + 1);
            match event.data {
                EventData::StreamEnd => break,
                EventData::MappingStart { .. } | EventData::SequenceStart { .. } => {
                    let key = value_key(&mut open, line);
                    let map = matches!(event.data, EventData::MappingStart { .. });
                    open.push(Open {
                        key,
                        map,
                        pending: None,
                    });
                }
                EventData::MappingEnd | EventData::SequenceEnd => {
                    open.pop();
                }
                EventData::Scalar { value, style, .. } => {
                    if let Some(Open {
                        map: true,
                        pending: pending @ None,
                        ..
                    }) = open.last_mut()
                    {
                        *pending = Some((value, line));
                        continue;
                    }
                    let (key, key_line) = value_key(&mut open, line);
                    if open.len() == 1 && key == "pipeline" {
                        scan.pipeline_line = key_line;
                    }
                    if is_hash_of(&open, &key, hash_of) {
                        scan.hash_line = key_line;
                    }
                    let empty = value.is_empty() && style == ScalarStyle::Plain;
                    if empty && scan.no_value.is_none() {
                        let (stage, field) = match open.as_slice() {
                            [_] => (None, Some(key)),
                            [_, stages] if stages.key.0 == "stages" => (Some(key), None),
                            [_, stages, stage] if stages.key.0 == "stages" => {
                                (Some(stage.key.0.clone()), Some(key))
                            }
                            _ => continue,
                        };
                        scan.no_value = Some(LockProblem::NoValue {
                            line: key_line,
                            stage,
                            field,
                        });
                    }
                }
                EventData::Alias { .. } => {
                    let (key, key_line) = value_key(&mut open, line);
                    if is_hash_of(&open, &key, hash_of) {
                        scan.hash_line = key_line;
                    }
                }
                _ => {}
            }
        }
        scan
    }
}

/// The key whose value the node starting on `line` is, in the innermost open map or list.
fn value_key(open: &mut [Open], line: usize) -> (String, usize) {
    match open.last_mut() {
        // A map or list as a key leaves none pending: nothing a lock file holds.
        Some(Open {
            map: true, pending, ..
        }) => pending.take().unwrap_or_else(|| ("?".to_string(), line)),
        Some(_) => ("-".to_string(), line),
        None => (String::new(), line),
    }
}

/// Whether `key`, in the innermost open map, is the hash `hash_of` (a stage's name and where in
/// its entry).
fn is_hash_of(open: &[Open], key: &str, hash_of: Option<(&str, &HashField)>) -> bool {
    let Some((stage, field)) = hash_of else {
        return false;
    };
    let (map, name) = field.place();
    match open {
        [_, stages, entry, inner @ ..] if stages.key.0 == "stages" && entry.key.0 == stage => {
            key == name && inner.iter().map(|open| open.key.0.as_str()).eq(map)
        }
        _ => false,
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
            LockFile::read_or_broken(&path, "p").unwrap(),
            Ok(LockFile::default())
        );
        std::fs::write(&path, "garbage").unwrap();
        let error = LockFile::read(&path, "p").unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{}: not a valid lock file", path.display())),
            "{error}"
        );
    }

    #[test]
    fn a_lock_file_of_another_pipeline_is_broken_for_this_one_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.lock");
        LockFile {
            pipeline: "other".into(),
            stages: IndexMap::new(),
        }
        .write(&path)
        .unwrap();
        let broken = LockFile::read_or_broken(&path, "p").unwrap().unwrap_err();
        assert_eq!(
            broken.problem,
            LockProblem::OtherPipeline {
                line: 2,
                found: "other".into(),
                expected: "p".into()
            }
        );
        assert_eq!(
            broken.to_string(),
            format!(
                "{}:2: the lock file records pipeline `other`, not `p` (copied from another \
                 pipeline, or the pipeline renamed?)",
                path.display()
            )
        );
        assert_eq!(LockFile::read_any(&path).unwrap().pipeline, "other");
        assert!(LockFile::read(&path, "other").is_ok());
    }

    #[test]
    fn a_hash_that_is_no_hash_is_named_with_its_line() {
        // Stage `b`'s key is on line 11, its input's hash on 16, its outputs' on 18 and 19.
        let entry = |key: &str, input: &str, output: &str| {
            format!(
                "pipeline: p\nstages:\n  a:\n    key: {}\n    action: cmd x\n    params: {{}}\n    \
                 ports: [out - o]\n    inputs: {{}}\n    outputs: {{}}\n  b:\n    key: {key}\n    \
                 action: cmd y\n    params: {{}}\n    ports: [dep - i, out - o]\n    inputs:\n      \
                 i: {input}\n    outputs:\n      o: {}\n      p: {output}\n",
                "cd".repeat(32),
                "ef".repeat(32)
            )
        };
        let hash = "ab".repeat(32);
        // A hash, whatever it was computed from: the key of another format, not a broken file.
        assert!(LockFile::parse(entry(&hash, &hash, &hash).as_bytes()).is_ok());
        let not_a_hash = |line, field, text: &str| {
            Some(LockProblem::NotAHash {
                line,
                stage: "b".into(),
                field,
                text: text.into(),
            })
        };
        let output = || HashField::Output("p".into());
        let upper = "AB".repeat(32);
        let cases = [
            (
                entry("zz", &hash, &hash),
                not_a_hash(11, HashField::Key, "zz"),
            ),
            (
                entry("'12'", &hash, &hash),
                not_a_hash(11, HashField::Key, "12"),
            ),
            (
                entry(&upper, &hash, &hash),
                not_a_hash(11, HashField::Key, &upper),
            ),
            (
                entry(&hash, "zz", &hash),
                not_a_hash(16, HashField::Input("i".into()), "zz"),
            ),
            (entry(&hash, &hash, "zz"), not_a_hash(19, output(), "zz")),
            (entry(&hash, &hash, "'12'"), not_a_hash(19, output(), "12")),
            (
                entry(&hash, &hash, &upper),
                not_a_hash(19, output(), &upper),
            ),
            // The first in the entry: its key before its hashes.
            (
                entry("zz", &hash, "yy"),
                not_a_hash(11, HashField::Key, "zz"),
            ),
            // The output's line, not that of an input with its path.
            (
                entry(&hash, &hash, "zz").replace("  i: ", "  p: "),
                not_a_hash(19, output(), "zz"),
            ),
            (
                entry(&hash, &hash, "*k").replace("action: cmd y", "action: &k cmd y"),
                not_a_hash(19, output(), "cmd y"),
            ),
            (
                entry(&hash, &hash, "zz").replace(
                    &format!("outputs:\n      o: {}\n      p: zz", "ef".repeat(32)),
                    "outputs: { o: zz }",
                ),
                Some(LockProblem::NotAHash {
                    line: 17,
                    stage: "b".into(),
                    field: HashField::Output("o".into()),
                    text: "zz".into(),
                }),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(problem(&text), expected, "{text}");
        }
        let broken = |field| BrokenLockFile {
            path: "x.lock".into(),
            problem: LockProblem::NotAHash {
                line: 4,
                stage: "a".into(),
                field,
                text: "zz".into(),
            },
        };
        let messages = [
            (HashField::Key, "`key: zz` is not a stage key"),
            (
                HashField::Input("data/in.csv".into()),
                "input `data/in.csv`: `zz` is not a content hash",
            ),
            (
                HashField::Output("models/x.bin".into()),
                "output `models/x.bin`: `zz` is not a content hash",
            ),
        ];
        for (field, message) in messages {
            assert_eq!(
                broken(field).to_string(),
                format!(
                    "x.lock:4: not a valid lock file: stage `a`: {message} (64 lowercase hex \
                     digits; edited by hand?)"
                )
            );
        }
    }

    #[test]
    fn a_field_without_a_value_is_named_with_its_line() {
        let no_value = |text: &str| match LockFile::parse(text.as_bytes()) {
            Err(LockProblem::NoValue { line, stage, field }) => Some((line, stage, field)),
            other => panic!("{other:?}"),
        };
        let key = KeyInputs {
            action: "cmd x".into(),
            params: Default::default(),
            ports: vec!["out - o".into()],
            inputs: PathHashes::default(),
        }
        .key();
        let entry = format!(
            "pipeline: p\nstages:\n  a:\n    key: {key}\n    action: cmd x\n    params: {{}}\n    \
             ports: [out - o]\n    inputs: {{}}\n    outputs: {{}}\n"
        );
        assert!(LockFile::parse(entry.as_bytes()).is_ok(), "{entry}");
        let stage = |field: &str| Some((0, Some("a".to_string()), Some(field.to_string())));
        for field in ["outputs", "inputs", "params", "ports", "action", "key"] {
            let edited = entry
                .lines()
                .map(|line| match line.trim_start().strip_prefix(field) {
                    Some(rest) if rest.starts_with(':') => format!("    {field}:"),
                    _ => line.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n");
            let line = edited
                .lines()
                .position(|l| l == format!("    {field}:"))
                .unwrap()
                + 1;
            let mut expected = stage(field);
            expected.as_mut().unwrap().0 = line;
            assert_eq!(no_value(&edited), expected, "{edited}");
        }
        assert_eq!(
            no_value("pipeline: p\nstages:\n  a:\n  b:\n"),
            Some((3, Some("a".into()), None))
        );
        assert_eq!(
            no_value("# header\npipeline: p\nstages:\n"),
            Some((3, None, Some("stages".into())))
        );
        let broken = BrokenLockFile {
            path: "x.lock".into(),
            problem: LockProblem::NoValue {
                line: 9,
                stage: Some("a".into()),
                field: Some("outputs".into()),
            },
        };
        assert_eq!(
            broken.to_string(),
            "x.lock:9: not a valid lock file: stage `a`: `outputs:` has no value"
        );
    }
}
