//! What every engine command takes: the pipeline file, the cache folder, `--set` overrides;
//! and loading them into a validated pipeline and its graph.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::Args;

use super::cache_arg::CacheArg;
use crate::engine::dag::Dag;
use crate::engine::exec::{self, Judge, StageStatus};
use crate::engine::fingerprint::{StageKey, StatCache};
use crate::engine::kind::Registry;
use crate::engine::remote::Remote;
use crate::engine::spec::{self, Override, Pipeline, SpecError};
use crate::engine::store::{LockFile, Store};

/// Exit code of a pipeline rejected before anything ran (usage errors use clap's 2 as well).
pub const INVALID_PIPELINE: u8 = 2;

#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// The pipeline file.
    #[arg(default_value = "pipelines/recommender.yaml")]
    pub pipeline: PathBuf,
    #[command(flatten)]
    pub cache: CacheArg,
    /// Override a param for this invocation (repeatable).
    #[arg(long = "set", value_name = "STAGE.PARAM=VALUE")]
    pub set: Vec<String>,
}

/// A loaded pipeline with its graph, cache folder and the kinds it was loaded with.
pub struct Loaded {
    pub pipeline: Pipeline,
    pub registry: Registry,
    pub dag: Dag,
    pub cache_dir: PathBuf,
}

impl Loaded {
    /// The stages `names` ask for and what they need (all stages when `names` is empty); an
    /// unknown name is printed and becomes the exit code.
    pub fn select(&self, names: &[String]) -> Result<BTreeSet<usize>, ExitCode> {
        self.dag.select(&self.pipeline, names).map_err(|error| {
            errln!("error: {error}");
            ExitCode::from(INVALID_PIPELINE)
        })
    }

    /// How the `selected` stages stand against the lock file (for `status` and `explain`);
    /// with a remote, which stale ones it holds.
    pub fn assess(
        &self,
        selected: &BTreeSet<usize>,
        remote: Option<&Remote>,
    ) -> anyhow::Result<(LockFile, Vec<StageStatus>)> {
        let store = Store::open(&self.cache_dir)
            .with_context(|| format!("opening the cache {}", self.cache_dir.display()))?;
        let stats = StatCache::load(store.stat_cache_file());
        let lock = LockFile::read_or_broken(&self.pipeline.lock_file(), &self.pipeline.name)?
            .unwrap_or_else(|broken| {
                errln!(
                    "warning: {broken}; treating it as absent (`warez-pipe run` restores what the \
                 cache holds and rewrites it)"
                );
                LockFile::default()
            });
        let remote_warned = AtomicBool::new(false);
        // The local state is what `status` reports; the remote only adds to it.
        let remote_has = |key: &StageKey| match remote.map(|remote| remote.has_run(key)) {
            Some(Ok(found)) => found,
            Some(Err(error)) => {
                if !remote_warned.swap(true, Ordering::Relaxed) {
                    errln!("warning: {error}");
                }
                false
            }
            None => false,
        };
        let judge = Judge {
            pipeline: &self.pipeline,
            store: &store,
            stats: &stats,
            force: false,
            remote_has: remote.map(|_| &remote_has as _),
        };
        let states = exec::assess(&judge, &self.dag, selected, &lock);
        // The stat cache only saves re-hashing next time: failing to write it changes nothing.
        let _ = stats.save();
        super::leave_to_exit(stats);
        Ok((lock, states))
    }
}

impl PipelineArgs {
    /// Loads and validates, reading the lock file meanwhile (see [`LockFile::prefetch`]); a
    /// rejected pipeline is printed and becomes the exit code.
    pub fn load(&self) -> Result<Loaded, ExitCode> {
        LockFile::prefetch(&self.pipeline.with_extension("lock"));
        self.load_without_lock()
    }

    /// [`Self::load`] for commands that do not read the lock file.
    pub fn load_without_lock(&self) -> Result<Loaded, ExitCode> {
        self.try_load().map_err(|error| {
            errln!("error: {error}");
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
        let registry = crate::ml::registry();
        let pipeline = spec::load(&self.pipeline, &overrides, self.cache.dir(), &registry)?;
        let dag = Dag::build(&pipeline)?;
        let cache_dir = pipeline.cache_dir.clone();
        Ok(Loaded {
            pipeline,
            registry,
            dag,
            cache_dir,
        })
    }
}

/// Unwraps a `Result<T, ExitCode>` (a rejected pipeline or stage selection, already printed),
/// returning the exit code from the calling command on failure.
macro_rules! or_exit {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(code) => return Ok(code),
        }
    };
}
pub(crate) use or_exit;
