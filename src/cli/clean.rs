//! `warez-pipe clean`: remove the pipeline's declared outputs — and with `--cache` the cache's
//! objects, trees, run records and stat cache. Never anything else: each path is checked right
//! before it goes, and one whose real folder lies outside the project (or the cache) is refused;
//! a symlink is removed itself, never followed.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::pipeline_args::{or_exit, PipelineArgs};
use crate::engine::exec::Ui;
use crate::engine::store::{remove_inside, RunLock, Store};

#[derive(Debug, Args)]
pub struct CleanArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Also empty the cache (objects, trees, run records, stat cache).
    #[arg(long = "cache-too")]
    pub cache_too: bool,
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: CleanArgs) -> Result<ExitCode> {
    let loaded = or_exit!(args.pipeline.load_without_lock());
    let pipeline = &loaded.pipeline;
    let store = Store::open(&loaded.cache_dir)
        .with_context(|| format!("opening the cache {}", loaded.cache_dir.display()))?;
    let ui = Ui::detect();
    let _lock = RunLock::acquire(store.root(), true, &|line| ui.say(line))?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut targets: Vec<(std::path::PathBuf, &std::path::Path)> = pipeline
        .stages
        .iter()
        .flat_map(|stage| &stage.outs)
        .map(|out| (pipeline.abs(&out.path), pipeline.project_dir.as_path()))
        .collect();
    if args.cache_too {
        targets.extend(
            store
                .owned_entries()
                .into_iter()
                .map(|entry| (entry, store.real_root())),
        );
    }
    for (path, root) in targets
        .iter()
        .filter(|(path, _)| std::fs::symlink_metadata(path).is_ok())
    {
        if !args.dry_run {
            remove_inside(path, root)?;
        }
        outln!("{verb} {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
