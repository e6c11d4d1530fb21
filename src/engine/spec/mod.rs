//! The pipeline file: YAML in, a validated [`Pipeline`] out — or a [`SpecError`] naming the
//! file, line and column, before anything runs.
//!
//! Loading goes in two steps: serde_yaml deserializes [`raw`] types (unknown keys, repeated keys
//! and wrong types are its errors, with positions), then [`load`] resolves each stage: its kind or command, its ports (`deps:`/`outs:` with
//! `${model_path}` expanded, normalized relative to the project folder), and its params
//! (kind default < global `params:` the kind declares < stage `params:` < `--set`), checked by
//! the kind; a `cmd` stage has exactly its own `params:` (and `--set`). A `select` stage is
//! resolved last, from the variants of its `from:` matrix stage (see `kind::select`). `${model_path}` and
//! `${params.x}` may stand unquoted even inside `[ ]`/`{ }` (see `path::protect_variables`). Cross-stage checks follow: an output written twice, an output leaving the
//! project, an output touching what [`protect`] guards (the project's root, `.git`, the cache,
//! pipeline and lock files, the stage's own dependencies) or leading outside through a symlink,
//! a dependency that no stage produces and no file provides. Cycles are found when
//! the graph is built (`dag`), placed at the dependency entry that closes them (every [`Port`]
//! keeps which node declares it). Every error names its line and column, found by
//! [`positions`], which indexes the file only when an error needs a place: a valid pipeline is
//! parsed once.

pub mod defaults;
mod error;
mod guard;
mod loader;
mod matrix;
pub mod path;
mod positions;
mod protect;
mod raw;
mod values;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use error::{closest, Location, SpecError};
use loader::Loader;
pub use matrix::{matrix_stage_of, variant_values};
pub use positions::Places;

use crate::engine::kind::{Params, Registry, StageKind};

/// A validated pipeline.
pub struct Pipeline {
    pub name: String,
    /// The pipeline file as the user named it (for messages).
    pub file: PathBuf,
    /// Absolute project folder: every relative path below starts here.
    pub project_dir: PathBuf,
    /// Normalized, relative to the project folder.
    pub model_path: String,
    /// The cache folder in use: `--cache` / `WAREZ_CACHE`, else `<project>/cache`.
    pub cache_dir: PathBuf,
    /// The top-level `remote:` URL, checked to parse (see `remote::RemoteUrl`).
    pub remote: Option<String>,
    /// In file order.
    pub stages: Vec<Stage>,
    /// Where each node sits in the file, looked up when a message names one.
    pub places: Places,
}

/// One stage with everything resolved.
pub struct Stage {
    pub name: String,
    pub action: Action,
    pub deps: Vec<Port>,
    pub outs: Vec<Port>,
    pub params: Params,
}

/// What a stage does.
pub enum Action {
    Kind(&'static dyn StageKind),
    /// The shell command with `${model_path}` and `${params.*}` already substituted.
    Cmd(String),
}

impl Action {
    /// How the action enters the stage key: the kind and its version, or the command text.
    pub fn describe(&self) -> String {
        match self {
            Action::Kind(kind) => format!("kind {}@{}", kind.name(), kind.version()),
            Action::Cmd(cmd) => format!("cmd {cmd}"),
        }
    }
}

/// A dependency or output: a role (built-in kinds) and a normalized path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub role: Option<String>,
    pub path: String,
    /// Which node of the pipeline file declares it, for errors ([`Pipeline::port_location`]).
    pub declared: Declared,
}

/// The node of the pipeline file that declares a [`Port`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// Its entry in the stage's `deps:`/`outs:`: the role's, or a list's item at its index.
    Entry,
    /// None (an output left to its default): the stage's name.
    Stage,
    /// A select stage's dependency on a variant's output: its `from:`.
    From,
}

/// Which ports of a stage: its dependencies or its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Deps,
    Outs,
}

impl Pipeline {
    /// Absolute path of a pipeline path.
    pub fn abs(&self, path: &str) -> PathBuf {
        self.project_dir.join(path)
    }

    /// `pipelines/x.yaml` → `pipelines/x.lock`.
    pub fn lock_file(&self) -> PathBuf {
        self.file.with_extension("lock")
    }

    /// Where the pipeline file declares port `port` of `side` of stage `stage` (index into
    /// [`Self::stages`]).
    pub fn port_location(&self, stage: usize, side: Side, port: usize) -> Location {
        let stage = &self.stages[stage];
        let (node, ports) = match side {
            Side::Deps => ("deps", &stage.deps),
            Side::Outs => ("outs", &stage.outs),
        };
        let name = &stage.name;
        let (line, column) = match ports[port].declared {
            Declared::Entry => self.places.value(&match &ports[port].role {
                Some(role) => format!("stages/{name}/{node}/{role}"),
                None => format!("stages/{name}/{node}/{port}"),
            }),
            Declared::Stage => self.places.key(&format!("stages/{name}")),
            Declared::From => self.places.value(&format!("stages/{name}/from")),
        };
        Location {
            file: self.file.clone(),
            line,
            column,
        }
    }

