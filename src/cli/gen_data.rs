//! `warez-pipe gen-data`: the seeded synthetic ratings generator as a command
//! (the same code as the `generate` stage kind, see [`crate::ml::data::generator`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::engine::exec::{exit_on_interrupt, Ui};
use crate::ml::data::generator::{write_csv_file, GeneratorConfig};
use crate::ml::kinds::generate::{DEFAULT_CUSTOMERS, DEFAULT_PRODUCTS, DEFAULT_ROWS, DEFAULT_SEED};

#[derive(Debug, Args)]
pub struct GenDataArgs {
    /// Ratings to write (at least customers and products, at most customers × products).
    #[arg(long, default_value_t = DEFAULT_ROWS)]
    rows: u64,
    /// Distinct customers; each rates at least one product.
    #[arg(long, default_value_t = DEFAULT_CUSTOMERS)]
    customers: u64,
    /// Distinct products; each is rated at least once, popularity is Zipf-skewed.
    #[arg(long, default_value_t = DEFAULT_PRODUCTS)]
    products: u64,
    /// Seed of the generator: the same arguments always write the same bytes.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// The CSV file to write (its folder must exist).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: GenDataArgs) -> Result<ExitCode> {
    super::out_path::check("--out", &args.out)?;
    let config = GeneratorConfig {
        rows: args.rows,
        customers: args.customers,
        products: args.products,
        seed: args.seed,
    };
    // A bar on a terminal, plain progress lines elsewhere, as a stage of a run shows.
    let ui = Ui::detect();
    let progress = ui.stage("gen-data");
    exit_on_interrupt(|| write_csv_file(&config, &args.out, &progress))?;
    drop(progress);
    errln!(
        "wrote {} ratings ({} customers, {} products, seed {}) to {}",
        config.rows,
        config.customers,
        config.products,
        config.seed,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
