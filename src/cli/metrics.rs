//! `warez-pipe metrics`: a trained model's `metrics.json` — per-epoch losses, validation scores
//! against the training-mean baseline — and the change since the previous run.
//!
//! Where the previous run comes from: the cache, not a copy kept beside the model. Every run of
//! the train stage leaves a run record in `<cache>/runs/` naming its outputs (path relative to
//! the project, content hash) and when it was last run or restored (`last_used`), and the
//! outputs' bytes in the cache's objects. The previous metrics are those of the most recently
//! used record whose `metrics.json` differs from the one now in place (ties, within the same
//! second, broken by the record file's modification time), read back through
//! [`Store::restore_output`], which checks the bytes against the hash. This needs no extra
//! bookkeeping in the train stage, survives `clean`, and stays right when outputs are restored
//! from the cache: switching a param back makes the restored run current and the one it replaced
//! previous. (A copy rotated by this command would instead compare against whatever was current
//! when the command last ran.) Records whose objects `gc` collected are skipped.
//!
//! A pipeline with a sweep (a `matrix:` stage whose variants write `metrics.json`, see
//! [`super::sweep`]) shows every variant in one table instead, ranked by the selection metric,
//! the params that differ as columns, each with the change since that variant's previous run
//! (found as above, per variant's file). `--model-dir` always shows the one folder's model.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

use super::cache_arg::CacheArg;
use super::model_dir::{self, ModelLocation, DEFAULT_PIPELINE};
use super::sweep::{self, Mode, Selector, Sweep, Variant};
use crate::engine::kind::select::metric_at;
use crate::engine::store::{RecordedOutput, Store};
use crate::ml::model::metrics::{RegressionScores, TrainingMetrics};

const METRICS_FILE: &str = "metrics.json";

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Pipeline file [default: pipelines/recommender.yaml]
    pipeline: Option<PathBuf>,
    /// Folder holding metrics.json [default: the pipeline's model_path]
    #[arg(long)]
    model_dir: Option<PathBuf>,
    #[command(flatten)]
    cache: CacheArg,
    /// Print JSON: {"file", "current", "previous", "change"}; for a sweep
    /// {"pipeline", "sweeps": [{"stage", "metric", "mode", "selector", "columns", "variants"}]}
    #[arg(long)]
    json: bool,
}

pub fn run(args: MetricsArgs) -> Result<ExitCode> {
    if args.model_dir.is_none() {
        if let Some(report) = sweep_report(&args)? {
            if args.json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", report.text());
            }
            return Ok(ExitCode::SUCCESS);
        }
    }
    let location = model_dir::locate(
        args.pipeline.as_deref(),
        args.model_dir.as_deref(),
        args.cache.dir(),
    )?;
    let file = location.model_dir.join(METRICS_FILE);
    if !file.is_file() {
        bail!(
            "{} does not exist: run the pipeline's train stage first",
            file.display()
        );
    }
    let current = TrainingMetrics::read_json(&file)?;
    let previous = previous_metrics(&location, &file)?;
    let report = Report {
        change: previous
            .as_ref()
            .map(|previous| Change::between(&previous.metrics, &current)),
        file,
        current,
        previous,
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", report.text());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Report {
    file: PathBuf,
    current: TrainingMetrics,
    previous: Option<PreviousRun>,
    change: Option<Change>,
}

#[derive(Serialize)]
struct PreviousRun {
    /// The cache's run record it comes from.
    record: PathBuf,
    /// Unix seconds the record was last run or restored.
    last_used: u64,
    metrics: TrainingMetrics,
}

/// Current minus previous.
#[derive(Serialize)]
struct Change {
    /// Of the last epoch.
    train_msle: f64,
    val_msle: f64,
    validation: RegressionScores,
    baseline: RegressionScores,
}

impl Change {
    fn between(previous: &TrainingMetrics, current: &TrainingMetrics) -> Change {
        let last = |metrics: &TrainingMetrics| {
            metrics.epochs.last().map_or((f64::NAN, f64::NAN), |epoch| {
                (epoch.train_msle, epoch.val_msle)
            })
        };
        let ((train_before, val_before), (train_now, val_now)) = (last(previous), last(current));
        let minus = |now: &RegressionScores, before: &RegressionScores| RegressionScores {
            mse: now.mse - before.mse,
            mae: now.mae - before.mae,
            r2: now.r2.zip(before.r2).map(|(now, before)| now - before),
        };
        Change {
            train_msle: train_now - train_before,
            val_msle: val_now - val_before,
            validation: minus(&current.validation, &previous.validation),
            baseline: minus(&current.baseline, &previous.baseline),
        }
    }
}

