//! `warez-pipe dag` (being written).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct DagArgs {}

pub fn run(_args: DagArgs) -> Result<ExitCode> {
    bail!("not written yet")
}
