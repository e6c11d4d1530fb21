//! Training metrics: per-epoch losses and validation scores, written by the train stage to
//! `metrics.json` and read back by `warez-pipe metrics`.
//!
//! The file is an artifact like any other, so its bytes depend only on the run's results: no
//! timings or dates, keys in the fixed order of the struct fields, numbers printed by
//! `serde_json` (shortest round-trip form). Every number in it is finite: `serde_json` would
//! write NaN and ±∞ as `null`, so the trainer stops on a non-finite loss or prediction, R² is
//! left out when it is undefined, and [`TrainingMetrics::write_json`] refuses anything else.

use std::path::Path;

use anyhow::{bail, Context, Result};
use linfa::metrics::SingleTargetRegression;
use ndarray::Array1;
use serde::{Deserialize, Serialize};

/// Regression scores of predictions against targets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegressionScores {
    /// Mean squared error.
    pub mse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Coefficient of determination (1 − SS_res / SS_tot of the targets); absent when the
    /// validation ratings are all equal (SS_tot = 0), where it is undefined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r2: Option<f64>,
}

/// Scores `predictions` against `targets` with linfa's regression metrics, in f64.
///
/// # Panics
/// If the slices differ in length or are empty: a validation set always has rows (the train
/// stage checks its split before any work).
pub fn score(predictions: &[f32], targets: &[f32]) -> RegressionScores {
    assert_eq!(
        predictions.len(),
        targets.len(),
        "score: {} predictions for {} targets",
        predictions.len(),
        targets.len()
    );
    assert!(!targets.is_empty(), "score: no rows to score");
    let constant_targets = targets.iter().all(|&target| target == targets[0]);
    let predictions: Array1<f64> = predictions.iter().map(|&value| f64::from(value)).collect();
    let targets: Array1<f64> = targets.iter().map(|&value| f64::from(value)).collect();
    let metric = |result: Result<f64, linfa::Error>| {
        result.expect("equal-length, non-empty arrays (checked above) always score")
    };
    RegressionScores {
        mse: metric(predictions.mean_squared_error(&targets)),
        mae: metric(predictions.mean_absolute_error(&targets)),
        // linfa divides by SS_tot + 1e-10, which turns "undefined" into a huge negative number.
        r2: (!constant_targets).then(|| metric(predictions.r2(&targets))),
    }
}

/// One epoch's mean squared logarithmic errors.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochLoss {
    /// 1-based.
    pub epoch: u32,
    /// Mean of the training batches' losses (with dropout, as Keras reports it).
    pub train_msle: f64,
    /// Loss on the validation rows, without dropout.
    pub val_msle: f64,
}

/// Everything `metrics.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingMetrics {
    pub epochs: Vec<EpochLoss>,
    /// The trained model on the validation rows.
    pub validation: RegressionScores,
    /// Predicting the training rows' mean rating for every validation row.
    pub baseline: RegressionScores,
    pub train_rows: u64,
    pub validation_rows: u64,
    pub n_customers: u64,
    pub n_products: u64,
}

impl TrainingMetrics {
    /// Writes pretty-printed JSON with a final newline; equal metrics give equal bytes. A
    /// number that is not finite (which JSON cannot hold) is an error naming it.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        if let Some((name, value)) = self.numbers().find(|(_, value)| !value.is_finite()) {
            bail!("metric `{name}` is {value}, which metrics.json cannot hold");
        }
        let mut text = serde_json::to_string_pretty(&self.file()).context("serializing metrics")?;
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// The JSON `metrics.json` holds, for metric paths (`val_msle`, `validation.mse`, …).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.file()).expect("metrics serialize: strings, numbers and lists")
    }

    fn file(&self) -> MetricsFile<'_> {
        let last = self.epochs.last();
        MetricsFile {
            val_msle: last.map(|epoch| epoch.val_msle),
            train_msle: last.map(|epoch| epoch.train_msle),
            metrics: self,
        }
    }

    /// Every float with its name (`epochs[0].val_msle`, `validation.mse`, …).
    fn numbers(&self) -> impl Iterator<Item = (String, f64)> + '_ {
        let epochs = self.epochs.iter().enumerate().flat_map(|(index, epoch)| {
            [
                (format!("epochs[{index}].train_msle"), epoch.train_msle),
                (format!("epochs[{index}].val_msle"), epoch.val_msle),
            ]
        });
        let scores = [
            ("validation", &self.validation),
            ("baseline", &self.baseline),
        ]
        .into_iter()
        .flat_map(|(set, scores)| {
            [
                ("mse", Some(scores.mse)),
                ("mae", Some(scores.mae)),
                ("r2", scores.r2),
            ]
            .into_iter()
            .filter_map(move |(name, value)| Some((format!("{set}.{name}"), value?)))
        });
        epochs.chain(scores)
    }

    pub fn read_json(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let parse = || -> serde_json::Result<Self> {
            // The top-level losses repeat the last epoch's (files written before they were
            // added lack them); every other key must be a field.
            let mut json: serde_json::Value = serde_json::from_str(&text)?;
            if let Some(fields) = json.as_object_mut() {
                fields.remove("val_msle");
                fields.remove("train_msle");
            }
            serde_json::from_value(json)
        };
        parse().with_context(|| format!("parsing {}", path.display()))
    }
}

