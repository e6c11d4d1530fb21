//! The eval (serving) graph, `eval_model.onnx`: the Keras model's inference path with the trained
//! weights as initializers and no dropout.
//!
//! Inputs [`INPUT_USER`], [`INPUT_PRODUCT`]: float32 `[N, 1]` holding mapped ids (as the Keras
//! model takes them); output [`OUTPUT`] float32 `[N, 1]`. Nodes: `Cast` to int64 → `Gather` on
//! each embedding (`[N, 1, k]`) → `Flatten` → `Concat` → `dense_1` (MatMul, BiasAdd, Relu) →
//! `dense_2` (MatMul, BiasAdd), named after the Keras layers.

use super::GraphBuilder;
use crate::ml::model::onnx_proto::{tensor_proto::DataType, Attr, Dim, ModelProto};
use crate::ml::model::params::{
    ModelParams, CUSTOMER_EMBEDDING, DENSE_1_BIAS, DENSE_1_KERNEL, DENSE_2_BIAS, DENSE_2_KERNEL,
    INPUT_PRODUCT, INPUT_USER, OUTPUT, PRODUCT_EMBEDDING,
};

/// The eval graph carrying `params`.
pub fn build(params: &ModelParams) -> ModelProto {
    let (n_c, n_p, k) = (
        params.n_customers as i64,
        params.n_products as i64,
        params.n_factors as i64,
    );
    let float = DataType::Float;
    let pairs = Dim::Named("N");
    let mut g = GraphBuilder::new("recommender");
    let user = g.input(INPUT_USER, float, &[pairs, Dim::Fixed(1)]);
    let product = g.input(INPUT_PRODUCT, float, &[pairs, Dim::Fixed(1)]);
    let customers = g.constant_f32(CUSTOMER_EMBEDDING, &[n_c, k], &params.customer_embedding);
    let products = g.constant_f32(PRODUCT_EMBEDDING, &[n_p, k], &params.product_embedding);
    let w1 = g.constant_f32(DENSE_1_KERNEL, &[2 * k, k], &params.dense_1_kernel);
    let b1 = g.constant_f32(DENSE_1_BIAS, &[k], &params.dense_1_bias);
    let w2 = g.constant_f32(DENSE_2_KERNEL, &[k, 1], &params.dense_2_kernel);
    let b2 = g.constant_f32(DENSE_2_BIAS, &[1], &params.dense_2_bias);

    let mut embed = |ids: &str, table: &str, layer: &str| {
        let index = g.op_with(
            "Cast",
            &[ids],
            &[("to", Attr::Int(DataType::Int64 as i64))],
            &format!("{layer}/Cast"),
        );
        let looked_up = g.op_with(
            "Gather",
            &[table, &index],
            &[("axis", Attr::Int(0))],
            &format!("{layer}/embedding_lookup"),
        );
        g.op_with(
            "Flatten",
            &[&looked_up],
            &[("axis", Attr::Int(1))],
            &format!("flatten_{layer}"),
        )
    };
    let user_features = embed(&user, &customers, CUSTOMER_EMBEDDING);
    let product_features = embed(&product, &products, PRODUCT_EMBEDDING);
    let features = g.op_with(
        "Concat",
        &[&user_features, &product_features],
        &[("axis", Attr::Int(1))],
        "concatenate",
    );
    let hidden = g.op("MatMul", &[&features, &w1], "dense_1/MatMul");
    let hidden = g.op("Add", &[&hidden, &b1], "dense_1/BiasAdd");
    let hidden = g.op("Relu", &[&hidden], "dense_1/Relu");
    let output = g.op("MatMul", &[&hidden, &w2], "dense_2/MatMul");
    g.op("Add", &[&output, &b2], OUTPUT);
    g.output(OUTPUT, float, &[pairs, Dim::Fixed(1)]);
    g.finish(
        "warez-pipe recommender (Keras DeepCollaborativeFiltering inference path): \
         user, product (mapped ids as float32 [N, 1]) -> dense_2/BiasAdd [N, 1]",
    )
}
