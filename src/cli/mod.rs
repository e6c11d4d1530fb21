//! The command line: clap definitions, one file per command. Commands only wire the engines
//! together; the work happens in `spec`, `dag`, `exec`, `stages`, `data` and `model`.

mod cache_arg;
mod clean;
mod dag;
mod explain;
mod gc;
mod gen_data;
mod inspect;
mod metrics;
mod model_dir;
mod out_path;
mod pipeline_args;
mod predict;
mod pull;
mod push;
mod remote_args;
mod report;
mod run;
mod status;
mod sweep;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Leaves `value` to the end of the process instead of freeing it: for the large, plain data a
/// command holds until it returns (the loaded pipeline, the lock file, the stat cache, the
/// states and reports). The command returns to `main`, which exits; the kernel then takes the
/// whole heap back at once, whereas freeing the millions of allocations of a 100,000-stage
/// pipeline one by one (glibc's `_int_free` and `malloc_consolidate` walking them, a cache miss
/// each) cost a share of `status` that grew faster than the stage count. Never for a value
/// whose drop does something besides freeing memory (releases a lock, removes a file, flushes
/// output).
pub(crate) fn leave_to_exit<T>(value: T) {
    std::mem::forget(value);
}

#[derive(Debug, Parser)]
#[command(
    name = "warez-pipe",
    version,
    about = "A build system for machine-learning artifacts: \
YAML stages, content-hashed caching, incremental reruns."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the pipeline: rerun only the stages whose inputs or params changed.
    Run(run::RunArgs),
    /// Show each stage as fresh or stale, and why.
    Status(status::StatusArgs),
    /// Upload the lock file's run records and their objects to the remote cache.
    Push(push::PushArgs),
    /// Restore the lock file's outputs from the local cache or the remote, running nothing.
    Pull(pull::PullArgs),
    /// Print the stage graph (text, dot or mermaid).
    Dag(dag::DagArgs),
    /// Explain exactly what changed for one stage since its recorded run.
    Explain(explain::ExplainArgs),
    /// Remove cache objects no run record or lock file keeps.
    Gc(gc::GcArgs),
    /// Remove the pipeline's declared outputs (never anything else).
    Clean(clean::CleanArgs),
    /// Write a synthetic ratings CSV from a seeded generator.
    GenData(gen_data::GenDataArgs),
    /// Score (customer, product) pairs with a trained model.
    Predict(predict::PredictArgs),
    /// Show a trained model's metrics and the change since the previous run.
    Metrics(metrics::MetricsArgs),
    /// Read a RecommenderModel Avro file (with or without embedded schema) and summarise it.
    Inspect(inspect::InspectArgs),
    /// Write one self-contained HTML page: stage results, loss curves, the variants compared,
    /// the model selected and packaged.
    Report(report::ReportArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Status(args) => status::run(args),
        Command::Push(args) => push::run(args),
        Command::Pull(args) => pull::run(args),
        Command::Dag(args) => dag::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Gc(args) => gc::run(args),
        Command::Clean(args) => clean::run(args),
        Command::GenData(args) => gen_data::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Metrics(args) => metrics::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Report(args) => report::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            errln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
