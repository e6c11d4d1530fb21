//! `matrix:` stages (DVC's syntax): a stage with `matrix: {a: [1, 2], b: [x, y]}` becomes one
//! ordinary stage per combination, named `stage@a=1,b=x` (keys in file order, the cartesian
//! product with the first key outermost), before any stage is resolved — so each variant has
//! its own key, run record, cache entry, early cutoff and lock file entry.
//!
//! Per variant: a matrix key that is a param of the stage (a param its kind declares, or one
//! its `params:` lists for a `cmd` stage) takes the variant's value, above the global and the
//! stage's `params:`; `${item.KEY}` in `cmd`, `deps`, `outs` and params is replaced by the
//! variant's value (a param that is exactly `${item.KEY}` takes the value with its YAML type);
//! a built-in kind's outputs without an explicit path go to `${model_path}/VARIANT/<default
//! name>`. `--set stage.param=…` on a matrix stage applies to every variant; setting a matrix
//! key with `--set` is an error (the matrix decides it).
//!
//! The places of a variant's nodes are those of the stage's (see `Places::alias`), so every
//! later error about a variant points into the original stage; a matrix value that sets a
//! param is placed as that param's value.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use indexmap::IndexMap;
use serde_yaml::Value;

use super::path;
use super::positions::Places;
use super::raw::{RawPipeline, RawPorts, RawStage};
use super::{Location, Override, SpecError};
use crate::engine::kind::{param_text, Registry};

/// The matrix stage a variant belongs to, read from its name (`train@a=1,b=x` → `train`); none
/// for a stage that is no variant (a stage's own name holds no `@`).
pub fn matrix_stage_of(name: &str) -> Option<&str> {
    name.split_once('@').map(|(stage, _)| stage)
}

/// A variant's matrix values read back from its name, in the matrix's key order
/// (`train@a=1,b=x` → `(a, 1), (b, x)`); none for a stage that is no variant. The inverse of the
/// naming in [`expand`]: keys and values are checked to hold no `,`, `=` or `@` (see `axes`).
pub fn variant_values(name: &str) -> impl Iterator<Item = (&str, &str)> {
    let values = name.split_once('@').map_or("", |(_, values)| values);
    values.split(',').filter_map(|pair| pair.split_once('='))
}

/// The variants of every matrix stage, as expanded.
#[derive(Default)]
pub(super) struct Matrices {
    stages: Vec<MatrixStage>,
    /// Each variant's name → its matrix stage's index in `stages`: every stage asks for its
    /// origin, and a scan of all variants per stage was quadratic in a large matrix.
    stage_of_variant: HashMap<String, usize>,
}

struct MatrixStage {
    name: String,
    keys: Vec<String>,
    variants: Vec<Variant>,
}

/// One variant of a matrix stage: its stage name and its matrix values (in key order).
pub(super) struct Variant {
    pub name: String,
    pub values: IndexMap<String, Value>,
}

impl Matrices {
    /// The stage a variant came from (a stage that is no variant: itself).
    pub(super) fn origin<'a>(&'a self, stage: &'a str) -> &'a str {
        self.stage_of_variant
            .get(stage)
            .map_or(stage, |&index| self.stages[index].name.as_str())
    }

    /// The variants of the matrix stage `stage`, in expansion order (`None`: no matrix stage).
    pub(super) fn variants(&self, stage: &str) -> Option<&[Variant]> {
        self.stages
            .iter()
            .find(|matrix| matrix.name == stage)
            .map(|matrix| matrix.variants.as_slice())
    }

    /// `--set` with a matrix stage's name applies to each of its variants.
    pub(super) fn overrides(&self, overrides: &[Override]) -> Result<Vec<Override>, SpecError> {
        let mut expanded = Vec::with_capacity(overrides.len());
        for assignment in overrides {
            let Some(matrix) = self.stages.iter().find(|m| m.name == assignment.stage) else {
                expanded.push(assignment.clone());
                continue;
            };
            if matrix.keys.contains(&assignment.param) {
                return Err(SpecError::Override {
                    assignment: assignment.assignment.clone(),
                    message: format!(
                        "`{}` is a matrix key of stage `{}`: its values come from `matrix:` (edit the matrix instead)",
                        assignment.param, matrix.name
                    ),
                });
            }
            expanded.extend(matrix.variants.iter().map(|variant| Override {
                stage: variant.name.clone(),
                ..assignment.clone()
            }));
        }
        Ok(expanded)
    }
}

