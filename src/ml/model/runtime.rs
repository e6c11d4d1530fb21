//! ONNX Runtime: finding the shared library, initializing `ort` once per process, and building
//! sessions with deterministic settings.
//!
//! `ort` is built with `load-dynamic`: no registry ships a training-capable ONNX Runtime and
//! `ort`'s own binary download cannot be reached, so warez-pipe loads `libonnxruntime` from the
//! `onnxruntime==1.31.1` Python package. [`ensure_onnxruntime`] looks, in order, at
//!
//! 1. `ORT_DYLIB_PATH` (an explicit choice: when it is wrong, that is an error, no fallback);
//! 2. the `onnxruntime` package of the Python interpreter `WAREZ_PYTHON` (default `python3`),
//!    located with `importlib.util.find_spec` so the package is not imported;
//! 3. a private copy under `<tools_dir>/onnxruntime-1.31.1/`, installed on first use with
//!    `python -m pip install --no-deps --target …` into a temporary folder that is renamed into
//!    place once complete, so an interrupted or concurrent install never leaves a half copy;
//!
//! and otherwise fails with the exact command that fixes it. The library's own version string
//! (`OrtGetApiBase()->GetVersionString()`) must be 1.31.x: `ort` itself only rejects older
//! libraries and merely logs newer ones.

use std::ffi::{c_char, CStr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use anyhow::{anyhow, bail, Context, Result};
use ort::environment::Environment;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;
use ort::value::Tensor;

use crate::ml::model::params::{INPUT_PRODUCT, INPUT_USER, OUTPUT};

/// The ONNX Runtime release warez-pipe is built and tested against (`ort`'s API level 31).
pub const ONNXRUNTIME_VERSION: &str = "1.31.1";
const REQUIRED_MAJOR_MINOR: &str = "1.31.";

/// Environment variable naming the Python interpreter used to find or provision ONNX Runtime.
pub const PYTHON_ENV: &str = "WAREZ_PYTHON";
const DEFAULT_PYTHON: &str = "python3";

/// The process-wide `ort` environment. `ort` keeps only a weak reference to it, so it lives here.
static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
/// Serializes first-time initialization (two stages may start training at once).
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Finds, loads and initializes ONNX Runtime once per process; later calls return at once.
/// `tools_dir` is where a private copy may be provisioned (the engine passes `<cache>/tools`);
/// with `None` only `ORT_DYLIB_PATH` and the Python package are tried.
pub fn ensure_onnxruntime(tools_dir: Option<&Path>) -> Result<()> {
    environment(tools_dir).map(|_| ())
}

fn environment(tools_dir: Option<&Path>) -> Result<&'static Environment> {
    if let Some(environment) = ENVIRONMENT.get() {
        return Ok(environment);
    }
    let _guard = INIT_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(environment) = ENVIRONMENT.get() {
        return Ok(environment);
    }
    let library = locate_library(tools_dir)?;
    let environment = ort::init_from(&library)
        .with_context(|| format!("loading ONNX Runtime from {}", library.display()))?
        .with_name("warez-pipe")
        // ONNX Runtime's own logger writes colour-coded lines to stderr (terminal or not,
        // `NO_COLOR` or not); every failure it logs also comes back as an error that
        // warez-pipe reports with its context, so its lines are dropped.
        .with_logger(std::sync::Arc::new(|_, _, _, _, _| {}))
        .build()
        .with_context(|| format!("initializing ONNX Runtime from {}", library.display()))?;
    Ok(ENVIRONMENT.get_or_init(|| environment))
}

/// A session over the ONNX model file at `path`, with [`deterministic_builder`]'s settings.
pub fn session_from_file(path: &Path) -> Result<Session> {
    deterministic_builder()?
        .commit_from_file(path)
        .with_context(|| format!("loading ONNX model {}", path.display()))
}

/// A session over an in-memory ONNX model, with [`deterministic_builder`]'s settings.
pub fn session_from_bytes(model: &[u8]) -> Result<Session> {
    deterministic_builder()?
        .commit_from_memory(model)
        .context("loading an in-memory ONNX model")
}

/// A session builder whose results depend only on the model and its inputs: one intra-op
/// thread (with one thread a kernel's reductions always run in the same order), no inter-op
/// parallelism (nodes run one after another), ONNX Runtime's deterministic kernels, and a fixed
/// graph optimization level (so an ONNX Runtime default change cannot alter the fused graph).
/// Measured on the eval path (tests/runtime.rs, 40,000 pairs, k = 50, on the shared 2-core
/// machine): 2 intra-op threads give bit-identical scores and no reliable speed-up (22–26 ms
/// with 1 thread, 20–58 ms with 2), so 1 thread costs nothing and leaves the other core to the
/// engine's parallel jobs.
/// Initializes ONNX Runtime without provisioning if [`ensure_onnxruntime`] was not called.
pub fn deterministic_builder() -> Result<SessionBuilder> {
    let environment = environment(None)?;
    let builder = Session::builder(environment)?
        .with_intra_threads(1)
        .map_err(setting_error)?
        .with_inter_threads(1)
        .map_err(setting_error)?
        .with_parallel_execution(false)
        .map_err(setting_error)?
        .with_deterministic_compute(true)
        .map_err(setting_error)?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(setting_error)?;
    Ok(builder)
}

