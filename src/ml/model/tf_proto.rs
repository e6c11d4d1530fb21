//! The subset of TensorFlow's protocol buffers that warez-pipe writes and reads: `GraphDef` and
//! what it holds, and the `SavedModel` / `MetaGraphDef` / `SignatureDef` envelope around it.
//!
//! Hand-written `prost` derives rather than code generated from TensorFlow's `.proto` files:
//! the subset is small (a dozen messages, a few fields each), and generating it would need
//! `protoc` plus a vendored copy of TensorFlow's proto tree at build time. Field numbers and enum
//! values are TensorFlow's own, checked against the descriptors of the `tensorflow` 2.21 Python
//! package (`tensorflow/core/framework/{graph,node_def,attr_value,tensor,tensor_shape,types,
//! versions}.proto`, `tensorflow/core/protobuf/{meta_graph,saved_model,tensor_bundle}.proto`). Fields
//! warez-pipe never sets are left out; `prost` skips them when decoding files written by
//! TensorFlow, so a decode/encode round trip drops them.
//!
//! Protobuf `map` fields use `BTreeMap`, so encoding is deterministic: the same graph always
//! gives the same bytes (TensorFlow's own deterministic serialization also sorts map keys).

use std::collections::BTreeMap;

/// `tensorflow.DataType` (types.proto), the values warez-pipe uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DataType {
    DtInvalid = 0,
    DtFloat = 1,
    DtInt32 = 3,
}

/// `tensorflow.GraphDef` (graph.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphDef {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeDef>,
    #[prost(message, optional, tag = "4")]
    pub versions: Option<VersionDef>,
}

/// `tensorflow.VersionDef` (versions.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionDef {
    #[prost(int32, tag = "1")]
    pub producer: i32,
    #[prost(int32, tag = "2")]
    pub min_consumer: i32,
    #[prost(int32, repeated, tag = "3")]
    pub bad_consumers: Vec<i32>,
}

/// `tensorflow.NodeDef` (node_def.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeDef {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub op: String,
    /// `"node"` or `"node:output_index"`; `"^node"` for control inputs.
    #[prost(string, repeated, tag = "3")]
    pub input: Vec<String>,
    #[prost(string, tag = "4")]
    pub device: String,
    #[prost(btree_map = "string, message", tag = "5")]
    pub attr: BTreeMap<String, AttrValue>,
}

/// `tensorflow.AttrValue` (attr_value.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttrValue {
    #[prost(oneof = "attr_value::Value", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
    pub value: Option<attr_value::Value>,
}

pub mod attr_value {
    use super::{DataType, TensorProto, TensorShapeProto};

    /// The `value` oneof of `tensorflow.AttrValue`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(message, tag = "1")]
        List(ListValue),
        #[prost(bytes = "vec", tag = "2")]
        S(Vec<u8>),
        #[prost(int64, tag = "3")]
        I(i64),
        #[prost(float, tag = "4")]
        F(f32),
        #[prost(bool, tag = "5")]
        B(bool),
        #[prost(enumeration = "DataType", tag = "6")]
        Type(i32),
        #[prost(message, tag = "7")]
        Shape(TensorShapeProto),
        #[prost(message, tag = "8")]
        Tensor(TensorProto),
    }

    /// `tensorflow.AttrValue.ListValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListValue {
        #[prost(bytes = "vec", repeated, tag = "2")]
        pub s: Vec<Vec<u8>>,
        #[prost(int64, repeated, tag = "3")]
        pub i: Vec<i64>,
        #[prost(float, repeated, tag = "4")]
        pub f: Vec<f32>,
        #[prost(bool, repeated, tag = "5")]
        pub b: Vec<bool>,
        #[prost(enumeration = "DataType", repeated, tag = "6")]
        pub r#type: Vec<i32>,
        #[prost(message, repeated, tag = "7")]
        pub shape: Vec<TensorShapeProto>,
        #[prost(message, repeated, tag = "8")]
        pub tensor: Vec<TensorProto>,
    }
}

