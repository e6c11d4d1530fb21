//! The generated graphs, run in ONNX Runtime: the training graph's gradients against finite
//! differences, the optimizer graph against Keras' Adam computed by hand (one step, and the
//! catch-up against explicit zero-gradient steps), the trainer's Rust update against the
//! optimizer graph bit for bit, the eval graph against the Rust forward pass and the training
//! graph's forward pass.

mod train_support;

use ort::session::Session;
use ort::value::TensorRef;
use prost::Message;
use warez_pipe::ml::model::graphs::optimizer::{self, AdamConfig, CatchUp};
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

impl Batch {
    /// The training graph's `sample_rows`: each sample's customer row, then its product row.
    fn sample_rows(&self) -> Vec<i64> {
        self.customer_row
            .iter()
            .zip(&self.product_row)
            .flat_map(|(&customer, &product)| [customer, product])
            .collect()
    }
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
    let sample_rows = batch.sample_rows();
    let gradient_scale = [2.0 / n as f32];
    let outputs = session
        .run(ort::inputs![
            training::EMBEDDING_ROWS => TensorRef::from_array_view(([rows, K], &batch.rows[..])).unwrap(),
            training::SAMPLE_ROWS => TensorRef::from_array_view(([n, 2, 1], &sample_rows[..])).unwrap(),
            training::RATING => TensorRef::from_array_view(([n, 1], &batch.rating[..])).unwrap(),
            training::GRADIENT_SCALE => TensorRef::from_array_view((Vec::<i64>::new(), &gradient_scale[..])).unwrap(),
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
    /// Adam's flat values: parameters, m, v, gradient.
    params: [Vec<f32>; 4],
    /// Lagging rows `[rows, K]`: values, m, v.
    lagging: [Vec<f32>; 3],
    /// `[rows, CATCH_UP_COLUMNS]`.
    catch_up: Vec<f32>,
}

/// The optimizer graph's outputs, in the order [`run_optimizer`] returns them.
const OPTIMIZER_OUTPUTS: [&str; 6] = [
    optimizer::PARAMS_UPDATED,
    optimizer::PARAMS_M_UPDATED,
    optimizer::PARAMS_V_UPDATED,
    optimizer::LAGGING_ROWS_UPDATED,
    optimizer::LAGGING_ROWS_M_UPDATED,
    optimizer::LAGGING_ROWS_V_UPDATED,
];

/// The optimizer graph's outputs: params, params_m, params_v, then the lagging rows, their m, v.
fn run_optimizer(
    session: &mut Session,
    adam: &AdamConfig,
    i: &AdamInputs,
    k: usize,
) -> [Vec<f32>; 6] {
    let p = i.params[0].len();
    let rows = i.lagging[0].len() / k;
    let step_size = [optimizer::step_size(adam, i.step)];
    let outputs = session
        .run(ort::inputs![
            optimizer::STEP_SIZE => TensorRef::from_array_view((Vec::<i64>::new(), &step_size[..])).unwrap(),
            optimizer::PARAMS => TensorRef::from_array_view(([p], &i.params[0][..])).unwrap(),
            optimizer::PARAMS_M => TensorRef::from_array_view(([p], &i.params[1][..])).unwrap(),
            optimizer::PARAMS_V => TensorRef::from_array_view(([p], &i.params[2][..])).unwrap(),
            optimizer::PARAMS_GRAD => TensorRef::from_array_view(([p], &i.params[3][..])).unwrap(),
            optimizer::LAGGING_ROWS => TensorRef::from_array_view(([rows, k], &i.lagging[0][..])).unwrap(),
            optimizer::LAGGING_ROWS_M => TensorRef::from_array_view(([rows, k], &i.lagging[1][..])).unwrap(),
            optimizer::LAGGING_ROWS_V => TensorRef::from_array_view(([rows, k], &i.lagging[2][..])).unwrap(),
            optimizer::CATCH_UP => TensorRef::from_array_view(
                ([rows, optimizer::CATCH_UP_COLUMNS], &i.catch_up[..]),
            )
            .unwrap(),
        ])
        .unwrap();
    OPTIMIZER_OUTPUTS.map(|name| {
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
    let mut session = session(&optimizer::build(K, &adam));
    let step = 3;
    // Two embedding rows and five dense values, in one flat vector; no lagging rows.
    let values = 2 * K + 5;
    let inputs = AdamInputs {
        step,
        params: [
            noisy(10, values, 0.05),
            noisy(11, values, 1e-3),
            noisy(12, values, 1e-6).iter().map(|v| v.abs()).collect(),
            noisy(13, values, 1e-2),
        ],
        lagging: [vec![], vec![], vec![]],
        catch_up: vec![],
    };
    let [theta, m, v, lagging, ..] = run_optimizer(&mut session, &adam, &inputs, K);
    assert!(lagging.is_empty());
    let [theta_0, m_0, v_0, g] = &inputs.params;
    for i in 0..values {
        let expected = keras_adam(
            f64::from(theta_0[i]),
            f64::from(m_0[i]),
            f64::from(v_0[i]),
            f64::from(g[i]),
            step,
            &adam,
        );
        let moved = (expected[0] - f64::from(theta_0[i])).abs();
        assert!(moved > 1e-5, "the step moves value {i}");
        assert_close("parameter", theta[i], expected[0], 1e-4 * moved + 1e-8);
        assert_close("m", m[i], expected[1], 1e-6 * expected[1].abs() + 1e-12);
        assert_close("v", v[i], expected[2], 1e-5 * expected[2].abs() + 1e-15);
    }
}

/// Brings rows last updated at `last_steps` (moments from `moments`) up to `step` through the
/// optimizer graph and checks them against Keras' Adam run step by step with zero gradients;
/// returns the rows before and after.
fn check_catch_up(
    table_steps: u32,
    step: u32,
    last_steps: &[u32],
    moments: impl FnOnce(&mut [f32], &mut [f32]),
) -> (Vec<f32>, Vec<f32>) {
    let adam = AdamConfig::default();
    let mut session = session(&optimizer::build(K, &adam));
    let catch_up = optimizer::CatchUp::new(&adam, table_steps).unwrap();
    let rows = last_steps.len();
    let mut rows_v: Vec<f32> = noisy(22, rows * K, 1e-6).iter().map(|v| v.abs()).collect();
    let mut rows_m = noisy(21, rows * K, 1e-3);
    moments(&mut rows_m, &mut rows_v);
    let inputs = AdamInputs {
        step,
        params: [vec![], vec![], vec![], vec![]],
        lagging: [noisy(20, rows * K, 0.05), rows_m, rows_v],
        catch_up: last_steps
            .iter()
            .flat_map(|&last| catch_up.coefficients(last, step))
            .collect(),
    };
    let [params, _, _, updated, updated_m, updated_v] =
        run_optimizer(&mut session, &adam, &inputs, K);
    assert!(params.is_empty());
    for (row, &last) in last_steps.iter().enumerate() {
        for j in 0..K {
            let i = row * K + j;
            let mut state = inputs.lagging.each_ref().map(|values| f64::from(values[i]));
            for skipped in last + 1..=step {
                state = keras_adam(state[0], state[1], state[2], 0.0, skipped, &adam);
            }
            let moved = (state[0] - f64::from(inputs.lagging[0][i])).abs();
            let what = format!("row {row} (last step {last}), component {j}");
            assert_close(&what, updated[i], state[0], 2e-5 * moved + 1e-7);
            assert_close(&what, updated_m[i], state[1], 1e-5 * state[1].abs() + 1e-12);
            assert_close(&what, updated_v[i], state[2], 1e-4 * state[2].abs() + 1e-18);
        }
    }
    let [before, ..] = inputs.lagging;
    (before, updated)
}

#[test]
fn the_catch_up_equals_explicit_zero_gradient_steps() {
    // Rows that sat out 0, 1, 50 and 689 steps, one with a second moment so small that ε
    // dominates, and one never updated (all zero).
    let (before, after) = check_catch_up(1000, 700, &[700, 699, 650, 11, 400, 0], |m, v| {
        v[4 * K..5 * K].fill(1e-17);
        m[5 * K..].fill(0.0);
        v[5 * K..].fill(0.0);
    });
    assert_eq!(
        after[..K],
        before[..K],
        "a row already up to date stays as it is"
    );
}

/// An epoch at 1M customers has ~117,000 steps: rows sit out tens of thousands of them.
#[test]
fn the_catch_up_stays_exact_over_a_long_run() {
    check_catch_up(200_000, 150_000, &[149_990, 120_000, 20_000, 3], |_, _| {});
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

/// The trainer applies the optimizer graph's update in Rust ([`optimizer::adam_step`],
/// [`optimizer::catch_up_row`]): on the same inputs it must give the graph's outputs bit for bit.
/// At the trainer's sizes (k = 50, a batch's rows plus the dense layers; lagging rows that sat
/// out from none to tens of thousands of steps), with zero gradients, zero moments (rows never
/// updated), second moments so small that ε dominates, and large gradients among them.
#[test]
fn the_trainers_update_is_the_optimizer_graph_bit_for_bit() {
    const K: usize = 50;
    let adam = AdamConfig::default();
    let (values, rows, step) = (120 * K + 2 * K * K + 2 * K + 1, 97, 60_000);
    let mut grad = noisy(30, values, 1e-3);
    grad[..K].fill(0.0);
    grad[K..2 * K].iter_mut().for_each(|g| *g *= 1e4);
    let mut m = noisy(31, values, 1e-3);
    let mut v: Vec<f32> = noisy(32, values, 1e-6).iter().map(|v| v.abs()).collect();
    m[2 * K..3 * K].fill(0.0);
    v[2 * K..3 * K].fill(0.0);
    v[3 * K..4 * K].fill(1e-17);
    let mut lagging_m = noisy(34, rows * K, 1e-3);
    let mut lagging_v: Vec<f32> = noisy(35, rows * K, 1e-6).iter().map(|v| v.abs()).collect();
    lagging_m[..K].fill(0.0);
    lagging_v[..K].fill(0.0);
    lagging_v[K..2 * K].fill(1e-17);
    let catch_up = CatchUp::new(&adam, step).unwrap();
    // Last steps from `step` itself (nothing to catch up) to 0 (never updated).
    let last_steps: Vec<u32> = (0..rows as u32).map(|row| step - row * row * 6).collect();
    let inputs = AdamInputs {
        step,
        params: [noisy(33, values, 0.05), m, v, grad],
        lagging: [noisy(36, rows * K, 0.05), lagging_m, lagging_v],
        catch_up: last_steps
            .iter()
            .flat_map(|&last| catch_up.coefficients(last, step))
            .collect(),
    };
    let graph = run_optimizer(&mut session(&optimizer::build(K, &adam)), &adam, &inputs, K);

    let [mut theta, mut m, mut v, grad] = inputs.params.clone();
    optimizer::adam_step(
        &adam,
        optimizer::step_size(&adam, step),
        &mut theta,
        [&mut m, &mut v],
        &grad,
    );
    let [mut rows_theta, mut rows_m, mut rows_v] = inputs.lagging.clone();
    for (row, coefficients) in inputs
        .catch_up
        .chunks_exact(optimizer::CATCH_UP_COLUMNS)
        .enumerate()
    {
        let row = row * K..(row + 1) * K;
        optimizer::catch_up_row(
            adam.epsilon,
            coefficients.try_into().unwrap(),
            &mut rows_theta[row.clone()],
            [&mut rows_m[row.clone()], &mut rows_v[row]],
        );
    }
    let bits = |values: &[f32]| {
        values
            .iter()
            .map(|value| value.to_bits())
            .collect::<Vec<_>>()
    };
    let rust = [theta, m, v, rows_theta, rows_m, rows_v];
    for ((name, graph), rust) in OPTIMIZER_OUTPUTS.into_iter().zip(&graph).zip(&rust) {
        assert_eq!(bits(rust), bits(graph), "{name}");
    }
    // The inputs were worth comparing: every value and every lagging row moved.
    let changed =
        |before: &[f32], after: &[f32]| before.iter().zip(after).filter(|(b, a)| b != a).count();
    assert_eq!(changed(&inputs.params[0], &rust[0]), values, "params moved");
    assert!(changed(&inputs.lagging[0], &rust[3]) > (rows - 2) * K * 9 / 10);
}
