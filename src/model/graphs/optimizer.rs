//! The optimizer graph: one Adam step (Keras semantics) for the dense parameters and for the
//! embedding rows of a batch, with the catch-up that gives those rows dense-Adam results at
//! O(batch) cost.
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
//! `α_t·m/(√v + ε)`. The trainer feeds a row only when a batch uses it, with the step `s` it was
//! last brought up to date ([`ROWS_LAST_STEP`]); the graph first replays the k = t − 1 − s
//! zero-gradient steps s+1 … t−1 it sat out, then applies step t with the batch's gradient.
//! Replaying, with x = √v_s, y = x + ε, b_j = β₂^{j/2}:
//!
//! `θ ← θ_s − m_s · Σ_{j=1..k} α_{s+j}·β₁ʲ / (b_j·x + ε)`,  `m ← β₁ᵏ·m_s`,  `v ← β₂ᵏ·v_s`.
//!
//! The sum is computed per row, not per step: since `b_j·x + ε = y − (1 − b_j)·x` and
//! `0 ≤ (1 − b_j)·x/y < 1`, `1/(b_j·x + ε) = Σ_n (1 − b_j)ⁿ·xⁿ / yⁿ⁺¹`, so
//!
//! `Σ_j α_{s+j}·β₁ʲ / (b_j·x + ε) = Σ_{n=0..3} T_n · xⁿ / yⁿ⁺¹`, `T_n = Σ_{j=1..min(k, J)} α_{s+j}·β₁ʲ·(1 − b_j)ⁿ`.
//!
//! The T_n are one `[rows, J] × [J, 4]` matrix product per step (α_{s+j} from β₁ˢ, β₂ˢ and
//! tabulated β₁ʲ, β₂ʲ), the rest is elementwise over `[rows, k]`. Two truncations, both below
//! float32 rounding:
//! - the terms shrink by at least β₁/√β₂ ≈ 0.9005 per skipped step, so steps more than
//!   J = [`CATCH_UP_STEPS`] = 160 back add less than 0.9005¹⁶⁰ ≈ 5·10⁻⁸ of the row's whole
//!   catch-up; they are left out (the moments still decay by the full β₁ᵏ, β₂ᵏ);
//! - the series in n is cut after n = 3: (1 − b_j) ≈ j/2000 and the weights β₁ʲ keep j small,
//!   so T₄/T₀ ≈ 10⁻⁸.
//!
//! So every embedding row follows Keras' dense Adam up to float32 rounding (and the bounded
//! tails above), while a step touches only the batch's rows. At the end of every epoch the
//! trainer replays the rest for every row (zero gradient, t = the last step), so the weights it
//! evaluates, exports and checkpoints are the dense-Adam weights.

use super::GraphBuilder;
use crate::model::onnx_proto::{Attr, DataType, Dim, ModelProto};

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

/// J: how many skipped steps the catch-up replays term by term (see the module doc).
pub const CATCH_UP_STEPS: usize = 160;
/// Terms of the series in ε (n = 0..3).
const SERIES_TERMS: usize = 4;

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

