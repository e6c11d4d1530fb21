//! The `train` stage end to end on real data in ONNX Runtime: learning, determinism, the
//! artifacts (checked by Python's `onnx.checker` and loaded by Python's onnxruntime), and the
//! errors for bad params and too little data.

mod train_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use warez_pipe::engine::kind::{NoProgress, Params, Progress, StageContext, StageKind};
use warez_pipe::ml::data::dataset::Ratings;
use warez_pipe::ml::kinds::train::Train;
use warez_pipe::ml::model::checkpoint;
use warez_pipe::ml::model::metrics::{self, TrainingMetrics};
use warez_pipe::ml::model::runtime::EvalSession;
use warez_pipe::ml::model::trainer::{self, initial_params, msle, TrainConfig};

use train_support::{small_ratings, train};

fn validation_msle(params: &warez_pipe::ml::model::params::ModelParams, ratings: &Ratings) -> f64 {
    let start = trainer::training_rows(ratings.len(), 0.25).unwrap();
    let predictions: Vec<f32> = (start..ratings.len())
        .map(|row| {
            params.predict(
                ratings.customers[row] as usize,
                ratings.products[row] as usize,
            )
        })
        .collect();
    msle(&predictions, &ratings.ratings[start..])
}

#[test]
fn training_lowers_the_loss_on_the_small_data() {
    let ratings = small_ratings();
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        epochs: 3,
        ..TrainConfig::default()
    };
    let (trained, _) = train(&ratings, &config, dir.path());
    let epochs = &trained.metrics.epochs;
    assert_eq!(epochs.len(), 3);
    assert!(
        epochs[2].train_msle < epochs[0].train_msle,
        "training loss by epoch: {epochs:?}"
    );
    let untrained = initial_params(
        ratings.n_customers as usize,
        ratings.n_products as usize,
        50,
        config.seed,
    )
    .unwrap();
    let before = validation_msle(&untrained, &ratings);
    let after = validation_msle(&trained.params, &ratings);
    assert!(
        after < 0.8 * before,
        "validation MSLE {before} before training, {after} after"
    );
    assert!((after - epochs[2].val_msle).abs() < 1e-6);
    // The notebook reaches about 0.008 after one epoch; three epochs do at least as well.
    assert!(after < 0.0095, "validation MSLE {after}");
    assert!(trained.metrics.validation.mse < trained.metrics.baseline.mse);
}

/// The trainer scores its validation rows from its own tables (the eval graph's layers after
/// the lookup, fed the gathered rows), not through `eval_model.onnx`: the scores must still be
/// the eval graph's bit for bit, since they make `metrics.json`. Two epochs: every epoch is
/// scored, the artifacts are written after the last.
#[test]
fn validation_scores_are_those_of_the_eval_graph_bit_for_bit() {
    let ratings = small_ratings();
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        epochs: 2,
        ..TrainConfig::default()
    };
    let (trained, artifacts) = train(&ratings, &config, dir.path());
    let start = trainer::training_rows(ratings.len(), config.val_split).unwrap();
    let mut eval = EvalSession::from_file(&artifacts.eval_model).unwrap();
    let scores = eval
        .score(&ratings.customers[start..], &ratings.products[start..])
        .unwrap();
    let targets = &ratings.ratings[start..];
    assert_eq!(trained.metrics.validation, metrics::score(&scores, targets));
    assert_eq!(
        trained.metrics.epochs[1].val_msle.to_bits(),
        msle(&scores, targets).to_bits()
    );
}

#[test]
fn one_seed_gives_identical_bytes_and_another_seed_other_weights() {
    let ratings = small_ratings();
    let config = TrainConfig::default();
    let runs: Vec<_> = [42, 42, 7]
        .into_iter()
        .map(|seed| {
            let dir = tempfile::tempdir().unwrap();
            let (trained, artifacts) = train(
                &ratings,
                &TrainConfig {
                    seed,
                    ..config.clone()
                },
                dir.path(),
            );
            let bytes: Vec<Vec<u8>> = artifacts
                .all()
                .iter()
                .map(|path| std::fs::read(path).unwrap())
                .collect();
            (trained, bytes)
        })
        .collect();
    assert_eq!(runs[0].1, runs[1].1, "same seed, same artifact bytes");
    assert_eq!(runs[0].0.metrics, runs[1].0.metrics);
    assert_ne!(
        runs[0].0.params.customer_embedding,
        runs[2].0.params.customer_embedding
    );
    assert_ne!(
        runs[0].0.params.dense_1_kernel,
        runs[2].0.params.dense_1_kernel
    );
    // The training and optimizer graphs depend on the settings only, not the seed.
    assert_eq!(runs[0].1[..2], runs[2].1[..2]);
}

