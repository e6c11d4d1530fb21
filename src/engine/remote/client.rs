//! [`Remote`]: an opened remote with its own small tokio runtime, the requests warez-pipe
//! makes (HEAD, GET streamed into a verified temp file, PUT or multipart PUT from a file), and
//! errors that name the remote and never a credential.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

use super::backend::{self, Backend};
use super::url::{RemoteUrl, Scheme};
use crate::engine::fingerprint::ContentHash;
use crate::engine::store::Store;

/// Objects at least this large are uploaded in parts of this size (multipart on S3, GCS,
/// Azure and file remotes; one streamed PUT on HTTP): memory stays bounded by
/// `PART_SIZE × PARTS_IN_FLIGHT` whatever the object's size.
pub const PART_SIZE: usize = 8 << 20;
const PARTS_IN_FLIGHT: usize = 4;

/// Why a remote operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The thing asked for is not in the remote.
    Missing,
    /// Bytes from the remote do not match their hash (or a record is not one); not used.
    Corrupt,
    /// Credentials refused.
    Denied,
    /// Anything else: server down, network, a refused write.
    Failed,
}

#[derive(Debug, thiserror::Error)]
#[error("remote {remote}: {message}")]
pub struct RemoteError {
    pub remote: String,
    pub kind: ErrorKind,
    message: String,
}

/// An opened remote. Its methods block (the engine is synchronous); inside, requests run on a
/// two-thread tokio runtime this value owns, several at once where a method moves many objects.
pub struct Remote {
    url: RemoteUrl,
    backend: Backend,
    runtime: tokio::runtime::Runtime,
    read_only: bool,
    /// Set once the remote failed in a way the rest of a run would only repeat (server down,
    /// credentials refused): the run warns once and goes on without it.
    given_up: AtomicBool,
    /// An HTTP remote's own folder was created (once per process, before the first upload).
    base_made: tokio::sync::OnceCell<()>,
}

