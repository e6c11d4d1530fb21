//! The trained network as TensorFlow artifacts: a frozen inference GraphDef (what the model
//! serving streamlet imports from the Avro record) and a SavedModel around the same graph.
//!
//! # The frozen graph
//! The seed notebook's Keras model with dropout removed and every weight folded into a `Const`:
//!
//! ```text
//! user    [N,1] f32 ─ Cast→i32 ─ GatherV2(customer_embedding/embeddings) ─ Reshape [N,k] ─┐
//! product [N,1] f32 ─ Cast→i32 ─ GatherV2(product_embedding/embeddings)  ─ Reshape [N,k] ─┤
//!        ConcatV2 [N,2k] ─ MatMul + BiasAdd + Relu (dense_1) ─ MatMul + BiasAdd (dense_2) ┘
//!                                                              └→ `dense_2/BiasAdd` [N,1] f32
//! ```
//! Only attrs without a default are written (TensorFlow fills defaults in on import), and the
//! graph claims an early producer version ([`GRAPH_PRODUCER`]), so TensorFlow 1.x runtimes such
//! as an old TensorFlow for Java accept it as well as current ones.
//!
//! # The SavedModel
//! `saved_model.pb` holds one `MetaGraphDef` (tag `serve`) whose graph is the frozen graph, with
//! signature `serving_default` (inputs `user`, `product`; output `dense_2`; method
//! `tensorflow/serving/predict`). It has no `saver_def`, exactly like what TensorFlow's own
//! `SavedModelBuilder` writes for a graph without variables (checked with TensorFlow 2.21), so no
//! loader restores anything. Loaders handle it as a TF1-style SavedModel:
//! `tf.compat.v1.saved_model.loader.load`, `tf.saved_model.load` (which wraps TF1 SavedModels into
//! signature functions), and the C++ `LoadSavedModel` that TensorFlow Serving uses. A TF2-style
//! SavedModel (an object graph plus a checkpoint of its variables) would need FunctionDefs and a
//! real checkpoint for no gain at serving time.
//!
//! `variables/` holds a valid empty checkpoint ([`super::tf_bundle`]) rather than nothing, so
//! the folder survives tools that store files only.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use prost::encoding::{self, WireType};
use prost::Message;

use super::params::{
    ModelParams, CUSTOMER_EMBEDDING, DENSE_1_BIAS, DENSE_1_KERNEL, DENSE_2_BIAS, DENSE_2_KERNEL,
    INPUT_PRODUCT, INPUT_USER, OUTPUT, PRODUCT_EMBEDDING,
};
use super::tf_bundle;
use super::tf_proto::{
    attr_value, meta_graph_def::MetaInfoDef, tensor_info, AttrValue, DataType, GraphDef,
    MetaGraphDef, NodeDef, SavedModel, SignatureDef, TensorInfo, TensorProto, TensorShapeProto,
    VersionDef,
};

/// GraphDef producer version written into the frozen graph (`TF_GRAPH_DEF_VERSION` history in
/// TensorFlow's `core/public/version.h`): 27 dates from January 2018, late enough that the
/// `Placeholder`s' partial shape `[-1, 1]` is enforced (version 22 and up), early enough for
/// TensorFlow 1.x runtimes. Current runtimes accept every producer version from 0.
pub const GRAPH_PRODUCER: i32 = 27;
/// The meta graph tag serving loaders select.
pub const SERVE_TAG: &str = "serve";
/// The signature TensorFlow Serving and `tf.saved_model.load(...).signatures` use by default.
pub const SIGNATURE_KEY: &str = "serving_default";
/// The key of the signature's one output.
pub const SIGNATURE_OUTPUT: &str = "dense_2";
const PREDICT_METHOD: &str = "tensorflow/serving/predict";
/// File and folder names inside a SavedModel folder.
pub const SAVED_MODEL_FILE: &str = "saved_model.pb";
pub const VARIABLES_DIR: &str = "variables";

