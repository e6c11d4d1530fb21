//! The training loop: Keras' `model.fit` for the recommender, with every step's arithmetic in
//! ONNX Runtime sessions over the generated [`graphs`](super::graphs).
//!
//! Rust owns the state and moves O(batch) data per step:
//! - the embedding tables with their Adam moments (a row's values and moments side by side, see
//!   `Table`) and, per row, the step it was last brought up to date; a step copies out the
//!   values of the batch's distinct rows (the training graph's input);
//! - the dense parameters and their moments as flat buffers (`dense_1/kernel`, `dense_1/bias`,
//!   `dense_2/kernel`, `dense_2/bias`, in that order), fed to the training graph as views.
//!
//! A step is one run of the training graph ([`training`], the `training_model.onnx` the stage
//! writes: loss and gradients), then the optimizer graph's update ([`optimizer`], the
//! `optimizer_model.onnx` it writes) applied by the trainer in place: Adam on the batch's rows in
//! their tables and on the dense buffers ([`optimizer::adam_step`]), and the catch-up of the next
//! batch's other rows on the steps they sat out ([`optimizer::catch_up_row`]; at the end of an
//! epoch, of every row). Those two functions are the graph's float32 operations in the graph's
//! order, so they give its bits (tests/train_graphs.rs checks them against the graph); in ONNX
//! Runtime the update was one pass over the step's values per node (27 nodes, about half of a
//! step's run, BENCHMARKS.md), here it is one pass, on the rows where they lie. Every row a
//! forward pass reads is therefore current, and after every epoch every row is caught up, so the
//! gradients and the evaluated, exported and checkpointed weights are those of Keras' dense Adam.
//! The dropout masks are drawn ahead on a second thread (module `dropout`), off the step's path.
//!
//! After every epoch the validation rows are scored from the tables themselves (their rows
//! gathered for [`eval::scorer`], so ONNX Runtime holds no copy of the tables); after the last,
//! the eval graph and the checkpoint are streamed from the tables on a second thread meanwhile.
//!
//! Keras semantics: the validation rows are the last `val_split` of the data (not shuffled,
//! `floor(rows·(1 − val_split))` rows train); training rows are reshuffled every epoch; batches
//! of `batch_size` with a smaller last one; initial embeddings U(−0.05, 0.05), Dense kernels
//! Glorot-uniform, biases 0; dropout keeps a unit with probability 1 − rate and scales it by
//! 1/(1 − rate). Every random draw comes from ChaCha8 seeded with `seed` (stream 0: initial
//! weights, 1: shuffling, 2: dropout masks), so a seed fixes the result bit for bit.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use ort::session::Session;
use ort::value::TensorRef;
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod dropout;
pub mod limits;
mod shuffle;
mod subnormals;

use dropout::{MaskStream, Schedule};

use super::checkpoint::{self, AdamView};
use super::graphs::optimizer::{self, AdamConfig, CatchUp};
use super::graphs::{eval, training};
use super::metrics::{self, EpochLoss, TrainingMetrics};
use super::onnx_proto::ModelProto;
use super::params::{
    FloatsView, ModelParams, ParamsView, DENSE_1_BIAS, DENSE_1_KERNEL, DENSE_2_BIAS,
    DENSE_2_KERNEL, OUTPUT,
};
use super::runtime;
use crate::engine::kind::Progress;
use crate::ml::data::dataset::Ratings;
use crate::ml::data::memory::{prefetch, prefetch_at, try_filled_huge, try_vec_huge};
use crate::ml::data::try_vec;

/// What `fit` is asked to do (the train stage's params).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub n_factors: usize,
    pub dropout: f32,
    pub batch_size: usize,
    pub epochs: usize,
    pub val_split: f64,
    pub adam: AdamConfig,
    pub seed: u64,
}

impl Default for TrainConfig {
    /// The seed notebook's settings.
    fn default() -> Self {
        Self {
            n_factors: 50,
            dropout: 0.2,
            batch_size: 64,
            epochs: 1,
            val_split: 0.25,
            adam: AdamConfig::default(),
            seed: 42,
        }
    }
}

impl TrainConfig {
    /// Checks the settings, naming the param at fault.
    pub fn check(&self) -> Result<()> {
        ensure!(self.n_factors > 0, "param `n_factors` must be at least 1");
        ensure!(self.batch_size > 0, "param `batch_size` must be at least 1");
        ensure!(self.epochs > 0, "param `epochs` must be at least 1");
        ensure!(
            self.val_split > 0.0 && self.val_split < 1.0,
            "param `val_split` must be strictly between 0 and 1, found {}",
            self.val_split
        );
        ensure!(
            (0.0..1.0).contains(&self.dropout),
            "param `dropout` must be in [0, 1), found {}",
            self.dropout
        );
        ensure!(
            self.adam.learning_rate.is_finite() && self.adam.learning_rate > 0.0,
            "param `learning_rate` must be a positive number, found {}",
            self.adam.learning_rate
        );
        Ok(())
    }
}

/// Where the trainer writes its ONNX artifacts.
#[derive(Debug, Clone, Copy)]
pub struct ArtifactPaths<'a> {
    pub training_model: &'a Path,
    pub optimizer_model: &'a Path,
    pub eval_model: &'a Path,
    pub checkpoint: &'a Path,
    /// The checkpoint's external data, beside it (see [`checkpoint`]).
    pub checkpoint_data: &'a Path,
}

/// The trained model and what training measured (Adam's state is in the checkpoint).
#[derive(Debug, Clone)]
pub struct Trained {
    pub params: ModelParams,
    pub metrics: TrainingMetrics,
}