    /// The index of one stage (a scan: for many lookups, [`Self::stage_indexes`]).
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|stage| stage.name == name)
    }

    /// Stage name → index, for looking up many names.
    pub fn stage_indexes(&self) -> HashMap<&str, usize> {
        (self.stages.iter().enumerate())
            .map(|(index, stage)| (stage.name.as_str(), index))
            .collect()
    }

    /// What `--stage name` means: the stage `name`, or every variant (`name@…`) of the matrix
    /// stage `name`; empty when there is none.
    pub fn stages_named(&self, name: &str) -> Vec<usize> {
        match self.stage_index(name) {
            Some(index) => vec![index],
            None => (self.stages.iter().enumerate())
                .filter(|(_, stage)| matrix_stage_of(&stage.name) == Some(name))
                .map(|(index, _)| index)
                .collect(),
        }
    }

    /// The error for a `--stage` name that is not in the pipeline.
    pub fn unknown_stage(&self, name: &str) -> SpecError {
        SpecError::UnknownStage {
            name: name.to_string(),
            suggestion: closest(name, self.stages.iter().map(|s| s.name.as_str())),
        }
    }
}

/// A `--set stage.param=value` override, parsed.
#[derive(Debug, Clone)]
pub struct Override {
    pub assignment: String,
    pub stage: String,
    pub param: String,
    pub value: serde_yaml::Value,
}

impl Override {
    /// Parses `stage.param=value`; the value is read as YAML (`3`, `0.5`, `true`, `text`).
    pub fn parse(assignment: &str) -> Result<Override, SpecError> {
        let fail = |message: &str| SpecError::Override {
            assignment: assignment.to_string(),
            message: message.to_string(),
        };
        let (target, value) = assignment
            .split_once('=')
            .ok_or_else(|| fail("expected stage.param=value"))?;
        let (stage, param) = target
            .split_once('.')
            .ok_or_else(|| fail("expected stage.param=value"))?;
        if stage.is_empty() || param.is_empty() {
            return Err(fail("expected stage.param=value"));
        }
        // The same guards as a param in the file: no quadratic parse of deep nesting, no tag,
        // nothing two different values would share in the stage key (see `values`).
        if let Some(suspicion) = guard::needs_strict_pass(value) {
            guard::strict_pass(Path::new("--set"), value, &suspicion).map_err(
                |error| match error {
                    SpecError::Syntax { message, .. } => fail(&format!("value: {message}")),
                    other => other,
                },
            )?;
        }
        let value = serde_yaml::from_str(value).map_err(|error| {
            let message = error.to_string();
            match loader::clarified(&message) {
                clear if clear != message => fail(&format!("value: {clear}")),
                _ => fail(&format!("value is not valid YAML: {message}")),
            }
        })?;
        if let Err(refusal) = values::check(&value) {
            let node = match refusal.node.as_str() {
                "" => String::new(),
                node => format!(" at `{node}`"),
            };
            return Err(fail(&format!("value{node}: {}", refusal.message)));
        }
        Ok(Override {
            assignment: assignment.to_string(),
            stage: stage.to_string(),
            param: param.to_string(),
            value,
        })
    }
}

/// Reads, validates and resolves a pipeline file, to run with the cache `cache` (default
/// `<project>/cache`; no output may touch it).
/// `registry` lists the kinds `kind:` may name.
pub fn load(
    file: &Path,
    overrides: &[Override],
    cache: Option<&Path>,
    registry: &Registry,
) -> Result<Pipeline, SpecError> {
    if file.to_str().is_none() {
        return Err(SpecError::NotUtf8Path {
            path: file.to_path_buf(),
            what: "the pipeline file",
        });
    }
    let bytes = read_regular_file(file).map_err(|source| SpecError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let text = decode(file, bytes)?;
    if let Some(suspicion) = guard::needs_strict_pass(&text) {
        guard::strict_pass(file, &text, &suspicion)?;
    }
    Loader::new(file, path::protect_variables(&text), registry)?.load(overrides, cache)
}

/// The bytes of `file` when it is a regular file (or a link to one): reading a named pipe would
/// wait for a writer (so would opening it, hence `O_NONBLOCK`), a device such as `/dev/zero`
/// would never end.
fn read_regular_file(file: &Path) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(file)?;
    let file_type = opened.metadata()?.file_type();
    if !file_type.is_file() {
        let what = if file_type.is_dir() {
            "a folder"
        } else {
            "a named pipe, socket or device"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it is {what}, not a file"),
        ));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut opened, &mut bytes)?;
    Ok(bytes)
}

