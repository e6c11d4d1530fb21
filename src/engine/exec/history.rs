//! Each stage's last result, kept across runs for the commands that show a pipeline's state
//! afterwards (`warez-pipe report`).
//!
//! The run summary ([`RunReport`]) is printed and gone; the lock file says what the outputs
//! are, not what a run did. So at the end of every `run` (not `--dry-run`) each stage the run
//! decided on gets one entry in `<cache>/history.json`:
//!
//! ```text
//! {"pipelines": {"<pipeline name>": {"<stage>": {
//!     "outcome": "ran", "seconds": 12.5, "at": 1767225600,
//!     "last_work": {"outcome": "ran", "seconds": 12.5, "at": 1767225600}}}}}
//! ```
//!
//! `outcome`, `seconds` and `at` (unix seconds of the end of the run) are the latest run's;
//! `last_work` is the latest run in which the stage did work (ran, was restored, or failed),
//! kept while later runs find it up to date, so "up to date, last ran 40 s on …" can be told.
//! Stages a run did not select keep their entries; entries are keyed by pipeline name, so one
//! cache can serve several pipelines. A stage found up to date (or cut off, or skipped) again
//! keeps the entry of the run that first found it so: `at` is when it was first found in that
//! state, and a run that changes nothing (a no-op `run`) does not rewrite the file, which at
//! thousands of stages is megabytes. The file is only informative: it is written atomically,
//! and a failure to read or write it is a warning, never a failed run.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::summary::{Outcome, RunReport};
use crate::engine::files::write_atomic;
use crate::engine::store::{now_unix, Store};

/// Every pipeline's stages' last results.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct History {
    pub pipelines: BTreeMap<String, BTreeMap<String, StageHistory>>,
}

/// One stage's last result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageHistory {
    pub outcome: Outcome,
    pub seconds: f64,
    /// Unix seconds at the end of the run.
    pub at: u64,
    /// The latest run in which the stage did work (none yet: it was always up to date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_work: Option<Work>,
}

/// A run in which a stage did work.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Work {
    pub outcome: Outcome,
    pub seconds: f64,
    pub at: u64,
}

impl History {
    /// The history in `store`: empty when there is none yet; also empty when the file does not
    /// read, with a warning that says so (the history is only informative, and the next run
    /// replaces the file).
    pub fn load(store: &Store) -> (History, Option<String>) {
        let path = store.history_file();
        let read = match std::fs::read(&path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Default::default()
            }
            read => read.map_err(|error| error.to_string()),
        };
        match read.and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string())) {
            Ok(history) => (history, None),
            Err(error) => (
                History::default(),
                Some(format!(
                    "warning: {} does not read ({error}): no past results shown (the next run \
                     writes it anew)",
                    path.display()
                )),
            ),
        }
    }

    /// The stages of the pipeline named `pipeline`.
    pub fn of(&self, pipeline: &str) -> Option<&BTreeMap<String, StageHistory>> {
        self.pipelines.get(pipeline)
    }

    /// Adds a finished run's results (at `at`); false when that changes nothing (see the
    /// module doc).
    fn add(&mut self, report: &RunReport, at: u64) -> bool {
        let stages = self.pipelines.entry(report.pipeline.clone()).or_default();
        let mut changed = false;
        for stage in &report.stages {
            let again = stages
                .get(&stage.stage)
                .is_some_and(|h| found_again(h.outcome, stage.outcome));
            if again {
                continue;
            }
            changed = true;
            let work = stage.outcome.worked().then_some(Work {
                outcome: stage.outcome,
                seconds: stage.seconds,
                at,
            });
            let last_work = work.or_else(|| stages.get(&stage.stage).and_then(|h| h.last_work));
            stages.insert(
                stage.stage.clone(),
                StageHistory {
                    outcome: stage.outcome,
                    seconds: stage.seconds,
                    at,
                    last_work,
                },
            );
        }
        changed
    }
}

/// Whether a stage recorded with `recorded` and now found `now` keeps its entry as it is (see
/// the module doc).
fn found_again(recorded: Outcome, now: Outcome) -> bool {
    recorded == now && !now.worked()
}

/// Only each stage's outcome, borrowed from the file's bytes: enough to tell that a run
/// changes nothing (the usual no-op run) without building the whole history.
#[derive(Deserialize)]
struct Outcomes<'a> {
    #[serde(borrow)]
    pipelines: HashMap<Cow<'a, str>, HashMap<Cow<'a, str>, StageOutcome>>,
}

#[derive(Deserialize)]
struct StageOutcome {
    outcome: Outcome,
}

impl Outcomes<'_> {
    /// Whether [`History::add`] would change nothing: see the module doc.
    fn unchanged_by(&self, report: &RunReport) -> bool {
        let Some(stages) = self.pipelines.get(report.pipeline.as_str()) else {
            return report.stages.is_empty();
        };
        report.stages.iter().all(|stage| {
            stages
                .get(stage.stage.as_str())
                .is_some_and(|h| found_again(h.outcome, stage.outcome))
        })
    }
}

