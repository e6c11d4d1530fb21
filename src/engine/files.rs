//! Writing files so that a crash never leaves half of one: shared by the store (objects, run
//! records, the lock file), the fingerprint's stat cache and commands that write results; and
//! the one copy of a file or a folder with everything in it.
//!
//! A file is written into a [`TempFile`] beside its target and renamed over it. Every temp file
//! not yet renamed or removed is listed in this process, so that the handler of SIGINT and
//! SIGTERM (`exec/interrupt.rs`) removes them ([`remove_unfinished`]) before it exits: an
//! interrupted `gen-data` or `predict` leaves neither half a file nor a stray temp file.

use std::collections::BTreeSet;
use std::fs::{File, FileType, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The paths of the [`TempFile`]s of this process that are still temp files.
static UNFINISHED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn unfinished() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    UNFINISHED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes every temp file being written; for the interrupt handler, which exits right after
/// (the list stays locked: a temp file created meanwhile waits, then dies with the process).
pub fn remove_unfinished() {
    let paths = unfinished();
    for path in paths.iter() {
        // Gone already when it was renamed into place or dropped a moment ago: fine.
        let _ = std::fs::remove_file(path);
    }
    std::mem::forget(paths);
}

/// A temp file beside the file it will replace (see [`temp_file_for`]): written, then
/// [`persist`](Self::persist)ed; dropped before, it is removed. Until then an interrupt
/// removes it too ([`remove_unfinished`]).
pub struct TempFile {
    // Dropped in this order: the file is renamed or removed before it is unlisted.
    file: tempfile::NamedTempFile,
    _listed: Listed,
}

/// A path in [`UNFINISHED`] until dropped.
struct Listed(PathBuf);

impl Drop for Listed {
    fn drop(&mut self) {
        unfinished().remove(&self.0);
    }
}

impl TempFile {
    pub fn as_file(&self) -> &File {
        self.file.as_file()
    }

    /// Renames the temp file to `path` (replacing what is there).
    pub fn persist(self, path: &Path) -> io::Result<()> {
        let TempFile { file, _listed } = self;
        // The io error alone: `PersistError` shows it again as its own text.
        file.persist(path).map(drop).map_err(|error| error.error)
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Writes `bytes` to `path` through a temp file in the same folder and a rename: readers see
/// the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = temp_file_for(path)?;
    file.write_all(bytes)?;
    file.as_file().sync_data()?;
    file.persist(path)
}

/// A temp file in `path`'s folder (created if needed) that will replace `path` by a rename,
/// with the mode `path` has, or for a new file the mode any program creating it would give it
/// (0666 less the umask). `tempfile` alone creates 0600, which a rename would carry over.
/// What is at `path` must be a regular file or nothing (see [`refuse_replacing_special`]).
pub fn temp_file_for(path: &Path) -> io::Result<TempFile> {
    refuse_replacing_special(path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let existing = std::fs::metadata(path).ok().filter(|meta| meta.is_file());
    // Listed as it is created: an interrupt that comes between would miss it.
    let mut listed = unfinished();
    // The creation mode goes through the umask; an existing file's mode is copied exactly.
    let file = tempfile::Builder::new()
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    listed.insert(file.path().to_path_buf());
    drop(listed);
    let file = TempFile {
        _listed: Listed(file.path().to_path_buf()),
        file,
    };
    if let Some(meta) = existing {
        file.as_file()
            .set_permissions(Permissions::from_mode(meta.permissions().mode() & 0o7777))?;
    }
    Ok(file)
}

/// Fails unless `path` is a regular file (a symlink counts as what it points at) or nothing.
/// A rename over a device, a named pipe or a socket would not write into it but swap it for a
/// plain file: `--out /dev/null` run as root would leave every program a regular `/dev/null`.
pub fn refuse_replacing_special(path: &Path) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is {}, not a regular file: refusing to replace it",
                path.display(),
                describe(meta.file_type())
            ),
        )),
        _ => Ok(()),
    }
}

/// "a folder", "a named pipe", … for a message.
fn describe(file_type: FileType) -> &'static str {
    if file_type.is_dir() {
        "a folder"
    } else if file_type.is_fifo() {
        "a named pipe"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else {
        "a special file"
    }
}

/// Copies a file, or a folder with everything in it, to `to` (whose parent exists). Links are
/// followed: the copy holds what they point at.
pub fn copy_recursive(from: &Path, to: &Path) -> io::Result<()> {
    if std::fs::metadata(from)?.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_recursive(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(drop)
    }
}
