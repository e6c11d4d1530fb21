//! `warez-pipe status`: each stage fresh or stale, and why. Exit 0 only when all are fresh.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use console::style;

use super::pipeline_args::{or_exit, PipelineArgs};
use super::remote_args::RemoteArgs;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when every stage is fresh, 1 when one is stale, \
2 when the pipeline is rejected."
)]
pub struct StatusArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Only this stage and the stages it needs (repeatable).
    #[arg(long = "stage", value_name = "NAME")]
    pub stages: Vec<String>,
    /// Print the status as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: StatusArgs) -> Result<ExitCode> {
    let loaded = or_exit!(args.pipeline.load());
    let selected = or_exit!(loaded.select(&args.stages));
    let remote = args.remote.open(&loaded.pipeline)?;
    let (lock, states) = loaded.assess(&selected, remote.as_ref())?;
    super::leave_to_exit(lock);
    let all_fresh = states.iter().all(|state| state.fresh);
    if args.json {
        outln!(
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
                outln!("{}  {}", style("fresh").green(), state.stage);
                continue;
            }
            let mut lines: Vec<String> = state.reasons.iter().map(ToString::to_string).collect();
            if state.restorable {
                lines.push("(cached: `run` restores it)".to_string());
            } else if state.restorable_from_remote {
                lines.push("(in the remote: `run` or `pull` restores it)".to_string());
            }
            lines.extend(
                state
                    .error
                    .iter()
                    .map(|error| style(error).red().to_string()),
            );
            for (index, line) in lines.iter().enumerate() {
                if index == 0 {
                    outln!(
                        "{}  {:<width$}  {line}",
                        style("stale").yellow().bold(),
                        state.stage
                    );
                } else {
                    outln!("       {:<width$}  {line}", "");
                }
            }
        }
    }
    super::leave_to_exit((states, loaded));
    Ok(if all_fresh {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
