//! `run --check`: is the pipeline reproducible? Rebuilds every stage from scratch in a
//! temporary copy of the project (only the pipeline file and the source files its stages
//! declare as dependencies; a fresh cache) and compares every output's hash with the lock file.
//!
//! A stage whose params, command, ports or source files differ from the lock file makes the
//! check fail as "lock file out of date" (nothing to compare). Otherwise the first differing
//! artifact in run order is the one to look at (later ones may only follow
//! from it). It is a *float result* when its kind says so ([`Reproducibility::FloatResult`]:
//! floating-point results that may vary with the CPU) and *data-only* otherwise (`cmd` stages
//! included), where any difference is a determinism bug. The report also says whether the stage got the
//! very inputs the lock file records: if so, the stage itself is not deterministic.
//!
//! With `--stage`, only the named stages and what they need are rebuilt and compared. The
//! scratch cache shares the project cache's `tools/` folder: ONNX Runtime provisioned for the
//! project is loaded from there, not installed again for every check.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::{RunOptions, RunReport, Ui};
use crate::engine::dag::Dag;
use crate::engine::files;
use crate::engine::fingerprint::{ContentHash, DirtyReason, StatCache};
use crate::engine::kind::{Registry, Reproducibility};
use crate::engine::spec::{self, path, Action, Override, Pipeline};
use crate::engine::store::{LockFile, Store};

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub pipeline: String,
    /// Outputs whose rebuilt hash differs from the lock file, in run order.
    pub mismatches: Vec<Mismatch>,
    /// Lock file stages the rebuild could not compare (not in the pipeline any more).
    pub unchecked: Vec<String>,
    /// Stages whose definition or source files differ from what the lock file records: the
    /// lock file is out of date, so their outputs say nothing about reproducibility.
    pub outdated: Vec<Outdated>,
    pub rebuild: RunReport,
}

#[derive(Debug, Serialize)]
pub struct Outdated {
    pub stage: String,
    /// What differs, one line each (params, command, ports, source files).
    pub reasons: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Mismatch {
    pub stage: String,
    pub path: String,
    pub locked: ContentHash,
    pub rebuilt: Option<ContentHash>,
    /// `data-only` or `float result` (see the module doc).
    pub artifact: &'static str,
    /// The stage's inputs in the rebuild had the hashes the lock file records.
    pub inputs_identical: bool,
    /// The kind's own word on what else its outputs depend on ([`crate::engine::kind::StageKind::reproducibility_note`]).
    pub note: Option<&'static str>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.rebuild.ok && self.mismatches.is_empty() && self.outdated.is_empty()
    }

    pub fn text(&self) -> String {
        let mut out = self.rebuild.table();
        if !self.rebuild.ok {
            let _ = writeln!(out, "check: the rebuild from scratch failed (see above)");
            return out;
        }
        if let Some(first) = self.outdated.first() {
            let _ = writeln!(
                out,
                "check: the lock file is out of date for stage `{}` ({}): run the pipeline and commit its lock file, then check again",
                first.stage,
                first.reasons.join("; ")
            );
            return out;
        }
        match self.mismatches.first() {
            None => {
                let _ = writeln!(
                    out,
                    "check: every output rebuilt from scratch matches the lock file"
                );
            }
            Some(first) => {
                let cause = if first.inputs_identical {
                    let note = first
                        .note
                        .map(|note| format!(" ({note})"))
                        .unwrap_or_default();
                    format!(
                        "its inputs were identical, so stage `{}` is not deterministic{note}",
                        first.stage
                    )
                } else {
                    "its inputs differed from the lock file's".to_string()
                };
                let _ = writeln!(
                    out,
                    "check: `{}` (made by stage `{}`, a {} artifact) differs: lock file {}, rebuilt {}; {cause}",
                    first.path,
                    first.stage,
                    first.artifact,
                    first.locked.short(),
                    first
                        .rebuilt
                        .as_ref()
                        .map_or_else(|| "(missing)".to_string(), |h| h.short())
                );
                for other in &self.mismatches[1..] {
                    let _ = writeln!(
                        out,
                        "       also `{}` (stage `{}`, {})",
                        other.path, other.stage, other.artifact
                    );
                }
            }
        }
        out
    }
}