/// Builds the frozen inference graph of `params`.
pub fn frozen_graph(params: &ModelParams) -> Result<GraphDef> {
    check_shapes(params)?;
    let k = params.n_factors as i64;
    let mut graph = GraphBuilder::default();

    let mut features = Vec::new();
    for (input, table, rows, values) in [
        (
            INPUT_USER,
            CUSTOMER_EMBEDDING,
            params.n_customers,
            &params.customer_embedding,
        ),
        (
            INPUT_PRODUCT,
            PRODUCT_EMBEDDING,
            params.n_products,
            &params.product_embedding,
        ),
    ] {
        graph.placeholder(input, &[-1, 1]);
        let ids = graph.op(
            &format!("{table}/Cast"),
            "Cast",
            &[input],
            [
                ("SrcT", dtype(DataType::DtFloat)),
                ("DstT", dtype(DataType::DtInt32)),
            ],
        );
        let embeddings = graph.const_f32(&format!("{table}/embeddings"), &[rows as i64, k], values);
        let axis = graph.const_i32(&format!("{table}/axis"), &[], &[0]);
        let lookup = graph.op(
            &format!("{table}/embedding_lookup"),
            "GatherV2",
            &[&embeddings, &ids, &axis],
            [
                ("Tparams", dtype(DataType::DtFloat)),
                ("Tindices", dtype(DataType::DtInt32)),
                ("Taxis", dtype(DataType::DtInt32)),
            ],
        );
        let shape = graph.const_i32(&format!("{table}/flatten/shape"), &[2], &[-1, k as i32]);
        features.push(graph.op(
            &format!("{table}/flatten/Reshape"),
            "Reshape",
            &[&lookup, &shape],
            [
                ("T", dtype(DataType::DtFloat)),
                ("Tshape", dtype(DataType::DtInt32)),
            ],
        ));
    }

    let axis = graph.const_i32("concatenate/axis", &[], &[1]);
    let concat = graph.op(
        "concatenate/concat",
        "ConcatV2",
        &[&features[0], &features[1], &axis],
        [
            ("N", int(2)),
            ("T", dtype(DataType::DtFloat)),
            ("Tidx", dtype(DataType::DtInt32)),
        ],
    );
    let hidden = graph.dense(
        "dense_1",
        &concat,
        (DENSE_1_KERNEL, &[2 * k, k], &params.dense_1_kernel),
        (DENSE_1_BIAS, &params.dense_1_bias),
    );
    let hidden = graph.op(
        "dense_1/Relu",
        "Relu",
        &[&hidden],
        [("T", dtype(DataType::DtFloat))],
    );
    graph.dense(
        "dense_2",
        &hidden,
        (DENSE_2_KERNEL, &[k, 1], &params.dense_2_kernel),
        (DENSE_2_BIAS, &params.dense_2_bias),
    );

    Ok(GraphDef {
        node: graph.nodes,
        versions: Some(VersionDef {
            producer: GRAPH_PRODUCER,
        }),
    })
}

/// The SavedModel around a frozen graph, without the graph: its one `MetaGraphDef` (tag `serve`,
/// signature `serving_default`) has no `graph_def`, which [`encode_saved_model`] splices in.
fn saved_model_without_graph() -> SavedModel {
    // Inputs and output alike are float32 columns, one row per (customer, product) pair.
    let column = TensorShapeProto::from_dims(&[-1, 1]);
    let tensor = |node: &str| TensorInfo {
        encoding: Some(tensor_info::Encoding::Name(format!("{node}:0"))),
        dtype: DataType::DtFloat as i32,
        tensor_shape: Some(column.clone()),
    };
    let signature = SignatureDef {
        inputs: BTreeMap::from([
            (INPUT_USER.to_string(), tensor(INPUT_USER)),
            (INPUT_PRODUCT.to_string(), tensor(INPUT_PRODUCT)),
        ]),
        outputs: BTreeMap::from([(SIGNATURE_OUTPUT.to_string(), tensor(OUTPUT))]),
        method_name: PREDICT_METHOD.to_string(),
    };
    SavedModel {
        saved_model_schema_version: 1,
        meta_graphs: vec![MetaGraphDef {
            meta_info_def: Some(MetaInfoDef {
                tags: vec![SERVE_TAG.to_string()],
            }),
            graph_def: None,
            signature_def: BTreeMap::from([(SIGNATURE_KEY.to_string(), signature)]),
        }],
    }
}

