//! Running one stage: a shell command (see `kind::cmd`) writing its outputs in place, or a
//! built-in kind writing into a staging folder. Either way the stage's previous outputs are
//! kept aside by an [`ActiveSwap`] (see `store/swap.rs`) until the caller records the run: a
//! command's before it starts, a kind's only once it succeeded and every output exists. A
//! failure removes the new outputs and puts the previous ones back.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::interrupt::{ActiveSwap, Interrupts};
use crate::engine::kind::cmd::ShellStage;
use crate::engine::kind::{Progress, StageContext, StageKind};
use crate::engine::spec::{Action, Pipeline, Port, Stage};
use crate::engine::store::{LockedStage, Replacement, Store};

/// Why a stage failed, with the end of its output when there is one.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub tail: Option<String>,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            tail: None,
        }
    }
}

/// Everything one stage run needs from the engine.
pub struct StageRun<'a, 'i> {
    pub pipeline: &'a Pipeline,
    pub stage: &'a Stage,
    pub store: &'a Store,
    pub interrupts: &'i Interrupts,
    /// The stage's lock file entry before this run.
    pub previous: Option<&'a LockedStage>,
}

impl<'a, 'i> StageRun<'a, 'i> {
    /// Runs the stage. On success its new outputs are in place and the previous ones kept by
    /// the returned swap until its lock file entry is written; on failure the previous outputs are back.
    pub fn execute(&self, progress: &dyn Progress) -> Result<ActiveSwap<'i>, Failure> {
        match &self.stage.action {
            Action::Cmd(command) => {
                let swap = self.swap(|_| None)?;
                match self.run_command(command, progress) {
                    Ok(()) => Ok(swap),
                    Err(mut failure) => {
                        if let Err(error) = swap.roll_back() {
                            failure.message +=
                                &format!("; then putting the previous outputs back: {error}");
                        }
                        Err(failure)
                    }
                }
            }
            Action::Kind(kind) => self.run_kind(*kind, progress),
        }
    }

    /// Moves the previous outputs aside and each output's `staged` one (if any) in.
    fn swap(&self, staged: impl Fn(&Port) -> Option<PathBuf>) -> Result<ActiveSwap<'i>, Failure> {
        let replacements: Vec<Replacement> = self
            .stage
            .outs
            .iter()
            .map(|out| Replacement {
                dest: self.pipeline.abs(&out.path),
                staged: staged(out),
            })
            .collect();
        self.interrupts
            .begin_swap(
                self.store,
                self.pipeline,
                &self.stage.name,
                self.previous,
                &replacements,
            )
            .map_err(|error| Failure::new(format!("putting the new outputs in place: {error:#}")))
    }

    fn run_command(&self, command: &str, progress: &dyn Progress) -> Result<(), Failure> {
        let (pipeline, stage, store) = (self.pipeline, self.stage, self.store);
        let shell = ShellStage {
            name: &stage.name,
            command,
            project_dir: &pipeline.project_dir,
            params: &stage.params,
            outputs: stage
                .outs
                .iter()
                .map(|out| (out.path.clone(), pipeline.abs(&out.path)))
                .collect(),
            log: store.log_file(&stage.name),
            running: self.interrupts.commands(),
        };
        shell.run(progress).map_err(|failure| Failure {
            message: failure.message,
            tail: failure.tail,
        })
    }

    /// Runs a kind into a staging folder; once it succeeded and wrote every output, swaps them in.
    fn run_kind(
        &self,
        kind: &dyn StageKind,
        progress: &dyn Progress,
    ) -> Result<ActiveSwap<'i>, Failure> {
        let (pipeline, stage, store) = (self.pipeline, self.stage, self.store);
        let staging = tempfile::Builder::new()
            .prefix(&format!("stage-{}-", stage.name))
            .tempdir_in(store.tmp_dir())
            .map_err(|error| Failure::new(format!("creating a staging folder: {error}")))?;
        let mut outputs = BTreeMap::new();
        for out in &stage.outs {
            let role = out.role.clone().unwrap_or_default();
            let name = Path::new(&out.path).file_name().unwrap_or_default();
            let dir = staging.path().join(&role);
            fs::create_dir_all(&dir).map_err(|error| Failure::new(error.to_string()))?;
            outputs.insert(role, dir.join(name));
        }
        let context = StageContext {
            stage: &stage.name,
            project_dir: &pipeline.project_dir,
            params: &stage.params,
            inputs: stage
                .deps
                .iter()
                .map(|dep| {
                    (
                        dep.role.clone().unwrap_or_default(),
                        pipeline.abs(&dep.path),
                    )
                })
                .collect(),
            outputs: outputs.clone(),
            tools_dir: store.tools_dir(),
            progress,
        };
        kind.run(&context)
            .map_err(|error| Failure::new(format!("{error:#}")))?;
        for out in &stage.outs {
            let staged = &outputs[out.role.as_deref().unwrap_or_default()];
            if fs::symlink_metadata(staged).is_err() {
                return Err(Failure::new(format!(
                    "kind `{}` did not write output `{}` (role `{}`)",
                    kind.name(),
                    out.path,
                    out.role.as_deref().unwrap_or_default()
                )));
            }
        }
        self.swap(|out| Some(outputs[out.role.as_deref().unwrap_or_default()].clone()))
    }
}
