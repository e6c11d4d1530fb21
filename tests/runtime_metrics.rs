//! `warez-pipe metrics` on a real engine run: a `cmd` stage stands in for the train stage and
//! writes one of several prepared `metrics.json` files chosen by a param, so the engine's run
//! records and cache objects are real and the expected numbers are known.

mod engine_support;

use engine_support::{Project, PIPELINE};
use serde_json::Value;
use warez_pipe::ml::model::metrics::{EpochLoss, RegressionScores, TrainingMetrics};

const PIPELINE_YAML: &str = r#"name: m
model_path: models/m
stages:
  train:
    cmd: cp data/metrics-${params.variant}.json ${model_path}/metrics.json
    deps: [data/metrics-a.json, data/metrics-b.json, data/metrics-c.json]
    outs: ["${model_path}/metrics.json"]
    params: { variant: a }
"#;

fn metrics(val_msle: f64) -> TrainingMetrics {
    let scores = |mse: f64| RegressionScores {
        mse,
        mae: mse / 2.0,
        r2: Some(0.5 - mse),
    };
    TrainingMetrics {
        epochs: vec![EpochLoss {
            epoch: 1,
            train_msle: val_msle + 0.001,
            val_msle,
        }],
        validation: scores(10.0 * val_msle),
        baseline: scores(0.3),
        train_rows: 1499,
        validation_rows: 500,
        n_customers: 1895,
        n_products: 2,
    }
}

fn project() -> Project {
    let project = Project::new();
    for (variant, val_msle) in [("a", 0.03), ("b", 0.02), ("c", 0.01)] {
        let path = project.abs(&format!("data/metrics-{variant}.json"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        metrics(val_msle).write_json(&path).unwrap();
    }
    project.pipeline(PIPELINE_YAML);
    project
}

fn run_with(project: &Project, variant: &str) {
    project
        .run(&["--set", &format!("train.variant={variant}")])
        .assert_code(0);
}

fn report(project: &Project) -> Value {
    let run = project.warez(&["metrics", PIPELINE, "--json"]);
    run.assert_code(0);
    serde_json::from_str(&run.stdout).unwrap()
}

fn val_msle(metrics: &Value) -> f64 {
    metrics["epochs"][0]["val_msle"].as_f64().unwrap()
}

#[test]
fn the_change_is_against_the_run_before_even_after_a_restore() {
    let project = project();
    run_with(&project, "a");
    let first = report(&project);
    assert_eq!(val_msle(&first["current"]), 0.03);
    assert!(first["previous"].is_null(), "{first}");

    run_with(&project, "b");
    run_with(&project, "c");
    let third = report(&project);
    assert_eq!(val_msle(&third["current"]), 0.01);
    assert_eq!(val_msle(&third["previous"]["metrics"]), 0.02);
    let change = third["change"]["val_msle"].as_f64().unwrap();
    assert!((change - (0.01 - 0.02)).abs() < 1e-12, "{third}");

    // Back to `a`: restored from the cache; the run it replaced (c) is now the previous one.
    run_with(&project, "a");
    let restored = report(&project);
    assert_eq!(val_msle(&restored["current"]), 0.03);
    assert_eq!(
        val_msle(&restored["previous"]["metrics"]),
        0.01,
        "{restored}"
    );

    let text = project.warez(&["metrics", PIPELINE]);
    text.assert_code(0)
        .assert_stdout_contains("1499 training rows, 500 validation rows")
        .assert_stdout_contains("val MSLE       0.010000 →   0.030000  (+0.020000)");
}

#[test]
fn without_a_trained_model_it_says_what_to_run() {
    let project = project();
    project
        .warez(&["metrics", PIPELINE])
        .assert_code(1)
        .assert_stderr_contains(
            "models/m/metrics.json does not exist: run the pipeline's train stage first",
        );
}
