//! The `export_tf` and `write_avro` kinds at the Rust level: what the graph holds, same inputs →
//! same bytes, and clear errors that leave nothing behind.

mod export_support;

use std::path::Path;

use export_support::{
    export, random_params, schema_path, write_avro, write_checkpoint, write_id_maps,
};
use prost::Message;
use warez_pipe::ml::model::avro_record::{self, RecommenderModel};
use warez_pipe::ml::model::tf_export::{self, GraphSummary};
use warez_pipe::ml::model::tf_proto::{attr_value, DataType, GraphDef, SavedModel};

/// A checkpoint, id maps and an exported graph in a fresh folder.
fn exported_model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let params = random_params(12, 9, 4, 3);
    let checkpoint = write_checkpoint(dir.path(), &params);
    write_id_maps(dir.path(), &params);
    export(&checkpoint, dir.path()).unwrap();
    dir
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_frozen_graph_is_inference_only_with_every_weight_a_const() {
    let params = random_params(12, 9, 4, 1);
    let graph = tf_export::frozen_graph(&params).unwrap();
    let graph = GraphDef::decode(graph.encode_to_vec().as_slice()).unwrap();

    let summary = GraphSummary::of(&graph);
    assert_eq!(summary.inputs, ["user", "product"]);
    assert_eq!(summary.outputs, ["dense_2/BiasAdd"]);

    let ops: Vec<&str> = graph.node.iter().map(|node| node.op.as_str()).collect();
    for op in &ops {
        assert!(
            [
                "Placeholder",
                "Cast",
                "Const",
                "GatherV2",
                "Reshape",
                "ConcatV2",
                "MatMul",
                "BiasAdd",
                "Relu"
            ]
            .contains(op),
            "unexpected op {op}"
        );
    }
    let count = |op: &str| ops.iter().filter(|&&candidate| candidate == op).count();
    assert_eq!(
        [
            count("GatherV2"),
            count("MatMul"),
            count("BiasAdd"),
            count("Relu")
        ],
        [2, 2, 2, 1]
    );

    let node = |name: &str| {
        graph
            .node
            .iter()
            .find(|node| node.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    };
    for input in ["user", "product"] {
        let placeholder = node(input);
        assert_eq!(
            placeholder.attr["dtype"].value,
            Some(attr_value::Value::Type(DataType::DtFloat as i32))
        );
        let Some(attr_value::Value::Shape(shape)) = &placeholder.attr["shape"].value else {
            panic!("{input} has no shape");
        };
        let dims: Vec<i64> = shape.dim.iter().map(|dim| dim.size).collect();
        assert_eq!(dims, [-1, 1]);
    }

    // Every parameter value sits in a Const, bit for bit.
    let constant = |name: &str| -> (Vec<i64>, Vec<f32>) {
        let Some(attr_value::Value::Tensor(tensor)) = &node(name).attr["value"].value else {
            panic!("{name} is not a Const");
        };
        let dims = tensor
            .tensor_shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|dim| dim.size)
            .collect();
        let values = tensor
            .tensor_content
            .chunks_exact(4)
            .map(|bytes| f32::from_le_bytes(bytes.try_into().unwrap()))
            .collect();
        (dims, values)
    };
    assert_eq!(
        constant("customer_embedding/embeddings"),
        (vec![12, 4], params.customer_embedding.clone())
    );
    assert_eq!(
        constant("product_embedding/embeddings"),
        (vec![9, 4], params.product_embedding.clone())
    );
    assert_eq!(
        constant("dense_1/kernel"),
        (vec![8, 4], params.dense_1_kernel.clone())
    );
    assert_eq!(
        constant("dense_1/bias"),
        (vec![4], params.dense_1_bias.clone())
    );
    assert_eq!(
        constant("dense_2/kernel"),
        (vec![4, 1], params.dense_2_kernel.clone())
    );
    assert_eq!(
        constant("dense_2/bias"),
        (vec![1], params.dense_2_bias.clone())
    );
    assert_eq!(
        node("dense_2/BiasAdd").input,
        ["dense_2/MatMul", "dense_2/bias"]
    );
}

#[test]
fn parameters_of_the_wrong_size_are_rejected_by_name() {
    let mut params = random_params(5, 5, 3, 1);
    params.dense_1_kernel.pop();
    let error = tf_export::frozen_graph(&params).unwrap_err().to_string();
    assert!(error.contains("dense_1/kernel"), "{error}");
}

