//! `warez-pipe metrics` (being written).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct MetricsArgs {}

pub fn run(_args: MetricsArgs) -> Result<ExitCode> {
    bail!("not written yet")
}
