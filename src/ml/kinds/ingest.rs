//! The `ingest` stage kind: ratings CSV → the binary ratings artifact plus the customer and
//! product id maps (see [`crate::ml::data::reader`]).
//!
//! The maps are outputs of their own, so their bytes (and the cache keys of stages that read
//! only the maps) stay the same when only ratings change.

use std::time::Instant;

use anyhow::{Context, Result};

use crate::engine::kind::{OutputRole, ParamSpec, Params, StageContext, StageKind};
use crate::ml::data::reader::{read_ratings_file, OnBadRows};

pub struct Ingest;

impl StageKind for Ingest {
    fn name(&self) -> &'static str {
        "ingest"
    }

    fn version(&self) -> u32 {
        1
    }

    fn inputs(&self) -> &'static [&'static str] {
        &["ratings"]
    }

    fn outputs(&self) -> &'static [OutputRole] {
        &[
            OutputRole {
                role: "ratings",
                default_name: "ratings.bin",
            },
            OutputRole {
                role: "customer_map",
                default_name: "customer_map.txt",
            },
            OutputRole {
                role: "product_map",
                default_name: "product_map.txt",
            },
        ]
    }

    fn params(&self) -> Vec<ParamSpec> {
        vec![ParamSpec::new(
            "on_bad_rows",
            "error",
            "what a malformed row does: `error` stops with file:line, `skip` reports and counts it",
        )]
    }

    fn check_params(&self, params: &Params) -> Result<()> {
        on_bad_rows(params).map(|_| ())
    }

    fn run(&self, ctx: &StageContext) -> Result<()> {
        let policy = on_bad_rows(ctx.params)?;
        let input = ctx.input("ratings")?;
        let started = Instant::now();
        let ingested = read_ratings_file(input, policy, ctx.progress)?;
        let seconds = started.elapsed().as_secs_f64();
        if ingested.skipped > 0 {
            let rows = if ingested.skipped == 1 { "row" } else { "rows" };
            ctx.progress.println(&format!(
                "skipped {} bad {rows} of {}",
                ingested.skipped,
                input.display()
            ));
        }
        let megabytes = std::fs::metadata(input).map_or(0, |meta| meta.len()) as f64 / 1e6;
        ctx.progress.println(&format!(
            "{} ratings, {} customers, {} products ({megabytes:.1} MB of CSV read in {seconds:.2} s)",
            ingested.ratings.len(),
            ingested.customers.len(),
            ingested.products.len()
        ));
        ingested.ratings.write(ctx.output("ratings")?)?;
        ingested.customers.write(ctx.output("customer_map")?)?;
        ingested.products.write(ctx.output("product_map")?)?;
        Ok(())
    }
}

fn on_bad_rows(params: &Params) -> Result<OnBadRows> {
    params
        .str("on_bad_rows")?
        .parse()
        .context("param `on_bad_rows`")
}
