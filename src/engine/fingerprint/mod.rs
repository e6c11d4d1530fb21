//! Fingerprints: what decides whether a stage reruns.
//!
//! A stage's **key** is the blake3 hash of its [`KeyInputs`], serialized as canonical JSON
//! (sorted maps, shortest float form). A stage reruns exactly when its key differs from the
//! one recorded in the lock file — unless the cache holds a run with that key, which is then
//! restored instead (see `store`).
//!
//! | hashed into the key                                   | deliberately not hashed                       |
//! |-------------------------------------------------------|-----------------------------------------------|
//! | kind name and kind version (`kind train@1`)           | mtimes, inodes, sizes (they only let the stat |
//! | or the command text after `${…}` substitution         | cache skip re-reading a file)                 |
//! | resolved params, canonical JSON, by name              | absolute paths (a moved checkout or a fresh   |
//! | every port: role + path relative to the project       | clone keeps its cache)                        |
//! | content hash of every input (file: blake3 of bytes;   | directory listing order                       |
//! | folder: blake3 of its [tree manifest](content))       | empty folders inside a folder input           |
//! | (upstream outputs enter through these content hashes) | the pipeline file's layout, comments, other   |
//! |                                                       | stages; the stage's name                      |
//!
//! Because downstream keys contain the *content* of upstream outputs, a stage whose rerun gives
//! byte-identical outputs leaves every key below it unchanged: early cutoff needs no special
//! case. [`DirtyReason`] says why a key differs, with old and new values, in one line.

mod content;
mod dirty;
mod key;
mod path_hashes;
mod stat_cache;

pub use content::{
    cached_content, hash_path, hash_path_with, note_read, Content, ContentHash, TreeEntry,
    TREE_HEADER,
};
pub use dirty::DirtyReason;
pub use key::{canonical_param, KeyInputs, StageKey};
pub use path_hashes::PathHashes;
pub use stat_cache::StatCache;
