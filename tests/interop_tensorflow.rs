//! TensorFlow itself reads what `export_tf` and `write_avro` write: it imports the GraphDef from
//! the file and from the Avro record, loads the SavedModel with both Python APIs and with the
//! C++ loader TensorFlow Serving uses, and every way agrees with the Rust reference forward pass,
//! with the ONNX eval graph in ONNX Runtime, and with `warez-pipe predict`.

mod export_support;

use std::path::Path;

use export_support::{
    export, random_params, run_python, sample_pairs, schema_path, write_avro, write_checkpoint,
    write_id_maps,
};
use prost::Message;
use warez_pipe::ml::model::graphs;
use warez_pipe::ml::model::params::ModelParams;
use warez_pipe::ml::model::runtime::{self, EvalSession};

/// Scores `pairs` with `warez-pipe predict --input … --output …` on the model folder `dir`.
fn predict_cli(dir: &Path, params: &ModelParams, pairs: &[(usize, usize)]) -> Vec<f32> {
    let read_ids = |file: &str| -> Vec<String> {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        text.lines().map(str::to_string).collect()
    };
    let (customers, products) = (read_ids("customer_map.txt"), read_ids("product_map.txt"));
    assert_eq!(
        (customers.len(), products.len()),
        (params.n_customers, params.n_products)
    );
    let mut csv = String::from("customerId,productId\n");
    for &(customer, product) in pairs {
        csv += &format!("{},{}\n", customers[customer], products[product]);
    }
    let (input, output) = (dir.join("pairs.csv"), dir.join("scores.csv"));
    std::fs::write(&input, csv).unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_warez-pipe"))
        .arg("predict")
        .arg("--model-dir")
        .arg(dir)
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .status()
        .unwrap();
    assert!(status.success(), "warez-pipe predict failed: {status}");
    let mut reader = csv::Reader::from_path(&output).unwrap();
    let score = reader
        .headers()
        .unwrap()
        .iter()
        .position(|column| column == "score")
        .expect("a score column");
    reader
        .records()
        .map(|row| row.unwrap()[score].parse().unwrap())
        .collect()
}

#[test]
fn tensorflow_loads_the_graph_record_and_saved_model_and_agrees_with_onnx_and_the_reference() {
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
    let eval_model = dir.path().join("eval_model.onnx");
    std::fs::write(&eval_model, graphs::eval::build(&params).encode_to_vec()).unwrap();

    let pairs = sample_pairs(&params, 2000);
    let reference: Vec<f32> = pairs.iter().map(|&(c, p)| params.predict(c, p)).collect();
    runtime::ensure_onnxruntime(None).expect("ONNX Runtime (set ORT_DYLIB_PATH, see scripts/test)");
    let (customers, products): (Vec<u32>, Vec<u32>) =
        pairs.iter().map(|&(c, p)| (c as u32, p as u32)).unzip();
    let onnx = EvalSession::from_file(&eval_model)
        .unwrap()
        .score(&customers, &products)
        .unwrap();
    let cli = predict_cli(dir.path(), &params, &pairs);

    let cases = serde_json::json!({
        "graph": dir.path().join("optimized_ProductRecommender.pb"),
        "avro": dir.path().join("recommender.avro"),
        "saved_model": dir.path().join("saved_model"),
        "pairs": pairs,
        "references": {
            "ModelParams::predict": reference,
            "ONNX Runtime eval graph": onnx,
            "warez-pipe predict": cli,
        },
        "tolerance": 1e-5,
    });
    let cases_path = dir.path().join("cases.json");
    std::fs::write(&cases_path, cases.to_string()).unwrap();
    let report = run_python("check_tensorflow.py", &[cases_path.as_os_str()]);
    println!("{report}");
    for check in [
        "ok GraphDef file vs ONNX Runtime eval graph",
        "ok GraphDef from the Avro record vs warez-pipe predict",
        "ok variables/ is a valid TensorFlow checkpoint",
        "ok tf.saved_model.load vs ONNX Runtime eval graph",
        "ok tf.compat.v1.saved_model.loader.load vs ModelParams::predict",
        "ok C API LoadSavedModel (TensorFlow Serving's loader) vs warez-pipe predict",
    ] {
        assert!(report.contains(check), "missing {check:?} in:\n{report}");
    }
}
