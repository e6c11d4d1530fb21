//! Replacing a stage's outputs so that the previous ones survive anything short of success.
//!
//! A stage that runs (or is restored from the cache) must not destroy the outputs of its last
//! good run until its new outputs are complete *and recorded*. A [`Swap`] does that for all of a
//! stage's outputs at once:
//!
//! 1. **journal**: `cache/swaps/<stage>-….json` is written and synced, naming every output, the
//!    backup path beside it (`.warez-backup-<name>` in the same folder: a rename, never a copy,
//!    whatever file system the cache is on), whether there was a previous output to back up,
//!    and the stage's lock file entry (key and output hashes) before the swap;
//! 2. **aside**: each previous output is renamed to its backup;
//! 3. **in**: each new output is moved into place — a built-in kind's or a restore's from its
//!    staging folder, right away; a `cmd` stage writes its outputs in place while it runs;
//! 4. the caller hashes and caches the new outputs and writes the run record, then **commits**:
//!    writes the lock file with the stage's new entry — the commit point (the engine may write
//!    the entries of several stages at once, then finish their swaps);
//! 5. **finish** ([`Swap::finish`]): the backups are removed, then the journal.
//!
//! On failure (or an interrupt) before step 4, [`Swap::roll_back`] removes the new outputs and
//! renames the backups back, then removes the journal: the previous outputs are there with the
//! hashes the lock file records for them.
//!
//! After `kill -9`, the journal is found by whoever takes the run lock next ([`recover`]),
//! before anything decides what is stale. It compares the stage's entry in the lock file with
//! the one the journal saw before the swap: changed → the swap committed, so it finishes step 5
//! (rolling forward); the same, missing or unreadable → it rolls back. Every step is idempotent,
//! so a crash during recovery is recovered the same way. A journal that cannot be parsed was
//! cut while being written, before anything was moved, and is simply removed.
//!
//! Roll back, per output: with a previous output whose backup exists, remove whatever is in
//! place and rename the backup back; with a previous output whose backup does not exist, it was
//! not moved yet (leave it); with no previous output, remove whatever is in place.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{remove_path, LockFile, LockedStage};
use crate::engine::files;
use crate::engine::fingerprint::{PathHashes, StageKey};

/// Name prefix of the backup of a previous output, beside it.
const BACKUP_PREFIX: &str = ".warez-backup-";

/// Folder of the cache holding the journals of swaps in progress.
const JOURNAL_DIR: &str = "swaps";

/// What a swap in progress has to undo or finish, on disk.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    stage: String,
    /// The lock file the stage's entry is written to.
    lock_file: PathBuf,
    /// The stage's lock file entry before the swap (`None`: it had none).
    previous: Option<Recorded>,
    outputs: Vec<SwappedOutput>,
}

/// The part of a lock file entry that says which outputs it records.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Recorded {
    key: StageKey,
    outputs: PathHashes,
}