impl Remote {
    /// Opens the remote at `url` (no request is made yet).
    pub fn open(url: &RemoteUrl, read_only: bool) -> Result<Remote, RemoteError> {
        let error = |message: String| RemoteError {
            remote: url.to_string(),
            kind: ErrorKind::Failed,
            message,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("warez-remote")
            .enable_all()
            .build()
            .map_err(|e| error(format!("starting its I/O runtime: {e}")))?;
        // reqwest's client must be built inside the runtime that drives it.
        let backend = runtime
            .block_on(async { backend::open(url) })
            .map_err(error)?;
        Ok(Remote {
            url: url.clone(),
            backend,
            runtime,
            read_only,
            given_up: AtomicBool::new(false),
            base_made: tokio::sync::OnceCell::new(),
        })
    }

    /// The URL as shown (no user info).
    pub fn name(&self) -> String {
        self.url.to_string()
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Whether an earlier failure made this process stop using the remote.
    pub fn given_up(&self) -> bool {
        self.given_up.load(Ordering::Relaxed)
    }

    /// Stops using the remote; true the first time (to warn once).
    pub fn give_up(&self) -> bool {
        !self.given_up.swap(true, Ordering::Relaxed)
    }

    pub(super) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    pub(super) fn error(&self, kind: ErrorKind, message: String) -> RemoteError {
        RemoteError {
            remote: self.name(),
            kind,
            message,
        }
    }

    /// Words an `object_store` error about `what`.
    fn store_error(&self, what: &str, error: object_store::Error) -> RemoteError {
        let text = error.to_string();
        let denied = matches!(
            error,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) || ["401 Unauthorized", "403 Forbidden"]
            .iter()
            .any(|status| text.contains(status));
        match error {
            object_store::Error::NotFound { .. } => {
                self.error(ErrorKind::Missing, format!("{what} is not there"))
            }
            _ if denied => self.error(
                ErrorKind::Denied,
                format!(
                    "access denied to {what}: check the credentials ({}): {text}",
                    self.credential_hint()
                ),
            ),
            _ => self.error(ErrorKind::Failed, format!("{what}: {text}")),
        }
    }

    fn credential_hint(&self) -> &'static str {
        match self.url.scheme() {
            Scheme::S3 => {
                "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN or the AWS profile"
            }
            Scheme::Gcs => "GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT",
            Scheme::Azure => {
                "AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or a SAS token"
            }
            Scheme::Http => "WAREZ_REMOTE_USER and WAREZ_REMOTE_PASSWORD, or WAREZ_REMOTE_TOKEN",
            Scheme::File => "file permissions",
        }
    }

    fn store(&self) -> &dyn ObjectStore {
        self.backend.store.as_ref()
    }

    /// Whether `path` exists (HEAD).
    pub(super) async fn exists(&self, path: &str) -> Result<bool, RemoteError> {
        match self.store().head(&ObjectPath::from(path)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(self.store_error(path, error)),
        }
    }

    /// A small object's bytes; `None` when it is not there.
    pub(super) async fn get_small(&self, path: &str) -> Result<Option<Bytes>, RemoteError> {
        let result = match self.store().get(&ObjectPath::from(path)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(self.store_error(path, error)),
        };
        result
            .bytes()
            .await
            .map(Some)
            .map_err(|error| self.store_error(path, error))
    }

    /// Streams `path` into a temp file in the cache, hashing on the way; adopts it as object
    /// `hash` only when the bytes match. Returns the bytes received.
    pub(super) async fn download_object(
        &self,
        store: &Store,
        path: &str,
        hash: &ContentHash,
    ) -> Result<u64, RemoteError> {
        let local = |error: std::io::Error| {
            self.error(
                ErrorKind::Failed,
                format!("{path}: writing the local cache: {error}"),
            )
        };
        let mut stream = self
            .store()
            .get(&ObjectPath::from(path))
            .await
            .map_err(|error| self.store_error(path, error))?
            .into_stream();
        let temp = store.temp_file().map_err(local)?;
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, temp.as_file());
        let mut hasher = blake3::Hasher::new();
        let mut received = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| self.store_error(path, error))?;
            hasher.update(&chunk);
            writer.write_all(&chunk).map_err(local)?;
            received += chunk.len() as u64;
        }
        writer.flush().map_err(local)?;
        drop(writer);
        if &ContentHash::from_blake3(hasher.finalize()) != hash {
            return Err(self.corrupt(path));
        }
        store.adopt_object(temp, hash).map_err(local)?;
        Ok(received)
    }

    pub(super) fn corrupt(&self, path: &str) -> RemoteError {
        self.error(
            ErrorKind::Corrupt,
            format!("{path} is corrupted (its bytes do not match its hash); not used"),
        )
    }

    /// Makes sure an HTTP remote's folder exists before the first upload.
    pub(super) async fn prepare_upload(&self) {
        if let Some(http) = &self.backend.http_put {
            let folders = ["cas", "ac", "packs", "packs/v1"];
            self.base_made
                .get_or_init(|| http.make_folders(&folders))
                .await;
        }
    }

    /// Uploads small bytes to `path`.
    pub(super) async fn upload_bytes(&self, path: &str, bytes: Bytes) -> Result<(), RemoteError> {
        self.store()
            .put(&ObjectPath::from(path), PutPayload::from_bytes(bytes))
            .await
            .map(drop)
            .map_err(|error| self.store_error(path, error))
    }

    /// Uploads a local file to `path`: one PUT below [`PART_SIZE`], else multipart (or one
    /// streamed PUT on HTTP), reading the file a part at a time.
    pub(super) async fn upload_file(
        &self,
        path: &str,
        file: &Path,
        size: u64,
    ) -> Result<(), RemoteError> {
        let local = |error: std::io::Error| {
            self.error(
                ErrorKind::Failed,
                format!("reading {}: {error}", file.display()),
            )
        };
        if size < PART_SIZE as u64 {
            let bytes = std::fs::read(file).map_err(local)?;
            return self.upload_bytes(path, Bytes::from(bytes)).await;
        }
        if let Some(http) = &self.backend.http_put {
            return http
                .put_file(path, file, size)
                .await
                .map_err(|message| self.classify_http(path, message));
        }
        let location = ObjectPath::from(path);
        let upload = self
            .store()
            .put_multipart(&location)
            .await
            .map_err(|error| self.store_error(path, error))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut reader = std::fs::File::open(file).map_err(local)?;
        let mut buffer = vec![0u8; PART_SIZE];
        loop {
            let read = reader.read(&mut buffer).map_err(local)?;
            if read == 0 {
                break;
            }
            if let Err(error) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = writer.abort().await;
                return Err(self.store_error(path, error));
            }
            writer.write(&buffer[..read]);
        }
        writer
            .finish()
            .await
            .map(drop)
            .map_err(|error| self.store_error(path, error))
    }

    fn classify_http(&self, path: &str, message: String) -> RemoteError {
        let denied = message.contains("401") || message.contains("403");
        if denied {
            self.error(
                ErrorKind::Denied,
                format!(
                    "access denied to {path}: check the credentials ({}): {message}",
                    self.credential_hint()
                ),
            )
        } else {
            self.error(ErrorKind::Failed, format!("{path}: {message}"))
        }
    }
}