/// Keras' `validation_split`: how many leading rows train (the rest validate).
pub fn training_rows(rows: usize, val_split: f64) -> Result<usize> {
    let split_at = (rows as f64 * (1.0 - val_split)).floor() as usize;
    if split_at == 0 || split_at >= rows {
        bail!(
            "{rows} ratings are too few to split with val_split = {val_split}: \
             {split_at} would train and {} validate",
            rows - split_at.min(rows)
        );
    }
    Ok(split_at)
}

/// Keras' mean squared logarithmic error of `predictions` against `targets`.
pub fn msle(predictions: &[f32], targets: &[f32]) -> f64 {
    let log1p_clipped = |value: f32| f64::from((value.max(training::MSLE_EPSILON) + 1.0).ln());
    let total: f64 = predictions
        .iter()
        .zip(targets)
        .map(|(&prediction, &target)| (log1p_clipped(prediction) - log1p_clipped(target)).powi(2))
        .sum();
    total / predictions.len() as f64
}

/// Keras' initial weights: embeddings U(−0.05, 0.05), kernels Glorot-uniform, biases zero.
/// Sizes past memory (or past `usize`) are an error, not an abort.
pub fn initial_params(
    n_customers: usize,
    n_products: usize,
    k: usize,
    seed: u64,
) -> Result<ModelParams> {
    let mut draws = InitialDraws::new(seed);
    let mut embedding = |rows: usize| -> Result<Vec<f32>> {
        let count = table_len(rows, k)?;
        let mut values = try_vec(count)?;
        values.extend((0..count).map(|_| draws.embedding()));
        Ok(values)
    };
    let customer_embedding = embedding(n_customers)?;
    let product_embedding = embedding(n_products)?;
    let [dense_1_kernel, dense_1_bias, dense_2_kernel, dense_2_bias] = draws.dense(k);
    Ok(ModelParams {
        n_customers,
        n_products,
        n_factors: k,
        customer_embedding,
        product_embedding,
        dense_1_kernel,
        dense_1_bias,
        dense_2_kernel,
        dense_2_bias,
    })
}

/// The values of a `rows` × `k` table; an error past `usize`.
fn table_len(rows: usize, k: usize) -> Result<usize> {
    rows.checked_mul(k)
        .with_context(|| format!("a {rows} × {k} weight matrix is too large"))
}

/// The initial weights' random draws, in the one order that fixes them: the customer table, the
/// product table (row by row), then `dense_1/kernel` and `dense_2/kernel`. [`initial_params`]
/// stores them as [`ModelParams`], the trainer straight into its tables' rows.
struct InitialDraws {
    rng: ChaCha8Rng,
}

impl InitialDraws {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(INIT_STREAM);
        Self { rng }
    }

    /// The next embedding value: U(−0.05, 0.05).
    fn embedding(&mut self) -> f32 {
        self.rng.random_range(-0.05..0.05)
    }

    /// The dense layers (drawn after both tables): `dense_1/kernel` `[2k, k]` and `dense_2/kernel`
    /// `[k, 1]` Glorot-uniform, `dense_1/bias` `[k]` and `dense_2/bias` `[1]` zero.
    fn dense(&mut self, k: usize) -> [Vec<f32>; 4] {
        let mut glorot = |fan_in: usize, fan_out: usize| -> Vec<f32> {
            let limit = (6.0 / (fan_in + fan_out) as f32).sqrt();
            (0..fan_in * fan_out)
                .map(|_| self.rng.random_range(-limit..limit))
                .collect()
        };
        let dense_1_kernel = glorot(2 * k, k);
        let dense_2_kernel = glorot(k, 1);
        [dense_1_kernel, vec![0.0; k], dense_2_kernel, vec![0.0]]
    }
}

