//! Times the `ingest` stage kind on one CSV file, for `bench/ingest.sh`: the whole stage as the
//! runner calls it (read + validate + id maps + write `ratings.bin` and both maps), into a
//! temporary folder.
//!
//! `cargo run --release --example ingest_bench -- FILE` prints one JSON line: rows, customers,
//! products, the file size, wall and CPU (user + system) seconds of the stage, and the process's
//! peak resident memory (VmHWM).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use warez_pipe::engine::kind::{NoProgress, Params, StageContext};
use warez_pipe::ml::data::dataset::Ratings;

fn main() -> Result<()> {
    let Some(input) = std::env::args_os().nth(1).map(PathBuf::from) else {
        bail!("usage: ingest_bench FILE");
    };
    let file_bytes = std::fs::metadata(&input)
        .with_context(|| format!("reading {}", input.display()))?
        .len();
    let kind = warez_pipe::ml::registry()
        .find("ingest")
        .context("the ingest kind is not registered")?;
    let work = tempfile::tempdir()?;
    let outputs: BTreeMap<String, PathBuf> = kind
        .outputs()
        .iter()
        .map(|output| {
            (
                output.role.to_string(),
                work.path().join(output.default_name),
            )
        })
        .collect();
    let mut params = Params::default();
    params.insert("on_bad_rows", "error".into());
    let ctx = StageContext {
        stage: "ingest",
        project_dir: work.path(),
        params: &params,
        inputs: BTreeMap::from([("ratings".to_string(), input.clone())]),
        outputs: outputs.clone(),
        tools_dir: work.path().join("tools"),
        progress: &NoProgress,
    };

    let cpu_start = cpu_seconds();
    let start = Instant::now();
    kind.run(&ctx)?;
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = cpu_seconds() - cpu_start;
    let peak_rss_bytes = peak_rss_bytes()?;

    let ratings = Ratings::read(&outputs["ratings"])?;
    println!(
        "{{\"rows\": {}, \"customers\": {}, \"products\": {}, \"file_bytes\": {file_bytes}, \
         \"seconds\": {seconds:.4}, \"cpu_seconds\": {cpu_seconds:.4}, \
         \"peak_rss_bytes\": {peak_rss_bytes}}}",
        ratings.len(),
        ratings.n_customers,
        ratings.n_products,
    );
    Ok(())
}

/// User + system CPU time of this process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The peak resident set size of this process so far, from `VmHWM` in /proc/self/status.
fn peak_rss_bytes() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let Some(line) = status.lines().find(|line| line.starts_with("VmHWM:")) else {
        bail!("/proc/self/status has no VmHWM line");
    };
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("parsing VmHWM")?;
    Ok(kib * 1024)
}
