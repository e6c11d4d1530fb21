//! Moving run records and their objects between the local cache and a remote.
//!
//! Upload, in three waves so that nobody ever sees a record whose objects are missing:
//! objects (files, tree manifests, large tree files, packs), then pack indexes, then run
//! records. Everything already in the remote is skipped (one HEAD each, one GET for a run
//! record: a record that is there and reads as one means its objects are too, so its objects
//! are not even asked about; one that does not read is uploaded again). Download goes
//! the other way: record, then its objects (each verified), then the record is written into
//! the local cache last, so the local cache never holds a record whose objects are missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::client::{ErrorKind, Remote, RemoteError};
use super::pack::{self, Packed};
use crate::engine::fingerprint::{Content, ContentHash, StageKey};
use crate::engine::store::{RecordedOutput, RunRecord, Store};

/// Where a transfer reports its bytes (a progress bar, or nothing).
pub trait TransferProgress: Sync {
    /// The bytes about to move.
    fn planned(&self, _bytes: u64) {}
    /// Bytes moved since the last call.
    fn moved(&self, _bytes: u64) {}
}

/// Reports nothing.
pub struct Quiet;
impl TransferProgress for Quiet {}

/// A run to upload: its key and record (as kept in the local cache).
pub struct RunToPush {
    pub key: StageKey,
    pub record: RunRecord,
}

/// What an upload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub records_uploaded: usize,
    pub records_present: usize,
    pub objects_uploaded: usize,
    pub objects_present: usize,
    pub bytes_uploaded: u64,
}

fn record_path(key: &StageKey) -> String {
    format!("ac/{}", key.as_hash())
}

fn cas_path(hash: &ContentHash) -> String {
    format!("cas/{hash}")
}

/// One upload of the first wave.
enum Upload {
    /// A local file as `cas/<hash>`.
    Object {
        hash: ContentHash,
        file: PathBuf,
        size: u64,
    },
    /// One pack of a tree's small files.
    Pack {
        name: String,
        files: Vec<PathBuf>,
        size: u64,
    },
}

impl Upload {
    fn size(&self) -> u64 {
        match self {
            Upload::Object { size, .. } | Upload::Pack { size, .. } => *size,
        }
    }
}

/// The uploads one output needs, from the local cache.
struct Plan {
    objects: BTreeMap<ContentHash, (PathBuf, u64)>,
    /// Tree → (its packs' files, its index text).
    packs: BTreeMap<ContentHash, (Vec<Packed>, String)>,
}

impl Remote {
    /// Whether the remote holds a run record for `key`.
    pub fn has_run(&self, key: &StageKey) -> Result<bool, RemoteError> {
        self.block_on(self.exists(&record_path(key)))
    }

    /// Uploads runs with their objects, `jobs` requests at a time, skipping what is there.
    pub fn push_runs(
        &self,
        store: &Store,
        runs: &[RunToPush],
        jobs: usize,
        progress: &dyn TransferProgress,
    ) -> Result<PushReport, RemoteError> {
        if self.read_only() {
            return Err(self.error(
                ErrorKind::Failed,
                "read-only here (--remote-read-only / WAREZ_REMOTE_READ_ONLY): nothing uploaded"
                    .to_string(),
            ));
        }
        self.block_on(self.push_async(store, runs, jobs.max(1), progress))
    }

