//! Is a stage up to date, and if not, what does bringing it up to date take? Its key against
//! the lock file, its outputs against the hashes recorded there, and the run caches (local,
//! then remote) for a run of the same key. [`decide`] is the one decision behind `run`,
//! `run --dry-run`, `status` and `explain`: they differ only in what they do with it. Errors name the input or output;
//! the stage's name is added once, where they are shown.

use anyhow::{Context, Result};

use crate::engine::fingerprint::{
    cached_content, canonical_param, hash_path, Content, ContentHash, DirtyReason, KeyInputs,
    PathHashes, StageKey, StatCache,
};
use crate::engine::spec::{Pipeline, Stage};
use crate::engine::store::{LockedStage, RunRecord, Store};

/// A stage's key now, and why (if at all) it differs from the recorded run.
pub struct Evaluation {
    pub key_inputs: KeyInputs,
    pub key: StageKey,
    /// Empty when the stage is up to date.
    pub reasons: Vec<DirtyReason>,
}

/// What a stage's key is computed from, hashing its inputs as they are on disk now.
pub fn key_inputs(pipeline: &Pipeline, stage: &Stage, stats: &StatCache) -> Result<KeyInputs> {
    key_inputs_with(stage, |path| {
        hash_path(&pipeline.abs(path), stats)
            .map(|content| content.hash().clone())
            .with_context(|| format!("input `{path}`"))
    })
}

/// [`key_inputs`] with each input's hash from `input_hash(its path in the pipeline)`.
fn key_inputs_with<E>(
    stage: &Stage,
    mut input_hash: impl FnMut(&str) -> std::result::Result<ContentHash, E>,
) -> std::result::Result<KeyInputs, E> {
    let port = |kind: &str, role: &Option<String>, path: &str| {
        format!("{kind} {} {path}", role.as_deref().unwrap_or("-"))
    };
    let mut inputs = Vec::with_capacity(stage.deps.len());
    for dep in &stage.deps {
        inputs.push((dep.path.clone(), input_hash(&dep.path)?));
    }
    Ok(KeyInputs {
        action: stage.action.describe(),
        params: stage
            .params
            .iter()
            .map(|(name, value)| (name.clone(), canonical_param(value)))
            .collect(),
        ports: stage
            .deps
            .iter()
            .map(|dep| port("dep", &dep.role, &dep.path))
            .chain(
                stage
                    .outs
                    .iter()
                    .map(|out| port("out", &out.role, &out.path)),
            )
            .collect(),
        inputs: PathHashes::from(inputs),
    })
}

/// The current content of each declared output (`None` when missing).
pub fn output_contents(
    pipeline: &Pipeline,
    stage: &Stage,
    stats: &StatCache,
) -> Result<Vec<(String, Option<Content>)>> {
    stage
        .outs
        .iter()
        .map(|out| {
            let path = pipeline.abs(&out.path);
            // Missing when not there at all (a dangling link is there, and an error); looked
            // at only when hashing fails, saving a `stat` per output.
            match hash_path(&path, stats) {
                Ok(content) => Ok((out.path.clone(), Some(content))),
                Err(_) if std::fs::symlink_metadata(&path).is_err() => Ok((out.path.clone(), None)),
                Err(error) => Err(error).with_context(|| format!("output `{}`", out.path)),
            }
        })
        .collect()
}

/// Compares the stage now with its recorded run.
pub fn evaluate(
    pipeline: &Pipeline,
    stage: &Stage,
    locked: Option<&LockedStage>,
    stats: &StatCache,
) -> Result<Evaluation> {
    let key_inputs = key_inputs(pipeline, stage, stats)?;
    let key = key_inputs.key();
    let reasons = match locked {
        None => vec![DirtyReason::NeverRun],
        Some(locked) => {
            let mut reasons = DirtyReason::diff(&locked.key_inputs, &key_inputs);
            if reasons.is_empty() && locked.key != key {
                reasons.push(DirtyReason::KeyFormatChanged);
            }
            reasons.extend(output_reasons(pipeline, stage, locked, stats)?);
            reasons
        }
    };
    Ok(Evaluation {
        key_inputs,
        key,
        reasons,
    })
}

/// Where a stale stage's outputs come from.
pub enum Decision {
    /// Key and outputs match the lock file: nothing to do.
    UpToDate,
    /// Up to date although stages above it ran in this run (named): they reproduced exactly
    /// what it reads (early cutoff).
    CutOff { reran: Vec<String> },
    /// Its key ran before and the local cache holds that run: restore it.
    Restore(RunRecord),
    /// Its key ran before on a machine that shared it: the remote cache holds the run.
    RestoreRemote,
    /// Run it.
    Run,
}

/// A stage judged against its recorded run: its key now, why it is stale, and what to do.
pub struct Plan {
    pub evaluation: Evaluation,
    pub decision: Decision,
}

/// What [`decide`] consults besides the stage itself.
pub struct Judge<'a> {
    pub pipeline: &'a Pipeline,
    pub store: &'a Store,
    pub stats: &'a StatCache,
    /// `--force`: run even when up to date, restore nothing.
    pub force: bool,
    /// Whether the remote cache holds a run of a key (`None`: no remote in use).
    pub remote_has: Option<&'a (dyn Fn(&StageKey) -> bool + Sync)>,
}

