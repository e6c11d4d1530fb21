//! Shared by the train tests: ONNX Runtime and the test Python from the environment
//! `scripts/test` sets up (a clear failure when they are missing), the small data set, and a
//! helper that trains into a temporary folder.
#![allow(dead_code)] // each test crate uses a different part

#[path = "../reference/mod.rs"]
mod reference;
#[allow(unused_imports)] // not every test crate calls each of them
pub use reference::test_python;

use std::path::{Path, PathBuf};

use warez_pipe::engine::kind::NoProgress;
use warez_pipe::ml::data::dataset::Ratings;
use warez_pipe::ml::data::reader::{read_ratings_file, OnBadRows};
use warez_pipe::ml::model::runtime;
use warez_pipe::ml::model::trainer::{self, ArtifactPaths, TrainConfig, Trained};

/// Loads ONNX Runtime from `ORT_DYLIB_PATH`; panics with the fix when it is not set.
pub fn init_onnxruntime() {
    reference::ort_dylib();
    runtime::ensure_onnxruntime(None).expect("loading ONNX Runtime from ORT_DYLIB_PATH");
}

/// The seed notebook's ratings (`data/ratings_uuid_small.csv`, a copy of the seed's small data set), ingested.
pub fn small_ratings() -> Ratings {
    let csv = concat!(env!("CARGO_MANIFEST_DIR"), "/data/ratings_uuid_small.csv");
    read_ratings_file(Path::new(csv), OnBadRows::Error, &NoProgress)
        .expect("reading data/ratings_uuid_small.csv")
        .ratings
}

/// The four ONNX artifacts' paths in `dir`.
pub struct Artifacts {
    pub training_model: PathBuf,
    pub optimizer_model: PathBuf,
    pub eval_model: PathBuf,
    pub checkpoint: PathBuf,
    pub checkpoint_data: PathBuf,
}

impl Artifacts {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            training_model: dir.join("training_model.onnx"),
            optimizer_model: dir.join("optimizer_model.onnx"),
            eval_model: dir.join("eval_model.onnx"),
            checkpoint: dir.join("checkpoint.onnx"),
            checkpoint_data: dir.join("checkpoint.onnx.data"),
        }
    }

    pub fn all(&self) -> [&Path; 5] {
        [
            &self.training_model,
            &self.optimizer_model,
            &self.eval_model,
            &self.checkpoint,
            &self.checkpoint_data,
        ]
    }
}

/// Trains on `ratings` with `config`, writing the artifacts into `dir`.
pub fn train(ratings: &Ratings, config: &TrainConfig, dir: &Path) -> (Trained, Artifacts) {
    init_onnxruntime();
    let artifacts = Artifacts::in_dir(dir);
    let paths = ArtifactPaths {
        training_model: &artifacts.training_model,
        optimizer_model: &artifacts.optimizer_model,
        eval_model: &artifacts.eval_model,
        checkpoint: &artifacts.checkpoint,
        checkpoint_data: &artifacts.checkpoint_data,
    };
    let trained = trainer::fit(ratings, config, &paths, &NoProgress).expect("training");
    (trained, artifacts)
}