/// `ort`'s builder errors carry the builder back for recovery, which makes them neither `Send`
/// nor `Sync`; only the message is kept.
fn setting_error(error: ort::Error<SessionBuilder>) -> anyhow::Error {
    anyhow!("configuring an ONNX Runtime session: {}", error.message())
}

/// The commands that make ONNX Runtime available, for error messages.
fn how_to_fix() -> String {
    format!(
        "fix it with one of:\n  \
         python3 -m pip install onnxruntime=={ONNXRUNTIME_VERSION}\n  \
         export ORT_DYLIB_PATH=/path/to/libonnxruntime.so.{ONNXRUNTIME_VERSION}"
    )
}

fn locate_library(tools_dir: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|value| !value.is_empty()) {
        // Relative to the working directory (`ort` alone would try the executable's folder).
        let path = std::path::absolute(&path).unwrap_or_else(|_| PathBuf::from(&path));
        if !path.is_file() {
            bail!(
                "ORT_DYLIB_PATH={} does not exist; point it at libonnxruntime.so.{ONNXRUNTIME_VERSION} \
                 or unset it\n{}",
                path.display(),
                how_to_fix()
            );
        }
        check_version(&path)
            .map_err(|error| anyhow!("ORT_DYLIB_PATH: {error:#}\n{}", how_to_fix()))?;
        return Ok(path);
    }

    let python = std::env::var_os(PYTHON_ENV)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PYTHON));
    let mut tried = vec!["ORT_DYLIB_PATH is not set".to_string()];

    match python_package_library(&python) {
        Ok(library) => match check_version(&library) {
            Ok(()) => return Ok(library),
            Err(error) => tried.push(format!(
                "{}'s onnxruntime package: {error:#}",
                python.display()
            )),
        },
        Err(error) => tried.push(format!("{error:#}")),
    }

    let Some(tools_dir) = tools_dir else {
        tried.push("no tools folder to install a private copy into".to_string());
        bail!(
            "ONNX Runtime {ONNXRUNTIME_VERSION} not found:\n  - {}\n{}",
            tried.join("\n  - "),
            how_to_fix()
        );
    };
    let provisioned = tools_dir.join(format!("onnxruntime-{ONNXRUNTIME_VERSION}"));
    let outcome = if provisioned.is_dir() {
        library_in_package(&provisioned.join("onnxruntime"))
    } else {
        provision(&python, tools_dir, &provisioned)
            .and_then(|()| library_in_package(&provisioned.join("onnxruntime")))
    };
    match outcome.and_then(|library| check_version(&library).map(|()| library)) {
        Ok(library) => Ok(library),
        Err(error) => {
            tried.push(format!(
                "private copy in {}: {error:#}",
                provisioned.display()
            ));
            bail!(
                "ONNX Runtime {ONNXRUNTIME_VERSION} not found:\n  - {}\n{}",
                tried.join("\n  - "),
                how_to_fix()
            )
        }
    }
}

/// The library inside the `onnxruntime` package of `python`'s environment.
fn python_package_library(python: &Path) -> Result<PathBuf> {
    let output = Command::new(python)
        .args([
            "-c",
            "import importlib.util as u; s = u.find_spec('onnxruntime'); \
             print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')",
        ])
        .output()
        .map_err(|error| anyhow!("could not run `{}`: {error}", python.display()))?;
    if !output.status.success() {
        bail!(
            "`{}` failed: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let package = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if package.is_empty() {
        bail!("`{}` has no onnxruntime package", python.display());
    }
    library_in_package(Path::new(&package))
}

/// `<package>/capi/libonnxruntime.so.<version>` (the Python wheel's layout).
fn library_in_package(package: &Path) -> Result<PathBuf> {
    let capi = package.join("capi");
    let entries =
        std::fs::read_dir(&capi).with_context(|| format!("listing {}", capi.display()))?;
    let mut libraries: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("libonnxruntime.so."))
        })
        .collect();
    libraries.sort();
    libraries
        .pop()
        .ok_or_else(|| anyhow!("no libonnxruntime.so.* in {}", capi.display()))
}

