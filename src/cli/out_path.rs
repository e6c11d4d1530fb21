//! A file a flag tells a command to write (`gen-data --out`, `predict --output`,
//! `report --out`), checked before any work is done.

use std::io::ErrorKind;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::engine::files;

/// Refuses, naming `flag`, a path whose folder does not exist or is no folder — a command
/// never creates folders for a file it is told to write, so a mistyped folder is an error,
/// not a new folder — and a path that is not a regular file or nothing (a named pipe, a
/// device, a folder: the file is renamed into place, which would replace it).
pub fn check(flag: &str, path: &Path) -> Result<()> {
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    match std::fs::metadata(folder) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => bail!(
            "{flag} {}: {} is not a folder",
            path.display(),
            folder.display()
        ),
        Err(error) if error.kind() == ErrorKind::NotFound => bail!(
            "{flag} {}: folder {} does not exist (create it first)",
            path.display(),
            folder.display()
        ),
        Err(error) => bail!(
            "{flag} {}: folder {}: {error}",
            path.display(),
            folder.display()
        ),
    }
    files::refuse_replacing_special(path).with_context(|| format!("{flag} {}", path.display()))
}
