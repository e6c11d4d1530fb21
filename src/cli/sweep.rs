//! Sweeps, for the commands that compare models (`metrics`, `report`): the variants of a
//! `matrix:` stage that write a `metrics.json` (an output with the role `metrics`, or named
//! `metrics.json`), each with its matrix values, resolved params and metrics, ranked by the
//! selection metric; and what the select stage over them chose.
//!
//! The selection metric is the select stage's (`metric`/`mode` params of the stage that reads
//! the variants and writes a `selection` output, `selection.json`) when the pipeline has one,
//! else `val_msle` (the last epoch's, a top-level key of train's `metrics.json`), lowest first. A
//! metric is a key or a dotted path into `metrics.json`, read exactly as the select kind reads
//! it ([`metric_at`]: `validation.mse`, `epochs.0.val_msle`, `epochs.-1.val_msle` where `-1` is
//! a list's last item). Values are always
//! read from the variants' metrics files, so they are current even before the select stage
//! reruns; the winner is the one `selection.json` names.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::engine::dag::Dag;
use crate::engine::kind::param_text;
use crate::engine::kind::select::metric_at;
use crate::engine::spec::{matrix_stage_of, variant_values, Action, Pipeline, Port, Stage};
use crate::ml::model::metrics::TrainingMetrics;

/// The metric a sweep is ranked by when no select stage says otherwise.
const DEFAULT_METRIC: &str = "val_msle";

/// Whether the best value of a metric is its lowest or its highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Min,
    Max,
}

impl Mode {
    fn parse(text: &str) -> Option<Mode> {
        match text {
            "min" => Some(Mode::Min),
            "max" => Some(Mode::Max),
            _ => None,
        }
    }

    /// "lowest first" / "highest first".
    pub fn describe(self) -> &'static str {
        match self {
            Mode::Min => "lowest first",
            Mode::Max => "highest first",
        }
    }
}

/// `selection.json`, as the select stage writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Selection {
    pub from: String,
    pub metric: String,
    pub mode: Mode,
    pub winner: String,
    pub variants: Vec<SelectedVariant>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SelectedVariant {
    pub stage: String,
    #[serde(default)]
    pub matrix: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    pub metric: Option<f64>,
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
}

