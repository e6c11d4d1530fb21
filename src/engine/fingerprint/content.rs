//! Content hashes of files and folders.
//!
//! A file hashes to blake3 of its bytes. A folder hashes to blake3 of its **tree manifest**:
//! the line [`TREE_HEADER`], then one line per file below it, sorted by relative `/`-separated
//! path: `f <hash> <path>` (or `x` for an executable file). Directory order and mtimes do not
//! matter; empty folders are not recorded. Symlinks inside a folder are followed (a linked file
//! is recorded as its target's bytes), a loop is an error. The same manifest is what the store keeps to restore
//! a folder output.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use walkdir::WalkDir;

use super::StatCache;

pub const TREE_HEADER: &str = "warez-tree 1";

/// A blake3 hash in lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentHash(String);

impl ContentHash {
    pub fn of_bytes(bytes: &[u8]) -> ContentHash {
        ContentHash(blake3::hash(bytes).to_hex().to_string())
    }

    pub fn from_blake3(hash: blake3::Hash) -> ContentHash {
        ContentHash(hash.to_hex().to_string())
    }

    /// Accepts 64 lowercase hex digits.
    pub fn parse(text: &str) -> Option<ContentHash> {
        (text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| ContentHash(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 digits, for messages.
    pub fn short(&self) -> &str {
        &self.0[..12.min(self.0.len())]
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One file inside a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub path: String,
    pub hash: ContentHash,
    pub executable: bool,
}

/// What a path holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    File {
        hash: ContentHash,
        executable: bool,
    },
    Tree {
        hash: ContentHash,
        entries: Vec<TreeEntry>,
    },
}

impl Content {
    pub fn hash(&self) -> &ContentHash {
        match self {
            Content::File { hash, .. } | Content::Tree { hash, .. } => hash,
        }
    }

    pub fn is_tree(&self) -> bool {
        matches!(self, Content::Tree { .. })
    }

    /// The tree manifest text of a folder's entries (sorted by path).
    pub fn manifest(entries: &[TreeEntry]) -> String {
        let mut text = format!("{TREE_HEADER}\n");
        for entry in entries {
            let mode = if entry.executable { 'x' } else { 'f' };
            text.push_str(&format!("{mode} {} {}\n", entry.hash, entry.path));
        }
        text
    }

    /// Parses a manifest written by [`Content::manifest`].
    pub fn parse_manifest(text: &str) -> Option<Vec<TreeEntry>> {
        let mut lines = text.lines();
        if lines.next()? != TREE_HEADER {
            return None;
        }
        lines
            .map(|line| {
                let (mode, rest) = line.split_once(' ')?;
                let (hash, path) = rest.split_once(' ')?;
                Some(TreeEntry {
                    path: path.to_string(),
                    hash: ContentHash::parse(hash)?,
                    executable: match mode {
                        "x" => true,
                        "f" => false,
                        _ => return None,
                    },
                })
            })
            .collect()
    }
}

/// Hashes the file or folder at `path`, reusing the stat cache for unchanged files.
///
/// Symlinks are followed, at the top and inside a folder: a linked file hashes (and is cached
/// and restored) as a copy of its target, a linked folder as its files. A link that points to a
/// folder above it (a loop) is an error naming both, never a hang; so is a dangling link.
pub fn hash_path(path: &Path, stats: &StatCache) -> io::Result<Content> {
    hash_path_with(path, |file, metadata| stats.file_hash(file, metadata))
}

/// [`hash_path`] from the stat cache alone: `None` when a file's bytes would have to be read
/// (or the path cannot be hashed at all).
pub fn cached_content(path: &Path, stats: &StatCache) -> Option<Content> {
    hash_path_with(path, |file, metadata| {
        stats
            .cached_hash(file, metadata)
            .ok_or_else(|| io::Error::other("not in the stat cache"))
    })
    .ok()
}

/// [`hash_path`] with each file's hash from `file_hash(file, its metadata)`: the store hashes
/// new outputs while it copies them into the cache.
pub fn hash_path_with(
    path: &Path,
    mut file_hash: impl FnMut(&Path, &Metadata) -> io::Result<ContentHash>,
) -> io::Result<Content> {
    let metadata = std::fs::metadata(path)?;
    if metadata.is_dir() {
        let mut entries = Vec::new();
        for entry in WalkDir::new(path).follow_links(true).min_depth(1) {
            let entry = entry?;
            if entry.file_type().is_dir() {
                continue;
            }
            let metadata = entry.metadata()?;
            let relative = entry.path().strip_prefix(path).map_err(io::Error::other)?;
            let hash = file_hash(entry.path(), &metadata)
                .map_err(|error| with_path(error, entry.path()))?;
            entries.push(TreeEntry {
                path: relative.to_string_lossy().into_owned(),
                hash,
                executable: metadata.permissions().mode() & 0o111 != 0,
            });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let hash = ContentHash::of_bytes(Content::manifest(&entries).as_bytes());
        Ok(Content::Tree { hash, entries })
    } else {
        Ok(Content::File {
            hash: file_hash(path, &metadata)?,
            executable: metadata.permissions().mode() & 0o111 != 0,
        })
    }
}

/// Where `WAREZ_DEBUG_READS` asks every read of a file's bytes for hashing to be logged (one
/// path a line), so tests can count how often an output is read.
static READ_LOG: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Logs that `path`'s bytes are being read whole (see [`READ_LOG`]); best effort.
pub fn note_read(path: &Path) {
    let log = READ_LOG.get_or_init(|| std::env::var_os("WAREZ_DEBUG_READS").map(PathBuf::from));
    if let Some(log) = log {
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(file, "{}", path.display());
        }
    }
}

fn with_path(error: io::Error, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

/// Read size of [`hash_file_bytes`]: large enough for blake3's multi-threaded hashing to pay.
const HASH_BUFFER: usize = 4 << 20;
/// Below this many bytes multi-threading costs more than it saves (blake3's rule of thumb).
const PARALLEL_FROM: usize = 128 << 10;

/// Hashes a file's bytes, `expected_len` of them (multi-threaded for large files, like `b3sum`).
///
/// The file is read, not memory-mapped: a mapped file truncated by another process kills the
/// reader with SIGBUS, a read just ends early. Ending early, or reading more than
/// `expected_len` bytes, means the file changed while it was hashed: an error, not a hash of
/// half a file.
pub(super) fn hash_file_bytes(path: &Path, expected_len: u64) -> io::Result<ContentHash> {
    let mut file = File::open(path)?;
    note_read(path);
    let mut hasher = blake3::Hasher::new();
    let capacity = usize::try_from(expected_len.saturating_add(1)).unwrap_or(HASH_BUFFER);
    let mut buffer = vec![0u8; capacity.min(HASH_BUFFER)];
    let mut total: u64 = 0;
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if read >= PARALLEL_FROM {
            hasher.update_rayon(&buffer[..read]);
        } else {
            hasher.update(&buffer[..read]);
        }
        total += read as u64;
        if total > expected_len {
            break;
        }
    }
    if total != expected_len {
        return Err(io::Error::other(format!(
            "{} changed while it was being hashed ({expected_len} bytes expected, {}{total} read)",
            path.display(),
            if total > expected_len {
                "at least "
            } else {
                ""
            }
        )));
    }
    Ok(ContentHash::from_blake3(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_hash_ignores_creation_order_and_round_trips() {
        let stats = StatCache::in_memory();
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(a.path().join("sub")).unwrap();
        std::fs::write(a.path().join("sub/one"), "1").unwrap();
        std::fs::write(a.path().join("two"), "2").unwrap();
        std::fs::write(b.path().join("two"), "2").unwrap();
        std::fs::create_dir_all(b.path().join("sub")).unwrap();
        std::fs::write(b.path().join("sub/one"), "1").unwrap();
        let (ca, cb) = (
            hash_path(a.path(), &stats).unwrap(),
            hash_path(b.path(), &stats).unwrap(),
        );
        assert_eq!(ca, cb);
        let Content::Tree { entries, .. } = &ca else {
            panic!("a folder")
        };
        assert_eq!(
            Content::parse_manifest(&Content::manifest(entries)).unwrap(),
            *entries
        );
        std::fs::write(b.path().join("sub/one"), "changed").unwrap();
        assert_ne!(ca.hash(), hash_path(b.path(), &stats).unwrap().hash());
    }
}
