//! The Avro files against the reference implementations: Python `avro` and `fastavro` read both,
//! and the bare datum and the container's record are byte for byte what their encoders write for
//! the same record. 5,000 customers: more than the 1,024 entries after which `apache-avro`'s serde
//! serializer would cut a map into blocks, which the reference encoders never do.

mod export_support;

use export_support::{
    export, random_params, run_python, schema_path, write_avro, write_checkpoint, write_id_maps,
};

#[test]
fn python_avro_and_fastavro_read_both_files_and_encode_the_same_datum() {
    let dir = tempfile::tempdir().unwrap();
    let params = random_params(5000, 120, 6, 11);
    let checkpoint = write_checkpoint(dir.path(), &params);
    let (customer_map, product_map) = write_id_maps(dir.path(), &params);
    export(&checkpoint, dir.path()).unwrap();
    let customers = std::fs::read_to_string(customer_map).unwrap();
    let products = std::fs::read_to_string(product_map).unwrap();
    let graph_bytes = std::fs::metadata(dir.path().join("optimized_ProductRecommender.pb"))
        .unwrap()
        .len();

    // A legal variant of the schema: the same fields in reverse order.
    let mut reordered: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path()).unwrap()).unwrap();
    reordered["fields"].as_array_mut().unwrap().reverse();
    let reordered_path = dir.path().join("reordered.avsc");
    std::fs::write(&reordered_path, reordered.to_string()).unwrap();

    // Python's libraries read null and deflate without extra packages (snappy and zstd need
    // python-snappy / zstandard); the Rust tests read back every codec.
    for (codec, schema) in [
        ("null", schema_path()),
        ("deflate", schema_path()),
        ("null", reordered_path),
    ] {
        let out_dir = tempfile::tempdir_in(dir.path()).unwrap();
        let out = out_dir.path();
        write_avro(
            dir.path(),
            &schema,
            out,
            &[
                ("codec", codec.into()),
                ("model_id", "recommender-model-2026-11-26-05:36:14".into()),
            ],
        )
        .unwrap();
        let report = run_python(
            "check_avro.py",
            &[
                out.join("recommender.avro").as_os_str(),
                out.join("recommender-no-schema.avro").as_os_str(),
                schema.as_os_str(),
            ],
        );
        let summary: serde_json::Value = serde_json::from_str(&report).unwrap();
        assert_eq!(
            summary,
            serde_json::json!({
                "modelId": "recommender-model-2026-11-26-05:36:14",
                "graph_bytes": graph_bytes,
                "products": 120,
                "customers": 5000,
                "first_product": products.lines().next().unwrap(),
                "first_customer": customers.lines().next().unwrap(),
            }),
            "codec {codec}, schema {}",
            schema.display()
        );
    }
}
