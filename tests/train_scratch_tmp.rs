use prost::Message;
use warez_pipe::model::{graphs, params::ModelParams};
#[test]
fn scratch() {
    let p = ModelParams { n_customers: 3, n_products: 2, n_factors: 2, customer_embedding: vec![0.1;6], product_embedding: vec![0.2;4], dense_1_kernel: vec![0.3;8], dense_1_bias: vec![0.0;2], dense_2_kernel: vec![0.5;2], dense_2_bias: vec![0.0]};
    std::fs::write("/tmp/cktest/training.onnx", graphs::training::build(2).encode_to_vec()).unwrap();
    std::fs::write("/tmp/cktest/optimizer.onnx", graphs::optimizer::build(2, &Default::default()).encode_to_vec()).unwrap();
    std::fs::write("/tmp/cktest/eval.onnx", graphs::eval::build(&p).encode_to_vec()).unwrap();
}
