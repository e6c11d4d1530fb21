//! `export_tf` and `write_avro` run by the engine from a pipeline file: outputs in place, the
//! SavedModel folder restored intact from the cache, the model id from `SOURCE_DATE_EPOCH`, and
//! a clear error for an unwritable `model_path`, and each stage's steps as progress lines.

mod export_support;

use std::path::Path;

use assert_cmd::Command;
use export_support::{random_params, schema_path, write_checkpoint, write_id_maps};
use predicates::prelude::*;
use warez_pipe::ml::model::avro_record::{self, RecommenderModel};

/// A project with a checkpoint and id maps in `trained/`, the schema in `avro/`, and a pipeline
/// exporting them into `model_path`.
fn project(model_path: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let trained = dir.path().join("trained");
    std::fs::create_dir(&trained).unwrap();
    let params = random_params(30, 20, 4, 9);
    write_checkpoint(&trained, &params);
    write_id_maps(&trained, &params);
    std::fs::create_dir(dir.path().join("avro")).unwrap();
    std::fs::copy(schema_path(), dir.path().join("avro/RecommenderModel.avsc")).unwrap();
    let pipeline = format!(
        "name: export
model_path: {model_path}
stages:
  export_tf:
    kind: export_tf
    deps: {{ checkpoint: trained/checkpoint.onnx }}
  write_avro:
    kind: write_avro
    deps:
      graph: ${{model_path}}/optimized_ProductRecommender.pb
      customer_map: trained/customer_map.txt
      product_map: trained/product_map.txt
      schema: avro/RecommenderModel.avsc
"
    );
    std::fs::write(dir.path().join("pipeline.yaml"), pipeline).unwrap();
    dir
}

fn run(project: &Path) -> Command {
    let mut command = Command::cargo_bin("warez-pipe").unwrap();
    command
        .current_dir(project)
        .env("SOURCE_DATE_EPOCH", "1795671374")
        .args(["run", "pipeline.yaml"]);
    command
}

#[test]
fn the_engine_runs_both_stages_and_restores_the_saved_model_from_the_cache() {
    let dir = project("models/export");
    run(dir.path()).assert().success();
    let model = dir.path().join("models/export");
    let schema = avro_record::read_schema(&schema_path()).unwrap();
    let datum = std::fs::read(model.join("recommender-no-schema.avro")).unwrap();
    let record = RecommenderModel::from_datum(&schema, &datum).unwrap();
    assert_eq!(record.model_id, "recommender-model-2026-11-26-05:36:14");
    assert_eq!(
        record.tensor_flow_model,
        std::fs::read(model.join("optimized_ProductRecommender.pb")).unwrap()
    );
    let saved_model = std::fs::read(model.join("saved_model/saved_model.pb")).unwrap();
    assert!(model.join("saved_model/variables").is_dir());

    // Outputs removed: the next run restores them from the cache, SavedModel folder included.
    std::fs::remove_dir_all(&model).unwrap();
    run(dir.path()).assert().success();
    assert_eq!(
        std::fs::read(model.join("saved_model/saved_model.pb")).unwrap(),
        saved_model
    );
    assert!(
        model.join("saved_model/variables").is_dir(),
        "the empty variables/ folder is part of the SavedModel"
    );
    assert_eq!(
        std::fs::read(model.join("recommender-no-schema.avro")).unwrap(),
        datum
    );
}

/// Off a terminal both stages print where they are (`WAREZ_PROGRESS_SECONDS=0`: at every step,
/// not every 5 s): each step is a pass over tables that take seconds at millions of ids.
#[test]
fn both_stages_report_their_steps() {
    let dir = project("models/export");
    let ran = run(dir.path())
        .env("WAREZ_PROGRESS_SECONDS", "0")
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&ran.get_output().stderr).into_owned();
    for line in [
        "[export_tf] 20% (1/5 steps): building the frozen graph",
        "[export_tf] 80% (4/5 steps): writing the SavedModel",
        "[write_avro] 25% (1/4 steps): reading and checking the graph",
        "[write_avro] 75% (3/4 steps): writing the container",
    ] {
        assert!(
            stderr.lines().any(|said| said == line),
            "no {line:?}:\n{stderr}"
        );
    }
}

#[test]
fn an_unwritable_model_path_fails_clearly() {
    let dir = project("blocked/models");
    std::fs::write(dir.path().join("blocked"), "a file, not a folder").unwrap();
    run(dir.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("error: stage `export_tf`"))
        .stderr(predicate::str::contains("Not a directory"));
}
