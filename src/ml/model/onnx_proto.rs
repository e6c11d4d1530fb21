//! The subset of the ONNX protobuf schema (`onnx/onnx.proto`) warez-pipe writes and reads:
//! models, graphs, nodes, attributes, tensors and value infos.
//!
//! Hand-written `prost` derives rather than `prost-build` output: we need ten messages out of the
//! schema, and generating them would make every build depend on `protoc`. Field numbers and enum
//! values are the ones of `onnx.proto` (checked against onnx/onnx `onnx/onnx.proto`); fields we
//! never use (sparse tensors, training info, functions, segments, …) are left out, which protobuf
//! readers accept. Scalars use proto3 presence (a default value is not written), which proto2
//! readers such as `onnx` and ONNX Runtime read back as the same default.
//!
//! Below the messages are small constructors ([`tensor_f32`], [`node`], [`tensor_value_info`],
//! …) so the graph builders read as graphs, and [`TensorProto::f32_values`] to read tensors back.

use anyhow::{bail, ensure, Result};

/// ONNX IR version of every model warez-pipe writes (IR 8 goes with opset 18).
pub const IR_VERSION: i64 = 8;
/// Version of the default (`ai.onnx`) operator set every graph imports.
pub const OPSET_VERSION: i64 = 18;
/// `ModelProto.producer_name` of every file warez-pipe writes.
pub const PRODUCER_NAME: &str = "warez-pipe";

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(string, tag = "3")]
    pub producer_version: String,
    #[prost(string, tag = "4")]
    pub domain: String,
    #[prost(int64, tag = "5")]
    pub model_version: i64,
    #[prost(string, tag = "6")]
    pub doc_string: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(string, tag = "10")]
    pub doc_string: String,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(string, tag = "7")]
    pub domain: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    #[prost(string, tag = "6")]
    pub doc_string: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(enumeration = "AttributeType", tag = "20")]
    pub r#type: i32,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
}

/// `AttributeProto.AttributeType` (the subset we write).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum AttributeType {
    Undefined = 0,
    Float = 1,
    Int = 2,
    String = 3,
    Tensor = 4,
    Floats = 6,
    Ints = 7,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    #[prost(string, tag = "12")]
    pub doc_string: String,
}

/// `TensorProto.DataType` (the subset we use).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DataType {
    Undefined = 0,
    Float = 1,
    Int64 = 7,
    Bool = 9,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    #[prost(string, tag = "3")]
    pub doc_string: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    #[prost(oneof = "type_proto::Value", tags = "1")]
    pub value: Option<type_proto::Value>,
}

pub mod type_proto {
    /// `TypeProto.Tensor`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Tensor {
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        #[prost(message, optional, tag = "2")]
        pub shape: Option<super::TensorShapeProto>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(message, tag = "1")]
        TensorType(Tensor),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<tensor_shape_proto::Dimension>,
}

pub mod tensor_shape_proto {
    /// `TensorShapeProto.Dimension`: a fixed size or a named symbolic one.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        #[prost(oneof = "dimension::Value", tags = "1, 2")]
        pub value: Option<dimension::Value>,
    }

    pub mod dimension {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(int64, tag = "1")]
            DimValue(i64),
            #[prost(string, tag = "2")]
            DimParam(String),
        }
    }
}

/// One dimension of a declared input/output shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Fixed(i64),
    /// A symbolic size such as `"batch"`; equal names must be equal at run time.
    Named(&'static str),
}

/// A float32 tensor stored little-endian in `raw_data`.
pub fn tensor_f32(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    debug_assert_eq!(dims.iter().product::<i64>(), values.len() as i64);
    let mut raw_data = Vec::with_capacity(values.len() * 4);
    for value in values {
        raw_data.extend_from_slice(&value.to_le_bytes());
    }
    TensorProto {
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        name: name.to_string(),
        raw_data,
        ..Default::default()
    }
}

/// An int64 tensor stored little-endian in `raw_data`.
pub fn tensor_i64(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
    debug_assert_eq!(dims.iter().product::<i64>(), values.len() as i64);
    let mut raw_data = Vec::with_capacity(values.len() * 8);
    for value in values {
        raw_data.extend_from_slice(&value.to_le_bytes());
    }
    TensorProto {
        dims: dims.to_vec(),
        data_type: DataType::Int64 as i32,
        name: name.to_string(),
        raw_data,
        ..Default::default()
    }
}

impl TensorProto {
    /// The element count its `dims` declare.
    pub fn element_count(&self) -> usize {
        self.dims.iter().map(|&dim| dim.max(0) as usize).product()
    }

