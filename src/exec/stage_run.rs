//! Running one stage: a shell command in the project folder, or a built-in kind writing into a
//! staging folder whose outputs are then moved into place. Either way the old outputs are
//! removed first and a failure leaves none behind.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::spec::{param_text, Action, Pipeline, Stage};
use crate::stages::{Progress, StageContext, StageKind};
use crate::store::{remove_path, Store};

/// Runs the stage's command (`$0`) in the background of a shell that, when warez-pipe dies
/// (the parent-death signal: SIGTERM), kills the command's whole process group: no orphan
/// keeps writing outputs behind the next run. The command's exit status is the shell's.
const SUPERVISOR: &str = r#"trap 'kill -KILL 0' TERM; sh -c "$0" & wait $!"#;

/// Lines of a failed command's output shown in the error.
const TAIL_LINES: usize = 20;

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

pub fn remove_outputs(pipeline: &Pipeline, stage: &Stage) -> io::Result<()> {
    for out in &stage.outs {
        remove_path(&pipeline.abs(&out.path))?;
    }
    Ok(())
}

fn run_command(
    pipeline: &Pipeline,
    stage: &Stage,
    cmd: &str,
    store: &Store,
    progress: &dyn Progress,
) -> Result<(), Failure> {
    for out in &stage.outs {
        if let Some(parent) = pipeline.abs(&out.path).parent() {
            fs::create_dir_all(parent)
                .map_err(|error| Failure::new(format!("creating {}: {error}", parent.display())))?;
        }
    }
    let log_path = store.log_file(&stage.name);
    let log = File::create(&log_path)
        .map_err(|error| Failure::new(format!("{}: {error}", log_path.display())))?;
    let log_err = log
        .try_clone()
        .map_err(|error| Failure::new(error.to_string()))?;
    progress.set_message(cmd.lines().next().unwrap_or_default());
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(SUPERVISOR)
        .arg(cmd)
        .current_dir(&pipeline.project_dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .env("WAREZ_STAGE", &stage.name);
    for (name, value) in stage.params.iter() {
        command.env(format!("WAREZ_PARAM_{}", env_name(name)), param_text(value));
    }
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls (setpgid, prctl, getppid) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // Its own process group, so the supervisor can take down everything the command
            // started; SIGTERM to the supervisor when warez-pipe dies, even by kill -9.
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other(
                    "warez-pipe exited while starting the stage",
                ));
            }
            Ok(())
        });
    }
    let status = command
        .status()
        .map_err(|error| Failure::new(format!("starting `sh -c`: {error}")))?;
    if !status.success() {
        return Err(Failure {
            message: format!("command failed ({status})"),
            tail: tail(&log_path),
        });
    }
    for out in &stage.outs {
        if fs::symlink_metadata(pipeline.abs(&out.path)).is_err() {
            return Err(Failure {
                message: format!(
                    "command succeeded but did not write declared output `{}`",
                    out.path
                ),
                tail: tail(&log_path),
            });
        }
    }
    Ok(())
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

/// `learning_rate` → `LEARNING_RATE`.
fn env_name(param: &str) -> String {
    param
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The last lines of a log file.
fn tail(path: &PathBuf) -> Option<String> {
    let mut file = File::open(path).ok()?;
    let length = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(16 * 1024)))
        .ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    (!tail.trim().is_empty()).then_some(tail)
}