fn stage_params(overrides: &[(&str, serde_yaml::Value)]) -> Params {
    let mut values: BTreeMap<String, serde_yaml::Value> = Train
        .params()
        .into_iter()
        .map(|spec| (spec.name.to_string(), spec.default))
        .collect();
    for (name, value) in overrides {
        values.insert(name.to_string(), value.clone());
    }
    Params::new(values)
}

#[test]
fn bad_params_are_rejected_naming_the_param() {
    assert!(Train.check_params(&stage_params(&[])).is_ok());
    let cases: [(&str, serde_yaml::Value, &str); 9] = [
        ("n_factors", 0.into(), "`n_factors`"),
        ("batch_size", 0.into(), "`batch_size`"),
        ("epochs", 0.into(), "`epochs`"),
        ("val_split", 0.0.into(), "`val_split`"),
        ("val_split", 1.0.into(), "`val_split`"),
        ("val_split", (-0.5).into(), "`val_split`"),
        ("dropout", 1.0.into(), "`dropout`"),
        ("dropout", (-0.1).into(), "`dropout`"),
        ("learning_rate", 0.0.into(), "`learning_rate`"),
    ];
    for (name, value, expected) in cases {
        let error = Train
            .check_params(&stage_params(&[(name, value.clone())]))
            .expect_err(&format!("{name} = {value:?} must be rejected"));
        let message = format!("{error:#}");
        assert!(message.contains(expected), "{name} = {value:?}: {message}");
    }
    let error = Train
        .check_params(&stage_params(&[("n_factors", "many".into())]))
        .unwrap_err();
    assert!(format!("{error:#}").contains("`n_factors`"));
}

/// Remembers what the stage reported.
#[derive(Default)]
struct RecordedProgress {
    total: Mutex<Option<(u64, String)>>,
    last_position: Mutex<u64>,
    messages: Mutex<Vec<String>>,
    lines: Mutex<Vec<String>>,
}

impl Progress for RecordedProgress {
    fn start(&self, total: u64, unit: &str) {
        *self.total.lock().unwrap() = Some((total, unit.to_string()));
    }
    fn set_position(&self, done: u64) {
        *self.last_position.lock().unwrap() = done;
    }
    fn set_message(&self, message: &str) {
        self.messages.lock().unwrap().push(message.to_string());
    }
    fn println(&self, line: &str) {
        self.lines.lock().unwrap().push(line.to_string());
    }
}

/// Runs the stage on `ratings` in `dir`; outputs go to `dir/out`.
fn run_stage(dir: &Path, ratings: &Ratings, params: &Params) -> anyhow::Result<()> {
    run_stage_reporting(dir, ratings, params, &NoProgress)
}

fn run_stage_reporting(
    dir: &Path,
    ratings: &Ratings,
    params: &Params,
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    train_support::init_onnxruntime();
    let input = dir.join("ratings.bin");
    ratings.write(&input).unwrap();
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let outputs = Train
        .outputs()
        .iter()
        .map(|role| (role.role.to_string(), out.join(role.default_name)))
        .collect();
    let ctx = StageContext {
        stage: "train",
        project_dir: dir,
        params,
        inputs: BTreeMap::from([("ratings".to_string(), input)]),
        outputs,
        tools_dir: dir.join("tools"),
        progress,
    };
    Train.run(&ctx)
}

#[test]
fn too_few_rows_for_a_split_stop_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let ratings = Ratings {
        n_customers: 1,
        n_products: 1,
        customers: vec![0],
        products: vec![0],
        ratings: vec![0.5],
    };
    let error = run_stage(dir.path(), &ratings, &stage_params(&[])).unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("too few to split") && message.contains("ratings.bin"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("out")).unwrap().count(),
        0
    );
}

