//! The `select` kind, the engine's own: picks the best variant of a matrix stage by a number
//! in each variant's metrics JSON and copies that variant's outputs, byte for byte, to the
//! paths a single, unswept stage of the same kind would write; so the stages below it read
//! `${model_path}/checkpoint.onnx` as if there were no sweep, and early cutoff stops them when
//! the winner's bytes do not change.
//!
//! ```yaml
//! best:
//!   kind: select
//!   from: train                                # a matrix stage
//!   params: {metric: val_msle, mode: min}   # a key or a dotted path into the JSON
//! ```
//!
//! The loader (`spec::loader`) resolves a select stage from its `from:` stage's variants: its
//! deps are every output of every variant (role `VARIANT/ROLE`), its outputs the variants'
//! output roles at `${model_path}/<default name>` plus `selection` (`selection.json`), and it
//! fills in two params of its own — `from` and `variants` (each variant's stage name, matrix
//! values, resolved params and outputs, in expansion order) — so a variant's params enter the
//! select stage's key like its outputs do. A variant's outputs are known by their roles (a
//! kind's `outs:` roles; a `cmd` stage's by file name without extension), and `metrics_role`
//! (default `metrics`) names the one holding the metrics JSON.
//!
//! Ties go to the first variant in expansion order. A metric missing from a metrics file or
//! not a number fails the stage, naming the variant and the file: nothing is written.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::engine::files;
use crate::engine::fingerprint::canonical_param;

use super::{OutputRole, ParamSpec, Params, StageContext, StageKind};

/// The name a pipeline uses in `kind:`.
pub const NAME: &str = "select";

/// The output role of the selection record.
pub const SELECTION_ROLE: &str = "selection";

/// The param naming the variants' output that holds the metrics JSON.
pub const METRICS_ROLE_PARAM: &str = "metrics_role";

/// The params the loader fills in (the user may not set them).
pub const FROM_PARAM: &str = "from";
pub const VARIANTS_PARAM: &str = "variants";

pub struct Select;

/// One variant as the loader describes it in the `variants` param.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantSpec {
    pub stage: String,
    /// Matrix key → value, in the matrix's key order.
    pub matrix: IndexMap<String, serde_yaml::Value>,
    /// Every param of the variant, resolved, in name order.
    pub params: BTreeMap<String, serde_yaml::Value>,
    /// Output role → path relative to the project.
    pub outputs: IndexMap<String, String>,
}

/// `selection.json`: the keys and their order are a contract (the report reads it).
#[derive(Serialize)]
struct Selection<'a> {
    from: &'a str,
    metric: &'a str,
    mode: &'a str,
    winner: &'a str,
    variants: Vec<SelectionEntry<'a>>,
}

#[derive(Serialize)]
struct SelectionEntry<'a> {
    stage: &'a str,
    matrix: IndexMap<&'a str, serde_json::Value>,
    params: BTreeMap<&'a str, serde_json::Value>,
    metric: serde_json::Number,
    outputs: &'a IndexMap<String, String>,
}

/// Whether the smallest or the largest metric wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Min,
    Max,
}

impl Mode {
    fn parse(params: &Params) -> Result<Mode> {
        match params.str("mode")? {
            "min" => Ok(Mode::Min),
            "max" => Ok(Mode::Max),
            other => bail!("param `mode`: expected `min` or `max`, found `{other}`"),
        }
    }

    fn better(self, candidate: f64, best: f64) -> bool {
        match self {
            Mode::Min => candidate < best,
            Mode::Max => candidate > best,
        }
    }
}

