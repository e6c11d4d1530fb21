//! Running a pipeline: decide per stage (up to date, restore from the cache, or run), schedule
//! the runs within `-j` cores, record results, report.
//!
//! Per selected stage, in dependency order, once everything it needs has finished:
//! 1. hash its inputs (stat cache) and compute its key;
//! 2. **up to date** when the key equals the lock file's and every output still has its
//!    recorded hash — shown as **cutoff** when a stage above it ran in this run, since its
//!    unchanged key means that stage reproduced identical bytes (early cutoff);
//! 3. else **restored** when the cache holds a run record for the key (objects verified while
//!    copied into staging folders beside the outputs, then swapped in; a corrupted object is
//!    dropped and the stage runs instead);
//! 4. else **ran**: the stage executed (see `stage_run`), its declared outputs checked and
//!    hashed, its inputs re-hashed (any change during the run: nothing is recorded), then
//!    objects, run record and lock file entry written, in that order. Each new output is read
//!    once: hashed while it is cloned or copied into the cache, the hash kept in the stat
//!    cache for the stages that read it (`Store::save_new_output`).
//!
//! Outputs are replaced through a swap (`store/swap.rs`): the previous outputs stay aside until
//! the lock file entry is written. Entries are recorded in memory as stages finish and the
//! lock file is written by the scheduler at most every [`LOCK_WRITE_INTERVAL`] (or ten times
//! as long as the last write took, whichever is longer) and at the end: rewriting a file that
//! grows with the pipeline after every stage would cost n² bytes for n stages. Only after a
//! write are the swaps of the stages it recorded finished, so a `kill -9` between two writes
//! rolls those stages back to their previous outputs, as the lock file still records them
//! (their run records are in the cache: the next run restores them). A failed stage records nothing and gets its previous outputs
//! back, so the lock file's entry and hashes still describe what is on disk and `status` says
//! why it is stale; stages that need it are skipped, the others go on. Stages start as soon as
//! what they need is done and the cores they declare fit within `-j` (see `packing`). SIGINT
//! and SIGTERM are handled in `interrupt`.
//!
//! A broken lock file (see [`crate::engine::store::BrokenLockFile`]) counts as absent: every stage is
//! then restored from the run cache (or run), and the lock file is written once at the end,
//! only when every stage succeeded, so the user's file (merge-conflict markers and all) stays
//! untouched until a whole new one replaces it.

mod check;
mod freshness;
mod history;
mod interrupt;
mod packing;
mod pull;
mod remote_hooks;
mod stage_run;
mod summary;
mod ui;

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub use check::{check, CheckReport, Mismatch};
pub use freshness::{
    assess, decide, evaluate, key_inputs, output_contents, Decision, Evaluation, Judge, Plan,
    StageStatus,
};
pub use history::{History, StageHistory, Work};
pub use interrupt::{exit_on_interrupt, Interrupts};
pub use pull::{pull, PullReport};
pub use summary::{Outcome, RunReport, StageReport};
pub use ui::{StageProgress, Ui};

use crate::engine::dag::Dag;
use crate::engine::fingerprint::{DirtyReason, StageKey, StatCache};
use crate::engine::remote::Remote;
use crate::engine::spec::{Action, Pipeline};
use crate::engine::store::{LockFile, LockedStage, RecordedOutput, Replacement, RunRecord, Store};

pub struct RunOptions {
    /// Run the selected stages even when up to date.
    pub force: bool,
    /// Workers (at least 1).
    pub jobs: usize,
    /// Only say what would run.
    pub dry_run: bool,
    /// The shared remote cache: read through on a local miss, written through after a run.
    pub remote: Option<Remote>,
}

/// The shortest time between two writes of the lock file during a run; see the module doc.
const LOCK_WRITE_INTERVAL: Duration = Duration::from_millis(200);

/// How a run asks the remote whether it holds a key.
type RemoteHas<'a> = dyn Fn(&StageKey) -> bool + Sync + 'a;

/// Everything the workers share during one run.
struct Engine<'a> {
    pipeline: &'a Pipeline,
    store: &'a Store,
    stats: &'a StatCache,
    lock: Mutex<LockFile>,
    /// The lock file on disk is broken: write it once at the end, not during the run.
    lock_file_broken: bool,
    /// Stages whose entry in `lock` the lock file on disk does not hold yet.
    unwritten: Mutex<Vec<Unwritten<'a>>>,
    options: &'a RunOptions,
    ui: &'a Ui,
    interrupts: &'a Interrupts,
}

