//! The recommender model: the network's parameters, the ONNX training/eval graphs warez-pipe
//! generates, the ONNX Runtime trainer, and the TensorFlow export.

pub mod avro_record;
pub mod checkpoint;
pub mod graphs;
pub mod metrics;
pub mod onnx_proto;
pub mod params;
pub mod runtime;
pub mod tf_bundle;
pub mod tf_export;
pub mod tf_proto;
pub mod trainer;
