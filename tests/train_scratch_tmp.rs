use std::path::Path;
use warez_pipe::data::reader::{read_ratings_file, OnBadRows};
use warez_pipe::model::trainer::{fit, ArtifactPaths, TrainConfig};
use warez_pipe::stages::NoProgress;
#[test]
fn scratch() {
    let csv = std::env::var("SCRATCH_CSV").unwrap();
    let ratings = read_ratings_file(Path::new(&csv), OnBadRows::Error, &NoProgress)
        .unwrap()
        .ratings;
    let d = Path::new("/tmp/cktest");
    let paths = ArtifactPaths {
        training_model: &d.join("training_model.onnx"),
        optimizer_model: &d.join("optimizer_model.onnx"),
        eval_model: &d.join("eval_model.onnx"),
        checkpoint: &d.join("checkpoint.onnx"),
    };
    let epochs: usize = std::env::var("SCRATCH_EPOCHS")
        .map(|e| e.parse().unwrap())
        .unwrap_or(1);
    let t = std::time::Instant::now();
    let trained = fit(
        &ratings,
        &TrainConfig {
            epochs,
            ..Default::default()
        },
        &paths,
        &NoProgress,
    )
    .unwrap();
    let el = t.elapsed().as_secs_f64();
    println!(
        "{:#?}\n{} rows in {:.2}s: {:.0} train samples/s",
        trained.metrics,
        ratings.len(),
        el,
        trained.metrics.train_rows as f64 * epochs as f64 / el
    );
}
