//! Turning a parsed pipeline file into a [`Pipeline`]: each stage resolved and checked, each
//! error placed at its line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::Symlink;
use super::matrix::{self, Matrices};
use super::positions::Places;
use super::protect;
use super::raw::{RawPipeline, RawPorts, RawStage};
use super::values;
use super::{
    closest, defaults, path, Action, Declared, Location, Override, Pipeline, Port, Side, SpecError,
    Stage,
};
use crate::engine::kind::{param_text, select, Params, Registry, StageKind};

/// The longest stage name, a matrix variant's included: the cache names files after stages
/// (`logs/<stage>.log`, `swaps/<stage>-….json`), and a file name holds at most 255 bytes.
const MAX_STAGE_NAME_BYTES: usize = 200;

pub(super) struct Loader<'a> {
    file: &'a Path,
    registry: &'a Registry,
    places: Places,
    raw: RawPipeline,
    matrices: Matrices,
}

impl<'a> Loader<'a> {
    /// Parses `text` (the pipeline file with `${…}` protected) into raw stages. Places are
    /// indexed only when an error needs one (see `positions`): serde_yaml refuses a repeated
    /// key in any map, and only then is the text indexed, to name the repeat.
    pub(super) fn new(
        file: &'a Path,
        text: String,
        registry: &'a Registry,
    ) -> Result<Self, SpecError> {
        let parsed = serde_yaml::from_str::<RawPipeline>(&text);
        let mut places = Places::new(text);
        let mut raw = match parsed {
            Ok(raw) => raw,
            Err(error) => return Err(refused(file, &places, error)),
        };
        raw.unprotect();
        check_param_values(file, &raw, &places)?;
        let matrices = matrix::expand(file, &mut raw, &mut places, registry)?;
        Ok(Loader {
            file,
            registry,
            places,
            raw,
            matrices,
        })
    }

    fn at(&self, (line, column): (usize, usize)) -> Location {
        Location {
            file: self.file.to_path_buf(),
            line,
            column,
        }
    }

    /// Where `node` (e.g. `deps/ratings`) of `stage` sits in the file.
    fn node_location(&self, stage: &str, node: &str) -> Location {
        self.at(self.places.value(&format!("stages/{stage}/{node}")))
    }

    fn stage_error(&self, stage: &str, node: &str, message: impl Into<String>) -> SpecError {
        SpecError::Stage {
            at: self.node_location(stage, node),
            stage: stage.to_string(),
            message: message.into(),
        }
    }

    pub(super) fn load(
        mut self,
        overrides: &[Override],
        cache: Option<&Path>,
    ) -> Result<Pipeline, SpecError> {
        let project_dir = defaults::project_dir(self.file, self.raw.project_dir.as_deref())
            .map_err(|(project_dir, error)| SpecError::Syntax {
                at: self.at(self.places.value("project_dir")),
                message: format!("project_dir `{}`: {error}", project_dir.display()),
            })?;
        // Swap journals name outputs by their absolute paths, as text.
        if project_dir.to_str().is_none() {
            return Err(SpecError::NotUtf8Path {
                path: project_dir,
                what: "the project folder",
            });
        }
        let name = defaults::name(self.file, self.raw.name.as_deref());
        // The name is the default model_path's last folder (`models/<name>`) and a line of the
        // lock file: one plain path part.
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains(['/', '\\'])
            || name.chars().any(char::is_control)
        {
            return Err(SpecError::Syntax {
                at: self.at(self.places.value("name")),
                message: format!(
                    "name {name:?}: a pipeline's name is one folder name (the default model_path \
                     is `models/<name>`): not empty, `.` or `..`, without `/`, `\\` or control \
                     characters"
                ),
            });
        }
        let model_path = defaults::model_path(&name, self.raw.model_path.as_deref());
        if !path::is_inside_project(&model_path) {
            return Err(SpecError::Syntax {
                at: self.at(self.places.value("model_path")),
                message: format!("model_path `{model_path}` must stay inside the project folder"),
            });
        }
        if let Some(remote) = &self.raw.remote {
            self.check_remote(remote)?;
        }
        let overrides = &self.matrices.overrides(overrides)?;
        for assignment in overrides {
            if !self.raw.stages.contains_key(&assignment.stage) {
                return Err(SpecError::Override {
                    assignment: assignment.assignment.clone(),
                    message: format!(
                        "no stage `{}`{}",
                        assignment.stage,
                        closest(
                            &assignment.stage,
                            self.raw.stages.keys().map(String::as_str)
                        )
                        .map(|name| format!(" (did you mean `{name}`?)"))
                        .unwrap_or_default()
                    ),
                });
            }
        }
        let overrides_of = |stage: &str| -> Vec<&Override> {
            overrides.iter().filter(|o| o.stage == stage).collect()
        };
        // Select stages last: they are resolved from their `from:` stage's variants.
        let mut slots: Vec<Option<Stage>> = Vec::with_capacity(self.raw.stages.len());
        for (stage_name, raw) in &self.raw.stages {
            let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
            let origin = self.matrices.origin(stage_name);
            if origin.is_empty() || !origin.chars().all(valid) {
                return Err(SpecError::Stage {
                    at: self.at(self.places.key(&format!("stages/{stage_name}"))),
                    stage: stage_name.clone(),
                    message: "a stage name is letters, digits, `_` and `-`".into(),
                });
            }
            if stage_name.len() > MAX_STAGE_NAME_BYTES {
                let shown: String = stage_name.chars().take(40).collect();
                return Err(SpecError::Stage {
                    at: self.at(self.places.key(&format!("stages/{stage_name}"))),
                    stage: format!("{shown}…"),
                    message: format!(
                        "the stage name is {} bytes long, more than {MAX_STAGE_NAME_BYTES}: it \
                         names files in the cache (`logs/<stage>.log`)",
                        stage_name.len()
                    ),
                });
            }
            slots.push(if is_select(raw) {
                None
            } else {
                Some(self.stage(stage_name, raw, &model_path, &overrides_of(stage_name))?)
            });
        }
        let mut selects = Vec::new();
        for (index, (stage_name, raw)) in self.raw.stages.iter().enumerate() {
            if slots[index].is_none() {
                let overrides = overrides_of(stage_name);
                let stage = self.select_stage(stage_name, raw, &model_path, &overrides, &slots)?;
                selects.push((index, stage));
            }
        }
        for (index, stage) in selects {
            slots[index] = Some(stage);
        }
        let stages: Vec<Stage> = slots.into_iter().flatten().collect();
        let cache_dir = match cache {
            Some(dir) => dir.to_path_buf(),
            None => project_dir.join("cache"),
        };
        let pipeline = Pipeline {
            name,
            file: self.file.to_path_buf(),
            project_dir,
            model_path,
            cache_dir,
            remote: self.raw.remote.clone(),
            stages,
            places: std::mem::take(&mut self.places),
        };
        let outputs = Outputs::of(&pipeline);
        self.check_outputs(&pipeline, &outputs)?;
        self.check_protected(&pipeline)?;
        self.check_dependencies(&pipeline, &outputs)?;
        Ok(pipeline)
    }