/// `saved_model.pb` for an encoded frozen graph: the bytes prost writes for the SavedModel with
/// the graph in its `MetaGraphDef`, put together around `graph` rather than by decoding it into
/// a message and encoding that again (two more copies of a graph of hundreds of MB). Protobuf
/// writes a message's fields in field-number order and a sub-message as its key, its length
/// and its bytes, so the `MetaGraphDef` is its field 1 (`meta_info_def`), then field 2
/// (`graph_def`: `graph`), then field 5 (`signature_def`).
fn encode_saved_model(graph: &[u8]) -> Vec<u8> {
    let mut model = saved_model_without_graph();
    let mut meta = model.meta_graphs.pop().expect("one meta graph");
    let signatures = MetaGraphDef {
        signature_def: std::mem::take(&mut meta.signature_def),
        ..MetaGraphDef::default()
    };
    let (before, after) = (meta.encode_to_vec(), signatures.encode_to_vec());
    let mut graph_field = Vec::new();
    encoding::encode_key(2, WireType::LengthDelimited, &mut graph_field);
    encoding::encode_varint(graph.len() as u64, &mut graph_field);
    let meta_len = before.len() + graph_field.len() + graph.len() + after.len();

    let mut bytes = model.encode_to_vec();
    bytes.reserve(meta_len + 16);
    encoding::encode_key(2, WireType::LengthDelimited, &mut bytes);
    encoding::encode_varint(meta_len as u64, &mut bytes);
    for part in [&before[..], &graph_field, graph, &after] {
        bytes.extend_from_slice(part);
    }
    bytes
}

/// Encodes `graph` as a binary GraphDef.
pub fn encode_graph(graph: &GraphDef) -> Vec<u8> {
    graph.encode_to_vec()
}

/// Writes an encoded frozen graph as a binary GraphDef file.
pub fn write_graph(path: &Path, graph: &[u8]) -> Result<()> {
    fs::write(path, graph)
        .with_context(|| format!("writing the TensorFlow graph {}", path.display()))
}

/// Writes a SavedModel folder around an encoded frozen graph: `saved_model.pb` and `variables/`
/// with an empty checkpoint (see the module doc).
pub fn write_saved_model(dir: &Path, graph: &[u8]) -> Result<()> {
    let variables = dir.join(VARIABLES_DIR);
    fs::create_dir_all(&variables)
        .with_context(|| format!("creating the SavedModel folder {}", variables.display()))?;
    for (path, bytes) in [
        (dir.join(SAVED_MODEL_FILE), encode_saved_model(graph)),
        (
            variables.join(tf_bundle::INDEX_FILE),
            tf_bundle::empty_bundle_index(),
        ),
        (variables.join(tf_bundle::DATA_FILE), Vec::new()),
    ] {
        fs::write(&path, bytes)
            .with_context(|| format!("writing the SavedModel file {}", path.display()))?;
    }
    Ok(())
}

/// Decodes a binary GraphDef. From a [`bytes::Bytes`] buffer the Const tensors are slices of it,
/// not copies.
pub fn decode_graph(bytes: impl bytes::Buf) -> Result<GraphDef> {
    GraphDef::decode(bytes).context("not a binary TensorFlow GraphDef")
}

/// What `inspect` shows of a graph.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphSummary {
    pub nodes: usize,
    /// `Placeholder` nodes, in graph order.
    pub inputs: Vec<String>,
    /// Computed nodes (not constants or placeholders) that no other node reads, in graph order.
    pub outputs: Vec<String>,
}

impl GraphSummary {
    pub fn of(graph: &GraphDef) -> Self {
        let consumed: HashSet<&str> = graph
            .node
            .iter()
            .flat_map(|node| &node.input)
            .map(|input| {
                let input = input.trim_start_matches('^');
                input.split_once(':').map_or(input, |(node, _)| node)
            })
            .collect();
        let names = |keep: &dyn Fn(&NodeDef) -> bool| {
            graph
                .node
                .iter()
                .filter(|node| keep(node))
                .map(|node| node.name.clone())
                .collect()
        };
        Self {
            nodes: graph.node.len(),
            inputs: names(&|node| node.op == "Placeholder"),
            outputs: names(&|node| {
                !matches!(node.op.as_str(), "Placeholder" | "Const")
                    && !consumed.contains(node.name.as_str())
            }),
        }
    }
}

fn check_shapes(params: &ModelParams) -> Result<()> {
    let k = params.n_factors;
    if k == 0 || params.n_customers == 0 || params.n_products == 0 {
        bail!(
            "model parameters are empty: {} customers, {} products, {k} factors",
            params.n_customers,
            params.n_products
        );
    }
    for (name, actual, expected) in [
        (
            CUSTOMER_EMBEDDING,
            params.customer_embedding.len(),
            params.n_customers * k,
        ),
        (
            PRODUCT_EMBEDDING,
            params.product_embedding.len(),
            params.n_products * k,
        ),
        (DENSE_1_KERNEL, params.dense_1_kernel.len(), 2 * k * k),
        (DENSE_1_BIAS, params.dense_1_bias.len(), k),
        (DENSE_2_KERNEL, params.dense_2_kernel.len(), k),
        (DENSE_2_BIAS, params.dense_2_bias.len(), 1),
    ] {
        if actual != expected {
            bail!("model parameter `{name}` has {actual} values, expected {expected} (k = {k})");
        }
    }
    Ok(())
}

