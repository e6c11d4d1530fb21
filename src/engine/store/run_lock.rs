//! One run per cache at a time: an exclusive lock on `<cache>/run.lock` (std's `File::lock`, a
//! `flock` on Unix).
//!
//! The kernel drops a flock when its process dies, so a lock left by a run killed with
//! `kill -9` is simply taken over; the pid written into the file lets a waiting run say whom
//! it waits for, and the next run say that it takes over from a killed one.
//!
//! Whoever takes the lock first finishes or rolls back the output swaps a killed holder left
//! (see `swap.rs`), so every command that looks at outputs under the lock sees whole ones.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::Path;

use anyhow::Context;

/// Held for the whole run; released (and the pid cleared) on drop.
pub struct RunLock {
    file: File,
}

impl RunLock {
    /// Takes the lock, waiting for a running holder when `wait`, else failing with its pid.
    /// `say` receives the one-line notices (waiting, taking over).
    pub fn acquire(cache: &Path, wait: bool, say: &dyn Fn(&str)) -> anyhow::Result<RunLock> {
        let path = cache.join("run.lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        let locking = || format!("locking {}", path.display());
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_pid(&mut file);
                if !wait {
                    anyhow::bail!(
                        "another run (pid {holder}) holds {}; wait for it or stop it",
                        path.display()
                    );
                }
                say(&format!(
                    "waiting for another run (pid {holder}) that holds {}",
                    path.display()
                ));
                file.lock().with_context(locking)?;
            }
            Err(TryLockError::Error(error)) => return Err(error).with_context(locking),
        }
        let previous = read_pid(&mut file);
        if !previous.is_empty() && previous != std::process::id().to_string() {
            say(&format!(
                "a previous run (pid {previous}) ended without releasing the cache; taking over"
            ));
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        file.sync_data()?;
        let lock = RunLock { file };
        let recovered = super::swap::recover(cache).map_err(|error| {
            anyhow::anyhow!("finishing the output swaps of a killed run: {error}")
        })?;
        for line in recovered {
            say(&line);
        }
        Ok(lock)
    }
}

fn read_pid(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|_| file.read_to_string(&mut text));
    text.trim().to_string()
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _: io::Result<()> = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}