/// The most variants one matrix stage may have: a few keys with long lists multiply into more
/// stages than memory holds (six keys of 100 values are 10¹² stages).
pub const MAX_VARIANTS: usize = 100_000;

/// Replaces every matrix stage of `raw` by its variants (in place, in file order) and indexes
/// their positions; checks every `${item.KEY}`.
pub(super) fn expand(
    file: &Path,
    raw: &mut RawPipeline,
    places: &mut Places,
    registry: &Registry,
) -> Result<Matrices, SpecError> {
    let error = |at: (usize, usize), stage: &str, message: String| SpecError::Stage {
        at: Location {
            file: file.to_path_buf(),
            line: at.0,
            column: at.1,
        },
        stage: stage.to_string(),
        message,
    };
    let names: Vec<String> = raw.stages.keys().cloned().collect();
    let mut matrices = Matrices::default();
    let mut stages = IndexMap::with_capacity(raw.stages.len());
    for (name, mut stage) in std::mem::take(&mut raw.stages) {
        let prefix = format!("stages/{name}");
        let Some(matrix) = stage.matrix.take() else {
            for_each_text(&mut stage, &mut |node, text| {
                if !text.contains("${") {
                    return Ok(());
                }
                path::expand(text, |var| {
                    (!var.starts_with("item.")).then(|| format!("${{{var}}}"))
                })
                .map(drop)
                .map_err(|_| {
                    error(
                        places.value(&format!("{prefix}/{}", node())),
                        &name,
                        "`${item.…}` belongs in a stage with `matrix:` (this stage has none)"
                            .into(),
                    )
                })
            })?;
            stages.insert(name, stage);
            continue;
        };
        let axes = axes(&matrix, &prefix, places)
            .map_err(|(node, message)| error(node, &name, message))?;
        let count =
            (axes.iter()).try_fold(1usize, |count, (_, cells)| count.checked_mul(cells.len()));
        if count.is_none_or(|count| count > MAX_VARIANTS) {
            let sizes: Vec<String> = axes
                .iter()
                .map(|(_, cells)| cells.len().to_string())
                .collect();
            return Err(error(
                places.value(&format!("{prefix}/matrix")),
                &name,
                format!(
                    "`matrix:` makes {} variants, more than {MAX_VARIANTS} (each is a stage of its own)",
                    sizes.join(" × ")
                ),
            ));
        }
        let keys: Vec<String> = axes.iter().map(|(key, _)| key.clone()).collect();
        let used = RefCell::new(Vec::new());
        for_each_text(&mut stage, &mut |node, text| {
            path::expand(text, |var| match var.strip_prefix("item.") {
                Some(key) if keys.iter().any(|k| k == key) => {
                    used.borrow_mut().push(key.to_string());
                    Some(String::new())
                }
                Some(_) => None,
                None => Some(String::new()),
            })
            .map(drop)
            .map_err(|message| {
                error(
                    places.value(&format!("{prefix}/{}", node())),
                    &name,
                    format!("{message}: the matrix has the keys {}", keys.join(", ")),
                )
            })
        })?;
        let kind = stage.kind.as_deref().and_then(|kind| registry.find(kind));
        let params: Option<Vec<String>> = match (&stage.kind, kind) {
            (Some(_), Some(kind)) => Some(kind.params().iter().map(|p| p.name.into()).collect()),
            (None, _) => Some(stage.params.keys().cloned().collect()),
            // An unknown kind: the loader names it; no param can be judged here.
            (Some(_), None) => None,
        };
        for key in &keys {
            let is_param = params.as_ref().is_none_or(|params| params.contains(key));
            if !is_param && !used.borrow().contains(key) {
                return Err(error(
                    places.key(&format!("{prefix}/matrix/{key}")),
                    &name,
                    format!("matrix key `{key}` is neither a param of the stage nor used as `${{item.{key}}}` in it"),
                ));
            }
        }
        let mut variants = Vec::new();
        for combination in cartesian(&axes) {
            let variant = format!(
                "{name}@{}",
                combination
                    .iter()
                    .map(|(key, (text, _, _))| format!("{key}={text}"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            if names.contains(&variant) {
                return Err(error(
                    places.value(&format!("{prefix}/matrix")),
                    &name,
                    format!("matrix variant `{variant}` has the name of another stage"),
                ));
            }
            places.alias(&prefix, &format!("stages/{variant}"));
            let mut copy = stage.clone();
            for (key, (_, value, at)) in &combination {
                let is_param = params.as_ref().is_some_and(|params| params.contains(key));
                if is_param {
                    copy.params.insert(key.clone(), value.clone());
                    places.place(&format!("stages/{variant}/params/{key}"), at);
                }
            }
            for value in copy.params.values_mut() {
                let exact = value.as_str().and_then(|text| {
                    let key = text.strip_prefix("${item.")?.strip_suffix('}')?;
                    combination.iter().find(|(k, _)| k == key)
                });
                if let Some((_, (_, typed, _))) = exact {
                    *value = typed.clone();
                }
            }
            for_each_text(&mut copy, &mut |node, text| {
                *text = path::expand(text, |var| match var.strip_prefix("item.") {
                    Some(key) => combination
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, (text, _, _))| text.clone()),
                    None => Some(format!("${{{var}}}")),
                })
                .map_err(|message| {
                    error(
                        places.value(&format!("{prefix}/{}", node())),
                        &name,
                        message,
                    )
                })?;
                Ok(())
            })?;
            if let Some(kind) = kind {
                default_outputs_in_folder(&mut copy, kind.outputs(), &variant);
            }
            stages.insert(variant.clone(), copy);
            variants.push(Variant {
                name: variant,
                values: (combination.into_iter())
                    .map(|(key, (_, value, _))| (key, value))
                    .collect(),
            });
        }
        let index = matrices.stages.len();
        (matrices.stage_of_variant)
            .extend(variants.iter().map(|variant| (variant.name.clone(), index)));
        matrices.stages.push(MatrixStage {
            name,
            keys,
            variants,
        });
    }
    raw.stages = stages;
    Ok(matrices)
}

/// A matrix value: its text (in the variant's name and `${item.KEY}`), its YAML value (what a
/// param gets) and its node in the file.
type Cell = (String, Value, String);

/// One matrix key and its values.
type Axis = (String, Vec<Cell>);

/// The matrix's keys and their values, checked: a map of non-empty lists of distinct scalars
/// (an error: where and what).
fn axes(
    matrix: &Value,
    prefix: &str,
    places: &Places,
) -> Result<Vec<Axis>, ((usize, usize), String)> {
    let node = format!("{prefix}/matrix");
    let Value::Mapping(map) = matrix else {
        return Err((
            places.value(&node),
            "`matrix:` is a map of names to lists of values (`matrix: {n_factors: [16, 32]}`)"
                .into(),
        ));
    };
    if map.is_empty() {
        return Err((places.value(&node), "`matrix:` is empty".into()));
    }
    let mut axes = Vec::new();
    for (key, values) in map {
        let Value::String(key) = key else {
            return Err((places.value(&node), "a matrix key is a name".into()));
        };
        let key_node = format!("{node}/{key}");
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err((
                places.key(&key_node),
                format!("matrix key `{key}`: a key is letters, digits and `_` (it names the variant and `${{item.KEY}}`)"),
            ));
        }
        let Value::Sequence(values) = values else {
            return Err((
                places.value(&key_node),
                format!("matrix key `{key}`: expected a list of values (`{key}: [1, 2]`)"),
            ));
        };
        if values.is_empty() {
            return Err((
                places.value(&key_node),
                format!("matrix key `{key}` has an empty list"),
            ));
        }
        let mut cells: Vec<Cell> = Vec::new();
        for (index, value) in values.iter().enumerate() {
            let cell = format!("{key_node}/{index}");
            let at = || places.value(&cell);
            if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                return Err((
                    at(),
                    format!("matrix key `{key}`: a value is a number, a boolean or a word"),
                ));
            }
            let text = param_text(value);
            // The text names the variant and its output folder: keep it one plain path part.
            let plain = |c: char| c.is_ascii_alphanumeric() || "._+-".contains(c);
            if text.is_empty() || text == "." || text == ".." || !text.chars().all(plain) {
                return Err((
                    at(),
                    format!("matrix key `{key}`: value `{text}` must be letters, digits, `.`, `_`, `+` and `-` (it names the variant)"),
                ));
            }
            if let Some(first) = cells.iter().position(|(seen, _, _)| *seen == text) {
                return Err((
                    at(),
                    format!(
                        "matrix key `{key}`: duplicate value `{text}` (also item {} of the list)",
                        first + 1
                    ),
                ));
            }
            cells.push((text, value.clone(), cell));
        }
        axes.push((key.clone(), cells));
    }
    Ok(axes)
}

