//! The generated graphs, run in ONNX Runtime: the training graph's gradients against finite
//! differences, the optimizer graph against Keras' Adam computed by hand (one step, and the
//! catch-up against explicit zero-gradient steps), the eval graph against the Rust forward pass
//! and the training graph's forward pass.

mod train_support;

use ort::session::Session;
use ort::value::TensorRef;
use prost::Message;
use warez_pipe::ml::model::graphs::optimizer::{self, AdamConfig};
use warez_pipe::ml::model::graphs::{eval, training};
use warez_pipe::ml::model::params::{
    ModelParams, DENSE_1_BIAS, DENSE_1_KERNEL, DENSE_2_BIAS, DENSE_2_KERNEL,
};
use warez_pipe::ml::model::runtime::{self, EvalSession};
use warez_pipe::ml::model::trainer::initial_params;

const K: usize = 3;

fn session(model: &warez_pipe::ml::model::onnx_proto::ModelProto) -> Session {
    train_support::init_onnxruntime();
    runtime::session_from_bytes(&model.encode_to_vec()).expect("loading a generated graph")
}

/// One batch for the training graph: rows are the distinct customers then distinct products.
struct Batch {
    rows: Vec<f32>,
    customer_row: Vec<i64>,
    product_row: Vec<i64>,
    rating: Vec<f32>,
    mask_1: Vec<f32>,
    mask_2: Vec<f32>,
}

/// Dense parameters in training-graph order: kernel 1, bias 1, kernel 2, bias 2.
type Dense = [Vec<f32>; 4];

struct StepOutputs {
    loss: f32,
    prediction: Vec<f32>,
    rows_grad: Vec<f32>,
    dense_grad: Dense,
}

fn run_training(session: &mut Session, batch: &Batch, dense: &Dense) -> StepOutputs {
    let n = batch.rating.len();
    let rows = batch.rows.len() / K;
    let outputs = session
        .run(ort::inputs![
            training::EMBEDDING_ROWS => TensorRef::from_array_view(([rows, K], &batch.rows[..])).unwrap(),
            training::CUSTOMER_ROW => TensorRef::from_array_view(([n], &batch.customer_row[..])).unwrap(),
            training::PRODUCT_ROW => TensorRef::from_array_view(([n], &batch.product_row[..])).unwrap(),
            training::RATING => TensorRef::from_array_view(([n, 1], &batch.rating[..])).unwrap(),
            training::DROPOUT_1_MASK => TensorRef::from_array_view(([n, 2 * K], &batch.mask_1[..])).unwrap(),
            training::DROPOUT_2_MASK => TensorRef::from_array_view(([n, K], &batch.mask_2[..])).unwrap(),
            DENSE_1_KERNEL => TensorRef::from_array_view(([2 * K, K], &dense[0][..])).unwrap(),
            DENSE_1_BIAS => TensorRef::from_array_view(([K], &dense[1][..])).unwrap(),
            DENSE_2_KERNEL => TensorRef::from_array_view(([K, 1], &dense[2][..])).unwrap(),
            DENSE_2_BIAS => TensorRef::from_array_view(([1], &dense[3][..])).unwrap(),
        ])
        .unwrap();
    let get = |name: &str| {
        outputs[name]
            .try_extract_tensor::<f32>()
            .unwrap()
            .1
            .to_vec()
    };
    StepOutputs {
        loss: get(training::LOSS)[0],
        prediction: get(training::PREDICTION),
        rows_grad: get(training::EMBEDDING_ROWS_GRAD),
        dense_grad: [
            get(training::DENSE_1_KERNEL_GRAD),
            get(training::DENSE_1_BIAS_GRAD),
            get(training::DENSE_2_KERNEL_GRAD),
            get(training::DENSE_2_BIAS_GRAD),
        ],
    }
}

/// A deterministic pseudo-random value in [-1, 1) for index `i` of stream `stream`.
fn noise(stream: u32, i: usize) -> f32 {
    let x = (i as u32)
        .wrapping_mul(2_654_435_761)
        .wrapping_add(stream.wrapping_mul(40_503))
        .rotate_left(13)
        .wrapping_mul(2_246_822_519);
    (x >> 8) as f32 / (1u32 << 23) as f32 - 1.0
}

fn noisy(stream: u32, count: usize, scale: f32) -> Vec<f32> {
    (0..count).map(|i| noise(stream, i) * scale).collect()
}