/// Adds a finished (not dry) run to the cache's history; returns a warning when it could not.
pub fn record(store: &Store, report: &RunReport) -> Option<String> {
    let bytes = std::fs::read(store.history_file()).ok();
    let outcomes = bytes
        .as_deref()
        .and_then(|bytes| serde_json::from_slice::<Outcomes>(bytes).ok());
    if outcomes.is_some_and(|outcomes| outcomes.unchanged_by(report)) {
        return None;
    }
    let mut history: History = bytes
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    if !history.add(report, now_unix()) {
        return None;
    }
    let path = store.history_file();
    let written = serde_json::to_vec_pretty(&history)
        .map_err(std::io::Error::other)
        .and_then(|bytes| write_atomic(&path, &bytes));
    written.err().map(|error| {
        format!(
            "warning: could not record the stages' results in {}: {error}",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::exec::StageReport;

    fn report(outcomes: &[(&str, Outcome, f64)]) -> RunReport {
        RunReport {
            pipeline: "p".into(),
            ok: true,
            stages: outcomes
                .iter()
                .map(|(stage, outcome, seconds)| StageReport {
                    stage: stage.to_string(),
                    outcome: *outcome,
                    seconds: *seconds,
                    reasons: Vec::new(),
                    error: None,
                    output_tail: None,
                    unchanged_outputs: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn the_last_work_survives_up_to_date_runs_and_unselected_stages_stay() {
        let mut history = History::default();
        history.add(
            &report(&[("a", Outcome::Ran, 2.0), ("b", Outcome::Ran, 3.0)]),
            100,
        );
        history.add(&report(&[("a", Outcome::UpToDate, 0.01)]), 200);
        let stages = history.of("p").unwrap();
        let a = &stages["a"];
        assert_eq!((a.outcome, a.at), (Outcome::UpToDate, 200));
        assert_eq!(
            a.last_work,
            Some(Work {
                outcome: Outcome::Ran,
                seconds: 2.0,
                at: 100
            })
        );
        assert_eq!(stages["b"].at, 100, "not in the second run: kept");
    }

    #[test]
    fn a_run_that_finds_everything_as_before_changes_nothing() {
        let mut history = History::default();
        let ran = report(&[("a", Outcome::Ran, 2.0)]);
        let up_to_date = report(&[("a", Outcome::UpToDate, 0.01)]);
        assert!(history.add(&ran, 100));
        assert!(history.add(&up_to_date, 200));
        assert!(!history.add(&up_to_date, 300), "up to date again");
        assert_eq!(history.of("p").unwrap()["a"].at, 200);
        assert!(history.add(&ran, 400), "ran again");
        assert_eq!(history.of("p").unwrap()["a"].at, 400);
    }

    #[test]
    fn a_run_that_changes_nothing_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let up_to_date = report(&[
            ("a", Outcome::UpToDate, 0.01),
            ("b\"q", Outcome::CutOff, 0.0),
        ]);
        assert_eq!(record(&store, &up_to_date), None);
        let written = std::fs::read(store.history_file()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(record(&store, &up_to_date), None);
        assert_eq!(std::fs::read(store.history_file()).unwrap(), written);
        // Either stage found otherwise, or a stage that worked, is recorded.
        for changed in [
            report(&[
                ("a", Outcome::UpToDate, 0.01),
                ("b\"q", Outcome::UpToDate, 0.0),
            ]),
            report(&[("a", Outcome::Restored, 0.5)]),
            report(&[("c", Outcome::UpToDate, 0.0)]),
        ] {
            assert_eq!(record(&store, &changed), None);
            assert_ne!(std::fs::read(store.history_file()).unwrap(), written);
            std::fs::write(store.history_file(), &written).unwrap();
        }
        let history = History::load(&store).0;
        assert_eq!(history.of("p").unwrap()["b\"q"].outcome, Outcome::CutOff);
    }

    #[test]
    fn recorded_in_the_cache_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(History::load(&store).0.of("p").is_none());
        assert_eq!(
            record(&store, &report(&[("a", Outcome::Failed, 1.5)])),
            None
        );
        let history = History::load(&store).0;
        let a = &history.of("p").unwrap()["a"];
        assert_eq!(a.outcome, Outcome::Failed);
        assert_eq!(a.last_work.unwrap().seconds, 1.5);
        // A garbled file counts as none, and is replaced by the next run.
        std::fs::write(store.history_file(), "{not json").unwrap();
        let (garbled, warning) = History::load(&store);
        assert!(garbled.of("p").is_none());
        assert!(warning.unwrap().contains("history.json does not read"));
        assert_eq!(record(&store, &report(&[("a", Outcome::Ran, 1.0)])), None);
        assert_eq!(History::load(&store).0.of("p").unwrap().len(), 1);
    }
}
