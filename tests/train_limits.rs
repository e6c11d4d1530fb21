//! The train stage's limits through the real binary: a run too large for memory or for the
//! 2 GiB protobuf messages stops before anything is allocated, a NaN loss stops training and
//! records nothing, a broken `ratings.bin` is an error naming it, and `metrics.json` never holds
//! `null`. Nothing of a failed run is left in `cache/tmp`.

mod engine_support;
mod runtime_support;

use engine_support::{Project, Run, PIPELINE};
use warez_pipe::ml::data::dataset::Ratings;

const SMALL_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/ratings_uuid_small.csv");

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

/// A project holding the seed's small data set (1,999 ratings, 1,895 customers, 2 products).
fn small_project() -> Project {
    let project = Project::new();
    project
        .file(
            "data/ratings.csv",
            &std::fs::read_to_string(SMALL_DATA).expect("data/ratings_uuid_small.csv"),
        )
        .pipeline(PIPELINE_YAML);
    project
}

/// Files in the cache's `tmp/` (staging folders of running stages).
fn cache_tmp(project: &Project) -> Vec<String> {
    project.tree("cache/tmp").into_keys().collect()
}

/// Run records in the cache.
fn run_records(project: &Project) -> usize {
    project.tree("cache/runs").len()
}

/// `warez-pipe run pipelines/p.yaml EXTRA…`, printing the summary and errors on stderr.
fn run(project: &Project, extra: &[&str]) -> Run {
    let mut args = vec!["run", PIPELINE];
    args.extend_from_slice(extra);
    project.warez(&args)
}

#[track_caller]
fn assert_no_panic(run: &Run) {
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("memory allocation"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_run_larger_than_memory_stops_with_the_estimate_and_the_params() {
    let project = small_project();
    let run = run(&project, &["--set", "train.n_factors=1000000000"]);
    run.assert_code(1)
        .assert_stderr_contains("1,999 ratings (1,499 training), 1,895 customers, 2 products; n_factors 1000000000, batch_size 64, epochs 1")
        .assert_stderr_contains("training needs about ")
        .assert_stderr_contains(" of memory, but ")
        .assert_stderr_contains("is available (")
        .assert_stderr_contains("embedding tables with their Adam moments")
        .assert_stderr_contains("scoring the validation rows");
    assert_no_panic(&run);
    assert!(run.stderr.contains("\ntrain   FAILED"), "{}", run.stderr);
    assert!(cache_tmp(&project).is_empty(), "{:?}", cache_tmp(&project));
    assert!(!project.exists("models/rec/checkpoint.onnx"));
    assert!(!project.read("pipelines/p.lock").contains("train:"));
}

#[test]
fn a_model_past_the_protobuf_limit_stops_before_training_naming_what_fits() {
    let project = small_project();
    let started = std::time::Instant::now();
    // 2 · 20,000² floats of dense_1 alone are 3.0 GiB.
    let run = run(&project, &["--set", "train.n_factors=20000"]);
    run.assert_code(1)
        .assert_stderr_contains("the frozen TensorFlow graph (and eval_model.onnx) would hold the weights in one protobuf message of about 3.1 GiB, more than the 2 GiB")
        .assert_stderr_contains("for these 1,895 customers and 2 products n_factors ≤ 15,915 fits");
    assert!(
        started.elapsed().as_secs() < 10,
        "the check came after work: {:?}",
        started.elapsed()
    );
    assert_no_panic(&run);
    assert!(cache_tmp(&project).is_empty());
    assert!(!project.exists("models/rec/training_model.onnx"));
}

#[test]
fn more_steps_than_the_trainer_counts_are_refused() {
    let project = small_project();
    let run = run(&project, &["--set", "train.epochs=200000000"]);
    run.assert_code(1).assert_stderr_contains(
        "4,800,000,000 training steps (24 per epoch × 200,000,000 epochs) are too many: the \
         trainer counts steps in 32 bits",
    );
    assert_no_panic(&run);
    assert!(cache_tmp(&project).is_empty());
}

#[test]
fn the_largest_params_are_refused_with_figures_that_make_sense() {
    let project = small_project();
    let max = u64::MAX.to_string();
    let run = run(
        &project,
        &[
            "--set",
            &format!("train.n_factors={max}"),
            "--set",
            &format!("train.epochs={max}"),
        ],
    );
    // 8 · (2⁶⁴)² bytes of dense_1 kernel: the arithmetic used to wrap around in u128 (a
    // negative part, a wrong message size) and to print an infinite estimate.
    run.assert_code(1)
        .assert_stderr_contains("protobuf message of about 2.36e21 EiB")
        .assert_stderr_contains("training needs about ");
    assert_no_panic(&run);
    let parts: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.starts_with("      ") && line.trim_start().len() > 10)
        .collect();
    assert_eq!(parts.len(), 8, "{}", run.stderr);
    for line in parts {
        let amount: f64 = line.split_whitespace().next().unwrap().parse().unwrap();
        assert!(amount.is_finite() && amount >= 0.0, "{line}");
    }
    assert!(cache_tmp(&project).is_empty());
}

#[test]
fn a_nan_loss_stops_training_naming_the_step_and_records_nothing() {
    runtime_support::ort_dylib();
    let project = small_project();
    project.run(&[]).assert_code(0);
    let lock = project.read("pipelines/p.lock");
    let records = run_records(&project);
    let model = project.read("models/rec/metrics.json");
    let checkpoint = std::fs::read(project.abs("models/rec/checkpoint.onnx")).unwrap();
    let run = run(&project, &["--set", "train.learning_rate=1e30"]);
    run.assert_code(1)
        .assert_stderr_contains("epoch 1, step ")
        .assert_stderr_contains(" of 24: the training loss is ")
        .assert_stderr_contains("training stopped (a smaller `learning_rate` may help)");
    assert_no_panic(&run);
    assert!(run.stderr.contains("\ntrain   FAILED"), "{}", run.stderr);
    assert_eq!(
        project.read("pipelines/p.lock"),
        lock,
        "a lock entry was written"
    );
    assert_eq!(run_records(&project), records, "a run record was written");
    assert!(cache_tmp(&project).is_empty());
    // The last good model is still in place, byte for byte, and up to date.
    assert_eq!(project.read("models/rec/metrics.json"), model);
    assert_eq!(
        std::fs::read(project.abs("models/rec/checkpoint.onnx")).unwrap(),
        checkpoint
    );
    let again = project.run(&[]);
    again.assert_code(0);
    assert_eq!(again.outcomes()["train"].as_str(), "up_to_date");
    assert!(!project.read("models/rec/metrics.json").contains("null"));
}

#[test]
fn a_broken_ratings_file_is_an_error_naming_it() {
    let project = Project::new();
    project.pipeline(
        "name: rec\nmodel_path: models/rec\nstages:\n  train:\n    kind: train\n    deps: { ratings: data/ratings.bin }\n",
    );
    let ratings = Ratings {
        n_customers: 3,
        n_products: 2,
        customers: (0..40).map(|row| row % 3).collect(),
        products: (0..40).map(|row| row % 2).collect(),
        ratings: vec![0.5; 40],
    };
    std::fs::create_dir_all(project.abs("data")).unwrap();
    ratings.write(&project.abs("data/ratings.bin")).unwrap();
    let whole = std::fs::read(project.abs("data/ratings.bin")).unwrap();
    let mut huge_header = whole.clone();
    huge_header[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let mut bad_index = whole.clone();
    bad_index[24..28].copy_from_slice(&7u32.to_le_bytes());
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "truncated",
            whole[..whole.len() - 5].to_vec(),
            "the header says 40 rows (504 bytes) but the file holds 499 bytes",
        ),
        (
            "garbage",
            b"not a ratings file at all, just text\n".to_vec(),
            "missing the WZRATE01 header",
        ),
        (
            "empty",
            Vec::new(),
            "0 bytes are too short for the WZRATE01 header",
        ),
        (
            "hostile header",
            huge_header,
            "the header says 1152921504606846976 rows",
        ),
        (
            "index out of range",
            bad_index,
            "row 0: customer index 7 is out of range (the header says 3 customers)",
        ),
    ];
    for (name, bytes, problem) in cases {
        std::fs::write(project.abs("data/ratings.bin"), &bytes).unwrap();
        let run = run(&project, &[]);
        run.assert_code(1)
            .assert_stderr_contains(
                "data/ratings.bin is not a valid ratings artifact (written by `ingest`)",
            )
            .assert_stderr_contains(problem);
        assert_no_panic(&run);
        assert!(cache_tmp(&project).is_empty(), "{name}");
    }
}