/// Six samples over customers {0, 1, 2, 3} and products {0, 1, 2}, with repeated ids.
fn tiny_batch() -> Batch {
    // Customers 0,1,0,2,3,0 → rows 0..4; products 1,1,2,0,1,2 → rows 4 (1), 5 (2), 6 (0).
    let customer_row = vec![0, 1, 0, 2, 3, 0];
    let product_row = vec![4, 4, 5, 6, 4, 5];
    let n = customer_row.len();
    let mask = |stream, count| -> Vec<f32> {
        (0..count)
            .map(|i| if noise(stream, i) > -0.6 { 1.25 } else { 0.0 })
            .collect()
    };
    Batch {
        rows: noisy(1, 7 * K, 0.8),
        customer_row,
        product_row,
        rating: (0..n).map(|i| 0.3 + 0.25 * noise(2, i)).collect(),
        mask_1: mask(3, n * 2 * K),
        mask_2: mask(4, n * K),
    }
}

fn tiny_dense() -> Dense {
    [
        noisy(5, 2 * K * K, 0.9),
        noisy(6, K, 0.3),
        noisy(7, K, 0.9),
        vec![0.4],
    ]
}

#[test]
fn training_graph_gradients_match_finite_differences() {
    let mut session = session(&training::build(K));
    let batch = tiny_batch();
    let dense = tiny_dense();
    let exact = run_training(&mut session, &batch, &dense);
    assert!(
        exact.loss > 1e-3,
        "a loss worth differentiating: {}",
        exact.loss
    );
    assert!(exact.rows_grad.iter().any(|&g| g != 0.0));

    let h = 1e-3f32;
    let mut checked = 0;
    let mut compare = |what: String, analytic: f32, plus: f32, minus: f32| {
        let numeric = (plus - minus) / (2.0 * h);
        assert!(
            (numeric - analytic).abs() <= 2e-4 + 2e-2 * analytic.abs(),
            "{what}: analytic {analytic}, finite difference {numeric}"
        );
        checked += 1;
    };
    for i in 0..batch.rows.len() {
        let mut shifted = tiny_batch();
        shifted.rows[i] += h;
        let plus = run_training(&mut session, &shifted, &dense).loss;
        shifted.rows[i] -= 2.0 * h;
        let minus = run_training(&mut session, &shifted, &dense).loss;
        compare(
            format!("embedding row value {i}"),
            exact.rows_grad[i],
            plus,
            minus,
        );
    }
    for (part, name) in [
        "dense_1/kernel",
        "dense_1/bias",
        "dense_2/kernel",
        "dense_2/bias",
    ]
    .iter()
    .enumerate()
    {
        for i in 0..dense[part].len() {
            let mut shifted = tiny_dense();
            shifted[part][i] += h;
            let plus = run_training(&mut session, &batch, &shifted).loss;
            shifted[part][i] -= 2.0 * h;
            let minus = run_training(&mut session, &batch, &shifted).loss;
            compare(
                format!("{name}[{i}]"),
                exact.dense_grad[part][i],
                plus,
                minus,
            );
        }
    }
    assert_eq!(checked, 7 * K + 2 * K * K + K + K + 1);
}

#[test]
fn repeated_rows_get_the_sum_of_their_samples_gradients() {
    let mut session = session(&training::build(K));
    let batch = tiny_batch();
    let dense = tiny_dense();
    let together = run_training(&mut session, &batch, &dense);
    // Customer 0 appears in samples 0, 2 and 5: give each occurrence its own row and sum.
    let mut split = tiny_batch();
    let customer_0 = split.rows[..K].to_vec();
    split.rows.extend_from_slice(&customer_0);
    split.rows.extend_from_slice(&customer_0);
    split.customer_row = vec![0, 1, 7, 2, 3, 8];
    let apart = run_training(&mut session, &split, &dense);
    assert!((apart.loss - together.loss).abs() < 1e-7);
    for j in 0..K {
        let summed = apart.rows_grad[j] + apart.rows_grad[7 * K + j] + apart.rows_grad[8 * K + j];
        assert!(
            (summed - together.rows_grad[j]).abs() < 1e-7,
            "component {j}: {summed} vs {}",
            together.rows_grad[j]
        );
    }
}

/// Keras' Adam in f64 on one value, with the float32 hyperparameters the graph bakes in.
fn keras_adam(theta: f64, m: f64, v: f64, g: f64, step: u32, adam: &AdamConfig) -> [f64; 3] {
    let (b1, b2) = (f64::from(adam.beta_1), f64::from(adam.beta_2));
    let alpha = f64::from(adam.learning_rate) * (1.0 - b2.powi(step as i32)).sqrt()
        / (1.0 - b1.powi(step as i32));
    let m = m + (g - m) * (1.0 - b1);
    let v = v + (g * g - v) * (1.0 - b2);
    [
        theta - alpha * m / (v.sqrt() + f64::from(adam.epsilon)),
        m,
        v,
    ]
}

struct AdamInputs {
    step: u32,
    rows: Vec<f32>,
    rows_m: Vec<f32>,
    rows_v: Vec<f32>,
    rows_grad: Vec<f32>,
    last_step: Vec<i64>,
    dense: Vec<f32>,
    dense_m: Vec<f32>,
    dense_v: Vec<f32>,
    dense_grad: Vec<f32>,
}