    async fn push_async(
        &self,
        store: &Store,
        runs: &[RunToPush],
        jobs: usize,
        progress: &dyn TransferProgress,
    ) -> Result<PushReport, RemoteError> {
        let mut report = PushReport::default();
        let present: Vec<bool> = futures::stream::iter(runs)
            .map(|run| {
                let path = record_path(&run.key);
                async move { self.has_readable_record(&path).await }
            })
            .buffered(jobs)
            .try_collect()
            .await?;
        let missing: Vec<&RunToPush> = runs
            .iter()
            .zip(&present)
            .filter(|(_, present)| !**present)
            .map(|(run, _)| run)
            .collect();
        report.records_present = runs.len() - missing.len();
        if !missing.is_empty() {
            self.prepare_upload().await;
        }
        let mut plan = Plan {
            objects: BTreeMap::new(),
            packs: BTreeMap::new(),
        };
        for run in &missing {
            for output in &run.record.outputs {
                self.plan_output(store, output, &mut plan)?;
            }
        }
        // Wave 1: objects and packs that are not there yet.
        let mut candidates: Vec<(String, Upload)> = plan
            .objects
            .into_iter()
            .map(|(hash, (file, size))| (cas_path(&hash), Upload::Object { hash, file, size }))
            .collect();
        let index_present: Vec<bool> = futures::stream::iter(plan.packs.keys())
            .map(|tree| {
                let path = pack::index_path(tree);
                async move { self.exists(&path).await }
            })
            .buffered(jobs)
            .try_collect()
            .await?;
        let mut indexes = Vec::new();
        for ((tree, (packed, index)), present) in plan.packs.into_iter().zip(index_present) {
            if present {
                report.objects_present += 1;
                continue;
            }
            let packs = packed
                .iter()
                .map(|p| p.pack)
                .max()
                .map_or(0, |last| last + 1);
            for number in 0..packs {
                let files: Vec<&Packed> = packed.iter().filter(|p| p.pack == number).collect();
                candidates.push((
                    pack::pack_path(&tree, number),
                    Upload::Pack {
                        name: pack::pack_path(&tree, number),
                        files: files.iter().map(|p| store.object_file(&p.hash)).collect(),
                        size: files.iter().map(|p| p.size).sum(),
                    },
                ));
            }
            indexes.push((pack::index_path(&tree), index));
        }
        let there: Vec<bool> = futures::stream::iter(&candidates)
            .map(|(path, _)| self.exists(path))
            .buffered(jobs)
            .try_collect()
            .await?;
        report.objects_present += there.iter().filter(|there| **there).count();
        let uploads: Vec<Upload> = candidates
            .into_iter()
            .zip(there)
            .filter_map(|((_, upload), there)| (!there).then_some(upload))
            .collect();
        progress.planned(uploads.iter().map(Upload::size).sum());
        report.objects_uploaded = uploads.len();
        report.bytes_uploaded = uploads.iter().map(Upload::size).sum();
        futures::stream::iter(uploads)
            .map(|upload| async move {
                let size = upload.size();
                match upload {
                    Upload::Object { hash, file, size } => {
                        self.upload_file(&cas_path(&hash), &file, size).await?
                    }
                    Upload::Pack { name, files, .. } => {
                        let mut bytes = Vec::new();
                        for file in &files {
                            bytes.extend(std::fs::read(file).map_err(|error| {
                                self.error(
                                    ErrorKind::Failed,
                                    format!("reading {}: {error}", file.display()),
                                )
                            })?);
                        }
                        self.upload_bytes(&name, Bytes::from(bytes)).await?
                    }
                }
                progress.moved(size);
                Ok::<(), RemoteError>(())
            })
            .buffer_unordered(jobs)
            .try_collect::<()>()
            .await?;
        // Wave 2: pack indexes; wave 3: run records.
        futures::stream::iter(indexes)
            .map(|(path, text)| async move { self.upload_bytes(&path, Bytes::from(text)).await })
            .buffer_unordered(jobs)
            .try_collect::<()>()
            .await?;
        futures::stream::iter(&missing)
            .map(|run| async move {
                let bytes = store.record_bytes(&run.key).ok_or_else(|| {
                    self.error(
                        ErrorKind::Failed,
                        format!(
                            "the local run record {} vanished",
                            run.key.as_hash().short()
                        ),
                    )
                })?;
                self.upload_bytes(&record_path(&run.key), Bytes::from(bytes))
                    .await
            })
            .buffer_unordered(jobs)
            .try_collect::<()>()
            .await?;
        report.records_uploaded = missing.len();
        Ok(report)
    }

