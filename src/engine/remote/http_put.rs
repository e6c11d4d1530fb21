//! Streaming PUT of a large file to an HTTP remote.
//!
//! `object_store`'s HTTP store uploads a payload held in memory and has no multipart upload,
//! and neither Bazel's HTTP cache protocol nor WebDAV has one either: a large object is one
//! PUT whose body is streamed from the file, so a 1 GiB output never sits in memory. This is
//! the one request warez-pipe makes by hand (with the same reqwest the store uses). Like the
//! store, it creates missing WebDAV collections (MKCOL) when the server answers 409 or 404.

use std::path::Path;
use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_LENGTH};
use reqwest::{Method, StatusCode};

/// Uploads files to `base/<path>`.
pub struct HttpPut {
    client: reqwest::Client,
    base: url::Url,
}

impl HttpPut {
    pub fn new(base: url::Url, headers: HeaderMap) -> Result<HttpPut, String> {
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|error| error.to_string())?;
        Ok(HttpPut { client, base })
    }

    fn url(&self, path: &str) -> url::Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path.split('/'));
        }
        url
    }

    /// PUTs the file's bytes (streamed) at `path`.
    pub async fn put_file(&self, path: &str, file: &Path, size: u64) -> Result<(), String> {
        let mut status = self.send_file(path, file, size).await?;
        if matches!(status, StatusCode::CONFLICT | StatusCode::NOT_FOUND) {
            self.make_collections(path).await?;
            status = self.send_file(path, file, size).await?;
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("PUT {path}: server returned {status}"))
        }
    }

    async fn send_file(&self, path: &str, file: &Path, size: u64) -> Result<StatusCode, String> {
        let body = tokio::fs::File::open(file)
            .await
            .map_err(|error| format!("{}: {error}", file.display()))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(body, 1 << 20);
        let response = self
            .client
            .put(self.url(path))
            .header(CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(|error| error.to_string())?;
        Ok(response.status())
    }

    /// MKCOL every folder above `path`.
    async fn make_collections(&self, path: &str) -> Result<(), String> {
        let parts: Vec<&str> = path.split('/').collect();
        for depth in 1..parts.len() {
            let mut url = self.url(&parts[..depth].join("/"));
            url.path_segments_mut()
                .map_err(|_| "the remote URL cannot hold paths".to_string())?
                .push("");
            self.mkcol(url).await?;
        }
        Ok(())
    }

    /// MKCOL every folder of the remote URL's own path (a new remote's folder does not exist
    /// yet) and the folders warez-pipe writes into (`folders`, parents first). Done once before
    /// uploading: `object_store` creates missing parents itself, but two uploads racing to
    /// create one folder make the loser fail (WebDAV answers 405 to a MKCOL of an existing
    /// folder). Two processes pushing at once race here too: a MKCOL that fails (a server may
    /// answer an error while another client creates the same folder) is tried once more, when
    /// the folder usually exists, and every folder is tried whatever happened to the one
    /// before. Failures are left to the PUTs to report: servers that are no WebDAV (Bazel's
    /// HTTP cache) refuse MKCOL and need none.
    pub async fn make_folders(&self, folders: &[&str]) {
        let base: Vec<String> = self
            .base
            .path_segments()
            .map(|segments| {
                segments
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut paths: Vec<String> = (1..=base.len())
            .map(|depth| base[..depth].join("/"))
            .collect();
        paths.extend(folders.iter().map(|folder| {
            base.iter()
                .map(String::as_str)
                .chain(folder.split('/'))
                .collect::<Vec<_>>()
                .join("/")
        }));
        for path in paths {
            let mut url = self.base.clone();
            url.set_path(&format!("/{path}/"));
            if self.mkcol(url.clone()).await.is_err() {
                let _ = self.mkcol(url).await;
            }
        }
    }

    /// One MKCOL; an existing folder (405) is fine.
    async fn mkcol(&self, url: url::Url) -> Result<(), String> {
        let mkcol = Method::from_bytes(b"MKCOL").expect("a valid method name");
        let shown = url.path().to_string();
        let status = self
            .client
            .request(mkcol, url)
            .send()
            .await
            .map_err(|error| error.to_string())?
            .status();
        if status.is_success() || status == StatusCode::METHOD_NOT_ALLOWED {
            Ok(())
        } else {
            Err(format!("MKCOL {shown}: server returned {status}"))
        }
    }
}
