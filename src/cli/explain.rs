//! `warez-pipe explain STAGE`: exactly what changed for one stage since its recorded run.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::pipeline_args::{or_exit, PipelineArgs, INVALID_PIPELINE};
use crate::engine::fingerprint::DirtyReason;

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The stage to explain.
    pub stage: String,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

pub fn run(args: ExplainArgs) -> Result<ExitCode> {
    let loaded = or_exit!(args.pipeline.load());
    let pipeline = &loaded.pipeline;
    if pipeline.stage_index(&args.stage).is_none() {
        // Also a matrix stage's name, which selects several variants: explain takes one (the
        // error suggests the closest variant).
        errln!("error: {}", pipeline.unknown_stage(&args.stage));
        return Ok(ExitCode::from(INVALID_PIPELINE));
    }
    let selected = or_exit!(loaded.select(std::slice::from_ref(&args.stage)));
    let (lock, states) = loaded.assess(&selected, None)?;
    let state = states
        .iter()
        .find(|state| state.stage == args.stage)
        .expect("the selection holds the stage");
    let recorded = lock.stages.get(&args.stage);
    outln!("stage `{}`", args.stage);
    match recorded {
        Some(recorded) => outln!("  recorded key: {}", recorded.key),
        None => outln!(
            "  recorded key: none (no run in {})",
            pipeline.lock_file().display()
        ),
    }
    if let Some(key) = &state.key {
        outln!("  current key:  {key}");
    }
    if state.fresh {
        outln!("  up to date: nothing changed since the recorded run");
        return Ok(ExitCode::SUCCESS);
    }
    outln!("  stale because:");
    for reason in &state.reasons {
        outln!("    - {reason}");
        if let DirtyReason::UpstreamStale { stage } = reason {
            if let Some(upstream) = states.iter().find(|s| &s.stage == stage) {
                for why in upstream
                    .reasons
                    .iter()
                    .filter(|r| !matches!(r, DirtyReason::UpstreamStale { .. }))
                {
                    outln!("        ({stage}: {why})");
                }
            }
        }
    }
    if let Some(error) = &state.error {
        outln!("    - {error}");
    }
    if state.restorable {
        outln!("  the cache holds a run with the current key: `run` restores it without running");
    }
    Ok(ExitCode::FAILURE)
}
