//! Where the remote is: the URL forms warez-pipe accepts, and how a URL is shown (never with
//! its user info or query, which may hold credentials).

use std::fmt;

/// The kinds of remote, by URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `s3://bucket/prefix` (AWS or any S3-compatible server through `AWS_ENDPOINT_URL`).
    S3,
    /// `gs://bucket/prefix`.
    Gcs,
    /// `az://container/prefix` (account from `AZURE_STORAGE_ACCOUNT_NAME`).
    Azure,
    /// `http(s)://host/path`: plain GET/PUT/HEAD (Bazel's HTTP cache, nginx `dav_methods PUT`,
    /// WebDAV).
    Http,
    /// `file:///path`: a shared mount.
    File,
}

/// A parsed remote URL.
#[derive(Debug, Clone)]
pub struct RemoteUrl {
    url: url::Url,
    scheme: Scheme,
}

/// The accepted forms, for error messages.
pub const URL_FORMS: &str =
    "s3://bucket/prefix, gs://bucket/prefix, az://container/prefix, http(s)://host/path, file:///path";

impl RemoteUrl {
    /// Parses a remote URL; the error says what is wrong without repeating the URL (it may
    /// carry a password).
    pub fn parse(text: &str) -> Result<RemoteUrl, String> {
        let url = url::Url::parse(text.trim())
            .map_err(|error| format!("not a URL ({error}); expected one of {URL_FORMS}"))?;
        let scheme = match url.scheme() {
            "s3" | "s3a" => Scheme::S3,
            "gs" => Scheme::Gcs,
            "az" | "abfs" | "abfss" => Scheme::Azure,
            "http" | "https" => Scheme::Http,
            "file" => Scheme::File,
            other => {
                return Err(format!(
                    "unsupported scheme `{other}:`; expected one of {URL_FORMS}"
                ))
            }
        };
        let needs_host = matches!(
            scheme,
            Scheme::S3 | Scheme::Gcs | Scheme::Azure | Scheme::Http
        );
        // The URL parser repairs what it reads (`http:///x` and `http:x` become `http://x/`,
        // `file:cache` becomes `file:///cache`), so the text as written is checked too: a host
        // or bucket follows exactly two slashes, and a file path is absolute.
        let after_scheme = text.split_once(':').map_or("", |(_, rest)| rest);
        let host_written = after_scheme.starts_with("//") && !after_scheme.starts_with("///");
        if needs_host && (!host_written || url.host_str().is_none_or(str::is_empty)) {
            return Err(format!(
                "a {} URL needs a bucket or host after `//`",
                url.scheme()
            ));
        }
        let file_path_absolute = after_scheme.starts_with('/');
        if scheme == Scheme::File
            && (!file_path_absolute || url.host_str().is_some_and(|host| !host.is_empty()))
        {
            return Err("a file URL is file:///absolute/path (three slashes)".to_string());
        }
        Ok(RemoteUrl { url, scheme })
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Whether the URL itself carries a password (`https://user:secret@host/…`).
    pub fn has_password(&self) -> bool {
        self.url.password().is_some()
    }

    /// The user name and password written in the URL, if any (HTTP basic auth).
    pub fn user_info(&self) -> Option<(String, String)> {
        let user = percent_decode(self.url.username());
        let password = self.url.password().map(percent_decode);
        (!user.is_empty() || password.is_some()).then(|| (user, password.unwrap_or_default()))
    }

    /// The URL without user info, query or fragment: what requests go to.
    pub fn without_credentials(&self) -> url::Url {
        let mut url = self.url.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        url.set_fragment(None);
        url
    }

    /// The bucket (or container) of a cloud URL.
    pub fn bucket(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// The path below the bucket or host, without leading or trailing `/`.
    pub fn prefix(&self) -> String {
        percent_decode(self.url.path().trim_matches('/'))
    }

    /// The local folder of a `file://` URL.
    pub fn file_path(&self) -> Option<std::path::PathBuf> {
        self.url.to_file_path().ok()
    }
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// Shown without user info, query or fragment.
impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.without_credentials();
        f.write_str(shown.as_str().trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_without_credentials() {
        let url = RemoteUrl::parse("https://ci:s%40cret@cache.example/warez?sig=abc#x").unwrap();
        assert_eq!(url.to_string(), "https://cache.example/warez");
        assert_eq!(url.user_info(), Some(("ci".into(), "s@cret".into())));
        assert!(url.has_password());
    }

    #[test]
    fn schemes_and_parts() {
        let s3 = RemoteUrl::parse("s3://bucket/team/cache/").unwrap();
        assert_eq!(s3.scheme(), Scheme::S3);
        assert_eq!(
            (s3.bucket(), s3.prefix().as_str()),
            ("bucket", "team/cache")
        );
        let file = RemoteUrl::parse("file:///mnt/shared").unwrap();
        assert_eq!(
            file.file_path().unwrap(),
            std::path::Path::new("/mnt/shared")
        );
        assert!(RemoteUrl::parse("ftp://host/x")
            .unwrap_err()
            .contains("unsupported scheme `ftp:`"));
        assert!(RemoteUrl::parse("s3:///nobucket").is_err());
        assert!(RemoteUrl::parse("file://host/x").is_err());
        // What the URL parser would repair into another place is refused as written.
        for written in [
            "file:cache",
            "file:../cache",
            "http:///x",
            "http:host/x",
            "s3:bucket",
        ] {
            assert!(RemoteUrl::parse(written).is_err(), "{written}");
        }
        assert!(RemoteUrl::parse("file:/mnt/shared").is_ok());
        assert!(RemoteUrl::parse("not a url").is_err());
    }
}
