//! The training graph: one step's forward pass, loss and gradients, for a batch of `batch`
//! (customer, product, rating) rows.
//!
//! It takes the batch's embedding rows, not the tables: [`EMBEDDING_ROWS`] `[rows, k]` holds the
//! distinct customer rows the batch uses followed by its distinct product rows, and
//! [`SAMPLE_ROWS`] (int64 `[batch, 2, 1]`) points each sample at its customer row and its product
//! row. So a step moves O(batch) data whatever the table sizes. The dense parameters come in
//! under their own names; the dropout masks (0 or 1/(1−rate), drawn by the trainer) and the
//! loss gradient's scale 2/B ([`GRADIENT_SCALE`]) come in as inputs too.
//!
//! ONNX Runtime spends a few µs on every node whatever its size, and a batch's tensors are small,
//! so the graph keeps its node count down: one `Gather` and a `Reshape` fetch both halves of
//! every sample's features, one `Reshape` and one `ScatterND` (onto `rows · 0`) return their
//! gradient, and each mask of a comparison is one node (`Sign`, `Where`) instead of a compare
//! and a cast.
//!
//! Forward (Keras `DeepCollaborativeFiltering`):
//! `x = concat(rows[customer row], rows[product row]) ⊙ mask₁`,
//! `h = x·W₁ + b₁`, `a = relu(h) ⊙ mask₂`, `ŷ = a·W₂ + b₂` (output [`PREDICTION`]).
//!
//! Loss (Keras `mean_squared_logarithmic_error`, mean over the batch, ε = 1e-7):
//! `L = mean((log(max(ŷ, ε) + 1) − log(max(y, ε) + 1))²)`.
//!
//! Gradients, by hand (`d` = log difference, B = batch size):
//! `∂L/∂ŷ = 2d/B / (max(ŷ, ε) + 1) · [ŷ ≥ ε]` (TensorFlow's `Maximum` gradient),
//! `∂b₂ = Σ_batch ∂ŷ`, `∂W₂ = aᵀ·∂ŷ`, `∂h = (∂ŷ·W₂ᵀ) ⊙ mask₂ ⊙ [h > 0]` (`[h > 0]` is
//! `sign(relu(h))`),
//! `∂b₁ = Σ_batch ∂h`, `∂W₁ = xᵀ·∂h`, `∂x = (∂h·W₁ᵀ) ⊙ mask₁`, and the embedding rows'
//! gradient scatters `∂x`'s two halves back onto their rows with `ScatterND(reduction=add)`,
//! so a row used by several samples gets the sum of their gradients (in sample order), as in
//! dense training.

use super::GraphBuilder;
use crate::ml::model::onnx_proto::{tensor_proto::DataType, Attr, Dim, ModelProto};
use crate::ml::model::params::{
    DENSE_1_BIAS, DENSE_1_KERNEL, DENSE_2_BIAS, DENSE_2_KERNEL, OUTPUT,
};

pub const EMBEDDING_ROWS: &str = "embedding_rows";
pub const SAMPLE_ROWS: &str = "sample_rows";
pub const RATING: &str = "rating";
pub const GRADIENT_SCALE: &str = "loss/gradient_scale";
pub const DROPOUT_1_MASK: &str = "dropout_1/mask";
pub const DROPOUT_2_MASK: &str = "dropout_2/mask";

pub const LOSS: &str = "loss";
/// The network's output, named as on the serving side.
pub const PREDICTION: &str = OUTPUT;
pub const EMBEDDING_ROWS_GRAD: &str = "embedding_rows_grad";
pub const DENSE_1_KERNEL_GRAD: &str = "dense_1/kernel_grad";
pub const DENSE_1_BIAS_GRAD: &str = "dense_1/bias_grad";
pub const DENSE_2_KERNEL_GRAD: &str = "dense_2/kernel_grad";
pub const DENSE_2_BIAS_GRAD: &str = "dense_2/bias_grad";

/// Keras' `backend.epsilon()`, the clamp in its MSLE.
pub const MSLE_EPSILON: f32 = 1e-7;

/// The training graph for `n_factors` = k.
pub fn build(n_factors: usize) -> ModelProto {
    let k = n_factors as i64;
    let batch = Dim::Named("batch");
    let float = DataType::Float;
    let mut g = GraphBuilder::new("recommender_training_step");
    add(&mut g, n_factors);
    g.output(LOSS, float, &[]);
    g.output(PREDICTION, float, &[batch, Dim::Fixed(1)]);
    g.output(
        EMBEDDING_ROWS_GRAD,
        float,
        &[Dim::Named("rows"), Dim::Fixed(k)],
    );
    g.output(
        DENSE_1_KERNEL_GRAD,
        float,
        &[Dim::Fixed(2 * k), Dim::Fixed(k)],
    );
    g.output(DENSE_1_BIAS_GRAD, float, &[Dim::Fixed(k)]);
    g.output(DENSE_2_KERNEL_GRAD, float, &[Dim::Fixed(k), Dim::Fixed(1)]);
    g.output(DENSE_2_BIAS_GRAD, float, &[Dim::Fixed(1)]);
    g.finish(
        "warez-pipe training step: forward with dropout masks, Keras MSLE loss, and hand-derived \
         gradients of the dense parameters and of the batch's embedding rows",
    )
}

