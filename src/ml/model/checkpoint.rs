//! `checkpoint.onnx`: the trained parameters and the Adam state, as an ONNX model whose graph
//! holds only initializers (no nodes, no inputs), so Netron, `onnx` and the exporters read it
//! without another format. Every initializer is also declared a graph output, which makes the
//! file a valid ONNX Runtime model too: running it with no inputs returns every tensor.
//!
//! | initializer                    | shape                | holds                                  |
//! |--------------------------------|----------------------|----------------------------------------|
//! | `customer_embedding`           | `[n_customers, k]`   | parameter (names from [`params`])      |
//! | `product_embedding`            | `[n_products, k]`    | parameter                              |
//! | `dense_1/kernel`, `dense_1/bias` | `[2k, k]`, `[k]`   | parameters                             |
//! | `dense_2/kernel`, `dense_2/bias` | `[k, 1]`, `[1]`    | parameters                             |
//! | `adam/m/<parameter>`           | as the parameter     | Adam's first moment                    |
//! | `adam/v/<parameter>`           | as the parameter     | Adam's second moment                   |
//! | `adam/step`                    | `[]` int64           | optimizer steps taken (Keras `iterations`) |
//!
//! The moments are those of dense Adam after `adam/step` steps: the trainer catches every
//! embedding row up before it writes the checkpoint (see the optimizer graph, `graphs::optimizer`).
//!
//! [`params`]: super::params

use std::path::Path;

use anyhow::{bail, Context, Result};
use prost::Message;

use super::onnx_proto::{self, tensor_proto::DataType, Dim, GraphProto, ModelProto, TensorProto};
use super::params::{
    ModelParams, CUSTOMER_EMBEDDING, DENSE_1_BIAS, DENSE_1_KERNEL, DENSE_2_BIAS, DENSE_2_KERNEL,
    PRODUCT_EMBEDDING,
};

const ADAM_STEP: &str = "adam/step";

/// Adam's state for every parameter: moments shaped like the parameters themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamState {
    /// Steps taken so far; the next step is `step + 1`.
    pub step: u64,
    /// First moment (`m`) of every parameter.
    pub m: ModelParams,
    /// Second moment (`v`) of every parameter.
    pub v: ModelParams,
}

impl AdamState {
    /// The state before the first step: zero moments shaped like `params`.
    pub fn zeros_like(params: &ModelParams) -> Self {
        let zeros = zeros_like(params);
        Self {
            step: 0,
            m: zeros.clone(),
            v: zeros,
        }
    }
}

fn zeros_like(params: &ModelParams) -> ModelParams {
    let mut zeros = params.clone();
    for (_, _, values) in tensors_mut(&mut zeros) {
        values.fill(0.0);
    }
    zeros
}

