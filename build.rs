//! Generates the Rust types of warez-pipe's protobuf schemas (`proto/*.proto`) into `OUT_DIR`:
//! `onnx.rs` and `tensorflow.rs` (one file per package, included by `src/model/onnx_proto.rs`
//! and `src/model/tf_proto.rs`), and `proto_descriptors.bin`, the schemas' `FileDescriptorSet`,
//! which `tests/proto_schemas.rs` compares with the reference packages' descriptors.
//!
//! The .proto files are parsed by `protox`, a protobuf compiler in Rust, so building needs no
//! `protoc`.

use std::error::Error;
use std::path::PathBuf;

use prost::Message;

const PROTO_DIR: &str = "proto";
const SCHEMAS: [&str; 2] = ["proto/onnx.proto", "proto/tensorflow.proto"];

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed={PROTO_DIR}");
    let descriptors = protox::compile(SCHEMAS, [PROTO_DIR])?;
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    std::fs::write(
        out_dir.join("proto_descriptors.bin"),
        descriptors.encode_to_vec(),
    )?;
    prost_build::Config::new()
        // Maps encode in key order, so the same message always gives the same bytes.
        .btree_map(["."])
        // A Const's tensor as `bytes::Bytes`: decoding a GraphDef from a `Bytes` buffer then
        // slices the tables out of it instead of copying them (`write_avro` checks a graph of
        // hundreds of MB without holding it twice).
        .bytes([".tensorflow.TensorProto.tensor_content"])
        .compile_fds(descriptors)?;
    Ok(())
}
