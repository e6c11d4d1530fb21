//! SIGINT and SIGTERM during `warez-pipe run`: stop, put the previous outputs back, leave.
//!
//! [`Interrupts`] is shared by the engine's workers and a thread that waits for the two
//! signals (signal-hook hands them over as ordinary values, so none of this runs inside a
//! signal handler). Workers register what an interrupt has to undo: the stages running, the
//! output swaps in progress ([`ActiveSwap`]) and, through [`RunningCommands`], the process
//! group of each command. On the first signal, [`Interrupts::watch`]'s thread:
//!
//! 1. refuses new swaps and new commands;
//! 2. stops every running command and what it started (SIGTERM to its process group, SIGKILL
//!    after a grace period) — before anything is put back, so nothing writes afterwards;
//! 3. rolls back every swap in progress: partial `cmd` outputs removed, previous outputs back
//!    with the hashes the lock file records (see `store/swap.rs`); nothing is recorded — this
//!    includes stages that finished but whose entry the lock file does not hold yet (the cache
//!    keeps their run records: the next run restores them);
//! 4. removes staging folders (the cache's `tmp/`, restores' beside the outputs);
//! 5. names the interrupted stages, releases the run lock and exits 130 (SIGINT) or 143
//!    (SIGTERM).
//!
//! Whatever the command, temp files not yet renamed into place are removed last
//! ([`files::remove_unfinished`]): a lock file or run record cut short mid-write leaves nothing
//! beside it. Commands that only write files (`gen-data`, `predict`, `report`) run under
//! [`exit_on_interrupt`], which does that alone.
//!
//! A swap is only touched under its own mutex, by the worker or by the interrupt, whichever
//! comes first; a worker finding its swap already rolled back reports the stage interrupted.
//! Built-in kinds run in this process's threads and cannot be stopped from outside (training
//! can take minutes); they write only into staging folders, so the process exits without
//! waiting for them.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Result;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::engine::files;
use crate::engine::kind::cmd::RunningCommands;
use crate::engine::spec::Pipeline;
use crate::engine::store::{LockedStage, Replacement, RunLock, Store, Swap};

/// How long an interrupted command gets to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// What an interrupt has to stop and undo; see the module doc.
#[derive(Default)]
pub struct Interrupts {
    state: Mutex<State>,
    commands: RunningCommands,
    run_lock: Mutex<Option<RunLock>>,
}

#[derive(Default)]
struct State {
    /// An interrupt arrived: nothing new starts.
    stopping: bool,
    /// Stages being run or restored.
    running: BTreeSet<String>,
    /// Swaps begun and not yet committed or rolled back (`None` once done).
    swaps: Vec<SwapSlot>,
}

type SwapSlot = Arc<Mutex<Option<Swap>>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Interrupts {
    /// Runs `body`, turning SIGINT and SIGTERM into a clean stop of `pipeline`'s run (never
    /// returns then). Outside `body`, the signals no longer end the process by themselves.
    pub fn watch<T>(
        &self,
        pipeline: &Pipeline,
        store: &Store,
        body: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        on_signal(|signal| self.stop(signal, pipeline, store), body)
    }

    /// Keeps the run lock, so that an interrupt can release it before the process exits.
    pub fn hold_run_lock(&self, run_lock: RunLock) {
        *lock(&self.run_lock) = Some(run_lock);
    }

    /// The commands running for this run.
    pub fn commands(&self) -> &RunningCommands {
        &self.commands
    }

    /// Marks `stage` as being run or restored until the guard is dropped.
    pub fn stage_running(&self, stage: &str) -> RunningStage<'_> {
        lock(&self.state).running.insert(stage.to_string());
        RunningStage {
            interrupts: self,
            stage: stage.to_string(),
        }
    }

    /// Begins replacing `stage`'s outputs (see [`Swap::begin`]), unless the run is being
    /// interrupted.
    pub fn begin_swap(
        &self,
        store: &Store,
        pipeline: &Pipeline,
        stage: &str,
        previous: Option<&LockedStage>,
        replacements: &[Replacement],
    ) -> Result<ActiveSwap<'_>> {
        let slot: SwapSlot = Arc::default();
        let mut swap = {
            let mut state = lock(&self.state);
            if state.stopping {
                anyhow::bail!("interrupted");
            }
            state.swaps.push(slot.clone());
            // Taken before the state is released: an interrupt waits for the swap to begin.
            lock(&slot)
        };
        let begun = Swap::begin(
            store.root(),
            stage,
            &pipeline.lock_file(),
            previous,
            replacements,
        );
        match begun {
            Ok(begun) => {
                *swap = Some(begun);
                drop(swap);
                Ok(ActiveSwap {
                    interrupts: self,
                    slot,
                })
            }
            Err(error) => {
                drop(swap);
                self.forget(&slot);
                Err(error.into())
            }
        }
    }

    fn forget(&self, slot: &SwapSlot) {
        lock(&self.state)
            .swaps
            .retain(|other| !Arc::ptr_eq(other, slot));
    }

    fn stop(&self, signal: i32, pipeline: &Pipeline, store: &Store) -> ! {
        let (stages, swaps) = {
            let mut state = lock(&self.state);
            state.stopping = true;
            (state.running.clone(), state.swaps.clone())
        };
        self.commands.stop_all(GRACE);
        let mut problems = Vec::new();
        for slot in swaps {
            if let Some(swap) = lock(&slot).take() {
                if let Err(error) = swap.roll_back() {
                    problems.push(format!("putting the previous outputs back: {error}"));
                }
            }
        }
        let run_lock = lock(&self.run_lock).take();
        // Staging belongs to whoever holds the run lock: not ours while still waiting for it.
        if run_lock.is_some() {
            // A kind's thread may still be writing into its staging folder: best effort.
            for _ in 0..3 {
                if store.clear_tmp().is_ok() {
                    break;
                }
            }
            super::remove_restore_leftovers(pipeline);
        }
        let name = signal_name(signal);
        let mut stderr = std::io::stderr().lock();
        if stages.is_empty() {
            let _ = writeln!(stderr, "interrupted by {name}");
        } else {
            let stages: Vec<String> = stages.iter().map(|s| format!("`{s}`")).collect();
            let _ = writeln!(
                stderr,
                "interrupted by {name}: stopped {} (nothing recorded; previous outputs, if \
                 any, kept in place)",
                stages.join(", ")
            );
        }
        for problem in problems {
            let _ = writeln!(stderr, "error: {problem}");
        }
        drop(run_lock);
        exit_for(signal)
    }
}

