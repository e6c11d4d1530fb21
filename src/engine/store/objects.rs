//! Putting outputs into the cache and restoring them, verifying every byte on the way out.

use std::fs::{self, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::{RecordedOutput, Store};
use crate::engine::files::write_atomic;
use crate::engine::fingerprint::{
    hash_path_with, note_read, Content, ContentHash, StatCache, TreeEntry,
};

/// Files up to this size are read into memory when cached (no temp file when the cache has
/// them already); larger ones are cloned or copied while hashed.
const SMALL_FILE: u64 = 1 << 20;

/// Name prefix of the staging folder a restore builds beside its output.
pub const RESTORE_PREFIX: &str = ".warez-restore-";

/// Why an output could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The object is gone (e.g. `gc`): the stage has to run.
    #[error("cache object {0} is missing")]
    Missing(String),
    /// The object's bytes no longer match its name; it was deleted, the stage has to run.
    #[error("cache object {0} is corrupted (its bytes no longer match its hash); removed it")]
    Corrupt(String),
    #[error("restoring {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl Store {
    /// Puts a new output (file or folder) into the cache and returns its content, reading each
    /// file's bytes once: the file is cloned into the cache (a reflink, where the file system
    /// shares blocks copy-on-write) and the clone hashed, or else copied while hashed. Either way
    /// the object holds its own bytes: editing the output in place later never changes it (a
    /// hard link would). The stat cache learns each file's hash, so the stages that read it do
    /// not read it again. A file that changes while it is cached is an error.
    pub fn save_new_output(&self, path: &Path, stats: &StatCache) -> io::Result<Content> {
        let content = hash_path_with(path, |file, before| {
            let hash = self.save_file(file, before.len())?;
            let after = fs::metadata(file)?;
            if !same_state(before, &after) {
                return Err(io::Error::other(format!(
                    "{} changed while it was being cached",
                    file.display()
                )));
            }
            stats.remember(file, &after, hash.clone());
            Ok(hash)
        })?;
        if let Content::Tree { hash, entries } = &content {
            let tree = self.tree_path(hash);
            if !tree.exists() {
                write_atomic(&tree, Content::manifest(entries).as_bytes())?;
            }
        }
        Ok(content)
    }

    /// Clones or copies one file (of `len` bytes) into the cache's objects; returns its hash.
    /// A small file is read into memory and hashed, and written only when the cache lacks it.
    fn save_file(&self, path: &Path, len: u64) -> io::Result<ContentHash> {
        if len <= SMALL_FILE {
            note_read(path);
            let bytes = fs::read(path)?;
            let hash = ContentHash::of_bytes(&bytes);
            let object = self.object_path(&hash);
            if !object.exists() {
                let mut temp = tempfile::NamedTempFile::new_in(self.tmp_dir())?;
                temp.write_all(&bytes)?;
                self.persist_object(temp.into_temp_path(), &object)?;
            }
            return Ok(hash);
        }
        let (temp, hash) = match self.clone_into_tmp(path) {
            Some(clone) => {
                note_read(path);
                let hash = copy_hashing(&mut File::open(&clone)?, &mut io::sink())?;
                (clone, hash)
            }
            None => {
                let mut copy = tempfile::NamedTempFile::new_in(self.tmp_dir())?;
                note_read(path);
                let hash = copy_hashing(&mut File::open(path)?, copy.as_file_mut())?;
                (copy.into_temp_path(), hash)
            }
        };
        let object = self.object_path(&hash);
        if !object.exists() {
            self.persist_object(temp, &object)?;
        } // else the temp file goes when dropped
        Ok(hash)
    }

    /// Makes a complete temp file the (read-only, synced) object at `object`.
    fn persist_object(&self, temp: tempfile::TempPath, object: &Path) -> io::Result<()> {
        File::open(&temp)?.sync_data()?;
        fs::set_permissions(&temp, Permissions::from_mode(0o444))?;
        fs::create_dir_all(object.parent().expect("objects are sharded"))?;
        temp.persist(object).map_err(|error| error.error)
    }

    /// A reflink of `path` in the cache's tmp folder, unless the file systems cannot make one
    /// (then never tried again by this store).
    fn clone_into_tmp(&self, path: &Path) -> Option<tempfile::TempPath> {
        if self.no_reflink.load(Ordering::Relaxed) {
            return None;
        }
        let clone = tempfile::Builder::new()
            .make_in(self.tmp_dir(), |temp| reflink_copy::reflink(path, temp));
        match clone {
            Ok(clone) => Some(clone.into_temp_path()),
            Err(_) => {
                self.no_reflink.store(true, Ordering::Relaxed);
                None
            }
        }
    }

    /// Whether every object an output needs is in the cache (without reading them).
    pub fn has_output(&self, output: &RecordedOutput) -> bool {
        if !output.tree {
            return self.object_path(&output.hash).exists();
        }
        match self.read_tree(&output.hash) {
            Ok(entries) => entries
                .iter()
                .all(|entry| self.object_path(&entry.hash).exists()),
            Err(_) => false,
        }
    }

    /// Puts a cached output at `dest`, replacing whatever is there, checking every byte.
    pub fn restore_output(&self, output: &RecordedOutput, dest: &Path) -> Result<(), RestoreError> {
        let (_staging, staged) = self.stage_output(output, dest)?;
        let io_error = |source| RestoreError::Io {
            path: dest.to_path_buf(),
            source,
        };
        remove_path(dest).map_err(io_error)?;
        fs::rename(&staged, dest).map_err(io_error)?;
        Ok(())
    }

    /// Copies a cached output, checking every byte, into a staging folder beside `dest` (same
    /// file system: moving it in is a rename). Returns the folder (removed when dropped) and
    /// the staged output in it.
    pub fn stage_output(
        &self,
        output: &RecordedOutput,
        dest: &Path,
    ) -> Result<(tempfile::TempDir, PathBuf), RestoreError> {
        let io_error = |source| RestoreError::Io {
            path: dest.to_path_buf(),
            source,
        };
        let parent = dest.parent().expect("outputs live inside the project");
        fs::create_dir_all(parent).map_err(io_error)?;
        let staging = tempfile::Builder::new()
            .prefix(RESTORE_PREFIX)
            .tempdir_in(parent)
            .map_err(io_error)?;
        let staged = staging.path().join("out");
        if output.tree {
            let entries = self.read_tree(&output.hash)?;
            fs::create_dir_all(&staged).map_err(io_error)?;
            for entry in &entries {
                self.restore_file(&entry.hash, entry.executable, &staged.join(&entry.path))?;
            }
        } else {
            self.restore_file(&output.hash, output.executable, &staged)?;
        }
        Ok((staging, staged))
    }

    /// A folder output's manifest; a corrupt one is removed (so the stage's rerun can store
    /// it again).
    pub(super) fn read_tree(&self, hash: &ContentHash) -> Result<Vec<TreeEntry>, RestoreError> {
        let result = self.peek_tree(hash);
        if let Err(RestoreError::Corrupt(_)) = result {
            let _ = fs::remove_file(self.tree_path(hash));
        }
        result
    }

    /// A folder output's manifest, checked against its hash; changes nothing.
    fn peek_tree(&self, hash: &ContentHash) -> Result<Vec<TreeEntry>, RestoreError> {
        let path = self.tree_path(hash);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(RestoreError::Missing(hash.to_string()))
            }
            Err(source) => return Err(RestoreError::Io { path, source }),
        };
        match Content::parse_manifest(&text) {
            Some(entries) if &ContentHash::of_bytes(text.as_bytes()) == hash => Ok(entries),
            _ => Err(RestoreError::Corrupt(hash.to_string())),
        }
    }

    fn restore_file(
        &self,
        hash: &ContentHash,
        executable: bool,
        dest: &Path,
    ) -> Result<(), RestoreError> {
        let object = self.object_path(hash);
        let io_error = |source| RestoreError::Io {
            path: dest.to_path_buf(),
            source,
        };
        let mut source = match File::open(&object) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(RestoreError::Missing(hash.to_string()))
            }
            Err(source) => {
                return Err(RestoreError::Io {
                    path: object,
                    source,
                })
            }
        };
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io_error)?;
        }
        let mut file = File::create(dest).map_err(io_error)?;
        let copied = copy_hashing(&mut source, &mut file).map_err(io_error)?;
        if &copied != hash {
            let _ = fs::remove_file(&object);
            return Err(RestoreError::Corrupt(hash.to_string()));
        }
        let mode = if executable { 0o755 } else { 0o644 };
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(io_error)?;
        Ok(())
    }

    /// Every object and tree in the cache, as (hash, path).
    pub(super) fn all_objects(&self) -> io::Result<Vec<(ContentHash, PathBuf)>> {
        let mut found = Vec::new();
        for dir in ["objects", "trees"] {
            for shard in read_dir_or_empty(&self.root.join(dir))? {
                for entry in read_dir_or_empty(&shard)? {
                    let name = format!(
                        "{}{}",
                        shard.file_name().unwrap_or_default().to_string_lossy(),
                        entry.file_name().unwrap_or_default().to_string_lossy()
                    );
                    if let Some(hash) = ContentHash::parse(&name) {
                        found.push((hash, entry));
                    }
                }
            }
        }
        Ok(found)
    }

    /// The objects a kept output needs (the tree itself and its files). Reads without changing
    /// anything (`gc --dry-run`); a corrupt tree is not needed: it can never be restored, so
    /// `gc` removes it like any unreferenced object (and a dry run lists it).
    pub(super) fn objects_of(&self, hash: &ContentHash, tree: bool) -> Vec<ContentHash> {
        if !tree {
            return vec![hash.clone()];
        }
        match self.peek_tree(hash) {
            Ok(entries) => std::iter::once(hash.clone())
                .chain(entries.into_iter().map(|entry| entry.hash))
                .collect(),
            Err(RestoreError::Corrupt(_)) => Vec::new(),
            Err(_) => vec![hash.clone()],
        }
    }
}

