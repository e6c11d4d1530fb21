//! Where a trained model lives, for the commands that read one (`predict`, `metrics`).
//!
//! They need only three keys of the pipeline file, so they read just those and resolve them
//! with the engine's own defaults ([`defaults`]). Loading and validating the whole
//! pipeline instead would refuse to score a model while an unrelated stage's spec is being
//! edited. The cache is `--cache`/`WAREZ_CACHE`, else `<project>/cache`, as for `run`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::engine::spec::defaults;

/// The pipeline the commands read when none is named.
pub const DEFAULT_PIPELINE: &str = "pipelines/recommender.yaml";

/// The model folder, and the project folder and cache when a pipeline file is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLocation {
    pub model_dir: PathBuf,
    pub project_dir: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
}

#[derive(Deserialize)]
struct PipelineHead {
    name: Option<String>,
    project_dir: Option<String>,
    model_path: Option<String>,
}

/// Resolves the model folder: `model_dir` when given, else the pipeline's `model_path`.
/// `pipeline` defaults to [`DEFAULT_PIPELINE`]; a missing default is an error only when the
/// model folder has to come from it.
pub fn locate(
    pipeline: Option<&Path>,
    model_dir: Option<&Path>,
    cache: Option<&Path>,
) -> Result<ModelLocation> {
    let pipeline_file = pipeline.unwrap_or(Path::new(DEFAULT_PIPELINE));
    let head = if pipeline.is_some() || model_dir.is_none() || pipeline_file.is_file() {
        Some(read_head(pipeline_file)?)
    } else {
        None
    };
    let project_dir = match &head {
        Some(head) => Some(head.project_dir()?),
        None => None,
    };
    let model_dir = match (model_dir, &head, &project_dir) {
        (Some(dir), _, _) => dir.to_path_buf(),
        (None, Some(head), Some(project)) => project.join(head.model_path()),
        _ => unreachable!("the pipeline head is read whenever no model folder is given"),
    };
    let cache_dir = cache
        .map(Path::to_path_buf)
        .or_else(|| project_dir.as_ref().map(|project| project.join("cache")));
    Ok(ModelLocation {
        model_dir,
        project_dir,
        cache_dir,
    })
}

/// The keys read from a pipeline file, with the file's location.
struct Head {
    keys: PipelineHead,
    file: PathBuf,
}

impl Head {
    fn project_dir(&self) -> Result<PathBuf> {
        defaults::project_dir(&self.file, self.keys.project_dir.as_deref()).map_err(
            |(project, error)| {
                anyhow::Error::new(error).context(format!(
                    "{}: project_dir `{}`",
                    self.file.display(),
                    project.display()
                ))
            },
        )
    }

    fn model_path(&self) -> String {
        let name = defaults::name(&self.file, self.keys.name.as_deref());
        defaults::model_path(&name, self.keys.model_path.as_deref())
    }
}

fn read_head(file: &Path) -> Result<Head> {
    let text = std::fs::read_to_string(file).with_context(|| {
        format!(
            "reading pipeline {} (name one, or give --model-dir)",
            file.display()
        )
    })?;
    let head: PipelineHead = serde_yaml::from_str(&text)
        .with_context(|| format!("{}: reading name/project_dir/model_path", file.display()))?;
    Ok(Head {
        keys: head,
        file: file.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pipeline(dir: &Path, text: &str) -> PathBuf {
        let file = dir.join("pipelines/p.yaml");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, text).unwrap();
        file
    }

    #[test]
    fn model_path_is_relative_to_the_project_dir() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_pipeline(
            dir.path(),
            "name: r\nproject_dir: ..\nmodel_path: models/x\nstages: {}\n",
        );
        let location = locate(Some(&file), None, None).unwrap();
        let project = dir.path().canonicalize().unwrap();
        assert_eq!(location.model_dir, project.join("models/x"));
        assert_eq!(location.cache_dir, Some(project.join("cache")));
    }

    #[test]
    fn model_path_defaults_to_models_file_stem_beside_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_pipeline(dir.path(), "stages: {}\n");
        let location = locate(Some(&file), None, Some(Path::new("/c"))).unwrap();
        let folder = dir.path().join("pipelines").canonicalize().unwrap();
        assert_eq!(location.model_dir, folder.join("models/p"));
        assert_eq!(location.cache_dir, Some(PathBuf::from("/c")));
    }

    #[test]
    fn model_path_is_normalized() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_pipeline(dir.path(), "name: r\nmodel_path: ./a/../models//x/\n");
        let location = locate(Some(&file), None, None).unwrap();
        let folder = dir.path().join("pipelines").canonicalize().unwrap();
        assert_eq!(location.model_dir, folder.join("models/x"));
    }

    #[test]
    fn an_explicit_model_dir_needs_no_pipeline() {
        let location = locate(None, Some(Path::new("/m")), None).unwrap();
        assert_eq!(location.model_dir, PathBuf::from("/m"));
    }

    #[test]
    fn a_missing_pipeline_is_named() {
        let error = locate(Some(Path::new("/nowhere/p.yaml")), None, None).unwrap_err();
        assert!(
            format!("{error:#}").contains("/nowhere/p.yaml"),
            "{error:#}"
        );
    }
}
