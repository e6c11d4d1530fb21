//! `--cache DIR` / `WAREZ_CACHE`, shared by every command that uses the cache.
//!
//! An empty value counts as unset (`WAREZ_CACHE=` in a shell or CI file is a common way to
//! clear it): clap's path parser rejects an empty value, which made every command fail.

use std::path::{Path, PathBuf};

use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::Args;

#[derive(Debug, Args)]
pub struct CacheArg {
    /// Cache folder [default: <project>/cache; an empty value counts as unset]
    #[arg(
        long = "cache",
        env = "WAREZ_CACHE",
        value_name = "DIR",
        value_parser = OsStringValueParser::new().map(PathBuf::from)
    )]
    cache: Option<PathBuf>,
}

impl CacheArg {
    /// The cache folder asked for, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.cache
            .as_deref()
            .filter(|dir| !dir.as_os_str().is_empty())
    }
}