/// The select stage over a sweep.
#[derive(Debug, Clone, Serialize)]
pub struct Selector {
    pub stage: String,
    /// Relative to the project.
    pub file: String,
    /// `selection.json`, when the select stage has run (an unreadable file: the reason).
    pub selection: Option<Selection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// One matrix stage's variants that write metrics.
#[derive(Debug)]
pub struct Sweep {
    /// The matrix stage's name (`train`), or the stage's.
    pub stage: String,
    /// Variants of a matrix stage (else one stage's model).
    pub matrix: bool,
    pub metric: String,
    pub mode: Mode,
    pub selector: Option<Selector>,
    /// The matrix keys, then the other params whose values differ between variants.
    pub columns: Vec<String>,
    /// Ranked: trained variants by the metric (ties in expansion order), then the others in
    /// expansion order.
    pub variants: Vec<Variant>,
}

#[derive(Debug, Serialize)]
pub struct Variant {
    /// The variant stage's name (`train@n_factors=16,dropout=0.1`).
    pub stage: String,
    /// Its matrix values, as its name gives them, in the matrix's key order.
    pub matrix: IndexMap<String, String>,
    /// Every resolved param.
    pub params: BTreeMap<String, serde_json::Value>,
    /// `metrics.json`, relative to the project.
    pub file: String,
    /// The selection metric's value (none: not trained, or the metric is not in the file).
    pub metric: Option<f64>,
    /// None: not trained yet (no file), or unreadable (see `problem`).
    pub metrics: Option<TrainingMetrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The variant `selection.json` names as the winner.
    pub selected: bool,
}

impl Variant {
    /// The value shown in the column `key` (a matrix value or a param), `-` when it has none.
    pub fn column(&self, key: &str) -> String {
        match (self.matrix.get(key), self.params.get(key)) {
            (Some(value), _) => value.clone(),
            (None, Some(serde_json::Value::String(text))) => text.clone(),
            (None, Some(value)) => value.to_string(),
            (None, None) => "-".to_string(),
        }
    }
}

/// Every stage that writes metrics, in file order: a matrix stage's variants as one sweep, a
/// stage without a matrix as a sweep of one model.
pub fn sweeps(pipeline: &Pipeline, dag: &Dag) -> Vec<Sweep> {
    let mut by_stage: Vec<(&str, bool, Vec<usize>)> = Vec::new();
    for (index, stage) in pipeline.stages.iter().enumerate() {
        // A select stage writes the winner's metrics too: it is no model of its own.
        if metrics_output(stage).is_none() || selection_output(stage).is_some() {
            continue;
        }
        let (base, matrix) = match matrix_stage_of(&stage.name) {
            Some(base) => (base, true),
            None => (stage.name.as_str(), false),
        };
        match by_stage.iter_mut().find(|(name, _, _)| *name == base) {
            Some((_, _, members)) => members.push(index),
            None => by_stage.push((base, matrix, vec![index])),
        }
    }
    by_stage
        .into_iter()
        .map(|(name, matrix, members)| sweep(pipeline, dag, name.to_string(), matrix, &members))
        .collect()
}

/// The output of a stage that holds its metrics.
fn metrics_output(stage: &Stage) -> Option<&Port> {
    stage.outs.iter().find(|out| {
        out.role.as_deref() == Some("metrics")
            || Path::new(&out.path).file_name() == Some("metrics.json".as_ref())
    })
}

fn sweep(pipeline: &Pipeline, dag: &Dag, stage: String, matrix: bool, members: &[usize]) -> Sweep {
    let select = select_stage(pipeline, dag, members);
    let param = |name: &str| {
        select
            .and_then(|index| pipeline.stages[index].params.get(name))
            .map(param_text)
    };
    let metric = param("metric").unwrap_or_else(|| DEFAULT_METRIC.to_string());
    let mode = param("mode")
        .as_deref()
        .and_then(Mode::parse)
        .unwrap_or(Mode::Min);
    let selector = select.map(|index| selector(pipeline, &pipeline.stages[index]));
    let winner = selector
        .as_ref()
        .and_then(|selector| selector.selection.as_ref())
        .map(|selection| selection.winner.clone());
    let mut variants: Vec<Variant> = members
        .iter()
        .map(|&index| {
            variant(
                pipeline,
                &pipeline.stages[index],
                &metric,
                winner.as_deref(),
            )
        })
        .collect();
    // Stable: ties keep the expansion order.
    variants.sort_by(|a, b| match (a.metric, b.metric) {
        (Some(a), Some(b)) => match mode {
            Mode::Min => a.total_cmp(&b),
            Mode::Max => b.total_cmp(&a),
        },
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    let columns = columns(&variants);
    Sweep {
        stage,
        matrix,
        metric,
        mode,
        selector,
        columns,
        variants,
    }
}

/// The output of a select stage that holds its selection.
fn selection_output(stage: &Stage) -> Option<&Port> {
    stage.outs.iter().find(|out| {
        out.role.as_deref() == Some("selection")
            || Path::new(&out.path).file_name() == Some("selection.json".as_ref())
    })
}

/// The stage reading every variant's outputs that writes a `selection` (`selection.json`).
fn select_stage(pipeline: &Pipeline, dag: &Dag, members: &[usize]) -> Option<usize> {
    (0..pipeline.stages.len()).find(|&index| {
        let upstream = dag.upstream(index);
        selection_output(&pipeline.stages[index]).is_some()
            && members.iter().all(|member| upstream.contains(member))
    })
}

fn selector(pipeline: &Pipeline, stage: &Stage) -> Selector {
    let file = selection_output(stage)
        .map(|out| out.path.clone())
        .unwrap_or_default();
    let path = pipeline.abs(&file);
    let (selection, unreadable) = if path.is_file() {
        match read_selection(&path) {
            Ok(selection) => (Some(selection), None),
            Err(error) => (None, Some(format!("{error:#}"))),
        }
    } else {
        (None, None)
    };
    Selector {
        stage: stage.name.clone(),
        file,
        selection,
        unreadable,
    }
}

fn read_selection(path: &Path) -> Result<Selection> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}", path.display()))
}

fn variant(pipeline: &Pipeline, stage: &Stage, metric: &str, winner: Option<&str>) -> Variant {
    let file = metrics_output(stage)
        .map(|out| out.path.clone())
        .unwrap_or_default();
    let path = pipeline.abs(&file);
    let (metrics, value, problem) = if path.is_file() {
        match read_metrics(&path) {
            Ok((metrics, json)) => {
                let value = metric_at(&json, metric).ok().and_then(|n| n.as_f64());
                (Some(metrics), value, None)
            }
            Err(error) => (None, None, Some(format!("{error:#}"))),
        }
    } else {
        (None, None, None)
    };
    Variant {
        stage: stage.name.clone(),
        matrix: variant_values(&stage.name)
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
        params: stage
            .params
            .iter()
            .map(|(name, value)| {
                let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
                (name.clone(), value)
            })
            .collect(),
        file,
        metric: value,
        metrics,
        problem,
        selected: winner == Some(stage.name.as_str()),
    }
}

/// Reads a metrics file both typed and as JSON (for dotted metric paths).
fn read_metrics(path: &Path) -> Result<(TrainingMetrics, serde_json::Value)> {
    let metrics = TrainingMetrics::read_json(path)?;
    let json = metrics.to_json();
    Ok((metrics, json))
}

/// The matrix keys in name order, then the other params that differ between variants.
fn columns(variants: &[Variant]) -> Vec<String> {
    let mut columns: Vec<String> = variants
        .first()
        .map(|first| first.matrix.keys().cloned().collect())
        .unwrap_or_default();
    let names: std::collections::BTreeSet<&String> =
        variants.iter().flat_map(|v| v.params.keys()).collect();
    for name in names {
        let differs = variants
            .iter()
            .any(|v| v.params.get(name) != variants[0].params.get(name));
        if differs && !columns.contains(name) {
            columns.push(name.clone());
        }
    }
    columns
}

/// A pipeline file's validated pipeline and graph, for the commands that read sweeps.
pub fn load(file: &Path, cache: Option<&Path>) -> Result<(Pipeline, Dag)> {
    let registry = crate::ml::registry();
    let pipeline = crate::engine::spec::load(file, &[], cache, &registry)?;
    let dag = Dag::build(&pipeline)?;
    Ok((pipeline, dag))
}

/// The kind a stage runs (`cmd` for a shell command).
pub fn kind_name(stage: &Stage) -> &str {
    match &stage.action {
        Action::Kind(kind) => kind.name(),
        Action::Cmd(_) => "cmd",
    }
}
