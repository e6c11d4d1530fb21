//! The run's use of the remote cache: read through on a local miss, write through after a
//! stage ran. A remote never fails a run: a missing or corrupted object makes the stage run,
//! and a remote that is down or refuses the credentials is reported once and left alone for
//! the rest of the run.

use super::Engine;
use crate::engine::fingerprint::StageKey;
use crate::engine::remote::{ErrorKind, Quiet, Remote, RemoteError, RunToPush};
use crate::engine::store::RunRecord;

/// Requests in flight at once while one stage moves its objects.
const TRANSFERS: usize = 8;

impl Engine<'_> {
    fn usable_remote(&self) -> Option<&Remote> {
        self.options
            .remote
            .as_ref()
            .filter(|remote| !remote.given_up())
    }

    /// Downloads the run record of `key` and its objects into the local cache, if the remote
    /// has them intact.
    pub(super) fn fetch_from_remote(&self, index: usize, key: &StageKey) -> Option<RunRecord> {
        let remote = self.usable_remote()?;
        remote
            .fetch_run(self.store, key, TRANSFERS)
            .unwrap_or_else(|error| {
                self.remote_failed(remote, index, &error, "running it");
                None
            })
    }

    /// Uploads a stage's objects and then its run record (unless the remote is read-only).
    pub(super) fn publish_to_remote(&self, index: usize, key: &StageKey, record: &RunRecord) {
        let Some(remote) = self.usable_remote().filter(|remote| !remote.read_only()) else {
            return;
        };
        let run = RunToPush {
            key: key.clone(),
            record: record.clone(),
        };
        if let Err(error) = remote.push_runs(self.store, &[run], TRANSFERS, &Quiet) {
            self.remote_failed(remote, index, &error, "nothing uploaded; the run goes on");
        }
    }

    /// Whether the remote holds a record for `key` (for `--dry-run`).
    pub(super) fn remote_has(&self, key: &StageKey) -> bool {
        let Some(remote) = self.usable_remote() else {
            return false;
        };
        remote.has_run(key).unwrap_or_else(|error| {
            if remote.give_up() {
                self.ui
                    .say(&format!("warning: {error}; going on without the remote"));
            }
            false
        })
    }

    fn remote_failed(&self, remote: &Remote, index: usize, error: &RemoteError, then: &str) {
        let stage = &self.pipeline.stages[index].name;
        match error.kind {
            ErrorKind::Missing | ErrorKind::Corrupt => {
                self.ui.say(&format!("[{stage}] {error}; {then}"))
            }
            ErrorKind::Denied | ErrorKind::Failed => {
                if remote.give_up() {
                    self.ui.say(&format!(
                        "warning: [{stage}] {error}; {then}, without the remote from here on"
                    ));
                }
            }
        }
    }
}
