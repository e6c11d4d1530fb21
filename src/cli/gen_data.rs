//! `warez-pipe gen-data` (being written).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct GenDataArgs {}

pub fn run(_args: GenDataArgs) -> Result<ExitCode> {
    bail!("not written yet")
}
