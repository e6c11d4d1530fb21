//! Shared by the runtime and predict tests: the test Python (with `onnx`) and ONNX Runtime
//! locations from the environment `scripts/test` sets up, and a tiny eval-like model.
#![allow(dead_code)] // each test crate uses a different part

#[path = "../reference/mod.rs"]
mod reference;
#[allow(unused_imports)] // not every test crate calls each of them
pub use reference::{ort_dylib, test_python};

use std::path::Path;
use std::process::Command;

use warez_pipe::ml::model::params::ModelParams;

/// Writes `eval_model.onnx` (the serving graph's inputs, layers and output names, seeded random
/// weights) into `dir` with tests/make_eval_model.py, and returns its weights.
pub fn make_eval_model(
    dir: &Path,
    n_customers: usize,
    n_products: usize,
    n_factors: usize,
    seed: u64,
) -> ModelParams {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/make_eval_model.py");
    let output = Command::new(test_python())
        .arg(script)
        .arg(dir)
        .args([n_customers, n_products, n_factors].map(|n| n.to_string()))
        .arg(seed.to_string())
        .output()
        .expect("running WAREZ_TEST_PYTHON");
    assert!(
        output.status.success(),
        "make_eval_model.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let weights: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("weights.json")).unwrap()).unwrap();
    let tensor = |name: &str| -> Vec<f32> {
        weights[name]
            .as_array()
            .unwrap_or_else(|| panic!("weights.json lacks {name}"))
            .iter()
            .map(|value| value.as_f64().unwrap() as f32)
            .collect()
    };
    ModelParams {
        n_customers,
        n_products,
        n_factors,
        customer_embedding: tensor("customer_embedding"),
        product_embedding: tensor("product_embedding"),
        dense_1_kernel: tensor("dense_1/kernel"),
        dense_1_bias: tensor("dense_1/bias"),
        dense_2_kernel: tensor("dense_2/kernel"),
        dense_2_bias: tensor("dense_2/bias"),
    }
}
