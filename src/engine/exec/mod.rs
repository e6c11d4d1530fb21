//! Running a pipeline: decide per stage (up to date, restore from the cache, or run), schedule
//! the runs on `-j` workers with pools, record results, report.
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
//!    objects, run record and lock file entry written, in that order.
//!
//! Outputs are replaced through a swap (`store/swap.rs`): the previous outputs stay aside until
//! the lock file entry is written. A failed stage records nothing and gets its previous outputs
//! back, so the lock file's entry and hashes still describe what is on disk and `status` says
//! why it is stale; stages that need it are skipped, the others go on. Stages of
//! [`Pool::Machine`] run alone. SIGINT and SIGTERM are handled in `interrupt`.
//!
//! A broken lock file (see [`crate::engine::store::BrokenLockFile`]) counts as absent: every stage is
//! then restored from the run cache (or run), and the lock file is written once at the end,
//! only when every stage succeeded, so the user's file (merge-conflict markers and all) stays
//! untouched until a whole new one replaces it.

mod check;
mod freshness;
mod history;
mod interrupt;
mod pull;
mod remote_hooks;
mod stage_run;
mod summary;
mod ui;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};

pub use check::{check, CheckReport, Mismatch};
pub use freshness::{
    assess, decide, evaluate, key_inputs, output_contents, Decision, Evaluation, Judge, Plan,
    StageStatus,
};
pub use history::{History, StageHistory, Work};
pub use interrupt::Interrupts;
pub use pull::{pull, PullReport};
pub use summary::{Outcome, RunReport, StageReport};
pub use ui::{StageProgress, Ui};

use crate::engine::dag::Dag;
use crate::engine::fingerprint::{DirtyReason, StageKey, StatCache};
use crate::engine::kind::Pool;
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

/// How a run asks the remote whether it holds a key.
type RemoteHas<'a> = dyn Fn(&StageKey) -> bool + Sync + 'a;

