//! Shell command stages (`cmd:`): the command runs with `sh -c` in the project folder, its
//! params in the environment as `WAREZ_PARAM_<NAME>` (they are also substituted for
//! `${params.name}` in the text when the pipeline is loaded), its stdout and stderr in a log
//! file. It fails when it exits non-zero or leaves a declared output unwritten; the end of its
//! log goes into the error.
//!
//! Unlike built-in kinds, a command writes its outputs in place (its text names their paths);
//! the engine moves the previous outputs aside before it starts and, after a failure, removes
//! the partial ones and puts the previous ones back.
//!
//! Each command runs in a process group of its own, registered in [`RunningCommands`] while it
//! runs, so that an interrupted run can stop it and everything it started.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::{param_text, Params, Progress};

/// Runs the stage's command (`$0`) in the background of a shell that, when warez-pipe dies
/// (the parent-death signal: SIGTERM), kills the command's whole process group: no orphan
/// keeps writing outputs behind the next run. The command's exit status is the shell's.
const SUPERVISOR: &str = r#"trap 'kill -KILL 0' TERM; sh -c "$0" & wait $!"#;

/// Lines of a failed command's output shown in the error.
const TAIL_LINES: usize = 20;

/// One `cmd:` stage, ready to run.
pub struct ShellStage<'a> {
    pub name: &'a str,
    /// The command text, variables already substituted.
    pub command: &'a str,
    pub project_dir: &'a Path,
    pub params: &'a Params,
    /// Declared outputs: (path as written in the pipeline, absolute path).
    pub outputs: Vec<(String, PathBuf)>,
    /// Where stdout and stderr go.
    pub log: PathBuf,
    /// Where the running command is registered, so that an interrupt can stop it.
    pub running: &'a RunningCommands,
}

/// Why a command failed, with the end of its output when there is one.
#[derive(Debug)]
pub struct CommandFailure {
    pub message: String,
    pub tail: Option<String>,
}

impl CommandFailure {
    fn new(message: impl Into<String>) -> CommandFailure {
        CommandFailure {
            message: message.into(),
            tail: None,
        }
    }
}

impl ShellStage<'_> {
    pub fn run(&self, progress: &dyn Progress) -> Result<(), CommandFailure> {
        for (_, path) in &self.outputs {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(|error| {
                    CommandFailure::new(format!("creating {}: {error}", parent.display()))
                })?;
            }
        }
        let log = File::create(&self.log)
            .map_err(|error| CommandFailure::new(format!("{}: {error}", self.log.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|error| CommandFailure::new(error.to_string()))?;
        progress.set_message(self.command.lines().next().unwrap_or_default());
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(SUPERVISOR)
            .arg(self.command)
            .current_dir(self.project_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .env("WAREZ_STAGE", self.name);
        for (name, value) in self.params.iter() {
            command.env(format!("WAREZ_PARAM_{}", env_name(name)), param_text(value));
        }
        let parent = std::process::id();
        // SAFETY: only async-signal-safe calls (setpgid, prctl, getppid) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // Its own process group, so the supervisor can take down everything the
                // command started; SIGTERM to the supervisor when warez-pipe dies, even by
                // kill -9.
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
        let mut child = self
            .running
            .spawn(&mut command)
            .map_err(|error| CommandFailure::new(format!("starting `sh -c`: {error}")))?;
        let status = child.wait();
        self.running.finished(&child);
        let status =
            status.map_err(|error| CommandFailure::new(format!("waiting for `sh -c`: {error}")))?;
        if !status.success() {
            return Err(CommandFailure {
                message: format!("command failed ({status})"),
                tail: tail(&self.log),
            });
        }
        for (declared, path) in &self.outputs {
            if fs::symlink_metadata(path).is_err() {
                return Err(CommandFailure {
                    message: format!(
                        "command succeeded but did not write declared output `{declared}`"
                    ),
                    tail: tail(&self.log),
                });
            }
        }
        Ok(())
    }
}

/// The process groups of the commands running now (each command's supervising shell leads a
/// group of its own, so its pid is the group's id).
#[derive(Default)]
pub struct RunningCommands {
    state: Mutex<Groups>,
    /// Signalled whenever a command has been waited for.
    finished: Condvar,
}

#[derive(Default)]
struct Groups {
    /// Set by [`RunningCommands::stop_all`]: no command starts any more.
    stopping: bool,
    leaders: BTreeSet<u32>,
}

impl RunningCommands {
    fn state(&self) -> MutexGuard<'_, Groups> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts `command` and registers its process group, unless the commands are being stopped.
    fn spawn(&self, command: &mut Command) -> io::Result<Child> {
        let mut state = self.state();
        if state.stopping {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the run is being interrupted",
            ));
        }
        let child = command.spawn()?;
        state.leaders.insert(child.id());
        Ok(child)
    }

    /// Called once `child` has been waited for.
    fn finished(&self, child: &Child) {
        self.state().leaders.remove(&child.id());
        self.finished.notify_all();
    }

    /// Stops every running command and what it started: SIGTERM to each process group, then,
    /// for those not gone within `grace`, SIGKILL (waiting up to `grace` again for them to be
    /// reaped). No command starts after this.
    pub fn stop_all(&self, grace: Duration) {
        let mut state = self.state();
        state.stopping = true;
        for signal in [libc::SIGTERM, libc::SIGKILL] {
            for &leader in &state.leaders {
                // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
                unsafe { libc::kill(-(leader as libc::pid_t), signal) };
            }
            state = self
                .finished
                .wait_timeout_while(state, grace, |state| !state.leaders.is_empty())
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
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
fn tail(path: &Path) -> Option<String> {
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