impl StageKind for Select {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> u32 {
        1
    }
    /// None declared: the loader gives a select stage its `from:` stage's variants' outputs.
    fn inputs(&self) -> &'static [&'static str] {
        &[]
    }
    /// The selection record; the loader adds the `from:` stage's output roles.
    fn outputs(&self) -> &'static [OutputRole] {
        &[OutputRole {
            role: SELECTION_ROLE,
            default_name: "selection.json",
        }]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::new(
                "metric",
                serde_yaml::Value::Null,
                "the number compared: a key of the metrics JSON, or a dotted path (`validation.mse`, `epochs.-1.val_msle`: `-1` is a list's last item)",
            ),
            ParamSpec::new("mode", "min", "`min`: the smallest metric wins; `max`: the largest"),
            ParamSpec::new(
                METRICS_ROLE_PARAM,
                "metrics",
                "the variants' output role holding the metrics JSON (a cmd stage's: its file name without extension)",
            ),
        ]
    }
    fn check_params(&self, params: &Params) -> Result<()> {
        let metric = params.str("metric")?;
        if metric.split('.').any(str::is_empty) {
            bail!("param `metric`: `{metric}` is not a name or a dotted path (`a.b.c`)");
        }
        Mode::parse(params)?;
        params.str(METRICS_ROLE_PARAM)?;
        Ok(())
    }
    fn run(&self, ctx: &StageContext) -> Result<()> {
        let params = ctx.params;
        let metric = params.str("metric")?;
        let mode = Mode::parse(params)?;
        let metrics_role = params.str(METRICS_ROLE_PARAM)?;
        let from = params.str(FROM_PARAM)?;
        let variants: Vec<VariantSpec> = serde_yaml::from_value(
            params
                .get(VARIANTS_PARAM)
                .cloned()
                .ok_or_else(|| anyhow!("stage `{}` lists no variants", ctx.stage))?,
        )
        .context("reading the variants the pipeline lists")?;
        if variants.is_empty() {
            bail!("stage `{from}` has no variants to select from");
        }
        let mut values: Vec<serde_json::Number> = Vec::with_capacity(variants.len());
        let mut winner = 0;
        for (index, variant) in variants.iter().enumerate() {
            let file = variant.outputs.get(metrics_role).ok_or_else(|| {
                anyhow!("variant `{}` has no output `{metrics_role}`", variant.stage)
            })?;
            let path = ctx.input(&format!("{}/{metrics_role}", variant.stage))?;
            let value = metric_value(path, metric).map_err(|problem| {
                anyhow!(
                    "metric `{metric}` in `{file}` (the `{metrics_role}` output of `{}`) {problem}",
                    variant.stage
                )
            })?;
            ctx.progress
                .println(&format!("{}: {metric} = {value}", variant.stage));
            if index > 0 && mode.better(as_f64(&value), as_f64(&values[winner])) {
                winner = index;
            }
            values.push(value);
        }
        let best = &variants[winner];
        ctx.progress.println(&format!(
            "selected {} ({metric} = {})",
            best.stage, values[winner]
        ));
        for role in best.outputs.keys() {
            let source = ctx.input(&format!("{}/{role}", best.stage))?;
            files::copy_recursive(source, ctx.output(role)?)
                .with_context(|| format!("copying `{}` of `{}`", best.outputs[role], best.stage))?;
        }
        let selection = Selection {
            from,
            metric,
            mode: params.str("mode")?,
            winner: &best.stage,
            variants: variants
                .iter()
                .zip(values)
                .map(|(variant, metric)| SelectionEntry {
                    stage: &variant.stage,
                    matrix: (variant.matrix.iter())
                        .map(|(key, value)| (key.as_str(), canonical_param(value)))
                        .collect(),
                    params: (variant.params.iter())
                        .map(|(key, value)| (key.as_str(), canonical_param(value)))
                        .collect(),
                    metric,
                    outputs: &variant.outputs,
                })
                .collect(),
        };
        let mut text = serde_json::to_string_pretty(&selection)?;
        text.push('\n');
        let out = ctx.output(SELECTION_ROLE)?;
        fs::write(out, text).with_context(|| format!("writing {}", out.display()))
    }
}

/// A metric as compared ([`metric_value`] only returns finite numbers).
fn as_f64(number: &serde_json::Number) -> f64 {
    number.as_f64().unwrap_or(f64::NAN)
}

/// The number at the dotted `path` of the JSON file `file`; the error completes "metric `…` in
/// `…` …".
fn metric_value(file: &Path, path: &str) -> Result<serde_json::Number, String> {
    let text = fs::read(file).map_err(|error| format!("cannot be read ({error})"))?;
    let root: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|error| format!("cannot be read: the file is not JSON ({error})"))?;
    metric_at(&root, path)
}

