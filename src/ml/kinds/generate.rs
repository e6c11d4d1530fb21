//! The `generate` stage kind: a synthetic ratings CSV from the seeded generator
//! ([`crate::ml::data::generator`]), so the runner caches generated data like any other artifact.

use anyhow::Result;

use crate::engine::kind::{OutputRole, ParamSpec, Params, StageContext, StageKind};
use crate::ml::data::generator::{write_csv_file, GeneratorConfig};

/// Defaults: the large variant (the small one is committed under `data/`).
pub const DEFAULT_ROWS: u64 = 1_000_000;
pub const DEFAULT_CUSTOMERS: u64 = 100_000;
pub const DEFAULT_PRODUCTS: u64 = 2_000;
pub const DEFAULT_SEED: u64 = 42;

pub struct Generate;

impl StageKind for Generate {
    fn name(&self) -> &'static str {
        "generate"
    }

    fn version(&self) -> u32 {
        1
    }

    fn inputs(&self) -> &'static [&'static str] {
        &[]
    }

    fn outputs(&self) -> &'static [OutputRole] {
        &[OutputRole {
            role: "ratings",
            default_name: "ratings.csv",
        }]
    }

    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::new("rows", DEFAULT_ROWS, "ratings to write"),
            ParamSpec::new(
                "customers",
                DEFAULT_CUSTOMERS,
                "distinct customers (each rates ≥ 1 product)",
            ),
            ParamSpec::new(
                "products",
                DEFAULT_PRODUCTS,
                "distinct products (each rated ≥ once)",
            ),
            ParamSpec::new(
                "seed",
                DEFAULT_SEED,
                "seed of the generator: same params, same bytes",
            ),
        ]
    }

    fn check_params(&self, params: &Params) -> Result<()> {
        config(params)?.check()
    }

    fn run(&self, ctx: &StageContext) -> Result<()> {
        write_csv_file(&config(ctx.params)?, ctx.output("ratings")?, ctx.progress)
    }
}

fn config(params: &Params) -> Result<GeneratorConfig> {
    Ok(GeneratorConfig {
        rows: params.u64("rows")?,
        customers: params.u64("customers")?,
        products: params.u64("products")?,
        seed: params.u64("seed")?,
    })
}