/// Runs `body`, turning SIGINT and SIGTERM into removing the temp files being written
/// ([`files::remove_unfinished`]) and exiting 130 or 143: for commands that write files and
/// run nothing else. Outside `body`, the signals no longer end the process by themselves.
pub fn exit_on_interrupt<T>(body: impl FnOnce() -> Result<T>) -> Result<T> {
    on_signal(
        |signal| {
            let _ = writeln!(std::io::stderr(), "interrupted by {}", signal_name(signal));
            exit_for(signal)
        },
        body,
    )
}

/// Runs `body` while a thread waits for SIGINT or SIGTERM and hands the first to `stop`
/// (signal-hook delivers it as a value: `stop`, which ends the process, runs outside any
/// signal handler).
fn on_signal<T>(stop: impl FnOnce(i32) + Send, body: impl FnOnce() -> Result<T>) -> Result<T> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let handle = signals.handle();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            if let Some(signal) = signals.forever().next() {
                stop(signal);
            }
        });
        let result = body();
        handle.close();
        result
    })
}

fn signal_name(signal: i32) -> &'static str {
    if signal == SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}

/// Removes the temp files being written and ends the process with 128 + `signal`.
fn exit_for(signal: i32) -> ! {
    files::remove_unfinished();
    let _ = std::io::stdout().flush();
    // _exit, not exit: a built-in kind may still be using a native library (ONNX Runtime)
    // whose static destructors exit would run under its feet.
    // SAFETY: _exit ends the process at once; nothing after it runs.
    unsafe { libc::_exit(128 + signal) }
}

/// See [`Interrupts::stage_running`].
pub struct RunningStage<'a> {
    interrupts: &'a Interrupts,
    stage: String,
}

impl Drop for RunningStage<'_> {
    fn drop(&mut self) {
        lock(&self.interrupts.state).running.remove(&self.stage);
    }
}

/// A swap that an interrupt rolls back unless the engine finishes it first (see
/// [`hold`](Self::hold)); dropped before, it is rolled back.
pub struct ActiveSwap<'a> {
    interrupts: &'a Interrupts,
    slot: SwapSlot,
}

impl ActiveSwap<'_> {
    /// Holds the swap against an interrupt while the caller writes the lock file and finishes
    /// it (an interrupt waits, then finds nothing to roll back); `None` inside when an
    /// interrupt rolled it back already.
    pub fn hold(&self) -> MutexGuard<'_, Option<Swap>> {
        lock(&self.slot)
    }

    /// Removes the new outputs and puts the previous ones back.
    pub fn roll_back(self) -> std::io::Result<()> {
        let taken = lock(&self.slot).take();
        taken.map_or(Ok(()), Swap::roll_back)
    }
}

impl Drop for ActiveSwap<'_> {
    fn drop(&mut self) {
        if let Some(swap) = lock(&self.slot).take() {
            let _ = swap.roll_back();
        }
        self.interrupts.forget(&self.slot);
    }
}