/// Trains on `ratings`, writing the ONNX artifacts to `paths`; returns the model and metrics.
pub fn fit(
    ratings: &Ratings,
    config: &TrainConfig,
    paths: &ArtifactPaths,
    progress: &dyn Progress,
) -> Result<Trained> {
    config.check()?;
    let train_rows = training_rows(ratings.len(), config.val_split)?;
    limits::check(
        &limits::RunShape::new(&ratings.header(), train_rows as u64, config),
        None,
    )?;
    let k = config.n_factors;
    let n_customers = ratings.n_customers as usize;
    let n_products = ratings.n_products as usize;
    if let Some(bad) = (0..ratings.len()).find(|&row| {
        ratings.customers[row] as usize >= n_customers
            || ratings.products[row] as usize >= n_products
    }) {
        bail!(
            "rating row {bad}: customer {} / product {} out of range ({n_customers} customers, {n_products} products)",
            ratings.customers[bad],
            ratings.products[bad]
        );
    }

    let steps_per_epoch = train_rows.div_ceil(config.batch_size);
    let total_steps = steps_per_epoch * config.epochs;
    let training_graph = training::build(k).encode_to_vec();
    std::fs::write(paths.training_model, &training_graph)
        .with_context(|| format!("writing {}", paths.training_model.display()))?;
    write_model(paths.optimizer_model, &optimizer::build(k, &config.adam))?;
    let mut trainer = Trainer::new(
        (n_customers, n_products, k),
        config.seed,
        runtime::session_from_bytes(&training_graph)?,
        config.adam,
        // At most u32::MAX steps (checked by `limits::check`).
        total_steps as u32,
        MaskStream::start(
            Schedule {
                epochs: config.epochs,
                train_rows,
                batch_size: config.batch_size,
                n_factors: k,
            },
            config.dropout,
            config.seed,
            DROPOUT_STREAM,
        ),
    )?;

    let mut shuffle_rng = ChaCha8Rng::seed_from_u64(config.seed);
    shuffle_rng.set_stream(SHUFFLE_STREAM);
    // Fewer than 2³² rows (checked by `limits::check`).
    // The shuffle swaps entries at random: huge pages spare it a TLB miss per swap.
    let mut order: Vec<u32> = try_vec_huge(train_rows)?;
    order.extend(0..train_rows as u32);
    let mut meter = ProgressMeter::new(progress, (train_rows * config.epochs) as u64);
    let validation = train_rows..ratings.len();
    let mut epochs = Vec::with_capacity(config.epochs);
    let mut predictions = Vec::new();
    for epoch in 1..=config.epochs {
        shuffle::shuffle(&mut order, &mut shuffle_rng);
        let started = Instant::now();
        let (mut loss_sum, mut samples) = (0.0f64, 0usize);
        let batches: Vec<&[u32]> = order.chunks(config.batch_size).collect();
        // Only the steps and the catch-up flush: the sessions were built before (ONNX Runtime
        // sets its own flags once, at the process's first session: see `subnormals`).
        let flushed = subnormals::FlushSubnormals::on_this_thread();
        for (index, batch) in batches.iter().enumerate() {
            let loss = trainer.step(ratings, batch, Upcoming::of(&batches, index))?;
            if !loss.is_finite() {
                bail!(
                    "epoch {epoch}, step {} of {steps_per_epoch}: the training loss is {loss}; \
                     training stopped (a smaller `learning_rate` may help)",
                    index + 1
                );
            }
            loss_sum += f64::from(loss) * batch.len() as f64;
            samples += batch.len();
            if index % 64 == 63 || index + 1 == steps_per_epoch {
                meter.update(
                    ((epoch - 1) * train_rows + samples) as u64,
                    loss_sum / samples as f64,
                );
            }
        }
        trainer.catch_up_all_rows();
        drop(flushed);
        let samples_per_second = samples as f64 / started.elapsed().as_secs_f64();
        let last_epoch = epoch == config.epochs;
        predictions = std::thread::scope(|scope| -> Result<Vec<f32>> {
            // After the last epoch the eval graph and the checkpoint are streamed from the tables
            // on the second core while the validation rows are scored from them.
            let writer = last_epoch.then(|| {
                let (params, adam) = (trainer.params_view(), trainer.adam_view());
                scope.spawn(move || {
                    eval::write(paths.eval_model, params)?;
                    checkpoint::write(paths.checkpoint, paths.checkpoint_data, params, adam)
                })
            });
            let predictions = trainer.score(ratings, validation.clone());
            if let Some(writer) = writer {
                writer.join().expect("the artifact writer panicked")?;
            }
            predictions
        })?;
        if let Some(row) = predictions.iter().position(|value| !value.is_finite()) {
            bail!(
                "epoch {epoch}: the model predicts {} for validation row {}; training stopped \
                 (a smaller `learning_rate` may help)",
                predictions[row],
                train_rows + row
            );
        }
        let loss = EpochLoss {
            epoch: epoch as u32,
            train_msle: loss_sum / samples as f64,
            val_msle: msle(&predictions, &ratings.ratings[validation.clone()]),
        };
        progress.println(&format!(
            "epoch {epoch}/{}: train MSLE {:.6}, validation MSLE {:.6} ({samples_per_second:.0} \
             training samples/s)",
            config.epochs, loss.train_msle, loss.val_msle
        ));
        epochs.push(loss);
    }

    let params = trainer.into_params();
    let targets = &ratings.ratings[validation.clone()];
    let train_mean = ratings.ratings[..train_rows]
        .iter()
        .map(|&rating| f64::from(rating))
        .sum::<f64>()
        / train_rows as f64;
    let metrics = TrainingMetrics {
        epochs,
        validation: metrics::score(&predictions, targets),
        baseline: metrics::score(&vec![train_mean as f32; targets.len()], targets),
        train_rows: train_rows as u64,
        validation_rows: validation.len() as u64,
        n_customers: n_customers as u64,
        n_products: n_products as u64,
    };
    Ok(Trained { params, metrics })
}

fn write_model(path: &Path, model: &ModelProto) -> Result<()> {
    std::fs::write(path, model.encode_to_vec())
        .with_context(|| format!("writing {}", path.display()))
}

/// The training bar: samples done, samples/s and time left in its message (where no bar is
/// drawn, the engine prints the same as a plain line every few seconds).
struct ProgressMeter<'p> {
    progress: &'p dyn Progress,
    total: u64,
    started: Instant,
}

impl<'p> ProgressMeter<'p> {
    fn new(progress: &'p dyn Progress, total_samples: u64) -> Self {
        progress.start(total_samples, "samples");
        Self {
            progress,
            total: total_samples,
            started: Instant::now(),
        }
    }

    fn update(&mut self, done: u64, loss: f64) {
        // The message first: a plain progress line shows it with the position.
        let status = progress_status(done, self.total, self.started.elapsed(), loss);
        self.progress.set_message(&status);
        self.progress.set_position(done);
    }
}

/// "loss 0.00812, 271k samples/s, 3s left" for `done` of `total` samples after `elapsed`.
fn progress_status(done: u64, total: u64, elapsed: std::time::Duration, loss: f64) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
    let left = total.saturating_sub(done) as f64 / rate.max(1e-9);
    let left = if left >= 60.0 {
        format!("{}m{:02}s", (left / 60.0) as u64, left as u64 % 60)
    } else {
        format!("{}s", left.ceil() as u64)
    };
    format!(
        "loss {loss:.5}, {}k samples/s, {left} left",
        (rate / 1000.0).round() as u64
    )
}

