//! Times `ingest` (CSV → ratings + id maps, in memory) on one file, for `bench/ingest.sh`.
//!
//! `cargo run --release --example ingest_bench -- FILE` prints one JSON line: rows, customers,
//! products, the file size, seconds, and the process's peak resident memory (VmHWM).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use warez_pipe::data::reader::{read_ratings_file, OnBadRows};
use warez_pipe::stages::NoProgress;

fn main() -> Result<()> {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        bail!("usage: ingest_bench FILE");
    };
    let bytes = std::fs::metadata(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let start = Instant::now();
    let ingested = read_ratings_file(&path, OnBadRows::Error, &NoProgress)?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"rows\": {}, \"customers\": {}, \"products\": {}, \"file_bytes\": {bytes}, \"seconds\": {seconds:.4}, \"peak_rss_bytes\": {}}}",
        ingested.ratings.len(),
        ingested.customers.len(),
        ingested.products.len(),
        peak_rss_bytes()?
    );
    Ok(())
}

/// The peak resident set size of this process, from `VmHWM` in /proc/self/status.
fn peak_rss_bytes() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let Some(line) = status.lines().find(|line| line.starts_with("VmHWM:")) else {
        bail!("/proc/self/status has no VmHWM line");
    };
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("parsing VmHWM")?;
    Ok(kib * 1024)
}
