//! Stage kinds: the one trait every built-in kind implements, the params and progress it sees,
//! and the [`Registry`] value that lists the kinds a pipeline may use.
//!
//! A pipeline stage is either a built-in kind (`kind: ingest`) or a shell command (`cmd:`, see
//! [`cmd`]). A built-in kind declares
//! - named input roles (`deps:` keys in the YAML) and named output roles (`outs:` keys), each
//!   output with a default file name under the pipeline's `model_path`;
//! - every param it reads, with its default (global params of the same name override the
//!   default, stage params override those, `--set stage.param=value` overrides everything);
//! - a version, bumped whenever the kind's output for the same inputs changes;
//! - how many cores one of its runs keeps busy ([`StageKind::cores`], 1 unless it says more):
//!   the scheduler packs stages so the cores in use never exceed `-j`;
//! - how reproducible its outputs are ([`Reproducibility`]), which is what `run --check`
//!   expects of them — a separate matter from where the kind runs.
//!
//! The engine hands [`StageKind::run`] a [`StageContext`] whose output paths point into a staging
//! folder; the engine moves them into place only after the stage succeeded, so a kind never has
//! to clean up after a failure.

pub mod cmd;
mod registry;
pub mod select;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

pub use registry::Registry;

/// How far a kind's outputs follow from its inputs and params alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reproducibility {
    /// The same input bytes and params give the same output bytes on every machine: a
    /// difference with identical inputs is a bug.
    BitIdentical,
    /// Floating-point results: bit-identical on one machine, but on CPUs whose kernels take
    /// other code paths (SIMD width, FMA) they may differ in the last bits.
    FloatResult,
}

impl Reproducibility {
    /// How `run --check` names an artifact of this kind.
    pub fn label(self) -> &'static str {
        match self {
            Reproducibility::BitIdentical => "data-only",
            Reproducibility::FloatResult => "float result",
        }
    }
}

/// One output role of a kind.
#[derive(Debug, Clone, Copy)]
pub struct OutputRole {
    pub role: &'static str,
    /// File (or folder) name under `model_path` when the YAML does not name a path.
    pub default_name: &'static str,
}

/// One param of a kind with its default value (`Null` = no default: the param must be given).
#[derive(Debug, Clone)]
pub struct ParamSpec {
    pub name: &'static str,
    pub default: serde_yaml::Value,
    pub help: &'static str,
}

impl ParamSpec {
    pub fn new(
        name: &'static str,
        default: impl Into<serde_yaml::Value>,
        help: &'static str,
    ) -> Self {
        Self {
            name,
            default: default.into(),
            help,
        }
    }
}

/// A built-in stage kind.
pub trait StageKind: Send + Sync {
    /// The name used in `kind:`.
    fn name(&self) -> &'static str;
    /// Part of every key of this kind: bump it when the same inputs would give other outputs.
    fn version(&self) -> u32;
    /// The `deps:` roles the kind needs.
    fn inputs(&self) -> &'static [&'static str];
    /// The `outs:` roles the kind writes.
    fn outputs(&self) -> &'static [OutputRole];
    /// Every param the kind reads, with defaults; other keys are rejected.
    fn params(&self) -> Vec<ParamSpec>;
    /// Checks resolved params before anything runs. Errors name the param.
    fn check_params(&self, params: &Params) -> Result<()>;
    /// How many cores one run of the kind keeps busy. The scheduler starts a stage only when
    /// the cores of the stages running beside it plus its own stay within `-j`; a stage that
    /// declares more than `-j` runs alone. It never changes what the stage writes.
    fn cores(&self) -> usize {
        1
    }
    /// Whether its outputs are bit-identical on every machine or floating-point results.
    fn reproducibility(&self) -> Reproducibility {
        Reproducibility::BitIdentical
    }
    /// What besides its inputs and params can change the kind's outputs, if anything (such as
    /// the clock); `run --check` prints it when the kind's outputs are not reproduced.
    fn reproducibility_note(&self) -> Option<&'static str> {
        None
    }
    /// Produces every output role at `ctx.output(role)`.
    fn run(&self, ctx: &StageContext) -> Result<()>;
}

/// A stage's resolved params: name → YAML value, in name order (the canonical form hashed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    values: BTreeMap<String, serde_yaml::Value>,
}

impl Params {
    pub fn new(values: BTreeMap<String, serde_yaml::Value>) -> Self {
        Self { values }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &serde_yaml::Value)> {
        self.values.iter()
    }

    pub fn get(&self, name: &str) -> Option<&serde_yaml::Value> {
        self.values.get(name).filter(|value| !value.is_null())
    }

    pub fn insert(&mut self, name: impl Into<String>, value: serde_yaml::Value) {
        self.values.insert(name.into(), value);
    }

    fn required(&self, name: &str) -> Result<&serde_yaml::Value> {
        self.get(name)
            .ok_or_else(|| anyhow!("param `{name}` is required"))
    }

    pub fn u64(&self, name: &str) -> Result<u64> {
        let value = self.required(name)?;
        value.as_u64().ok_or_else(|| {
            anyhow!(
                "param `{name}`: expected a whole number ≥ 0, found {}",
                show(value)
            )
        })
    }

