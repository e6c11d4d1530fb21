//! Where a pipeline's files live: the defaults of `name`, `project_dir` and `model_path`, for
//! the loader and for commands that read only those keys (`predict`, `metrics`).

use std::io;
use std::path::{Path, PathBuf};

use super::path;

/// `name:` when written, else the pipeline file's stem.
pub fn name(file: &Path, written: Option<&str>) -> String {
    match written {
        Some(name) => name.to_string(),
        None => file
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pipeline".to_string()),
    }
}

/// The absolute project folder: `project_dir:` relative to the pipeline file's folder (default
/// that folder). The error carries the folder that could not be resolved.
pub fn project_dir(file: &Path, written: Option<&str>) -> Result<PathBuf, (PathBuf, io::Error)> {
    let file_dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let project_dir = file_dir.join(written.unwrap_or("."));
    project_dir
        .canonicalize()
        .map_err(|error| (project_dir, error))
}

/// `model_path:` (default `models/<name>`), normalized, relative to the project folder.
pub fn model_path(name: &str, written: Option<&str>) -> String {
    path::normalize(written.unwrap_or(&format!("models/{name}")))
}
