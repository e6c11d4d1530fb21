//! `warez-pipe inspect` (being written).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct InspectArgs {}

pub fn run(_args: InspectArgs) -> Result<ExitCode> {
    bail!("not written yet")
}
