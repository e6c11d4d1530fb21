//! The optimizer graph: one Adam step (Keras semantics) for the parameters a training step
//! changes, and the catch-up that gives every other embedding row dense-Adam results at
//! O(batch) cost.
//!
//! # Adam as Keras runs it
//! At step t (1-based), for every parameter θ with gradient g, moments m, v:
//! `m ← m + (g − m)(1 − β₁)`, `v ← v + (g² − v)(1 − β₂)`, `θ ← θ − α_t·m / (√v + ε)` with
//! `α_t = lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ)`; defaults lr 0.001, β₁ 0.9, β₂ 0.999, ε 1e-7. The graph
//! runs exactly this on [`PARAMS`], one flat vector: the embedding rows the step's batch uses
//! followed by the dense layers. α_t comes in as [`STEP_SIZE`], computed by [`step_size`] the way
//! Keras does (float32 powers of the step).
//!
//! # Embedding rows: dense Adam, applied lazily
//! Keras' dense Adam updates every embedding row every step. A row no sample of the step uses
//! has g = 0, so its moments only decay (`m ← β₁m`, `v ← β₂v`) while θ keeps moving by
//! `α_t·m/(√v + ε)`. The trainer keeps, per row, the step `s` it was last brought up to date;
//! a row is brought up to a step t > s (replaying the k = t − s zero-gradient steps s+1 … t it
//! sat out) among the graph's [`LAGGING_ROWS`] when the next batch is about to use it, and for
//! every row at the end of an epoch. So every row is current before a forward pass reads it,
//! and the gradients are those of dense Adam's weights too. Replaying, with x = √v_s,
//! y = x + ε, b_j = β₂^{j/2}:
//!
//! `θ ← θ_s − m_s · Σ_{j=1..k} α_{s+j}·β₁ʲ / (b_j·x + ε)`,  `m ← β₁ᵏ·m_s`,  `v ← β₂ᵏ·v_s`.
//!
//! The sum is computed per row in O(1), exactly:
//! - the ε series: since `b_j·x + ε = y − (1 − b_j)·x` and `0 ≤ (1 − b_j)·x/y < 1`,
//!   `1/(b_j·x + ε) = Σ_n (1 − b_j)ⁿ·xⁿ/yⁿ⁺¹`, so with A(t) = α_t/lr the sum is
//!   `Σ_{n=0..3} c_n·zⁿ / y` with z = x/y, `c_n = lr·T_n`, `T_n = Σ_{j=1..k} A(s+j)·β₁ʲ·(1 − b_j)ⁿ`.
//!   The series is cut after n = 3: (1 − b_j) ≈ j/2000 and the weights β₁ʲ keep j small, so
//!   T₄/T₀ ≈ 10⁻⁸.
//! - the T_n from a table: expanding `(1 − b_j)ⁿ` binomially, `T_n = Σ_m C(n,m)(−1)ᵐ·U_m` with
//!   `U_m = Σ_{j=1..k} A(s+j)·q_mʲ`, `q_m = β₁·β₂^{m/2}`. With the discounted sums
//!   `H_m(s) = Σ_{j≥1} A(s+j)·q_mʲ` (tabulated for every step of the run in f64 by
//!   [`CatchUp::new`]), `U_m = H_m(s) − q_mᵏ·H_m(t)`, since s + k = t.
//!
//! The per-row numbers (c₀…c₃, β₁ᵏ, β₂ᵏ) depend only on s and t: [`CatchUp::coefficients`]
//! computes them in f64 as the trainer gathers a row and they come in as [`CATCH_UP`]
//! `[rows, 6]`; the graph does the per-value work. So a step costs a handful of elementwise
//! operations per value, nothing proportional to k, and every embedding row follows Keras'
//! dense Adam up to float32 rounding (the catch-up's rounding error is about 10⁻⁶ of its size,
//! below θ's own precision). At the end of every epoch the trainer brings every row up to the
//! last step, so the weights it evaluates, exports and checkpoints are the dense-Adam weights.
//!
//! The one difference from Keras is where float32 rounding happens: Keras rounds after each of
//! the k skipped steps, the catch-up rounds once (its constants come from f64), so the two agree
//! to a few float32 ulps rather than bit for bit.
//!
//! # Why the graph is shaped this way
//! The graph has as few nodes as the arithmetic allows: one Adam chain over the rows and the
//! dense layers together, the catch-up only on the rows that lag, and no per-step or per-row
//! scalar work (that is [`step_size`] and [`CatchUp::coefficients`], a few f64 operations in the
//! trainer).
//!
//! # The trainer applies it in Rust
//! In ONNX Runtime each of the graph's nodes is one pass over a step's values (about 2 µs per
//! `Mul` of 10,000 values on a 2-core Xeon, 27 nodes, half of the step's run; BENCHMARKS.md),
//! and no standard operator fuses them without changing the float32 rounding. So the trainer
//! runs [`adam_step`] and [`catch_up_row`]: the graph's float32 operations in the graph's order
//! (IEEE-rounded `+ − × ÷ √`, never fused into FMAs by Rust), one pass, on the rows where they
//! lie in its tables. They give the graph's bits; tests/train_graphs.rs checks them against it.

