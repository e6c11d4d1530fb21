//! Running one stage: a shell command (see `kind::cmd`), or a built-in kind writing into a
//! staging folder whose outputs are then moved into place. Either way the old outputs are
//! removed first and a failure leaves none behind.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use crate::engine::kind::cmd::ShellStage;
use crate::engine::kind::{Progress, StageContext, StageKind};
use crate::engine::spec::{Action, Pipeline, Stage};
use crate::engine::store::{remove_path, Store};

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

/// Runs `stage`, leaving its declared outputs in place on success and none on failure.
pub fn execute(
    pipeline: &Pipeline,
    stage: &Stage,
    store: &Store,
    progress: &dyn Progress,
) -> Result<(), Failure> {
    remove_outputs(pipeline, stage)
        .map_err(|error| Failure::new(format!("removing old outputs: {error}")))?;
    let result = match &stage.action {
        Action::Cmd(cmd) => run_command(pipeline, stage, cmd, store, progress),
        Action::Kind(kind) => run_kind(pipeline, stage, *kind, store, progress),
    };
    if result.is_err() {
        let _ = remove_outputs(pipeline, stage);
    }
    result
}

/// Removes every declared output of `stage`; the error names the output it could not remove.
pub fn remove_outputs(pipeline: &Pipeline, stage: &Stage) -> io::Result<()> {
    for out in &stage.outs {
        remove_path(&pipeline.abs(&out.path))
            .map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", out.path)))?;
    }
    Ok(())
}

fn run_command(
    pipeline: &Pipeline,
    stage: &Stage,
    command: &str,
    store: &Store,
    progress: &dyn Progress,
) -> Result<(), Failure> {
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
    };
    shell.run(progress).map_err(|failure| Failure {
        message: failure.message,
        tail: failure.tail,
    })
}

fn run_kind(
    pipeline: &Pipeline,
    stage: &Stage,
    kind: &dyn StageKind,
    store: &Store,
    progress: &dyn Progress,
) -> Result<(), Failure> {
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
    for out in &stage.outs {
        let staged = &outputs[out.role.as_deref().unwrap_or_default()];
        move_into_place(staged, &pipeline.abs(&out.path))
            .map_err(|error| Failure::new(format!("moving `{}` into place: {error}", out.path)))?;
    }
    Ok(())
}

/// Renames `from` to `to`; across file systems (a cache elsewhere) copies then removes.
fn move_into_place(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    remove_path(to)?;
    match fs::rename(from, to) {
        Err(error) if error.raw_os_error() == Some(libc::EXDEV) => {
            copy_recursive(from, to)?;
            remove_path(from)
        }
        other => other,
    }
}

fn copy_recursive(from: &Path, to: &Path) -> io::Result<()> {
    if fs::metadata(from)?.is_dir() {
        fs::create_dir_all(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_recursive(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        fs::copy(from, to).map(drop)
    }
}
