//! `pull`: bring the workspace to the outputs the lock file records, from the local cache or
//! the remote, running nothing (no stage code is touched, so it needs none of the stages'
//! tools — e.g. no ONNX Runtime).

use crate::engine::fingerprint::{hash_path, StatCache};
use crate::engine::spec::Pipeline;
use crate::engine::store::{LockFile, RunRecord, Store};

use crate::engine::remote::{ErrorKind, Remote, RemoteError};

/// What a pull did.
#[derive(Debug, Default)]
pub struct PullReport {
    /// Outputs put in place.
    pub restored: Vec<String>,
    /// Outputs that already had their recorded bytes.
    pub unchanged: usize,
    /// What could not be brought back, one line each.
    pub missing: Vec<String>,
}

/// Restores every output of every stage in `lock`. A remote that is down or refuses the
/// credentials is an error (nothing else could be pulled from it); what is missing or
/// corrupted is listed in the report.
pub fn pull(
    pipeline: &Pipeline,
    lock: &LockFile,
    store: &Store,
    remote: Option<&Remote>,
    stats: &StatCache,
    jobs: usize,
) -> Result<PullReport, RemoteError> {
    let mut report = PullReport::default();
    for (stage, locked) in &lock.stages {
        let record = match local_or_remote(store, remote, &locked.key, jobs) {
            Ok(Some(record)) => record,
            Ok(None) => {
                let local = match store.record_file(&locked.key) {
                    Some(file) => format!("{} does not read as a run record", file.display()),
                    None => "not in the local cache".to_string(),
                };
                report.missing.push(format!(
                    "stage `{stage}`: its run record ({}): {local}{}",
                    locked.key.as_hash().short(),
                    if remote.is_some() {
                        ", nor in the remote"
                    } else {
                        " (no remote given)"
                    }
                ));
                continue;
            }
            Err(error) if matches!(error.kind, ErrorKind::Missing | ErrorKind::Corrupt) => {
                report.missing.push(format!("stage `{stage}`: {error}"));
                continue;
            }
            Err(error) => return Err(error),
        };
        for (path, hash) in &locked.outputs {
            let Some(output) = record
                .outputs
                .iter()
                .find(|out| &out.path == path && &out.hash == hash)
            else {
                report.missing.push(format!(
                    "stage `{stage}`: `{path}`: the run record of its key holds other bytes than the lock file"
                ));
                continue;
            };
            let dest = pipeline.abs(path);
            let current = std::fs::symlink_metadata(&dest)
                .ok()
                .and_then(|_| hash_path(&dest, stats).ok());
            if current.as_ref().map(|content| content.hash()) == Some(hash) {
                report.unchanged += 1;
                continue;
            }
            match store.restore_output(output, &dest) {
                Ok(()) => report.restored.push(path.clone()),
                Err(error) => report
                    .missing
                    .push(format!("stage `{stage}`: `{path}`: {error}")),
            }
        }
    }
    Ok(report)
}

/// The record of `key` with every object in the local cache, downloading what is missing.
fn local_or_remote(
    store: &Store,
    remote: Option<&Remote>,
    key: &crate::engine::fingerprint::StageKey,
    jobs: usize,
) -> Result<Option<RunRecord>, RemoteError> {
    match (store.record(key), remote) {
        (Some(record), Some(remote)) => {
            if !record.outputs.iter().all(|out| store.has_output(out)) {
                remote.fetch_outputs(store, &record.outputs, jobs)?;
            }
            Ok(Some(record))
        }
        (Some(record), None) => Ok(Some(record)),
        (None, Some(remote)) => remote.fetch_run(store, key, jobs),
        (None, None) => Ok(None),
    }
}