use anyhow::Result;

use super::GraphBuilder;
use crate::ml::data::memory::{prefetch_at, try_vec_huge};
use crate::ml::model::onnx_proto::{tensor_proto::DataType, Attr, Dim, ModelProto};

/// α_t, float32 scalar.
pub const STEP_SIZE: &str = "adam/step_size";
/// The values Adam steps, flat: the batch's embedding rows, then the dense layers.
pub const PARAMS: &str = "params";
pub const PARAMS_M: &str = "params_m";
pub const PARAMS_V: &str = "params_v";
pub const PARAMS_GRAD: &str = "params_grad";
/// Embedding rows to bring up to date, `[rows, k]`, with their moments.
pub const LAGGING_ROWS: &str = "lagging_rows";
pub const LAGGING_ROWS_M: &str = "lagging_rows_m";
pub const LAGGING_ROWS_V: &str = "lagging_rows_v";
/// Per lagging row, `[rows, CATCH_UP_COLUMNS]`: [`CatchUp::coefficients`].
pub const CATCH_UP: &str = "catch_up/coefficients";

pub const PARAMS_UPDATED: &str = "updated/params";
pub const PARAMS_M_UPDATED: &str = "updated/params_m";
pub const PARAMS_V_UPDATED: &str = "updated/params_v";
pub const LAGGING_ROWS_UPDATED: &str = "updated/lagging_rows";
pub const LAGGING_ROWS_M_UPDATED: &str = "updated/lagging_rows_m";
pub const LAGGING_ROWS_V_UPDATED: &str = "updated/lagging_rows_v";

/// Terms of the series in ε (n = 0..3).
const SERIES_TERMS: usize = 4;
/// Columns of [`CATCH_UP`]: c₀…c₃, β₁ᵏ, β₂ᵏ.
pub const CATCH_UP_COLUMNS: usize = SERIES_TERMS + 2;
/// Steps past the last one where H's backward recursion starts: q_m ≤ 0.9 and 0.9¹⁰⁰⁰ ≈ 10⁻⁴⁶,
/// so starting from H = 0 there is exact in f64.
const RECURSION_LEAD_IN: u64 = 1000;

/// Adam's hyperparameters; [`Default`] gives Keras' defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub learning_rate: f32,
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            learning_rate: 0.001,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
        }
    }
}

/// α_t = lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ) for step `step` (1-based), as Keras computes it: in float32,
/// from float32 powers of the step.
pub fn step_size(adam: &AdamConfig, step: u32) -> f32 {
    let step = step as f32;
    let bias_1 = 1.0 - adam.beta_1.powf(step);
    let bias_2 = (1.0 - adam.beta_2.powf(step)).sqrt();
    bias_2 / bias_1 * adam.learning_rate
}