/// `tensorflow.TensorProto` (tensor.proto). warez-pipe writes values as `tensor_content`
/// (little-endian raw bytes, row-major); `float_val`/`int_val` are read too because TensorFlow
/// writes small constants that way.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    #[prost(enumeration = "DataType", tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShapeProto>,
    #[prost(int32, tag = "3")]
    pub version_number: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub tensor_content: Vec<u8>,
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    #[prost(int32, repeated, tag = "7")]
    pub int_val: Vec<i32>,
}

/// `tensorflow.TensorShapeProto` (tensor_shape.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<tensor_shape_proto::Dim>,
    #[prost(bool, tag = "3")]
    pub unknown_rank: bool,
}

pub mod tensor_shape_proto {
    /// `tensorflow.TensorShapeProto.Dim`; `size == -1` is an unknown dimension.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dim {
        #[prost(int64, tag = "1")]
        pub size: i64,
        #[prost(string, tag = "2")]
        pub name: String,
    }
}

impl TensorShapeProto {
    /// A fully known rank with the given sizes (`-1` for an unknown size).
    pub fn from_dims(sizes: &[i64]) -> Self {
        Self {
            dim: sizes
                .iter()
                .map(|&size| tensor_shape_proto::Dim {
                    size,
                    name: String::new(),
                })
                .collect(),
            unknown_rank: false,
        }
    }
}

/// `tensorflow.SavedModel` (saved_model.proto): the content of `saved_model.pb`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedModel {
    #[prost(int64, tag = "1")]
    pub saved_model_schema_version: i64,
    #[prost(message, repeated, tag = "2")]
    pub meta_graphs: Vec<MetaGraphDef>,
}

/// `tensorflow.MetaGraphDef` (meta_graph.proto). No `saver_def` and no `object_graph_def`:
/// see [`crate::ml::model::tf_export`] for why the graph needs neither.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetaGraphDef {
    #[prost(message, optional, tag = "1")]
    pub meta_info_def: Option<meta_graph_def::MetaInfoDef>,
    #[prost(message, optional, tag = "2")]
    pub graph_def: Option<GraphDef>,
    #[prost(btree_map = "string, message", tag = "5")]
    pub signature_def: BTreeMap<String, SignatureDef>,
}

pub mod meta_graph_def {
    /// `tensorflow.MetaGraphDef.MetaInfoDef`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetaInfoDef {
        /// The tags a loader selects the meta graph by (`serve`).
        #[prost(string, repeated, tag = "4")]
        pub tags: Vec<String>,
    }
}

/// `tensorflow.SignatureDef` (meta_graph.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SignatureDef {
    #[prost(btree_map = "string, message", tag = "1")]
    pub inputs: BTreeMap<String, TensorInfo>,
    #[prost(btree_map = "string, message", tag = "2")]
    pub outputs: BTreeMap<String, TensorInfo>,
    #[prost(string, tag = "3")]
    pub method_name: String,
}

/// `tensorflow.TensorInfo` (meta_graph.proto), dense tensors only (the `name` case of its
/// `encoding` oneof, written as a plain field: the other cases are never used).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorInfo {
    /// `"node:output_index"`.
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(enumeration = "DataType", tag = "2")]
    pub dtype: i32,
    #[prost(message, optional, tag = "3")]
    pub tensor_shape: Option<TensorShapeProto>,
}

/// `tensorflow.BundleHeaderProto` (tensor_bundle.proto): the entry under the empty key of a
/// tensor bundle's index.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BundleHeaderProto {
    #[prost(int32, tag = "1")]
    pub num_shards: i32,
    #[prost(enumeration = "bundle_header_proto::Endianness", tag = "2")]
    pub endianness: i32,
    #[prost(message, optional, tag = "3")]
    pub version: Option<VersionDef>,
}

pub mod bundle_header_proto {
    /// `tensorflow.BundleHeaderProto.Endianness`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum Endianness {
        Little = 0,
        Big = 1,
    }
}
