//! TensorFlow itself reads what `export_tf` and `write_avro` write: it imports the GraphDef from
//! the file and from the Avro record, loads the SavedModel with both Python APIs and with the
//! C++ loader TensorFlow Serving uses, and every way agrees with `ModelParams::predict`.

mod export_support;

use export_support::{
    export, random_params, run_python, sample_pairs, schema_path, write_avro, write_checkpoint,
    write_id_maps,
};

#[test]
fn tensorflow_loads_the_graph_record_and_saved_model_and_agrees_with_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let params = random_params(400, 250, 16, 7);
    let checkpoint = write_checkpoint(dir.path(), &params);
    write_id_maps(dir.path(), &params);
    export(&checkpoint, dir.path()).unwrap();
    write_avro(
        dir.path(),
        &schema_path(),
        dir.path(),
        &[("model_id", "m".into())],
    )
    .unwrap();

    let pairs = sample_pairs(&params, 2000);
    let expected: Vec<f32> = pairs.iter().map(|&(c, p)| params.predict(c, p)).collect();
    let cases = serde_json::json!({
        "graph": dir.path().join("optimized_ProductRecommender.pb"),
        "avro": dir.path().join("recommender.avro"),
        "saved_model": dir.path().join("saved_model"),
        "pairs": pairs,
        "references": { "ModelParams::predict": expected },
        "tolerance": 1e-5,
    });
    let cases_path = dir.path().join("cases.json");
    std::fs::write(&cases_path, cases.to_string()).unwrap();
    let report = run_python("check_tensorflow.py", &[cases_path.as_os_str()]);
    println!("{report}");
    for check in [
        "ok GraphDef file",
        "ok GraphDef from the Avro record",
        "ok variables/ is a valid TensorFlow checkpoint",
        "ok tf.saved_model.load",
        "ok tf.compat.v1.saved_model.loader.load",
        "ok C API LoadSavedModel",
    ] {
        assert!(report.contains(check), "missing {check:?} in:\n{report}");
    }
}