/// One Adam step on `values` with their moments `m`, `v` and gradient `grad`, in place, at step
/// size `step_size` (α_t, [`step_size`]): the graph's Adam chain, the same float32 operations in
/// the same order, so the same bits (see the module doc).
pub fn adam_step(
    adam: &AdamConfig,
    step_size: f32,
    values: &mut [f32],
    [m, v]: [&mut [f32]; 2],
    grad: &[f32],
) {
    let one_minus_beta_1 = 1.0 - adam.beta_1;
    let one_minus_beta_2 = 1.0 - adam.beta_2;
    for (((theta, m), v), &g) in values.iter_mut().zip(m).zip(v).zip(grad) {
        let m_new = *m + (g - *m) * one_minus_beta_1;
        let v_new = *v + (g * g - *v) * one_minus_beta_2;
        *theta -= m_new * step_size / (v_new.sqrt() + adam.epsilon);
        (*m, *v) = (m_new, v_new);
    }
}

/// The graph's catch-up of one lagging row (`values`, `m`, `v`, in place) with its
/// [`CATCH_UP`] columns `coefficients`: the same float32 operations in the same order as the
/// graph, so the same bits (see the module doc).
pub fn catch_up_row(
    epsilon: f32,
    coefficients: &[f32; CATCH_UP_COLUMNS],
    values: &mut [f32],
    [m, v]: [&mut [f32]; 2],
) {
    let [c_0, c_1, c_2, c_3, beta_1_power, beta_2_power] = *coefficients;
    for ((theta, m), v) in values.iter_mut().zip(m).zip(v) {
        let x = v.sqrt();
        let y = x + epsilon;
        let z = x / y;
        // Horner, as the graph: c₀ + z(c₁ + z(c₂ + z·c₃)).
        let sum = c_0 + z * (c_1 + z * (c_2 + z * c_3));
        *theta -= *m * (sum / y);
        *m *= beta_1_power;
        *v *= beta_2_power;
    }
}

/// The optimizer graph for `n_factors` = k (see the module doc).
pub fn build(n_factors: usize, adam: &AdamConfig) -> ModelProto {
    let mut g = GraphBuilder::new("recommender_adam_step");
    add(&mut g, n_factors, adam);
    g.finish(
        "warez-pipe Adam step (Keras semantics) for the batch's embedding rows and the dense \
         layers, and the exact catch-up of the zero-gradient steps lagging embedding rows sat out",
    )
}