    /// Adds what `output` needs to the plan (from the local cache, which must hold it all).
    fn plan_output(
        &self,
        store: &Store,
        output: &RecordedOutput,
        plan: &mut Plan,
    ) -> Result<(), RemoteError> {
        let missing_locally = |what: String| {
            self.error(
                ErrorKind::Failed,
                format!("cannot upload `{}`: {what}", output.path),
            )
        };
        let size_of = |file: &PathBuf, hash: &ContentHash| {
            std::fs::metadata(file)
                .map(|metadata| metadata.len())
                .map_err(|_| missing_locally(format!("cache object {hash} is missing locally")))
        };
        if !output.tree {
            let file = store.object_file(&output.hash);
            let size = size_of(&file, &output.hash)?;
            plan.objects.insert(output.hash.clone(), (file, size));
            return Ok(());
        }
        let entries = store
            .tree_entries(&output.hash)
            .map_err(|error| missing_locally(error.to_string()))?;
        let manifest = store.tree_file(&output.hash);
        let size = size_of(&manifest, &output.hash)?;
        plan.objects.insert(output.hash.clone(), (manifest, size));
        let mut small = Vec::new();
        let mut seen = BTreeSet::new();
        for entry in entries {
            if !seen.insert(entry.hash.clone()) {
                continue;
            }
            let file = store.object_file(&entry.hash);
            let size = size_of(&file, &entry.hash)?;
            if size < pack::SMALL_FILE {
                small.push((entry.hash, size));
            } else {
                plan.objects.insert(entry.hash, (file, size));
            }
        }
        if !small.is_empty() {
            let packed = pack::plan(&small);
            let index = pack::render_index(&packed);
            plan.packs.insert(output.hash.clone(), (packed, index));
        }
        Ok(())
    }

    /// Whether `path` holds a run record. One that cannot be read (cut short, overwritten by
    /// something else) counts as missing, so the next upload replaces it: left there, it would
    /// make every machine rebuild the stage, and no push would ever repair it.
    async fn has_readable_record(&self, path: &str) -> Result<bool, RemoteError> {
        let bytes = self.get_small(path).await?;
        Ok(bytes.is_some_and(|bytes| serde_json::from_slice::<RunRecord>(&bytes).is_ok()))
    }

    /// Downloads the run record of `key` and every object it needs into the local cache (the
    /// record last); `None` when the remote has no record for `key`.
    pub fn fetch_run(
        &self,
        store: &Store,
        key: &StageKey,
        jobs: usize,
    ) -> Result<Option<RunRecord>, RemoteError> {
        self.block_on(async {
            let path = record_path(key);
            let Some(bytes) = self.get_small(&path).await? else {
                return Ok(None);
            };
            let record: RunRecord = serde_json::from_slice(&bytes).map_err(|_| {
                self.error(
                    ErrorKind::Corrupt,
                    format!("{path} is not a run record; not used"),
                )
            })?;
            self.fetch_outputs_async(store, &record.outputs, jobs.max(1))
                .await?;
            store.adopt_record(key, &bytes).map_err(|error| {
                self.error(
                    ErrorKind::Failed,
                    format!("writing the local run record: {error}"),
                )
            })?;
            Ok(Some(record))
        })
    }

    /// Downloads what the local cache lacks of `outputs` (each object verified).
    pub fn fetch_outputs(
        &self,
        store: &Store,
        outputs: &[RecordedOutput],
        jobs: usize,
    ) -> Result<(), RemoteError> {
        self.block_on(self.fetch_outputs_async(store, outputs, jobs.max(1)))
    }

    async fn fetch_outputs_async(
        &self,
        store: &Store,
        outputs: &[RecordedOutput],
        jobs: usize,
    ) -> Result<(), RemoteError> {
        let mut files = BTreeSet::new();
        for output in outputs.iter().filter(|output| !store.has_output(output)) {
            if output.tree {
                files.extend(self.fetch_tree(store, &output.hash, jobs).await?);
            } else {
                files.insert(output.hash.clone());
            }
        }
        futures::stream::iter(files.into_iter().filter(|hash| !store.has_object(hash)))
            .map(|hash| async move {
                self.download_object(store, &cas_path(&hash), &hash)
                    .await
                    .map(drop)
            })
            .buffer_unordered(jobs)
            .try_collect::<()>()
            .await
    }