/// A stage whose new lock file entry waits for the next write of the lock file, with the swap
/// that keeps its previous outputs until then.
struct Unwritten<'a> {
    stage: usize,
    /// Its entry before this run, put back in memory when its swap is rolled back.
    previous: Option<LockedStage>,
    swap: interrupt::ActiveSwap<'a>,
}

/// When the scheduler last wrote the lock file, and how long that took.
struct LockWrites {
    last: Instant,
    took: Duration,
}

impl LockWrites {
    /// How long until the next write is due.
    fn due_in(&self) -> Duration {
        LOCK_WRITE_INTERVAL
            .max(self.took * 10)
            .saturating_sub(self.last.elapsed())
    }
}

/// Runs the `selected` stages of `pipeline` (the caller holds the run lock); `interrupts`
/// learns what a SIGINT or SIGTERM would have to stop and undo.
#[allow(clippy::too_many_arguments)]
pub fn run(
    pipeline: &Pipeline,
    dag: &Dag,
    selected: &BTreeSet<usize>,
    store: &Store,
    stats: &StatCache,
    options: &RunOptions,
    ui: &Ui,
    interrupts: &Interrupts,
) -> Result<RunReport> {
    let (lock, broken) = match LockFile::read_or_broken(&pipeline.lock_file(), &pipeline.name)? {
        Ok(lock) => (lock, None),
        Err(broken) => {
            ui.say(&format!(
                "warning: {broken}; this run treats it as absent: what the cache holds is \
                 restored, and the file is rewritten once every stage has succeeded"
            ));
            (LockFile::default(), Some(broken))
        }
    };
    if !options.dry_run {
        remove_restore_leftovers(pipeline);
    }
    let engine = Engine {
        pipeline,
        store,
        stats,
        lock: Mutex::new(lock),
        lock_file_broken: broken.is_some(),
        unwritten: Mutex::new(Vec::new()),
        options,
        ui,
        interrupts,
    };
    let order = dag.order_of(selected);
    let reports = if options.dry_run {
        engine.dry_run(dag, &order)
    } else {
        engine.schedule(dag, &order)
    };
    let report = RunReport::new(pipeline, reports, options.dry_run);
    if !options.dry_run {
        if let Some(warning) = history::record(store, &report) {
            ui.say(&warning);
        }
    }
    if let Some(broken) = broken.filter(|_| !options.dry_run) {
        if report.ok {
            engine.write_lock_file()?;
            ui.say(&format!("rewrote {} from this run", broken.path.display()));
        } else {
            ui.say(&format!(
                "left {} as it was, since a stage did not succeed; the next run restores what \
                 this one recorded",
                broken.path.display()
            ));
        }
    } else if !options.dry_run && engine.lock_holds_removed_stages() {
        // A stage taken out of the pipeline (or a matrix value) leaves the lock file even
        // when nothing runs.
        engine.write_lock_file()?;
    }
    Ok(report)
}

/// The report of a stage found up to date although the stages `reran` above it executed.
/// The text a panic was raised with (`panic!("…")` carries a `&str` or a `String`).
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

fn cut_off_report(stage: &crate::engine::spec::Stage, reran: &[String]) -> StageReport {
    let note = format!(
        "`{}` reran; what this stage reads is unchanged",
        reran.join("`, `")
    );
    StageReport::new(stage, Outcome::CutOff).with_note(note)
}

/// Removes the staging folders of restores interrupted by a killed run (they sit beside the
/// outputs, where they could end up inside a folder another stage reads).
fn remove_restore_leftovers(pipeline: &Pipeline) {
    let parents: BTreeSet<std::path::PathBuf> = pipeline
        .stages
        .iter()
        .flat_map(|stage| &stage.outs)
        .filter_map(|out| pipeline.abs(&out.path).parent().map(|p| p.to_path_buf()))
        .collect();
    for parent in parents {
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(crate::engine::store::RESTORE_PREFIX)
            {
                let _ = crate::engine::store::remove_path(&entry.path());
            }
        }
    }
}

