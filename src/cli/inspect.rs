//! `warez-pipe inspect FILE [OTHER_FILE] [--schema SCHEMA]`: reads a RecommenderModel Avro file
//! (the container file, or the bare datum with `--schema`) and prints what the notebook's
//! read-back cells showed: model id, graph size and node count, graph inputs and outputs, map
//! sizes and first entries. Given two files, also checks that they hold the same record and
//! exits 1 when they do not.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::ml::data::shown::escape_controls;
use crate::ml::model::avro_record::{self, RecommenderModel};
use crate::ml::model::tf_export::{self, GraphSummary};

/// How many entries of each map are shown.
const SHOWN_ENTRIES: usize = 3;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A RecommenderModel Avro file: `recommender.avro` or `recommender-no-schema.avro`.
    file: PathBuf,
    /// A second file, checked to hold the same record as the first.
    other_file: Option<PathBuf>,
    /// The `.avsc` to read a file without embedded schema with (e.g. avro/RecommenderModel.avsc).
    #[arg(long, value_name = "SCHEMA")]
    schema: Option<PathBuf>,
}

pub fn run(args: InspectArgs) -> Result<ExitCode> {
    let first = read(&args.file, args.schema.as_deref())?;
    print_summary(&args.file, &first)?;
    let Some(other_file) = &args.other_file else {
        return Ok(ExitCode::SUCCESS);
    };
    let second = read(other_file, args.schema.as_deref())?;
    outln!();
    print_summary(other_file, &second)?;
    outln!();
    let differences = differences(&first, &second);
    if differences.is_empty() {
        outln!("same record in both files");
        Ok(ExitCode::SUCCESS)
    } else {
        outln!(
            "the files hold different records: {}",
            differences.join("; ")
        );
        Ok(ExitCode::FAILURE)
    }
}

/// Both files are read whole: a device (`/dev/zero`) would be read until memory runs out, a
/// named pipe would wait for a writer forever.
fn ensure_regular_file(path: &Path) -> Result<()> {
    let metadata =
        std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        metadata.is_file(),
        "{} is not a regular file (a folder, a device or a pipe)",
        path.display()
    );
    Ok(())
}

/// Reads a container file (recognised by its magic bytes) or a bare datum with `schema`.
fn read(path: &Path, schema: Option<&Path>) -> Result<RecommenderModel> {
    ensure_regular_file(path)?;
    if let Some(schema) = schema {
        ensure_regular_file(schema)?;
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if avro_record::is_container(&bytes) {
        let (record, _) = RecommenderModel::from_container(&bytes)
            .with_context(|| format!("{}", path.display()))?;
        return Ok(record);
    }
    let Some(schema_path) = schema else {
        anyhow::bail!(
            "{} is not an Avro container file; to read it as a bare datum, give its schema: \
             --schema avro/RecommenderModel.avsc",
            path.display()
        );
    };
    let schema = avro_record::read_schema(schema_path)?;
    RecommenderModel::from_datum(&schema, &bytes).with_context(|| {
        format!(
            "{} read as a bare datum of {}",
            path.display(),
            schema_path.display()
        )
    })
}

fn print_summary(path: &Path, record: &RecommenderModel) -> Result<()> {
    let graph = tf_export::decode_graph(&record.tensor_flow_model[..])
        .with_context(|| format!("{}: field tensorFlowModel", path.display()))?;
    let graph = GraphSummary::of(&graph);
    outln!("{}", path.display());
    outln!("  model id     {}", escape_controls(&record.model_id));
    outln!(
        "  graph        {} bytes, {} nodes",
        record.tensor_flow_model.len(),
        graph.nodes
    );
    outln!(
        "  inputs       {}",
        escape_controls(&graph.inputs.join(", "))
    );
    outln!(
        "  outputs      {}",
        escape_controls(&graph.outputs.join(", "))
    );
    for (name, ids) in [
        ("productMap ", &record.product_ids),
        ("customerMap", &record.customer_ids),
    ] {
        let shown: Vec<String> = ids
            .iter()
            .take(SHOWN_ENTRIES)
            .enumerate()
            .map(|(index, id)| format!("{} → {index}", escape_controls(id)))
            .collect();
        let more = if ids.len() > SHOWN_ENTRIES {
            ", …"
        } else {
            ""
        };
        outln!(
            "  {name}  {} entries: {}{more}",
            ids.len(),
            shown.join(", ")
        );
    }
    Ok(())
}

/// What differs between two records, one phrase per field.
fn differences(first: &RecommenderModel, second: &RecommenderModel) -> Vec<String> {
    let mut differences = Vec::new();
    if first.model_id != second.model_id {
        differences.push(format!(
            "modelId {:?} vs {:?}",
            first.model_id, second.model_id
        ));
    }
    if first.tensor_flow_model != second.tensor_flow_model {
        differences.push(format!(
            "tensorFlowModel differs ({} vs {} bytes)",
            first.tensor_flow_model.len(),
            second.tensor_flow_model.len()
        ));
    }
    for (name, a, b) in [
        ("productMap", &first.product_ids, &second.product_ids),
        ("customerMap", &first.customer_ids, &second.customer_ids),
    ] {
        if a != b {
            let at = a.iter().zip(b).position(|(x, y)| x != y);
            differences.push(match at {
                Some(index) => format!(
                    "{name} differs at id {index} ({} vs {})",
                    escape_controls(&a[index]),
                    escape_controls(&b[index])
                ),
                None => format!("{name} has {} vs {} entries", a.len(), b.len()),
            });
        }
    }
    differences
}
