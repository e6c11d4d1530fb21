//! `warez-pipe predict`: scores (customer, product) pairs with a trained model's eval graph
//! (`eval_model.onnx`) in ONNX Runtime, mapping UUIDs through `customer_map.txt` and
//! `product_map.txt` — the notebook's `model.rate`.
//!
//! One pair: `--customer ID --product ID` prints the score. Many: `--input pairs.csv --output
//! scores.csv` reads a CSV with a header holding `customerId` and `productId` (other columns are
//! carried along) and writes the same columns plus `score`, scoring in batches.
//!
//! Bad rows do not stop a CSV run: every good pair is scored and written (in input order), every
//! bad row (unknown customer and/or product id, malformed row) is reported on stderr as
//! `FILE:LINE: …`, and the command exits non-zero if any row failed. The output therefore holds
//! only scored rows — its columns never depend on whether something failed — and the report
//! names each failure exactly. The output file appears atomically (temp file + rename, keeping
//! an existing output's mode); an output that is the input file itself (any spelling, a
//! symlink or a hard link to it) is refused before anything is read. Ids from the CSV or the
//! command line are shown with control characters escaped.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;

use super::cache_arg::CacheArg;
use super::model_dir::{self, ModelLocation};
use crate::engine::exec::exit_on_interrupt;
use crate::engine::files::{self, TempFile};
use crate::ml::data::idmap::IdMap;
use crate::ml::data::shown::escape_controls;
use crate::ml::model::runtime::{self, EvalSession};

const CUSTOMER_COLUMN: &str = "customerId";
const PRODUCT_COLUMN: &str = "productId";
/// Pairs per ONNX Runtime call: large enough that per-call overhead vanishes, small enough that
/// a huge CSV streams through bounded memory.
const BATCH_ROWS: usize = 8192;

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Pipeline whose `model_path` holds the model [default: pipelines/recommender.yaml]
    #[arg(long)]
    pipeline: Option<PathBuf>,
    /// Folder with eval_model.onnx, customer_map.txt, product_map.txt [default: the pipeline's
    /// model_path]
    #[arg(long)]
    model_dir: Option<PathBuf>,
    #[command(flatten)]
    cache: CacheArg,
    /// Customer id (as in the ratings file)
    #[arg(long, requires = "product", conflicts_with = "input")]
    customer: Option<String>,
    /// Product id (as in the ratings file)
    #[arg(long, requires = "customer", conflicts_with = "input")]
    product: Option<String>,
    /// CSV of pairs with columns customerId and productId
    #[arg(long, requires = "output", required_unless_present = "customer")]
    input: Option<PathBuf>,
    /// Where to write the input's columns plus `score` (its folder must exist)
    #[arg(long, requires = "input")]
    output: Option<PathBuf>,
}

pub fn run(args: PredictArgs) -> Result<ExitCode> {
    if let (Some(input), Some(output)) = (&args.input, &args.output) {
        if same_file(input, output) {
            errln!(
                "error: --output {} is the file --input {} names: writing the scores would \
                 replace the pairs being read; give another output file",
                output.display(),
                input.display()
            );
            // A usage error, as clap's own.
            return Ok(ExitCode::from(2));
        }
        super::out_path::check("--output", output)?;
    }
    let location = model_dir::locate(
        args.pipeline.as_deref(),
        args.model_dir.as_deref(),
        args.cache.dir(),
    )?;
    let mut model = Model::open(&location)?;
    match (&args.customer, &args.product, &args.input, &args.output) {
        (Some(customer), Some(product), None, None) => {
            let pair = model
                .lookup(customer, product)
                .map_err(|error| anyhow!(error))?;
            let score = model.score(&[pair.0], &[pair.1])?[0];
            outln!("{score}");
            Ok(ExitCode::SUCCESS)
        }
        (None, None, Some(input), Some(output)) => {
            exit_on_interrupt(|| score_csv(&mut model, input, output))
        }
        _ => bail!("give --customer and --product, or --input and --output"),
    }
}

/// Whether both paths name one existing file, however spelled or linked (symlink, hard link):
/// the same device and inode.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The eval graph and the id maps of one model folder.
struct Model {
    eval: EvalSession,
    eval_model: PathBuf,
    customers: IdMap,
    products: IdMap,
    customer_map: PathBuf,
    product_map: PathBuf,
}

impl Model {
    fn open(location: &ModelLocation) -> Result<Self> {
        let dir = &location.model_dir;
        let customer_map = dir.join("customer_map.txt");
        let product_map = dir.join("product_map.txt");
        let customers = IdMap::read(&customer_map).context("reading the model's customer map")?;
        let products = IdMap::read(&product_map).context("reading the model's product map")?;
        let tools_dir = location.cache_dir.as_ref().map(|cache| cache.join("tools"));
        runtime::ensure_onnxruntime(tools_dir.as_deref())?;
        let eval_model = dir.join("eval_model.onnx");
        let eval = EvalSession::from_file(&eval_model)?;
        Ok(Self {
            eval,
            eval_model,
            customers,
            products,
            customer_map,
            product_map,
        })
    }

