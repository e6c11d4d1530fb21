//! Is a stage up to date? Its key against the lock file, and its outputs against the hashes
//! recorded there. Shared by `run`, `status` and `explain`.

use anyhow::{Context, Result};

use crate::fingerprint::{
    canonical_param, hash_path, Content, DirtyReason, KeyInputs, StageKey, StatCache,
};
use crate::spec::{Pipeline, Stage};
use crate::store::LockedStage;

/// A stage's key now, and why (if at all) it differs from the recorded run.
pub struct Evaluation {
    pub key_inputs: KeyInputs,
    pub key: StageKey,
    /// Empty when the stage is up to date.
    pub reasons: Vec<DirtyReason>,
}

/// What a stage's key is computed from, hashing its inputs as they are on disk now.
pub fn key_inputs(pipeline: &Pipeline, stage: &Stage, stats: &StatCache) -> Result<KeyInputs> {
    let port = |kind: &str, role: &Option<String>, path: &str| {
        format!("{kind} {} {path}", role.as_deref().unwrap_or("-"))
    };
    let mut inputs = std::collections::BTreeMap::new();
    for dep in &stage.deps {
        let content = hash_path(&pipeline.abs(&dep.path), stats)
            .with_context(|| format!("stage `{}`: input `{}`", stage.name, dep.path))?;
        inputs.insert(dep.path.clone(), content.hash().clone());
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
        inputs,
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
            if std::fs::symlink_metadata(&path).is_err() {
                return Ok((out.path.clone(), None));
            }
            let content = hash_path(&path, stats)
                .with_context(|| format!("stage `{}`: output `{}`", stage.name, out.path))?;
            Ok((out.path.clone(), Some(content)))
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
            (Some(_), None) => reasons.push(DirtyReason::OutputMissing { path }),
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
    /// The remote cache holds its current key (filled in by `status --remote`).
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
    pipeline: &Pipeline,
    dag: &crate::dag::Dag,
    selected: &std::collections::BTreeSet<usize>,
    lock: &crate::store::LockFile,
    store: &crate::store::Store,
    stats: &StatCache,
) -> Vec<StageStatus> {
    let mut states: std::collections::BTreeMap<usize, StageStatus> = Default::default();
    for index in dag.order_of(selected) {
        let stage = &pipeline.stages[index];
        let mut reasons: Vec<DirtyReason> = dag
            .upstream(index)
            .into_iter()
            .filter(|up| states.get(up).is_some_and(|s| !s.fresh))
            .map(|up| DirtyReason::UpstreamStale {
                stage: pipeline.stages[up].name.clone(),
            })
            .collect();
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
        match evaluate(pipeline, stage, lock.stages.get(&stage.name), stats) {
            Ok(evaluation) => {
                reasons.extend(evaluation.reasons);
                status.restorable = !reasons.is_empty()
                    && !upstream_stale
                    && store.record(&evaluation.key).is_some();
                status.key = Some(evaluation.key);
            }
            // Inputs an upstream stage has yet to write are expected to be missing.
            Err(_) if upstream_stale => {}
            Err(error) => status.error = Some(format!("{error:#}")),
        }
        status.fresh = reasons.is_empty() && status.error.is_none();
        status.reasons = reasons;
        states.insert(index, status);
    }
    let order = dag.order_of(selected);
    order
        .into_iter()
        .filter_map(|index| states.remove(&index))
        .collect()
}