pub(super) fn read_dir_or_empty(dir: &Path) -> io::Result<Vec<PathBuf>> {
    match fs::read_dir(dir) {
        Ok(entries) => entries.map(|entry| entry.map(|e| e.path())).collect(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

/// Removes a file or folder if it exists.
pub fn remove_path(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Removes `path` like [`remove_path`] — a symlink itself, never what it points to — but only
/// when the folder holding it really lies inside `root` (a real path): a symlinked folder on the
/// way that leads elsewhere makes it an error, and nothing is removed there.
pub fn remove_inside(path: &Path, root: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::other(format!(
            "refusing to remove {}: not a file or folder inside {}",
            path.display(),
            root.display()
        )));
    };
    let real_parent = match parent.canonicalize() {
        Ok(real) => real,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    if !real_parent.starts_with(root) {
        return Err(io::Error::other(format!(
            "refusing to remove {}: through a symlink it lies in {}, outside {}",
            path.display(),
            real_parent.display(),
            root.display()
        )));
    }
    remove_path(&real_parent.join(name))
}

/// Whether a file's stat fields (size, times, inode) are the same in both.
fn same_state(before: &fs::Metadata, after: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (
        before.len(),
        before.ino(),
        before.mtime(),
        before.mtime_nsec(),
    ) == (after.len(), after.ino(), after.mtime(), after.mtime_nsec())
        && (before.ctime(), before.ctime_nsec()) == (after.ctime(), after.ctime_nsec())
}

/// Copies `from` into `to`, returning the blake3 hash of the bytes copied.
fn copy_hashing(from: &mut impl Read, to: &mut impl Write) -> io::Result<ContentHash> {
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        hasher.update(&buffer[..read]);
        to.write_all(&buffer[..read])?;
    }
    to.flush()?;
    Ok(ContentHash::from_blake3(hasher.finalize()))
}