    /// The model's scores for mapped ids. An id the maps know but the model's embeddings lack
    /// means the maps and the model come from different runs; the error names all three files.
    fn score(&mut self, customers: &[u32], products: &[u32]) -> Result<Vec<f32>> {
        self.eval.score(customers, products).with_context(|| {
            format!(
                "scoring with {} ({} customers in {}, {} products in {}: do they come from the \
                 run that made the model?)",
                self.eval_model.display(),
                self.customers.len(),
                self.customer_map.display(),
                self.products.len(),
                self.product_map.display()
            )
        })
    }

    /// The pair's mapped ids, or a message naming every unknown id.
    fn lookup(&self, customer: &str, product: &str) -> Result<(u32, u32), String> {
        let customer_index = self.customers.get(customer);
        let product_index = self.products.get(product);
        match (customer_index, product_index) {
            (Some(c), Some(p)) => Ok((c, p)),
            _ => {
                let mut unknown = Vec::new();
                if customer_index.is_none() {
                    unknown.push(format!(
                        "unknown customer `{}` (not in {})",
                        escape_controls(customer),
                        self.customer_map.display()
                    ));
                }
                if product_index.is_none() {
                    unknown.push(format!(
                        "unknown product `{}` (not in {})",
                        escape_controls(product),
                        self.product_map.display()
                    ));
                }
                Err(unknown.join("; "))
            }
        }
    }
}

/// Good rows waiting to be scored, with their mapped ids.
#[derive(Default)]
struct Batch {
    records: Vec<csv::StringRecord>,
    customers: Vec<u32>,
    products: Vec<u32>,
}

impl Batch {
    fn flush(&mut self, model: &mut Model, writer: &mut csv::Writer<TempFile>) -> Result<()> {
        if self.records.is_empty() {
            return Ok(());
        }
        let scores = model.score(&self.customers, &self.products)?;
        for (record, score) in self.records.iter_mut().zip(scores) {
            record.push_field(&score.to_string());
            writer.write_record(&*record)?;
        }
        self.records.clear();
        self.customers.clear();
        self.products.clear();
        Ok(())
    }
}

fn score_csv(model: &mut Model, input: &Path, output: &Path) -> Result<ExitCode> {
    let mut reader =
        csv::Reader::from_path(input).with_context(|| format!("opening {}", input.display()))?;
    let mut header = reader
        .headers()
        .with_context(|| format!("{}: reading the header", input.display()))?
        .clone();
    let column = |name: &str| {
        header.iter().position(|field| field == name).ok_or_else(|| {
            anyhow!(
                "{}:1: no `{name}` column (the header needs {CUSTOMER_COLUMN} and {PRODUCT_COLUMN})",
                input.display()
            )
        })
    };
    let (customer_column, product_column) = (column(CUSTOMER_COLUMN)?, column(PRODUCT_COLUMN)?);

    let staging =
        files::temp_file_for(output).with_context(|| format!("writing {}", output.display()))?;
    let mut writer = csv::Writer::from_writer(staging);
    header.push_field("score");
    writer.write_record(&header)?;

    let (mut scored, mut failed) = (0usize, 0usize);
    let mut batch = Batch::default();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map_or(0, |position| position.line());
                let message = match error.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!("{len} fields where the header has {expected_len}"),
                    _ => error.to_string(),
                };
                errln!("{}:{line}: {message}", input.display());
                failed += 1;
                continue;
            }
        };
        let line = record.position().map_or(0, |position| position.line());
        let ids = (record.get(customer_column), record.get(product_column));
        let (Some(customer), Some(product)) = ids else {
            unreachable!("the csv reader checks every row has the header's field count")
        };
        match model.lookup(customer, product) {
            Ok((c, p)) => {
                batch.records.push(record);
                batch.customers.push(c);
                batch.products.push(p);
                scored += 1;
            }
            Err(message) => {
                errln!("{}:{line}: {message}", input.display());
                failed += 1;
            }
        }
        if batch.records.len() == BATCH_ROWS {
            batch.flush(model, &mut writer)?;
        }
    }
    batch.flush(model, &mut writer)?;
    let mut staging = writer
        .into_inner()
        .map_err(|error| anyhow!("writing {}: {}", output.display(), error.error()))?;
    staging.flush()?;
    staging
        .persist(output)
        .with_context(|| format!("writing {}", output.display()))?;

    if failed > 0 {
        errln!(
            "error: {failed} of {} pairs in {} failed (listed above); {scored} scored pairs are in {}",
            failed + scored,
            input.display(),
            output.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    errln!("scored {scored} pairs into {}", output.display());
    Ok(ExitCode::SUCCESS)
}
