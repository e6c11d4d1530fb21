//! Shared by the export and interop tests: seeded model parameters and the test Python.

#![allow(dead_code)] // each test binary uses its own part of this module

#[path = "../reference/mod.rs"]
mod reference;
#[allow(unused_imports)] // not every test crate calls each of them
pub use reference::test_python;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use warez_pipe::engine::kind::{NoProgress, Params, StageContext};
use warez_pipe::ml::data::idmap::IdMap;
use warez_pipe::ml::model::checkpoint::{self, AdamState};
use warez_pipe::ml::model::params::ModelParams;

/// Parameters with seeded random values, sized like a small trained model.
pub fn random_params(n_customers: usize, n_products: usize, k: usize, seed: u64) -> ModelParams {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values = |count: usize, scale: f32| -> Vec<f32> {
        (0..count)
            .map(|_| rng.random_range(-scale..scale))
            .collect()
    };
    ModelParams {
        n_customers,
        n_products,
        n_factors: k,
        customer_embedding: values(n_customers * k, 0.5),
        product_embedding: values(n_products * k, 0.5),
        dense_1_kernel: values(2 * k * k, 0.3),
        dense_1_bias: values(k, 0.1),
        dense_2_kernel: values(k, 0.3),
        dense_2_bias: values(1, 0.1),
    }
}

/// Every (customer, product) pair with a stride, so large models still give a few hundred pairs.
pub fn sample_pairs(params: &ModelParams, count: usize) -> Vec<(usize, usize)> {
    (0..count)
        .map(|i| (i * 7 % params.n_customers, i * 13 % params.n_products))
        .collect()
}

/// Runs `tests/interop/<script>` with the test Python; panics with its output when it fails.
pub fn run_python(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let output = Command::new(test_python())
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("running {}: {error}", path.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs a built-in stage kind directly, as the engine would: `inputs` and `outputs` are
/// role → path, `params` are added to the kind's defaults.
pub fn run_stage(
    kind: &str,
    inputs: &[(&str, &Path)],
    outputs: &[(&str, &Path)],
    params: &[(&str, serde_yaml::Value)],
) -> anyhow::Result<()> {
    let kind = warez_pipe::ml::registry()
        .find(kind)
        .expect("a built-in kind");
    let mut resolved = Params::default();
    for spec in kind.params() {
        resolved.insert(spec.name, spec.default);
    }
    for (name, value) in params {
        resolved.insert(*name, value.clone());
    }
    kind.check_params(&resolved)?;
    let project = tempfile::tempdir()?;
    let to_map = |pairs: &[(&str, &Path)]| -> BTreeMap<String, PathBuf> {
        pairs
            .iter()
            .map(|(role, path)| (role.to_string(), path.to_path_buf()))
            .collect()
    };
    let ctx = StageContext {
        stage: kind.name(),
        project_dir: project.path(),
        params: &resolved,
        inputs: to_map(inputs),
        outputs: to_map(outputs),
        tools_dir: project.path().join("tools"),
        progress: &NoProgress,
    };
    kind.run(&ctx)
}

/// The repository's Avro schema.
pub fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("avro/RecommenderModel.avsc")
}

/// A checkpoint, id maps and the schema in `dir`, for `params`; returns the checkpoint path.
pub fn write_checkpoint(dir: &Path, params: &ModelParams) -> PathBuf {
    let path = dir.join("checkpoint.onnx");
    let adam = AdamState::zeros_like(params);
    checkpoint::write(
        &path,
        &checkpoint::data_path(&path),
        params.view(),
        adam.view(),
    )
    .unwrap();
    path
}

/// Id maps with UUID-like ids for `params`' customers and products; returns their paths.
pub fn write_id_maps(dir: &Path, params: &ModelParams) -> (PathBuf, PathBuf) {
    let write = |name: &str, prefix: &str, count: usize| {
        let mut map = IdMap::default();
        for index in 0..count {
            map.intern(&format!(
                "{prefix}{index:04x}-4a5b-8c9d-{:012x}",
                index * 7919
            ));
        }
        let path = dir.join(name);
        map.write(&path).unwrap();
        path
    };
    (
        write("customer_map.txt", "c0ffee00-", params.n_customers),
        write("product_map.txt", "5ca1ab1e-", params.n_products),
    )
}

/// Runs `export_tf` on `checkpoint`, writing the default output names into `out`.
pub fn export(checkpoint: &Path, out: &Path) -> anyhow::Result<()> {
    run_stage(
        "export_tf",
        &[("checkpoint", checkpoint)],
        &[
            ("graph", &out.join("optimized_ProductRecommender.pb")),
            ("saved_model", &out.join("saved_model")),
        ],
        &[],
    )
}

/// Runs `write_avro` on the graph and id maps in `inputs`, writing the default output names
/// into `out`.
pub fn write_avro(
    inputs: &Path,
    schema: &Path,
    out: &Path,
    params: &[(&str, serde_yaml::Value)],
) -> anyhow::Result<()> {
    run_stage(
        "write_avro",
        &[
            ("graph", &inputs.join("optimized_ProductRecommender.pb")),
            ("customer_map", &inputs.join("customer_map.txt")),
            ("product_map", &inputs.join("product_map.txt")),
            ("schema", schema),
        ],
        &[
            ("container", &out.join("recommender.avro")),
            ("datum", &out.join("recommender-no-schema.avro")),
        ],
        params,
    )
}
