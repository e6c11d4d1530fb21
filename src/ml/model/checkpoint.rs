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
//! # External data: `checkpoint.onnx.data`
//! The float32 tensors of at least [`EXTERNAL_MIN_BYTES`] (every one but the tiniest) are stored
//! in a second file beside the model, by the ONNX external data convention: `data_location`
//! EXTERNAL and `external_data` {`location`, `offset`, `length`}, `location` being the data
//! file's name (it must sit in the checkpoint's folder). The parameters plus two Adam moments
//! are three times the tables, and a protobuf message cannot exceed 2 GiB: with 50 factors an
//! inline checkpoint stops working near 3.5M customers, an external one has no such limit.
//! `onnx.load` (which loads external data by default), ONNX Runtime and Netron read it as they
//! read any large model, given both files. Both are written streaming from the trainer's tables
//! ([`onnx_proto::write_model`]); the model records each tensor's blake3, so its bytes change
//! with the data's and the readers here check the data they read against it.
//!
//! [`params`]: super::params

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::onnx_proto::{
    self, tensor_proto::DataType, Dim, ExternalData, GraphProto, ModelFile, ModelProto, Payload,
};
use super::params::{ModelParams, ParamsView, CUSTOMER_EMBEDDING, PRODUCT_EMBEDDING};

const ADAM_STEP: &str = "adam/step";

/// Float32 tensors of at least this many bytes go to the data file (the `onnx` package's own
/// default `size_threshold` for external data).
pub const EXTERNAL_MIN_BYTES: usize = 1024;

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

    pub fn view(&self) -> AdamView<'_> {
        AdamView {
            step: self.step,
            m: self.m.view(),
            v: self.v.view(),
        }
    }
}

/// [`AdamState`] borrowed from wherever it lives.
#[derive(Debug, Clone, Copy)]
pub struct AdamView<'a> {
    pub step: u64,
    pub m: ParamsView<'a>,
    pub v: ParamsView<'a>,
}

fn zeros_like(params: &ModelParams) -> ModelParams {
    let mut zeros = params.clone();
    for values in tensors_mut(&mut zeros) {
        values.fill(0.0);
    }
    zeros
}

/// The six parameters' buffers, in [`ParamsView::tensors`]' order.
fn tensors_mut(params: &mut ModelParams) -> [&mut Vec<f32>; 6] {
    [
        &mut params.customer_embedding,
        &mut params.product_embedding,
        &mut params.dense_1_kernel,
        &mut params.dense_1_bias,
        &mut params.dense_2_kernel,
        &mut params.dense_2_bias,
    ]
}

/// The data file of the checkpoint at `path`: `<file name>.data` beside it.
pub fn data_path(checkpoint: &Path) -> PathBuf {
    let mut name = checkpoint.file_name().unwrap_or_default().to_os_string();
    name.push(".data");
    checkpoint.with_file_name(name)
}

