//! Writing files so that a crash never leaves half of one: shared by the store (objects, run
//! records, the lock file) and the fingerprint's stat cache.

use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` through a temp file in the same folder and a rename: readers see
/// the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_data()?;
    file.persist(path).map_err(|error| error.error)?;
    Ok(())
}