impl Report {
    fn text(&self) -> String {
        let current = &self.current;
        let mut text = format!(
            "{}\n{} training rows, {} validation rows; {} customers, {} products\n\n",
            self.file.display(),
            current.train_rows,
            current.validation_rows,
            current.n_customers,
            current.n_products
        );
        text += "epoch  train MSLE   val MSLE\n";
        for epoch in &current.epochs {
            text += &format!(
                "{:>5}  {:>10.6}  {:>9.6}\n",
                epoch.epoch, epoch.train_msle, epoch.val_msle
            );
        }
        text += "\nvalidation        model  baseline (training mean)\n";
        let (model, baseline) = (&current.validation, &current.baseline);
        for (name, model, baseline) in [
            ("MSE", Some(model.mse), Some(baseline.mse)),
            ("MAE", Some(model.mae), Some(baseline.mae)),
            ("R²", model.r2, baseline.r2),
        ] {
            text += &format!(
                "{name:<10} {:>12}  {:>12}\n",
                decimal(model),
                decimal(baseline)
            );
        }
        match (&self.previous, &self.change) {
            (Some(previous), Some(change)) => {
                let before = &previous.metrics;
                let last_val = |metrics: &TrainingMetrics| {
                    metrics
                        .epochs
                        .last()
                        .map_or(f64::NAN, |epoch| epoch.val_msle)
                };
                text += &format!(
                    "\nsince the previous run (cache record {}):\n",
                    previous.record.display()
                );
                for (name, before, now, delta) in [
                    (
                        "val MSLE",
                        Some(last_val(before)),
                        Some(last_val(current)),
                        Some(change.val_msle),
                    ),
                    (
                        "val MSE",
                        Some(before.validation.mse),
                        Some(current.validation.mse),
                        Some(change.validation.mse),
                    ),
                    (
                        "val MAE",
                        Some(before.validation.mae),
                        Some(current.validation.mae),
                        Some(change.validation.mae),
                    ),
                    (
                        "val R²",
                        before.validation.r2,
                        current.validation.r2,
                        change.validation.r2,
                    ),
                ] {
                    let delta = delta.map_or_else(|| "n/a".to_string(), |d| format!("{d:+.6}"));
                    text += &format!(
                        "{name:<10} {:>12} → {:>10}  ({delta})\n",
                        decimal(before),
                        decimal(now)
                    );
                }
            }
            _ => text += "\nno previous run in the cache to compare with\n",
        }
        text
    }
}

/// Every sweep of the pipeline with each variant's previous run; none when the pipeline has
/// no sweep (or does not load: then the single model is shown, as without a matrix).
fn sweep_report(args: &MetricsArgs) -> Result<Option<SweepReport>> {
    let file = args
        .pipeline
        .as_deref()
        .unwrap_or(Path::new(DEFAULT_PIPELINE));
    if !file.is_file() {
        return Ok(None);
    }
    let (pipeline, dag) = match sweep::load(file, args.cache.dir()) {
        Ok(loaded) => loaded,
        Err(error) => {
            errln!("warning: {error:#}; showing the model in model_path only");
            return Ok(None);
        }
    };
    let sweeps: Vec<Sweep> = sweep::sweeps(&pipeline, &dag)
        .into_iter()
        .filter(|sweep| sweep.matrix)
        .collect();
    if sweeps.is_empty() {
        return Ok(None);
    }
    let location = ModelLocation {
        model_dir: pipeline.abs(&pipeline.model_path),
        project_dir: Some(pipeline.project_dir.clone()),
        cache_dir: Some(pipeline.cache_dir.clone()),
    };
    let mut rows = Vec::new();
    for sweep in sweeps {
        let mut variants = Vec::new();
        for variant in sweep.variants {
            let previous = match &variant.metrics {
                Some(_) => previous_metrics(&location, &pipeline.abs(&variant.file))?,
                None => None,
            };
            variants.push(VariantRow::new(&sweep.metric, variant, previous));
        }
        rows.push(SweepRows {
            stage: sweep.stage,
            metric: sweep.metric,
            mode: sweep.mode,
            selector: sweep.selector,
            columns: sweep.columns,
            variants,
        });
    }
    Ok(Some(SweepReport {
        pipeline: pipeline.name.clone(),
        sweeps: rows,
    }))
}