impl<'a> Engine<'a> {
    /// The lock file's entry of the pipeline's `index`th stage.
    fn locked(&self, index: usize) -> Option<LockedStage> {
        let stage = &self.pipeline.stages[index];
        self.lock(&self.lock).stage(index, &stage.name).cloned()
    }

    /// What [`decide`] consults, with `remote_has` asking the remote when one is in use.
    fn judge<'j>(&'j self, remote_has: &'j RemoteHas<'j>) -> Judge<'j> {
        Judge {
            pipeline: self.pipeline,
            store: self.store,
            stats: self.stats,
            force: self.options.force,
            remote_has: self.options.remote.as_ref().map(|_| remote_has as _),
        }
    }

    fn dry_run(&self, dag: &Dag, order: &[usize]) -> BTreeMap<usize, StageReport> {
        let remote_has = |key: &StageKey| self.remote_has(key);
        let mut reports: BTreeMap<usize, StageReport> = BTreeMap::new();
        for &index in order {
            let stage = &self.pipeline.stages[index];
            let stale = |up: &usize| {
                reports
                    .get(up)
                    .is_some_and(|r| r.outcome != Outcome::UpToDate)
            };
            // Collected (in pipeline order) only when there is something to collect.
            let stale_upstream: Vec<String> =
                match dag.upstream_unordered(index).any(|up| stale(&up)) {
                    false => Vec::new(),
                    true => dag
                        .upstream(index)
                        .into_iter()
                        .filter(stale)
                        .map(|up| self.pipeline.stages[up].name.clone())
                        .collect(),
                };
            let report = if !stale_upstream.is_empty() {
                let reasons = stale_upstream
                    .into_iter()
                    .map(|stage| DirtyReason::UpstreamStale { stage })
                    .collect();
                StageReport::new(stage, Outcome::WouldRun).with_reasons(reasons)
            } else {
                let judge = self.judge(&remote_has);
                // Borrowed, not cloned: nothing else uses the lock file during a dry run.
                let lock = self.lock(&self.lock);
                match decide(&judge, stage, lock.stage(index, &stage.name), &[]) {
                    Ok(plan) => match plan.decision {
                        Decision::UpToDate | Decision::CutOff { .. } => {
                            StageReport::new(stage, Outcome::UpToDate)
                        }
                        Decision::Restore(_) | Decision::RestoreRemote => {
                            StageReport::new(stage, Outcome::WouldRestore)
                                .with_reasons(plan.evaluation.reasons)
                        }
                        Decision::Run => StageReport::new(stage, Outcome::WouldRun)
                            .with_reasons(plan.evaluation.reasons),
                    },
                    Err(error) => StageReport::new(stage, Outcome::Failed)
                        .with_error(format!("{error:#}"), None),
                }
            };
            reports.insert(index, report);
        }
        reports
    }

    /// Starts each stage when its upstream stages are done, packing them so the cores they
    /// declare never exceed `jobs` (see `packing`).
    ///
    /// A stage the stat cache shows up to date (or cut off) is settled here, on the
    /// scheduler's thread ([`freshness::decide_from_stat_cache`]: a few `stat`s, nothing
    /// read, nothing written); handing it to a worker and back would cost two thread wake-ups
    /// per stage, most of a no-op run of a long chain. The other stages go to a pool of worker
    /// threads, one more started only when every worker is busy (at most `jobs`, since packing
    /// never runs more stages at once): a thread per stage would cost a `clone` per stage.
    fn schedule(&self, dag: &Dag, order: &[usize]) -> BTreeMap<usize, StageReport> {
        let stages = &self.pipeline.stages;
        let mut packing = packing::Packing::new(dag, stages.len(), order, self.options.jobs, |s| {
            self.cores(s)
        });
        let mut reports: BTreeMap<usize, StageReport> = BTreeMap::new();
        let mut running = 0usize;
        let mut workers = 0usize;
        let mut writes = LockWrites {
            last: Instant::now(),
            took: Duration::ZERO,
        };
        let remote_has = |key: &StageKey| self.remote_has(key);
        let judge = self.judge(&remote_has);
        let (done_tx, done_rx) = mpsc::channel::<(usize, StageReport)>();
        let (work_tx, work_rx) = mpsc::channel::<(usize, Vec<&str>)>();
        let work_rx = Mutex::new(work_rx);
        std::thread::scope(|scope| {
            loop {
                while let Some(stage) = packing.next_to_start() {
                    let executed =
                        |up: &usize| reports.get(up).is_some_and(|r| r.outcome.executed());
                    // Collected (in pipeline order) only when there is something to collect.
                    let reran: Vec<&str> =
                        match dag.upstream_unordered(stage).any(|up| executed(&up)) {
                            false => Vec::new(),
                            true => dag
                                .upstream(stage)
                                .into_iter()
                                .filter(executed)
                                .map(|up| stages[up].name.as_str())
                                .collect(),
                        };
                    if let Some(report) = self.settle_here(&judge, stage, &reran) {
                        self.finished(&mut packing, &mut reports, stage, report);
                        // Stages the workers finished meanwhile: their downstream stages
                        // become ready and their lock file entries get written in time.
                        while let Ok((stage, report)) = done_rx.try_recv() {
                            running -= 1;
                            self.finished(&mut packing, &mut reports, stage, report);
                        }
                        if writes.due_in().is_zero() && !self.lock(&self.unwritten).is_empty() {
                            self.write_unwritten(&mut writes, &mut reports);
                        }
                        continue;
                    }
                    running += 1;
                    if running > workers {
                        workers += 1;
                        let (done_tx, work_rx) = (done_tx.clone(), &work_rx);
                        scope.spawn(move || loop {
                            // The guard goes at the end of this statement: the others may wait.
                            let next = self.lock(work_rx).recv();
                            let Ok((stage, reran)) = next else { break };
                            let report = self.process(stage, &reran);
                            if done_tx.send((stage, report)).is_err() {
                                break;
                            }
                        });
                    }
                    // The workers hold the receiver until this function's scope ends.
                    let _ = work_tx.send((stage, reran));
                }
                if running == 0 {
                    self.write_unwritten(&mut writes, &mut reports);
                    break;
                }
                let received = if self.lock(&self.unwritten).is_empty() {
                    done_rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
                } else {
                    done_rx.recv_timeout(writes.due_in())
                };
                let (stage, report) = match received {
                    Ok(done) => done,
                    Err(RecvTimeoutError::Timeout) => {
                        self.write_unwritten(&mut writes, &mut reports);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                running -= 1;
                self.finished(&mut packing, &mut reports, stage, report);
                if writes.due_in().is_zero() {
                    self.write_unwritten(&mut writes, &mut reports);
                }
            }
            // No more work: the workers' `recv` fails and they end.
            drop(work_tx);
        });
        reports
    }

    /// The report of a stage the stat cache shows up to date or cut off (see
    /// [`Self::schedule`]); `None` when a worker has to judge it.
    fn settle_here(&self, judge: &Judge, index: usize, reran: &[&str]) -> Option<StageReport> {
        let started = Instant::now();
        let stage = &self.pipeline.stages[index];
        let decision = {
            // Borrowed, not cloned: the workers take this lock only briefly.
            let lock = self.lock(&self.lock);
            freshness::decide_from_stat_cache(judge, stage, lock.stage(index, &stage.name), reran)?
        };
        let report = match decision {
            Decision::CutOff { reran } => cut_off_report(stage, &reran),
            _ => StageReport::new(stage, Outcome::UpToDate),
        };
        Some(report.with_seconds(started.elapsed().as_secs_f64()))
    }

    /// Records that a started stage ended with `report`; the stages below a failed one are
    /// reported skipped.
    fn finished(
        &self,
        packing: &mut packing::Packing,
        reports: &mut BTreeMap<usize, StageReport>,
        stage: usize,
        report: StageReport,
    ) {
        let stages = &self.pipeline.stages;
        let skipped = packing.finished(stage, report.outcome.is_success());
        reports.insert(stage, report);
        for (stage, failed) in skipped {
            let name = &stages[failed].name;
            reports.insert(
                stage,
                StageReport::new(&stages[stage], Outcome::Skipped)
                    .with_error(format!("not run: `{name}` did not succeed"), None),
            );
        }
    }

    fn lock<'m, T>(&self, mutex: &'m Mutex<T>) -> MutexGuard<'m, T> {
        mutex.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the lock file with every entry recorded since the last write, then finishes
    /// those stages' swaps (their previous outputs go). Entries of swaps an interrupt rolled
    /// back in between are left out. When the write fails, every such swap is rolled back and
    /// its stage reported failed: the lock file and the outputs keep agreeing.
    fn write_unwritten(&self, writes: &mut LockWrites, reports: &mut BTreeMap<usize, StageReport>) {
        let unwritten = std::mem::take(&mut *self.lock(&self.unwritten));
        if unwritten.is_empty() {
            return;
        }
        let started = Instant::now();
        // Held until each swap is finished or rolled back: an interrupt waits for them.
        let mut swaps: Vec<_> = unwritten.iter().map(|u| u.swap.hold()).collect();
        for (entry, swap) in unwritten.iter().zip(&swaps) {
            if swap.is_none() {
                self.put_back_entry(entry);
            }
        }
        let written = if self.lock_file_broken {
            Ok(())
        } else {
            self.write_lock_file()
        };
        for (entry, swap) in unwritten.iter().zip(&mut swaps) {
            let Some(swap) = swap.take() else { continue };
            let problem = match &written {
                Ok(()) => swap.finish().err().map(|error| {
                    format!("dropping the previous outputs after recording the run: {error}")
                }),
                Err(error) => {
                    self.put_back_entry(entry);
                    let undo = swap
                        .roll_back()
                        .err()
                        .map(|error| format!("; then putting the previous outputs back: {error}"));
                    Some(format!("{error:#}{}", undo.unwrap_or_default()))
                }
            };
            if let Some(problem) = problem {
                let stage = &self.pipeline.stages[entry.stage];
                reports.insert(
                    entry.stage,
                    StageReport::new(stage, Outcome::Failed).with_error(problem, None),
                );
            }
        }
        drop(swaps);
        writes.last = Instant::now();
        writes.took = started.elapsed();
    }

    /// Puts a stage's lock file entry back to what it was before this run.
    fn put_back_entry(&self, entry: &Unwritten) {
        let name = &self.pipeline.stages[entry.stage].name;
        let mut lock = self.lock(&self.lock);
        match &entry.previous {
            Some(previous) => {
                lock.stages.insert(name.clone(), previous.clone());
            }
            None => {
                lock.stages.shift_remove(name);
            }
        }
    }

    fn cores(&self, stage: usize) -> usize {
        match &self.pipeline.stages[stage].action {
            Action::Kind(kind) => kind.cores(),
            Action::Cmd(_) => 1,
        }
    }

    /// Decides and does what one stage needs; never panics the run.
    /// `reran`: the stages above this one that executed in this run.
    fn process(&self, index: usize, reran: &[&str]) -> StageReport {
        let stage = &self.pipeline.stages[index];
        let started = Instant::now();
        // A panic (a bug in a kind or here) fails its stage like an error: the scheduler waits
        // for a report of every stage it started, so a worker that died without one would hang
        // the run. Unwinding drops the stage's staging folder and rolls its swap back.
        let attempt = panic::catch_unwind(AssertUnwindSafe(|| self.bring_up_to_date(index, reran)));
        let report = match attempt {
            Ok(Ok(report)) => report,
            Ok(Err(error)) => {
                StageReport::new(stage, Outcome::Failed).with_error(format!("{error:#}"), None)
            }
            Err(payload) => StageReport::new(stage, Outcome::Failed).with_error(
                format!(
                    "internal error: the stage panicked: {}",
                    panic_message(&*payload)
                ),
                None,
            ),
        };
        report.with_seconds(started.elapsed().as_secs_f64())
    }

    fn bring_up_to_date(&self, index: usize, reran: &[&str]) -> Result<StageReport> {
        let stage = &self.pipeline.stages[index];
        let locked = self.locked(index);
        let remote_has = |key: &StageKey| self.remote_has(key);
        let Plan {
            evaluation,
            decision,
        } = decide(&self.judge(&remote_has), stage, locked.as_ref(), reran)?;
        let _running = self.interrupts.stage_running(&stage.name);
        let restore = match decision {
            Decision::UpToDate => return Ok(StageReport::new(stage, Outcome::UpToDate)),
            Decision::CutOff { reran } => return Ok(cut_off_report(stage, &reran)),
            Decision::Restore(record) => Some((record, Outcome::Restored, "the cache")),
            Decision::RestoreRemote => self
                .fetch_from_remote(index, &evaluation.key)
                .map(|record| (record, Outcome::RestoredRemote, "the remote")),
            Decision::Run => None,
        };
        if let Some((record, outcome, source)) = restore {
            match self.restore(index, locked.as_ref(), &record) {
                Ok(swap) => {
                    self.store.touch_record(&evaluation.key, &record)?;
                    self.commit(index, &evaluation, &record, locked, swap);
                    return Ok(StageReport::new(stage, outcome).with_reasons(evaluation.reasons));
                }
                Err(error) => self.ui.say(&format!(
                    "[{}] cannot restore from {source} ({error:#}); running it",
                    stage.name
                )),
            }
        }
        let progress = self.ui.stage(&stage.name);
        let stage_run = stage_run::StageRun {
            pipeline: self.pipeline,
            stage,
            store: self.store,
            interrupts: self.interrupts,
            previous: locked.as_ref(),
        };
        let result = stage_run.execute(&progress);
        drop(progress);
        let swap = match result {
            Ok(swap) => swap,
            Err(failure) => {
                return Ok(StageReport::new(stage, Outcome::Failed)
                    .with_reasons(evaluation.reasons)
                    .with_error(failure.message, failure.tail))
            }
        };
        let after = key_inputs(self.pipeline, stage, self.stats)?;
        if let Some(changed) = DirtyReason::diff(&evaluation.key_inputs, &after)
            .into_iter()
            .next()
        {
            swap.roll_back().with_context(|| {
                format!("{changed} while the stage ran; putting the previous outputs back")
            })?;
            return Ok(StageReport::new(stage, Outcome::InputsChanged).with_reasons(evaluation.reasons).with_error(
                format!("{changed} while the stage ran: nothing recorded, its previous outputs put back; run again"),
                None,
            ));
        }
        let mut outputs = Vec::new();
        for out in &stage.outs {
            let path = self.pipeline.abs(&out.path);
            if !path.exists() {
                anyhow::bail!("output `{}` vanished after the stage ran", out.path);
            }
            let content = self
                .store
                .save_new_output(&path, self.stats)
                .with_context(|| format!("caching output `{}`", out.path))?;
            outputs.push(RecordedOutput::new(&out.path, &content));
        }
        let record = RunRecord {
            stage: stage.name.clone(),
            outputs,
            last_used: crate::engine::store::now_unix(),
        };
        self.store.write_record(&evaluation.key, &record)?;
        self.publish_to_remote(index, &evaluation.key, &record);
        // Outputs this rerun reproduced byte for byte: what is below them is cut off.
        let unchanged_outputs: Vec<String> = locked
            .as_ref()
            .map(|locked| {
                record
                    .outputs
                    .iter()
                    .filter(|out| locked.outputs.get(&out.path) == Some(&out.hash))
                    .map(|out| out.path.clone())
                    .collect()
            })
            .unwrap_or_default();
        let same_outputs = locked
            .as_ref()
            .is_some_and(|locked| locked.outputs.len() == record.outputs.len())
            && unchanged_outputs.len() == record.outputs.len();
        self.commit(index, &evaluation, &record, locked, swap);
        let outcome = if same_outputs {
            Outcome::RanSameOutputs
        } else {
            Outcome::Ran
        };
        Ok(StageReport::new(stage, outcome)
            .with_reasons(evaluation.reasons)
            .with_unchanged_outputs(unchanged_outputs))
    }

    /// Stages a recorded run's outputs beside theirs (those already right are left alone) and
    /// swaps them in; the caller commits the swap.
    fn restore(
        &self,
        index: usize,
        locked: Option<&LockedStage>,
        record: &RunRecord,
    ) -> Result<interrupt::ActiveSwap<'a>> {
        let stage = &self.pipeline.stages[index];
        let current: BTreeMap<String, Option<crate::engine::fingerprint::ContentHash>> =
            output_contents(self.pipeline, stage, self.stats)?
                .into_iter()
                .map(|(path, content)| (path, content.map(|c| c.hash().clone())))
                .collect();
        if record.outputs.len() != stage.outs.len()
            || record
                .outputs
                .iter()
                .any(|out| !current.contains_key(&out.path))
        {
            anyhow::bail!("the recorded run has other outputs");
        }
        if let Some(missing) = record
            .outputs
            .iter()
            .find(|out| !self.store.has_output(out))
        {
            anyhow::bail!("cache objects of `{}` are missing", missing.path);
        }
        // Each staging folder is removed (empty by then) when this returns.
        let mut staging = Vec::new();
        let mut replacements = Vec::new();
        for output in &record.outputs {
            if current.get(&output.path).cloned().flatten().as_ref() == Some(&output.hash) {
                continue;
            }
            let dest = self.pipeline.abs(&output.path);
            let (folder, staged) = self.store.stage_output(output, &dest)?;
            staging.push(folder);
            replacements.push(Replacement {
                dest,
                staged: Some(staged),
            });
        }
        self.interrupts.begin_swap(
            self.store,
            self.pipeline,
            &stage.name,
            locked,
            &replacements,
        )
    }

    /// Records the stage's lock file entry in memory; the scheduler writes the lock file and
    /// then finishes `swap` (see [`Self::write_unwritten`]).
    fn commit(
        &self,
        index: usize,
        evaluation: &Evaluation,
        record: &RunRecord,
        previous: Option<LockedStage>,
        swap: interrupt::ActiveSwap<'a>,
    ) {
        let stage = &self.pipeline.stages[index];
        let mut lock = self.lock(&self.lock);
        lock.pipeline = self.pipeline.name.clone();
        lock.stages.insert(
            stage.name.clone(),
            LockedStage {
                key: evaluation.key.clone(),
                key_inputs: evaluation.key_inputs.clone(),
                outputs: record
                    .outputs
                    .iter()
                    .map(|out| (out.path.clone(), out.hash.clone()))
                    .collect(),
            },
        );
        drop(lock);
        self.lock(&self.unwritten).push(Unwritten {
            stage: index,
            previous,
            swap,
        });
    }

    /// Whether the lock file records a stage the pipeline no longer has.
    fn lock_holds_removed_stages(&self) -> bool {
        let names: Vec<&str> = (self.pipeline.stages.iter())
            .map(|stage| stage.name.as_str())
            .collect();
        self.lock(&self.lock).holds_others(&names)
    }

    /// Writes the lock file: the stages of the pipeline, in its order.
    fn write_lock_file(&self) -> Result<()> {
        let mut lock = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let names: Vec<&str> = self
            .pipeline
            .stages
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        lock.retain_in_order(&names);
        let path = self.pipeline.lock_file();
        lock.write(&path)
            .with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::engine::kind::{OutputRole, ParamSpec, Params, StageContext, StageKind};
    use crate::engine::spec::{Declared, Places, Port, Stage};

    type Span = (String, Instant, Instant);

    /// Spans (stage, start, end) of every [`Sleeper`] run, per test (tests run in parallel).
    static SPANS: Mutex<BTreeMap<String, Vec<Span>>> = Mutex::new(BTreeMap::new());

    /// Sleeps 400 ms, declaring `.0` cores; records its span under its pipeline's model path.
    struct Sleeper(usize);

    impl StageKind for Sleeper {
        fn name(&self) -> &'static str {
            "sleeper"
        }
        fn version(&self) -> u32 {
            1
        }
        fn inputs(&self) -> &'static [&'static str] {
            &[]
        }
        fn outputs(&self) -> &'static [OutputRole] {
            &[OutputRole {
                role: "out",
                default_name: "out",
            }]
        }
        fn params(&self) -> Vec<ParamSpec> {
            Vec::new()
        }
        fn check_params(&self, _params: &Params) -> Result<()> {
            Ok(())
        }
        fn cores(&self) -> usize {
            self.0
        }
        fn run(&self, ctx: &StageContext) -> Result<()> {
            let start = Instant::now();
            std::thread::sleep(Duration::from_millis(400));
            std::fs::write(ctx.output("out")?, ctx.stage)?;
            let test = ctx.params.str("test")?.to_string();
            SPANS.lock().unwrap().entry(test).or_default().push((
                ctx.stage.to_string(),
                start,
                Instant::now(),
            ));
            Ok(())
        }
    }

    static ONE_CORE: Sleeper = Sleeper(1);
    static TWO_CORES: Sleeper = Sleeper(2);
    static EIGHT_CORES: Sleeper = Sleeper(8);

    /// Runs independent sleeper stages at `-j jobs`; returns their spans.
    fn run_sleepers(test: &str, stages: &[(&str, &'static Sleeper)], jobs: usize) -> Vec<Span> {
        let dir = tempfile::tempdir().unwrap();
        let stage = |name: &str, kind: &'static Sleeper| Stage {
            name: name.to_string(),
            action: Action::Kind(kind),
            deps: Vec::new(),
            outs: vec![Port {
                role: Some("out".into()),
                path: format!("out/{name}"),
                declared: Declared::Entry,
            }],
            params: Params::new(BTreeMap::from([("test".to_string(), test.into())])),
        };
        let pipeline = Pipeline {
            name: "cores".into(),
            file: dir.path().join("p.yaml"),
            project_dir: dir.path().to_path_buf(),
            model_path: "models/cores".into(),
            cache_dir: dir.path().join("cache"),
            remote: None,
            stages: stages
                .iter()
                .map(|(name, kind)| stage(name, kind))
                .collect(),
            places: Places::default(),
        };
        let dag = Dag::build(&pipeline).unwrap();
        let store = Store::open(&dir.path().join("cache")).unwrap();
        let options = RunOptions {
            force: false,
            jobs,
            dry_run: false,
            remote: None,
        };
        let all = (0..pipeline.stages.len()).collect();
        let stats = StatCache::in_memory();
        let report = run(
            &pipeline,
            &dag,
            &all,
            &store,
            &stats,
            &options,
            &Ui::plain(),
            &Interrupts::default(),
        )
        .unwrap();
        assert!(report.ok, "{}", report.table());
        for (name, _) in stages {
            assert_eq!(
                std::fs::read_to_string(dir.path().join("out").join(name)).unwrap(),
                *name
            );
        }
        SPANS.lock().unwrap().remove(test).unwrap()
    }

    fn overlap(a: &Span, b: &Span) -> bool {
        a.0 != b.0 && a.1 < b.2 && b.1 < a.2
    }

    /// The most cores in use at any moment, given each stage's cores by name prefix.
    fn peak_cores(spans: &[Span], cores: impl Fn(&str) -> usize) -> usize {
        spans
            .iter()
            .map(|at| {
                spans
                    .iter()
                    .filter(|s| s.1 <= at.1 && at.1 < s.2)
                    .map(|s| cores(&s.0))
                    .sum()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn stages_are_packed_so_their_cores_never_exceed_jobs() {
        let spans = run_sleepers(
            "packed",
            &[
                ("two_a", &TWO_CORES),
                ("one_1", &ONE_CORE),
                ("two_b", &TWO_CORES),
                ("one_2", &ONE_CORE),
                ("one_3", &ONE_CORE),
                ("huge", &EIGHT_CORES),
            ],
            3,
        );
        let cores = |name: &str| match name {
            "huge" => 3,
            name if name.starts_with("two") => 2,
            _ => 1,
        };
        assert!(peak_cores(&spans, cores) <= 3, "{spans:?}");
        let huge = spans.iter().find(|s| s.0 == "huge").unwrap();
        assert!(
            !spans.iter().any(|s| overlap(s, huge)),
            "a stage declaring more than -j runs alone: {spans:?}"
        );
        let ones: Vec<&Span> = spans.iter().filter(|s| s.0.starts_with("one")).collect();
        assert!(
            spans
                .iter()
                .any(|a| a.0.starts_with("two") && ones.iter().any(|b| overlap(a, b))),
            "a 1-core stage fills the core a 2-core one leaves: {spans:?}"
        );
    }

    #[test]
    fn two_stages_of_two_cores_run_together_at_four_jobs_and_alone_at_two() {
        let stages = [("train_a", &TWO_CORES), ("train_b", &TWO_CORES)];
        let four = run_sleepers("four", &stages, 4);
        assert!(overlap(&four[0], &four[1]), "at -j 4: {four:?}");
        let two = run_sleepers("two", &stages, 2);
        assert!(!overlap(&two[0], &two[1]), "at -j 2: {two:?}");
    }
}
