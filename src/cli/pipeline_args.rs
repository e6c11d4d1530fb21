//! What every engine command takes: the pipeline file, the cache folder, `--set` overrides;
//! and loading them into a validated pipeline and its graph.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::dag::Dag;
use crate::spec::{self, Override, Pipeline, SpecError};

/// Exit code of a pipeline rejected before anything ran (usage errors use clap's 2 as well).
pub const INVALID_PIPELINE: u8 = 2;

#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// The pipeline file.
    #[arg(default_value = "pipelines/recommender.yaml")]
    pub pipeline: PathBuf,
    /// Cache folder [default: <project>/cache].
    #[arg(long, env = "WAREZ_CACHE", value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Override a param for this invocation (repeatable).
    #[arg(long = "set", value_name = "STAGE.PARAM=VALUE")]
    pub set: Vec<String>,
}

/// A loaded pipeline with its graph and cache folder.
pub struct Loaded {
    pub pipeline: Pipeline,
    pub dag: Dag,
    pub cache_dir: PathBuf,
}

impl PipelineArgs {
    /// Loads and validates; a rejected pipeline is printed and becomes the exit code.
    pub fn load(&self) -> Result<Loaded, ExitCode> {
        self.try_load().map_err(|error| {
            eprintln!("error: {error}");
            ExitCode::from(INVALID_PIPELINE)
        })
    }

    /// The parsed `--set` overrides.
    pub fn overrides(&self) -> Result<Vec<Override>, SpecError> {
        self.set
            .iter()
            .map(|assignment| Override::parse(assignment))
            .collect()
    }

    fn try_load(&self) -> Result<Loaded, SpecError> {
        let overrides = self.overrides()?;
        let pipeline = spec::load(&self.pipeline, &overrides)?;
        let dag = Dag::build(&pipeline)?;
        let cache_dir = match &self.cache {
            Some(dir) => dir.clone(),
            None => pipeline.project_dir.join("cache"),
        };
        Ok(Loaded {
            pipeline,
            dag,
            cache_dir,
        })
    }
}

/// Unwraps a load, returning its exit code from the calling command on failure.
macro_rules! load_or_exit {
    ($args:expr) => {
        match $args.load() {
            Ok(loaded) => loaded,
            Err(code) => return Ok(code),
        }
    };
}
pub(crate) use load_or_exit;
