//! The end of a run: what happened to each stage, as a table (stderr) or JSON (stdout, `--json`).

use std::collections::BTreeMap;
use std::fmt::Write;

use console::style;
use serde::{Deserialize, Serialize};

use crate::engine::fingerprint::DirtyReason;
use crate::engine::spec::{Pipeline, Stage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Key and outputs match the lock file; nothing done.
    UpToDate,
    /// Up to date although a stage above it ran: that rerun reproduced identical outputs.
    CutOff,
    /// Outputs copied back from the cache (the key ran before).
    Restored,
    /// Outputs downloaded from the remote cache (the key ran elsewhere), then restored.
    RestoredRemote,
    Ran,
    /// Ran and produced exactly the outputs of its previous run (the stages below are cut off).
    RanSameOutputs,
    /// `--dry-run`: would run.
    WouldRun,
    /// `--dry-run`: would be restored from the cache.
    WouldRestore,
    Failed,
    /// An input changed while the stage ran; nothing recorded.
    InputsChanged,
    /// Not run because a stage it needs failed.
    Skipped,
}

impl Outcome {
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Outcome::UpToDate
                | Outcome::CutOff
                | Outcome::Restored
                | Outcome::RestoredRemote
                | Outcome::Ran
                | Outcome::RanSameOutputs
        )
    }

    /// Whether the stage executed in this run (so an unchanged stage below it is a cutoff).
    pub fn executed(self) -> bool {
        matches!(self, Outcome::Ran | Outcome::RanSameOutputs)
    }

    /// Whether the stage did work worth timing.
    pub fn worked(self) -> bool {
        matches!(
            self,
            Outcome::Ran
                | Outcome::RanSameOutputs
                | Outcome::Restored
                | Outcome::RestoredRemote
                | Outcome::Failed
                | Outcome::InputsChanged
        )
    }

    /// How the summary table and the report name it.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::UpToDate => "up to date",
            Outcome::CutOff => "cutoff",
            Outcome::Restored => "restored",
            Outcome::RestoredRemote => "restored (remote)",
            Outcome::Ran => "ran",
            Outcome::RanSameOutputs => "ran, same outputs",
            Outcome::WouldRun => "would run",
            Outcome::WouldRestore => "would restore",
            Outcome::Failed => "FAILED",
            Outcome::InputsChanged => "INPUTS CHANGED",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub stage: String,
    pub outcome: Outcome,
    pub seconds: f64,
    /// Why it was stale, one line each (empty when up to date).
    pub reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The end of the failed command's output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tail: Option<String>,
    /// Outputs of a rerun that kept their bytes (early cutoff below them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unchanged_outputs: Vec<String>,
}

impl StageReport {
    pub fn new(stage: &Stage, outcome: Outcome) -> StageReport {
        StageReport {
            stage: stage.name.clone(),
            outcome,
            seconds: 0.0,
            reasons: Vec::new(),
            error: None,
            output_tail: None,
            unchanged_outputs: Vec::new(),
        }
    }

    pub fn with_reasons(mut self, reasons: Vec<DirtyReason>) -> StageReport {
        self.reasons = reasons.iter().map(ToString::to_string).collect();
        self
    }

    /// A line for the "why" column that is no staleness reason (e.g. why a stage was cut off).
    pub fn with_note(mut self, note: String) -> StageReport {
        self.reasons = vec![note];
        self
    }

    pub fn with_error(mut self, error: String, tail: Option<String>) -> StageReport {
        self.error = Some(error);
        self.output_tail = tail;
        self
    }

    pub fn with_unchanged_outputs(mut self, outputs: Vec<String>) -> StageReport {
        self.unchanged_outputs = outputs;
        self
    }

    pub fn with_seconds(mut self, seconds: f64) -> StageReport {
        self.seconds = seconds;
        self
    }
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub pipeline: String,
    /// True when every stage asked for is up to date at the end.
    pub ok: bool,
    pub stages: Vec<StageReport>,
}

impl RunReport {
    pub fn new(
        pipeline: &Pipeline,
        reports: BTreeMap<usize, StageReport>,
        dry_run: bool,
    ) -> RunReport {
        let stages: Vec<StageReport> = reports.into_values().collect();
        let ok = stages.iter().all(|report| {
            if dry_run {
                report.outcome == Outcome::UpToDate
            } else {
                report.outcome.is_success()
            }
        });
        RunReport {
            pipeline: pipeline.name.clone(),
            ok,
            stages,
        }
    }

    pub fn failed(&self) -> impl Iterator<Item = &StageReport> {
        self.stages
            .iter()
            .filter(|report| !report.outcome.is_success() && report.error.is_some())
    }

    /// The summary table, then each failure with the end of its output.
    pub fn table(&self) -> String {
        let width = self
            .stages
            .iter()
            .map(|r| r.stage.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<width$}  {:<17}  {:>7}  why",
            "stage", "result", "time"
        );
        for report in &self.stages {
            let label = format!("{:<17}", report.outcome.label());
            let label = match report.outcome {
                Outcome::Ran
                | Outcome::Restored
                | Outcome::RestoredRemote
                | Outcome::RanSameOutputs => style(label).green(),
                Outcome::UpToDate | Outcome::CutOff => style(label).dim(),
                Outcome::WouldRun | Outcome::WouldRestore => style(label).yellow(),
                _ => style(label).red().bold(),
            };
            let time = if report.outcome.worked() {
                format!("{:.2}s", report.seconds)
            } else {
                "-".to_string()
            };
            let why = report.reasons.first().cloned().unwrap_or_default();
            let more = match report.reasons.len() {
                0 | 1 => String::new(),
                n => format!(" (+{} more)", n - 1),
            };
            let _ = writeln!(
                out,
                "{:<width$}  {label}  {time:>7}  {why}{more}",
                report.stage
            );
            if report.outcome == Outcome::Ran && !report.unchanged_outputs.is_empty() {
                let _ = writeln!(
                    out,
                    "{:<width$}  {}",
                    "",
                    style(format!(
                        "└ unchanged (cut off below): {}",
                        report.unchanged_outputs.join(", ")
                    ))
                    .dim()
                );
            }
        }
        for report in self.failed() {
            let _ = writeln!(
                out,
                "\n{} stage `{}`: {}",
                style("error:").red().bold(),
                report.stage,
                report.error.as_deref().unwrap_or_default()
            );
            if let Some(tail) = &report.output_tail {
                let _ = writeln!(out, "--- end of its output ---\n{tail}\n---");
            }
        }
        out
    }
}