    /// The `remote:` URL must parse and carry no password (the pipeline file is committed).
    fn check_remote(&self, remote: &str) -> Result<(), SpecError> {
        let problem = match crate::engine::remote::RemoteUrl::parse(remote) {
            Err(problem) => problem,
            Ok(url) if url.has_password() => "a password does not belong in the pipeline file \
                (it is committed): set WAREZ_REMOTE_PASSWORD, or the whole URL in WAREZ_REMOTE"
                .to_string(),
            Ok(_) => return Ok(()),
        };
        Err(SpecError::Syntax {
            at: self.at(self.places.value("remote")),
            message: format!("remote: {problem}"),
        })
    }

    /// `text` (the node `node` of stage `name`) with `${model_path}` expanded, normalized.
    /// (`node` is made only for an error.)
    fn expand_path(
        &self,
        name: &str,
        model_path: &str,
        node: impl FnOnce() -> String,
        text: &str,
    ) -> Result<String, SpecError> {
        path::expand(text, |var| {
            (var == "model_path").then(|| model_path.to_string())
        })
        .map(|expanded| path::normalize(&expanded))
        .map_err(|message| self.stage_error(name, &node(), message))
    }

    fn stage(
        &self,
        name: &str,
        raw: &RawStage,
        model_path: &str,
        overrides: &[&Override],
    ) -> Result<Stage, SpecError> {
        let expand_path =
            |node: &dyn Fn() -> String, text: &str| self.expand_path(name, model_path, node, text);
        if raw.from.is_some() {
            return Err(self.stage_error(
                name,
                "from",
                format!("`from:` belongs to a stage of kind `{}`", select::NAME),
            ));
        }
        match (&raw.kind, &raw.cmd) {
            (Some(kind_name), None) => {
                let Some(kind) = self.registry.find(kind_name) else {
                    let names = self.registry.names();
                    return Err(SpecError::UnknownKind {
                        at: self.at(self.places.value(&format!("stages/{name}/kind"))),
                        stage: name.to_string(),
                        kind: kind_name.clone(),
                        suggestion: closest(kind_name, names),
                    });
                };
                let deps = self.roles(name, "deps", raw.deps.as_ref(), kind.inputs(), true)?;
                let deps = deps
                    .into_iter()
                    .map(|(role, text)| {
                        Ok(Port {
                            path: expand_path(&|| format!("deps/{role}"), &text)?,
                            declared: Declared::Entry,
                            role: Some(role),
                        })
                    })
                    .collect::<Result<Vec<_>, SpecError>>()?;
                let roles = kind
                    .outputs()
                    .iter()
                    .map(|out| (out.role, out.default_name));
                let outs = self.output_ports(name, raw, model_path, roles)?;
                let params = self.kind_params(name, raw, kind, overrides)?;
                Ok(Stage {
                    name: name.to_string(),
                    action: Action::Kind(kind),
                    deps,
                    outs,
                    params,
                })
            }
            (None, Some(cmd)) => {
                let list = |node: &str, ports: Option<&RawPorts>| match ports {
                    None => Ok(Vec::new()),
                    Some(RawPorts::List(paths)) => paths
                        .iter()
                        .enumerate()
                        .map(|(i, text)| {
                            Ok(Port {
                                role: None,
                                path: expand_path(&|| format!("{node}/{i}"), text)?,
                                declared: Declared::Entry,
                            })
                        })
                        .collect::<Result<Vec<_>, SpecError>>(),
                    Some(RawPorts::Roles(_)) => Err(self.stage_error(
                        name,
                        node,
                        format!("`{node}:` of a cmd stage is a list of paths, not a map"),
                    )),
                };
                let deps = list("deps", raw.deps.as_ref())?;
                let outs = list("outs", raw.outs.as_ref())?;
                let mut values: BTreeMap<String, serde_yaml::Value> = raw
                    .params
                    .iter()
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect();
                for assignment in overrides {
                    let Some(slot) = values.get_mut(&assignment.param) else {
                        let names = raw.params.keys().map(String::as_str);
                        return Err(SpecError::Override {
                            assignment: assignment.assignment.clone(),
                            message: format!(
                                "stage `{name}` has no param `{}`{} (a cmd stage has the params its `params:` lists)",
                                assignment.param,
                                closest(&assignment.param, names)
                                    .map(|close| format!(", did you mean `{close}`?"))
                                    .unwrap_or_default()
                            ),
                        });
                    };
                    *slot = assignment.value.clone();
                }
                let params = Params::new(values);
                let cmd = path::expand(cmd, |var| {
                    if var == "model_path" {
                        return Some(model_path.to_string());
                    }
                    let param = var.strip_prefix("params.")?;
                    params.get(param).map(param_text)
                })
                .map_err(|message| self.stage_error(name, "cmd", message))?;
                Ok(Stage {
                    name: name.to_string(),
                    action: Action::Cmd(cmd),
                    deps,
                    outs,
                    params,
                })
            }
            (Some(_), Some(_)) => Err(self.stage_error(
                name,
                "cmd",
                "a stage has either `kind:` or `cmd:`, not both",
            )),
            (None, None) => Err(SpecError::Stage {
                at: self.at(self.places.key(&format!("stages/{name}"))),
                stage: name.to_string(),
                message: "needs `kind:` (a built-in stage) or `cmd:` (a shell command)".into(),
            }),
        }
    }