/// The checkpoint's model with an empty slot for every float32 tensor, and the values that go
/// in them (see the module doc for its initializers).
fn frame<'a>(params: ParamsView<'a>, adam: AdamView<'a>) -> (ModelProto, Vec<Payload<'a>>) {
    let mut initializer = Vec::with_capacity(19);
    let mut payloads = Vec::with_capacity(18);
    for (prefix, state) in [("", params), ("adam/m/", adam.m), ("adam/v/", adam.v)] {
        for (name, dims, values) in state.tensors() {
            let name = format!("{prefix}{name}");
            initializer.push(onnx_proto::tensor_f32_placeholder(&name, &dims));
            payloads.push(Payload { name, values });
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
    let model = onnx_proto::model(
        graph,
        "warez-pipe training checkpoint: the recommender's parameters and Adam state",
    );
    (model, payloads)
}

/// Writes the checkpoint at `path` with its data file at `data`. The model refers to the data
/// by `data`'s file name: readers look for it in the checkpoint's folder, so that is where it
/// must end up (the train stage writes both into staging folders the engine moves into place).
pub fn write(path: &Path, data: &Path, params: ParamsView, adam: AdamView) -> Result<()> {
    let location = data
        .file_name()
        .and_then(|name| name.to_str())
        .with_context(|| format!("{} is not a usable data file name", data.display()))?;
    let (model, payloads) = frame(params, adam);
    let write = || -> Result<()> {
        let mut data_file = BufWriter::new(
            File::create(data).with_context(|| format!("creating {}", data.display()))?,
        );
        let mut model_file = BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        onnx_proto::write_model(
            &mut model_file,
            &model,
            &payloads,
            Some(ExternalData {
                location,
                file: &mut data_file,
                min_bytes: EXTERNAL_MIN_BYTES,
            }),
        )?;
        data_file.flush()?;
        model_file.flush()?;
        Ok(())
    };
    write().with_context(|| format!("writing checkpoint {}", path.display()))
}

/// Reads the parameters of the checkpoint at `path`.
pub fn read_params(path: &Path) -> Result<ModelParams> {
    let model = ModelFile::read(path).with_context(|| format!("checkpoint {}", path.display()))?;
    params_from(&model, "").with_context(|| format!("checkpoint {}", path.display()))
}

/// Reads the parameters and the Adam state of the checkpoint at `path`.
pub fn read(path: &Path) -> Result<(ModelParams, AdamState)> {
    let model = ModelFile::read(path).with_context(|| format!("checkpoint {}", path.display()))?;
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
        let step = model.initializer(ADAM_STEP)?.i64_values()?;
        let step = match step.as_slice() {
            [step] if *step >= 0 => *step as u64,
            _ => bail!("`{ADAM_STEP}` must be one int64 ≥ 0, found {step:?}"),
        };
        Ok((params, AdamState { step, m, v }))
    };
    read().with_context(|| format!("checkpoint {}", path.display()))
}

/// The six tensors named `<prefix><parameter>`, their shapes checked against one another.
fn params_from(model: &ModelFile, prefix: &str) -> Result<ModelParams> {
    let tensor = |name: &str| model.initializer(&format!("{prefix}{name}"));
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
    let shapes = params.view().tensors().map(|(name, dims, _)| (name, dims));
    for ((name, dims), values) in shapes.into_iter().zip(tensors_mut(&mut params)) {
        let tensor = tensor(name)?;
        if tensor.dims != dims {
            bail!(
                "tensor `{prefix}{name}` has shape {:?}, expected {dims:?}",
                tensor.dims
            );
        }
        *values = model.f32_values(tensor)?;
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::ml::model::onnx_proto::tensor_proto::DataLocation;
    use crate::ml::model::params::{DENSE_1_BIAS, DENSE_2_KERNEL};

    /// Parameters with `n_c` customers: from 128 on the customer tensors go to the data file.
    fn ramp_params(n_c: usize) -> ModelParams {
        let (n_p, k) = (2, 2);
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

    fn write_checkpoint(path: &Path, params: &ModelParams, adam: &AdamState) {
        write(path, &data_path(path), params.view(), adam.view()).unwrap();
    }

    fn decoded(path: &Path) -> ModelProto {
        ModelProto::decode(std::fs::read(path).unwrap().as_slice()).unwrap()
    }

    #[test]
    fn parameters_and_adam_state_round_trip_inline_and_external() {
        for (n_c, external) in [(3, false), (300, true)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("checkpoint.onnx");
            let params = ramp_params(n_c);
            let mut adam = AdamState::zeros_like(&params);
            adam.step = 17;
            adam.m.dense_2_bias[0] = 0.25;
            adam.v.customer_embedding[5] = 0.5;
            write_checkpoint(&path, &params, &adam);
            assert_eq!(read_params(&path).unwrap(), params);
            assert_eq!(read(&path).unwrap(), (params.clone(), adam));

            let model = decoded(&path);
            let stored_outside = |name: &str| {
                let graph = model.graph.as_ref().unwrap();
                let tensor = graph.initializer.iter().find(|t| t.name == name).unwrap();
                tensor.data_location() == DataLocation::External
            };
            assert_eq!(stored_outside(CUSTOMER_EMBEDDING), external);
            assert_eq!(stored_outside("adam/v/customer_embedding"), external);
            assert!(!stored_outside(PRODUCT_EMBEDDING), "16 bytes stay inline");
            let data_len = std::fs::metadata(data_path(&path)).unwrap().len();
            assert_eq!(data_len, if external { 3 * 4 * 600 } else { 0 });
        }
    }

    #[test]
    fn a_data_file_that_does_not_match_the_model_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.onnx");
        let params = ramp_params(300);
        write_checkpoint(&path, &params, &AdamState::zeros_like(&params));
        let mut data = std::fs::read(data_path(&path)).unwrap();
        data[7] ^= 1;
        std::fs::write(data_path(&path), &data).unwrap();
        let error = format!("{:#}", read_params(&path).unwrap_err());
        assert!(
            error.contains("tensor `customer_embedding`")
                && error.contains("does not belong to this model")
                && error.contains("checkpoint.onnx.data"),
            "{error}"
        );

        data.truncate(100);
        std::fs::write(data_path(&path), &data).unwrap();
        let error = format!("{:#}", read_params(&path).unwrap_err());
        assert!(error.contains("past its end (100 bytes)"), "{error}");

        std::fs::remove_file(data_path(&path)).unwrap();
        let error = format!("{:#}", read_params(&path).unwrap_err());
        assert!(error.contains("checkpoint.onnx.data"), "{error}");
    }

    #[test]
    fn an_external_location_outside_the_model_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.onnx");
        let params = ramp_params(300);
        write_checkpoint(&path, &params, &AdamState::zeros_like(&params));
        let mut model = decoded(&path);
        for tensor in &mut model.graph.as_mut().unwrap().initializer {
            for entry in &mut tensor.external_data {
                if entry.key == "location" {
                    entry.value = "../checkpoint.onnx.data".into();
                }
            }
        }
        std::fs::write(&path, model.encode_to_vec()).unwrap();
        let error = format!("{:#}", read_params(&path).unwrap_err());
        assert!(
            error.contains("location `../checkpoint.onnx.data` is not a file name"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_or_misshapen_tensor_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.onnx");
        let params = ramp_params(3);
        write_checkpoint(&path, &params, &AdamState::zeros_like(&params));
        let written = decoded(&path);

        let mut model = written.clone();
        let graph = model.graph.as_mut().unwrap();
        graph
            .initializer
            .retain(|tensor| tensor.name != DENSE_1_BIAS);
        std::fs::write(&path, model.encode_to_vec()).unwrap();
        let error = format!("{:#}", read_params(&path).unwrap_err());
        assert!(error.contains("no tensor `dense_1/bias`"), "{error}");

        let mut model = written;
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
