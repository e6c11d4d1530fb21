//! `warez-pipe inspect` on the files `write_avro` writes.

mod export_support;

use assert_cmd::Command;
use export_support::{
    export, random_params, schema_path, write_avro, write_checkpoint, write_id_maps,
};
use predicates::prelude::*;
use warez_pipe::ml::model::tf_export::{self, GraphSummary};

/// Writes the model twice, into `a/` and `b/`, with the given model ids.
fn packaged(ids: [&str; 2]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let params = random_params(40, 25, 4, 5);
    let checkpoint = write_checkpoint(dir.path(), &params);
    write_id_maps(dir.path(), &params);
    export(&checkpoint, dir.path()).unwrap();
    for (folder, id) in ["a", "b"].into_iter().zip(ids) {
        let out = dir.path().join(folder);
        std::fs::create_dir(&out).unwrap();
        write_avro(dir.path(), &schema_path(), &out, &[("model_id", id.into())]).unwrap();
    }
    dir
}

fn inspect() -> Command {
    Command::cargo_bin("warez-pipe").unwrap()
}

#[test]
fn inspect_summarises_the_container_file() {
    let dir = packaged(["recommender-model-x", "recommender-model-x"]);
    let first_product = std::fs::read_to_string(dir.path().join("product_map.txt")).unwrap();
    let first_product = first_product.lines().next().unwrap();
    let graph = std::fs::read(dir.path().join("optimized_ProductRecommender.pb")).unwrap();
    let nodes = GraphSummary::of(&tf_export::decode_graph(&graph).unwrap()).nodes;
    inspect()
        .arg("inspect")
        .arg(dir.path().join("a/recommender.avro"))
        .assert()
        .success()
        .stdout(predicate::str::contains("model id     recommender-model-x"))
        .stdout(predicate::str::contains(format!(
            "graph        {} bytes, {nodes} nodes",
            graph.len()
        )))
        .stdout(predicate::str::contains("inputs       user, product"))
        .stdout(predicate::str::contains("outputs      dense_2/BiasAdd"))
        .stdout(predicate::str::contains(format!(
            "productMap   25 entries: {first_product} → 0, "
        )))
        .stdout(predicate::str::contains("customerMap  40 entries: "));
}

#[test]
fn the_bare_datum_needs_the_schema() {
    let dir = packaged(["m", "m"]);
    let datum = dir.path().join("a/recommender-no-schema.avro");
    inspect()
        .arg("inspect")
        .arg(&datum)
        .assert()
        .failure()
        .stderr(predicate::str::contains("not an Avro container file"))
        .stderr(predicate::str::contains("--schema"));
    inspect()
        .arg("inspect")
        .arg(&datum)
        .arg("--schema")
        .arg(schema_path())
        .assert()
        .success()
        .stdout(predicate::str::contains("model id     m"));
}

#[test]
fn inspect_compares_two_files() {
    let dir = packaged(["m-1", "m-2"]);
    inspect()
        .arg("inspect")
        .arg(dir.path().join("a/recommender.avro"))
        .arg(dir.path().join("a/recommender-no-schema.avro"))
        .arg("--schema")
        .arg(schema_path())
        .assert()
        .success()
        .stdout(predicate::str::contains("same record in both files"));
    inspect()
        .arg("inspect")
        .arg(dir.path().join("a/recommender.avro"))
        .arg(dir.path().join("b/recommender-no-schema.avro"))
        .arg("--schema")
        .arg(schema_path())
        .assert()
        .failure()
        .stdout(predicate::str::contains(
            r#"different records: modelId "m-1" vs "m-2""#,
        ));
}
