//! The `warez.RecommenderModel` Avro record the model-serving streamlet receives: the model id,
//! the frozen TensorFlow graph, and the product and customer id maps (UUID → dense index).
//!
//! Written two ways, both with `apache-avro`:
//! - a bare binary datum ([`RecordParts::write_datum`]), readable only with the `.avsc`;
//! - an object container file with the schema embedded ([`write_container`]), around the datum.
//!
//! Both are streamed to their writers from borrowed parts ([`RecordParts`]): a 1M-customer
//! record (a 200 MB graph and 1M ids) is never built in memory; the container copies the datum
//! file it follows (compressed codecs excepted: a block's length precedes it).
//!
//! Same record → same bytes, and the bytes the reference encoders write (Apache Avro for Java's
//! `GenericDatumWriter`, Python `avro`, `fastavro`):
//! - the record's fields are written here in the schema's order, each value with
//!   `apache-avro`'s encoder; the maps' entries go in id order (index 0 first), not through
//!   `apache_avro::types::Value::Map`, a `HashMap`;
//! - a map is written as one block (count, entries, 0), as the reference encoders do. Hand-framed
//!   because `apache-avro`'s serde serializer cuts maps of more than 1,024 entries into several
//!   blocks: valid Avro, but other bytes than a re-encoding of the record by anyone else;
//! - the container file is written here too: the header, `avro.schema` then `avro.codec`
//!   (`apache_avro::Writer` keeps header metadata in a `HashMap`, whose order changes from run to
//!   run), then one data block holding the datum above, compressed with the codec;
//! - the sync marker is the first 16 bytes of the blake3 hash of the embedded schema and the
//!   datum, not random: it only has to be unlikely to occur inside the data.
//!
//! The schema is checked against the record before anything is encoded
//! ([`check_schema`]), so a schema that does not fit fails with the name of the field.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context, Result};
use apache_avro::schema::{RecordField, RecordSchema};
use apache_avro::types::Value;
use apache_avro::{Codec, Schema};
use serde::ser::Serializer;
use serde::Serialize;

use crate::ml::data::shown::escape_controls;
use crate::ml::data::try_vec;

/// The record's full name in the schema.
pub const RECORD_NAME: &str = "warez.RecommenderModel";
const MODEL_ID: &str = "modelId";
const TENSOR_FLOW_MODEL: &str = "tensorFlowModel";
const PRODUCT_MAP: &str = "productMap";
const CUSTOMER_MAP: &str = "customerMap";

/// Magic bytes that open an Avro object container file.
const CONTAINER_MAGIC: &[u8; 4] = b"Obj\x01";

/// One `warez.RecommenderModel` record.
#[derive(Debug, Clone, PartialEq)]
pub struct RecommenderModel {
    pub model_id: String,
    /// A binary TensorFlow GraphDef.
    pub tensor_flow_model: Vec<u8>,
    /// Product UUIDs; the position is the id the model uses (`productMap[uuid] = position`).
    pub product_ids: Vec<String>,
    /// Customer UUIDs; the position is the id the model uses.
    pub customer_ids: Vec<String>,
}

/// Reads and parses an `.avsc` file and checks that it describes [`RecommenderModel`].
pub fn read_schema(path: &Path) -> Result<Schema> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the Avro schema {}", path.display()))?;
    let schema = Schema::parse_str(&text)
        .with_context(|| format!("{}: not a valid Avro schema", path.display()))?;
    check_schema(&schema).with_context(|| format!("{}", path.display()))?;
    Ok(schema)
}

/// Checks that `schema` is the `warez.RecommenderModel` record with the four fields this module
/// writes, each with the type it writes. Errors name the field at fault.
pub fn check_schema(schema: &Schema) -> Result<()> {
    field_order(schema).map(|_| ())
}