/// The optimizer graph's outputs: rows, rows_m, rows_v, dense, dense_m, dense_v.
fn run_optimizer(session: &mut Session, i: &AdamInputs) -> [Vec<f32>; 6] {
    let rows = i.last_step.len();
    let d = i.dense.len();
    let step = [i64::from(i.step)];
    let outputs = session
        .run(ort::inputs![
            optimizer::STEP => TensorRef::from_array_view((Vec::<i64>::new(), &step[..])).unwrap(),
            optimizer::ROWS => TensorRef::from_array_view(([rows, K], &i.rows[..])).unwrap(),
            optimizer::ROWS_M => TensorRef::from_array_view(([rows, K], &i.rows_m[..])).unwrap(),
            optimizer::ROWS_V => TensorRef::from_array_view(([rows, K], &i.rows_v[..])).unwrap(),
            optimizer::ROWS_GRAD => TensorRef::from_array_view(([rows, K], &i.rows_grad[..])).unwrap(),
            optimizer::ROWS_LAST_STEP => TensorRef::from_array_view(([rows], &i.last_step[..])).unwrap(),
            optimizer::DENSE => TensorRef::from_array_view(([d], &i.dense[..])).unwrap(),
            optimizer::DENSE_M => TensorRef::from_array_view(([d], &i.dense_m[..])).unwrap(),
            optimizer::DENSE_V => TensorRef::from_array_view(([d], &i.dense_v[..])).unwrap(),
            optimizer::DENSE_GRAD => TensorRef::from_array_view(([d], &i.dense_grad[..])).unwrap(),
        ])
        .unwrap();
    [
        optimizer::ROWS_UPDATED,
        optimizer::ROWS_M_UPDATED,
        optimizer::ROWS_V_UPDATED,
        optimizer::DENSE_UPDATED,
        optimizer::DENSE_M_UPDATED,
        optimizer::DENSE_V_UPDATED,
    ]
    .map(|name| {
        outputs[name]
            .try_extract_tensor::<f32>()
            .unwrap()
            .1
            .to_vec()
    })
}

fn assert_close(what: &str, actual: f32, expected: f64, tolerance: f64) {
    assert!(
        (f64::from(actual) - expected).abs() <= tolerance,
        "{what}: graph {actual}, hand computation {expected} (tolerance {tolerance})"
    );
}

#[test]
fn one_adam_step_matches_a_hand_computation() {
    let adam = AdamConfig::default();
    let mut session = session(&optimizer::build(K, &adam, 1000));
    let step = 3;
    let inputs = AdamInputs {
        step,
        rows: noisy(10, 2 * K, 0.05),
        rows_m: noisy(11, 2 * K, 1e-3),
        rows_v: noisy(12, 2 * K, 1e-6).iter().map(|v| v.abs()).collect(),
        rows_grad: noisy(13, 2 * K, 1e-2),
        // Both rows were updated at the previous step: nothing to catch up.
        last_step: vec![i64::from(step - 1); 2],
        dense: noisy(14, 5, 0.3),
        dense_m: noisy(15, 5, 1e-2),
        dense_v: noisy(16, 5, 1e-4).iter().map(|v| v.abs()).collect(),
        dense_grad: noisy(17, 5, 0.1),
    };
    let [rows, rows_m, rows_v, dense, dense_m, dense_v] = run_optimizer(&mut session, &inputs);
    let sides = [
        (
            &inputs.rows,
            &inputs.rows_m,
            &inputs.rows_v,
            &inputs.rows_grad,
            [&rows, &rows_m, &rows_v],
        ),
        (
            &inputs.dense,
            &inputs.dense_m,
            &inputs.dense_v,
            &inputs.dense_grad,
            [&dense, &dense_m, &dense_v],
        ),
    ];
    for (theta, m, v, g, updated) in sides {
        for i in 0..theta.len() {
            let expected = keras_adam(
                f64::from(theta[i]),
                f64::from(m[i]),
                f64::from(v[i]),
                f64::from(g[i]),
                step,
                &adam,
            );
            let moved = (expected[0] - f64::from(theta[i])).abs();
            assert!(moved > 1e-5, "the step moves value {i}");
            assert_close("parameter", updated[0][i], expected[0], 1e-4 * moved + 1e-8);
            assert_close(
                "m",
                updated[1][i],
                expected[1],
                1e-6 * expected[1].abs() + 1e-12,
            );
            assert_close(
                "v",
                updated[2][i],
                expected[2],
                1e-5 * expected[2].abs() + 1e-15,
            );
        }
    }
}