/// `metrics` of a pipeline with sweeps.
#[derive(Serialize)]
struct SweepReport {
    pipeline: String,
    sweeps: Vec<SweepRows>,
}

/// A [`sweep::Sweep`] with each variant's change since its previous run.
#[derive(Serialize)]
struct SweepRows {
    stage: String,
    metric: String,
    mode: Mode,
    selector: Option<Selector>,
    columns: Vec<String>,
    variants: Vec<VariantRow>,
}

#[derive(Serialize)]
struct VariantRow {
    #[serde(flatten)]
    variant: Variant,
    previous: Option<PreviousRun>,
    /// The selection metric now minus in the previous run.
    metric_change: Option<f64>,
    change: Option<Change>,
}

impl VariantRow {
    fn new(metric: &str, variant: Variant, previous: Option<PreviousRun>) -> VariantRow {
        let before = previous.as_ref().and_then(|previous| {
            metric_at(&previous.metrics.to_json(), metric)
                .ok()?
                .as_f64()
        });
        VariantRow {
            metric_change: variant.metric.zip(before).map(|(now, before)| now - before),
            change: previous
                .as_ref()
                .zip(variant.metrics.as_ref())
                .map(|(previous, current)| Change::between(&previous.metrics, current)),
            previous,
            variant,
        }
    }
}

impl SweepReport {
    /// One table per sweep: rank, the differing params, the metric and its change, the
    /// validation scores, the variant's name.
    fn text(&self) -> String {
        let mut text = String::new();
        for sweep in &self.sweeps {
            let trained = sweep
                .variants
                .iter()
                .filter(|row| row.variant.metrics.is_some());
            text += &format!(
                "{}: {} variants ({} trained), by {} ({})\n",
                sweep.stage,
                sweep.variants.len(),
                trained.count(),
                sweep.metric,
                sweep.mode.describe()
            );
            match &sweep.selector {
                Some(selector) => match (&selector.selection, &selector.unreadable) {
                    (Some(selection), _) => {
                        text += &format!("selected by `{}`: {}\n", selector.stage, selection.winner)
                    }
                    (None, Some(problem)) => {
                        text +=
                            &format!("selection of `{}` unreadable: {problem}\n", selector.stage)
                    }
                    (None, None) => text += &format!("`{}` has not selected yet\n", selector.stage),
                },
                None => text += "no select stage\n",
            }
            let mut header = vec!["rank".to_string()];
            header.extend(sweep.columns.iter().cloned());
            header.extend(
                [
                    sweep.metric.as_str(),
                    "since previous",
                    "val MSE",
                    "val MAE",
                    "val R²",
                    "variant",
                ]
                .map(String::from),
            );
            let mut table = vec![header];
            let mut rank = 0;
            for row in &sweep.variants {
                let variant = &row.variant;
                let mut cells = Vec::new();
                cells.push(match (&variant.metrics, variant.selected) {
                    (Some(_), selected) => {
                        rank += 1;
                        format!("{}{rank}", if selected { "*" } else { "" })
                    }
                    (None, _) => "-".to_string(),
                });
                cells.extend(sweep.columns.iter().map(|column| variant.column(column)));
                match (&variant.metrics, &variant.problem) {
                    (Some(metrics), _) => {
                        cells.push(decimal(variant.metric));
                        cells.push(row.metric_change.map_or_else(
                            || "first run".to_string(),
                            |change| format!("{change:+.6}"),
                        ));
                        cells.push(decimal(Some(metrics.validation.mse)));
                        cells.push(decimal(Some(metrics.validation.mae)));
                        cells.push(decimal(metrics.validation.r2));
                    }
                    (None, problem) => {
                        cells.push(match problem {
                            Some(_) => "unreadable".to_string(),
                            None => "not trained".to_string(),
                        });
                        cells.extend(["", "", "", ""].map(String::from));
                    }
                }
                cells.push(variant.stage.clone());
                table.push(cells);
            }
            text += &aligned(&table);
            for row in &sweep.variants {
                if let Some(problem) = &row.variant.problem {
                    text += &format!("{}: {problem}\n", row.variant.stage);
                }
            }
            if sweep.variants.iter().any(|row| row.variant.selected) {
                text += "* the selected variant\n";
            }
            text += "\n";
        }
        text
    }
}

/// The rows as columns: the first and last (text) left-aligned, the others right-aligned.
fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(column, cell)| {
                let width = widths[column];
                if column + 1 == row.len() {
                    cell.clone()
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        text += cells.join("  ").trim_end();
        text += "\n";
    }
    text
}

