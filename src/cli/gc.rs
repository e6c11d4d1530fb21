//! `warez-pipe gc`: remove cache objects that no kept run record and no lock file references.
//! `--dry-run` lists what a real `gc` would remove and changes nothing in the cache.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::pipeline_args::{or_exit, PipelineArgs};
use crate::engine::exec::Ui;
use crate::engine::fingerprint::StatCache;
use crate::engine::store::{collect_garbage, GcPolicy, LockFile, RunLock, Store};

#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Drop run records unused for this many days (those a lock file names are always kept;
    /// 0 keeps only those).
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub max_age_days: u64,
}

pub fn run(args: GcArgs) -> Result<ExitCode> {
    let loaded = or_exit!(args.pipeline.load());
    if args.dry_run && !loaded.cache_dir.is_dir() {
        errln!(
            "would remove nothing: there is no cache at {}",
            loaded.cache_dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let store = Store::open(&loaded.cache_dir)
        .with_context(|| format!("opening the cache {}", loaded.cache_dir.display()))?;
    let ui = Ui::detect();
    // A dry run changes nothing, not even the run lock's pid: it only reads, like `run --dry-run`.
    let _lock = if args.dry_run {
        None
    } else {
        Some(RunLock::acquire(store.root(), true, &|line| ui.say(line))?)
    };
    // Every lock file beside the pipeline: pipelines sharing a folder usually share a cache.
    let folder = loaded
        .pipeline
        .lock_file()
        .parent()
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                ".".into()
            } else {
                dir.to_path_buf()
            }
        })
        .unwrap_or_else(|| ".".into());
    let mut lock_files = vec![LockFile::read(
        &loaded.pipeline.lock_file(),
        &loaded.pipeline.name,
    )?];
    for entry in std::fs::read_dir(&folder).with_context(|| folder.display().to_string())? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "lock") && path != loaded.pipeline.lock_file()
        {
            if let Ok(lock) = LockFile::read_any(&path) {
                lock_files.push(lock);
            }
        }
    }
    let policy = GcPolicy {
        max_age_days: args.max_age_days,
        lock_files,
        dry_run: args.dry_run,
    };
    let report = collect_garbage(&store, &policy)?;
    if !args.dry_run {
        let stats = StatCache::load(store.stat_cache_file());
        stats.prune();
        stats.save()?;
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for path in report.removed_records.iter().chain(&report.removed_objects) {
        outln!("{verb} {}", path.display());
    }
    errln!(
        "{verb} {} run records and {} objects ({:.1} MB); kept {} objects",
        report.removed_records.len(),
        report.removed_objects.len(),
        report.removed_bytes as f64 / 1e6,
        report.kept_objects
    );
    Ok(ExitCode::SUCCESS)
}