    /// The values of a float32 tensor (from `raw_data` or `float_data`), checked against `dims`.
    pub fn f32_values(&self) -> Result<Vec<f32>> {
        ensure!(
            self.data_type == DataType::Float as i32,
            "tensor `{}` has data type {}, expected FLOAT (1)",
            self.name,
            self.data_type
        );
        let values: Vec<f32> = if !self.raw_data.is_empty() {
            ensure!(
                self.raw_data.len().is_multiple_of(4),
                "tensor `{}`: raw_data holds {} bytes, not whole float32 values",
                self.name,
                self.raw_data.len()
            );
            self.raw_data
                .chunks_exact(4)
                .map(|bytes| f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
                .collect()
        } else {
            self.float_data.clone()
        };
        if values.len() != self.element_count() {
            bail!(
                "tensor `{}`: dims {:?} call for {} values, found {}",
                self.name,
                self.dims,
                self.element_count(),
                values.len()
            );
        }
        Ok(values)
    }

    /// The values of an int64 tensor (from `raw_data` or `int64_data`), checked against `dims`.
    pub fn i64_values(&self) -> Result<Vec<i64>> {
        ensure!(
            self.data_type == DataType::Int64 as i32,
            "tensor `{}` has data type {}, expected INT64 (7)",
            self.name,
            self.data_type
        );
        let values: Vec<i64> = if !self.raw_data.is_empty() {
            ensure!(
                self.raw_data.len().is_multiple_of(8),
                "tensor `{}`: raw_data holds {} bytes, not whole int64 values",
                self.name,
                self.raw_data.len()
            );
            self.raw_data
                .chunks_exact(8)
                .map(|bytes| i64::from_le_bytes(bytes.try_into().expect("8-byte chunk")))
                .collect()
        } else {
            self.int64_data.clone()
        };
        if values.len() != self.element_count() {
            bail!(
                "tensor `{}`: dims {:?} call for {} values, found {}",
                self.name,
                self.dims,
                self.element_count(),
                values.len()
            );
        }
        Ok(values)
    }
}

/// A graph input or output: a tensor of `elem_type` with the given shape.
pub fn tensor_value_info(name: &str, elem_type: DataType, shape: &[Dim]) -> ValueInfoProto {
    let dim = shape
        .iter()
        .map(|dim| tensor_shape_proto::Dimension {
            value: Some(match *dim {
                Dim::Fixed(size) => tensor_shape_proto::dimension::Value::DimValue(size),
                Dim::Named(name) => tensor_shape_proto::dimension::Value::DimParam(name.into()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem_type as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        doc_string: String::new(),
    }
}

/// A node of the default operator set; add attributes with [`NodeProto::with`].
pub fn node(op_type: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|input| input.to_string()).collect(),
        output: outputs.iter().map(|output| output.to_string()).collect(),
        name: name.to_string(),
        op_type: op_type.to_string(),
        ..Default::default()
    }
}

/// A node attribute value.
#[derive(Debug, Clone)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Str(&'static str),
    Ints(Vec<i64>),
    Tensor(TensorProto),
}

impl NodeProto {
    /// Adds the attribute `name`.
    pub fn with(mut self, name: &str, value: Attr) -> Self {
        let mut attribute = AttributeProto {
            name: name.to_string(),
            ..Default::default()
        };
        match value {
            Attr::Int(i) => {
                attribute.r#type = AttributeType::Int as i32;
                attribute.i = i;
            }
            Attr::Float(f) => {
                attribute.r#type = AttributeType::Float as i32;
                attribute.f = f;
            }
            Attr::Str(s) => {
                attribute.r#type = AttributeType::String as i32;
                attribute.s = s.as_bytes().to_vec();
            }
            Attr::Ints(ints) => {
                attribute.r#type = AttributeType::Ints as i32;
                attribute.ints = ints;
            }
            Attr::Tensor(tensor) => {
                attribute.r#type = AttributeType::Tensor as i32;
                attribute.t = Some(tensor);
            }
        }
        self.attribute.push(attribute);
        self
    }
}

/// A model around `graph` importing the default operator set at [`OPSET_VERSION`].
pub fn model(graph: GraphProto, doc_string: &str) -> ModelProto {
    ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET_VERSION,
        }],
        producer_name: PRODUCER_NAME.to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        doc_string: doc_string.to_string(),
        graph: Some(graph),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn tensors_round_trip_through_protobuf_bytes() {
        let floats = tensor_f32("w", &[2, 3], &[1.0, -2.5, 3.25, 0.0, f32::MIN, f32::MAX]);
        let ints = tensor_i64("i", &[3], &[-1, 0, i64::MAX]);
        let graph = GraphProto {
            initializer: vec![floats.clone(), ints.clone()],
            ..Default::default()
        };
        let bytes = model(graph, "test").encode_to_vec();
        let decoded = ModelProto::decode(bytes.as_slice()).unwrap();
        let initializers = &decoded.graph.unwrap().initializer;
        assert_eq!(
            initializers[0].f32_values().unwrap(),
            floats.f32_values().unwrap()
        );
        assert_eq!(initializers[1].i64_values().unwrap(), vec![-1, 0, i64::MAX]);
        assert_eq!(decoded.ir_version, IR_VERSION);
    }

    #[test]
    fn a_tensor_whose_data_does_not_fill_its_dims_is_an_error() {
        let mut tensor = tensor_f32("w", &[2], &[1.0, 2.0]);
        tensor.dims = vec![3];
        let error = tensor.f32_values().unwrap_err().to_string();
        assert!(
            error.contains("`w`") && error.contains("3 values"),
            "{error}"
        );
        assert!(tensor.i64_values().is_err());
    }
}
