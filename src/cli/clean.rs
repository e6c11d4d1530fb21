//! `warez-pipe clean` (being written).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct CleanArgs {}

pub fn run(_args: CleanArgs) -> Result<ExitCode> {
    bail!("not written yet")
}