#[test]
fn the_catch_up_equals_explicit_zero_gradient_steps() {
    let adam = AdamConfig::default();
    let mut session = session(&optimizer::build(K, &adam, 1000));
    let step = 700u32;
    // Rows that sat out 0, 49 and 688 steps, one with a second moment so small that ε
    // dominates, and one never updated (all zero).
    let last_steps = [699u32, 650, 11, 400, 0];
    let rows = last_steps.len();
    let mut rows_v: Vec<f32> = noisy(22, rows * K, 1e-6).iter().map(|v| v.abs()).collect();
    rows_v[3 * K..4 * K].fill(1e-17);
    let mut rows_m = noisy(21, rows * K, 1e-3);
    rows_m[4 * K..].fill(0.0);
    rows_v[4 * K..].fill(0.0);
    let inputs = AdamInputs {
        step,
        rows: noisy(20, rows * K, 0.05),
        rows_m,
        rows_v,
        rows_grad: noisy(23, rows * K, 1e-2),
        last_step: last_steps.iter().map(|&s| i64::from(s)).collect(),
        dense: vec![0.0; 2],
        dense_m: vec![0.0; 2],
        dense_v: vec![0.0; 2],
        dense_grad: vec![0.0; 2],
    };
    let [updated, updated_m, updated_v, ..] = run_optimizer(&mut session, &inputs);
    for (row, &last) in last_steps.iter().enumerate() {
        for j in 0..K {
            let i = row * K + j;
            let mut state = [
                f64::from(inputs.rows[i]),
                f64::from(inputs.rows_m[i]),
                f64::from(inputs.rows_v[i]),
            ];
            for skipped in last + 1..step {
                state = keras_adam(state[0], state[1], state[2], 0.0, skipped, &adam);
            }
            state = keras_adam(
                state[0],
                state[1],
                state[2],
                f64::from(inputs.rows_grad[i]),
                step,
                &adam,
            );
            let moved = (state[0] - f64::from(inputs.rows[i])).abs();
            let what = format!("row {row} (last step {last}), component {j}");
            assert_close(&what, updated[i], state[0], 2e-5 * moved + 1e-7);
            assert_close(&what, updated_m[i], state[1], 1e-5 * state[1].abs() + 1e-12);
            assert_close(&what, updated_v[i], state[2], 1e-4 * state[2].abs() + 1e-18);
        }
    }
}

#[test]
fn the_eval_graph_matches_the_rust_forward_pass_and_the_training_graph() {
    train_support::init_onnxruntime();
    let params = initial_params(7, 5, K, 3).unwrap();
    // Larger weights than Keras' initial ones, so the ReLUs are a mix of on and off.
    let params = ModelParams {
        customer_embedding: params.customer_embedding.iter().map(|w| w * 20.0).collect(),
        product_embedding: params.product_embedding.iter().map(|w| w * 20.0).collect(),
        dense_1_bias: noisy(30, K, 0.2),
        dense_2_bias: vec![0.1],
        ..params
    };
    let customers: Vec<u32> = vec![0, 6, 3, 3, 1, 5, 2, 4];
    let products: Vec<u32> = vec![4, 0, 2, 1, 3, 3, 0, 4];
    let model = eval::build(&params);
    let mut evaluator =
        EvalSession::from_session(session(&model)).expect("an eval graph with the serving names");
    let scores = evaluator.score(&customers, &products).unwrap();

    // The training graph's forward pass without dropout, one row per sample.
    let n = customers.len();
    let mut rows = Vec::new();
    for &c in &customers {
        rows.extend_from_slice(&params.customer_embedding[c as usize * K..(c as usize + 1) * K]);
    }
    for &p in &products {
        rows.extend_from_slice(&params.product_embedding[p as usize * K..(p as usize + 1) * K]);
    }
    let batch = Batch {
        rows,
        customer_row: (0..n as i64).collect(),
        product_row: (n as i64..2 * n as i64).collect(),
        rating: vec![0.5; n],
        mask_1: vec![1.0; n * 2 * K],
        mask_2: vec![1.0; n * K],
    };
    let dense = [
        params.dense_1_kernel.clone(),
        params.dense_1_bias.clone(),
        params.dense_2_kernel.clone(),
        params.dense_2_bias.clone(),
    ];
    let forward = run_training(&mut session(&training::build(K)), &batch, &dense).prediction;
    for i in 0..n {
        let expected = params.predict(customers[i] as usize, products[i] as usize);
        assert!(
            (scores[i] - expected).abs() <= 1e-5,
            "pair {i}: eval graph {} vs ModelParams::predict {expected}",
            scores[i]
        );
        assert!(
            (scores[i] - forward[i]).abs() <= 1e-6,
            "pair {i}: eval graph {} vs training graph without dropout {}",
            scores[i],
            forward[i]
        );
    }
    assert!(
        scores.iter().any(|&s| s != scores[0]),
        "scores differ by pair"
    );
}
