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

/// A blake3 hash, written as 64 lowercase hex digits.
///
/// Held inline as its 32 bytes, not as a heap `String` of its digits: a command holds several
/// per stage (the lock file's key and hashes, the stat cache's, the ones computed now), which
/// at 100,000 stages made ~700,000 small allocations, ~55 MB, and a pointer to chase at every
/// comparison. Text read from a file that is not such a hash (a hand edit) is kept as it was:
/// it compares, orders, prints and serializes as that text, as before.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ContentHash(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Digest([u8; 32]),
    /// Never 64 lowercase hex digits (those are a `Digest`): one text, one representation, so
    /// the derived equality is the text's.
    Text(Box<str>),
}

impl ContentHash {
    pub fn of_bytes(bytes: &[u8]) -> ContentHash {
        ContentHash::from_blake3(blake3::hash(bytes))
    }

    pub fn from_blake3(hash: blake3::Hash) -> ContentHash {
        ContentHash(Repr::Digest(*hash.as_bytes()))
    }

    /// Accepts 64 lowercase hex digits.
    pub fn parse(text: &str) -> Option<ContentHash> {
        let digits = text.as_bytes();
        if digits.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Some(ContentHash(Repr::Digest(bytes)))
    }

    /// Whether this is a hash, not some other text read where one belongs.
    pub fn is_digest(&self) -> bool {
        matches!(self.0, Repr::Digest(_))
    }

    /// Whatever a file holds where a hash belongs: a hash when it is one, else the text.
    fn from_text(text: &str) -> ContentHash {
        ContentHash::parse(text).unwrap_or_else(|| ContentHash(Repr::Text(text.into())))
    }

    /// The hash as written (64 hex digits, or the text it was read as).
    pub fn text(&self) -> HashText<'_> {
        match &self.0 {
            Repr::Digest(bytes) => {
                // Hand-written: the digits go on the stack, no allocation (blake3's own
                // `to_hex` returns a type of a crate this one does not depend on).
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                let mut hex = [0u8; 64];
                for (pair, byte) in hex.chunks_exact_mut(2).zip(bytes) {
                    pair[0] = DIGITS[usize::from(byte >> 4)];
                    pair[1] = DIGITS[usize::from(byte & 0xf)];
                }
                HashText::Digits(hex)
            }
            Repr::Text(text) => HashText::Borrowed(text),
        }
    }

    /// The first 12 digits, for messages.
    pub fn short(&self) -> String {
        let text = self.text();
        text[..12.min(text.len())].to_string()
    }
}

/// The value of a lowercase hex digit.
fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// [`ContentHash::text`]: a `str`, made on the stack for a hash.
pub enum HashText<'a> {
    Digits([u8; 64]),
    Borrowed(&'a str),
}

impl std::ops::Deref for HashText<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            HashText::Digits(hex) => std::str::from_utf8(hex).expect("hex digits are ASCII"),
            HashText::Borrowed(text) => text,
        }
    }
}

/// Ordered as the text: for two hashes, their bytes in order are their digits in order.
impl Ord for ContentHash {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (&self.0, &other.0) {
            (Repr::Digest(a), Repr::Digest(b)) => a.cmp(b),
            _ => (*self.text()).cmp(&*other.text()),
        }
    }
}

impl PartialOrd for ContentHash {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// As the `String` it was: `ContentHash("…")`.
impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ContentHash").field(&&*self.text()).finish()
    }
}

impl Serialize for ContentHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text())
    }
}

/// Any string, as a `String` would read it (same errors for anything else).
impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl serde::de::Visitor<'_> for TextVisitor {
            type Value = ContentHash;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ContentHash, E> {
                Ok(ContentHash::from_text(text))
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<ContentHash, E> {
                match std::str::from_utf8(bytes) {
                    Ok(text) => Ok(ContentHash::from_text(text)),
                    Err(_) => Err(E::invalid_value(serde::de::Unexpected::Bytes(bytes), &self)),
                }
            }
        }
        deserializer.deserialize_string(TextVisitor)
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
            refuse_special_file(entry.path(), &metadata)?;
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
        refuse_special_file(path, &metadata)?;
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

/// Only regular files have bytes to hash: reading a named pipe waits for a writer that may
/// never come, a device (`/dev/zero`) may never end, a socket cannot be read at all.
fn refuse_special_file(path: &Path, metadata: &Metadata) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let file_type = metadata.file_type();
    let what = if file_type.is_file() {
        return Ok(());
    } else if file_type.is_fifo() {
        "a named pipe (FIFO)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is {what}, not a file or folder: only files' bytes can be hashed and cached",
            path.display()
        ),
    ))
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

    /// Hashes and other texts behave as the `String`s they replace: order, equality, display,
    /// debug, JSON and YAML both ways, and the errors for what is not a string.
    #[test]
    fn a_hash_behaves_as_the_string_of_its_digits() {
        let digest = ContentHash::of_bytes(b"x");
        let digits = blake3::hash(b"x").to_hex().to_string();
        let texts = [
            digits.clone(),
            "0".repeat(64),
            "f".repeat(64),
            "F".repeat(64),
            format!("{}0", "0".repeat(63)),
            "0".repeat(63),
            "0".repeat(65),
            "abc".to_string(),
            String::new(),
            "g".repeat(64),
            "é".repeat(32),
        ];
        assert_eq!(digest.text().to_string(), digits);
        let from_json = |text: &String| -> ContentHash {
            serde_json::from_str(&serde_json::to_string(text).unwrap()).unwrap()
        };
        for a in &texts {
            let hash = from_json(a);
            assert_eq!(&*hash.text(), a.as_str());
            assert_eq!(hash.to_string(), *a);
            assert_eq!(format!("{hash:?}"), format!("ContentHash({a:?})"));
            assert_eq!(
                serde_json::to_string(&hash).unwrap(),
                serde_json::to_string(a).unwrap()
            );
            assert_eq!(
                serde_yaml::to_string(&hash).unwrap(),
                serde_yaml::to_string(a).unwrap()
            );
            let yaml: ContentHash =
                serde_yaml::from_str(&serde_yaml::to_string(a).unwrap()).unwrap();
            assert_eq!(yaml, hash);
            assert_eq!(
                ContentHash::parse(a).is_some(),
                matches!(hash.0, Repr::Digest(_))
            );
            for b in &texts {
                let other = from_json(b);
                assert_eq!(hash.cmp(&other), a.cmp(b), "{a} against {b}");
                assert_eq!(hash == other, a == b);
            }
        }
        assert_eq!(ContentHash::parse(&digits), Some(digest.clone()));
        assert_eq!(digest.short(), digits[..12]);
        for wrong in ["5", "[1]", "{}", "null"] {
            let ours = serde_json::from_str::<ContentHash>(wrong).unwrap_err();
            let theirs = serde_json::from_str::<String>(wrong).unwrap_err();
            assert_eq!(ours.to_string(), theirs.to_string());
        }
        let ours = serde_yaml::from_str::<ContentHash>("[1]").unwrap_err();
        let theirs = serde_yaml::from_str::<String>("[1]").unwrap_err();
        assert_eq!(ours.to_string(), theirs.to_string());
    }

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
