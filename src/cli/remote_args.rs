//! `--remote URL` and `--remote-read-only`, shared by `run`, `status`, `push` and `pull`.

use anyhow::{anyhow, Result};
use clap::Args;

use crate::engine::remote::{Remote, RemoteUrl};
use crate::engine::spec::Pipeline;

#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// Shared remote cache: s3://bucket/prefix, gs://…, az://…, http(s)://host/path or
    /// file:///path [default: the pipeline's `remote:`]
    #[arg(long, env = "WAREZ_REMOTE", hide_env_values = true, value_name = "URL")]
    pub remote: Option<String>,
    /// Read from the remote but never write to it (machines that must not publish).
    #[arg(
        long,
        env = "WAREZ_REMOTE_READ_ONLY",
        hide_env_values = true,
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub remote_read_only: bool,
}

impl RemoteArgs {
    /// The remote asked for (flag, else environment, else the pipeline's `remote:`), opened;
    /// `None` when there is none. A URL that does not parse is an error naming its source.
    pub fn open(&self, pipeline: &Pipeline) -> Result<Option<Remote>> {
        let (text, source) = match self.remote.as_deref().filter(|url| !url.trim().is_empty()) {
            Some(url) => (url, "--remote / WAREZ_REMOTE".to_string()),
            None => match pipeline.remote.as_deref() {
                Some(url) => (url, format!("`remote:` in {}", pipeline.file.display())),
                None => return Ok(None),
            },
        };
        let url = RemoteUrl::parse(text).map_err(|problem| anyhow!("{source}: {problem}"))?;
        Ok(Some(Remote::open(&url, self.remote_read_only)?))
    }
}
