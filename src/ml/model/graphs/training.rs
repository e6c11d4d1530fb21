//! The training graph: one step's forward pass, loss and gradients, for a batch of `batch`
//! (customer, product, rating) rows.
//!
//! It takes the batch's embedding rows, not the tables: [`EMBEDDING_ROWS`] `[rows, k]` holds the
//! distinct customer rows the batch uses followed by its distinct product rows, and
//! [`CUSTOMER_ROW`] / [`PRODUCT_ROW`] (int64 `[batch]`) point each sample at its two rows. So a
//! step moves O(batch) data whatever the table sizes. The dense parameters come in under their
//! own names; the dropout masks (0 or 1/(1−rate), drawn by the trainer) come in as inputs too.
//!
//! Forward (Keras `DeepCollaborativeFiltering`):
//! `x = concat(rows[customer_row], rows[product_row]) ⊙ mask₁`,
//! `h = x·W₁ + b₁`, `a = relu(h) ⊙ mask₂`, `ŷ = a·W₂ + b₂` (output [`PREDICTION`]).
//!
//! Loss (Keras `mean_squared_logarithmic_error`, mean over the batch, ε = 1e-7):
//! `L = mean((log(max(ŷ, ε) + 1) − log(max(y, ε) + 1))²)`.
//!
//! Gradients, by hand (`d` = log difference, B = batch size):
//! `∂L/∂ŷ = 2d/B / (max(ŷ, ε) + 1) · [ŷ ≥ ε]` (TensorFlow's `Maximum` gradient),
//! `∂b₂ = Σ_batch ∂ŷ`, `∂W₂ = aᵀ·∂ŷ`, `∂h = (∂ŷ·W₂ᵀ) ⊙ mask₂ ⊙ [h > 0]`,
//! `∂b₁ = Σ_batch ∂h`, `∂W₁ = xᵀ·∂h`, `∂x = (∂h·W₁ᵀ) ⊙ mask₁`, and the embedding rows'
//! gradient scatters `∂x`'s two halves back onto their rows with `ScatterND(reduction=add)`,
//! so a row used by several samples gets the sum of their gradients, as in dense training.

use super::GraphBuilder;
use crate::ml::model::onnx_proto::{tensor_proto::DataType, Attr, Dim, ModelProto};
use crate::ml::model::params::{
    DENSE_1_BIAS, DENSE_1_KERNEL, DENSE_2_BIAS, DENSE_2_KERNEL, OUTPUT,
};

pub const EMBEDDING_ROWS: &str = "embedding_rows";
pub const CUSTOMER_ROW: &str = "customer_row";
pub const PRODUCT_ROW: &str = "product_row";
pub const RATING: &str = "rating";
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
    let mut g = GraphBuilder::new("recommender_training_step");
    let float = DataType::Float;

    let rows = g.input(EMBEDDING_ROWS, float, &[Dim::Named("rows"), Dim::Fixed(k)]);
    let customer_row = g.input(CUSTOMER_ROW, DataType::Int64, &[batch]);
    let product_row = g.input(PRODUCT_ROW, DataType::Int64, &[batch]);
    let rating = g.input(RATING, float, &[batch, Dim::Fixed(1)]);
    let mask_1 = g.input(DROPOUT_1_MASK, float, &[batch, Dim::Fixed(2 * k)]);
    let mask_2 = g.input(DROPOUT_2_MASK, float, &[batch, Dim::Fixed(k)]);
    let w1 = g.input(DENSE_1_KERNEL, float, &[Dim::Fixed(2 * k), Dim::Fixed(k)]);
    let b1 = g.input(DENSE_1_BIAS, float, &[Dim::Fixed(k)]);
    let w2 = g.input(DENSE_2_KERNEL, float, &[Dim::Fixed(k), Dim::Fixed(1)]);
    let b2 = g.input(DENSE_2_BIAS, float, &[Dim::Fixed(1)]);

    let epsilon = g.scalar("msle/epsilon", MSLE_EPSILON);
    let one = g.scalar("one", 1.0);
    let two = g.scalar("two", 2.0);
    let zero = g.scalar("zero", 0.0);
    let batch_axis = g.constant_i64("batch_axis", &[1], &[0]);

    // Forward.
    let customer = g.op_with(
        "Gather",
        &[&rows, &customer_row],
        &[("axis", Attr::Int(0))],
        "customer_embedding/lookup",
    );
    let product = g.op_with(
        "Gather",
        &[&rows, &product_row],
        &[("axis", Attr::Int(0))],
        "product_embedding/lookup",
    );
    let features = g.op_with(
        "Concat",
        &[&customer, &product],
        &[("axis", Attr::Int(1))],
        "concatenate",
    );
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
    let loss = g.op_with(
        "ReduceMean",
        &[&squared],
        &[("keepdims", Attr::Int(0))],
        LOSS,
    );

    // Backward.
    let count = g.op("Size", &[&rating], "msle/count");
    let count = g.op_with(
        "Cast",
        &[&count],
        &[("to", Attr::Int(DataType::Float as i64))],
        "msle/count_float",
    );
    let scale = g.op("Div", &[&two, &count], "grad/two_over_batch");
    let d_d = g.op("Mul", &[&d, &scale], "grad/log_difference");
    let d_clipped = g.op("Div", &[&d_d, &y_shifted], "grad/clipped_prediction");
    let passes = g.op(
        "GreaterOrEqual",
        &[&y, &epsilon],
        "grad/prediction_not_clipped",
    );
    let passes = g.op_with(
        "Cast",
        &[&passes],
        &[("to", Attr::Int(DataType::Float as i64))],
        "grad/prediction_not_clipped_float",
    );
    let d_y = g.op("Mul", &[&d_clipped, &passes], "grad/prediction");

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
    let active = g.op("Greater", &[&h, &zero], "grad/dense_1/active");
    let active = g.op_with(
        "Cast",
        &[&active],
        &[("to", Attr::Int(DataType::Float as i64))],
        "grad/dense_1/active_float",
    );
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
    g.op_multi(
        "Split",
        &[&d_features],
        &[("axis", Attr::Int(1)), ("num_outputs", Attr::Int(2))],
        &[
            "grad/customer_embedding/lookup",
            "grad/product_embedding/lookup",
        ],
    );
    let last_axis = g.constant_i64("last_axis", &[1], &[1]);
    let customer_index = g.op(
        "Unsqueeze",
        &[&customer_row, &last_axis],
        "grad/customer_row_index",
    );
    let product_index = g.op(
        "Unsqueeze",
        &[&product_row, &last_axis],
        "grad/product_row_index",
    );
    let indices = g.op_with(
        "Concat",
        &[&customer_index, &product_index],
        &[("axis", Attr::Int(0))],
        "grad/row_indices",
    );
    let updates = g.op_with(
        "Concat",
        &[
            "grad/customer_embedding/lookup",
            "grad/product_embedding/lookup",
        ],
        &[("axis", Attr::Int(0))],
        "grad/row_updates",
    );
    let rows_shape = g.op("Shape", &[&rows], "grad/rows_shape");
    let zero_rows = g.op_with(
        "ConstantOfShape",
        &[&rows_shape],
        &[(
            "value",
            Attr::Tensor(crate::ml::model::onnx_proto::tensor_f32("", &[1], &[0.0])),
        )],
        "grad/zero_rows",
    );
    g.op_with(
        "ScatterND",
        &[&zero_rows, &indices, &updates],
        &[("reduction", Attr::Str("add"))],
        EMBEDDING_ROWS_GRAD,
    );

    g.output(&loss, float, &[]);
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