/// ChaCha8 streams of the seed: initial weights, shuffling, dropout masks.
const INIT_STREAM: u64 = 0;
const SHUFFLE_STREAM: u64 = 1;
const DROPOUT_STREAM: u64 = 2;

/// Marks a table row that has no place among the current step's rows.
const NO_SLOT: u32 = u32::MAX;
/// Validation pairs per eval-graph run (bounds the run's intermediate tensors).
const EVAL_CHUNK: usize = 1 << 16;
/// How many validation pairs ahead of the one gathered the scorer prefetches rows.
const SCORE_PREFETCH_AHEAD: usize = 16;
/// How many rows ahead the end-of-epoch catch-up prefetches a row's catch-up coefficients.
const CATCH_UP_PREFETCH_AHEAD: usize = 16;

/// One embedding table with its Adam state.
///
/// A step reads and writes a row's values and both its moments together, so they are stored
/// together: row `id` is `rows[3k·id..3k·(id + 1)]`, its `k` values, then its `k` first moments,
/// then its `k` second moments (600 bytes at k = 50: about ten cache lines, all on one or two
/// pages, where three separate arrays put them on three pages). Rows are not padded to cache
/// lines: the padding would add up to 60 bytes a row to the run's largest allocation.
/// `last_step` and `slot` stay in arrays of their own, which are small enough (8 bytes a row) to
/// stay largely in the caches. Every buffer is advised into huge pages.
struct Table {
    rows: Vec<f32>,
    /// The step each row is up to date with (0: never updated).
    last_step: Vec<u32>,
    /// The row's position among the current step's rows, or [`NO_SLOT`].
    slot: Vec<u32>,
}

/// A table row's parts, in their order within the row.
#[derive(Clone, Copy)]
enum Part {
    Values = 0,
    M = 1,
    V = 2,
}

impl Table {
    /// A table of `rows` rows of `k` initial values from `draws`, moments zero.
    fn new(rows: usize, k: usize, draws: &mut InitialDraws) -> Result<Self> {
        let len = table_len(rows, 3 * k)?;
        let mut values = try_vec_huge(len)?;
        for _ in 0..rows {
            values.extend((0..k).map(|_| draws.embedding()));
            values.resize(values.len() + 2 * k, 0.0);
        }
        Ok(Self {
            rows: values,
            last_step: try_filled_huge(rows, 0)?,
            slot: try_filled_huge(rows, NO_SLOT)?,
        })
    }

    /// Where row `id` lies in `rows`.
    fn row_range(id: usize, k: usize) -> std::ops::Range<usize> {
        3 * k * id..3 * k * (id + 1)
    }

    /// Row `id`: values, first moments, second moments.
    fn row(&self, id: usize, k: usize) -> &[f32] {
        &self.rows[Self::row_range(id, k)]
    }

    /// Row `id`'s values.
    fn values(&self, id: usize, k: usize) -> &[f32] {
        &self.row(id, k)[..k]
    }

    /// Row `id`'s values, first moments and second moments, to update in place.
    fn row_mut(&mut self, id: usize, k: usize) -> [&mut [f32]; 3] {
        let (values, moments) = self.rows[Self::row_range(id, k)].split_at_mut(k);
        let (m, v) = moments.split_at_mut(k);
        [values, m, v]
    }

    /// Brings row `id` up to `target.step` in place: the catch-up of the zero-gradient steps it
    /// sat out since its last step.
    fn catch_up_row(&mut self, id: usize, k: usize, target: Target) {
        let coefficients = target
            .catch_up
            .coefficients(self.last_step[id], target.step);
        let [values, m, v] = self.row_mut(id, k);
        optimizer::catch_up_row(target.epsilon, &coefficients, values, [m, v]);
        self.last_step[id] = target.step;
    }

    /// Hints the CPU to load everything a step reads of row `id` (see [`prefetch`]).
    fn prefetch_row(&self, id: usize, k: usize) {
        prefetch(self.row(id, k));
        prefetch(&self.slot[id..=id]);
        prefetch(&self.last_step[id..=id]);
    }

    /// One part of every row, as a `[rows, k]` matrix streamed row by row.
    fn view(&self, k: usize, part: Part) -> FloatsView<'_> {
        FloatsView::strided(&self.rows, k, 3 * k, part as usize * k)
    }

    /// The table's values as a `[rows, k]` matrix, moved to the front of the table's own
    /// allocation, which then shrinks to them (no second copy of the table is ever held).
    fn into_values(self, k: usize) -> Vec<f32> {
        let mut rows = self.rows;
        let count = rows.len() / (3 * k).max(1);
        // Row `id`'s values move from 3k·id to k·id: down, never onto a row not yet moved.
        for id in 1..count {
            rows.copy_within(3 * k * id..3 * k * id + k, k * id);
        }
        rows.truncate(count * k);
        rows.shrink_to_fit();
        rows
    }
}

/// The batches after a step's own that it works ahead on.
#[derive(Clone, Copy, Default)]
struct Upcoming<'a> {
    /// The next batch: its rows are brought up to date by this step's run.
    next: &'a [u32],
    /// The batch after it: its rows are prefetched, for the next step to gather.
    after_next: &'a [u32],
    /// The batch [`RECORDS_AHEAD`] steps ahead: its samples' customer, product and rating
    /// entries are prefetched, for the step that prefetches its rows.
    records: &'a [u32],
}

