//! What can go wrong talking to the LLM worker. Every message names the problem and the fix.

use roxy_protocol::ErrorKind;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("the LLM worker `roxy-llm` was not found (looked in: {searched}). Fix: build it with `cargo build -p roxy-llm`, install it next to the roxy executable, or set ROXY_LLM_WORKER to its path")]
    WorkerNotFound { searched: String },

    #[error("the LLM worker path {path} (from {source_name}) is not a file. Fix: correct {source_name}, or unset it to use the bundled worker")]
    WorkerPathInvalid { path: PathBuf, source_name: &'static str },

    #[error("could not start the LLM worker {path}: {source}. Fix: check the file is executable, or rebuild it with `cargo build -p roxy-llm`")]
    Spawn { path: PathBuf, source: std::io::Error },

    #[error("the LLM worker {path} speaks protocol v{worker} but this engine speaks v{engine}. Fix: install roxy and roxy-llm from the same build (`cargo build` builds both)")]
    ProtocolMismatch { path: PathBuf, worker: u32, engine: u32 },

    #[error("could not load the LLM model: {message}")]
    Model { path: PathBuf, message: String },

    #[error("the LLM worker (pid {pid}) stopped unexpectedly ({status}) while {during}; it will be restarted on the next request.{stderr} Fix: if this repeats, check the model with `roxy models verify` and see the log")]
    Crashed { pid: u32, status: String, during: String, stderr: String },

    #[error("the LLM worker (pid {pid}) sent nothing for {waited_s}s while {during}, so it was stopped; it will be restarted on the next request. Fix: use a smaller model or context, or raise the LLM timeouts")]
    Unresponsive { pid: u32, waited_s: u64, during: String },

    #[error("the LLM worker sent something this engine does not understand: {0}. Fix: install roxy and roxy-llm from the same build")]
    Protocol(String),

    #[error("the LLM worker refused the request ({kind:?}): {message}")]
    Worker { kind: ErrorKind, message: String },

    #[error("a voice turn needed the LLM, so this background answer was cut short. Fix: retry in a moment")]
    Preempted,
}

impl LlmError {
    /// Whether the worker died or had to be stopped (the next call starts a fresh one).
    pub fn is_worker_failure(&self) -> bool {
        matches!(self, LlmError::Crashed { .. } | LlmError::Unresponsive { .. })
    }
}