/// The optimizer graph for `n_factors` = k.
pub fn build(n_factors: usize, adam: &AdamConfig) -> ModelProto {
    let k = n_factors as i64;
    let float = DataType::Float;
    let rows_shape = [Dim::Named("rows"), Dim::Fixed(k)];
    let dense_shape = [Dim::Named("dense")];
    let mut g = GraphBuilder::new("recommender_adam_step");

    let step = g.input(STEP, float, &[]);
    let rows = g.input(ROWS, float, &rows_shape);
    let rows_m = g.input(ROWS_M, float, &rows_shape);
    let rows_v = g.input(ROWS_V, float, &rows_shape);
    let rows_grad = g.input(ROWS_GRAD, float, &rows_shape);
    let last_step = g.input(ROWS_LAST_STEP, float, &[Dim::Named("rows"), Dim::Fixed(1)]);
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
    let beta_1_power = g.op("Pow", &[&beta_1, &step], "adam/beta_1_power");
    let beta_2_power = g.op("Pow", &[&beta_2, &step], "adam/beta_2_power");
    let bias_1 = g.op("Sub", &[&one, &beta_1_power], "adam/one_minus_beta_1_power");
    let bias_2 = g.op("Sub", &[&one, &beta_2_power], "adam/one_minus_beta_2_power");
    let bias_2 = g.op("Sqrt", &[&bias_2], "adam/sqrt_one_minus_beta_2_power");
    let alpha = g.op("Div", &[&bias_2, &bias_1], "adam/alpha_over_lr");
    let alpha = g.op("Mul", &[&alpha, &learning_rate], "adam/alpha");

    // The embedding rows' catch-up of the steps they sat out (module doc).
    let catch_up = catch_up_tables(adam);
    let step_index = g.constant_f32(
        "catch_up/j",
        &[1, CATCH_UP_STEPS as i64],
        &catch_up.step_index,
    );
    let beta_1_j = g.constant_f32(
        "catch_up/beta_1_power_j",
        &[1, CATCH_UP_STEPS as i64],
        &catch_up.beta_1_power,
    );
    let beta_2_j = g.constant_f32(
        "catch_up/beta_2_power_j",
        &[1, CATCH_UP_STEPS as i64],
        &catch_up.beta_2_power,
    );
    let weights = g.constant_f32(
        "catch_up/series_weights",
        &[CATCH_UP_STEPS as i64, SERIES_TERMS as i64],
        &catch_up.series_weights,
    );
    let before = g.op("Sub", &[&step, &one], "catch_up/previous_step");
    let skipped = g.op("Sub", &[&before, &last_step], "catch_up/skipped");
    let beta_1_s = g.op("Pow", &[&beta_1, &last_step], "catch_up/beta_1_power_s");
    let beta_2_s = g.op("Pow", &[&beta_2, &last_step], "catch_up/beta_2_power_s");
    let beta_1_sj = g.op("Mul", &[&beta_1_s, &beta_1_j], "catch_up/beta_1_power_s_j");
    let beta_2_sj = g.op("Mul", &[&beta_2_s, &beta_2_j], "catch_up/beta_2_power_s_j");
    let bias_1_sj = g.op(
        "Sub",
        &[&one, &beta_1_sj],
        "catch_up/one_minus_beta_1_power",
    );
    let bias_2_sj = g.op(
        "Sub",
        &[&one, &beta_2_sj],
        "catch_up/one_minus_beta_2_power",
    );
    let bias_2_sj = g.op(
        "Sqrt",
        &[&bias_2_sj],
        "catch_up/sqrt_one_minus_beta_2_power",
    );
    let alpha_sj = g.op("Div", &[&bias_2_sj, &bias_1_sj], "catch_up/alpha_over_lr");
    let sat_out = g.op("LessOrEqual", &[&step_index, &skipped], "catch_up/sat_out");
    let zero = g.scalar("zero", 0.0);
    let alpha_sj = g.op(
        "Where",
        &[&sat_out, &alpha_sj, &zero],
        "catch_up/alpha_over_lr_sat_out",
    );
    let series = g.op("MatMul", &[&alpha_sj, &weights], "catch_up/series");
    let terms: Vec<String> = (0..SERIES_TERMS)
        .map(|n| format!("catch_up/series_{n}"))
        .collect();
    let term_names: Vec<&str> = terms.iter().map(String::as_str).collect();
    g.op_multi(
        "Split",
        &[&series],
        &[
            ("axis", Attr::Int(1)),
            ("num_outputs", Attr::Int(SERIES_TERMS as i64)),
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
    /// j = 1..J.
    step_index: Vec<f32>,
    /// β₁ʲ.
    beta_1_power: Vec<f32>,
    /// β₂ʲ.
    beta_2_power: Vec<f32>,
    /// `[J, 4]`: β₁ʲ·(1 − β₂^{j/2})ⁿ, n = 0..3 (the T_n weights, without α and lr).
    series_weights: Vec<f32>,
}

fn catch_up_tables(adam: &AdamConfig) -> CatchUpTables {
    let (beta_1, beta_2) = (f64::from(adam.beta_1), f64::from(adam.beta_2));
    let steps = 1..=CATCH_UP_STEPS as i32;
    let mut series_weights = Vec::with_capacity(CATCH_UP_STEPS * SERIES_TERMS);
    for j in steps.clone() {
        let gap = 1.0 - beta_2.powf(f64::from(j) / 2.0);
        for n in 0..SERIES_TERMS as i32 {
            series_weights.push((beta_1.powi(j) * gap.powi(n)) as f32);
        }
    }
    CatchUpTables {
        step_index: steps.clone().map(|j| j as f32).collect(),
        beta_1_power: steps.clone().map(|j| beta_1.powi(j) as f32).collect(),
        beta_2_power: steps.map(|j| beta_2.powi(j) as f32).collect(),
        series_weights,
    }
}