impl<'a> Upcoming<'a> {
    /// What the step of `batches[index]` works ahead on (empty past the last batch).
    fn of(batches: &[&'a [u32]], index: usize) -> Self {
        let batch = |ahead: usize| batches.get(index + ahead).copied().unwrap_or_default();
        Self {
            next: batch(1),
            after_next: batch(2),
            records: batch(RECORDS_AHEAD),
        }
    }
}

/// How many steps ahead a batch's sample entries (its customer, product and rating in the
/// ratings' columns, hundreds of MB at 100M ratings, read at the shuffled positions) are
/// prefetched: far enough for their misses to be over by the time the step two batches before
/// this one reads them to prefetch the batch's rows.
const RECORDS_AHEAD: usize = 4;

/// Which table a step row came from.
#[derive(Clone, Copy)]
enum Side {
    Customer = 0,
    Product = 1,
}

/// The dense parameters and their moments as flat vectors.
struct Dense {
    values: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    /// Lengths of `dense_1/kernel`, `dense_1/bias`, `dense_2/kernel`, `dense_2/bias`.
    lengths: [usize; 4],
}

impl Dense {
    /// `dense_1/kernel`, `dense_1/bias`, `dense_2/kernel`, `dense_2/bias` packed, moments zero.
    fn pack(parts: [Vec<f32>; 4]) -> Self {
        let values: Vec<f32> = parts.iter().flat_map(|part| part.iter().copied()).collect();
        Self {
            m: vec![0.0; values.len()],
            v: vec![0.0; values.len()],
            values,
            lengths: parts.each_ref().map(Vec::len),
        }
    }

    /// `flat` cut into the four parameters.
    fn parts<'a>(&self, flat: &'a [f32]) -> [&'a [f32]; 4] {
        let mut rest = flat;
        self.lengths.map(|length| {
            let (part, tail) = rest.split_at(length);
            rest = tail;
            part
        })
    }
}

/// Buffers of one step, reused from step to step.
#[derive(Default)]
struct StepBuffers {
    /// [`training::EMBEDDING_ROWS`]: the values of the batch's distinct customer rows, then of
    /// its distinct product rows.
    rows: Vec<f32>,
    /// Where each of the batch's rows came from.
    sources: Vec<(Side, u32)>,
    /// Per sample, its customer row's and its product row's position in `rows`:
    /// [`training::SAMPLE_ROWS`] `[batch, 2, 1]`.
    sample_rows: Vec<i64>,
    rating: Vec<f32>,
}

impl StepBuffers {
    fn clear(&mut self) {
        self.rows.clear();
        self.rating.clear();
        self.sample_rows.clear();
        self.sources.clear();
    }

    /// Row `id` of `table`'s position among the batch's rows, copying its values in on first
    /// use.
    fn slot(&mut self, table: &mut Table, side: Side, id: usize, k: usize) -> u32 {
        if table.slot[id] == NO_SLOT {
            table.slot[id] = self.sources.len() as u32;
            self.sources.push((side, id as u32));
            self.rows.extend_from_slice(table.values(id, k));
        }
        table.slot[id]
    }
}

/// The step lagging rows are brought up to, with the run's catch-up table and Adam's ε.
#[derive(Clone, Copy)]
struct Target<'a> {
    step: u32,
    catch_up: &'a CatchUp,
    epsilon: f32,
}

struct Trainer {
    k: usize,
    n_customers: usize,
    n_products: usize,
    tables: [Table; 2],
    dense: Dense,
    /// Steps taken.
    step: u32,
    /// The training graph ([`training`]).
    training: Session,
    adam: AdamConfig,
    catch_up: CatchUp,
    buffers: StepBuffers,
    masks: MaskStream,
}

impl Trainer {
    /// A trainer starting from [`initial_params`]`(n_customers, n_products, k, seed)`, drawn
    /// straight into its tables.
    fn new(
        (n_customers, n_products, k): (usize, usize, usize),
        seed: u64,
        training: Session,
        adam: AdamConfig,
        last_step: u32,
        masks: MaskStream,
    ) -> Result<Self> {
        let mut draws = InitialDraws::new(seed);
        let tables = [
            Table::new(n_customers, k, &mut draws)?,
            Table::new(n_products, k, &mut draws)?,
        ];
        Ok(Self {
            k,
            n_customers,
            n_products,
            tables,
            dense: Dense::pack(draws.dense(k)),
            step: 0,
            training,
            adam,
            catch_up: CatchUp::new(&adam, last_step)?,
            buffers: StepBuffers::default(),
            masks,
        })
    }

