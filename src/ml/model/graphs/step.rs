//! The step graph the trainer runs: the [`training`] graph and the [`optimizer`] graph composed
//! into one, so a training step is one ONNX Runtime run instead of two.
//!
//! Both halves are added by the same builders that write `training_model.onnx` and
//! `optimizer_model.onnx` ([`training::add`], [`optimizer::add`]): the files a user gets are
//! exactly the two halves of what runs, and nothing about them changes. What the composition adds
//! is the glue between them: the training half's gradients are flattened and concatenated (three
//! `Reshape`s, one `Concat`) into the optimizer half's gradient of [`optimizer::PARAMS`], where
//! the two-run step copied them out of one run's outputs and back into the next run's inputs.
//!
//! The training half's parameters and the optimizer half's [`optimizer::PARAMS`] are the same
//! numbers: `params` is the batch's embedding rows followed by the dense layers, and the trainer
//! feeds [`training::EMBEDDING_ROWS`] and the four dense inputs as views of that one buffer (ONNX
//! Runtime never writes to an input). Outputs: [`training::LOSS`] and every optimizer output; the
//! gradients and the prediction stay inside the run.
//!
//! Why fuse: one run saves a run's fixed cost (binding ten inputs and seven outputs, allocating
//! the outputs) and the trainer's copies of the gradients and of the dense layers between the two
//! runs, for four glue nodes: about 16 µs of CPU per batch-64 step on a 2-core Xeon (~6%,
//! BENCHMARKS.md). The arithmetic is the two graphs' own, node for node, so a fused step gives
//! the same bits as the two runs (tests/train_graphs.rs checks it). The step graph itself is not
//! a train-stage output: it is the two files composed, plus the glue above.

use super::{optimizer, training, GraphBuilder};
use crate::ml::model::onnx_proto::{tensor_proto::DataType, Attr, ModelProto};

/// The step graph for `n_factors` = k (see the module doc).
pub fn build(n_factors: usize, adam: &optimizer::AdamConfig) -> ModelProto {
    let mut g = GraphBuilder::new("recommender_fused_step");
    training::add(&mut g, n_factors);
    let flat = g.constant_i64("step/flat_shape", &[1], &[-1]);
    let flattened = |g: &mut GraphBuilder, name: &str| {
        g.op("Reshape", &[name, &flat], &format!("step/flat/{name}"))
    };
    let rows_grad = flattened(&mut g, training::EMBEDDING_ROWS_GRAD);
    let kernel_1_grad = flattened(&mut g, training::DENSE_1_KERNEL_GRAD);
    let kernel_2_grad = flattened(&mut g, training::DENSE_2_KERNEL_GRAD);
    // The order of `params`: the rows, then the dense layers as the trainer packs them.
    let params_grad = g.op_with(
        "Concat",
        &[
            &rows_grad,
            &kernel_1_grad,
            training::DENSE_1_BIAS_GRAD,
            &kernel_2_grad,
            training::DENSE_2_BIAS_GRAD,
        ],
        &[("axis", Attr::Int(0))],
        "step/params_grad",
    );
    g.output(training::LOSS, DataType::Float, &[]);
    optimizer::add(&mut g, n_factors, adam, Some(&params_grad));
    g.finish(
        "warez-pipe fused training step: the training graph (forward, Keras MSLE loss, gradients) \
         feeding the optimizer graph (Keras Adam on the batch's rows and the dense layers, \
         catch-up of lagging rows) in one run",
    )
}
