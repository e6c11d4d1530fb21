//! `warez-pipe predict` (being written).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct PredictArgs {}

pub fn run(_args: PredictArgs) -> Result<ExitCode> {
    bail!("not written yet")
}