/// A metric with six decimals, or `n/a` when it is undefined (R² of equal ratings).
fn decimal(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |value| format!("{value:.6}"))
}

/// The previous run's metrics from the cache (see the module doc), if any.
fn previous_metrics(location: &ModelLocation, file: &Path) -> Result<Option<PreviousRun>> {
    let (Some(project), Some(cache)) = (&location.project_dir, &location.cache_dir) else {
        return Ok(None);
    };
    if !cache.is_dir() {
        return Ok(None);
    }
    let store = Store::open(cache).with_context(|| format!("opening cache {}", cache.display()))?;
    let current_file = file
        .canonicalize()
        .with_context(|| format!("resolving {}", file.display()))?;
    let current_hash =
        blake3::hash(&std::fs::read(file).with_context(|| format!("reading {}", file.display()))?)
            .to_hex()
            .to_string();

    // (last_used, record mtime, record path, output) of the best candidate so far.
    let mut best: Option<(u64, SystemTime, PathBuf, RecordedOutput)> = None;
    let records = store
        .all_records()
        .with_context(|| format!("listing the run records in {}", cache.display()))?;
    // An unreadable record is the engine's to judge (it reruns that stage); skip it here.
    for (record_path, record) in records {
        let Some(record) = record else {
            continue;
        };
        let Some(output) = record.outputs.into_iter().find(|output| {
            !output.tree
                && *output.hash.text() != *current_hash
                && project
                    .join(&output.path)
                    .canonicalize()
                    .is_ok_and(|path| path == current_file)
                && store.has_output(output)
        }) else {
            continue;
        };
        let modified = std::fs::metadata(&record_path)
            .and_then(|metadata| metadata.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let newer = best
            .as_ref()
            .is_none_or(|(last_used, best_modified, _, _)| {
                (record.last_used, modified) > (*last_used, *best_modified)
            });
        if newer {
            best = Some((record.last_used, modified, record_path, output));
        }
    }
    let Some((last_used, _, record, output)) = best else {
        return Ok(None);
    };
    // Restoring checks the object's bytes against its hash.
    let scratch = tempfile::tempdir_in(store.tmp_dir())
        .with_context(|| format!("creating a temporary folder in {}", cache.display()))?;
    let copy = scratch.path().join(METRICS_FILE);
    let restored = store
        .restore_output(&output, &copy)
        .map_err(anyhow::Error::from)
        .and_then(|()| TrainingMetrics::read_json(&copy));
    match restored {
        Ok(metrics) => Ok(Some(PreviousRun {
            record,
            last_used,
            metrics,
        })),
        Err(error) => {
            errln!(
                "warning: the previous run's metrics (run record {}) are unreadable: {error:#}",
                record.display()
            );
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::model::metrics::EpochLoss;

    fn metrics(val_msle: f64, mse: f64) -> TrainingMetrics {
        let scores = |mse: f64| RegressionScores {
            mse,
            mae: mse / 2.0,
            r2: Some(1.0 - mse),
        };
        TrainingMetrics {
            epochs: vec![EpochLoss {
                epoch: 1,
                train_msle: 2.0 * val_msle,
                val_msle,
            }],
            validation: scores(mse),
            baseline: scores(0.5),
            train_rows: 75,
            validation_rows: 25,
            n_customers: 10,
            n_products: 5,
        }
    }

    /// A project with `models/m/metrics.json` and a cache with run records in the engine's
    /// layout, one per `(metrics, last_used)`.
    struct Project {
        dir: tempfile::TempDir,
    }

    impl Project {
        fn new(current: &TrainingMetrics) -> Project {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("models/m")).unwrap();
            current
                .write_json(&dir.path().join("models/m/metrics.json"))
                .unwrap();
            Project { dir }
        }

        fn location(&self) -> ModelLocation {
            ModelLocation {
                model_dir: self.dir.path().join("models/m"),
                project_dir: Some(self.dir.path().to_path_buf()),
                cache_dir: Some(self.dir.path().join("cache")),
            }
        }

        fn record(&self, key: &str, metrics: &TrainingMetrics, last_used: u64) {
            let cache = self.dir.path().join("cache");
            let scratch = self.dir.path().join("scratch.json");
            metrics.write_json(&scratch).unwrap();
            let bytes = std::fs::read(&scratch).unwrap();
            let hash = blake3::hash(&bytes).to_hex().to_string();
            let object = cache.join("objects").join(&hash[..2]).join(&hash[2..]);
            std::fs::create_dir_all(object.parent().unwrap()).unwrap();
            std::fs::write(&object, bytes).unwrap();
            let record = serde_json::json!({
                "stage": "train",
                "outputs": [
                    {"path": "models/m/eval_model.onnx", "hash": "ab".repeat(32), "tree": false},
                    {"path": "models/m/metrics.json", "hash": hash, "tree": false},
                ],
                "last_used": last_used,
            });
            let path = cache
                .join("runs")
                .join(&key[..2])
                .join(format!("{}.json", &key[2..]));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, serde_json::to_vec(&record).unwrap()).unwrap();
        }

        fn previous(&self) -> Option<PreviousRun> {
            let location = self.location();
            previous_metrics(&location, &location.model_dir.join(METRICS_FILE)).unwrap()
        }
    }

    #[test]
    fn the_previous_run_is_the_latest_used_record_with_other_metrics() {
        let current = metrics(0.01, 0.2);
        let project = Project::new(&current);
        project.record("aa01", &metrics(0.03, 0.4), 100);
        project.record("bb02", &metrics(0.02, 0.3), 200);
        project.record("cc03", &current, 300); // the current run itself
        let previous = project.previous().expect("a previous run");
        assert_eq!(previous.metrics, metrics(0.02, 0.3));
        assert_eq!(previous.last_used, 200);

        let change = Change::between(&previous.metrics, &current);
        assert!((change.val_msle - (0.01 - 0.02)).abs() < 1e-12);
        assert!((change.validation.mse - (0.2 - 0.3)).abs() < 1e-12);
        assert!((change.validation.r2.unwrap() - (0.8 - 0.7)).abs() < 1e-12);
        assert_eq!(change.baseline.mse, 0.0);
    }

    #[test]
    fn restoring_an_old_run_makes_the_one_it_replaced_previous() {
        let restored = metrics(0.03, 0.4);
        let project = Project::new(&restored);
        project.record("aa01", &restored, 300); // first run, restored (touched) last
        project.record("bb02", &metrics(0.02, 0.3), 200);
        let previous = project.previous().expect("a previous run");
        assert_eq!(previous.metrics, metrics(0.02, 0.3));
    }

    #[test]
    fn collected_objects_and_other_paths_are_skipped() {
        let current = metrics(0.01, 0.2);
        let project = Project::new(&current);
        assert!(project.previous().is_none(), "no cache yet");
        project.record("aa01", &metrics(0.02, 0.3), 100);
        project.record("bb02", &metrics(0.05, 0.6), 200);
        // gc removed bb02's object
        let hash_of = |m: &TrainingMetrics| {
            let scratch = project.dir.path().join("h.json");
            m.write_json(&scratch).unwrap();
            blake3::hash(&std::fs::read(scratch).unwrap())
                .to_hex()
                .to_string()
        };
        let gone = hash_of(&metrics(0.05, 0.6));
        let cache = project.dir.path().join("cache/objects");
        std::fs::remove_file(cache.join(&gone[..2]).join(&gone[2..])).unwrap();
        assert_eq!(project.previous().unwrap().metrics, metrics(0.02, 0.3));

        let mut location = project.location();
        location.model_dir = project.dir.path().join("elsewhere");
        std::fs::create_dir_all(&location.model_dir).unwrap();
        let file = location.model_dir.join(METRICS_FILE);
        current.write_json(&file).unwrap();
        assert!(previous_metrics(&location, &file).unwrap().is_none());
    }

    #[test]
    fn the_text_report_shows_epochs_scores_and_change() {
        let current = metrics(0.01, 0.2);
        let report = Report {
            file: PathBuf::from("models/m/metrics.json"),
            change: Some(Change::between(&metrics(0.02, 0.3), &current)),
            previous: Some(PreviousRun {
                record: PathBuf::from("cache/runs/bb/02.json"),
                last_used: 200,
                metrics: metrics(0.02, 0.3),
            }),
            current,
        };
        let text = report.text();
        assert!(
            text.contains("75 training rows, 25 validation rows"),
            "{text}"
        );
        assert!(text.contains("    1    0.020000   0.010000"), "{text}");
        assert!(
            text.contains("MSE            0.200000      0.500000"),
            "{text}"
        );
        assert!(
            text.contains("val MSLE       0.020000 →   0.010000  (-0.010000)"),
            "{text}"
        );
        assert!(
            text.contains("val R²         0.700000 →   0.800000  (+0.100000)"),
            "{text}"
        );
    }
}
