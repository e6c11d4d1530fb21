//! The optimizer graph: one Adam step (Keras semantics) for the dense parameters and for a set
//! of embedding rows, with the catch-up that gives those rows dense-Adam results at O(batch)
//! cost.
//!
//! # Adam as Keras runs it
//! At step t (1-based), for every parameter θ with gradient g, moments m, v:
//! `m ← m + (g − m)(1 − β₁)`, `v ← v + (g² − v)(1 − β₂)`, `θ ← θ − α_t·m / (√v + ε)` with
//! `α_t = lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ)`; defaults lr 0.001, β₁ 0.9, β₂ 0.999, ε 1e-7. The dense
//! layers (fed as one flat vector [`DENSE`]) get exactly this every step.
//!
//! # Embedding rows: dense Adam, applied lazily
//! Keras' dense Adam updates every embedding row every step. A row no sample of the step uses
//! has g = 0, so its moments only decay (`m ← β₁m`, `v ← β₂v`) while θ keeps moving by
//! `α_t·m/(√v + ε)`. The graph takes each row with the step `s` it was last brought up to date
//! ([`ROWS_LAST_STEP`]), replays the k = t − 1 − s zero-gradient steps s+1 … t−1 it sat out,
//! then applies step t with the row's gradient [`ROWS_GRAD`] (zero for a row no sample of the
//! step uses). The trainer's step t feeds the rows batch t used (up to date, k = 0) and the rows
//! batch t+1 will use (zero gradient): so every row is current before a forward pass reads it,
//! and the gradients are those of dense Adam's weights too. Replaying, with x = √v_s,
//! y = x + ε, b_j = β₂^{j/2}:
//!
//! `θ ← θ_s − m_s · Σ_{j=1..k} α_{s+j}·β₁ʲ / (b_j·x + ε)`,  `m ← β₁ᵏ·m_s`,  `v ← β₂ᵏ·v_s`.
//!
//! The sum is computed per row in O(1), exactly:
//! - the ε series: since `b_j·x + ε = y − (1 − b_j)·x` and `0 ≤ (1 − b_j)·x/y < 1`,
//!   `1/(b_j·x + ε) = Σ_n (1 − b_j)ⁿ·xⁿ/yⁿ⁺¹`, so with A(t) = α_t/lr the sum is
//!   `lr·Σ_{n=0..3} T_n·xⁿ/yⁿ⁺¹`, `T_n = Σ_{j=1..k} A(s+j)·β₁ʲ·(1 − b_j)ⁿ`. The series is cut after
//!   n = 3: (1 − b_j) ≈ j/2000 and the weights β₁ʲ keep j small, so T₄/T₀ ≈ 10⁻⁸.
//! - the T_n from a table: expanding `(1 − b_j)ⁿ` binomially, `T_n = Σ_m C(n,m)(−1)ᵐ·U_m` with
//!   `U_m = Σ_{j=1..k} A(s+j)·q_mʲ`, `q_m = β₁·β₂^{m/2}`. With the discounted sums
//!   `H_m(s) = Σ_{j≥1} A(s+j)·q_mʲ` (tabulated for every step of the run in f64 when the graph is
//!   built, [`DISCOUNTED_SUMS`]), `U_m = H_m(s) − q_mᵏ·H_m(t−1)`, since s + k = t − 1.
//!
//! So a step costs two table lookups and a handful of elementwise operations per row, nothing
//! proportional to k, and every embedding row follows Keras' dense Adam up to float32 rounding
//! (the catch-up's rounding error is about 10⁻⁶ of its size, below θ's own precision). At the end
//! of every epoch the trainer replays the rest for every row (zero gradient, t = the last step),
//! so the weights it evaluates, exports and checkpoints are the dense-Adam weights.
//!
//! The one difference from Keras is where float32 rounding happens: Keras rounds after each of
//! the k skipped steps, the catch-up rounds once (its constants come from f64), so the two agree
//! to a few float32 ulps rather than bit for bit.

use super::GraphBuilder;
use crate::ml::model::onnx_proto::{tensor_proto::DataType, Attr, Dim, ModelProto};

