//! Loading ONNX Runtime at run time (`ort` with `load-dynamic`).
//!
//! The library is found, in order: `ORT_DYLIB_PATH`; the models dir (`runtime/`), where
//! `roxy models fetch` installs it; next to the executable (and `../Frameworks` in a macOS app
//! bundle). `ort::init_from` returns an error we can report; `ort::init` would panic.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use crate::platform::ONNX_LIBRARY_NAME as LIBRARY_NAME;

#[derive(Debug, Clone, thiserror::Error)]
pub enum OnnxError {
    #[error("ONNX Runtime library not found (looked in: {searched}). Fix: run `roxy models fetch` to install it into the models dir, or set ORT_DYLIB_PATH to a libonnxruntime 1.32 file")]
    NotFound { searched: String },
    #[error("ONNX Runtime at {path} could not be loaded: {reason}. Fix: run `roxy models verify` and `roxy models fetch` to reinstall it, or point ORT_DYLIB_PATH at a working libonnxruntime 1.32")]
    Load { path: PathBuf, reason: String },
}

/// Where the runtime library would be found, without loading it.
pub fn find_library(models_dir: &Path) -> Result<PathBuf, OnnxError> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(models_dir.join("runtime").join(LIBRARY_NAME));
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        candidates.push(exe_dir.join(LIBRARY_NAME));
        candidates.push(exe_dir.join("../Frameworks").join(LIBRARY_NAME));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| OnnxError::NotFound {
            searched: candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        })
}

static RUNTIME: OnceLock<Result<(PathBuf, ort::environment::Environment), OnnxError>> = OnceLock::new();

/// Loads ONNX Runtime once per process; later calls return the first outcome.
/// Returns the path of the library in use.
pub fn ensure_runtime(models_dir: &Path) -> Result<PathBuf, OnnxError> {
    let outcome = RUNTIME.get_or_init(|| {
        let path = find_library(models_dir)?;
        let builder = ort::init_from(&path).map_err(|e| OnnxError::Load { path: path.clone(), reason: e.to_string() })?;
        let env = builder
            .with_name("roxy")
            .with_telemetry(false)
            .build()
            .map_err(|e| OnnxError::Load { path: path.clone(), reason: e.to_string() })?;
        tracing::info!(path = %path.display(), "ONNX Runtime loaded");
        Ok((path, env))
    });
    outcome.as_ref().map(|(path, _)| path.clone()).map_err(Clone::clone)
}

/// The process's ONNX Runtime environment (loading the runtime first), for `Session::builder`.
pub fn environment(models_dir: &Path) -> Result<ort::environment::Environment, OnnxError> {
    ensure_runtime(models_dir)?;
    let outcome = RUNTIME.get().expect("ensure_runtime initialised it");
    outcome.as_ref().map(|(_, env)| env.clone()).map_err(Clone::clone)
}

/// A session builder for Roxy's small always-on models (VAD, wake word, embeddings): fully
/// optimised, one thread each, so they never take cores from Whisper or the LLM.
pub fn single_threaded_builder(env: &ort::environment::Environment) -> ort::Result<ort::session::builder::SessionBuilder> {
    Ok(ort::session::Session::builder(env)?
        .with_optimization_level(ort::session::builder::GraphOptimizationLevel::Level3)?
        .with_intra_threads(1)?
        .with_inter_threads(1)?)
}