/// Every combination of one value per key, the first key outermost.
fn cartesian(axes: &[Axis]) -> Vec<Vec<(String, Cell)>> {
    axes.iter()
        .fold(vec![Vec::new()], |combinations, (key, cells)| {
            combinations
                .iter()
                .flat_map(|prefix| {
                    cells.iter().map(move |cell| {
                        let mut combination = prefix.clone();
                        combination.push((key.clone(), cell.clone()));
                        combination
                    })
                })
                .collect()
        })
}

/// Gives every output role the stage leaves to its default a path in the variant's folder.
fn default_outputs_in_folder(
    stage: &mut RawStage,
    outputs: &[crate::engine::kind::OutputRole],
    variant: &str,
) {
    let empty = match &stage.outs {
        None => true,
        Some(RawPorts::List(paths)) => paths.is_empty(),
        Some(RawPorts::Roles(_)) => false,
    };
    if empty {
        stage.outs = Some(RawPorts::Roles(IndexMap::new()));
    }
    // A non-empty list on a built-in kind: the loader rejects it.
    let Some(RawPorts::Roles(roles)) = &mut stage.outs else {
        return;
    };
    for output in outputs {
        roles
            .entry(output.role.to_string())
            .or_insert_with(|| format!("${{model_path}}/{variant}/{}", output.default_name));
    }
}

