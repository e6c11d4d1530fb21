//! Opening the object store a [`RemoteUrl`] names. Credentials come only from the environment
//! and each cloud's usual provider chain (`object_store`'s `from_env` builders: AWS_*, GOOGLE_*,
//! AZURE_* variables, instance metadata, web identity); HTTP remotes take basic auth from the
//! URL's user info or `WAREZ_REMOTE_USER`/`WAREZ_REMOTE_PASSWORD`, or a bearer token from
//! `WAREZ_REMOTE_TOKEN`. Nothing here prints a credential.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientConfigKey, ClientOptions, ObjectStore, RetryConfig};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use super::http_put::HttpPut;
use super::url::{RemoteUrl, Scheme};

/// Environment variables of HTTP remotes.
pub const USER_ENV: &str = "WAREZ_REMOTE_USER";
pub const PASSWORD_ENV: &str = "WAREZ_REMOTE_PASSWORD";
pub const TOKEN_ENV: &str = "WAREZ_REMOTE_TOKEN";

/// An opened remote: the object store, and for HTTP the streaming uploader large objects need
/// (`object_store`'s HTTP store has no multipart upload).
pub struct Backend {
    pub store: Arc<dyn ObjectStore>,
    pub http_put: Option<HttpPut>,
}

/// Connection settings shared by every backend: fail fast when the server is down (a run goes
/// on without it), but give a large transfer time to finish. Given as config keys so that the
/// cloud builders keep the client settings they read from the environment (`AWS_ALLOW_HTTP`…).
const CLIENT_SETTINGS: [(ClientConfigKey, &str); 2] = [
    (ClientConfigKey::ConnectTimeout, "5s"),
    (ClientConfigKey::Timeout, "30m"),
];

fn client_options() -> ClientOptions {
    CLIENT_SETTINGS
        .iter()
        .fold(ClientOptions::new(), |options, (key, value)| {
            options.with_config(*key, *value)
        })
}

fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
    }
}

/// Opens the store; errors name no credential.
pub fn open(url: &RemoteUrl) -> Result<Backend, String> {
    let with_prefix = |store: Arc<dyn ObjectStore>| -> Arc<dyn ObjectStore> {
        let prefix = url.prefix();
        if prefix.is_empty() {
            store
        } else {
            Arc::new(PrefixStore::new(store, prefix.as_str()))
        }
    };
    let cloud_url = format!("{}://{}", url.without_credentials().scheme(), url.bucket());
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        Scheme::S3 => {
            let mut builder = CLIENT_SETTINGS.iter().fold(
                AmazonS3Builder::from_env().with_url(cloud_url),
                |builder, (key, value)| {
                    builder.with_config(AmazonS3ConfigKey::Client(*key), *value)
                },
            );
            builder = builder.with_retry(retry_config());
            // AWS_REGION is what the AWS CLI and SDKs read first; object_store reads only
            // AWS_DEFAULT_REGION by itself.
            if let Ok(region) = std::env::var("AWS_REGION") {
                builder = builder.with_region(region);
            }
            with_prefix(Arc::new(builder.build().map_err(|e| e.to_string())?))
        }
        Scheme::Gcs => with_prefix(Arc::new(
            CLIENT_SETTINGS
                .iter()
                .fold(
                    GoogleCloudStorageBuilder::from_env().with_url(cloud_url),
                    |builder, (key, value)| {
                        builder.with_config(GoogleConfigKey::Client(*key), *value)
                    },
                )
                .with_retry(retry_config())
                .build()
                .map_err(|e| e.to_string())?,
        )),
        Scheme::Azure => with_prefix(Arc::new(
            CLIENT_SETTINGS
                .iter()
                .fold(
                    MicrosoftAzureBuilder::from_env().with_url(cloud_url),
                    |builder, (key, value)| {
                        builder.with_config(AzureConfigKey::Client(*key), *value)
                    },
                )
                .with_retry(retry_config())
                .build()
                .map_err(|e| e.to_string())?,
        )),
        Scheme::Http => {
            let base = url.without_credentials();
            let mut headers = HeaderMap::new();
            if let Some(value) = http_authorization(url)? {
                headers.insert(AUTHORIZATION, value);
            }
            let store = HttpBuilder::new()
                .with_url(base.as_str())
                .with_client_options(
                    client_options()
                        .with_allow_http(true)
                        .with_default_headers(headers.clone()),
                )
                .with_retry(retry_config())
                .build()
                .map_err(|e| e.to_string())?;
            return Ok(Backend {
                store: Arc::new(store),
                http_put: Some(HttpPut::new(base, headers)?),
            });
        }
        Scheme::File => {
            let dir = url.file_path().ok_or("a file URL needs an absolute path")?;
            std::fs::create_dir_all(&dir)
                .map_err(|error| format!("creating the folder: {error}"))?;
            Arc::new(LocalFileSystem::new_with_prefix(&dir).map_err(|e| e.to_string())?)
        }
    };
    Ok(Backend {
        store,
        http_put: None,
    })
}

/// The `Authorization` header of an HTTP remote, if credentials are given.
fn http_authorization(url: &RemoteUrl) -> Result<Option<HeaderValue>, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let value = if let Some(token) = env(TOKEN_ENV) {
        format!("Bearer {token}")
    } else if let Some((user, password)) = url
        .user_info()
        .or_else(|| env(USER_ENV).map(|user| (user, env(PASSWORD_ENV).unwrap_or_default())))
    {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}")
    } else {
        return Ok(None);
    };
    let mut header = HeaderValue::from_str(&value)
        .map_err(|_| "the HTTP credentials hold characters a header cannot carry".to_string())?;
    header.set_sensitive(true);
    Ok(Some(header))
}