fn dtype(dtype: DataType) -> AttrValue {
    attr(attr_value::Value::Type(dtype as i32))
}

fn int(value: i64) -> AttrValue {
    attr(attr_value::Value::I(value))
}

fn attr(value: attr_value::Value) -> AttrValue {
    AttrValue { value: Some(value) }
}

/// Appends nodes in order; every method returns the name of the node it added.
#[derive(Default)]
struct GraphBuilder {
    nodes: Vec<NodeDef>,
}

impl GraphBuilder {
    fn op<const N: usize>(
        &mut self,
        name: &str,
        op: &str,
        inputs: &[&str],
        attrs: [(&str, AttrValue); N],
    ) -> String {
        self.nodes.push(NodeDef {
            name: name.to_string(),
            op: op.to_string(),
            input: inputs.iter().map(|input| input.to_string()).collect(),
            attr: attrs
                .into_iter()
                .map(|(key, value)| (key.to_string(), value))
                .collect(),
        });
        name.to_string()
    }

    fn placeholder(&mut self, name: &str, shape: &[i64]) -> String {
        self.op(
            name,
            "Placeholder",
            &[],
            [
                ("dtype", dtype(DataType::DtFloat)),
                (
                    "shape",
                    attr(attr_value::Value::Shape(TensorShapeProto::from_dims(shape))),
                ),
            ],
        )
    }

    fn constant(
        &mut self,
        name: &str,
        dims: &[i64],
        data_type: DataType,
        content: Vec<u8>,
    ) -> String {
        let tensor = TensorProto {
            dtype: data_type as i32,
            tensor_shape: Some(TensorShapeProto::from_dims(dims)),
            tensor_content: content.into(),
        };
        self.op(
            name,
            "Const",
            &[],
            [
                ("dtype", dtype(data_type)),
                ("value", attr(attr_value::Value::Tensor(tensor))),
            ],
        )
    }

    fn const_f32(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        let content = values
            .iter()
            .flat_map(|value| value.to_le_bytes())
            .collect();
        self.constant(name, dims, DataType::DtFloat, content)
    }

    fn const_i32(&mut self, name: &str, dims: &[i64], values: &[i32]) -> String {
        let content = values
            .iter()
            .flat_map(|value| value.to_le_bytes())
            .collect();
        self.constant(name, dims, DataType::DtInt32, content)
    }

    /// `layer/MatMul` + `layer/BiasAdd` with the kernel and bias as `Const`s named after the
    /// parameters (`dense_1/kernel`, `dense_1/bias`).
    fn dense(
        &mut self,
        layer: &str,
        input: &str,
        (kernel_name, kernel_dims, kernel): (&str, &[i64], &[f32]),
        (bias_name, bias): (&str, &[f32]),
    ) -> String {
        let kernel = self.const_f32(kernel_name, kernel_dims, kernel);
        let product = self.op(
            &format!("{layer}/MatMul"),
            "MatMul",
            &[input, &kernel],
            [("T", dtype(DataType::DtFloat))],
        );
        let bias = self.const_f32(bias_name, &[bias.len() as i64], bias);
        self.op(
            &format!("{layer}/BiasAdd"),
            "BiasAdd",
            &[&product, &bias],
            [("T", dtype(DataType::DtFloat))],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spliced `saved_model.pb` is byte for byte what prost writes for the whole message.
    #[test]
    fn the_saved_model_is_the_message_with_the_graph_inside() {
        let params = ModelParams {
            n_customers: 3,
            n_products: 2,
            n_factors: 2,
            customer_embedding: (0..6).map(|v| v as f32).collect(),
            product_embedding: vec![0.5; 4],
            dense_1_kernel: vec![0.25; 8],
            dense_1_bias: vec![0.0; 2],
            dense_2_kernel: vec![1.0; 2],
            dense_2_bias: vec![0.1],
        };
        let graph = frozen_graph(&params).unwrap();
        let mut expected = saved_model_without_graph();
        expected.meta_graphs[0].graph_def = Some(graph.clone());
        assert_eq!(
            encode_saved_model(&encode_graph(&graph)),
            expected.encode_to_vec()
        );
    }
}
