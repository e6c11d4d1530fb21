//! The ONNX graphs warez-pipe generates for the recommender, written from Rust as protobuf:
//!
//! - [`training`]: one training step's arithmetic — forward pass with dropout masks as inputs,
//!   Keras' MSLE loss, and every parameter's gradient, derived by hand in standard operators;
//! - [`optimizer`]: Adam (Keras semantics) on the dense layers and on the batch's embedding rows,
//!   including the exact catch-up of the steps a row sat out (the trainer applies it with
//!   [`optimizer::adam_step`] and [`optimizer::catch_up_row`], the same arithmetic bit for bit);
//! - [`eval`]: the serving graph (`user`, `product` → `dense_2/BiasAdd`) with the weights inside.
//!
//! The training and optimizer graphs hold no weights: the trainer keeps the parameters and the
//! Adam state and feeds each step only what the step touches (see [`super::trainer`]).
//! [`GraphBuilder`] below keeps the graph code close to the math: every value gets a readable
//! name (the node producing it has the same name), which is also what Netron shows.

pub mod eval;
pub mod optimizer;
pub mod training;

use super::onnx_proto::{
    self, tensor_proto::DataType, Attr, Dim, GraphProto, ModelProto, NodeProto, TensorProto,
};

/// Collects the nodes, constants, inputs and outputs of one graph.
pub struct GraphBuilder {
    name: String,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<onnx_proto::ValueInfoProto>,
    outputs: Vec<onnx_proto::ValueInfoProto>,
}

impl GraphBuilder {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            nodes: Vec::new(),
            initializers: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// Declares a graph input and returns its name.
    pub fn input(&mut self, name: &str, elem_type: DataType, shape: &[Dim]) -> String {
        self.inputs
            .push(onnx_proto::tensor_value_info(name, elem_type, shape));
        name.to_string()
    }

    /// Declares the value `name` (produced by a node or an initializer) a graph output.
    pub fn output(&mut self, name: &str, elem_type: DataType, shape: &[Dim]) {
        self.outputs
            .push(onnx_proto::tensor_value_info(name, elem_type, shape));
    }

    /// A float32 constant (stored as an initializer) and its name.
    pub fn constant_f32(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        self.initializers
            .push(onnx_proto::tensor_f32(name, dims, values));
        name.to_string()
    }

    /// A float32 initializer whose values are supplied when the model is written (an
    /// [`onnx_proto::Payload`]), and its name.
    pub fn placeholder_f32(&mut self, name: &str, dims: &[i64]) -> String {
        self.initializers
            .push(onnx_proto::tensor_f32_placeholder(name, dims));
        name.to_string()
    }

    /// An int64 constant (stored as an initializer) and its name.
    pub fn constant_i64(&mut self, name: &str, dims: &[i64], values: &[i64]) -> String {
        self.initializers
            .push(onnx_proto::tensor_i64(name, dims, values));
        name.to_string()
    }

    /// A float32 scalar constant.
    pub fn scalar(&mut self, name: &str, value: f32) -> String {
        self.constant_f32(name, &[], &[value])
    }

    /// Adds a node computing `op_type(inputs)` into the value `output` and returns its name.
    pub fn op(&mut self, op_type: &str, inputs: &[&str], output: &str) -> String {
        self.op_with(op_type, inputs, &[], output)
    }

    /// Like [`Self::op`], with attributes.
    pub fn op_with(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        attributes: &[(&str, Attr)],
        output: &str,
    ) -> String {
        self.op_multi(op_type, inputs, attributes, &[output]);
        output.to_string()
    }

    /// A node with several outputs.
    pub fn op_multi(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        attributes: &[(&str, Attr)],
        outputs: &[&str],
    ) {
        let mut node = onnx_proto::node(op_type, outputs[0], inputs, outputs);
        for (name, value) in attributes {
            node = node.with(name, value.clone());
        }
        self.nodes.push(node);
    }

    /// The finished model.
    pub fn finish(self, doc_string: &str) -> ModelProto {
        let graph = GraphProto {
            node: self.nodes,
            name: self.name,
            initializer: self.initializers,
            input: self.inputs,
            output: self.outputs,
        };
        onnx_proto::model(graph, doc_string)
    }
}