/// `metrics.json` as written: the last epoch's losses first, as top-level keys — the numbers a
/// sweep ranks its variants by (`select` with `metric: val_msle`) — then [`TrainingMetrics`].
#[derive(Serialize)]
struct MetricsFile<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    val_msle: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    train_msle: Option<f64>,
    #[serde(flatten)]
    metrics: &'a TrainingMetrics,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-9,
            "{actual} is not {expected}"
        );
    }

    #[test]
    fn scores_match_hand_computation() {
        // errors: 0.5, -0.5, 0, 1 → squared 0.25 0.25 0 1 (mean 0.375); absolute mean 0.5.
        // targets mean 2.5; SS_tot = 2.25 + 0.25 + 0.25 + 2.25 = 5; SS_res = 1.5; R² = 0.7.
        let scores = score(&[1.5, 1.5, 3.0, 5.0], &[1.0, 2.0, 3.0, 4.0]);
        close(scores.mse, 0.375);
        close(scores.mae, 0.5);
        close(scores.r2.unwrap(), 0.7);
    }

    #[test]
    fn predicting_the_targets_mean_scores_r2_zero() {
        let scores = score(&[2.5; 4], &[1.0, 2.0, 3.0, 4.0]);
        close(scores.mse, 1.25);
        close(scores.mae, 1.0);
        close(scores.r2.unwrap(), 0.0);
    }

    #[test]
    fn r2_of_constant_targets_is_left_out_of_the_file() {
        let scores = score(&[0.5, 1.5], &[1.0, 1.0]);
        assert_eq!(scores.r2, None);
        let metrics = TrainingMetrics {
            validation: scores,
            ..sample()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.json");
        metrics.write_json(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("null"), "{text}");
        assert_eq!(text.matches("\"r2\"").count(), 1, "{text}");
        assert_eq!(TrainingMetrics::read_json(&path).unwrap(), metrics);
    }

    #[test]
    fn a_non_finite_number_is_refused_not_written_as_null() {
        let mut metrics = sample();
        metrics.epochs[0].val_msle = f64::NAN;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.json");
        let error = metrics.write_json(&path).unwrap_err().to_string();
        assert_eq!(
            error,
            "metric `epochs[0].val_msle` is NaN, which metrics.json cannot hold"
        );
        assert!(!path.exists());
        metrics.epochs[0].val_msle = 0.1;
        metrics.baseline.mae = f64::INFINITY;
        let error = metrics.write_json(&path).unwrap_err().to_string();
        assert!(error.contains("`baseline.mae` is inf"), "{error}");
    }

    #[test]
    #[should_panic(expected = "3 predictions for 2 targets")]
    fn mismatched_lengths_panic() {
        score(&[1.0, 2.0, 3.0], &[1.0, 2.0]);
    }

    fn sample() -> TrainingMetrics {
        TrainingMetrics {
            epochs: vec![EpochLoss {
                epoch: 1,
                train_msle: 0.012_5,
                val_msle: 0.008_1,
            }],
            validation: RegressionScores {
                mse: 0.1,
                mae: 0.2,
                r2: Some(0.3),
            },
            baseline: RegressionScores {
                mse: 0.4,
                mae: 0.5,
                r2: Some(-0.001),
            },
            train_rows: 1500,
            validation_rows: 500,
            n_customers: 200,
            n_products: 20,
        }
    }

    #[test]
    fn json_round_trips_with_fixed_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.json");
        sample().write_json(&path).unwrap();
        let first = std::fs::read(&path).unwrap();
        assert_eq!(TrainingMetrics::read_json(&path).unwrap(), sample());
        sample().write_json(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first);
        let text = String::from_utf8(first).unwrap();
        let keys: Vec<usize> = [
            "\"val_msle\": 0.0081",
            "\"train_msle\": 0.0125",
            "\"epochs\"",
            "\"validation\"",
            "\"baseline\"",
            "\"n_products\"",
        ]
        .iter()
        .map(|key| text.find(key).unwrap())
        .collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "{text}");
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn reading_a_malformed_file_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.json");
        std::fs::write(&path, "{\"epochs\": []}").unwrap();
        let error = format!("{:#}", TrainingMetrics::read_json(&path).unwrap_err());
        assert!(error.contains("metrics.json"), "{error}");
        assert!(error.contains("validation"), "{error}");
    }

    #[test]
    fn files_without_the_top_level_losses_still_read_and_unknown_keys_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.json");
        sample().write_json(&path).unwrap();
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let fields = json.as_object_mut().unwrap();
        fields.remove("val_msle");
        fields.remove("train_msle");
        std::fs::write(&path, json.to_string()).unwrap();
        assert_eq!(TrainingMetrics::read_json(&path).unwrap(), sample());
        json.as_object_mut()
            .unwrap()
            .insert("surprise".into(), 1.into());
        std::fs::write(&path, json.to_string()).unwrap();
        let error = format!("{:#}", TrainingMetrics::read_json(&path).unwrap_err());
        assert!(error.contains("surprise"), "{error}");
    }
}