    /// One training step on the rating rows `batch`; returns the batch loss. The next batch
    /// (`upcoming.next`, empty at the end of an epoch) has its embedding rows brought up to date
    /// by this step's run, so every forward pass sees dense-Adam values; the rows of the batch
    /// after it are prefetched, for the next step to gather, and the sample entries of a batch
    /// further ahead, for the step that prefetches its rows.
    fn step(&mut self, ratings: &Ratings, batch: &[u32], upcoming: Upcoming) -> Result<f32> {
        let k = self.k;
        for &sample in upcoming.records {
            for column in [&ratings.customers, &ratings.products] {
                prefetch_at(column, sample as usize);
            }
            prefetch_at(&ratings.ratings, sample as usize);
        }
        // The catch-up coefficients of the next batch's rows (looked up by each row's last
        // step, in tables of 48 bytes per step of the run) load while this batch is gathered.
        for (side, ids) in [
            (Side::Customer, &ratings.customers),
            (Side::Product, &ratings.products),
        ] {
            let last_step = &self.tables[side as usize].last_step;
            for &sample in upcoming.next {
                let id = ids[sample as usize] as usize;
                self.catch_up.prefetch(last_step[id], self.step + 1);
            }
        }
        let b = &mut self.buffers;
        b.clear();
        b.sample_rows.resize(2 * batch.len(), 0);
        // Customers first, so the batch's customer rows come before its product rows.
        for (side, ids) in [
            (Side::Customer, &ratings.customers),
            (Side::Product, &ratings.products),
        ] {
            let table = &mut self.tables[side as usize];
            for (index, &sample) in batch.iter().enumerate() {
                let id = ids[sample as usize] as usize;
                debug_assert_eq!(table.last_step[id], self.step, "a stale row in the batch");
                b.sample_rows[2 * index + side as usize] = i64::from(b.slot(table, side, id, k));
            }
        }
        b.rating
            .extend(batch.iter().map(|&sample| ratings.ratings[sample as usize]));
        let rows = b.sources.len();

        // The next batch's rows that this one does not use: caught up to this step, in place.
        // They were prefetched a step ago; the rows of the batch after are prefetched now, for
        // the next step, so their loads overlap this step's work.
        self.step += 1;
        let target = Target {
            step: self.step,
            catch_up: &self.catch_up,
            epsilon: self.adam.epsilon,
        };
        for (side, ids) in [
            (Side::Customer, &ratings.customers),
            (Side::Product, &ratings.products),
        ] {
            let table = &mut self.tables[side as usize];
            for &sample in upcoming.next {
                let id = ids[sample as usize] as usize;
                // Not a row of this batch (stepped below), nor one caught up already.
                if table.slot[id] == NO_SLOT && table.last_step[id] < target.step {
                    table.catch_up_row(id, k, target);
                }
            }
            for &sample in upcoming.after_next {
                table.prefetch_row(ids[sample as usize] as usize, k);
            }
        }

        let masks = self.masks.next()?;
        debug_assert_eq!(masks.second.len(), batch.len() * k, "masks out of step");
        let n = batch.len();
        // 2/B, the loss gradient's scale, as Keras' mean computes it (in float32).
        let gradient_scale = [2.0 / n as f32];
        let [w1, b1, w2, b2] = self.dense.parts(&self.dense.values);
        let outputs = self.training.run(ort::inputs![
            training::EMBEDDING_ROWS => TensorRef::from_array_view(([rows, k], &b.rows[..]))?,
            training::SAMPLE_ROWS => TensorRef::from_array_view(([n, 2, 1], &b.sample_rows[..]))?,
            training::RATING => TensorRef::from_array_view(([n, 1], &b.rating[..]))?,
            training::GRADIENT_SCALE => TensorRef::from_array_view((Vec::<i64>::new(), &gradient_scale[..]))?,
            training::DROPOUT_1_MASK => TensorRef::from_array_view(([n, 2 * k], &masks.first[..]))?,
            training::DROPOUT_2_MASK => TensorRef::from_array_view(([n, k], &masks.second[..]))?,
            DENSE_1_KERNEL => TensorRef::from_array_view(([2 * k, k], w1))?,
            DENSE_1_BIAS => TensorRef::from_array_view(([k], b1))?,
            DENSE_2_KERNEL => TensorRef::from_array_view(([k, 1], w2))?,
            DENSE_2_BIAS => TensorRef::from_array_view(([1], b2))?,
        ])?;
        let output =
            |name: &str| -> Result<&[f32]> { Ok(outputs[name].try_extract_tensor::<f32>()?.1) };
        let loss = output(training::LOSS)?[0];

        // Adam on the batch's rows, where they lie in their tables, then on the dense layers.
        let step_size = optimizer::step_size(&self.adam, self.step);
        let rows_grad = output(training::EMBEDDING_ROWS_GRAD)?;
        ensure!(
            rows_grad.len() == rows * k,
            "the training graph gave {} gradient values for {rows} rows",
            rows_grad.len()
        );
        for (&(side, id), grad) in b.sources.iter().zip(rows_grad.chunks_exact(k)) {
            let (table, id) = (&mut self.tables[side as usize], id as usize);
            let [values, m, v] = table.row_mut(id, k);
            optimizer::adam_step(&self.adam, step_size, values, [m, v], grad);
            table.last_step[id] = self.step;
            table.slot[id] = NO_SLOT;
        }
        let mut start = 0;
        for (name, length) in [
            training::DENSE_1_KERNEL_GRAD,
            training::DENSE_1_BIAS_GRAD,
            training::DENSE_2_KERNEL_GRAD,
            training::DENSE_2_BIAS_GRAD,
        ]
        .into_iter()
        .zip(self.dense.lengths)
        {
            let grad = output(name)?;
            ensure!(
                grad.len() == length,
                "the training graph gave {} values of {name} for {length} parameters",
                grad.len()
            );
            let part = start..start + length;
            optimizer::adam_step(
                &self.adam,
                step_size,
                &mut self.dense.values[part.clone()],
                [&mut self.dense.m[part.clone()], &mut self.dense.v[part]],
                grad,
            );
            start += length;
        }
        drop(outputs);
        self.masks.recycle(masks);
        Ok(loss)
    }

    /// Brings every embedding row up to date with the last step: the zero-gradient steps since
    /// it was last used, through the optimizer's catch-up, in place.
    fn catch_up_all_rows(&mut self) {
        let (k, step) = (self.k, self.step);
        let target = Target {
            step,
            catch_up: &self.catch_up,
            epsilon: self.adam.epsilon,
        };
        for table in &mut self.tables {
            for id in 0..table.last_step.len() {
                // The rows are read in order, their coefficients at random (by last step).
                if let Some(&last) = table.last_step.get(id + CATCH_UP_PREFETCH_AHEAD) {
                    target.catch_up.prefetch(last, step);
                }
                if table.last_step[id] < step {
                    table.catch_up_row(id, k, target);
                }
            }
        }
    }

