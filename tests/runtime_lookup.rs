//! How warez-pipe finds ONNX Runtime, through the binary (loading it is once per process):
//! a wrong `ORT_DYLIB_PATH` or no runtime at all stops with the exact fix; with neither
//! `ORT_DYLIB_PATH` nor the Python package, a private copy is installed with pip into the cache's
//! tools folder once, atomically, and used — also by `run --check`, whose scratch cache reuses
//! the project cache's copy.

mod runtime_support;

use std::path::Path;
use std::process::{Command, Output};

const FIX: &str = "python3 -m pip install onnxruntime==1.31.1";

/// A model folder `predict` can score (customer `c`, product `p`).
fn model_dir(dir: &Path) {
    runtime_support::make_eval_model(dir, 1, 1, 2, 5);
    std::fs::write(dir.join("customer_map.txt"), "c\n").unwrap();
    std::fs::write(dir.join("product_map.txt"), "p\n").unwrap();
}

/// `warez-pipe predict` on `model` with ONNX Runtime lookup variables cleared.
fn predict(model: &Path, cache: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warez-pipe"));
    command
        .args([
            "predict",
            "--customer",
            "c",
            "--product",
            "p",
            "--model-dir",
        ])
        .arg(model)
        .arg("--cache")
        .arg(cache)
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("WAREZ_PYTHON");
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `predict` on a fresh model folder with `env` set, expects failure, and checks stderr
/// holds each of `expected` and the fix; returns the model folder for further checks.
fn assert_fails_with(env: (&str, &str), expected: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path());
    let output = predict(dir.path(), &dir.path().join("cache"))
        .env(env.0, env.1)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = stderr(&output);
    for text in expected.iter().chain(&[FIX]) {
        assert!(message.contains(text), "stderr lacks {text:?}:\n{message}");
    }
    dir
}

#[test]
fn a_missing_ort_dylib_path_names_the_fix() {
    let dir = assert_fails_with(
        ("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so"),
        &["ORT_DYLIB_PATH=/nonexistent/libonnxruntime.so does not exist"],
    );
    assert!(
        !dir.path().join("cache/tools").exists(),
        "an explicit path never provisions"
    );
}

#[test]
fn a_library_that_is_not_onnx_runtime_is_rejected() {
    let not_ort = runtime_support::ort_dylib().with_file_name("libonnxruntime_providers_shared.so");
    assert_fails_with(
        ("ORT_DYLIB_PATH", not_ort.to_str().unwrap()),
        &["does not export OrtGetApiBase"],
    );
}

#[test]
fn without_python_or_ort_dylib_path_the_fix_is_given() {
    assert_fails_with(
        ("PATH", ""),
        &[
            "ONNX Runtime 1.31.1 not found",
            "could not run `python3`",
            "export ORT_DYLIB_PATH=",
        ],
    );
}

/// Uses pip and PyPI: a fresh venv (pip, no onnxruntime) stands for a machine with only Python.
#[test]
fn a_private_copy_is_provisioned_once_into_the_tools_folder() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path());
    let venv = dir.path().join("venv");
    let created = Command::new(runtime_support::test_python())
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", stderr(&created));
    let python = venv.join("bin/python");
    let cache = dir.path().join("cache");

    let first = predict(dir.path(), &cache)
        .env("WAREZ_PYTHON", &python)
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("installing onnxruntime==1.31.1 into"),
        "{}",
        stderr(&first)
    );
    let tools = cache.join("tools");
    assert!(tools
        .join("onnxruntime-1.31.1/onnxruntime/capi/libonnxruntime.so.1.31.1")
        .is_file());
    let leftovers: Vec<_> = std::fs::read_dir(&tools)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name != "onnxruntime-1.31.1")
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");

    let second = predict(dir.path(), &cache)
        .env("WAREZ_PYTHON", &python)
        .output()
        .unwrap();
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        !stderr(&second).contains("installing"),
        "{}",
        stderr(&second)
    );
    assert_eq!(
        first.stdout, second.stdout,
        "same score from the same library"
    );
}

/// `run --check` rebuilds in a scratch cache, but loads ONNX Runtime from the project cache's
/// tools folder: with no `ORT_DYLIB_PATH` and a Python that cannot install anything, a check
/// passes only if it reuses the project's copy rather than installing one for the scratch cache.
#[test]
fn run_check_reuses_the_onnx_runtime_the_project_cache_holds() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path();
    std::fs::create_dir_all(project.join("data")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/data/ratings_uuid_small.csv"),
        project.join("data/ratings.csv"),
    )
    .unwrap();
    std::fs::write(
        project.join("p.yaml"),
        "name: p\nstages:\n  ingest:\n    kind: ingest\n    deps: { ratings: data/ratings.csv }\n  \
         train:\n    kind: train\n    deps: { ratings: models/p/ratings.bin }\n    params: { n_factors: 4 }\n",
    )
    .unwrap();
    // The project's provisioned copy, laid out as pip installs it.
    let package = project.join("cache/tools/onnxruntime-1.31.1/onnxruntime");
    std::fs::create_dir_all(&package).unwrap();
    let capi = runtime_support::ort_dylib().parent().unwrap().to_path_buf();
    std::os::unix::fs::symlink(capi, package.join("capi")).unwrap();

    let warez = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_warez-pipe"))
            .args(args)
            .current_dir(project)
            .env_remove("ORT_DYLIB_PATH")
            .env_remove("WAREZ_CACHE")
            .env("WAREZ_PYTHON", "/nonexistent/python3")
            .output()
            .unwrap()
    };
    let run = warez(&["run", "p.yaml"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let check = warez(&["run", "--check", "p.yaml"]);
    let message = stderr(&check);
    assert!(check.status.success(), "{message}");
    assert!(
        message.contains("every output rebuilt from scratch matches the lock file"),
        "{message}"
    );
    assert!(!message.contains("installing onnxruntime"), "{message}");
}