/// Adds the optimizer graph's inputs, nodes and outputs to `g`.
fn add(g: &mut GraphBuilder, n_factors: usize, adam: &AdamConfig) {
    let k = n_factors as i64;
    let float = DataType::Float;
    let params_shape = [Dim::Named("params")];
    let rows_shape = [Dim::Named("lagging_rows"), Dim::Fixed(k)];

    let step_size = g.input(STEP_SIZE, float, &[]);
    let params = g.input(PARAMS, float, &params_shape);
    let params_m = g.input(PARAMS_M, float, &params_shape);
    let params_v = g.input(PARAMS_V, float, &params_shape);
    let params_grad = g.input(PARAMS_GRAD, float, &params_shape);
    let rows = g.input(LAGGING_ROWS, float, &rows_shape);
    let rows_m = g.input(LAGGING_ROWS_M, float, &rows_shape);
    let rows_v = g.input(LAGGING_ROWS_V, float, &rows_shape);
    let coefficients = g.input(
        CATCH_UP,
        float,
        &[
            Dim::Named("lagging_rows"),
            Dim::Fixed(CATCH_UP_COLUMNS as i64),
        ],
    );

    let epsilon = g.scalar("adam/epsilon", adam.epsilon);
    let one_minus_beta_1 = g.scalar("adam/one_minus_beta_1", 1.0 - adam.beta_1);
    let one_minus_beta_2 = g.scalar("adam/one_minus_beta_2", 1.0 - adam.beta_2);

    // Adam, in the order of Keras' operations (so its float32 rounding).
    let m_delta = g.op("Sub", &[&params_grad, &params_m], "adam/m_delta");
    let m_delta = g.op("Mul", &[&m_delta, &one_minus_beta_1], "adam/m_step");
    let m_new = g.op("Add", &[&params_m, &m_delta], PARAMS_M_UPDATED);
    let grad_squared = g.op("Mul", &[&params_grad, &params_grad], "adam/grad_squared");
    let v_delta = g.op("Sub", &[&grad_squared, &params_v], "adam/v_delta");
    let v_delta = g.op("Mul", &[&v_delta, &one_minus_beta_2], "adam/v_step");
    let v_new = g.op("Add", &[&params_v, &v_delta], PARAMS_V_UPDATED);
    let scaled_m = g.op("Mul", &[&m_new, &step_size], "adam/scaled_m");
    let root = g.op("Sqrt", &[&v_new], "adam/sqrt_v");
    let denominator = g.op("Add", &[&root, &epsilon], "adam/denominator");
    let update = g.op("Div", &[&scaled_m, &denominator], "adam/update");
    g.op("Sub", &[&params, &update], PARAMS_UPDATED);

    // The lagging rows' catch-up (module doc).
    let columns: Vec<String> = (0..SERIES_TERMS)
        .map(|n| format!("catch_up/c_{n}"))
        .chain([
            "catch_up/beta_1_power_k".into(),
            "catch_up/beta_2_power_k".into(),
        ])
        .collect();
    let column_names: Vec<&str> = columns.iter().map(String::as_str).collect();
    g.op_multi(
        "Split",
        &[&coefficients],
        &[
            ("axis", Attr::Int(1)),
            ("num_outputs", Attr::Int(CATCH_UP_COLUMNS as i64)),
        ],
        &column_names,
    );
    let x = g.op("Sqrt", &[&rows_v], "catch_up/sqrt_v");
    let y = g.op("Add", &[&x, &epsilon], "catch_up/sqrt_v_plus_epsilon");
    let z = g.op("Div", &[&x, &y], "catch_up/ratio");
    // Horner: c₀ + z(c₁ + z(c₂ + z·c₃)).
    let mut sum = columns[SERIES_TERMS - 1].clone();
    for n in (0..SERIES_TERMS - 1).rev() {
        let scaled = g.op("Mul", &[&z, &sum], &format!("catch_up/horner_{n}_scaled"));
        sum = g.op(
            "Add",
            &[&columns[n], &scaled],
            &format!("catch_up/horner_{n}"),
        );
    }
    let move_per_m = g.op("Div", &[&sum, &y], "catch_up/move_per_m");
    let moved = g.op("Mul", &[&rows_m, &move_per_m], "catch_up/move");
    g.op("Sub", &[&rows, &moved], LAGGING_ROWS_UPDATED);
    g.op(
        "Mul",
        &[&rows_m, &columns[SERIES_TERMS]],
        LAGGING_ROWS_M_UPDATED,
    );
    g.op(
        "Mul",
        &[&rows_v, &columns[SERIES_TERMS + 1]],
        LAGGING_ROWS_V_UPDATED,
    );

    for output in [PARAMS_UPDATED, PARAMS_M_UPDATED, PARAMS_V_UPDATED] {
        g.output(output, float, &params_shape);
    }
    for output in [
        LAGGING_ROWS_UPDATED,
        LAGGING_ROWS_M_UPDATED,
        LAGGING_ROWS_V_UPDATED,
    ] {
        g.output(output, float, &rows_shape);
    }
}

/// The catch-up's per-row numbers for a run, from its hyperparameters (module doc).
#[derive(Debug, Clone)]
pub struct CatchUp {
    learning_rate: f64,
    /// H_m(s) = Σ_{j≥1} A(s+j)·q_mʲ for s = 0..=last_step.
    discounted_sums: Vec<[f64; SERIES_TERMS]>,
    /// β₁ᵏ and β₂^{k/2} for k = 0..=last_step: two `powf` per lagging row of every step
    /// otherwise.
    powers: Vec<[f64; 2]>,
}

