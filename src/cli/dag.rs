//! `warez-pipe dag`: the stage graph as text, Graphviz dot or Mermaid.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};

use super::pipeline_args::{or_exit, PipelineArgs};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// One line per stage in run order: `stage <- what it needs`.
    Text,
    Dot,
    Mermaid,
}

#[derive(Debug, Args)]
pub struct DagArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

pub fn run(args: DagArgs) -> Result<ExitCode> {
    let loaded = or_exit!(args.pipeline.load());
    let text = match args.format {
        Format::Text => loaded.dag.to_text(&loaded.pipeline),
        Format::Dot => loaded.dag.to_dot(&loaded.pipeline),
        Format::Mermaid => loaded.dag.to_mermaid(&loaded.pipeline),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