/// The file's bytes as text: UTF-8 (an invalid byte is an error at its place), without a
/// leading byte order mark (serde_yaml would take it for the start of a second document).
fn decode(file: &Path, bytes: Vec<u8>) -> Result<String, SpecError> {
    let text = String::from_utf8(bytes).map_err(|error| {
        let bytes = error.as_bytes();
        let valid = &bytes[..error.utf8_error().valid_up_to()];
        // Valid up to there: lines and columns (in characters) count as an editor does.
        let before = std::str::from_utf8(valid).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |at| at + 1);
        SpecError::Syntax {
            at: Location {
                file: file.to_path_buf(),
                line: before.matches('\n').count() + 1,
                column: before[line_start..].chars().count() + 1,
            },
            message: format!(
                "the pipeline file is not UTF-8 text (byte 0x{:02X})",
                bytes[valid.len()]
            ),
        }
    })?;
    Ok(match text.strip_prefix('\u{FEFF}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kind::{OutputRole, ParamSpec, StageContext};

    /// A kind of the tests' own, shaped like a data generator: the engine needs no real one.
    struct Sample;

    impl StageKind for Sample {
        fn name(&self) -> &'static str {
            "sample"
        }
        fn version(&self) -> u32 {
            1
        }
        fn inputs(&self) -> &'static [&'static str] {
            &[]
        }
        fn outputs(&self) -> &'static [OutputRole] {
            &[OutputRole {
                role: "ratings",
                default_name: "ratings.csv",
            }]
        }
        fn params(&self) -> Vec<ParamSpec> {
            vec![
                ParamSpec::new("rows", 1000, "rows to write"),
                ParamSpec::new("customers", 100, "distinct customers"),
                ParamSpec::new("seed", 42, "random seed"),
            ]
        }
        fn check_params(&self, params: &Params) -> anyhow::Result<()> {
            params.u64("rows").map(drop)
        }
        fn run(&self, _ctx: &StageContext) -> anyhow::Result<()> {
            unreachable!("loading never runs a stage")
        }
    }

    fn load_text(yaml: &str, overrides: &[&str]) -> Result<Pipeline, SpecError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.yaml");
        std::fs::write(&file, yaml).unwrap();
        let overrides: Vec<Override> = overrides
            .iter()
            .map(|o| Override::parse(o).unwrap())
            .collect();
        load(&file, &overrides, None, &Registry::new(vec![&Sample]))
    }

    const SAMPLE: &str = "name: g\nparams: { seed: 7, epochs: 3 }\nstages:\n  gen:\n    kind: sample\n    params: { rows: 30, customers: 6 }\n";

    #[test]
    fn params_resolve_default_global_stage_override() {
        let pipeline = load_text(SAMPLE, &[]).unwrap();
        let params = &pipeline.stages[0].params;
        assert_eq!(
            params.u64("seed").unwrap(),
            7,
            "global beats the kind default"
        );
        assert_eq!(params.u64("rows").unwrap(), 30, "stage param");
        assert!(
            params.get("epochs").is_none(),
            "globals the kind does not declare stay out"
        );
        assert!(params.get("customers").is_some(), "kind default");
        let overridden = load_text(SAMPLE, &["gen.seed=9", "gen.rows=25"]).unwrap();
        assert_eq!(overridden.stages[0].params.u64("seed").unwrap(), 9);
        assert_eq!(overridden.stages[0].params.u64("rows").unwrap(), 25);
    }

    #[test]
    fn outputs_default_under_model_path() {
        let pipeline = load_text(SAMPLE, &[]).unwrap();
        assert_eq!(pipeline.model_path, "models/g");
        let outs: Vec<(Option<&str>, &str)> = pipeline.stages[0]
            .outs
            .iter()
            .map(|out| (out.role.as_deref(), out.path.as_str()))
            .collect();
        assert_eq!(outs, [(Some("ratings"), "models/g/ratings.csv")]);
    }

    #[test]
    fn check_params_errors_name_stage_param_and_place() {
        let error = load_text(&SAMPLE.replace("rows: 30", "rows: -3"), &[])
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("p.yaml:6:21: stage `gen`: param `rows`"),
            "{error}"
        );
    }

    #[test]
    fn paths_are_normalized_and_variables_expanded() {
        let pipeline = load_text(
            "name: n\nmodel_path: ./m/../models/x\nstages:\n  a:\n    cmd: cat ${model_path}/in\n    outs: [${model_path}//./out]\n",
            &[],
        )
        .unwrap();
        assert_eq!(pipeline.model_path, "models/x");
        assert_eq!(pipeline.stages[0].outs[0].path, "models/x/out");
        assert!(matches!(&pipeline.stages[0].action, Action::Cmd(cmd) if cmd == "cat models/x/in"));
    }
}