/// Adds the training graph's inputs and nodes to `g` (its values under the names above).
fn add(g: &mut GraphBuilder, n_factors: usize) {
    let k = n_factors as i64;
    let batch = Dim::Named("batch");
    let float = DataType::Float;

    let rows = g.input(EMBEDDING_ROWS, float, &[Dim::Named("rows"), Dim::Fixed(k)]);
    let sample_rows = g.input(
        SAMPLE_ROWS,
        DataType::Int64,
        &[batch, Dim::Fixed(2), Dim::Fixed(1)],
    );
    let rating = g.input(RATING, float, &[batch, Dim::Fixed(1)]);
    let scale = g.input(GRADIENT_SCALE, float, &[]);
    let mask_1 = g.input(DROPOUT_1_MASK, float, &[batch, Dim::Fixed(2 * k)]);
    let mask_2 = g.input(DROPOUT_2_MASK, float, &[batch, Dim::Fixed(k)]);
    let w1 = g.input(DENSE_1_KERNEL, float, &[Dim::Fixed(2 * k), Dim::Fixed(k)]);
    let b1 = g.input(DENSE_1_BIAS, float, &[Dim::Fixed(k)]);
    let w2 = g.input(DENSE_2_KERNEL, float, &[Dim::Fixed(k), Dim::Fixed(1)]);
    let b2 = g.input(DENSE_2_BIAS, float, &[Dim::Fixed(1)]);

    let epsilon = g.scalar("msle/epsilon", MSLE_EPSILON);
    let one = g.scalar("one", 1.0);
    let zero = g.scalar("zero", 0.0);
    let batch_axis = g.constant_i64("batch_axis", &[1], &[0]);
    let features_shape = g.constant_i64("features_shape", &[2], &[-1, 2 * k]);
    let updates_shape = g.constant_i64("updates_shape", &[3], &[-1, 2, k]);

    // Forward.
    let embeddings = g.op_with(
        "Gather",
        &[&rows, &sample_rows],
        &[("axis", Attr::Int(0))],
        "embeddings/lookup",
    );
    let features = g.op("Reshape", &[&embeddings, &features_shape], "concatenate");
    let x = g.op("Mul", &[&features, &mask_1], "dropout_1");
    let h_linear = g.op("MatMul", &[&x, &w1], "dense_1/MatMul");
    let h = g.op("Add", &[&h_linear, &b1], "dense_1/BiasAdd");
    let relu = g.op("Relu", &[&h], "dense_1/Relu");
    let a = g.op("Mul", &[&relu, &mask_2], "dropout_2");
    let y_linear = g.op("MatMul", &[&a, &w2], "dense_2/MatMul");
    let y = g.op("Add", &[&y_linear, &b2], PREDICTION);

    // Loss.
    let y_clipped = g.op("Max", &[&y, &epsilon], "msle/clipped_prediction");
    let y_shifted = g.op("Add", &[&y_clipped, &one], "msle/prediction_plus_one");
    let log_y = g.op("Log", &[&y_shifted], "msle/log_prediction");
    let t_clipped = g.op("Max", &[&rating, &epsilon], "msle/clipped_rating");
    let t_shifted = g.op("Add", &[&t_clipped, &one], "msle/rating_plus_one");
    let log_t = g.op("Log", &[&t_shifted], "msle/log_rating");
    let d = g.op("Sub", &[&log_y, &log_t], "msle/log_difference");
    let squared = g.op("Mul", &[&d, &d], "msle/squared");
    g.op_with(
        "ReduceMean",
        &[&squared],
        &[("keepdims", Attr::Int(0))],
        LOSS,
    );

    // Backward.
    let d_d = g.op("Mul", &[&d, &scale], "grad/log_difference");
    let d_clipped = g.op("Div", &[&d_d, &y_shifted], "grad/clipped_prediction");
    let passes = g.op(
        "GreaterOrEqual",
        &[&y, &epsilon],
        "grad/prediction_not_clipped",
    );
    let d_y = g.op("Where", &[&passes, &d_clipped, &zero], "grad/prediction");

    g.op_with(
        "ReduceSum",
        &[&d_y, &batch_axis],
        &[("keepdims", Attr::Int(0))],
        DENSE_2_BIAS_GRAD,
    );
    g.op_with(
        "Gemm",
        &[&a, &d_y],
        &[("transA", Attr::Int(1))],
        DENSE_2_KERNEL_GRAD,
    );
    let d_a = g.op_with(
        "Gemm",
        &[&d_y, &w2],
        &[("transB", Attr::Int(1))],
        "grad/dropout_2",
    );
    let d_relu = g.op("Mul", &[&d_a, &mask_2], "grad/dense_1/Relu");
    let active = g.op("Sign", &[&relu], "grad/dense_1/active");
    let d_h = g.op("Mul", &[&d_relu, &active], "grad/dense_1/BiasAdd");
    g.op_with(
        "ReduceSum",
        &[&d_h, &batch_axis],
        &[("keepdims", Attr::Int(0))],
        DENSE_1_BIAS_GRAD,
    );
    g.op_with(
        "Gemm",
        &[&x, &d_h],
        &[("transA", Attr::Int(1))],
        DENSE_1_KERNEL_GRAD,
    );
    let d_x = g.op_with(
        "Gemm",
        &[&d_h, &w1],
        &[("transB", Attr::Int(1))],
        "grad/dropout_1",
    );
    let d_features = g.op("Mul", &[&d_x, &mask_1], "grad/concatenate");
    let updates = g.op(
        "Reshape",
        &[&d_features, &updates_shape],
        "grad/embeddings/lookup",
    );
    let zero_rows = g.op("Mul", &[&rows, &zero], "grad/zero_rows");
    g.op_with(
        "ScatterND",
        &[&zero_rows, &sample_rows, &updates],
        &[("reduction", Attr::Str("add"))],
        EMBEDDING_ROWS_GRAD,
    );
}
