//! `gc`: removes run records past the age policy (unused for `max_age_days`) and every object that no kept record and no
//! lock file references. Nothing outside `objects/`, `trees/`, `runs/` and `tmp/` is touched, and
//! nothing a symlink in the cache leads to outside it (see `Store::remove`).

use std::collections::HashSet;
use std::io;
use std::path::PathBuf;

use super::records::now_unix;
use super::{LockFile, Store};
use crate::engine::fingerprint::ContentHash;

pub struct GcPolicy {
    /// Records unused for longer are dropped, unless a lock file names their key (`0`: keep
    /// only those).
    pub max_age_days: u64,
    /// Lock files whose keys and outputs are always kept.
    pub lock_files: Vec<LockFile>,
    /// Only report.
    pub dry_run: bool,
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub removed_records: Vec<PathBuf>,
    pub removed_objects: Vec<PathBuf>,
    pub removed_bytes: u64,
    pub kept_objects: usize,
}

pub fn collect_garbage(store: &Store, policy: &GcPolicy) -> io::Result<GcReport> {
    let mut report = GcReport::default();
    let locked_keys: HashSet<String> = policy
        .lock_files
        .iter()
        .flat_map(|lock| lock.stages.values())
        .map(|stage| stage.key.to_string())
        .collect();
    let mut keep: HashSet<ContentHash> = HashSet::new();
    for lock in &policy.lock_files {
        for stage in lock.stages.values() {
            for hash in stage.outputs.values() {
                keep.extend(store.objects_of(hash, true));
            }
        }
    }
    let oldest = now_unix().saturating_sub(policy.max_age_days * 24 * 60 * 60);
    for (file, record) in store.all_records()? {
        let key = format!(
            "{}{}",
            file.parent()
                .and_then(|shard| shard.file_name())
                .unwrap_or_default()
                .to_string_lossy(),
            file.file_stem().unwrap_or_default().to_string_lossy()
        );
        let kept = match &record {
            None => false,
            Some(_) if locked_keys.contains(&key) => true,
            Some(record) => policy.max_age_days > 0 && record.last_used >= oldest,
        };
        match record {
            Some(record) if kept => {
                for output in &record.outputs {
                    keep.extend(store.objects_of(&output.hash, output.tree));
                }
            }
            _ => {
                if !policy.dry_run {
                    store.remove(&file)?;
                }
                report.removed_records.push(file);
            }
        }
    }
    for (hash, path) in store.all_objects()? {
        if keep.contains(&hash) {
            report.kept_objects += 1;
            continue;
        }
        report.removed_bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if !policy.dry_run {
            store.remove(&path)?;
        }
        report.removed_objects.push(path);
    }
    if !policy.dry_run {
        store.clear_tmp()?;
    }
    Ok(report)
}
