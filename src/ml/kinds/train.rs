//! The `train` stage kind: fits the recommender on `ratings.bin` in ONNX Runtime (see
//! [`crate::ml::model::trainer`]) and writes the training, optimizer and eval graphs, the checkpoint
//! (`checkpoint.onnx` with its external data `checkpoint.onnx.data`, output role
//! `checkpoint_data`, which must be declared in the same folder: the checkpoint names it by file
//! name) and `metrics.json`. Before reading the ratings it checks, from their header and the params,
//! that the run fits the machine's memory and the model's formats ([`limits`]).

use anyhow::{ensure, Context, Result};

use crate::engine::kind::{
    param_text, OutputRole, ParamSpec, Params, Reproducibility, StageContext, StageKind,
};
use crate::ml::data::dataset::Ratings;
use crate::ml::model::graphs::optimizer::AdamConfig;
use crate::ml::model::runtime;
use crate::ml::model::trainer::{self, limits, ArtifactPaths, TrainConfig};

pub struct Train;

impl Train {
    /// The params as a [`TrainConfig`], checked; errors name the param.
    pub fn config(params: &Params) -> Result<TrainConfig> {
        let count = |name: &str| -> Result<usize> {
            let value = params.u64(name)?;
            usize::try_from(value).with_context(|| format!("param `{name}`: {value} is too large"))
        };
        // The trainer computes in float32: a value that float32 rounds to something else than
        // a nearby number (to 0, to infinity, to 1 for a dropout) is named as written.
        let float32 = |name: &str| -> Result<f32> {
            let value = params.f64(name)?;
            let narrowed = value as f32;
            let collapsed = (narrowed == 0.0 && value != 0.0)
                || (narrowed.is_infinite() && value.is_finite())
                || (name == "dropout" && narrowed == 1.0 && value < 1.0);
            ensure!(
                !collapsed,
                "param `{name}`: {} is {narrowed} in float32, the precision the trainer \
                 computes in",
                param_text(&value.into())
            );
            Ok(narrowed)
        };
        let config = TrainConfig {
            n_factors: count("n_factors")?,
            dropout: float32("dropout")?,
            batch_size: count("batch_size")?,
            epochs: count("epochs")?,
            val_split: params.f64("val_split")?,
            adam: AdamConfig {
                learning_rate: float32("learning_rate")?,
                ..AdamConfig::default()
            },
            seed: params.u64("seed")?,
        };
        config.check()?;
        Ok(config)
    }
}

impl StageKind for Train {
    fn name(&self) -> &'static str {
        "train"
    }

    /// 3: the checkpoint's large tensors moved to the `checkpoint_data` output. 4:
    /// `optimizer_model.onnx` names its lagging rows' dimension `lagging_rows` (a fused step
    /// graph, since replaced, composed it with the training graph, whose `rows` differ).
    fn version(&self) -> u32 {
        4
    }

    fn inputs(&self) -> &'static [&'static str] {
        &["ratings"]
    }

    fn outputs(&self) -> &'static [OutputRole] {
        &[
            OutputRole {
                role: "training_model",
                default_name: "training_model.onnx",
            },
            OutputRole {
                role: "optimizer_model",
                default_name: "optimizer_model.onnx",
            },
            OutputRole {
                role: "eval_model",
                default_name: "eval_model.onnx",
            },
            OutputRole {
                role: "checkpoint",
                default_name: "checkpoint.onnx",
            },
            OutputRole {
                role: "checkpoint_data",
                default_name: "checkpoint.onnx.data",
            },
            OutputRole {
                role: "metrics",
                default_name: "metrics.json",
            },
        ]
    }

    fn params(&self) -> Vec<ParamSpec> {
        let defaults = TrainConfig::default();
        vec![
            ParamSpec::new(
                "n_factors",
                defaults.n_factors as u64,
                "embedding width and dense_1 width",
            ),
            ParamSpec::new(
                "dropout",
                f64::from(defaults.dropout),
                "dropout rate after the concatenation and after dense_1, in [0, 1)",
            ),
            ParamSpec::new("batch_size", defaults.batch_size as u64, "rows per step"),
            ParamSpec::new(
                "epochs",
                defaults.epochs as u64,
                "passes over the training rows",
            ),
            ParamSpec::new(
                "val_split",
                defaults.val_split,
                "share of rows, taken from the end, kept for validation (Keras validation_split)",
            ),
            ParamSpec::new(
                "learning_rate",
                f64::from(defaults.adam.learning_rate),
                "Adam's learning rate",
            ),
            ParamSpec::new(
                "seed",
                defaults.seed,
                "seeds initial weights, shuffling and dropout",
            ),
        ]
    }

    fn check_params(&self, params: &Params) -> Result<()> {
        Self::config(params).map(|_| ())
    }

    /// One ONNX Runtime thread runs the steps, one more feeds it batches.
    fn cores(&self) -> usize {
        2
    }

    fn reproducibility(&self) -> Reproducibility {
        Reproducibility::FloatResult
    }

    fn run(&self, ctx: &StageContext) -> Result<()> {
        let config = Self::config(ctx.params)?;
        let ratings_path = ctx.input("ratings")?;
        // What the run needs is checked from the header, before anything is allocated.
        let header = Ratings::read_header(ratings_path)?;
        let train_rows = usize::try_from(header.rows)
            .map_err(anyhow::Error::from)
            .and_then(|rows| trainer::training_rows(rows, config.val_split))
            .with_context(|| format!("input `ratings` ({})", ratings_path.display()))?;
        let shape = limits::RunShape::new(&header, train_rows as u64, &config);
        limits::check(&shape, limits::available_memory().as_ref())?;
        let ratings = Ratings::read(ratings_path)?;
        runtime::ensure_onnxruntime(Some(&ctx.tools_dir))?;
        let paths = ArtifactPaths {
            training_model: ctx.output("training_model")?,
            optimizer_model: ctx.output("optimizer_model")?,
            eval_model: ctx.output("eval_model")?,
            checkpoint: ctx.output("checkpoint")?,
            checkpoint_data: ctx.output("checkpoint_data")?,
        };
        let trained = trainer::fit(&ratings, &config, &paths, ctx.progress).context("training")?;
        trained.metrics.write_json(ctx.output("metrics")?)
    }
}