#[test]
fn export_tf_writes_the_graph_and_a_saved_model_with_the_serving_signature() {
    let dir = exported_model();
    let graph = std::fs::read(dir.path().join("optimized_ProductRecommender.pb")).unwrap();
    assert!(GraphSummary::of(&tf_export::decode_graph(&graph[..]).unwrap()).nodes > 20);

    let saved_model = dir.path().join("saved_model");
    assert_eq!(files_in(&saved_model), ["saved_model.pb", "variables"]);
    assert_eq!(
        files_in(&saved_model.join("variables")),
        ["variables.data-00000-of-00001", "variables.index"]
    );
    let model = SavedModel::decode(
        std::fs::read(saved_model.join("saved_model.pb"))
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let [meta_graph] = model.meta_graphs.as_slice() else {
        panic!("expected one meta graph");
    };
    assert_eq!(meta_graph.meta_info_def.as_ref().unwrap().tags, ["serve"]);
    assert_eq!(
        meta_graph.graph_def.as_ref().unwrap().encode_to_vec(),
        graph,
        "the SavedModel's graph is the frozen graph"
    );
    let signature = &meta_graph.signature_def["serving_default"];
    assert_eq!(
        signature.inputs.keys().collect::<Vec<_>>(),
        ["product", "user"]
    );
    assert_eq!(signature.inputs["user"].name(), Some("user:0"));
    let outputs: Vec<&str> = signature
        .outputs
        .values()
        .map(|info| info.name().unwrap())
        .collect();
    assert_eq!(outputs, ["dense_2/BiasAdd:0"]);
}

#[test]
fn the_same_inputs_give_the_same_bytes() {
    let first = exported_model();
    let second = tempfile::tempdir().unwrap();
    export(&first.path().join("checkpoint.onnx"), second.path()).unwrap();
    for file in [
        "optimized_ProductRecommender.pb",
        "saved_model/saved_model.pb",
    ] {
        assert_eq!(
            std::fs::read(first.path().join(file)).unwrap(),
            std::fs::read(second.path().join(file)).unwrap(),
            "{file} differs between runs"
        );
    }

    let id = || vec![("model_id", "recommender-model-test".into())];
    for codec in ["null", "deflate", "snappy", "zstd"] {
        let params = || {
            let mut params = id();
            params.push(("codec", codec.into()));
            params
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_avro(first.path(), &schema_path(), a.path(), &params()).unwrap();
        write_avro(first.path(), &schema_path(), b.path(), &params()).unwrap();
        for file in ["recommender.avro", "recommender-no-schema.avro"] {
            assert_eq!(
                std::fs::read(a.path().join(file)).unwrap(),
                std::fs::read(b.path().join(file)).unwrap(),
                "{file} ({codec}) differs between runs"
            );
        }
    }
}

#[test]
fn both_avro_files_hold_the_record_with_maps_in_id_order() {
    let dir = exported_model();
    for codec in ["null", "deflate", "snappy", "zstd"] {
        let out = tempfile::tempdir().unwrap();
        write_avro(
            dir.path(),
            &schema_path(),
            out.path(),
            &[("model_id", "m-1".into()), ("codec", codec.into())],
        )
        .unwrap();
        let schema = avro_record::read_schema(&schema_path()).unwrap();
        let datum = std::fs::read(out.path().join("recommender-no-schema.avro")).unwrap();
        let from_datum = RecommenderModel::from_datum(&schema, &datum).unwrap();
        let container = std::fs::read(out.path().join("recommender.avro")).unwrap();
        let (from_container, embedded) = RecommenderModel::from_container(&container).unwrap();
        assert_eq!(from_datum, from_container, "codec {codec}");
        assert_eq!(embedded, schema);

        assert_eq!(from_datum.model_id, "m-1");
        assert_eq!(
            from_datum.tensor_flow_model,
            std::fs::read(dir.path().join("optimized_ProductRecommender.pb")).unwrap()
        );
        let ids = |file: &str| -> Vec<String> {
            std::fs::read_to_string(dir.path().join(file))
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        };
        assert_eq!(from_datum.customer_ids, ids("customer_map.txt"));
        assert_eq!(from_datum.product_ids, ids("product_map.txt"));
        // The first map entry written is index 0 (its key follows the modelId and graph).
        let first_key = &from_datum.product_ids[0];
        let product_map_at = datum
            .windows(first_key.len())
            .position(|window| window == first_key.as_bytes())
            .unwrap();
        let second_key = &from_datum.product_ids[1];
        let second_at = datum
            .windows(second_key.len())
            .position(|window| window == second_key.as_bytes())
            .unwrap();
        assert!(product_map_at < second_at, "product map not in id order");
    }
}

#[test]
fn the_model_id_comes_from_the_param_then_source_date_epoch() {
    let dir = exported_model();
    // The only test in this binary that leaves `model_id` unset, so the only one the
    // environment variable reaches.
    std::env::set_var("SOURCE_DATE_EPOCH", "1795671374");
    let out = tempfile::tempdir().unwrap();
    write_avro(dir.path(), &schema_path(), out.path(), &[]).unwrap();
    let datum = std::fs::read(out.path().join("recommender-no-schema.avro")).unwrap();
    let schema = avro_record::read_schema(&schema_path()).unwrap();
    let record = RecommenderModel::from_datum(&schema, &datum).unwrap();
    assert_eq!(record.model_id, "recommender-model-2026-11-26-05:36:14");

    std::env::set_var("SOURCE_DATE_EPOCH", "yesterday");
    let error = write_avro(dir.path(), &schema_path(), out.path(), &[]).unwrap_err();
    assert!(
        format!("{error:#}").contains("SOURCE_DATE_EPOCH"),
        "{error:#}"
    );
    std::env::remove_var("SOURCE_DATE_EPOCH");
}

#[test]
fn a_schema_that_does_not_fit_names_the_field_and_writes_nothing() {
    let dir = exported_model();
    let original = std::fs::read_to_string(schema_path()).unwrap();
    let cases = [
        (
            original.replace("\"productMap\"", "\"productsMap\""),
            "productMap",
        ),
        (
            original.replacen("\"type\": \"bytes\"", "\"type\": \"string\"", 1),
            "tensorFlowModel",
        ),
        (
            original.replace("\"values\": \"int\"", "\"values\": \"long\""),
            "productMap",
        ),
        (
            r#"{"type": "map", "values": "int"}"#.to_string(),
            "not a record",
        ),
        (
            original.replace("\"name\": \"RecommenderModel\"", "\"name\": \"Model\""),
            "warez.RecommenderModel",
        ),
    ];
    for (schema, expected) in cases {
        let schema_file = dir.path().join("bad.avsc");
        std::fs::write(&schema_file, &schema).unwrap();
        let out = tempfile::tempdir().unwrap();
        let error = write_avro(
            dir.path(),
            &schema_file,
            out.path(),
            &[("model_id", "m".into())],
        )
        .unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.contains(expected),
            "expected {expected:?} in: {message}"
        );
        assert!(
            message.contains("bad.avsc"),
            "the error names the file: {message}"
        );
        assert!(
            files_in(out.path()).is_empty(),
            "wrote {:?}",
            files_in(out.path())
        );
    }
}

#[test]
fn a_missing_checkpoint_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = export(&dir.path().join("checkpoint.onnx"), dir.path()).unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("input `checkpoint`") && message.contains("checkpoint.onnx"),
        "{message}"
    );
    assert!(
        files_in(dir.path()).is_empty(),
        "wrote {:?}",
        files_in(dir.path())
    );
}

