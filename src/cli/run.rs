//! `warez-pipe run`: bring the pipeline (or the `--stage`s asked for) up to date.

use std::num::NonZeroUsize;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::pipeline_args::{or_exit, PipelineArgs};
use super::remote_args::RemoteArgs;
use crate::engine::exec::{self, Interrupts, RunOptions, Ui};
use crate::engine::fingerprint::StatCache;
use crate::engine::store::{RunLock, Store};

#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when every stage asked for is up to date at the end; \
1 when a stage failed (or, with --dry-run, something would run; with --check, an output \
differs); 2 when the pipeline is rejected before anything runs; 130 / 143 when stopped by \
SIGINT / SIGTERM (running commands stopped, previous outputs kept, nothing recorded)."
)]
pub struct RunArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Run the selected stages even when they are up to date.
    #[arg(long)]
    pub force: bool,
    /// Run only this stage and the stages it needs (repeatable).
    #[arg(long = "stage", value_name = "NAME")]
    pub stages: Vec<String>,
    /// Say what would run or be restored, and why; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Cores to fill: stages run at once while the cores they declare fit (a training stage
    /// declares 2) [default: the number of cores].
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<NonZeroUsize>,
    /// Print the run report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Stop instead of waiting when another run holds the cache.
    #[arg(long)]
    pub no_wait: bool,
    /// Rebuild everything (or the --stage ones and what they need) from scratch in a temporary
    /// copy and compare each output's hash with the lock file (reproducibility check).
    #[arg(long, conflicts_with_all = ["force", "dry_run"])]
    pub check: bool,
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let loaded = or_exit!(args.pipeline.load());
    let selected = or_exit!(loaded.select(&args.stages));
    let ui = Ui::detect();
    let jobs = args
        .jobs
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);
    if args.check {
        let overrides = args.pipeline.overrides()?;
        let report = exec::check(
            &loaded.pipeline,
            &loaded.registry,
            &overrides,
            &selected,
            &loaded.cache_dir,
            jobs,
            &ui,
        )?;
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            err!("{}", report.text());
        }
        return Ok(if report.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let store = Store::open(&loaded.cache_dir)
        .with_context(|| format!("opening the cache {}", loaded.cache_dir.display()))?;
    let interrupts = Interrupts::default();
    let report = interrupts.watch(&loaded.pipeline, &store, || {
        if !args.dry_run {
            let lock = RunLock::acquire(store.root(), !args.no_wait, &|line| ui.say(line))?;
            interrupts.hold_run_lock(lock);
            store
                .clear_tmp()
                .context("emptying the cache's tmp folder")?;
        }
        let stats = StatCache::load(store.stat_cache_file());
        let options = RunOptions {
            force: args.force,
            jobs,
            dry_run: args.dry_run,
            remote: args.remote.open(&loaded.pipeline)?,
        };
        let report = exec::run(
            &loaded.pipeline,
            &loaded.dag,
            &selected,
            &store,
            &stats,
            &options,
            &ui,
            &interrupts,
        )?;
        stats.save().context("saving the stat cache")?;
        super::leave_to_exit(stats);
        Ok(report)
    })?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        err!("{}", report.table());
    }
    let ok = report.ok;
    super::leave_to_exit((report, loaded));
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