    /// Brings a tree's manifest and packed files into the local cache; returns the files it
    /// still lacks (its large files, or any the packs did not hold).
    async fn fetch_tree(
        &self,
        store: &Store,
        tree: &ContentHash,
        jobs: usize,
    ) -> Result<BTreeSet<ContentHash>, RemoteError> {
        let manifest = match store.tree_entries(tree) {
            Ok(_) => None,
            Err(_) => {
                let path = cas_path(tree);
                let bytes = self.get_small(&path).await?.ok_or_else(|| {
                    self.error(ErrorKind::Missing, format!("{path} is not there"))
                })?;
                if &ContentHash::of_bytes(&bytes) != tree {
                    return Err(self.corrupt(&path));
                }
                Some(bytes)
            }
        };
        let entries = match &manifest {
            Some(bytes) => std::str::from_utf8(bytes)
                .ok()
                .and_then(Content::parse_manifest)
                .ok_or_else(|| self.corrupt(&cas_path(tree)))?,
            None => store
                .tree_entries(tree)
                .map_err(|error| self.error(ErrorKind::Failed, error.to_string()))?,
        };
        let mut needed: BTreeSet<ContentHash> = entries
            .into_iter()
            .map(|entry| entry.hash)
            .filter(|hash| !store.has_object(hash))
            .collect();
        if !needed.is_empty() {
            let index_path = pack::index_path(tree);
            if let Some(index) = self.get_small(&index_path).await? {
                let packed = std::str::from_utf8(&index)
                    .ok()
                    .and_then(pack::parse_index)
                    .ok_or_else(|| self.corrupt(&index_path))?;
                let wanted: BTreeSet<usize> = packed
                    .iter()
                    .filter(|p| needed.contains(&p.hash))
                    .map(|p| p.pack)
                    .collect();
                let unpacked: Vec<Vec<ContentHash>> = futures::stream::iter(wanted)
                    .map(|number| self.fetch_pack(store, tree, number, &packed))
                    .buffer_unordered(jobs)
                    .try_collect()
                    .await?;
                for hash in unpacked.into_iter().flatten() {
                    needed.remove(&hash);
                }
            }
        }
        if let Some(bytes) = manifest {
            store.adopt_tree(tree, &bytes).map_err(|error| {
                self.error(
                    ErrorKind::Failed,
                    format!("writing the local cache: {error}"),
                )
            })?;
        }
        Ok(needed)
    }

    /// Downloads pack `number` of `tree`, checks each file by its hash, adopts them.
    async fn fetch_pack(
        &self,
        store: &Store,
        tree: &ContentHash,
        number: usize,
        packed: &[Packed],
    ) -> Result<Vec<ContentHash>, RemoteError> {
        let path = pack::pack_path(tree, number);
        let bytes = self
            .get_small(&path)
            .await?
            .ok_or_else(|| self.error(ErrorKind::Missing, format!("{path} is not there")))?;
        let files: Vec<&Packed> = packed.iter().filter(|p| p.pack == number).collect();
        let unpacked = pack::unpack(&bytes, &files).map_err(|hash| {
            self.error(
                ErrorKind::Corrupt,
                format!("{path} is corrupted (file {hash} does not match its hash); not used"),
            )
        })?;
        let mut adopted = Vec::with_capacity(unpacked.len());
        for (hash, content) in unpacked {
            if !store.has_object(hash) {
                let local = |error: std::io::Error| {
                    self.error(
                        ErrorKind::Failed,
                        format!("writing the local cache: {error}"),
                    )
                };
                let mut temp = store.temp_file().map_err(local)?;
                std::io::Write::write_all(&mut temp, content).map_err(local)?;
                store.adopt_object(temp, hash).map_err(local)?;
            }
            adopted.push(hash.clone());
        }
        Ok(adopted)
    }
}
