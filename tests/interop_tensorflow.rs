//! TensorFlow itself reads the exported artifacts and agrees with `ModelParams::predict`.

mod export_support;

use export_support::{random_params, run_python, sample_pairs};
use warez_pipe::model::tf_export;

#[test]
fn tensorflow_loads_the_graph_and_saved_model_and_agrees_with_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let params = random_params(40, 30, 8, 7);
    let graph = tf_export::frozen_graph(&params).unwrap();
    let graph_path = dir.path().join("optimized_ProductRecommender.pb");
    tf_export::write_graph(&graph_path, &graph).unwrap();
    let saved_model = dir.path().join("saved_model");
    tf_export::write_saved_model(&saved_model, &tf_export::saved_model(graph)).unwrap();

    let pairs = sample_pairs(&params, 500);
    let expected: Vec<f32> = pairs.iter().map(|&(c, p)| params.predict(c, p)).collect();
    let cases = serde_json::json!({
        "graph": graph_path,
        "avro": null,
        "saved_model": saved_model,
        "pairs": pairs,
        "expected": expected,
        "tolerance": 1e-5,
    });
    let cases_path = dir.path().join("cases.json");
    std::fs::write(&cases_path, cases.to_string()).unwrap();
    let report = run_python("check_tensorflow.py", &[cases_path.as_os_str()]);
    println!("{report}");
}
