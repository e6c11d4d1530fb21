//! `warez-pipe gen-data`: the seeded synthetic ratings generator as a command
//! (the same code as the `generate` stage kind, see [`crate::ml::data::generator`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::kind::Progress;
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
    /// The CSV file to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: GenDataArgs) -> Result<ExitCode> {
    let config = GeneratorConfig {
        rows: args.rows,
        customers: args.customers,
        products: args.products,
        seed: args.seed,
    };
    let progress = BarProgress::new();
    write_csv_file(&config, &args.out, &progress)?;
    progress.bar.finish_and_clear();
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

/// A progress bar on stderr; indicatif hides it when stderr is not a terminal.
struct BarProgress {
    bar: ProgressBar,
}

impl BarProgress {
    fn new() -> Self {
        Self {
            bar: ProgressBar::new(0),
        }
    }
}

impl Progress for BarProgress {
    fn start(&self, total: u64, unit: &str) {
        self.bar.set_length(total);
        if let Ok(style) = ProgressStyle::with_template(&format!(
            "{{bar:40}} {{human_pos}}/{{human_len}} {unit} {{msg}} [{{elapsed}}<{{eta}}]"
        )) {
            self.bar.set_style(style);
        }
    }

    fn set_position(&self, done: u64) {
        self.bar.set_position(done);
    }

    fn set_message(&self, message: &str) {
        self.bar.set_message(message.to_string());
    }

    fn println(&self, line: &str) {
        // indicatif drops lines printed through a hidden bar.
        if self.bar.is_hidden() {
            errln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}