/// Checks `schema` as [`check_schema`] does; returns the record's fields in the schema's order.
fn field_order(schema: &Schema) -> Result<Vec<&'static FieldSpec>> {
    let Schema::Record(RecordSchema { name, fields, .. }) = schema else {
        bail!("the schema is not a record (expected record {RECORD_NAME})");
    };
    ensure!(
        name.fullname(None) == RECORD_NAME,
        "the schema is record `{}`, expected `{RECORD_NAME}`",
        name.fullname(None)
    );
    for FieldSpec {
        name: field,
        type_name,
        fits,
        ..
    } in FIELDS
    {
        let found = fields
            .iter()
            .find(|candidate| candidate.name == field)
            .ok_or_else(|| {
                anyhow!(
                    "the schema has no field `{field}` ({type_name}); its fields are {}",
                    field_names(fields)
                )
            })?;
        ensure!(
            fits(&found.schema),
            "schema field `{field}` has type {}, expected {type_name}",
            serde_json::to_string(&found.schema).unwrap_or_else(|_| "?".into())
        );
    }
    let known: HashSet<&str> = FIELDS.iter().map(|spec| spec.name).collect();
    if let Some(extra) = fields
        .iter()
        .find(|field| !known.contains(field.name.as_str()))
    {
        bail!(
            "schema field `{}` is not part of {RECORD_NAME} (fields written: {})",
            extra.name,
            FIELDS.map(|spec| spec.name).join(", ")
        );
    }
    Ok(fields
        .iter()
        .filter_map(|field| FIELDS.iter().find(|spec| spec.name == field.name))
        .collect())
}

/// The record's fields.
#[derive(Clone, Copy)]
enum Field {
    ModelId,
    TensorFlowModel,
    ProductMap,
    CustomerMap,
}

/// A field of the record: its name, its type as the error shows it, and the type check.
struct FieldSpec {
    field: Field,
    name: &'static str,
    type_name: &'static str,
    fits: fn(&Schema) -> bool,
}

const FIELDS: [FieldSpec; 4] = [
    FieldSpec {
        field: Field::ModelId,
        name: MODEL_ID,
        type_name: "string",
        fits: |schema| matches!(schema, Schema::String),
    },
    FieldSpec {
        field: Field::TensorFlowModel,
        name: TENSOR_FLOW_MODEL,
        type_name: "bytes",
        fits: |schema| matches!(schema, Schema::Bytes),
    },
    FieldSpec {
        field: Field::ProductMap,
        name: PRODUCT_MAP,
        type_name: "map<int>",
        fits: is_int_map,
    },
    FieldSpec {
        field: Field::CustomerMap,
        name: CUSTOMER_MAP,
        type_name: "map<int>",
        fits: is_int_map,
    },
];

fn is_int_map(schema: &Schema) -> bool {
    matches!(schema, Schema::Map(map) if matches!(*map.types, Schema::Int))
}

fn field_names(fields: &[RecordField]) -> String {
    let names: Vec<_> = fields
        .iter()
        .map(|field| format!("`{}`", field.name))
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Whether `bytes` start like an Avro object container file. A RecommenderModel datum never
/// does: it opens with the length of `modelId`, and `O` would encode a negative one.
pub fn is_container(bytes: &[u8]) -> bool {
    bytes.starts_with(CONTAINER_MAGIC)
}

/// Parses a codec name: `null`, `deflate`, `snappy` or `zstd`.
pub fn parse_codec(name: &str) -> Result<Codec> {
    Ok(match name {
        "null" => Codec::Null,
        "deflate" => Codec::Deflate(Default::default()),
        "snappy" => Codec::Snappy,
        "zstd" => Codec::Zstandard(Default::default()),
        other => bail!("unknown Avro codec `{other}` (expected null, deflate, snappy or zstd)"),
    })
}

/// A record to encode, its parts borrowed: `write_avro` encodes straight from the graph and the
/// id maps it read, holding no second copy of them; [`RecommenderModel`] encodes through it too.
pub struct RecordParts<'a, Ids> {
    pub model_id: &'a str,
    /// A binary TensorFlow GraphDef.
    pub tensor_flow_model: &'a [u8],
    /// Product ids in index order.
    pub product_ids: Ids,
    /// Customer ids in index order.
    pub customer_ids: Ids,
}

/// What the object container file around a written datum needs of it.
#[derive(Debug, Clone, Copy)]
pub struct WrittenDatum {
    /// The datum's length in bytes.
    pub len: u64,
    /// The container's sync marker: the start of the blake3 hash of the schema and the datum.
    marker: [u8; 16],
}

