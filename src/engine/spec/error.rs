//! Everything that can be wrong with a pipeline file, each with the place it is wrong.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a pipeline file: `pipelines/x.yaml:12:5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A symlink and where it points (boxed in [`SpecError`], which stays small).
#[derive(Debug)]
pub struct Symlink {
    /// As spelled in the pipeline, relative to the project.
    pub link: String,
    /// What the link holds.
    pub target: String,
    /// Where that resolves to.
    pub resolved: String,
}

impl fmt::Display for Symlink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is a symlink to `{}`", self.link, self.target)?;
        if self.resolved != self.target {
            write!(f, " ({})", self.resolved)?;
        }
        Ok(())
    }
}

/// A pipeline rejected before anything runs.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{}: cannot read the pipeline: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// The path of the pipeline file or of its project folder (`what`) is not UTF-8: the lock
    /// file, run records and swap journals hold paths as text.
    #[error(
        "{}: the path of {what} is not valid UTF-8 (lock files and run records hold paths as \
         text): rename it",
        shown_path(path)
    )]
    NotUtf8Path { path: PathBuf, what: &'static str },
    /// YAML syntax, unknown keys and wrong types (as serde_yaml words them).
    #[error("{at}: {message}")]
    Syntax { at: Location, message: String },
    #[error("{at}: duplicate stage name `{name}` (first defined on line {first_line})")]
    DuplicateStage {
        at: Location,
        name: String,
        first_line: usize,
    },
    #[error("{at}: duplicate key `{key}` (first on line {first_line})")]
    DuplicateKey {
        at: Location,
        key: String,
        first_line: usize,
    },
    #[error(
        "{at}: stage `{stage}`: unknown kind `{kind}`{}",
        did_you_mean(suggestion)
    )]
    UnknownKind {
        at: Location,
        stage: String,
        kind: String,
        suggestion: Option<String>,
    },
    #[error(
        "{at}: stage `{stage}`: dependency `{path}` is produced by no stage and no such file exists"
    )]
    MissingDependency {
        at: Location,
        stage: String,
        path: String,
    },
    #[error("{at}: stage `{stage}` writes `{path}`, which {other} also writes")]
    DuplicateOutput {
        at: Location,
        stage: String,
        path: String,
        /// The other writer: "stage `x` (as `path`)".
        other: String,
    },
    #[error("{at}: stage `{stage}`: output `{path}` is outside the project folder; outputs must be relative paths that stay inside it")]
    OutputOutsideProject {
        at: Location,
        stage: String,
        path: String,
    },
    #[error("{at}: stage `{stage}`: output `{path}` {problem}; outputs are deleted and rewritten when their stage runs, so none may touch the project's own files")]
    ProtectedOutput {
        at: Location,
        stage: String,
        path: String,
        /// "contains the pipeline file `pipelines/x.yaml`".
        problem: String,
    },
    #[error("{at}: stage `{stage}`: output `{path}` leads outside the project: {symlink}; outputs must stay inside the project folder (make `{}` a folder, or point it inside the project)", symlink.link)]
    OutputThroughSymlink {
        at: Location,
        stage: String,
        path: String,
        symlink: Box<Symlink>,
    },
    /// `at`: the dependency entry that closes the cycle (its stage reads `path`, which the
    /// stage before it in the chain writes).
    #[error(
        "{at}: dependency cycle: {} (stage `{}` reads `{path}`, an output of `{}`)",
        cycle.join(" -> "),
        cycle[0],
        cycle[cycle.len() - 2]
    )]
    Cycle {
        at: Location,
        cycle: Vec<String>,
        path: String,
    },
    /// Any other problem with one stage (roles, params, variables, kind vs cmd).
    #[error("{at}: stage `{stage}`: {message}")]
    Stage {
        at: Location,
        stage: String,
        message: String,
    },
    #[error("--set {}: {message}", abridged(assignment))]
    Override { assignment: String, message: String },
    #[error("no stage `{name}` in the pipeline{}", did_you_mean(suggestion))]
    UnknownStage {
        name: String,
        suggestion: Option<String>,
    },
}

/// `path` as text, each byte that is not UTF-8 written as `\xFF` and control characters escaped
/// (`Path::display` would show every bad byte as the same `�`).
fn shown_path(path: &Path) -> String {
    let mut text = String::new();
    for chunk in path.as_os_str().as_encoded_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                text.extend(c.escape_default());
            } else {
                text.push(c);
            }
        }
        text.extend(chunk.invalid().escape_ascii().map(char::from));
    }
    text
}

/// A flag's text as the user wrote it, cut to its first 80 characters when longer (a hostile
/// value may be megabytes).
fn abridged(text: &str) -> String {
    const SHOWN: usize = 80;
    // A value given on the command line may hold a line break or an escape sequence: shown
    // escaped (`\n`, `\u{1b}`), it can neither forge a line of output nor drive the terminal.
    let escaped = |part: &str| -> String {
        part.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    };
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!(
            "{}… ({} characters)",
            escaped(&text[..end]),
            text.chars().count()
        ),
        None => escaped(text),
    }
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(name) => format!(" (did you mean `{name}`?)"),
        None => String::new(),
    }
}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(word, candidate), candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate.to_string())
}
