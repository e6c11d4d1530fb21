//! Why a stage is stale: one typed reason per difference, each with its old and new value.

use std::fmt;

use serde::Serialize;

use super::{ContentHash, KeyInputs};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum DirtyReason {
    /// No run of this stage is recorded in the lock file.
    NeverRun,
    /// `--force`.
    Forced,
    ActionChanged {
        old: String,
        new: String,
    },
    ParamChanged {
        name: String,
        old: Option<serde_json::Value>,
        new: Option<serde_json::Value>,
    },
    PortsChanged {
        old: Vec<String>,
        new: Vec<String>,
    },
    /// A recorded hash that is no hash (a hand edit) makes the lock file broken instead
    /// (`LockProblem::NotAHash`), here and for `OutputModified`.
    InputChanged {
        path: String,
        old: ContentHash,
        new: ContentHash,
    },
    InputAdded {
        path: String,
    },
    InputRemoved {
        path: String,
    },
    OutputMissing {
        path: String,
    },
    /// The output is there but its lock file entry does not name it (an entry edited by hand
    /// or from another version of the pipeline).
    OutputNotRecorded {
        path: String,
    },
    OutputModified {
        path: String,
        recorded: ContentHash,
        actual: ContentHash,
    },
    /// Same inputs, another key: the key's encoding changed (a newer warez-pipe). A key that is
    /// no key (a hand edit) makes the lock file broken instead (`LockProblem::NotAHash`).
    KeyFormatChanged,
    /// A stage this one reads from is itself stale (it may still be cut off early).
    UpstreamStale {
        stage: String,
    },
}

impl DirtyReason {
    /// Every difference between the recorded key inputs and the current ones.
    pub fn diff(old: &KeyInputs, new: &KeyInputs) -> Vec<DirtyReason> {
        let mut reasons = Vec::new();
        let names = old
            .params
            .keys()
            .chain(new.params.keys())
            .collect::<std::collections::BTreeSet<_>>();
        for name in names {
            let (was, now) = (old.params.get(name), new.params.get(name));
            if was != now {
                reasons.push(DirtyReason::ParamChanged {
                    name: name.clone(),
                    old: was.cloned(),
                    new: now.cloned(),
                });
            }
        }
        if old.action != new.action {
            reasons.push(DirtyReason::ActionChanged {
                old: old.action.clone(),
                new: new.action.clone(),
            });
        }
        if old.ports != new.ports {
            reasons.push(DirtyReason::PortsChanged {
                old: old.ports.clone(),
                new: new.ports.clone(),
            });
        }
        // Equal inputs, compared in one pass over both sorted lists, have no difference to
        // name; the lookups below cost a binary search each (a stage reading 100,000 files).
        if old.inputs == new.inputs {
            return reasons;
        }
        for (path, hash) in &new.inputs {
            match old.inputs.get(path) {
                None => reasons.push(DirtyReason::InputAdded { path: path.clone() }),
                Some(recorded) if recorded != hash => reasons.push(DirtyReason::InputChanged {
                    path: path.clone(),
                    old: recorded.clone(),
                    new: hash.clone(),
                }),
                Some(_) => {}
            }
        }
        for path in old.inputs.keys() {
            if !new.inputs.contains_key(path) {
                reasons.push(DirtyReason::InputRemoved { path: path.clone() });
            }
        }
        reasons
    }
}

impl fmt::Display for DirtyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_unset = |value: &Option<serde_json::Value>| {
            value
                .as_ref()
                .map_or_else(|| "(unset)".to_string(), ToString::to_string)
        };
        match self {
            DirtyReason::NeverRun => write!(f, "never run"),
            DirtyReason::Forced => write!(f, "forced (--force)"),
            DirtyReason::ActionChanged { old, new } => {
                write!(f, "{} changed: `{old}` → `{new}`", action_word(new))
            }
            DirtyReason::ParamChanged { name, old, new } => {
                write!(
                    f,
                    "param `{name}` changed: {} → {}",
                    or_unset(old),
                    or_unset(new)
                )
            }
            DirtyReason::PortsChanged { old, new } => {
                let removed: Vec<&String> = old.iter().filter(|p| !new.contains(p)).collect();
                let added: Vec<&String> = new.iter().filter(|p| !old.contains(p)).collect();
                write!(f, "deps/outs changed: {removed:?} → {added:?}")
            }
            DirtyReason::InputChanged { path, old, new } => {
                write!(
                    f,
                    "input `{path}` changed: {} → {}",
                    old.short(),
                    new.short()
                )
            }
            DirtyReason::InputAdded { path } => write!(f, "input `{path}` added"),
            DirtyReason::InputRemoved { path } => write!(f, "input `{path}` removed"),
            DirtyReason::OutputMissing { path } => write!(f, "output `{path}` is missing"),
            DirtyReason::OutputNotRecorded { path } => {
                write!(f, "output `{path}` is not recorded in the lock file")
            }
            DirtyReason::OutputModified {
                path,
                recorded,
                actual,
            } => write!(
                f,
                "output `{path}` was modified: recorded {}, found {}",
                recorded.short(),
                actual.short()
            ),
            DirtyReason::KeyFormatChanged => {
                write!(
                    f,
                    "the stage key's format changed (another warez-pipe version)"
                )
            }
            DirtyReason::UpstreamStale { stage } => write!(f, "upstream stage `{stage}` is stale"),
        }
    }
}

fn action_word(action: &str) -> &'static str {
    if action.starts_with("cmd ") {
        "command"
    } else {
        "kind"
    }
}