/// Everything the workers share during one run.
struct Engine<'a> {
    pipeline: &'a Pipeline,
    store: &'a Store,
    stats: &'a StatCache,
    lock: Mutex<LockFile>,
    /// The lock file on disk is broken: write it once at the end, not after every stage.
    lock_file_broken: bool,
    options: &'a RunOptions,
    ui: &'a Ui,
    interrupts: &'a Interrupts,
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
    let (lock, broken) = match LockFile::read_or_broken(&pipeline.lock_file())? {
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

impl Engine<'_> {
    fn locked(&self, stage: &str) -> Option<LockedStage> {
        self.lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stages
            .get(stage)
            .cloned()
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
            let stale_upstream: Vec<String> = dag
                .upstream(index)
                .into_iter()
                .filter(|up| {
                    reports
                        .get(up)
                        .is_some_and(|r| r.outcome != Outcome::UpToDate)
                })
                .map(|up| self.pipeline.stages[up].name.clone())
                .collect();
            let report = if !stale_upstream.is_empty() {
                let reasons = stale_upstream
                    .into_iter()
                    .map(|stage| DirtyReason::UpstreamStale { stage })
                    .collect();
                StageReport::new(stage, Outcome::WouldRun).with_reasons(reasons)
            } else {
                let judge = self.judge(&remote_has);
                match decide(&judge, stage, self.locked(&stage.name).as_ref(), &[]) {
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

    /// Starts each stage when its upstream stages are done, up to `jobs` at once; a
    /// [`Pool::Machine`] stage waits for an empty machine and keeps it to itself.
    fn schedule(&self, dag: &Dag, order: &[usize]) -> BTreeMap<usize, StageReport> {
        let selected: BTreeSet<usize> = order.iter().copied().collect();
        let mut reports: BTreeMap<usize, StageReport> = BTreeMap::new();
        let mut pending: Vec<usize> = order.to_vec();
        let mut running: BTreeMap<usize, Pool> = BTreeMap::new();
        let (done_tx, done_rx) = mpsc::channel::<(usize, StageReport)>();
        std::thread::scope(|scope| {
            loop {
                // Skip stages whose upstream failed; start the ready ones that fit.
                let mut index = 0;
                while index < pending.len() {
                    let stage = pending[index];
                    let upstream: Vec<usize> = dag
                        .upstream(stage)
                        .into_iter()
                        .filter(|u| selected.contains(u))
                        .collect();
                    if let Some(&failed) = upstream
                        .iter()
                        .find(|u| reports.get(u).is_some_and(|r| !r.outcome.is_success()))
                    {
                        let name = &self.pipeline.stages[failed].name;
                        reports.insert(
                            stage,
                            StageReport::new(&self.pipeline.stages[stage], Outcome::Skipped)
                                .with_error(format!("not run: `{name}` did not succeed"), None),
                        );
                        pending.remove(index);
                        continue;
                    }
                    let ready = upstream.iter().all(|u| reports.contains_key(u));
                    let pool = self.pool(stage);
                    let machine_busy = running.values().any(|p| *p == Pool::Machine);
                    let fits = match pool {
                        Pool::Machine => running.is_empty(),
                        Pool::Shared => !machine_busy && running.len() < self.options.jobs.max(1),
                    };
                    if ready && fits {
                        pending.remove(index);
                        running.insert(stage, pool);
                        let reran: Vec<&str> = upstream
                            .iter()
                            .filter(|u| reports[u].outcome.executed())
                            .map(|u| self.pipeline.stages[*u].name.as_str())
                            .collect();
                        let done_tx = done_tx.clone();
                        scope.spawn(move || {
                            let report = self.process(stage, &reran);
                            let _ = done_tx.send((stage, report));
                        });
                        continue;
                    }
                    index += 1;
                }
                if running.is_empty() {
                    break;
                }
                let Ok((stage, report)) = done_rx.recv() else {
                    break;
                };
                running.remove(&stage);
                reports.insert(stage, report);
            }
        });
        reports
    }

    fn pool(&self, stage: usize) -> Pool {
        match &self.pipeline.stages[stage].action {
            Action::Kind(kind) => kind.pool(),
            Action::Cmd(_) => Pool::Shared,
        }
    }

    /// Decides and does what one stage needs; never panics the run.
    /// `reran`: the stages above this one that executed in this run.
    fn process(&self, index: usize, reran: &[&str]) -> StageReport {
        let stage = &self.pipeline.stages[index];
        let started = Instant::now();
        let report = match self.bring_up_to_date(index, reran) {
            Ok(report) => report,
            Err(error) => {
                StageReport::new(stage, Outcome::Failed).with_error(format!("{error:#}"), None)
            }
        };
        report.with_seconds(started.elapsed().as_secs_f64())
    }

    fn bring_up_to_date(&self, index: usize, reran: &[&str]) -> Result<StageReport> {
        let stage = &self.pipeline.stages[index];
        let locked = self.locked(&stage.name);
        let remote_has = |key: &StageKey| self.remote_has(key);
        let Plan {
            evaluation,
            decision,
        } = decide(&self.judge(&remote_has), stage, locked.as_ref(), reran)?;
        let _running = self.interrupts.stage_running(&stage.name);
        let restore = match decision {
            Decision::UpToDate => return Ok(StageReport::new(stage, Outcome::UpToDate)),
            Decision::CutOff { reran } => {
                let note = format!(
                    "`{}` reran; what this stage reads is unchanged",
                    reran.join("`, `")
                );
                return Ok(StageReport::new(stage, Outcome::CutOff).with_note(note));
            }
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
                    swap.commit(|| self.commit(index, &evaluation, &record))?;
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
        for (path, content) in output_contents(self.pipeline, stage, self.stats)? {
            let content =
                content.with_context(|| format!("output `{path}` vanished after the stage ran"))?;
            self.store
                .save_output(&self.pipeline.abs(&path), &content)
                .with_context(|| format!("caching output `{path}`"))?;
            outputs.push(RecordedOutput::new(&path, &content));
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
        swap.commit(|| self.commit(index, &evaluation, &record))?;
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
    ) -> Result<interrupt::ActiveSwap<'_>> {
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

    /// Writes the stage's lock file entry (and the lock file, unless it is written at the end).
    fn commit(&self, index: usize, evaluation: &Evaluation, record: &RunRecord) -> Result<()> {
        let stage = &self.pipeline.stages[index];
        let mut lock = self.lock.lock().unwrap_or_else(|p| p.into_inner());
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
        if self.lock_file_broken {
            return Ok(());
        }
        self.write_lock_file()
    }

    /// Whether the lock file records a stage the pipeline no longer has.
    fn lock_holds_removed_stages(&self) -> bool {
        let lock = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        lock.stages
            .keys()
            .any(|name| self.pipeline.stage_index(name).is_none())
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
    use crate::engine::spec::{Location, Port, Stage};

    /// Spans (stage, start, end) of every [`Sleeper`] run.
    static SPANS: Mutex<Vec<(String, Instant, Instant)>> = Mutex::new(Vec::new());

    struct Sleeper(Pool);

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
        fn pool(&self) -> Pool {
            self.0
        }
        fn run(&self, ctx: &StageContext) -> Result<()> {
            let start = Instant::now();
            std::thread::sleep(Duration::from_millis(400));
            std::fs::write(ctx.output("out")?, ctx.stage)?;
            SPANS
                .lock()
                .unwrap()
                .push((ctx.stage.to_string(), start, Instant::now()));
            Ok(())
        }
    }

    static SHARED: Sleeper = Sleeper(Pool::Shared);
    static MACHINE: Sleeper = Sleeper(Pool::Machine);

    #[test]
    fn machine_pool_stages_run_alone_and_shared_ones_together() {
        let dir = tempfile::tempdir().unwrap();
        let stage = |name: &str, kind: &'static Sleeper| Stage {
            name: name.to_string(),
            action: Action::Kind(kind),
            deps: Vec::new(),
            outs: vec![Port {
                role: Some("out".into()),
                path: format!("out/{name}"),
                at: Location {
                    file: "p.yaml".into(),
                    line: 1,
                    column: 1,
                },
            }],
            params: Params::default(),
        };
        let pipeline = Pipeline {
            name: "pools".into(),
            file: dir.path().join("p.yaml"),
            project_dir: dir.path().to_path_buf(),
            model_path: "models/pools".into(),
            cache_dir: dir.path().join("cache"),
            remote: None,
            stages: vec![
                stage("train_a", &MACHINE),
                stage("shared_1", &SHARED),
                stage("train_b", &MACHINE),
                stage("shared_2", &SHARED),
                stage("shared_3", &SHARED),
            ],
        };
        let dag = Dag::build(&pipeline).unwrap();
        let store = Store::open(&dir.path().join("cache")).unwrap();
        let options = RunOptions {
            force: false,
            jobs: 4,
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
        let spans = SPANS.lock().unwrap().clone();
        let overlaps =
            |a: &(String, Instant, Instant), b: &(String, Instant, Instant)| a.1 < b.2 && b.1 < a.2;
        for a in &spans {
            for b in &spans {
                if a.0 != b.0 && a.0.starts_with("train") && overlaps(a, b) {
                    panic!("{} ran beside {}", a.0, b.0);
                }
            }
        }
        let shared: Vec<_> = spans.iter().filter(|s| s.0.starts_with("shared")).collect();
        assert!(
            shared
                .iter()
                .any(|a| shared.iter().any(|b| a.0 != b.0 && overlaps(a, b))),
            "shared stages ran together"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out/train_b")).unwrap(),
            "train_b"
        );
    }
}
