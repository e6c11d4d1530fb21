//! `warez-pipe dag`: the stage graph as text, Graphviz dot or Mermaid; a matrix stage's variants
//! are one node (`train ×6 variants`) unless `--variants` asks for every one.

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
    /// Show every variant of a matrix stage as a node of its own (default: one node per
    /// matrix stage, `train ×6 variants`).
    #[arg(long)]
    pub variants: bool,
}

pub fn run(args: DagArgs) -> Result<ExitCode> {
    let loaded = or_exit!(args.pipeline.load_without_lock());
    let (dag, pipeline) = (&loaded.dag, &loaded.pipeline);
    let text = if args.variants {
        match args.format {
            Format::Text => dag.to_text(pipeline),
            Format::Dot => dag.to_dot(pipeline),
            Format::Mermaid => dag.to_mermaid(pipeline),
        }
    } else {
        let grouped = dag.grouped(pipeline);
        match args.format {
            Format::Text => grouped.to_text(),
            Format::Dot => grouped.to_dot(pipeline),
            Format::Mermaid => grouped.to_mermaid(),
        }
    };
    out!("{text}");
    Ok(ExitCode::SUCCESS)
}