#[test]
fn the_stage_writes_artifacts_that_onnx_checks_and_onnxruntime_runs() {
    let dir = tempfile::tempdir().unwrap();
    let ratings = small_ratings();
    let progress = RecordedProgress::default();
    let params = stage_params(&[("epochs", 2.into()), ("batch_size", 32.into())]);
    run_stage_reporting(dir.path(), &ratings, &params, &progress).unwrap();
    let out = dir.path().join("out");
    let metrics = TrainingMetrics::read_json(&out.join("metrics.json")).unwrap();
    assert_eq!(
        metrics.train_rows + metrics.validation_rows,
        ratings.len() as u64
    );
    assert_eq!(metrics.epochs.len(), 2);

    // A bar over the samples with the running loss, the speed and the time left, one line per
    // epoch with both losses (the run is too short for plain progress lines).
    let steps = 2 * metrics.train_rows.div_ceil(32);
    let samples = 2 * metrics.train_rows;
    assert_eq!(
        *progress.total.lock().unwrap(),
        Some((samples, "samples".to_string()))
    );
    assert_eq!(*progress.last_position.lock().unwrap(), samples);
    let messages = progress.messages.lock().unwrap();
    assert!(
        !messages.is_empty()
            && messages.iter().all(|m| m.starts_with("loss 0.")
                && m.contains("k samples/s, ")
                && m.ends_with(" left")),
        "{messages:?}"
    );
    let lines = progress.lines.lock().unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, epoch) in lines.iter().zip(&metrics.epochs) {
        let validation = format!("validation MSLE {:.6}", epoch.val_msle);
        assert!(
            line.contains("train MSLE") && line.contains(&validation),
            "{line}"
        );
    }

    let (params, adam) = checkpoint::read(&out.join("checkpoint.onnx")).unwrap();
    assert_eq!(params.n_customers, ratings.n_customers as usize);
    assert_eq!(adam.step, steps);
    // The tables live in the external data file, the model file holds only their references.
    let data_len = std::fs::metadata(out.join("checkpoint.onnx.data"))
        .unwrap()
        .len();
    assert!(data_len >= 3 * 4 * params.customer_embedding.len() as u64);
    assert!(
        std::fs::metadata(out.join("checkpoint.onnx"))
            .unwrap()
            .len()
            < 20_000
    );

    // Python's onnx checks every file; onnxruntime loads each and scores pairs with the eval
    // graph, which must agree with the checkpoint's weights.
    let pairs: Vec<(u32, u32)> = (0..8)
        .map(|row| (ratings.customers[row * 100], ratings.products[row * 100]))
        .collect();
    let expected: Vec<f32> = pairs
        .iter()
        .map(|&(c, p)| params.predict(c as usize, p as usize))
        .collect();
    let script = r#"
import json, sys
import numpy as np, onnx, onnxruntime as ort
out, pairs = sys.argv[1], json.loads(sys.argv[2])
for name in ["training_model", "optimizer_model", "eval_model", "checkpoint"]:
    path = f"{out}/{name}.onnx"
    onnx.checker.check_model(onnx.load(path), full_check=True)
    ort.InferenceSession(path, providers=["CPUExecutionProvider"])
session = ort.InferenceSession(f"{out}/eval_model.onnx", providers=["CPUExecutionProvider"])
ids = np.array(pairs, dtype=np.float32)
scores = session.run(["dense_2/BiasAdd"], {"user": ids[:, :1], "product": ids[:, 1:]})[0]
# The checkpoint's tensors as onnx (external data loaded) and onnxruntime (running the model
# returns every initializer) read them.
names = ["customer_embedding", "adam/v/customer_embedding", "dense_2/bias"]
frame = onnx.load(f"{out}/checkpoint.onnx", load_external_data=False)
external = [t.name for t in frame.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
model = onnx.load(f"{out}/checkpoint.onnx", load_external_data=True)
by_onnx = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
run = ort.InferenceSession(f"{out}/checkpoint.onnx", providers=["CPUExecutionProvider"]).run(names, {})
print(json.dumps({
    "scores": [float(s) for s in scores[:, 0]],
    "external": external,
    "onnx": {name: by_onnx[name].ravel().tolist() for name in names},
    "onnxruntime": {name: value.ravel().tolist() for name, value in zip(names, run)},
}))
"#;
    let output = Command::new(train_support::test_python())
        .args(["-c", script])
        .arg(&out)
        .arg(serde_json::to_string(&pairs).unwrap())
        .output()
        .expect("running WAREZ_TEST_PYTHON");
    assert!(
        output.status.success(),
        "onnx.checker / onnxruntime rejected an artifact:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let floats = |value: &serde_json::Value| -> Vec<f32> {
        let values = value.as_array().unwrap();
        values.iter().map(|v| v.as_f64().unwrap() as f32).collect()
    };
    let scores = floats(&read["scores"]);
    assert_eq!(scores.len(), expected.len());
    for (score, expected) in scores.iter().zip(&expected) {
        assert!((score - expected).abs() < 1e-5, "{score} vs {expected}");
    }
    let external = read["external"].as_array().unwrap();
    for name in [
        "customer_embedding",
        "adam/m/customer_embedding",
        "adam/v/dense_1/kernel",
    ] {
        assert!(external.iter().any(|e| e == name), "{name}: {external:?}");
    }
    for reader in ["onnx", "onnxruntime"] {
        let tensors = &read[reader];
        assert_eq!(
            floats(&tensors["customer_embedding"]),
            params.customer_embedding
        );
        assert_eq!(
            floats(&tensors["adam/v/customer_embedding"]),
            adam.v.customer_embedding
        );
        assert_eq!(floats(&tensors["dense_2/bias"]), params.dense_2_bias);
    }
}