pub const STEP: &str = "step";
pub const ROWS: &str = "embedding_rows";
pub const ROWS_M: &str = "embedding_rows_m";
pub const ROWS_V: &str = "embedding_rows_v";
pub const ROWS_GRAD: &str = "embedding_rows_grad";
pub const ROWS_LAST_STEP: &str = "embedding_rows_last_step";
pub const DENSE: &str = "dense";
pub const DENSE_M: &str = "dense_m";
pub const DENSE_V: &str = "dense_v";
pub const DENSE_GRAD: &str = "dense_grad";

pub const ROWS_UPDATED: &str = "updated/embedding_rows";
pub const ROWS_M_UPDATED: &str = "updated/embedding_rows_m";
pub const ROWS_V_UPDATED: &str = "updated/embedding_rows_v";
pub const DENSE_UPDATED: &str = "updated/dense";
pub const DENSE_M_UPDATED: &str = "updated/dense_m";
pub const DENSE_V_UPDATED: &str = "updated/dense_v";

/// The initializer holding H_m(s) (module doc), `[last_step + 1, 4]`.
pub const DISCOUNTED_SUMS: &str = "catch_up/discounted_sums";

/// Terms of the series in ε (n = 0..3).
const SERIES_TERMS: usize = 4;
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

/// The optimizer graph for `n_factors` = k, valid for steps 1..=`last_step` (the catch-up's
/// table covers the run; a later step fails in the table lookup).
pub fn build(n_factors: usize, adam: &AdamConfig, last_step: u64) -> ModelProto {
    let k = n_factors as i64;
    let float = DataType::Float;
    let rows_shape = [Dim::Named("rows"), Dim::Fixed(k)];
    let dense_shape = [Dim::Named("dense")];
    let mut g = GraphBuilder::new("recommender_adam_step");

    let step = g.input(STEP, DataType::Int64, &[]);
    let rows = g.input(ROWS, float, &rows_shape);
    let rows_m = g.input(ROWS_M, float, &rows_shape);
    let rows_v = g.input(ROWS_V, float, &rows_shape);
    let rows_grad = g.input(ROWS_GRAD, float, &rows_shape);
    let last_step_of_row = g.input(ROWS_LAST_STEP, DataType::Int64, &[Dim::Named("rows")]);
    let dense = g.input(DENSE, float, &dense_shape);
    let dense_m = g.input(DENSE_M, float, &dense_shape);
    let dense_v = g.input(DENSE_V, float, &dense_shape);
    let dense_grad = g.input(DENSE_GRAD, float, &dense_shape);

    let one = g.scalar("one", 1.0);
    let beta_1 = g.scalar("adam/beta_1", adam.beta_1);
    let beta_2 = g.scalar("adam/beta_2", adam.beta_2);
    let epsilon = g.scalar("adam/epsilon", adam.epsilon);
    let learning_rate = g.scalar("adam/learning_rate", adam.learning_rate);
    let one_minus_beta_1 = g.scalar("adam/one_minus_beta_1", 1.0 - adam.beta_1);
    let one_minus_beta_2 = g.scalar("adam/one_minus_beta_2", 1.0 - adam.beta_2);

    // α_t = lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ), as Keras computes it (float32 powers of the step).
    let step_float = g.op_with(
        "Cast",
        &[&step],
        &[("to", Attr::Int(DataType::Float as i64))],
        "adam/step_float",
    );
    let beta_1_power = g.op("Pow", &[&beta_1, &step_float], "adam/beta_1_power");
    let beta_2_power = g.op("Pow", &[&beta_2, &step_float], "adam/beta_2_power");
    let bias_1 = g.op("Sub", &[&one, &beta_1_power], "adam/one_minus_beta_1_power");
    let bias_2 = g.op("Sub", &[&one, &beta_2_power], "adam/one_minus_beta_2_power");
    let bias_2 = g.op("Sqrt", &[&bias_2], "adam/sqrt_one_minus_beta_2_power");
    let alpha = g.op("Div", &[&bias_2, &bias_1], "adam/alpha_over_lr");
    let alpha = g.op("Mul", &[&alpha, &learning_rate], "adam/alpha");

    // The embedding rows' catch-up of the steps they sat out (module doc).
    let tables = CatchUpTables::new(adam, last_step);
    let terms_dim = SERIES_TERMS as i64;
    let sums = g.constant_f32(
        DISCOUNTED_SUMS,
        &[last_step as i64 + 1, terms_dim],
        &tables.discounted_sums,
    );
    let ratios = g.constant_f32("catch_up/ratios", &[1, terms_dim], &tables.ratios);
    let binomial = g.constant_f32(
        "catch_up/binomial",
        &[terms_dim, terms_dim],
        &tables.binomial,
    );
    let one_step = g.constant_i64("catch_up/one_step", &[], &[1]);
    let previous = g.op("Sub", &[&step, &one_step], "catch_up/previous_step");
    let sums_at_row = g.op_with(
        "Gather",
        &[&sums, &last_step_of_row],
        &[("axis", Attr::Int(0))],
        "catch_up/sums_after_last_step",
    );
    let sums_at_previous = g.op_with(
        "Gather",
        &[&sums, &previous],
        &[("axis", Attr::Int(0))],
        "catch_up/sums_after_previous_step",
    );
    let skipped = g.op(
        "Sub",
        &[&previous, &last_step_of_row],
        "catch_up/skipped_steps",
    );
    let skipped = g.op_with(
        "Cast",
        &[&skipped],
        &[("to", Attr::Int(DataType::Float as i64))],
        "catch_up/skipped_float",
    );
    let column_axis = g.constant_i64("catch_up/column_axis", &[1], &[1]);
    let skipped = g.op("Unsqueeze", &[&skipped, &column_axis], "catch_up/skipped");
    let ratios_k = g.op("Pow", &[&ratios, &skipped], "catch_up/ratios_power_k");
    let beyond = g.op(
        "Mul",
        &[&ratios_k, &sums_at_previous],
        "catch_up/sums_beyond",
    );
    let window = g.op(
        "Sub",
        &[&sums_at_row, &beyond],
        "catch_up/sums_over_skipped",
    );
    let series = g.op("MatMul", &[&window, &binomial], "catch_up/series");
    let terms: Vec<String> = (0..SERIES_TERMS)
        .map(|n| format!("catch_up/series_{n}"))
        .collect();
    let term_names: Vec<&str> = terms.iter().map(String::as_str).collect();
    g.op_multi(
        "Split",
        &[&series],
        &[
            ("axis", Attr::Int(1)),
            ("num_outputs", Attr::Int(terms_dim)),
        ],
        &term_names,
    );
    let x = g.op("Sqrt", &[&rows_v], "catch_up/sqrt_v");
    let y = g.op("Add", &[&x, &epsilon], "catch_up/sqrt_v_plus_epsilon");
    let z = g.op("Div", &[&x, &y], "catch_up/ratio");
    // Horner: T₀ + z(T₁ + z(T₂ + z·T₃)).
    let mut sum = terms[SERIES_TERMS - 1].clone();
    for n in (0..SERIES_TERMS - 1).rev() {
        let scaled = g.op("Mul", &[&z, &sum], &format!("catch_up/horner_{n}_scaled"));
        sum = g.op(
            "Add",
            &[&terms[n], &scaled],
            &format!("catch_up/horner_{n}"),
        );
    }
    let lr_sum = g.op("Mul", &[&sum, &learning_rate], "catch_up/step_sum");
    let move_per_m = g.op("Div", &[&lr_sum, &y], "catch_up/move_per_m");
    let moved = g.op("Mul", &[&rows_m, &move_per_m], "catch_up/move");
    let rows_caught_up = g.op("Sub", &[&rows, &moved], "catch_up/embedding_rows");
    let decay_1 = g.op("Pow", &[&beta_1, &skipped], "catch_up/beta_1_power_k");
    let decay_2 = g.op("Pow", &[&beta_2, &skipped], "catch_up/beta_2_power_k");
    let m_caught_up = g.op("Mul", &[&rows_m, &decay_1], "catch_up/embedding_rows_m");
    let v_caught_up = g.op("Mul", &[&rows_v, &decay_2], "catch_up/embedding_rows_v");

    let mut adam_step =
        |name: &str, param: &str, m: &str, v: &str, grad: &str, outputs: [&str; 3]| {
            let m_delta = g.op("Sub", &[grad, m], &format!("{name}/m_delta"));
            let m_delta = g.op(
                "Mul",
                &[&m_delta, &one_minus_beta_1],
                &format!("{name}/m_step"),
            );
            let m_new = g.op("Add", &[m, &m_delta], outputs[1]);
            let grad_squared = g.op("Mul", &[grad, grad], &format!("{name}/grad_squared"));
            let v_delta = g.op("Sub", &[&grad_squared, v], &format!("{name}/v_delta"));
            let v_delta = g.op(
                "Mul",
                &[&v_delta, &one_minus_beta_2],
                &format!("{name}/v_step"),
            );
            let v_new = g.op("Add", &[v, &v_delta], outputs[2]);
            let scaled_m = g.op("Mul", &[&m_new, &alpha], &format!("{name}/scaled_m"));
            let root = g.op("Sqrt", &[&v_new], &format!("{name}/sqrt_v"));
            let denominator = g.op("Add", &[&root, &epsilon], &format!("{name}/denominator"));
            let update = g.op("Div", &[&scaled_m, &denominator], &format!("{name}/update"));
            g.op("Sub", &[param, &update], outputs[0]);
        };
    adam_step(
        "adam/embedding_rows",
        &rows_caught_up,
        &m_caught_up,
        &v_caught_up,
        &rows_grad,
        [ROWS_UPDATED, ROWS_M_UPDATED, ROWS_V_UPDATED],
    );
    adam_step(
        "adam/dense",
        &dense,
        &dense_m,
        &dense_v,
        &dense_grad,
        [DENSE_UPDATED, DENSE_M_UPDATED, DENSE_V_UPDATED],
    );

    for output in [ROWS_UPDATED, ROWS_M_UPDATED, ROWS_V_UPDATED] {
        g.output(output, float, &rows_shape);
    }
    for output in [DENSE_UPDATED, DENSE_M_UPDATED, DENSE_V_UPDATED] {
        g.output(output, float, &dense_shape);
    }
    g.finish(
        "warez-pipe Adam step (Keras semantics) for the dense parameters and the batch's \
         embedding rows, with the exact catch-up of the zero-gradient steps each row sat out",
    )
}

