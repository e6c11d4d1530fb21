//! The `export_tf` stage kind: the trained parameters (`checkpoint.onnx`) as a frozen TensorFlow
//! GraphDef (`graph`) and a SavedModel folder (`saved_model`), both written from Rust; see
//! [`crate::ml::model::tf_export`] for what the graph holds and why the SavedModel looks as it does.

use anyhow::{Context, Result};

use crate::engine::kind::{OutputRole, ParamSpec, Params, StageContext, StageKind, Steps};
use crate::ml::model::{checkpoint, tf_export};

pub struct ExportTf;

impl StageKind for ExportTf {
    fn name(&self) -> &'static str {
        "export_tf"
    }
    fn version(&self) -> u32 {
        1
    }
    fn inputs(&self) -> &'static [&'static str] {
        &["checkpoint"]
    }
    fn outputs(&self) -> &'static [OutputRole] {
        &[
            OutputRole {
                role: "graph",
                default_name: "optimized_ProductRecommender.pb",
            },
            OutputRole {
                role: "saved_model",
                default_name: "saved_model",
            },
        ]
    }
    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    fn check_params(&self, _params: &Params) -> Result<()> {
        Ok(())
    }
    fn run(&self, ctx: &StageContext) -> Result<()> {
        // Each step is one pass over the tables (seconds each at millions of customers).
        let steps = Steps::start(
            ctx.progress,
            &[
                "reading the checkpoint",
                "building the frozen graph",
                "encoding the graph",
                "writing the graph",
                "writing the SavedModel",
            ],
        );
        steps.begin(0);
        let params =
            checkpoint::read_params(ctx.input("checkpoint")?).context("input `checkpoint`")?;
        steps.begin(1);
        let graph = tf_export::frozen_graph(&params).context("input `checkpoint`")?;
        let shape = format!(
            "{} customers × {} products, k = {}",
            params.n_customers, params.n_products, params.n_factors
        );
        // Each copy of the tables is dropped as soon as the next one is made: the parameters,
        // then the graph message; both files are written from the one encoding.
        drop(params);
        let summary = tf_export::GraphSummary::of(&graph);
        steps.begin(2);
        let encoded = tf_export::encode_graph(&graph);
        drop(graph);
        steps.begin(3);
        tf_export::write_graph(ctx.output("graph")?, &encoded).context("output `graph`")?;
        steps.begin(4);
        tf_export::write_saved_model(ctx.output("saved_model")?, &encoded)
            .context("output `saved_model`")?;
        steps.finish();
        ctx.progress.println(&format!(
            "frozen graph: {} nodes, inputs {}, output {}; {shape}",
            summary.nodes,
            summary.inputs.join(", "),
            summary.outputs.join(", "),
        ));
        Ok(())
    }
}
