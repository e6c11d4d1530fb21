//! `warez-pipe report [PIPELINE] [--out FILE]`: one self-contained HTML page about a pipeline's
//! models — the stage graph with each stage's last result and time (matrix variants folded into
//! one node), per-epoch loss curves of every model, the variants' metrics as a table and a bar
//! chart, the model selected and the model packaged.
//!
//! Everything comes from files already there: the cache's `history.json` (each stage's last
//! result, written by every `run`), each model's `metrics.json`, `selection.json` of a select
//! stage, and every Avro container file a stage writes (a `RecommenderModel`). Nothing runs.
//! The page has inline CSS and inline SVG only: no script, no font, no link to anything, so it
//! opens the same offline, attached to a ticket or archived. Every text from data is escaped
//! (maud escapes whatever it interpolates).
//!
//! The default output is `<model_path>/report.html`; it is written atomically. A path that is a
//! stage's input or output, or the pipeline or lock file, is refused.

mod charts;
mod page;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::pipeline_args::{or_exit, PipelineArgs};
use super::sweep::{self, Sweep};
use crate::engine::dag::Grouped;
use crate::engine::exec::{exit_on_interrupt, History, StageHistory};
use crate::engine::spec::{path, Pipeline};
use crate::engine::store::{now_unix, Store};
use crate::ml::model::avro_record::{self, RecommenderModel};

/// The report's file name in `model_path` when `--out` is not given.
const DEFAULT_FILE: &str = "report.html";

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Where to write the page (its folder must exist) [default: <model_path>/report.html]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let loaded = or_exit!(args.pipeline.load());
    let pipeline = &loaded.pipeline;
    let out = match &args.out {
        Some(out) => out.clone(),
        None => pipeline.abs(&pipeline.model_path).join(DEFAULT_FILE),
    };
    refuse_pipeline_files(pipeline, &out)?;
    if let Some(out) = &args.out {
        super::out_path::check("--out", out)?;
    }
    let history = if loaded.cache_dir.is_dir() {
        let store = Store::open(&loaded.cache_dir)
            .with_context(|| format!("opening the cache {}", loaded.cache_dir.display()))?;
        let (history, warning) = History::load(&store);
        if let Some(warning) = warning {
            errln!("{warning}");
        }
        history.of(&pipeline.name).cloned().unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    let contents = Contents {
        pipeline,
        grouped: loaded.dag.grouped(pipeline),
        history,
        sweeps: sweep::sweeps(pipeline, &loaded.dag),
        packaged: packaged(pipeline),
        generated: now_unix(),
    };
    let html = page::render(&contents).into_string();
    exit_on_interrupt(|| {
        crate::engine::files::write_atomic(&out, html.as_bytes())
            .with_context(|| format!("writing {}", out.display()))
    })?;
    outln!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// What the page shows.
pub struct Contents<'a> {
    pub pipeline: &'a Pipeline,
    pub grouped: Grouped,
    /// This pipeline's stages' last results, by stage name.
    pub history: BTreeMap<String, StageHistory>,
    pub sweeps: Vec<Sweep>,
    pub packaged: Vec<Packaged>,
    /// Unix seconds.
    pub generated: u64,
}

/// An Avro container a stage writes.
pub struct Packaged {
    pub stage: String,
    /// Relative to the project.
    pub file: String,
    /// None: not written yet; an error: the file is no RecommenderModel.
    pub model: Option<Result<PackagedModel, String>>,
}

/// What the record holds.
pub struct PackagedModel {
    pub model_id: String,
    pub customers: usize,
    pub products: usize,
    pub graph_bytes: usize,
}

/// Every stage output with the role `container` or ending in `.avro` that is an Avro
/// container file (the bare datum cannot be read without its schema, and holds the same).
fn packaged(pipeline: &Pipeline) -> Vec<Packaged> {
    let mut found = Vec::new();
    for stage in &pipeline.stages {
        for out in &stage.outs {
            let container_role = out.role.as_deref() == Some("container");
            if !container_role && !out.path.ends_with(".avro") {
                continue;
            }
            let model = match std::fs::read(pipeline.abs(&out.path)) {
                Err(_) => None,
                Ok(bytes) if !container_role && !avro_record::is_container(&bytes) => continue,
                Ok(bytes) => Some(
                    RecommenderModel::from_container(&bytes)
                        .map(|(record, _)| PackagedModel {
                            model_id: record.model_id,
                            customers: record.customer_ids.len(),
                            products: record.product_ids.len(),
                            graph_bytes: record.tensor_flow_model.len(),
                        })
                        .map_err(|error| format!("{error:#}")),
                ),
            };
            found.push(Packaged {
                stage: stage.name.clone(),
                file: out.path.clone(),
                model,
            });
        }
    }
    found
}

/// Refuses to write the report over a stage's input or output, or the pipeline or lock file.
fn refuse_pipeline_files(pipeline: &Pipeline, out: &Path) -> Result<()> {
    let absolute =
        std::path::absolute(out).with_context(|| format!("resolving --out {}", out.display()))?;
    let real = |path: &Path| {
        let parent = path.parent().and_then(|parent| parent.canonicalize().ok());
        match (parent, path.file_name()) {
            (Some(parent), Some(name)) => parent.join(name),
            _ => path.to_path_buf(),
        }
    };
    let out_real = real(&absolute);
    if out_real.is_dir() {
        bail!("--out {}: is a folder; name a file", out.display());
    }
    for file in [pipeline.file.clone(), pipeline.lock_file()] {
        if real(&std::path::absolute(&file).unwrap_or(file.clone())) == out_real {
            bail!(
                "--out {}: is the pipeline's file {}; name another file",
                out.display(),
                file.display()
            );
        }
    }
    let Ok(relative) = out_real.strip_prefix(real(&pipeline.project_dir)) else {
        return Ok(());
    };
    let relative = relative.to_string_lossy();
    for stage in &pipeline.stages {
        for (what, ports) in [("output", &stage.outs), ("input", &stage.deps)] {
            if let Some(port) = ports.iter().find(|p| path::overlaps(&p.path, &relative)) {
                bail!(
                    "--out {}: would overwrite `{}`, an {what} of stage `{}`; name another file",
                    out.display(),
                    port.path,
                    stage.name
                );
            }
        }
    }
    Ok(())
}
