"""Reads warez-pipe's RecommenderModel Avro files with the reference Python libraries.

Usage: check_avro.py CONTAINER DATUM SCHEMA.avsc

- `avro` (the Apache reference implementation) and `fastavro` each read the container file
  (schema embedded) and the bare datum (with SCHEMA.avsc); all four reads must give one record,
  the same one;
- Python `avro`'s encoder and fastavro's schemaless writer, given that record with its maps in
  id order, must write exactly the bytes of DATUM, and exactly the bytes of the container's one
  data block (decompressed). Both write a map as one block (count, entries, 0) at any size, as
  Apache Avro for Java's GenericDatumWriter does.

Prints the record's summary as JSON (model id, graph size, map sizes, first ids); exits 1 with
the reason on the first failed check.
"""

import io
import json
import sys

import avro.datafile
import avro.io
import avro.schema
import fastavro


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def first_difference(left, right):
    return next((i for i, (a, b) in enumerate(zip(left, right)) if a != b), min(len(left), len(right)))


def in_id_order(record):
    """The record with both maps' entries ordered by id (their value), as warez-pipe writes them."""
    record = dict(record)
    for field in ("productMap", "customerMap"):
        entries = sorted(record[field].items(), key=lambda entry: entry[1])
        if [index for _, index in entries] != list(range(len(entries))):
            fail(f"{field} values are not 0..{len(entries) - 1}")
        record[field] = dict(entries)
    return record


def main():
    container_path, datum_path, schema_path = sys.argv[1:4]
    with open(schema_path) as file:
        schema_text = file.read()
    with open(datum_path, "rb") as file:
        datum = file.read()

    reads = {}
    with open(container_path, "rb") as file:
        reads["fastavro container"] = list(fastavro.reader(file))
    with open(container_path, "rb") as file:
        with avro.datafile.DataFileReader(file, avro.io.DatumReader()) as reader:
            reads["avro container"] = list(reader)
            embedded = json.loads(reader.get_meta("avro.schema"))
    if avro.schema.parse(json.dumps(embedded)) != avro.schema.parse(schema_text):
        fail("the embedded schema differs from the .avsc")

    parsed_fastavro = fastavro.parse_schema(json.loads(schema_text))
    reader = io.BytesIO(datum)
    reads["fastavro datum"] = [fastavro.schemaless_reader(reader, parsed_fastavro)]
    if reader.tell() != len(datum):
        fail(f"fastavro read {reader.tell()} of the datum's {len(datum)} bytes")
    parsed_avro = avro.schema.parse(schema_text)
    reader = io.BytesIO(datum)
    reads["avro datum"] = [avro.io.DatumReader(parsed_avro).read(avro.io.BinaryDecoder(reader))]
    if reader.tell() != len(datum):
        fail(f"avro read {reader.tell()} of the datum's {len(datum)} bytes")

    (reference,) = reads["avro container"]
    for label, records in reads.items():
        if len(records) != 1:
            fail(f"{label}: {len(records)} records, expected 1")
        if records[0] != reference:
            fail(f"{label}: the record differs from the avro container's")
        print(f"ok {label}", file=sys.stderr)

    with open(container_path, "rb") as file:
        blocks = [(block.num_records, block.bytes_.getvalue()) for block in fastavro.block_reader(file)]
    if [count for count, _ in blocks] != [1]:
        fail(f"the container's blocks hold {[count for count, _ in blocks]} records, expected one block of 1")
    ours = {"datum": datum, "container's record": blocks[0][1]}

    record = in_id_order(reference)
    encoded = io.BytesIO()
    avro.io.DatumWriter(parsed_avro).write(record, avro.io.BinaryEncoder(encoded))
    encodings = {"Python avro": encoded.getvalue()}
    encoded = io.BytesIO()
    fastavro.schemaless_writer(encoded, parsed_fastavro, record)
    encodings["fastavro's schemaless writer"] = encoded.getvalue()
    for encoder, reference_bytes in encodings.items():
        for label, bytes_ in ours.items():
            if bytes_ != reference_bytes:
                fail(f"{encoder} encodes the record in {len(reference_bytes)} bytes, which differ "
                     f"from the {label}'s {len(bytes_)} bytes at offset {first_difference(bytes_, reference_bytes)}")
    print("ok the datum and the container's record are byte for byte what avro and fastavro encode", file=sys.stderr)

    print(json.dumps({
        "modelId": record["modelId"],
        "graph_bytes": len(record["tensorFlowModel"]),
        "products": len(record["productMap"]),
        "customers": len(record["customerMap"]),
        "first_product": next(iter(record["productMap"])),
        "first_customer": next(iter(record["customerMap"])),
    }))


if __name__ == "__main__":
    main()
