//! `warez-pipe gc` (being written).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct GcArgs {}

pub fn run(_args: GcArgs) -> Result<ExitCode> {
    bail!("not written yet")
}