/// Rebuilds the `selected` stages (with what they need, as `run --stage` selects) and compares
/// their outputs with the lock file. `cache_dir` is the project's cache: the scratch cache uses
/// its tools folder, so ONNX Runtime provisioned there is not installed again.
pub fn check(
    pipeline: &Pipeline,
    registry: &Registry,
    overrides: &[Override],
    selected: &BTreeSet<usize>,
    cache_dir: &Path,
    jobs: usize,
    ui: &Ui,
) -> Result<CheckReport> {
    let locked = LockFile::read(&pipeline.lock_file(), &pipeline.name)?;
    if locked.stages.is_empty() {
        bail!(
            "{} has no recorded run to check against: run the pipeline first",
            pipeline.lock_file().display()
        );
    }
    let pipeline_file = pipeline
        .file
        .canonicalize()?
        .strip_prefix(&pipeline.project_dir)
        .map(Path::to_path_buf)
        .context("--check needs the pipeline file inside its project folder")?;
    let sources: Vec<&str> = pipeline
        .stages
        .iter()
        .flat_map(|stage| &stage.deps)
        .filter(|dep| {
            !pipeline
                .stages
                .iter()
                .flat_map(|s| &s.outs)
                .any(|out| path::overlaps(&dep.path, &out.path))
        })
        .map(|dep| dep.path.as_str())
        .collect();
    // Sources may sit above the project (`../inputs/x.csv`): nest the copy deep enough that
    // they land inside the temporary folder too.
    let depth = sources
        .iter()
        .map(|source| source.split('/').take_while(|part| *part == "..").count())
        .max()
        .unwrap_or(0);
    let scratch = tempfile::Builder::new().prefix("warez-check-").tempdir()?;
    let mut project = scratch.path().to_path_buf();
    for level in 0..depth {
        project.push(format!("up{level}"));
    }
    project.push("project");
    for source in &sources {
        if source.starts_with('/') {
            continue;
        }
        let (from, to) = (pipeline.abs(source), lexical_join(&project, source));
        std::fs::create_dir_all(to.parent().expect("a path inside the copy"))?;
        files::copy_recursive(&from, &to).with_context(|| format!("copying {}", from.display()))?;
    }
    let copy_file = project.join(&pipeline_file);
    std::fs::create_dir_all(copy_file.parent().expect("a file path"))?;
    std::fs::copy(&pipeline.file, &copy_file)?;
    let copy = spec::load(
        &copy_file,
        overrides,
        Some(&scratch.path().join("cache")),
        registry,
    )?;
    let dag = Dag::build(&copy)?;
    let names: Vec<String> = selected
        .iter()
        .map(|&index| pipeline.stages[index].name.clone())
        .collect();
    let selected = dag.select(&copy, &names)?;
    let store = Store::open(&copy.cache_dir)?.sharing_tools_of(cache_dir);
    let stats = StatCache::in_memory();
    let which = if selected.len() == copy.stages.len() {
        String::new()
    } else {
        let names: Vec<&str> = dag
            .order_of(&selected)
            .into_iter()
            .map(|index| copy.stages[index].name.as_str())
            .collect();
        format!(" (stages {})", names.join(", "))
    };
    ui.say(&format!(
        "check: rebuilding `{}`{which} from scratch in {}",
        pipeline.name,
        project.display()
    ));
    let options = RunOptions {
        force: false,
        jobs,
        dry_run: false,
        // A from-scratch rebuild: nothing may come from a remote.
        remote: None,
    };
    let rebuild = super::run(
        &copy,
        &dag,
        &selected,
        &store,
        &stats,
        &options,
        ui,
        &super::Interrupts::default(),
    )?;
    let rebuilt = LockFile::read(&copy.lock_file(), &copy.name)?;
    let mut mismatches = Vec::new();
    let mut unchecked = Vec::new();
    let mut outdated = Vec::new();
    let stage_indexes = copy.stage_indexes();
    for (name, stage) in &locked.stages {
        let Some(&index) = stage_indexes.get(name.as_str()) else {
            unchecked.push(name.clone());
            continue;
        };
        if !selected.contains(&index) {
            continue;
        }
        if let Some(now) = rebuilt.stages.get(name) {
            // Upstream outputs that differ are reported as mismatches of their own stage.
            let reasons: Vec<String> = DirtyReason::diff(&stage.key_inputs, &now.key_inputs)
                .into_iter()
                .filter(|reason| match reason {
                    DirtyReason::InputChanged { path, .. } => !is_produced(&copy, path),
                    _ => true,
                })
                .map(|reason| reason.to_string())
                .collect();
            if !reasons.is_empty() {
                outdated.push(Outdated {
                    stage: name.clone(),
                    reasons,
                });
            }
        }
        let artifact = reproducibility(&copy, index).label();
        let inputs_identical = rebuilt
            .stages
            .get(name)
            .is_some_and(|now| now.key_inputs.inputs == stage.key_inputs.inputs);
        for (path, hash) in &stage.outputs {
            let now = rebuilt
                .stages
                .get(name)
                .and_then(|s| s.outputs.get(path))
                .cloned();
            if now.as_ref() != Some(hash) {
                mismatches.push((
                    dag.order().iter().position(|&s| s == index),
                    Mismatch {
                        stage: name.clone(),
                        path: path.clone(),
                        locked: hash.clone(),
                        rebuilt: now,
                        artifact,
                        inputs_identical,
                        note: reproducibility_note(&copy, index),
                    },
                ));
            }
        }
    }
    mismatches.sort_by_key(|(order, _)| *order);
    Ok(CheckReport {
        pipeline: pipeline.name.clone(),
        mismatches: mismatches.into_iter().map(|(_, m)| m).collect(),
        unchecked,
        outdated,
        rebuild,
    })
}

/// Whether a stage of the pipeline writes `path` (or a folder holding it).
fn is_produced(pipeline: &Pipeline, path: &str) -> bool {
    pipeline
        .stages
        .iter()
        .flat_map(|stage| &stage.outs)
        .any(|out| path::overlaps(path, &out.path))
}

fn reproducibility_note(pipeline: &Pipeline, index: usize) -> Option<&'static str> {
    match &pipeline.stages[index].action {
        Action::Kind(kind) => kind.reproducibility_note(),
        Action::Cmd(_) => None,
    }
}

fn reproducibility(pipeline: &Pipeline, index: usize) -> Reproducibility {
    match &pipeline.stages[index].action {
        Action::Kind(kind) => kind.reproducibility(),
        Action::Cmd(_) => Reproducibility::BitIdentical,
    }
}

/// `base` joined with a normalized relative path that may start with `..`.
fn lexical_join(base: &Path, relative: &str) -> PathBuf {
    let mut joined = base.to_path_buf();
    for component in Path::new(relative).components() {
        match component {
            Component::ParentDir => {
                joined.pop();
            }
            Component::Normal(part) => joined.push(part),
            _ => {}
        }
    }
    joined
}