/// Constants of the catch-up, computed in f64 from the float32 hyperparameters.
struct CatchUpTables {
    /// `[last_step + 1, 4]`: H_m(s) = Σ_{j≥1} A(s+j)·q_mʲ for s = 0..=last_step, m = 0..3.
    discounted_sums: Vec<f32>,
    /// q_m = β₁·β₂^{m/2}, m = 0..3.
    ratios: Vec<f32>,
    /// `[4, 4]`: row m, column n holds C(n, m)·(−1)ᵐ, so `U·binomial` gives the T_n.
    binomial: Vec<f32>,
}

impl CatchUpTables {
    fn new(adam: &AdamConfig, last_step: u64) -> Self {
        let (beta_1, beta_2) = (f64::from(adam.beta_1), f64::from(adam.beta_2));
        let ratios: Vec<f64> = (0..SERIES_TERMS)
            .map(|m| beta_1 * beta_2.powf(m as f64 / 2.0))
            .collect();
        // A(t) = α_t / lr.
        let alpha = |t: u64| {
            let t = t as f64;
            (1.0 - beta_2.powf(t)).sqrt() / (1.0 - beta_1.powf(t))
        };
        // H(s) = q·(A(s+1) + H(s+1)), from far enough past the last step that H ≈ 0 there.
        let mut discounted_sums = vec![0.0f32; (last_step as usize + 1) * SERIES_TERMS];
        let mut sums = [0.0f64; SERIES_TERMS];
        for s in (0..last_step + RECURSION_LEAD_IN).rev() {
            let next_alpha = alpha(s + 1);
            for (sum, ratio) in sums.iter_mut().zip(&ratios) {
                *sum = ratio * (next_alpha + *sum);
            }
            if s <= last_step {
                let row = s as usize * SERIES_TERMS;
                for (slot, sum) in discounted_sums[row..row + SERIES_TERMS]
                    .iter_mut()
                    .zip(&sums)
                {
                    *slot = *sum as f32;
                }
            }
        }
        let mut binomial = vec![0.0f32; SERIES_TERMS * SERIES_TERMS];
        for n in 0..SERIES_TERMS {
            let mut choose = 1.0f32;
            for m in 0..=n {
                let sign = if m % 2 == 0 { 1.0 } else { -1.0 };
                binomial[m * SERIES_TERMS + n] = sign * choose;
                choose = choose * (n - m) as f32 / (m + 1) as f32;
            }
        }
        Self {
            discounted_sums,
            ratios: ratios.iter().map(|&ratio| ratio as f32).collect(),
            binomial,
        }
    }
}