    /// The parameters; up to date for every row after [`Self::catch_up_all_rows`].
    fn params_view(&self) -> ParamsView<'_> {
        self.view_of(Part::Values, &self.dense.values)
    }

    /// Adam's state; up to date for every row after [`Self::catch_up_all_rows`].
    fn adam_view(&self) -> AdamView<'_> {
        AdamView {
            step: u64::from(self.step),
            m: self.view_of(Part::M, &self.dense.m),
            v: self.view_of(Part::V, &self.dense.v),
        }
    }

    fn view_of<'a>(&'a self, part: Part, flat: &'a [f32]) -> ParamsView<'a> {
        let [w1, b1, w2, b2] = self.dense.parts(flat);
        ParamsView {
            n_customers: self.n_customers,
            n_products: self.n_products,
            n_factors: self.k,
            customer_embedding: self.tables[Side::Customer as usize].view(self.k, part),
            product_embedding: self.tables[Side::Product as usize].view(self.k, part),
            dense_1_kernel: w1,
            dense_1_bias: b1,
            dense_2_kernel: w2,
            dense_2_bias: b2,
        }
    }

    /// The model's scores for the rating rows `rows`, from the tables as they are: the pairs'
    /// rows gathered into [`eval::scorer`]'s features, [`EVAL_CHUNK`] pairs per run.
    fn score(&self, ratings: &Ratings, rows: std::ops::Range<usize>) -> Result<Vec<f32>> {
        let k = self.k;
        let model = eval::scorer(self.params_view()).encode_to_vec();
        let mut scorer = runtime::session_from_bytes(&model)?;
        let [customers, products] = &self.tables;
        let mut features = try_vec(2 * k * EVAL_CHUNK.min(rows.len()))?;
        let mut scores = try_vec(rows.len())?;
        for start in rows.clone().step_by(EVAL_CHUNK) {
            let chunk = start..(start + EVAL_CHUNK).min(rows.end);
            features.clear();
            for row in chunk.clone() {
                // The pairs' rows are scattered over the tables: each is prefetched a few pairs
                // before it is gathered, so the misses overlap.
                let ahead = row + SCORE_PREFETCH_AHEAD;
                if ahead < rows.end {
                    prefetch(customers.values(ratings.customers[ahead] as usize, k));
                    prefetch(products.values(ratings.products[ahead] as usize, k));
                }
                features.extend_from_slice(customers.values(ratings.customers[row] as usize, k));
                features.extend_from_slice(products.values(ratings.products[row] as usize, k));
            }
            let outputs = scorer.run(ort::inputs![
                eval::FEATURES => TensorRef::from_array_view(([chunk.len(), 2 * k], &features[..]))?,
            ])?;
            let chunk_scores = outputs[OUTPUT].try_extract_tensor::<f32>()?.1;
            ensure!(
                chunk_scores.len() == chunk.len(),
                "the scorer gave {} scores for {} pairs",
                chunk_scores.len(),
                chunk.len()
            );
            scores.extend_from_slice(chunk_scores);
        }
        Ok(scores)
    }

    /// The parameters, moved out of the trainer: each table's values are compacted within its
    /// own allocation (no copy of a table), its moments dropped (they are in the checkpoint).
    fn into_params(self) -> ModelParams {
        let k = self.k;
        let [customers, products] = self.tables;
        let [w1, b1, w2, b2] = self.dense.parts(&self.dense.values).map(<[f32]>::to_vec);
        ModelParams {
            n_customers: self.n_customers,
            n_products: self.n_products,
            n_factors: k,
            customer_embedding: customers.into_values(k),
            product_embedding: products.into_values(k),
            dense_1_kernel: w1,
            dense_1_bias: b1,
            dense_2_kernel: w2,
            dense_2_bias: b2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: usize = 3;

    /// 48 ratings over 7 customers and 4 products, with skewed ids so rows sit out many steps.
    fn tiny_ratings() -> Ratings {
        let rows = 48u32;
        Ratings {
            n_customers: 7,
            n_products: 4,
            customers: (0..rows).map(|i| (i * i + 3 * i) % 7).collect(),
            products: (0..rows).map(|i| (i * 5 / 3) % 4).collect(),
            ratings: (0..rows).map(|i| 0.05 + (i % 9) as f32 * 0.1).collect(),
        }
    }

    fn tiny_trainer(config: &TrainConfig, steps: u32, rows: usize) -> Trainer {
        runtime::ensure_onnxruntime(None).expect(
            "ONNX Runtime for the trainer tests: run them with scripts/test, or export \
             ORT_DYLIB_PATH=$PWD/.venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1",
        );
        Trainer::new(
            (7, 4, K),
            config.seed,
            runtime::session_from_bytes(&training::build(K).encode_to_vec()).unwrap(),
            config.adam,
            steps,
            MaskStream::start(
                Schedule {
                    epochs: config.epochs,
                    train_rows: rows,
                    batch_size: config.batch_size,
                    n_factors: K,
                },
                config.dropout,
                config.seed,
                DROPOUT_STREAM,
            ),
        )
        .unwrap()
    }

    fn collected(view: FloatsView) -> Vec<f32> {
        view.runs().flatten().copied().collect()
    }

    /// A table's rows hold values and moments side by side; what is written through `row_mut`
    /// must be what `values` reads, and the views (which the eval graph and checkpoint writers
    /// stream) must read the same three `[rows, k]` matrices separate arrays would hold.
    #[test]
    fn rows_written_are_read_back_by_values_the_views_and_into_values() {
        let (rows, k, seed) = (6, 3, 11);
        let mut table = Table::new(rows, k, &mut InitialDraws::new(seed)).unwrap();
        let initial = initial_params(rows, 2, k, seed).unwrap();
        let mut expected = [
            initial.customer_embedding,
            vec![0.0; rows * k],
            vec![0.0; rows * k],
        ];
        for (part, matrix) in [Part::Values, Part::M, Part::V].into_iter().zip(&expected) {
            assert_eq!(&collected(table.view(k, part)), matrix);
        }

        for id in [5, 0, 2] {
            let updated: [Vec<f32>; 3] = std::array::from_fn(|part| {
                (0..k).map(|j| (100 * part + 10 * id + j) as f32).collect()
            });
            for (target, values) in table.row_mut(id, k).into_iter().zip(&updated) {
                target.copy_from_slice(values);
            }
            for (matrix, values) in expected.iter_mut().zip(&updated) {
                matrix[id * k..(id + 1) * k].copy_from_slice(values);
            }
        }
        for (part, matrix) in [Part::Values, Part::M, Part::V].into_iter().zip(&expected) {
            assert_eq!(&collected(table.view(k, part)), matrix);
        }
        for id in 0..rows {
            table.prefetch_row(id, k);
            assert_eq!(
                table.values(id, k),
                &expected[0][id * k..(id + 1) * k],
                "row {id}"
            );
        }
        let [values, ..] = expected;
        assert_eq!(table.into_values(k), values);
    }

    #[test]
    fn the_progress_status_gives_speed_and_time_left() {
        let second = std::time::Duration::from_secs(1);
        assert_eq!(
            progress_status(300_000, 900_000, second, 0.008123),
            "loss 0.00812, 300k samples/s, 2s left"
        );
        assert_eq!(
            progress_status(100_000, 10_000_000, 2 * second, 0.01),
            "loss 0.01000, 50k samples/s, 3m18s left"
        );
        assert!(progress_status(5, 5, second, 0.0).ends_with(", 0s left"));
    }

    /// The lazy update (rows caught up when used, all rows at the end) against dense Adam: the
    /// same trainer bringing every row up to date after every step, i.e. running each skipped
    /// row's zero-gradient step explicitly, as Keras does.
    #[test]
    fn lazily_caught_up_rows_end_where_dense_adam_puts_them() {
        let ratings = tiny_ratings();
        let config = TrainConfig {
            n_factors: K,
            batch_size: 4,
            epochs: 3,
            ..TrainConfig::default()
        };
        let rows = ratings.len();
        let steps = (rows.div_ceil(config.batch_size) * config.epochs) as u32;
        let mut lazy = tiny_trainer(&config, steps, rows);
        let mut dense = tiny_trainer(&config, steps, rows);
        let order: Vec<u32> = (0..rows as u32).rev().collect();
        let mut sat_out = 0;
        let batches: Vec<&[u32]> = order.chunks(config.batch_size).collect();
        for epoch in 0..config.epochs {
            for (index, batch) in batches.iter().enumerate() {
                let lazy_loss = lazy
                    .step(&ratings, batch, Upcoming::of(&batches, index))
                    .unwrap();
                let dense_loss = dense.step(&ratings, batch, Upcoming::default()).unwrap();
                assert!((lazy_loss - dense_loss).abs() <= 1e-5 * dense_loss.abs());
                sat_out += lazy.tables[Side::Customer as usize]
                    .last_step
                    .iter()
                    .filter(|&&last| last + 1 < lazy.step)
                    .count();
                dense.catch_up_all_rows();
            }
            if epoch + 1 < config.epochs {
                lazy.catch_up_all_rows();
            }
        }
        lazy.catch_up_all_rows();
        assert!(
            sat_out > 50,
            "rows must sit out steps for the test to mean anything"
        );
        let initial = initial_params(7, 4, K, config.seed).unwrap();
        let compare = |what: &str, lazy: FloatsView, dense: FloatsView, start: &[f32]| {
            let (lazy, dense) = (collected(lazy), collected(dense));
            for i in 0..lazy.len() {
                let moved = (dense[i] - start[i]).abs();
                assert!(
                    (lazy[i] - dense[i]).abs() <= 1e-4 * moved + 1e-7,
                    "{what}[{i}]: lazy {} vs dense {} (moved {moved})",
                    lazy[i],
                    dense[i]
                );
            }
        };
        let (lazy_params, dense_params) = (lazy.params_view(), dense.params_view());
        compare(
            "customer_embedding",
            lazy_params.customer_embedding,
            dense_params.customer_embedding,
            &initial.customer_embedding,
        );
        compare(
            "product_embedding",
            lazy_params.product_embedding,
            dense_params.product_embedding,
            &initial.product_embedding,
        );
        compare(
            "dense_1/kernel",
            lazy_params.dense_1_kernel.into(),
            dense_params.dense_1_kernel.into(),
            &initial.dense_1_kernel,
        );
        let (lazy_adam, dense_adam) = (lazy.adam_view(), dense.adam_view());
        assert_eq!(lazy_adam.step, u64::from(steps));
        let zeros = vec![0.0; lazy_adam.m.customer_embedding.len()];
        compare(
            "m of customer_embedding",
            lazy_adam.m.customer_embedding,
            dense_adam.m.customer_embedding,
            &zeros,
        );
        compare(
            "v of customer_embedding",
            lazy_adam.v.customer_embedding,
            dense_adam.v.customer_embedding,
            &zeros,
        );
    }
}
