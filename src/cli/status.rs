//! `warez-pipe status`: each stage fresh or stale, and why. Exit 0 only when all are fresh.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use console::style;

use super::pipeline_args::{load_or_exit, PipelineArgs, INVALID_PIPELINE};
use crate::exec::assess;
use crate::fingerprint::StatCache;
use crate::store::{LockFile, Store};

#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when every stage is fresh, 1 when one is stale, \
2 when the pipeline is rejected."
)]
pub struct StatusArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Only this stage and the stages it needs (repeatable).
    #[arg(long = "stage", value_name = "NAME")]
    pub stages: Vec<String>,
    /// Print the status as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: StatusArgs) -> Result<ExitCode> {
    let loaded = load_or_exit!(args.pipeline);
    let selected = match loaded.dag.select(&loaded.pipeline, &args.stages) {
        Ok(selected) => selected,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::from(INVALID_PIPELINE));
        }
    };
    let store = Store::open(&loaded.cache_dir)?;
    let stats = StatCache::load(store.stat_cache_file());
    let lock = LockFile::read(&loaded.pipeline.lock_file())?;
    let states = assess(
        &loaded.pipeline,
        &loaded.dag,
        &selected,
        &lock,
        &store,
        &stats,
    );
    let _ = stats.save();
    let all_fresh = states.iter().all(|state| state.fresh);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "pipeline": loaded.pipeline.name,
                "up_to_date": all_fresh,
                "stages": states,
            }))?
        );
    } else {
        let width = states.iter().map(|s| s.stage.len()).max().unwrap_or(0);
        for state in &states {
            if state.fresh {
                println!("{}  {}", style("fresh").green(), state.stage);
                continue;
            }
            let mut lines: Vec<String> = state.reasons.iter().map(ToString::to_string).collect();
            if state.restorable {
                lines.push("(cached: `run` restores it)".to_string());
            }
            lines.extend(
                state
                    .error
                    .iter()
                    .map(|error| style(error).red().to_string()),
            );
            for (index, line) in lines.iter().enumerate() {
                if index == 0 {
                    println!(
                        "{}  {:<width$}  {line}",
                        style("stale").yellow().bold(),
                        state.stage
                    );
                } else {
                    println!("       {:<width$}  {line}", "");
                }
            }
        }
    }
    Ok(if all_fresh {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
