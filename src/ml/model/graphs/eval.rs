//! The eval (serving) graph, `eval_model.onnx`: the Keras model's inference path with the trained
//! weights as initializers and no dropout.
//!
//! Inputs [`INPUT_USER`], [`INPUT_PRODUCT`]: float32 `[N, 1]` holding mapped ids (as the Keras
//! model takes them); output [`OUTPUT`] float32 `[N, 1]`. Nodes: `Cast` to int64 → `Gather` on
//! each embedding (`[N, 1, k]`) → `Flatten` → `Concat` → `dense_1` (MatMul, BiasAdd, Relu) →
//! `dense_2` (MatMul, BiasAdd), named after the Keras layers.
//!
//! The trainer writes it with [`write`], which streams the embedding tables from its own buffers
//! into the file instead of copying them into the model first.
//!
//! # The scorer: the same layers after the lookup
//! The trainer scores its validation rows with [`scorer`]: the eval graph's nodes from
//! `concatenate` on, whose input [`FEATURES`] `[N, 2k]` is each pair's customer row followed by
//! its product row, which the trainer gathers from its own tables (as it gathers a training
//! step's rows). Loading the eval graph instead would give ONNX Runtime a second copy of the
//! tables, as large as the trainer's parameters; the scorer holds only the dense layers. Its
//! `dense_1`/`dense_2` nodes and initializers are the eval graph's, so its scores are the eval
//! graph's bit for bit (tests/train.rs checks it against `eval_model.onnx`).

use std::path::Path;

use anyhow::Result;

use super::GraphBuilder;
use crate::ml::model::onnx_proto::{self, tensor_proto::DataType, Attr, Dim, ModelProto, Payload};
use crate::ml::model::params::{
    ModelParams, ParamsView, CUSTOMER_EMBEDDING, DENSE_1_BIAS, DENSE_1_KERNEL, DENSE_2_BIAS,
    DENSE_2_KERNEL, INPUT_PRODUCT, INPUT_USER, OUTPUT, PRODUCT_EMBEDDING,
};

/// Input of the [`scorer`] graph: float32 `[N, 2k]`, each pair's customer row then its product row.
pub const FEATURES: &str = "features";

/// The eval graph carrying `params`, in memory.
pub fn build(params: &ModelParams) -> ModelProto {
    let mut model = frame(params.view());
    let tables = [
        (CUSTOMER_EMBEDDING, &params.customer_embedding),
        (PRODUCT_EMBEDDING, &params.product_embedding),
    ];
    let graph = model.graph.as_mut().expect("the frame has a graph");
    for tensor in &mut graph.initializer {
        if let Some((_, values)) = tables.iter().find(|(name, _)| *name == tensor.name) {
            *tensor = onnx_proto::tensor_f32(&tensor.name, &tensor.dims, values);
        }
    }
    model
}

/// Writes the eval graph carrying `params` to `path`, the tables streamed from their buffers.
pub fn write(path: &Path, params: ParamsView) -> Result<()> {
    let payloads = [
        Payload {
            name: CUSTOMER_EMBEDDING.into(),
            values: params.customer_embedding,
        },
        Payload {
            name: PRODUCT_EMBEDDING.into(),
            values: params.product_embedding,
        },
    ];
    onnx_proto::write_model_file(path, &frame(params), &payloads)
}

/// The eval graph with empty slots for the embedding tables.
fn frame(params: ParamsView) -> ModelProto {
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
    let customers = g.placeholder_f32(CUSTOMER_EMBEDDING, &[n_c, k]);
    let products = g.placeholder_f32(PRODUCT_EMBEDDING, &[n_p, k]);

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
    dense_layers(&mut g, &features, params);
    g.finish(
        "warez-pipe recommender (Keras DeepCollaborativeFiltering inference path): \
         user, product (mapped ids as float32 [N, 1]) -> dense_2/BiasAdd [N, 1]",
    )
}

/// The graph scoring pairs from their gathered embedding rows with `params`' dense layers (see
/// the module doc); the embedding tables in `params` are not read.
pub fn scorer(params: ParamsView) -> ModelProto {
    let k = params.n_factors as i64;
    let mut g = GraphBuilder::new("recommender_scorer");
    let features = g.input(
        FEATURES,
        DataType::Float,
        &[Dim::Named("N"), Dim::Fixed(2 * k)],
    );
    dense_layers(&mut g, &features, params);
    g.finish(
        "warez-pipe recommender's layers after the embedding lookup: features (a pair's \
         customer row then its product row, float32 [N, 2k]) -> dense_2/BiasAdd [N, 1]",
    )
}

/// `dense_1` (MatMul, BiasAdd, Relu) and `dense_2` (MatMul, BiasAdd) on `features` `[N, 2k]`,
/// with `params`' weights as initializers, and the graph output [`OUTPUT`] `[N, 1]`.
fn dense_layers(g: &mut GraphBuilder, features: &str, params: ParamsView) {
    let k = params.n_factors as i64;
    let w1 = g.constant_f32(DENSE_1_KERNEL, &[2 * k, k], params.dense_1_kernel);
    let b1 = g.constant_f32(DENSE_1_BIAS, &[k], params.dense_1_bias);
    let w2 = g.constant_f32(DENSE_2_KERNEL, &[k, 1], params.dense_2_kernel);
    let b2 = g.constant_f32(DENSE_2_BIAS, &[1], params.dense_2_bias);
    let hidden = g.op("MatMul", &[features, &w1], "dense_1/MatMul");
    let hidden = g.op("Add", &[&hidden, &b1], "dense_1/BiasAdd");
    let hidden = g.op("Relu", &[&hidden], "dense_1/Relu");
    let output = g.op("MatMul", &[&hidden, &w2], "dense_2/MatMul");
    g.op("Add", &[&output, &b2], OUTPUT);
    g.output(OUTPUT, DataType::Float, &[Dim::Named("N"), Dim::Fixed(1)]);
}
