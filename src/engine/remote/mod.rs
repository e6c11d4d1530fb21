//! A shared remote cache: run records and objects on an object store (S3, GCS, Azure Blob,
//! an HTTP/WebDAV server or a shared folder), so CI builds once and everyone restores.
//!
//! **Library.** [`object_store`] (Apache Arrow): one `ObjectStore` trait over S3, GCS, Azure,
//! HTTP/WebDAV and local files, with multipart uploads, streamed GETs, retries with backoff,
//! and each cloud's standard credential chain (`from_env`). Chosen over opendal because it is
//! the smaller dependency for the five backends needed here and its S3 client is the one the
//! Arrow/DataFusion ecosystem runs in production; opendal's extra breadth (dozens of services,
//! layers) is not needed. Its HTTP store has no multipart upload, so large objects go to HTTP
//! remotes as one streamed PUT ([`http_put`]). Both crates are async: a [`Remote`] owns a
//! two-thread tokio runtime and offers blocking methods to the synchronous engine.
//!
//! **Layout** (as Bazel's remote cache: a content-addressed store and an action cache):
//!
//! ```text
//! cas/<hash>               a file's bytes or a tree manifest, named by its blake3 hash
//!                          (the same bytes as the local cache's objects/ and trees/)
//! packs/v1/<tree>[.<n>]    a folder output's small files, packed (see pack)
//! ac/<stage key>           a run record, the same bytes as the local cache's runs/ file
//! ```
//!
//! **Order and trust.** A run record is uploaded after every object it needs, and downloaded
//! objects reach the local cache only once their bytes hash to their name; a record is
//! written to the local cache after its objects. Objects are write-once: what is there is
//! never uploaded again (a HEAD first), and since names are content hashes, two machines
//! racing to upload the same name write the same bytes. A record is trusted as much as the
//! remote is: whoever can write the remote can publish a record for any key (as with Bazel's
//! remote cache); machines that must not publish use read-only mode.

mod backend;
mod client;
mod http_put;
mod pack;
mod transfer;
mod url;

pub use client::{ErrorKind, Remote, RemoteError, PART_SIZE};
pub use transfer::{PushReport, Quiet, RunToPush, TransferProgress};
pub use url::{RemoteUrl, Scheme, URL_FORMS};
