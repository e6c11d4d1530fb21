//! Running a pipeline: decide per stage (up to date, restore from the cache, or run), schedule
//! the runs on `-j` workers with pools, record results, report.
//!
//! Per selected stage, in dependency order, once everything it needs has finished:
//! 1. hash its inputs (stat cache) and compute its key;
//! 2. **up to date** when the key equals the lock file's and every output still has its
//!    recorded hash — shown as **cutoff** when a stage above it ran in this run, since its
//!    unchanged key means that stage reproduced identical bytes (early cutoff);
//! 3. else **restored** when the cache holds a run record for the key (objects verified while
//!    copied; a corrupted object is dropped and the stage runs instead);
//! 4. else **ran**: old outputs removed, the stage executed, its declared outputs checked and
//!    hashed, its inputs re-hashed (any change during the run: nothing is recorded), then
//!    objects, run record and lock file entry written, in that order.
//!
//! A failed stage records nothing and leaves no outputs; stages that need it are skipped,
//! the others go on. Stages of [`Pool::Machine`] run alone.

mod check;
mod freshness;
mod remote_hooks;
mod stage_run;
mod summary;
mod ui;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};

pub use check::{check, CheckReport, Mismatch};
pub use freshness::{assess, evaluate, key_inputs, output_contents, Evaluation, StageStatus};
pub use summary::{Outcome, RunReport, StageReport};
pub use ui::{StageProgress, Ui};

use crate::dag::Dag;
use crate::fingerprint::{DirtyReason, StatCache};
use crate::remote::Remote;
use crate::spec::{Action, Pipeline};
use crate::stages::Pool;
use crate::store::{LockFile, LockedStage, RecordedOutput, RunRecord, Store};

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

/// Everything the workers share during one run.
struct Engine<'a> {
    pipeline: &'a Pipeline,
    store: &'a Store,
    stats: &'a StatCache,
    lock: Mutex<LockFile>,
    options: &'a RunOptions,
    ui: &'a Ui,
}