    /// A built-in kind's outputs: each `(role, default file name)` at its path in `outs:`, else
    /// at `${model_path}/<default file name>`.
    fn output_ports<'r>(
        &self,
        name: &str,
        raw: &RawStage,
        model_path: &str,
        roles: impl Iterator<Item = (&'r str, &'r str)> + Clone,
    ) -> Result<Vec<Port>, SpecError> {
        let declared: Vec<&str> = roles.clone().map(|(role, _)| role).collect();
        let given = self.roles(name, "outs", raw.outs.as_ref(), &declared, false)?;
        let mut outs = Vec::new();
        for (role, default_name) in roles {
            let (path, declared) = match given.iter().find(|(given, _)| given == role) {
                Some((role, text)) => {
                    let node = || format!("outs/{role}");
                    let path = self.expand_path(name, model_path, node, text)?;
                    (path, Declared::Entry)
                }
                // A defaulted output has no node of its own: point at the stage.
                None => (
                    path::normalize(&format!("{model_path}/{default_name}")),
                    Declared::Stage,
                ),
            };
            outs.push(Port {
                role: Some(role.to_string()),
                path,
                declared,
            });
        }
        Ok(outs)
    }

    /// A `select` stage (see `kind::select`): its deps are every output of every variant of
    /// its `from:` stage (`slots`: every other stage, resolved), its outputs those roles and
    /// `selection`; the params `from` and `variants` describe the variants.
    fn select_stage(
        &self,
        name: &str,
        raw: &RawStage,
        model_path: &str,
        overrides: &[&Override],
        slots: &[Option<Stage>],
    ) -> Result<Stage, SpecError> {
        let kind: &'static dyn StageKind = &select::Select;
        if self.matrices.origin(name) != name {
            return Err(self.stage_error(
                name,
                "matrix",
                "a select stage has no `matrix:` (it compares the variants of its `from:` stage)",
            ));
        }
        let has_deps = match &raw.deps {
            None => false,
            Some(RawPorts::List(paths)) => !paths.is_empty(),
            Some(RawPorts::Roles(roles)) => !roles.is_empty(),
        };
        if has_deps {
            return Err(self.stage_error(
                name,
                "deps",
                "a select stage takes no `deps:`: it depends on every output of every variant of its `from:` stage",
            ));
        }
        let Some(from) = &raw.from else {
            return Err(SpecError::Stage {
                at: self.at(self.places.key(&format!("stages/{name}"))),
                stage: name.to_string(),
                message: "a select stage needs `from: STAGE`, the matrix stage whose variants it compares".into(),
            });
        };
        let from_error = |message: String| self.stage_error(name, "from", message);
        let Some(variants) = self.matrices.variants(from) else {
            if self.raw.stages.contains_key(from) {
                return Err(from_error(format!(
                    "stage `{from}` is not a matrix stage (it has no `matrix:`): select compares the variants of one"
                )));
            }
            let mut names: Vec<&str> = (self.raw.stages.keys())
                .map(|stage| self.matrices.origin(stage))
                .collect();
            names.dedup();
            return Err(from_error(format!(
                "no stage `{from}`{}",
                closest(from, names)
                    .map(|close| format!(" (did you mean `{close}`?)"))
                    .unwrap_or_default()
            )));
        };
        let mut resolved = Vec::with_capacity(variants.len());
        for variant in variants {
            let stage = (self.raw.stages.get_index_of(&variant.name))
                .and_then(|index| slots[index].as_ref())
                .ok_or_else(|| from_error(format!("stage `{from}` is itself a select stage")))?;
            resolved.push((variant, stage, variant_outputs(stage)));
        }
        let Some((first, _, roles)) = resolved.first() else {
            return Err(from_error(format!("stage `{from}` has no variants")));
        };
        for (variant, _, outputs) in &resolved {
            let names: Vec<&str> = outputs.iter().map(|out| out.role.as_str()).collect();
            if let Some(role) = (names.iter().enumerate())
                .find(|(index, role)| names[..*index].contains(role))
                .map(|(_, role)| role)
            {
                return Err(from_error(format!(
                    "variant `{}` has two outputs named `{role}` (a cmd stage's outputs are named by their file name without extension)",
                    variant.name
                )));
            }
            let first_names: Vec<&str> = roles.iter().map(|out| out.role.as_str()).collect();
            if names != first_names {
                return Err(from_error(format!(
                    "the variants of `{from}` name their outputs differently (`{}`: {}; `{}`: {}): select copies the winner's to one place",
                    first.name,
                    first_names.join(", "),
                    variant.name,
                    names.join(", ")
                )));
            }
            if names.contains(&select::SELECTION_ROLE) {
                return Err(from_error(format!(
                    "stage `{from}` has an output named `{}`, which select writes itself",
                    select::SELECTION_ROLE
                )));
            }
        }
        let output_roles = (roles.iter())
            .map(|out| (out.role.as_str(), out.default_name.as_str()))
            .chain(
                kind.outputs()
                    .iter()
                    .map(|out| (out.role, out.default_name)),
            );
        let outs = self.output_ports(name, raw, model_path, output_roles)?;
        let mut params = self.kind_params(name, raw, kind, overrides)?;
        let metrics_role = params.str(select::METRICS_ROLE_PARAM).unwrap_or_default();
        if !roles.iter().any(|out| out.role == metrics_role) {
            let message = format!(
                "stage `{from}` has no output `{metrics_role}` holding the metrics (its outputs: {}); `{}` names it",
                roles
                    .iter()
                    .map(|out| out.role.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                select::METRICS_ROLE_PARAM
            );
            let node = format!("params/{}", select::METRICS_ROLE_PARAM);
            return Err(if raw.params.contains_key(select::METRICS_ROLE_PARAM) {
                self.stage_error(name, &node, message)
            } else {
                from_error(message)
            });
        }
        let mut deps = Vec::new();
        let mut specs = Vec::with_capacity(resolved.len());
        for (variant, stage, outputs) in &resolved {
            for out in outputs {
                deps.push(Port {
                    role: Some(format!("{}/{}", variant.name, out.role)),
                    path: out.path.clone(),
                    declared: Declared::From,
                });
            }
            specs.push(select::VariantSpec {
                stage: variant.name.clone(),
                matrix: variant.values.clone(),
                params: (stage.params.iter())
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect(),
                outputs: (outputs.iter())
                    .map(|out| (out.role.clone(), out.path.clone()))
                    .collect(),
            });
        }
        params.insert(select::FROM_PARAM, from.as_str().into());
        params.insert(
            select::VARIANTS_PARAM,
            serde_yaml::to_value(specs).map_err(|error| from_error(error.to_string()))?,
        );
        Ok(Stage {
            name: name.to_string(),
            action: Action::Kind(kind),
            deps,
            outs,
            params,
        })
    }

    /// Checks a role map of a built-in kind against the roles it declares.
    fn roles(
        &self,
        stage: &str,
        node: &str,
        ports: Option<&RawPorts>,
        declared: &[&str],
        all_required: bool,
    ) -> Result<Vec<(String, String)>, SpecError> {
        let given: Vec<(String, String)> = match ports {
            None => Vec::new(),
            Some(RawPorts::Roles(roles)) => roles
                .iter()
                .map(|(role, path)| (role.clone(), path.clone()))
                .collect(),
            Some(RawPorts::List(paths)) if paths.is_empty() => Vec::new(),
            Some(RawPorts::List(_)) => {
                return Err(self.stage_error(
                    stage,
                    node,
                    format!(
                        "`{node}:` of a built-in kind is a map of role: path (roles: {})",
                        list_or_none(declared)
                    ),
                ))
            }
        };
        for (role, _) in &given {
            if !declared.contains(&role.as_str()) {
                return Err(SpecError::Stage {
                    at: self.at(self.places.key(&format!("stages/{stage}/{node}/{role}"))),
                    stage: stage.to_string(),
                    message: format!(
                        "unknown {node} role `{role}`{} (roles: {})",
                        closest(role, declared.iter().copied())
                            .map(|name| format!(", did you mean `{name}`?"))
                            .unwrap_or_default(),
                        list_or_none(declared)
                    ),
                });
            }
        }
        if all_required {
            for role in declared {
                if !given.iter().any(|(given, _)| given == role) {
                    return Err(self.stage_error(
                        stage,
                        node,
                        format!("missing {node} role `{role}` (`{node}: {{ {role}: <path> }}`)"),
                    ));
                }
            }
        }
        Ok(given)
    }

    /// kind default < global params the kind declares < stage params < `--set`.
    fn kind_params(
        &self,
        stage: &str,
        raw: &RawStage,
        kind: &'static dyn StageKind,
        overrides: &[&Override],
    ) -> Result<Params, SpecError> {
        let specs = kind.params();
        let declared: Vec<&str> = specs.iter().map(|spec| spec.name).collect();
        let unknown = |name: &str| {
            format!(
                "kind `{}` has no param `{name}`{} (params: {})",
                kind.name(),
                closest(name, declared.iter().copied())
                    .map(|name| format!(", did you mean `{name}`?"))
                    .unwrap_or_default(),
                list_or_none(&declared)
            )
        };
        let mut values: BTreeMap<String, serde_yaml::Value> = specs
            .iter()
            .map(|spec| (spec.name.to_string(), spec.default.clone()))
            .collect();
        for (name, value) in &self.raw.params {
            if let Some(slot) = values.get_mut(name) {
                *slot = value.clone();
            }
        }
        for (name, value) in &raw.params {
            let Some(slot) = values.get_mut(name) else {
                return Err(SpecError::Stage {
                    at: self.at(self.places.key(&format!("stages/{stage}/params/{name}"))),
                    stage: stage.to_string(),
                    message: unknown(name),
                });
            };
            *slot = value.clone();
        }
        for assignment in overrides {
            let Some(slot) = values.get_mut(&assignment.param) else {
                return Err(SpecError::Override {
                    assignment: assignment.assignment.clone(),
                    message: format!("stage `{stage}`: {}", unknown(&assignment.param)),
                });
            };
            *slot = assignment.value.clone();
        }
        let params = Params::new(values);
        kind.check_params(&params).map_err(|error| {
            // Blame where the bad value came from, by precedence: the last `--set` of the
            // param, the stage's `params:`, the global `params:`, else the stage's kind.
            let message = format!("{error:#}");
            let param = specs
                .iter()
                .map(|spec| spec.name)
                .find(|name| message.contains(&format!("`{name}`")));
            let Some(param) = param else {
                return self.stage_error(stage, "kind", message);
            };
            if let Some(assignment) = overrides.iter().rev().find(|o| o.param == param) {
                return SpecError::Override {
                    assignment: assignment.assignment.clone(),
                    message: format!("stage `{stage}`: {message}"),
                };
            }
            if raw.params.contains_key(param) {
                self.stage_error(stage, &format!("params/{param}"), message)
            } else if self.raw.params.contains_key(param) {
                SpecError::Stage {
                    at: self.at(self.places.value(&format!("params/{param}"))),
                    stage: stage.to_string(),
                    message: format!("{message} (from the global `params:`)"),
                }
            } else {
                self.stage_error(stage, "kind", message)
            }
        })?;
        Ok(params)
    }

    /// Each output in file order against those before it: the first overlapping one is named.
    fn check_outputs(&self, pipeline: &Pipeline, outputs: &Outputs) -> Result<(), SpecError> {
        let mut place = 0;
        for (index, stage) in pipeline.stages.iter().enumerate() {
            for (port, out) in stage.outs.iter().enumerate() {
                if out.path == "." {
                    return Err(SpecError::ProtectedOutput {
                        at: pipeline.port_location(index, Side::Outs, port),
                        stage: stage.name.clone(),
                        path: out.path.clone(),
                        problem: "is the project folder".to_string(),
                    });
                }
                if !path::is_inside_project(&out.path) {
                    return Err(SpecError::OutputOutsideProject {
                        at: pipeline.port_location(index, Side::Outs, port),
                        stage: stage.name.clone(),
                        path: out.path.clone(),
                    });
                }
                let first_overlapping = (outputs.index.overlapping(&out.path))
                    .filter(|&other| other < place)
                    .min();
                if let Some((other, other_path)) = first_overlapping.map(|at| outputs.places[at]) {
                    return Err(SpecError::DuplicateOutput {
                        at: pipeline.port_location(index, Side::Outs, port),
                        stage: stage.name.clone(),
                        path: out.path.clone(),
                        other: format!(
                            "stage `{}` (as `{other_path}`)",
                            pipeline.stages[other].name
                        ),
                    });
                }
                place += 1;
            }
        }
        Ok(())
    }

    /// No output may lead outside the project through a symlink, nor touch what [`protect`]
    /// lists; compared by real location, whatever the spelling.
    fn check_protected(&self, pipeline: &Pipeline) -> Result<(), SpecError> {
        let project = &pipeline.project_dir;
        let pipeline_file = protect::resolve(&pipeline.file);
        let mut protected: Vec<(PathBuf, String)> = vec![
            (
                project.join(".git"),
                "the project's git repository".to_string(),
            ),
            (
                protect::resolve(&pipeline.cache_dir),
                "the cache folder in use".to_string(),
            ),
            (
                project.join("cache"),
                "the project's default cache folder".to_string(),
            ),
            (pipeline_file.clone(), "the pipeline file".to_string()),
            (
                protect::resolve(&pipeline.lock_file()),
                "the pipeline's lock file".to_string(),
            ),
        ];
        let mut pipeline_folders = vec![protect::resolve(&project.join("pipelines"))];
        pipeline_folders.extend(pipeline_file.parent().map(Path::to_path_buf));
        for folder in &pipeline_folders {
            for file in protect::pipeline_files_in(folder) {
                protected.push((file, "a pipeline or lock file".to_string()));
            }
        }
        let mut real_locations = protect::RealLocations::new(project);
        for (index, stage) in pipeline.stages.iter().enumerate() {
            let deps: Vec<(PathBuf, String)> = stage
                .deps
                .iter()
                .map(|dep| {
                    let real = if path::is_inside_project(&dep.path) {
                        real_locations
                            .of(&dep.path)
                            .unwrap_or_else(|escape| escape.resolved)
                    } else {
                        protect::resolve(&pipeline.abs(&dep.path))
                    };
                    (real, "its own dependency".to_string())
                })
                .collect();
            for (port, out) in stage.outs.iter().enumerate() {
                let at = || pipeline.port_location(index, Side::Outs, port);
                let real = real_locations.of(&out.path).map_err(|escape| {
                    SpecError::OutputThroughSymlink {
                        at: at(),
                        stage: stage.name.clone(),
                        path: out.path.clone(),
                        symlink: Box::new(Symlink {
                            link: escape.link,
                            target: escape.target.display().to_string(),
                            resolved: escape.resolved.display().to_string(),
                        }),
                    }
                })?;
                let problem = |what: String| SpecError::ProtectedOutput {
                    at: at(),
                    stage: stage.name.clone(),
                    path: out.path.clone(),
                    problem: if real == project.join(&out.path) {
                        what
                    } else {
                        format!(
                            "{what} (its real location is `{}`)",
                            protect::shown(project, &real)
                        )
                    },
                };
                if &real == project {
                    return Err(problem("is the project folder".to_string()));
                }
                for (guarded, what) in protected.iter().chain(&deps) {
                    if let Some(relation) = protect::Relation::of(&real, guarded) {
                        return Err(problem(format!(
                            "{} {what} `{}`",
                            relation.words(),
                            protect::shown(project, guarded)
                        )));
                    }
                }
                if protect::inside_git(project, &real) {
                    return Err(problem("lies inside a `.git` folder".to_string()));
                }
                let beside_pipelines = real
                    .parent()
                    .is_some_and(|parent| pipeline_folders.iter().any(|folder| folder == parent));
                if beside_pipelines && protect::is_pipeline_like(&real) {
                    return Err(problem(format!(
                        "would be a pipeline or lock file in `{}`",
                        protect::shown(project, real.parent().unwrap_or(project))
                    )));
                }
            }
        }
        Ok(())
    }

    /// Each dependency is an output of a stage (or overlaps one), or exists.
    fn check_dependencies(&self, pipeline: &Pipeline, outputs: &Outputs) -> Result<(), SpecError> {
        for (index, stage) in pipeline.stages.iter().enumerate() {
            for (port, dep) in stage.deps.iter().enumerate() {
                let produced = outputs.index.overlapping(&dep.path).next().is_some();
                if !produced && !pipeline.abs(&dep.path).exists() {
                    return Err(SpecError::MissingDependency {
                        at: pipeline.port_location(index, Side::Deps, port),
                        stage: stage.name.clone(),
                        path: dep.path.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Every declared output by its place in file order, indexed once for both the outputs' and
/// the dependencies' checks.
struct Outputs<'p> {
    /// Per place: its stage and its path.
    places: Vec<(usize, &'p str)>,
    /// Paths by place.
    index: path::PathIndex<'p>,
}

impl<'p> Outputs<'p> {
    fn of(pipeline: &'p Pipeline) -> Self {
        let count = pipeline.stages.iter().map(|stage| stage.outs.len()).sum();
        let mut places = Vec::with_capacity(count);
        let mut index = path::PathIndex::with_capacity(count);
        for (stage_index, stage) in pipeline.stages.iter().enumerate() {
            for out in &stage.outs {
                index.insert(&out.path, places.len());
                places.push((stage_index, out.path.as_str()));
            }
        }
        Outputs { places, index }
    }
}

fn is_select(raw: &RawStage) -> bool {
    raw.kind.as_deref() == Some(select::NAME) && raw.cmd.is_none()
}

/// One output of a variant as a select stage sees it.
struct VariantOutput {
    /// The kind's role; a cmd stage's output: its file name without extension.
    role: String,
    /// The file name the selected copy gets under `model_path`.
    default_name: String,
    path: String,
}

fn variant_outputs(stage: &Stage) -> Vec<VariantOutput> {
    stage
        .outs
        .iter()
        .map(|out| {
            let file = Path::new(&out.path);
            let file_name = file.file_name().unwrap_or_default().to_string_lossy();
            let default_name = match (&stage.action, &out.role) {
                (Action::Kind(kind), Some(role)) => (kind.outputs().iter())
                    .find(|output| output.role == role)
                    .map_or(file_name.to_string(), |output| {
                        output.default_name.to_string()
                    }),
                _ => file_name.to_string(),
            };
            VariantOutput {
                role: out.role.clone().unwrap_or_else(|| {
                    file.file_stem()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned()
                }),
                default_name,
                path: out.path.clone(),
            }
        })
        .collect()
}

/// Every param value (global and per stage) against what [`values`] refuses.
fn check_param_values(file: &Path, raw: &RawPipeline, places: &Places) -> Result<(), SpecError> {
    let global = raw.params.iter().map(|(param, value)| (None, param, value));
    let staged = (raw.stages.iter()).flat_map(|(stage, raw)| {
        (raw.params.iter()).map(move |(param, value)| (Some(stage), param, value))
    });
    for (stage, param, value) in global.chain(staged) {
        let Err(refusal) = values::check(value) else {
            continue;
        };
        let mut path = match stage {
            Some(stage) => format!("stages/{stage}/params/{param}"),
            None => format!("params/{param}"),
        };
        if !refusal.node.is_empty() {
            path = format!("{path}/{}", refusal.node);
        }
        let (line, column) = if refusal.at_key {
            places.repeat(&path)
        } else {
            places.value(&path)
        };
        let at = Location {
            file: file.to_path_buf(),
            line,
            column,
        };
        return Err(match stage {
            Some(stage) => SpecError::Stage {
                at,
                stage: stage.clone(),
                message: format!("param `{param}`: {}", refusal.message),
            },
            None => SpecError::Syntax {
                at,
                message: format!("params: `{param}`: {}", refusal.message),
            },
        });
    }
    Ok(())
}

/// What is wrong with a text serde_yaml refused (with `error`): a repeated key (named with
/// both places), else the syntax or type error.
fn refused(file: &Path, places: &Places, error: serde_yaml::Error) -> SpecError {
    let message = error.to_string();
    let at = |(line, column): (usize, usize)| Location {
        file: file.to_path_buf(),
        line,
        column,
    };
    if message.contains("control characters are not allowed") {
        // libyaml names the byte's offset, not its line: find it.
        if let Some((place, character)) = control_character(places.text()) {
            return SpecError::Syntax {
                at: at(place),
                message: format!(
                    "control character U+{:04X} is not allowed in YAML (in a double-quoted text, write it as \\u{:04X})",
                    character as u32, character as u32
                ),
            };
        }
    }
    let maybe_empty = message.starts_with("missing field `stages`")
        || message.starts_with("invalid type: unit value");
    if maybe_empty
        && serde_yaml::from_str::<serde_yaml::Value>(places.text())
            .is_ok_and(|value| value.is_null())
    {
        return SpecError::Syntax {
            at: at((1, 1)),
            message: "the pipeline is empty: it needs `stages:`, a map of stage names to stages"
                .to_string(),
        };
    }
    let Some(positions) = places.index() else {
        // Not YAML to yaml-rust2: serde_yaml's error is all there is.
        return syntax_error(file, places.text(), error);
    };
    if message.contains("more than one document") {
        if let Some(second) = positions.second_document {
            return SpecError::Syntax {
                at: at(second),
                message: "a second YAML document starts here: a pipeline file holds one"
                    .to_string(),
            };
        }
    }
    if message.contains("repetition limit exceeded") {
        if let Some(alias) = positions.first_alias {
            return SpecError::Syntax {
                at: at(alias),
                message: clarified(&without_location(&message)),
            };
        }
    }
    // Which repeat serde_yaml found: two keys spelled alike in a map of names (ours: "duplicate
    // key", a struct's: "duplicate field"), or two equal keys in a map of YAML values.
    let serde_at = error
        .location()
        .map_or((1, 1), |at| (at.line(), at.column()));
    let repeat = if let Some(key) = quoted_after(&message, "duplicate key `")
        .or_else(|| quoted_after(&message, "duplicate field `"))
    {
        (positions.duplicates.iter()).find(|(path, ..)| path.rsplit('/').next() == Some(key))
    } else if message.contains("duplicate entry with") {
        (positions.equal_values.iter()).find(|(_, at, _)| *at >= serde_at)
    } else {
        None
    };
    let Some((path, place, first_line)) = repeat else {
        return syntax_error(file, places.text(), error);
    };
    let (parent, key) = path.rsplit_once('/').unwrap_or(("", path));
    if parent == "stages" {
        SpecError::DuplicateStage {
            at: at(*place),
            name: key.to_string(),
            first_line: *first_line,
        }
    } else {
        SpecError::DuplicateKey {
            at: at(*place),
            key: key.to_string(),
            first_line: *first_line,
        }
    }
}

/// The text between `prefix` and the next backquote in `message`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    rest.split_once('`').map(|(quoted, _)| quoted)
}

/// The first character YAML does not allow in a file (outside its printable set) and its place.
fn control_character(text: &str) -> Option<((usize, usize), char)> {
    let printable = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
            || c >= '\u{10000}'
    };
    let (mut line, mut column) = (1, 1);
    for c in text.chars() {
        if !printable(c) {
            return Some(((line, column), c));
        }
        if c == '\n' {
            (line, column) = (line + 1, 1);
        } else {
            column += 1;
        }
    }
    None
}

/// serde_yaml's syntax or type error, at the place it gives (libyaml puts an error at the end
/// of a file without a final line end on the line after it: the end is named instead).
fn syntax_error(file: &Path, text: &str, error: serde_yaml::Error) -> SpecError {
    let (mut line, mut column) = error
        .location()
        .map(|at| (at.line(), at.column()))
        .unwrap_or((1, 1));
    let lines = text.matches('\n').count() + 1;
    if line > lines {
        let last = &text[text.rfind('\n').map_or(0, |at| at + 1)..];
        (line, column) = (lines, last.chars().count() + 1);
    }
    SpecError::Syntax {
        at: Location {
            file: file.to_path_buf(),
            line,
            column,
        },
        message: clarified(&path::unprotect(&without_location(&error.to_string()))),
    }
}

/// serde_yaml's words, with what to do where they are terse.
pub(super) fn clarified(message: &str) -> String {
    let message = &shortened_text(message);
    if let Some((field, number)) = out_of_range_integer(message) {
        format!(
            "{field}the whole number `{number}` is out of range: whole numbers go from {} to {}",
            i64::MIN,
            u64::MAX
        )
    } else if message.contains("unknown field `<<`") {
        format!("{message} (YAML merge keys `<<` are not supported: write the keys out; anchors and aliases are)")
    } else if message.ends_with("recursion limit exceeded") {
        format!("{message}: lists and maps nested more than 128 levels deep")
    } else if message.ends_with("repetition limit exceeded") {
        format!("{message}: aliases (`*name`, the first one here) expand to too much")
    } else if message.contains("expected field identifier") {
        message.replace("expected field identifier", "expected a key's name")
    } else {
        message.to_string()
    }
}

/// serde's "invalid type: string \"…\"" quotes the whole text: all of a file that is no
/// pipeline (a CSV given as one reads as a single text). Its start is enough to recognise it.
fn shortened_text(message: &str) -> String {
    const PREFIX: &str = "invalid type: string \"";
    const SHOWN_CHARS: usize = 60;
    let (Some(start), Some(end)) = (message.find(PREFIX), message.rfind("\", expected")) else {
        return message.to_string();
    };
    let text_start = start + PREFIX.len();
    if end < text_start || message[text_start..end].chars().count() <= SHOWN_CHARS {
        return message.to_string();
    }
    let kept: String = message[text_start..end].chars().take(SHOWN_CHARS).collect();
    format!("{}{kept}…{}", &message[..text_start], &message[end..])
}

/// The field (`stages.a.params.n: `, or nothing) and the integer of serde_yaml's "invalid
/// type: integer `N` as u128" (or i128): a whole number beyond 64 bits, which it reads but
/// cannot hand over.
fn out_of_range_integer(message: &str) -> Option<(&str, &str)> {
    const PREFIX: &str = "invalid type: integer `";
    let field = &message[..message.find(PREFIX)?];
    let number = quoted_after(message, PREFIX)?;
    let rest = &message[field.len() + PREFIX.len() + number.len()..];
    (rest.starts_with("` as u128") || rest.starts_with("` as i128")).then_some((field, number))
}

/// serde_yaml's message without its " at line L column C" (the location leads instead).
fn without_location(message: &str) -> String {
    let Some(start) = message.find(" at line ") else {
        return message.to_string();
    };
    let rest = &message[start + " at line ".len()..];
    let after_line = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let end = match after_line.strip_prefix(" column ") {
        Some(column) => column.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => after_line,
    };
    format!("{}{end}", &message[..start])
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}