#[test]
fn metrics_json_leaves_out_an_undefined_r2_instead_of_writing_null() {
    runtime_support::ort_dylib();
    let project = small_project();
    // Every rating equal: the validation targets have no variance, so R² is undefined.
    let csv = std::fs::read_to_string(SMALL_DATA).unwrap();
    let mut constant = String::new();
    for (index, line) in csv.lines().enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let rating = if index == 0 { fields[2] } else { "0.5" };
        constant += &format!("{},{},{rating}\n", fields[0], fields[1]);
    }
    project.file("data/ratings.csv", &constant);
    project.run(&[]).assert_code(0);
    let text = project.read("models/rec/metrics.json");
    assert!(!text.contains("null"), "{text}");
    let metrics: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(metrics["validation"].get("r2").is_none(), "{text}");
    assert!(metrics["validation"]["mse"].is_f64(), "{text}");
    let shown = project.warez(&["metrics", PIPELINE]);
    shown.assert_code(0);
    assert!(
        shown
            .stdout
            .lines()
            .any(|line| line.starts_with("R²") && line.contains("n/a")),
        "{}",
        shown.stdout
    );
}

#[test]
fn a_param_float32_cannot_hold_is_named_as_written() {
    let project = small_project();
    for (set, message) in [
        (
            "train.learning_rate=1e-50",
            "param `learning_rate`: 1e-50 is 0 in float32",
        ),
        (
            "train.learning_rate=1e300",
            "param `learning_rate`: 1e300 is inf in float32",
        ),
        (
            "train.dropout=0.99999999999",
            "param `dropout`: 0.99999999999 is 1 in float32",
        ),
    ] {
        let run = project.warez(&["run", "--dry-run", "--set", set, PIPELINE]);
        run.assert_code(2).assert_stderr_contains(message);
        assert_no_panic(&run);
    }
    project
        .warez(&[
            "run",
            "--dry-run",
            "--set",
            "train.learning_rate=1e-5",
            PIPELINE,
        ])
        .assert_code(1);
}