/// The six parameters with their checkpoint names and shapes, in a fixed order.
fn tensors(params: &ModelParams) -> [(&'static str, Vec<i64>, &[f32]); 6] {
    let (n_c, n_p, k) = (
        params.n_customers as i64,
        params.n_products as i64,
        params.n_factors as i64,
    );
    [
        (CUSTOMER_EMBEDDING, vec![n_c, k], &params.customer_embedding),
        (PRODUCT_EMBEDDING, vec![n_p, k], &params.product_embedding),
        (DENSE_1_KERNEL, vec![2 * k, k], &params.dense_1_kernel),
        (DENSE_1_BIAS, vec![k], &params.dense_1_bias),
        (DENSE_2_KERNEL, vec![k, 1], &params.dense_2_kernel),
        (DENSE_2_BIAS, vec![1], &params.dense_2_bias),
    ]
}

fn tensors_mut(params: &mut ModelParams) -> [(&'static str, Vec<i64>, &mut Vec<f32>); 6] {
    let (n_c, n_p, k) = (
        params.n_customers as i64,
        params.n_products as i64,
        params.n_factors as i64,
    );
    [
        (
            CUSTOMER_EMBEDDING,
            vec![n_c, k],
            &mut params.customer_embedding,
        ),
        (
            PRODUCT_EMBEDDING,
            vec![n_p, k],
            &mut params.product_embedding,
        ),
        (DENSE_1_KERNEL, vec![2 * k, k], &mut params.dense_1_kernel),
        (DENSE_1_BIAS, vec![k], &mut params.dense_1_bias),
        (DENSE_2_KERNEL, vec![k, 1], &mut params.dense_2_kernel),
        (DENSE_2_BIAS, vec![1], &mut params.dense_2_bias),
    ]
}

/// The checkpoint as an ONNX model (see the module doc for its initializers).
pub fn to_model(params: &ModelParams, adam: &AdamState) -> ModelProto {
    let mut initializer = Vec::with_capacity(19);
    for (name, dims, values) in tensors(params) {
        initializer.push(onnx_proto::tensor_f32(name, &dims, values));
    }
    for (moment, state) in [("m", &adam.m), ("v", &adam.v)] {
        for (name, dims, values) in tensors(state) {
            initializer.push(onnx_proto::tensor_f32(
                &format!("adam/{moment}/{name}"),
                &dims,
                values,
            ));
        }
    }
    initializer.push(onnx_proto::tensor_i64(ADAM_STEP, &[], &[adam.step as i64]));
    let output = initializer
        .iter()
        .map(|tensor| {
            let elem_type = if tensor.data_type == DataType::Int64 as i32 {
                DataType::Int64
            } else {
                DataType::Float
            };
            let shape: Vec<Dim> = tensor.dims.iter().map(|&dim| Dim::Fixed(dim)).collect();
            onnx_proto::tensor_value_info(&tensor.name, elem_type, &shape)
        })
        .collect();
    let graph = GraphProto {
        name: "checkpoint".into(),
        initializer,
        output,
        ..Default::default()
    };
    onnx_proto::model(
        graph,
        "warez-pipe training checkpoint: the recommender's parameters and Adam state",
    )
}

/// Writes `checkpoint.onnx` at `path`.
pub fn write(path: &Path, params: &ModelParams, adam: &AdamState) -> Result<()> {
    let bytes = to_model(params, adam).encode_to_vec();
    std::fs::write(path, bytes).with_context(|| format!("writing checkpoint {}", path.display()))
}

/// Reads the parameters of the checkpoint at `path`.
pub fn read_params(path: &Path) -> Result<ModelParams> {
    let model = decode(path)?;
    params_from(&model, "").with_context(|| format!("checkpoint {}", path.display()))
}

/// Reads the parameters and the Adam state of the checkpoint at `path`.
pub fn read(path: &Path) -> Result<(ModelParams, AdamState)> {
    let model = decode(path)?;
    let read = || -> Result<(ModelParams, AdamState)> {
        let params = params_from(&model, "")?;
        let m = params_from(&model, "adam/m/")?;
        let v = params_from(&model, "adam/v/")?;
        for (moment, state) in [("adam/m/", &m), ("adam/v/", &v)] {
            if (state.n_customers, state.n_products, state.n_factors)
                != (params.n_customers, params.n_products, params.n_factors)
            {
                bail!("the `{moment}…` tensors are not shaped like the parameters");
            }
        }
        let step = initializer(&model, ADAM_STEP)?.i64_values()?;
        let step = match step.as_slice() {
            [step] if *step >= 0 => *step as u64,
            _ => bail!("`{ADAM_STEP}` must be one int64 ≥ 0, found {step:?}"),
        };
        Ok((params, AdamState { step, m, v }))
    };
    read().with_context(|| format!("checkpoint {}", path.display()))
}

fn decode(path: &Path) -> Result<ModelProto> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
    ModelProto::decode(bytes.as_slice())
        .with_context(|| format!("{} is not an ONNX model", path.display()))
}

fn initializer<'m>(model: &'m ModelProto, name: &str) -> Result<&'m TensorProto> {
    model
        .graph
        .as_ref()
        .and_then(|graph| graph.initializer.iter().find(|tensor| tensor.name == name))
        .with_context(|| format!("no tensor `{name}`"))
}

