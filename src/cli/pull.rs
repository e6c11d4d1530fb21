//! `warez-pipe pull`: bring the workspace to the lock file's recorded outputs from the local
//! cache or the remote, running nothing.

use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use super::pipeline_args::{or_exit, PipelineArgs};
use super::remote_args::RemoteArgs;
use crate::engine::exec::Ui;
use crate::engine::fingerprint::StatCache;
use crate::engine::store::{LockFile, RunLock, Store};

#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when every output the lock file records is in place, \
1 when some could not be found (they are listed)."
)]
pub struct PullArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Downloads at once.
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value = "8")]
    pub jobs: NonZeroUsize,
    /// Stop instead of waiting when another run holds the cache.
    #[arg(long)]
    pub no_wait: bool,
}

pub fn run(args: PullArgs) -> Result<ExitCode> {
    let loaded = or_exit!(args.pipeline.load());
    let remote = args.remote.open(&loaded.pipeline)?;
    let lock_path = loaded.pipeline.lock_file();
    let lock = LockFile::read(&lock_path, &loaded.pipeline.name)?;
    if lock.stages.is_empty() {
        anyhow::bail!("{} records no run: nothing to pull", lock_path.display());
    }
    let store = Store::open(&loaded.cache_dir)
        .with_context(|| format!("opening the cache {}", loaded.cache_dir.display()))?;
    let ui = Ui::plain();
    let _lock = RunLock::acquire(store.root(), !args.no_wait, &|line| ui.say(line))?;
    store
        .clear_tmp()
        .context("emptying the cache's tmp folder")?;
    let stats = StatCache::load(store.stat_cache_file());
    let started = Instant::now();
    let report = crate::engine::exec::pull(
        &loaded.pipeline,
        &lock,
        &store,
        remote.as_ref(),
        &stats,
        args.jobs.get(),
    )?;
    let _ = stats.save();
    for path in &report.restored {
        errln!("restored  {path}");
    }
    errln!(
        "pulled {} outputs ({} already in place) in {:.2}s",
        report.restored.len(),
        report.unchanged,
        started.elapsed().as_secs_f64()
    );
    if report.missing.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    errln!("error: {} missing:", report.missing.len());
    for line in &report.missing {
        errln!("  {line}");
    }
    Ok(ExitCode::FAILURE)
}
