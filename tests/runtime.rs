//! ONNX Runtime through `model::runtime`, in this process: sessions from files and bytes agree
//! with the Rust reference forward pass, and the eval path's thread setting does not change
//! results. (Initialization is process-global; the failure paths are tested through the binary
//! in tests/runtime_lookup.rs.)

mod runtime_support;

use std::time::Instant;

use warez_pipe::ml::model::runtime::{self, EvalSession};

fn init() {
    runtime_support::ort_dylib();
    runtime::ensure_onnxruntime(None).expect("ONNX Runtime from ORT_DYLIB_PATH");
    runtime::ensure_onnxruntime(None).expect("a second call is a no-op");
}

fn all_pairs(n_customers: usize, n_products: usize) -> (Vec<u32>, Vec<u32>) {
    (0..n_customers * n_products)
        .map(|i| ((i / n_products) as u32, (i % n_products) as u32))
        .unzip()
}

#[test]
fn eval_sessions_from_file_and_bytes_match_the_reference_forward_pass() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let params = runtime_support::make_eval_model(dir.path(), 7, 5, 4, 3);
    let path = dir.path().join("eval_model.onnx");
    let (customers, products) = all_pairs(7, 5);

    let from_file = EvalSession::from_file(&path)
        .unwrap()
        .score(&customers, &products)
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let session = runtime::session_from_bytes(&bytes).unwrap();
    let from_bytes = EvalSession::from_session(session)
        .unwrap()
        .score(&customers, &products)
        .unwrap();
    assert_eq!(from_file, from_bytes);

    for ((&customer, &product), &score) in customers.iter().zip(&products).zip(&from_file) {
        let expected = params.predict(customer as usize, product as usize);
        assert!(
            (score - expected).abs() <= 1e-5 * expected.abs().max(1.0),
            "pair ({customer}, {product}): ONNX Runtime {score}, reference {expected}"
        );
    }
}

#[test]
fn a_graph_without_the_serving_names_is_rejected() {
    init();
    let dir = tempfile::tempdir().unwrap();
    runtime_support::make_eval_model(dir.path(), 2, 2, 2, 1);
    let bytes = std::fs::read(dir.path().join("eval_model.onnx")).unwrap();
    // Renaming the output in the serialized model keeps it valid but no longer servable.
    let renamed = replace_bytes(&bytes, b"dense_2/BiasAdd", b"dense_2/BiasAdX");
    let session = runtime::session_from_bytes(&renamed).unwrap();
    let error = EvalSession::from_session(session).err().expect("rejected");
    assert!(
        error.to_string().contains("no output `dense_2/BiasAdd`"),
        "{error}"
    );
}

fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = haystack.to_vec();
    let mut start = 0;
    while let Some(offset) = out[start..].windows(from.len()).position(|w| w == from) {
        out[start + offset..start + offset + from.len()].copy_from_slice(to);
        start += offset + from.len();
    }
    out
}

/// The eval path with 2 intra-op threads: same bits as with 1 (so the 1-thread setting is about
/// not competing with the engine's other jobs, not about results); timings printed for the record.
#[test]
fn two_intra_op_threads_give_the_same_scores() {
    init();
    let dir = tempfile::tempdir().unwrap();
    runtime_support::make_eval_model(dir.path(), 400, 100, 50, 7);
    let path = dir.path().join("eval_model.onnx");
    let (customers, products) = all_pairs(400, 100);

    let mut results = Vec::new();
    for threads in [1, 2] {
        let builder = runtime::deterministic_builder().unwrap();
        let mut builder = builder
            .with_intra_threads(threads)
            .unwrap_or_else(|error| panic!("{}", error.message()));
        let mut eval = EvalSession::from_session(builder.commit_from_file(&path).unwrap()).unwrap();
        eval.score(&customers, &products).unwrap(); // warm-up
        let start = Instant::now();
        let scores = eval.score(&customers, &products).unwrap();
        eprintln!(
            "eval of {} pairs with {threads} intra-op thread(s): {:?}",
            customers.len(),
            start.elapsed()
        );
        results.push(scores);
    }
    assert_eq!(results[0], results[1]);
}