impl CatchUp {
    /// The tables for steps 0..=`last_step`, computed in f64 from the float32 hyperparameters.
    /// 48 bytes per step, allocated fallibly, in huge pages (they are read at random).
    pub fn new(adam: &AdamConfig, last_step: u32) -> Result<Self> {
        let (beta_1, beta_2) = (f64::from(adam.beta_1), f64::from(adam.beta_2));
        // q_m = β₁·β₂^{m/2}, m = 0..3.
        let ratios: [f64; SERIES_TERMS] =
            std::array::from_fn(|m| beta_1 * beta_2.powf(m as f64 / 2.0));
        // A(t) = α_t / lr.
        let alpha = |t: u64| {
            let t = t as f64;
            (1.0 - beta_2.powf(t)).sqrt() / (1.0 - beta_1.powf(t))
        };
        // H(s) = q·(A(s+1) + H(s+1)), from far enough past the last step that H ≈ 0 there.
        let last_step = u64::from(last_step);
        let mut discounted_sums = try_vec_huge(last_step as usize + 1)?;
        discounted_sums.resize(last_step as usize + 1, [0.0; SERIES_TERMS]);
        let mut sums = [0.0f64; SERIES_TERMS];
        for s in (0..last_step + RECURSION_LEAD_IN).rev() {
            let next_alpha = alpha(s + 1);
            for (sum, ratio) in sums.iter_mut().zip(&ratios) {
                *sum = ratio * (next_alpha + *sum);
            }
            if s <= last_step {
                discounted_sums[s as usize] = sums;
            }
        }
        let mut powers = try_vec_huge(last_step as usize + 1)?;
        powers.extend((0..=last_step).map(|skipped| {
            let skipped = skipped as f64;
            [beta_1.powf(skipped), beta_2.powf(skipped / 2.0)]
        }));
        Ok(Self {
            learning_rate: f64::from(adam.learning_rate),
            discounted_sums,
            powers,
        })
    }

    /// Starts loading what [`Self::coefficients`]`(last, target)` reads at random (the entries of
    /// `last` and of `target − last`: tens of MB of tables at a million steps), for a call soon
    /// after. Any `last` and `target` may be given: the entries past the tables are skipped.
    pub fn prefetch(&self, last: u32, target: u32) {
        prefetch_at(&self.discounted_sums, last as usize);
        prefetch_at(&self.powers, target.wrapping_sub(last) as usize);
    }

    /// A row's [`CATCH_UP`] columns to bring it from step `last` up to step `target`
    /// (`last` ≤ `target` ≤ the table's last step): c₀…c₃, β₁ᵏ, β₂ᵏ with k = `target` − `last`.
    pub fn coefficients(&self, last: u32, target: u32) -> [f32; CATCH_UP_COLUMNS] {
        debug_assert!(last <= target, "a row ahead of the step it is caught up to");
        let (from, to) = (
            &self.discounted_sums[last as usize],
            &self.discounted_sums[target as usize],
        );
        // q_mᵏ = β₁ᵏ·(β₂^{k/2})ᵐ, from two tabulated powers (this runs for every lagging row of
        // every step).
        let [beta_1_power, beta_2_half_power] = self.powers[(target - last) as usize];
        let mut ratio_power = beta_1_power;
        let window: [f64; SERIES_TERMS] = std::array::from_fn(|m| {
            let sum = from[m] - ratio_power * to[m];
            ratio_power *= beta_2_half_power;
            sum
        });
        let mut columns = [0.0; CATCH_UP_COLUMNS];
        // T_n = Σ_m C(n, m)·(−1)ᵐ·U_m.
        for (n, column) in columns.iter_mut().take(SERIES_TERMS).enumerate() {
            let (mut choose, mut series) = (1.0f64, 0.0f64);
            for (m, sum) in window.iter().enumerate().take(n + 1) {
                let sign = if m % 2 == 0 { 1.0 } else { -1.0 };
                series += sign * choose * sum;
                choose = choose * (n - m) as f64 / (m + 1) as f64;
            }
            *column = (self.learning_rate * series) as f32;
        }
        columns[SERIES_TERMS] = beta_1_power as f32;
        columns[SERIES_TERMS + 1] = (beta_2_half_power * beta_2_half_power) as f32;
        columns
    }
}
