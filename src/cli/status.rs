//! `warez-pipe status` (being written).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct StatusArgs {}

pub fn run(_args: StatusArgs) -> Result<ExitCode> {
    bail!("not written yet")
}