/// The six tensors named `<prefix><parameter>`, their shapes checked against one another.
fn params_from(model: &ModelProto, prefix: &str) -> Result<ModelParams> {
    let tensor = |name: &str| initializer(model, &format!("{prefix}{name}"));
    let customers = tensor(CUSTOMER_EMBEDDING)?;
    let products = tensor(PRODUCT_EMBEDDING)?;
    let (n_customers, n_factors) = match customers.dims.as_slice() {
        &[rows, k] if rows >= 0 && k > 0 => (rows as usize, k as usize),
        dims => bail!(
            "tensor `{prefix}{CUSTOMER_EMBEDDING}` has shape {dims:?}, expected [n_customers, k]"
        ),
    };
    let n_products = match products.dims.as_slice() {
        &[rows, _] if rows >= 0 => rows as usize,
        dims => bail!("tensor `{prefix}{PRODUCT_EMBEDDING}` has shape {dims:?}, expected [n_products, {n_factors}]"),
    };
    let mut params = ModelParams {
        n_customers,
        n_products,
        n_factors,
        customer_embedding: Vec::new(),
        product_embedding: Vec::new(),
        dense_1_kernel: Vec::new(),
        dense_1_bias: Vec::new(),
        dense_2_kernel: Vec::new(),
        dense_2_bias: Vec::new(),
    };
    for (name, dims, values) in tensors_mut(&mut params) {
        let tensor = tensor(name)?;
        if tensor.dims != dims {
            bail!(
                "tensor `{prefix}{name}` has shape {:?}, expected {dims:?}",
                tensor.dims
            );
        }
        *values = tensor.f32_values()?;
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_params() -> ModelParams {
        let (n_c, n_p, k) = (3, 2, 2);
        let ramp = |n: usize, scale: f32| (0..n).map(|i| i as f32 * scale).collect::<Vec<_>>();
        ModelParams {
            n_customers: n_c,
            n_products: n_p,
            n_factors: k,
            customer_embedding: ramp(n_c * k, 0.1),
            product_embedding: ramp(n_p * k, -0.2),
            dense_1_kernel: ramp(2 * k * k, 0.3),
            dense_1_bias: ramp(k, 0.4),
            dense_2_kernel: ramp(k, 0.5),
            dense_2_bias: vec![0.6],
        }
    }

    #[test]
    fn parameters_and_adam_state_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.onnx");
        let params = tiny_params();
        let mut adam = AdamState::zeros_like(&params);
        adam.step = 17;
        adam.m.dense_2_bias[0] = 0.25;
        adam.v.customer_embedding[5] = 0.5;
        write(&path, &params, &adam).unwrap();
        assert_eq!(read_params(&path).unwrap(), params);
        assert_eq!(read(&path).unwrap(), (params, adam));
    }

    #[test]
    fn a_missing_or_misshapen_tensor_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.onnx");
        let params = tiny_params();
        let mut model = to_model(&params, &AdamState::zeros_like(&params));
        let graph = model.graph.as_mut().unwrap();
        graph
            .initializer
            .retain(|tensor| tensor.name != DENSE_1_BIAS);
        std::fs::write(&path, model.encode_to_vec()).unwrap();
        let error = format!("{:#}", read_params(&path).unwrap_err());
        assert!(error.contains("no tensor `dense_1/bias`"), "{error}");

        let mut model = to_model(&params, &AdamState::zeros_like(&params));
        let graph = model.graph.as_mut().unwrap();
        let kernel = graph
            .initializer
            .iter_mut()
            .find(|tensor| tensor.name == DENSE_2_KERNEL)
            .unwrap();
        kernel.dims = vec![1, 2];
        std::fs::write(&path, model.encode_to_vec()).unwrap();
        let error = format!("{:#}", read_params(&path).unwrap_err());
        assert!(
            error.contains("`dense_2/kernel` has shape [1, 2], expected [2, 1]"),
            "{error}"
        );
    }
}