/// The finite number at the dotted `path` of `root` (a part that is a whole number indexes a
/// list, `-1` its last item); the error completes "metric `…` …" and says where a missing key
/// is instead. `metrics` and `report` rank variants with it too. Walked by hand: serde_json's
/// `Value::pointer` takes `/a/0/b` and cannot count from a list's end.
pub fn metric_at(root: &serde_json::Value, path: &str) -> Result<serde_json::Number, String> {
    let mut node = root;
    for part in path.split('.') {
        let next = match node {
            serde_json::Value::Object(map) => map.get(part),
            serde_json::Value::Array(items) => list_index(part, items.len()).map(|i| &items[i]),
            _ => None,
        };
        node = next.ok_or_else(|| {
            let there = match node {
                serde_json::Value::Object(map) if !map.is_empty() => format!(
                    " (keys there: {})",
                    map.keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                serde_json::Value::Array(items) => format!(" (a list of {} items)", items.len()),
                _ => String::new(),
            };
            let mut found = Vec::new();
            paths_to_key(root, part, "", &mut found);
            let elsewhere = match found.as_slice() {
                [] => String::new(),
                found => format!("; `{part}` is at `{}`", found.join("`, `")),
            };
            format!("is missing: no `{part}`{there}{elsewhere}")
        })?;
    }
    match node {
        serde_json::Value::Number(number) if number.as_f64().is_some_and(f64::is_finite) => {
            Ok(number.clone())
        }
        other => Err(format!("is {other}, not a number")),
    }
}

/// A path part as an index into a list of `len` items: `0`, `1`, … from the front, `-1`, `-2`,
/// … from the back.
fn list_index(part: &str, len: usize) -> Option<usize> {
    match part.strip_prefix('-') {
        Some(back) => len.checked_sub(back.parse::<usize>().ok().filter(|n| *n > 0)?),
        None => part.parse::<usize>().ok().filter(|index| *index < len),
    }
}

/// Every dotted path in `node` that ends in the key `key` (a list's last item as `-1`), for
/// the error that names a key at the wrong place.
fn paths_to_key(node: &serde_json::Value, key: &str, prefix: &str, found: &mut Vec<String>) {
    match node {
        serde_json::Value::Object(map) => {
            for (name, child) in map {
                let path = format!("{prefix}{name}");
                if name == key {
                    found.push(path.clone());
                }
                paths_to_key(child, key, &format!("{path}."), found);
            }
        }
        serde_json::Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let index = if index + 1 == items.len() {
                    "-1".to_string()
                } else {
                    index.to_string()
                };
                paths_to_key(child, key, &format!("{prefix}{index}."), found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(root: &serde_json::Value, path: &str) -> Option<f64> {
        metric_at(root, path)
            .ok()
            .and_then(|number| number.as_f64())
    }

    #[test]
    fn metrics_are_keys_or_dotted_paths_counting_from_either_end() {
        let metrics = serde_json::json!({
            "val_msle": 0.2,
            "epochs": [{"epoch": 1, "train_msle": 0.5, "val_msle": 0.4},
                       {"epoch": 2, "train_msle": 0.3, "val_msle": 0.2}],
            "validation": {"mse": 1.5, "mae": 0.9, "note": "text"},
        });
        assert_eq!(at(&metrics, "val_msle"), Some(0.2));
        assert_eq!(at(&metrics, "validation.mse"), Some(1.5));
        assert_eq!(at(&metrics, "epochs.0.val_msle"), Some(0.4));
        assert_eq!(at(&metrics, "epochs.-1.val_msle"), Some(0.2));
        assert_eq!(at(&metrics, "epochs.-2.train_msle"), Some(0.5));
        assert_eq!(at(&metrics, "epochs.-3.val_msle"), None);
        assert_eq!(at(&metrics, "epochs.-0.val_msle"), None);
        assert_eq!(at(&metrics, "epochs.2.val_msle"), None);
        assert_eq!(at(&metrics, "validation.r2"), None);
        assert_eq!(at(&metrics, "epochs.x"), None);
        let error = metric_at(&metrics, "train_msle").unwrap_err();
        assert!(error.contains("`epochs.-1.train_msle`"), "{error}");
        let error = metric_at(&metrics, "validation.note").unwrap_err();
        assert!(error.contains("not a number"), "{error}");
    }
}
