//! `warez-pipe push`: upload the lock file's run records (or, with `--all`, every record in
//! the local cache) and their objects to the remote.

use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::pipeline_args::{or_exit, PipelineArgs};
use super::remote_args::RemoteArgs;
use crate::engine::remote::{RunToPush, TransferProgress};
use crate::engine::store::{LockFile, Store};

#[derive(Debug, Args)]
#[command(after_help = "Exit status: 0 when everything asked for is in the remote, 1 otherwise.")]
pub struct PushArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Every run record kept in the local cache, not only the lock file's.
    #[arg(long)]
    pub all: bool,
    /// Uploads at once.
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value = "8")]
    pub jobs: NonZeroUsize,
}

pub fn run(args: PushArgs) -> Result<ExitCode> {
    let loaded = or_exit!(args.pipeline.load());
    let Some(remote) = args.remote.open(&loaded.pipeline)? else {
        bail!("no remote: give --remote URL, set WAREZ_REMOTE, or add `remote:` to the pipeline");
    };
    let store = Store::open(&loaded.cache_dir)
        .with_context(|| format!("opening the cache {}", loaded.cache_dir.display()))?;
    let mut runs = Vec::new();
    let mut missing = Vec::new();
    if args.all {
        for (key, record) in store.keyed_records()? {
            runs.push(RunToPush { key, record });
        }
    } else {
        let lock = LockFile::read(&loaded.pipeline.lock_file(), &loaded.pipeline.name)?;
        for (stage, locked) in &lock.stages {
            match store.record(&locked.key) {
                Some(record) => runs.push(RunToPush {
                    key: locked.key.clone(),
                    record,
                }),
                None => missing.push(stage.clone()),
            }
        }
    }
    let started = Instant::now();
    let progress = BytesProgress::new();
    let report = remote.push_runs(&store, &runs, args.jobs.get(), &progress)?;
    progress.finish();
    errln!(
        "pushed to {}: {} run records ({} already there), {} objects, {} ({} already there) in {:.2}s",
        remote.name(),
        report.records_uploaded,
        report.records_present,
        report.objects_uploaded,
        human_bytes(report.bytes_uploaded),
        report.objects_present,
        started.elapsed().as_secs_f64()
    );
    if missing.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    errln!(
        "error: no run record in the local cache for stage{} `{}` (run the pipeline first)",
        if missing.len() == 1 { "" } else { "s" },
        missing.join("`, `")
    );
    Ok(ExitCode::FAILURE)
}

/// A byte progress bar on a terminal; plain lines (one per object) otherwise.
pub struct BytesProgress {
    bar: Option<ProgressBar>,
}

impl BytesProgress {
    pub fn new() -> BytesProgress {
        let bar = console::Term::stderr().is_term().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .expect("a valid template"),
            );
            bar
        });
        BytesProgress { bar }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl TransferProgress for BytesProgress {
    fn planned(&self, bytes: u64) {
        match &self.bar {
            Some(bar) => bar.inc_length(bytes),
            None => errln!("{} to transfer", human_bytes(bytes)),
        }
    }

    fn moved(&self, bytes: u64) {
        match &self.bar {
            Some(bar) => bar.inc(bytes),
            None => errln!("  {} done", human_bytes(bytes)),
        }
    }
}

pub fn human_bytes(bytes: u64) -> String {
    indicatif::BinaryBytes(bytes).to_string()
}
