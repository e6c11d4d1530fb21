//! The `write_avro` stage kind: packages the frozen TensorFlow graph and the two id maps into
//! the `warez.RecommenderModel` Avro record (see [`crate::ml::model::avro_record`]), written as an
//! object container file (`container`, schema embedded) and as a bare datum (`datum`).
//!
//! # The model id
//! `recommender-model-YYYY-MM-DD-HH:MM:SS`, in UTC, of the moment the model is packaged: the
//! stage's run. `SOURCE_DATE_EPOCH` (seconds since 1970) replaces the clock, for reproducible
//! builds; the `model_id` param replaces the whole id. The engine fingerprints params, not
//! environment variables: while the graph, maps, schema and params are unchanged the stage is
//! fresh and keeps the id (and bytes) of the run that wrote it, whatever the clock or
//! `SOURCE_DATE_EPOCH` say now. A new model id therefore means a new package of something that
//! changed; set `model_id` to force one.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::engine::kind::{OutputRole, ParamSpec, Params, StageContext, StageKind, Steps};
use crate::ml::data::idmap::IdMap;
use crate::ml::model::avro_record::{self, RecordParts};
use crate::ml::model::tf_export;

pub struct WriteAvro;

const MODEL_ID_PREFIX: &str = "recommender-model-";

impl StageKind for WriteAvro {
    fn name(&self) -> &'static str {
        "write_avro"
    }
    fn version(&self) -> u32 {
        // 2: maps written as one block (1 cut maps of more than 1,024 ids into several)
        2
    }
    fn inputs(&self) -> &'static [&'static str] {
        &["graph", "customer_map", "product_map", "schema"]
    }
    fn outputs(&self) -> &'static [OutputRole] {
        &[
            OutputRole {
                role: "container",
                default_name: "recommender.avro",
            },
            OutputRole {
                role: "datum",
                default_name: "recommender-no-schema.avro",
            },
        ]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::new(
                "model_id",
                serde_yaml::Value::Null,
                "the record's modelId; default recommender-model-<UTC time of packaging>",
            ),
            ParamSpec::new(
                "codec",
                "null",
                "compression of the container file: null, deflate, snappy or zstd",
            ),
        ]
    }
    fn check_params(&self, params: &Params) -> Result<()> {
        if let Some(id) = params.optional_str("model_id")? {
            if id.is_empty() {
                bail!("param `model_id`: must not be empty (leave it unset for a time-based id)");
            }
        }
        avro_record::parse_codec(params.str("codec")?).context("param `codec`")?;
        Ok(())
    }
    fn reproducibility_note(&self) -> Option<&'static str> {
        Some(
            "the default model id embeds the packaging time: pin it with SOURCE_DATE_EPOCH \
             (e.g. `export SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)`) or the `model_id` param",
        )
    }
    fn run(&self, ctx: &StageContext) -> Result<()> {
        let schema = avro_record::read_schema(ctx.input("schema")?).context("input `schema`")?;
        let codec = avro_record::parse_codec(ctx.params.str("codec")?).context("param `codec`")?;
        // Each step is one pass over the maps or the graph (seconds each at millions of ids).
        let steps = Steps::start(
            ctx.progress,
            &[
                "reading the id maps",
                "reading and checking the graph",
                "writing the datum",
                "writing the container",
            ],
        );
        steps.begin(0);
        // The id maps first: checking a map for repeated ids builds a lookup table as large as
        // the map, which is dropped before the graph (the largest input) is read, so the two
        // never add up in the stage's peak.
        let products = read_map(ctx, "product_map")?;
        let customers = read_map(ctx, "customer_map")?;
        steps.begin(1);
        // As `Bytes`, so checking the graph slices its tables out of the buffer, not copies.
        let graph = bytes::Bytes::from(ctx.read_input("graph")?);
        let graph_path = ctx.input("graph")?;
        tf_export::decode_graph(graph.clone())
            .with_context(|| format!("input `graph` ({})", graph_path.display()))?;
        let model_id = match ctx.params.optional_str("model_id")? {
            Some(id) => id.to_string(),
            None => model_id_at(packaging_time()?),
        };
        let record = RecordParts {
            model_id: &model_id,
            tensor_flow_model: &graph,
            product_ids: products.ids(),
            customer_ids: customers.ids(),
        };

        // Streamed into the staging folder, which the engine moves into place only when the
        // stage succeeds: a failure leaves nothing behind.
        steps.begin(2);
        let datum_path = ctx.output("datum")?;
        let written = record
            .write_datum(&schema, BufWriter::new(create(datum_path, "datum")?))
            .with_context(|| format!("writing output `datum` ({})", datum_path.display()))?;
        steps.begin(3);
        let container_path = ctx.output("container")?;
        avro_record::write_container(
            &schema,
            codec,
            File::open(datum_path)
                .with_context(|| format!("reading output `datum` ({})", datum_path.display()))?,
            written,
            BufWriter::new(create(container_path, "container")?),
        )
        .with_context(|| format!("writing output `container` ({})", container_path.display()))?;
        steps.finish();
        let container_len = std::fs::metadata(container_path)?.len();
        ctx.progress.println(&format!(
            "{model_id}: {} products, {} customers, graph {} bytes; container {container_len} bytes, datum {} bytes",
            products.len(),
            customers.len(),
            graph.len(),
            written.len
        ));
        Ok(())
    }
}

fn create(path: &Path, role: &str) -> Result<File> {
    File::create(path).with_context(|| format!("creating output `{role}` ({})", path.display()))
}

fn read_map(ctx: &StageContext, role: &str) -> Result<IdMap> {
    let path = ctx.input(role)?;
    IdMap::read(path).with_context(|| format!("input `{role}` ({})", path.display()))
}

/// Seconds since 1970 (UTC) the model is packaged at: `SOURCE_DATE_EPOCH`, else now.
fn packaging_time() -> Result<i64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => value.trim().parse().with_context(|| {
            format!("SOURCE_DATE_EPOCH={value:?} is not a whole number of seconds")
        }),
        Err(_) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .context("the system clock is before 1970")?;
            Ok(now.as_secs() as i64)
        }
    }
}

/// `recommender-model-YYYY-MM-DD-HH:MM:SS` for a UTC time in seconds since 1970.
pub fn model_id_at(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let seconds = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{MODEL_ID_PREFIX}{year:04}-{month:02}-{day:02}-{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01, after Howard
/// Hinnant's `civil_from_days`. Written out rather than pulling in a date crate for one
/// timestamp format.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::model_id_at;

    #[test]
    fn model_ids_are_utc_calendar_times() {
        assert_eq!(model_id_at(0), "recommender-model-1970-01-01-00:00:00");
        // 2000-02-29 (a leap day in a year divisible by 400) 23:59:59
        assert_eq!(
            model_id_at(951_868_799),
            "recommender-model-2000-02-29-23:59:59"
        );
        // 2026-11-26 05:36:14, checked with `date -u -d @1795671374`
        assert_eq!(
            model_id_at(1_795_671_374),
            "recommender-model-2026-11-26-05:36:14"
        );
        assert_eq!(model_id_at(-1), "recommender-model-1969-12-31-23:59:59");
    }
}
