//! What a remote cache needs from the local one: where objects, trees and run records live,
//! and adopting objects downloaded (and already verified) into the cache.

use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::{RestoreError, Store};
use crate::engine::files::write_atomic;
use crate::engine::fingerprint::{ContentHash, StageKey, TreeEntry};

impl Store {
    /// The file holding an object's bytes (it may not exist).
    pub fn object_file(&self, hash: &ContentHash) -> PathBuf {
        self.object_path(hash)
    }

    /// The file holding a tree manifest (it may not exist).
    pub fn tree_file(&self, hash: &ContentHash) -> PathBuf {
        self.tree_path(hash)
    }

    pub fn has_object(&self, hash: &ContentHash) -> bool {
        self.object_path(hash).exists()
    }

    /// The entries of a cached tree manifest (checked against its hash).
    pub fn tree_entries(&self, hash: &ContentHash) -> Result<Vec<TreeEntry>, RestoreError> {
        self.read_tree(hash)
    }

    /// The run record file of `key` as stored (what a remote keeps byte for byte).
    pub fn record_bytes(&self, key: &StageKey) -> Option<Vec<u8>> {
        fs::read(self.record_path(key)).ok()
    }

    /// A temp file inside the cache (same file system as the objects: adopting is a rename).
    pub fn temp_file(&self) -> io::Result<tempfile::NamedTempFile> {
        tempfile::NamedTempFile::new_in(self.tmp_dir())
    }

    /// Moves a temp file whose bytes the caller verified to hash to `hash` into the objects.
    /// Not synced: a restore re-verifies every byte, so an object torn by a power loss is
    /// caught there and fetched again.
    pub fn adopt_object(
        &self,
        temp: tempfile::NamedTempFile,
        hash: &ContentHash,
    ) -> io::Result<()> {
        let object = self.object_path(hash);
        if object.exists() {
            return Ok(());
        }
        fs::create_dir_all(object.parent().expect("objects are sharded"))?;
        temp.as_file()
            .set_permissions(Permissions::from_mode(0o444))?;
        temp.persist(&object).map_err(|error| error.error)?;
        Ok(())
    }

    /// Stores a tree manifest whose text the caller verified to hash to `hash`.
    pub fn adopt_tree(&self, hash: &ContentHash, manifest: &[u8]) -> io::Result<()> {
        let tree = self.tree_path(hash);
        if tree.exists() {
            return Ok(());
        }
        write_atomic(&tree, manifest)
    }
}

impl Store {
    /// Every readable run record in the cache with its key (from its file name).
    pub fn keyed_records(&self) -> io::Result<Vec<(StageKey, super::RunRecord)>> {
        Ok(self
            .all_records()?
            .into_iter()
            .filter_map(|(file, record)| {
                let shard = file.parent()?.file_name()?.to_str()?;
                let rest = file.file_name()?.to_str()?.strip_suffix(".json")?;
                Some((StageKey::parse(&format!("{shard}{rest}"))?, record?))
            })
            .collect())
    }

    /// Stores a run record's bytes as a remote keeps them (the caller parsed them first).
    pub fn adopt_record(&self, key: &StageKey, bytes: &[u8]) -> io::Result<()> {
        write_atomic(&self.record_path(key), bytes)
    }
}
