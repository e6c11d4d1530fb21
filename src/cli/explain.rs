//! `warez-pipe explain` (being written).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct ExplainArgs {}

pub fn run(_args: ExplainArgs) -> Result<ExitCode> {
    bail!("not written yet")
}