/// The node path of a text below its stage (`deps/0`), made only for an error message.
type TextNode<'a> = &'a dyn Fn() -> String;

/// Calls `visit` with the node (below the stage) and text of every string `${item.KEY}` may
/// appear in: `cmd`, `deps`, `outs` and params (nested values under their param's node).
fn for_each_text(
    stage: &mut RawStage,
    visit: &mut impl FnMut(TextNode, &mut String) -> Result<(), SpecError>,
) -> Result<(), SpecError> {
    if let Some(cmd) = &mut stage.cmd {
        visit(&|| "cmd".to_string(), cmd)?;
    }
    for (node, ports) in [("deps", &mut stage.deps), ("outs", &mut stage.outs)] {
        match ports {
            None => {}
            Some(RawPorts::List(paths)) => {
                for (index, text) in paths.iter_mut().enumerate() {
                    visit(&|| format!("{node}/{index}"), text)?;
                }
            }
            Some(RawPorts::Roles(roles)) => {
                for (role, text) in roles.iter_mut() {
                    visit(&|| format!("{node}/{role}"), text)?;
                }
            }
        }
    }
    for (name, value) in stage.params.iter_mut() {
        visit_value(&|| format!("params/{name}"), value, visit)?;
    }
    Ok(())
}

fn visit_value(
    node: TextNode,
    value: &mut Value,
    visit: &mut impl FnMut(TextNode, &mut String) -> Result<(), SpecError>,
) -> Result<(), SpecError> {
    match value {
        Value::String(text) => visit(node, text),
        Value::Sequence(items) => items
            .iter_mut()
            .try_for_each(|item| visit_value(node, item, visit)),
        Value::Mapping(map) => map
            .values_mut()
            .try_for_each(|item| visit_value(node, item, visit)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_values_come_from_the_variant_name() {
        let values: IndexMap<&str, &str> =
            variant_values("train@n_factors=16,dropout=0.1").collect();
        assert_eq!(values["n_factors"], "16");
        assert_eq!(values["dropout"], "0.1");
        assert_eq!(
            values.keys().copied().collect::<Vec<_>>(),
            ["n_factors", "dropout"]
        );
        assert_eq!(variant_values("train").count(), 0);
        assert_eq!(
            matrix_stage_of("train@n_factors=16,dropout=0.1"),
            Some("train")
        );
        assert_eq!(matrix_stage_of("train"), None);
    }
}