#[test]
fn an_unwritable_model_path_is_a_clear_error() {
    let dir = exported_model();
    // A model path below a regular file cannot be created, whoever runs the test (even root).
    let blocked = dir.path().join("not-a-folder");
    std::fs::write(&blocked, "").unwrap();
    let model_path = blocked.join("model");

    let error = export(&dir.path().join("checkpoint.onnx"), &model_path).unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("output `graph`"), "{message}");
    assert!(message.contains("not-a-folder/model"), "{message}");

    let error = write_avro(
        dir.path(),
        &schema_path(),
        &model_path,
        &[("model_id", "m".into())],
    )
    .unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("output `datum`"), "{message}");
    assert!(message.contains("not-a-folder/model"), "{message}");
}

#[test]
fn unknown_codecs_are_rejected_by_param_name() {
    let dir = exported_model();
    let out = tempfile::tempdir().unwrap();
    let error = write_avro(
        dir.path(),
        &schema_path(),
        out.path(),
        &[("codec", "lz4".into())],
    )
    .unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("param `codec`") && message.contains("lz4"),
        "{message}"
    );
}

#[test]
fn a_schema_with_its_fields_in_another_order_is_followed() {
    let dir = exported_model();
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path()).unwrap()).unwrap();
    let mut reordered = schema.clone();
    reordered["fields"].as_array_mut().unwrap().reverse();
    let reordered_path = dir.path().join("reordered.avsc");
    std::fs::write(&reordered_path, reordered.to_string()).unwrap();

    let (usual, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let id = [("model_id", "m".into())];
    write_avro(dir.path(), &schema_path(), usual.path(), &id).unwrap();
    write_avro(dir.path(), &reordered_path, other.path(), &id).unwrap();
    let read = |out: &Path, schema: &Path| {
        let schema = avro_record::read_schema(schema).unwrap();
        let datum = std::fs::read(out.join("recommender-no-schema.avro")).unwrap();
        let container = std::fs::read(out.join("recommender.avro")).unwrap();
        let (from_container, _) = RecommenderModel::from_container(&container).unwrap();
        (
            RecommenderModel::from_datum(&schema, &datum).unwrap(),
            from_container,
            datum,
        )
    };
    let (usual_record, _, usual_datum) = read(usual.path(), &schema_path());
    let (datum_record, container_record, other_datum) = read(other.path(), &reordered_path);
    assert_eq!(datum_record, usual_record);
    assert_eq!(container_record, usual_record);
    assert_ne!(
        other_datum, usual_datum,
        "the datum follows the schema's field order"
    );
}
