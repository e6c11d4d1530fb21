//! `warez-pipe run` (being written).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct RunArgs {}

pub fn run(_args: RunArgs) -> Result<ExitCode> {
    bail!("not written yet")
}
