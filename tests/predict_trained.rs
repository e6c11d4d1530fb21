//! `warez-pipe predict` and `warez-pipe metrics` on a model the real pipeline trained (ingest +
//! train on the original small data set): predict's scores, computed by ONNX Runtime from the
//! eval graph, equal the Rust reference forward pass over the checkpoint's parameters.

mod engine_support;
mod runtime_support;

use engine_support::{Project, PIPELINE};
use warez_pipe::data::idmap::IdMap;
use warez_pipe::model::checkpoint;
use warez_pipe::model::metrics::TrainingMetrics;

const SMALL_DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/ratings_uuid_small.csv"
);

const PIPELINE_YAML: &str = r#"name: rec
model_path: models/rec
stages:
  ingest:
    kind: ingest
    deps: { ratings: data/ratings.csv }
  train:
    kind: train
    deps: { ratings: "${model_path}/ratings.bin" }
"#;

#[test]
fn predict_scores_a_trained_model_like_the_reference_forward_pass() {
    runtime_support::ort_dylib();
    let project = Project::new();
    let ratings = std::fs::read_to_string(SMALL_DATA).expect("the seed small data set (data/ratings_uuid_small.csv)");
    project
        .file("data/ratings.csv", &ratings)
        .pipeline(PIPELINE_YAML);
    project.run(&[]).assert_code(0);

    // Every pair of the first 300 ratings, plus a customer/product combination never rated.
    let mut input = String::from("customerId,productId\n");
    let mut pairs = Vec::new();
    for line in ratings.lines().skip(1).take(300) {
        let mut fields = line.split(',');
        let (customer, product) = (fields.next().unwrap(), fields.next().unwrap());
        input += &format!("{customer},{product}\n");
        pairs.push((customer.to_string(), product.to_string()));
    }
    let (first_customer, last_product) = (pairs[0].0.clone(), pairs[299].1.clone());
    input += &format!("{first_customer},{last_product}\n");
    pairs.push((first_customer, last_product));
    project.file("pairs.csv", &input);

    project
        .warez(&[
            "predict",
            "--pipeline",
            PIPELINE,
            "--input",
            "pairs.csv",
            "--output",
            "scores.csv",
        ])
        .assert_code(0);

    let model = project.abs("models/rec");
    let params = checkpoint::read_params(&model.join("checkpoint.onnx")).unwrap();
    let customers = IdMap::read(&model.join("customer_map.txt")).unwrap();
    let products = IdMap::read(&model.join("product_map.txt")).unwrap();
    let mut reader = csv::Reader::from_path(project.abs("scores.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), pairs.len());
    for (row, (customer, product)) in rows.iter().zip(&pairs) {
        assert_eq!((&row[0], &row[1]), (customer.as_str(), product.as_str()));
        let score: f32 = row[2].parse().unwrap();
        let expected = params.predict(
            customers.get(customer).unwrap() as usize,
            products.get(product).unwrap() as usize,
        );
        assert!(
            (score - expected).abs() <= 1e-5 * expected.abs().max(1.0),
            "({customer}, {product}): predict {score}, reference {expected}"
        );
    }

    // The train stage's metrics.json is what `metrics` reads.
    let written = TrainingMetrics::read_json(&model.join("metrics.json")).unwrap();
    let shown = project.warez(&["metrics", PIPELINE, "--json"]);
    shown.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(
        report["current"]["validation_rows"].as_u64(),
        Some(written.validation_rows)
    );
    assert!(report["previous"].is_null());
}