impl<'a, Ids: ExactSizeIterator<Item = &'a str> + Clone> RecordParts<'a, Ids> {
    /// Writes the bare binary datum to `out`, hashing it for [`write_container`] on the way.
    pub fn write_datum(&self, schema: &Schema, out: impl Write) -> Result<WrittenDatum> {
        let order = field_order(schema)?;
        for (field, ids) in [
            (PRODUCT_MAP, self.product_ids.len()),
            (CUSTOMER_MAP, self.customer_ids.len()),
        ] {
            ensure!(
                i32::try_from(ids).is_ok(),
                "`{field}` has {ids} ids, more than an Avro int can index"
            );
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(schema_json(schema)?.as_bytes());
        let mut out = Tee {
            out,
            hasher,
            len: 0,
        };
        for spec in order {
            match spec.field {
                Field::ModelId => encode(&Schema::String, &self.model_id, &mut out),
                Field::TensorFlowModel => {
                    encode(&Schema::Bytes, &Bytes(self.tensor_flow_model), &mut out)
                }
                Field::ProductMap => write_id_map(self.product_ids.clone(), &mut out),
                Field::CustomerMap => write_id_map(self.customer_ids.clone(), &mut out),
            }
            .with_context(|| format!("encoding field `{}` of the record", spec.name))?;
        }
        out.out.flush()?;
        let hash = out.hasher.finalize();
        let mut marker = [0; 16];
        marker.copy_from_slice(&hash.as_bytes()[..16]);
        Ok(WrittenDatum {
            len: out.len,
            marker,
        })
    }
}

/// Writes an object container file holding one record, the schema embedded, to `out`: `datum`
/// reads back the datum that [`RecordParts::write_datum`] wrote and described as `written`.
/// Under the `null` codec it is copied through; a compressed block is built in memory, since
/// its length comes before it.
pub fn write_container(
    schema: &Schema,
    codec: Codec,
    mut datum: impl Read,
    written: WrittenDatum,
    mut out: impl Write,
) -> Result<()> {
    out.write_all(CONTAINER_MAGIC)?;
    let codec_name: &'static str = codec.into();
    let schema_json = schema_json(schema)?;
    let metadata = [
        ("avro.schema", Bytes(schema_json.as_bytes())),
        ("avro.codec", Bytes(codec_name.as_bytes())),
    ];
    write_map(metadata, &Schema::Bytes, &mut out).context("encoding the Avro container header")?;
    out.write_all(&written.marker)?;

    // One data block: the record count, the block's byte size, the (compressed) datum, the
    // marker again.
    let compressed = match codec {
        Codec::Null => None,
        _ => {
            let mut block = try_vec(usize::try_from(written.len)?)?;
            datum.read_to_end(&mut block)?;
            codec
                .compress(&mut block)
                .with_context(|| format!("compressing the record with codec `{codec_name}`"))?;
            Some(block)
        }
    };
    let block_len = compressed
        .as_ref()
        .map_or(written.len, |block| block.len() as u64);
    let block_len = i64::try_from(block_len).context("the data block is too large")?;
    encode(&Schema::Long, &1_i64, &mut out)
        .and_then(|()| encode(&Schema::Long, &block_len, &mut out))
        .context("encoding the Avro container's data block")?;
    match compressed {
        Some(block) => out.write_all(&block)?,
        None => {
            let copied = std::io::copy(&mut datum.take(written.len), &mut out)?;
            ensure!(
                copied == written.len,
                "the datum ended after {copied} of its {} bytes",
                written.len
            );
        }
    }
    out.write_all(&written.marker)?;
    out.flush()?;
    Ok(())
}