impl Recorded {
    fn of(entry: &LockedStage) -> Recorded {
        Recorded {
            key: entry.key.clone(),
            outputs: entry.outputs.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct SwappedOutput {
    path: PathBuf,
    backup: PathBuf,
    /// There was something at `path` before the swap, to be kept in `backup`.
    had_previous: bool,
}

/// A swap in progress: the previous outputs are in their backups until [`Swap::finish`] or
/// [`Swap::roll_back`]. Dropping it without either leaves it for [`recover`].
#[derive(Debug)]
pub struct Swap {
    journal_file: PathBuf,
    journal: Journal,
}

/// One output to replace: where it goes and, for outputs prepared in a staging folder, where
/// the new one is now (`None`: a command writes it in place after [`Swap::begin`]).
pub struct Replacement {
    pub dest: PathBuf,
    pub staged: Option<PathBuf>,
}

impl Swap {
    /// Steps 1–3: journal, previous outputs aside, staged outputs in. On an error, whatever was
    /// done is rolled back.
    pub fn begin(
        cache: &Path,
        stage: &str,
        lock_file: &Path,
        previous: Option<&LockedStage>,
        replacements: &[Replacement],
    ) -> io::Result<Swap> {
        let outputs = replacements
            .iter()
            .map(|replacement| {
                let dest = &replacement.dest;
                let name = dest.file_name().ok_or_else(|| {
                    io::Error::other(format!("{}: not a file name", dest.display()))
                })?;
                let mut backup_name = std::ffi::OsString::from(BACKUP_PREFIX);
                backup_name.push(name);
                Ok(SwappedOutput {
                    path: dest.clone(),
                    backup: dest.with_file_name(backup_name),
                    had_previous: fs::symlink_metadata(dest).is_ok(),
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        let journal = Journal {
            stage: stage.to_string(),
            // Absolute: the next command may run from another folder.
            lock_file: std::path::absolute(lock_file)?,
            previous: previous.map(Recorded::of),
            outputs,
        };
        let swap = Swap {
            journal_file: write_journal(cache, &journal)?,
            journal,
        };
        match swap.move_aside_and_in(replacements) {
            Ok(()) => Ok(swap),
            Err(error) => {
                let _ = swap.roll_back();
                Err(error)
            }
        }
    }

    fn move_aside_and_in(&self, replacements: &[Replacement]) -> io::Result<()> {
        for output in &self.journal.outputs {
            if output.had_previous {
                // Only a leftover of this very swap could be there (recovery ran before).
                remove_path(&output.backup)?;
                fs::rename(&output.path, &output.backup)
                    .map_err(|error| named(&output.path, error))?;
            }
        }
        for replacement in replacements {
            if let Some(staged) = &replacement.staged {
                move_into_place(staged, &replacement.dest)
                    .map_err(|error| named(&replacement.dest, error))?;
            }
        }
        Ok(())
    }

    /// Step 5, once the caller has made the stage's lock file entry durable (step 4, the
    /// commit point): the previous outputs are dropped, then the journal.
    pub fn finish(self) -> io::Result<()> {
        self.journal.finish()?;
        remove_journal(&self.journal_file)
    }

    /// Puts the previous outputs back (removing the new or partial ones).
    pub fn roll_back(self) -> io::Result<()> {
        self.journal.roll_back()?;
        remove_journal(&self.journal_file)
    }
}

impl Journal {
    fn roll_back(&self) -> io::Result<()> {
        for output in &self.outputs {
            let backed_up = fs::symlink_metadata(&output.backup).is_ok();
            if output.had_previous && !backed_up {
                continue; // never moved aside
            }
            remove_path(&output.path).map_err(|error| named(&output.path, error))?;
            if output.had_previous {
                fs::rename(&output.backup, &output.path)
                    .map_err(|error| named(&output.path, error))?;
            }
        }
        Ok(())
    }

    fn finish(&self) -> io::Result<()> {
        for output in &self.outputs {
            remove_path(&output.backup).map_err(|error| named(&output.backup, error))?;
        }
        Ok(())
    }

    /// Whether the lock file took the stage's new entry (the swap's commit point).
    fn committed(&self) -> bool {
        let Ok(lock) = LockFile::read_any(&self.lock_file) else {
            return false;
        };
        match lock.stages.get(&self.stage) {
            None => false,
            Some(entry) => self.previous.as_ref() != Some(&Recorded::of(entry)),
        }
    }
}

/// Finishes or rolls back every swap a killed run left (see the module doc). Call it holding
/// the run lock, before anything looks at outputs. Returns one line per swap for the user.
pub fn recover(cache: &Path) -> io::Result<Vec<String>> {
    let mut said = Vec::new();
    for file in super::objects::read_dir_or_empty(&cache.join(JOURNAL_DIR))? {
        let journal: Option<Journal> = fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        if let Some(journal) = journal {
            if journal.committed() {
                journal.finish()?;
            } else {
                journal.roll_back()?;
                said.push(format!(
                    "[{}] a previous run was cut short while replacing its outputs: put the \
                     previous ones back",
                    journal.stage
                ));
            }
        }
        remove_journal(&file)?;
    }
    Ok(said)
}

fn write_journal(cache: &Path, journal: &Journal) -> io::Result<PathBuf> {
    let dir = cache.join(JOURNAL_DIR);
    fs::create_dir_all(&dir)?;
    let mut file = tempfile::Builder::new()
        .prefix(&format!("{}-", journal.stage))
        .suffix(".json")
        .tempfile_in(&dir)?;
    file.write_all(&serde_json::to_vec_pretty(journal).map_err(io::Error::other)?)?;
    file.as_file().sync_data()?;
    let (_, path) = file.keep().map_err(|error| error.error)?;
    Ok(path)
}

fn remove_journal(file: &Path) -> io::Result<()> {
    match fs::remove_file(file) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(named(file, error)),
        _ => Ok(()),
    }
}

fn named(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

/// Renames `from` to `to` (which must not exist); across file systems (a staging folder in a
/// cache elsewhere) copies, then removes `from`.
fn move_into_place(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    remove_path(to)?;
    match fs::rename(from, to) {
        Err(error) if error.raw_os_error() == Some(libc::EXDEV) => {
            files::copy_recursive(from, to)?;
            remove_path(from)
        }
        other => other,
    }
}
