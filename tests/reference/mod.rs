//! The reference implementations the tests check warez-pipe against, as `scripts/test` sets
//! them up: the venv's Python (onnx, onnxruntime, avro, fastavro, pandas, tensorflow-cpu) and
//! ONNX Runtime's library. A missing one fails the test with the fix, never skips it.
#![allow(dead_code)] // each test crate uses a different part

use std::path::{Path, PathBuf};

/// `WAREZ_TEST_PYTHON`: the venv's Python.
pub fn test_python() -> PathBuf {
    match std::env::var_os("WAREZ_TEST_PYTHON") {
        Some(python) if !python.is_empty() => PathBuf::from(python),
        _ => panic!(
            "WAREZ_TEST_PYTHON is not set: the tests need the venv with the reference packages \
             (requirements-test.txt). Run scripts/test, or export WAREZ_TEST_PYTHON=$PWD/.venv/bin/python"
        ),
    }
}

/// `ORT_DYLIB_PATH`: ONNX Runtime 1.31's library.
pub fn ort_dylib() -> PathBuf {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(path) if Path::new(&path).is_file() => PathBuf::from(path),
        _ => panic!(
            "ORT_DYLIB_PATH does not name ONNX Runtime's library: run the tests with scripts/test, \
             or export ORT_DYLIB_PATH=$PWD/.venv/lib/python3.11/site-packages/onnxruntime/capi/\
             libonnxruntime.so.1.31.1"
        ),
    }
}