    pub fn f64(&self, name: &str) -> Result<f64> {
        let value = self.required(name)?;
        value
            .as_f64()
            .ok_or_else(|| anyhow!("param `{name}`: expected a number, found {}", show(value)))
    }

    pub fn str(&self, name: &str) -> Result<&str> {
        let value = self.required(name)?;
        value
            .as_str()
            .ok_or_else(|| anyhow!("param `{name}`: expected a string, found {}", show(value)))
    }

    /// A string param that may be left unset (`~` or absent).
    pub fn optional_str(&self, name: &str) -> Result<Option<&str>> {
        match self.get(name) {
            None => Ok(None),
            Some(_) => self.str(name).map(Some),
        }
    }

    pub fn bool(&self, name: &str) -> Result<bool> {
        let value = self.required(name)?;
        value.as_bool().ok_or_else(|| {
            anyhow!(
                "param `{name}`: expected true or false, found {}",
                show(value)
            )
        })
    }
}

/// A param as it appears in a command or an environment variable: strings bare, the rest as YAML.
pub fn param_text(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::String(text) => text.clone(),
        serde_yaml::Value::Null => String::new(),
        other => serde_yaml::to_string(other)
            .map(|text| text.trim_end().to_string())
            .unwrap_or_default(),
    }
}

/// A param's value in a message, on one line: a list or a map in YAML's flow style as JSON
/// writes it (`[1,2]`), not as YAML's block style, which spreads over lines (`- 1\n- 2`).
fn show(value: &serde_yaml::Value) -> String {
    let text = match value {
        serde_yaml::Value::Sequence(_) | serde_yaml::Value::Mapping(_) => {
            serde_json::to_string(value).map_err(|error| error.to_string())
        }
        _ => serde_yaml::to_string(value)
            .map(|text| text.trim_end().to_string())
            .map_err(|error| error.to_string()),
    };
    text.unwrap_or_else(|_| format!("{value:?}"))
}

/// What a running stage reports; the engine draws it as a bar (terminal) or plain lines.
pub trait Progress: Send + Sync {
    /// Sets the length of the work, in `unit`s ("rows", "bytes", "steps").
    fn start(&self, total: u64, unit: &str);
    /// Sets how much of the work is done.
    fn set_position(&self, done: u64);
    /// A short status shown beside the bar, such as the running loss.
    fn set_message(&self, message: &str);
    /// A line that stays in the log, such as a per-epoch summary.
    fn println(&self, line: &str);
}

/// [`Progress`] as a fixed list of named steps (`2/5 steps: encoding the graph`), for a kind
/// whose work is a few long passes rather than a count of items.
pub struct Steps<'p> {
    progress: &'p dyn Progress,
    names: &'p [&'p str],
}

impl<'p> Steps<'p> {
    pub fn start(progress: &'p dyn Progress, names: &'p [&'p str]) -> Self {
        progress.start(names.len() as u64, "steps");
        Steps { progress, names }
    }

    /// Step `index` (from 0) begins: its name shows, the steps before it count as done. The
    /// name first: a plain progress line shows it with the position.
    pub fn begin(&self, index: usize) {
        self.progress.set_message(self.names[index]);
        self.progress.set_position(index as u64);
    }

    /// Every step is done.
    pub fn finish(&self) {
        self.progress.set_position(self.names.len() as u64);
    }
}

/// Progress that goes nowhere: for tests and library use.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _total: u64, _unit: &str) {}
    fn set_position(&self, _done: u64) {}
    fn set_message(&self, _message: &str) {}
    fn println(&self, _line: &str) {}
}

/// Everything a kind sees while it runs.
pub struct StageContext<'a> {
    /// The stage's name in the pipeline.
    pub stage: &'a str,
    /// The project folder every relative path in the pipeline starts from.
    pub project_dir: &'a Path,
    /// Resolved params.
    pub params: &'a Params,
    /// Input role → absolute path of the file or folder.
    pub inputs: BTreeMap<String, PathBuf>,
    /// Output role → absolute path in a staging folder; the engine moves it into place.
    pub outputs: BTreeMap<String, PathBuf>,
    /// Folder for the kind's own downloads and tools that outlive a run (e.g. ONNX Runtime).
    pub tools_dir: PathBuf,
    pub progress: &'a dyn Progress,
}

impl StageContext<'_> {
    pub fn input(&self, role: &str) -> Result<&Path> {
        match self.inputs.get(role) {
            Some(path) => Ok(path),
            None => bail!("no input `{role}` given (deps: {{ {role}: … }})"),
        }
    }

    pub fn output(&self, role: &str) -> Result<&Path> {
        match self.outputs.get(role) {
            Some(path) => Ok(path),
            None => bail!("no output `{role}`"),
        }
    }

    /// Reads an input file whole, naming it in the error.
    pub fn read_input(&self, role: &str) -> Result<Vec<u8>> {
        let path = self.input(role)?;
        std::fs::read(path).with_context(|| format!("reading input `{role}` ({})", path.display()))
    }
}