/// Installs the `onnxruntime` wheel's files into `destination` with pip, atomically.
fn provision(python: &Path, tools_dir: &Path, destination: &Path) -> Result<()> {
    errln!(
        "warez-pipe: ONNX Runtime not found; installing onnxruntime=={ONNXRUNTIME_VERSION} into {} \
         (once, with pip)",
        destination.display()
    );
    std::fs::create_dir_all(tools_dir)
        .with_context(|| format!("creating {}", tools_dir.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".onnxruntime-install-")
        .tempdir_in(tools_dir)
        .with_context(|| format!("creating a temporary folder in {}", tools_dir.display()))?;
    let output = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "--no-deps",
        ])
        .arg("--target")
        .arg(staging.path())
        .arg(format!("onnxruntime=={ONNXRUNTIME_VERSION}"))
        .output()
        .map_err(|error| anyhow!("could not run `{} -m pip`: {error}", python.display()))?;
    if !output.status.success() {
        bail!(
            "`{} -m pip install --target {} onnxruntime=={ONNXRUNTIME_VERSION}` failed: {}",
            python.display(),
            staging.path().display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    match std::fs::rename(staging.path(), destination) {
        Ok(()) => Ok(()),
        // Another process finished first; its copy is as good as ours (dropped with `staging`).
        Err(_) if destination.is_dir() => Ok(()),
        Err(error) => Err(error).with_context(|| {
            format!(
                "moving {} to {}",
                staging.path().display(),
                destination.display()
            )
        }),
    }
}

/// Checks the library at `path` reports version 1.31.x, without initializing `ort`.
fn check_version(path: &Path) -> Result<()> {
    let version = library_version(path)?;
    if !version.starts_with(REQUIRED_MAJOR_MINOR) {
        bail!(
            "{} is ONNX Runtime {version}; warez-pipe needs {REQUIRED_MAJOR_MINOR}x",
            path.display()
        );
    }
    Ok(())
}

fn library_version(path: &Path) -> Result<String> {
    // SAFETY: loading ONNX Runtime runs only its static initializers; `OrtGetApiBase` has the C
    // signature declared in onnxruntime_c_api.h (mirrored by `ort::sys::OrtApiBase`), and the
    // version string it returns is a static NUL-terminated string owned by the library, copied
    // before the library handle is dropped.
    unsafe {
        let library = libloading::Library::new(path)
            .with_context(|| format!("loading {}", path.display()))?;
        let get_api_base: libloading::Symbol<
            unsafe extern "C" fn() -> *const ort::sys::OrtApiBase,
        > = library
            .get(b"OrtGetApiBase\0")
            .with_context(|| format!("{} does not export OrtGetApiBase", path.display()))?;
        let api_base = get_api_base();
        if api_base.is_null() {
            bail!("{}: OrtGetApiBase returned null", path.display());
        }
        let version: *const c_char = ((*api_base).GetVersionString)();
        Ok(CStr::from_ptr(version).to_string_lossy().into_owned())
    }
}

/// A session over an eval graph (`eval_model.onnx`): inputs [`INPUT_USER`] and
/// [`INPUT_PRODUCT`] (float32 `[N, 1]`, mapped ids), output [`OUTPUT`] (float32 `[N, 1]`).
pub struct EvalSession {
    session: Session,
}

impl EvalSession {
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_session(session_from_file(path)?)
            .with_context(|| format!("{} is not an eval graph", path.display()))
    }

    pub fn from_session(session: Session) -> Result<Self> {
        for input in [INPUT_USER, INPUT_PRODUCT] {
            if !session.inputs().iter().any(|outlet| outlet.name() == input) {
                bail!("it has no input `{input}`");
            }
        }
        if !session
            .outputs()
            .iter()
            .any(|outlet| outlet.name() == OUTPUT)
        {
            bail!("it has no output `{OUTPUT}`");
        }
        Ok(Self { session })
    }

    /// The model's scores for the pairs `(customers[i], products[i])`, in one run.
    pub fn score(&mut self, customers: &[u32], products: &[u32]) -> Result<Vec<f32>> {
        assert_eq!(customers.len(), products.len(), "one product per customer");
        // The graph takes ids as float32 like the Keras model; f32 holds every id below 2^24.
        let as_column = |ids: &[u32]| -> Result<Tensor<f32>> {
            let values: Vec<f32> = ids.iter().map(|&id| id as f32).collect();
            Ok(Tensor::from_array(([ids.len(), 1], values))?)
        };
        let outputs = self.session.run(ort::inputs![
            INPUT_USER => as_column(customers)?,
            INPUT_PRODUCT => as_column(products)?,
        ])?;
        let (_, scores) = outputs[OUTPUT].try_extract_tensor::<f32>()?;
        if scores.len() != customers.len() {
            bail!(
                "`{OUTPUT}` has {} values for {} pairs",
                scores.len(),
                customers.len()
            );
        }
        Ok(scores.to_vec())
    }
}