impl RecommenderModel {
    fn parts(&self) -> RecordParts<'_, impl ExactSizeIterator<Item = &str> + Clone> {
        RecordParts {
            model_id: &self.model_id,
            tensor_flow_model: &self.tensor_flow_model,
            product_ids: self.product_ids.iter().map(String::as_str),
            customer_ids: self.customer_ids.iter().map(String::as_str),
        }
    }

    /// An object container file holding this one record, the schema embedded.
    pub fn to_container(&self, schema: &Schema, codec: Codec) -> Result<Vec<u8>> {
        let mut datum = Vec::new();
        let written = self.parts().write_datum(schema, &mut datum)?;
        let mut file = Vec::new();
        write_container(schema, codec, &datum[..], written, &mut file)?;
        Ok(file)
    }

    /// Reads a bare datum written with `schema`.
    pub fn from_datum(schema: &Schema, mut datum: &[u8]) -> Result<Self> {
        check_schema(schema)?;
        let value = apache_avro::from_avro_datum(schema, &mut datum, None)
            .context("decoding the datum with the schema")?;
        ensure!(
            datum.is_empty(),
            "{} bytes left over after the record: the schema does not match the data",
            datum.len()
        );
        Self::from_value(value)
    }

    /// Reads an object container file holding one record; returns it and the embedded schema.
    pub fn from_container(bytes: &[u8]) -> Result<(Self, Schema)> {
        let reader = apache_avro::Reader::new(bytes).context("not an Avro container file")?;
        let schema = reader.writer_schema().clone();
        check_schema(&schema).context("the embedded schema")?;
        let mut records = Vec::new();
        for value in reader {
            records.push(value.context("decoding a record of the container")?);
        }
        ensure!(
            records.len() == 1,
            "the container holds {} records, expected 1",
            records.len()
        );
        let record = Self::from_value(records.pop().expect("one record"))?;
        Ok((record, schema))
    }

    fn from_value(value: Value) -> Result<Self> {
        let Value::Record(fields) = value else {
            bail!("the datum is not a record");
        };
        let mut model_id = None;
        let mut tensor_flow_model = None;
        let mut product_ids = None;
        let mut customer_ids = None;
        for (name, value) in fields {
            match (name.as_str(), value) {
                (MODEL_ID, Value::String(id)) => model_id = Some(id),
                (TENSOR_FLOW_MODEL, Value::Bytes(bytes)) => tensor_flow_model = Some(bytes),
                (PRODUCT_MAP, Value::Map(map)) => {
                    product_ids = Some(ids_by_index(PRODUCT_MAP, map)?)
                }
                (CUSTOMER_MAP, Value::Map(map)) => {
                    customer_ids = Some(ids_by_index(CUSTOMER_MAP, map)?)
                }
                (name, value) => bail!("unexpected field `{name}`: {value:?}"),
            }
        }
        let missing = |field: &str| anyhow!("the record has no field `{field}`");
        Ok(Self {
            model_id: model_id.ok_or_else(|| missing(MODEL_ID))?,
            tensor_flow_model: tensor_flow_model.ok_or_else(|| missing(TENSOR_FLOW_MODEL))?,
            product_ids: product_ids.ok_or_else(|| missing(PRODUCT_MAP))?,
            customer_ids: customer_ids.ok_or_else(|| missing(CUSTOMER_MAP))?,
        })
    }
}

/// Turns a decoded `map<int>` back into ids by position; the indices must be 0..len.
fn ids_by_index(field: &str, map: std::collections::HashMap<String, Value>) -> Result<Vec<String>> {
    let len = map.len();
    let mut ids = vec![None; len];
    for (id, index) in map {
        let shown = escape_controls(&id);
        let Value::Int(index) = index else {
            bail!("`{field}`[{shown}] is not an int");
        };
        let slot = usize::try_from(index)
            .ok()
            .and_then(|index| ids.get_mut(index))
            .ok_or_else(|| anyhow!("`{field}`[{shown}] = {index} is outside 0..{len}"))?;
        ensure!(slot.is_none(), "`{field}` maps two ids to {index}");
        *slot = Some(id);
    }
    Ok(ids
        .into_iter()
        .map(|id| id.expect("every index filled"))
        .collect())
}

/// Encodes `value` as `schema` with `apache-avro`.
fn encode<T: Serialize>(schema: &Schema, value: &T, out: &mut impl Write) -> Result<()> {
    apache_avro::write_avro_datum_ref(schema, value, out)?;
    Ok(())
}

/// The schema as the container's header embeds it (and its sync marker hashes it).
fn schema_json(schema: &Schema) -> Result<String> {
    serde_json::to_string(schema).context("serializing the Avro schema to JSON")
}

/// Writes ids as a `map<int>` `id → position`, in position order (at most `i32::MAX` ids, which
/// [`RecordParts::write_datum`] checks).
fn write_id_map<'a>(
    ids: impl ExactSizeIterator<Item = &'a str>,
    out: &mut impl Write,
) -> Result<()> {
    write_map(ids.zip(0..i32::MAX), &Schema::Int, out)
}

/// Writes a map in the order given, as one block: the entry count (none for an empty map),
/// each key and value, then the empty block that ends every map.
fn write_map<'a, V: Serialize>(
    entries: impl IntoIterator<Item = (&'a str, V), IntoIter: ExactSizeIterator>,
    value_schema: &Schema,
    out: &mut impl Write,
) -> Result<()> {
    let entries = entries.into_iter();
    if entries.len() > 0 {
        let count = i64::try_from(entries.len()).context("too many map entries")?;
        encode(&Schema::Long, &count, out)?;
        for (key, value) in entries {
            encode(&Schema::String, &key, out)?;
            encode(value_schema, &value, out)?;
        }
    }
    encode(&Schema::Long, &0_i64, out)
}

/// Passes writes on to `out`, hashing and counting them.
struct Tee<W> {
    out: W,
    hasher: blake3::Hasher,
    len: u64,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.out.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        self.len += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Serializes as Avro `bytes` (a plain `&[u8]` would serialize as an array).
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}