/// Runs the `selected` stages of `pipeline` (the caller holds the run lock).
pub fn run(
    pipeline: &Pipeline,
    dag: &Dag,
    selected: &BTreeSet<usize>,
    store: &Store,
    stats: &StatCache,
    options: &RunOptions,
    ui: &Ui,
) -> Result<RunReport> {
    let lock = LockFile::read(&pipeline.lock_file())?;
    if !options.dry_run {
        remove_restore_leftovers(pipeline);
    }
    let engine = Engine {
        pipeline,
        store,
        stats,
        lock: Mutex::new(lock),
        options,
        ui,
    };
    let order = dag.order_of(selected);
    let reports = if options.dry_run {
        engine.dry_run(dag, &order)
    } else {
        engine.schedule(dag, &order)
    };
    Ok(RunReport::new(pipeline, reports, options.dry_run))
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
                .starts_with(crate::store::RESTORE_PREFIX)
            {
                let _ = crate::store::remove_path(&entry.path());
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

    fn dry_run(&self, dag: &Dag, order: &[usize]) -> BTreeMap<usize, StageReport> {
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
                match evaluate(
                    self.pipeline,
                    stage,
                    self.locked(&stage.name).as_ref(),
                    self.stats,
                ) {
                    Ok(mut evaluation) => {
                        if self.options.force {
                            evaluation.reasons.insert(0, DirtyReason::Forced);
                        }
                        if evaluation.reasons.is_empty() {
                            StageReport::new(stage, Outcome::UpToDate)
                        } else {
                            let outcome = if !self.options.force
                                && (self.store.record(&evaluation.key).is_some()
                                    || self.remote_has(&evaluation.key))
                            {
                                Outcome::WouldRestore
                            } else {
                                Outcome::WouldRun
                            };
                            StageReport::new(stage, outcome).with_reasons(evaluation.reasons)
                        }
                    }
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
        let mut evaluation = evaluate(self.pipeline, stage, locked.as_ref(), self.stats)?;
        if self.options.force {
            evaluation.reasons.insert(0, DirtyReason::Forced);
        } else if evaluation.reasons.is_empty() {
            if reran.is_empty() {
                return Ok(StageReport::new(stage, Outcome::UpToDate));
            }
            let note = format!(
                "`{}` reran; what this stage reads is unchanged",
                reran.join("`, `")
            );
            return Ok(StageReport::new(stage, Outcome::CutOff).with_note(note));
        } else if let Some(record) = self.store.record(&evaluation.key) {
            match self.restore(index, &record) {
                Ok(()) => {
                    self.store.touch_record(&evaluation.key, &record)?;
                    self.commit(index, &evaluation, &record)?;
                    return Ok(
                        StageReport::new(stage, Outcome::Restored).with_reasons(evaluation.reasons)
                    );
                }
                Err(error) => self.ui.say(&format!(
                    "[{}] cannot restore from the cache ({error:#}); running it",
                    stage.name
                )),
            }
        } else if let Some(record) = self.fetch_from_remote(index, &evaluation.key) {
            match self.restore(index, &record) {
                Ok(()) => {
                    self.store.touch_record(&evaluation.key, &record)?;
                    self.commit(index, &evaluation, &record)?;
                    return Ok(StageReport::new(stage, Outcome::RestoredRemote)
                        .with_reasons(evaluation.reasons));
                }
                Err(error) => self.ui.say(&format!(
                    "[{}] cannot restore what the remote holds ({error:#}); running it",
                    stage.name
                )),
            }
        }
        let progress = self.ui.stage(&stage.name);
        let result = stage_run::execute(self.pipeline, stage, self.store, &progress);
        drop(progress);
        if let Err(failure) = result {
            return Ok(StageReport::new(stage, Outcome::Failed)
                .with_reasons(evaluation.reasons)
                .with_error(failure.message, failure.tail));
        }
        let after = key_inputs(self.pipeline, stage, self.stats)?;
        if let Some(changed) = DirtyReason::diff(&evaluation.key_inputs, &after)
            .into_iter()
            .next()
        {
            stage_run::remove_outputs(self.pipeline, stage)?;
            return Ok(StageReport::new(stage, Outcome::InputsChanged).with_reasons(evaluation.reasons).with_error(
                format!("{changed} while the stage ran: nothing recorded, its outputs removed; run again"),
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
            last_used: crate::store::now_unix(),
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
            .is_some_and(|locked| locked.outputs.len() == record.outputs.len())
            && unchanged_outputs.len() == record.outputs.len();
        self.commit(index, &evaluation, &record)?;
        let outcome = if same_outputs {
            Outcome::RanSameOutputs
        } else {
            Outcome::Ran
        };
        Ok(StageReport::new(stage, outcome)
            .with_reasons(evaluation.reasons)
            .with_unchanged_outputs(unchanged_outputs))
    }

    /// Puts a recorded run's outputs in place (those already right are left alone).
    fn restore(&self, index: usize, record: &RunRecord) -> Result<()> {
        let stage = &self.pipeline.stages[index];
        let current: BTreeMap<String, Option<crate::fingerprint::ContentHash>> =
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
        for output in &record.outputs {
            if current.get(&output.path).cloned().flatten().as_ref() == Some(&output.hash) {
                continue;
            }
            if let Err(error) = self
                .store
                .restore_output(output, &self.pipeline.abs(&output.path))
            {
                let _ = stage_run::remove_outputs(self.pipeline, stage);
                return Err(error.into());
            }
        }
        Ok(())
    }

    /// Writes the stage's lock file entry (and the lock file).
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
    use crate::spec::{Port, Stage};
    use crate::stages::{OutputRole, ParamSpec, Params, StageContext, StageKind};

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
            }],
            params: Params::default(),
        };
        let pipeline = Pipeline {
            name: "pools".into(),
            file: dir.path().join("p.yaml"),
            project_dir: dir.path().to_path_buf(),
            model_path: "models/pools".into(),
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
