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
    let nodes = GraphSummary::of(&tf_export::decode_graph(&graph[..]).unwrap()).nodes;
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

/// A record from elsewhere may hold anything: control characters in its model id and ids are
/// printed escaped, never raw to the terminal.
#[test]
fn control_characters_in_the_record_are_printed_escaped() {
    let dir = packaged(["m", "m"]);
    let graph = std::fs::read(dir.path().join("optimized_ProductRecommender.pb")).unwrap();
    let record = warez_pipe::ml::model::avro_record::RecommenderModel {
        model_id: "evil\u{1b}]0;title\u{7}".into(),
        tensor_flow_model: graph,
        product_ids: vec!["p\r1".into()],
        customer_ids: vec!["c\u{1b}[2J".into(), "c2".into()],
    };
    let schema = warez_pipe::ml::model::avro_record::read_schema(&schema_path()).unwrap();
    let file = dir.path().join("evil.avro");
    std::fs::write(
        &file,
        record
            .to_container(&schema, apache_avro::Codec::Null)
            .unwrap(),
    )
    .unwrap();
    let output = inspect().arg("inspect").arg(&file).output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    for shown in [
        "model id     evil\\u{1b}]0;title\\u{7}",
        "productMap   1 entries: p\\r1 → 0",
        "customerMap  2 entries: c\\u{1b}[2J → 0, c2 → 1",
    ] {
        assert!(stdout.contains(shown), "{shown:?} not in:\n{stdout}");
    }
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\r') && !stdout.contains('\u{7}'),
        "{stdout:?}"
    );
}

#[test]
fn a_pipe_or_a_folder_is_refused_without_reading_it() {
    // Read whole, a named pipe waited for a writer forever (and `/dev/zero` until memory ran
    // out).
    let dir = packaged(["m", "m"]);
    let fifo = dir.path().join("fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let datum = dir.path().join("a/recommender-no-schema.avro");
    for args in [
        vec![fifo.clone()],
        vec![datum.clone(), "--schema".into(), fifo.clone()],
        vec![dir.path().join("a")],
    ] {
        inspect()
            .arg("inspect")
            .args(&args)
            .timeout(std::time::Duration::from_secs(30))
            .assert()
            .code(1)
            .stderr(predicate::str::contains(
                "is not a regular file (a folder, a device or a pipe)",
            ));
    }
}