/// The one decision per stage. `reran`: the stages above it that executed in this run (empty
/// outside a run).
pub fn decide(
    judge: &Judge,
    stage: &Stage,
    locked: Option<&LockedStage>,
    reran: &[&str],
) -> Result<Plan> {
    let mut evaluation = evaluate(judge.pipeline, stage, locked, judge.stats)?;
    let decision = if judge.force {
        evaluation.reasons.insert(0, DirtyReason::Forced);
        Decision::Run
    } else if evaluation.reasons.is_empty() {
        if reran.is_empty() {
            Decision::UpToDate
        } else {
            Decision::CutOff {
                reran: reran.iter().map(|name| name.to_string()).collect(),
            }
        }
    } else if let Some(record) = judge.store.record(&evaluation.key) {
        Decision::Restore(record)
    } else if judge
        .remote_has
        .is_some_and(|remote_has| remote_has(&evaluation.key))
    {
        Decision::RestoreRemote
    } else {
        Decision::Run
    };
    Ok(Plan {
        evaluation,
        decision,
    })
}

/// [`decide`] for a stage that turns out up to date (or cut off), made from the stat cache
/// alone: no file's bytes are read, no run record or remote is consulted. `None` whenever
/// that is not the answer or it cannot be told that way (`--force`, never run, a file the stat
/// cache does not know, a changed key or output, any error): [`decide`] then judges the stage
/// in full. The run's scheduler settles up-to-date stages with this on its own thread and
/// hands a worker only the stages that take work.
pub fn decide_from_stat_cache(
    judge: &Judge,
    stage: &Stage,
    locked: Option<&LockedStage>,
    reran: &[&str],
) -> Option<Decision> {
    let locked = locked.filter(|_| !judge.force)?;
    let content = |path: &str| cached_content(&judge.pipeline.abs(path), judge.stats);
    let key_inputs = key_inputs_with(stage, |path| {
        content(path)
            .map(|content| content.hash().clone())
            .ok_or(())
    })
    .ok()?;
    // Equal key inputs: `evaluate` finds no difference; the key is compared as it does.
    if key_inputs != locked.key_inputs || key_inputs.key() != locked.key {
        return None;
    }
    for out in &stage.outs {
        let content = content(&out.path)?;
        if locked.outputs.get(&out.path) != Some(content.hash()) {
            return None;
        }
    }
    Some(if reran.is_empty() {
        Decision::UpToDate
    } else {
        Decision::CutOff {
            reran: reran.iter().map(|name| name.to_string()).collect(),
        }
    })
}

/// Outputs missing or modified since the recorded run.
fn output_reasons(
    pipeline: &Pipeline,
    stage: &Stage,
    locked: &LockedStage,
    stats: &StatCache,
) -> Result<Vec<DirtyReason>> {
    let mut reasons = Vec::new();
    for (path, content) in output_contents(pipeline, stage, stats)? {
        match (content, locked.outputs.get(&path)) {
            (None, _) => reasons.push(DirtyReason::OutputMissing { path }),
            (Some(_), None) => reasons.push(DirtyReason::OutputNotRecorded { path }),
            (Some(content), Some(recorded)) if content.hash() != recorded => {
                reasons.push(DirtyReason::OutputModified {
                    path,
                    recorded: recorded.clone(),
                    actual: content.hash().clone(),
                })
            }
            _ => {}
        }
    }
    Ok(reasons)
}

/// One stage's state for `status` and `explain`.
#[derive(Debug, serde::Serialize)]
pub struct StageStatus {
    pub stage: String,
    pub fresh: bool,
    /// Why it is stale (typed; rendered one per line).
    pub reasons: Vec<DirtyReason>,
    /// Its current key ran before: `run` would restore it instead of running it.
    pub restorable: bool,
    /// The remote cache holds its current key (and the local one does not).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub restorable_from_remote: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<StageKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The state of every selected stage, in run order. A stage below a stale one is stale too
/// ("upstream stale"): whether it really reruns depends on what the upstream rerun produces.
pub fn assess(
    judge: &Judge,
    dag: &crate::engine::dag::Dag,
    selected: &std::collections::BTreeSet<usize>,
    lock: &crate::engine::store::LockFile,
) -> Vec<StageStatus> {
    let pipeline = judge.pipeline;
    let order = dag.order_of(selected);
    // Per stage (pipeline index), once assessed.
    let mut states: Vec<Option<StageStatus>> = Vec::new();
    states.resize_with(pipeline.stages.len(), || None);
    for &index in &order {
        let stage = &pipeline.stages[index];
        let stale = |up: &usize| states[*up].as_ref().is_some_and(|s| !s.fresh);
        // Collected (in pipeline order) only when there is something to collect.
        let mut reasons: Vec<DirtyReason> = match dag.upstream_unordered(index).any(|up| stale(&up))
        {
            false => Vec::new(),
            true => dag
                .upstream(index)
                .into_iter()
                .filter(stale)
                .map(|up| DirtyReason::UpstreamStale {
                    stage: pipeline.stages[up].name.clone(),
                })
                .collect(),
        };
        let upstream_stale = !reasons.is_empty();
        let mut status = StageStatus {
            stage: stage.name.clone(),
            fresh: false,
            reasons: Vec::new(),
            restorable: false,
            restorable_from_remote: false,
            key: None,
            error: None,
        };
        match decide(judge, stage, lock.stage(index, &stage.name), &[]) {
            Ok(plan) => {
                reasons.extend(plan.evaluation.reasons);
                // Below a stale stage, what its inputs will be is not known yet.
                if !upstream_stale {
                    status.restorable = matches!(plan.decision, Decision::Restore(_));
                    status.restorable_from_remote =
                        matches!(plan.decision, Decision::RestoreRemote);
                }
                status.key = Some(plan.evaluation.key);
            }
            // Inputs an upstream stage has yet to write are expected to be missing.
            Err(_) if upstream_stale => {}
            Err(error) => status.error = Some(format!("{error:#}")),
        }
        status.fresh = reasons.is_empty() && status.error.is_none();
        status.reasons = reasons;
        states[index] = Some(status);
    }
    order
        .into_iter()
        .filter_map(|index| states[index].take())
        .collect()
}
