//! The local LLM, run in the separate `roxy-llm` worker process (llama.cpp's ggml cannot share
//! a binary with whisper's) and driven over the `roxy-protocol` stdio protocol.
//!
//! [`LlmSupervisor`] is the entry point: it finds and starts the worker lazily, streams
//! completions, cancels them, restarts a crashed worker and stops an idle one.

mod error;
mod from_config;
mod locate;
mod process;
mod rss;
mod supervisor;

pub use error::LlmError;
pub use from_config::{LlmModelError, SYSTEM_PROMPT};
pub use locate::{find_worker, WORKER_ENV, WORKER_FILE_NAME};
pub use roxy_protocol::{ChatMessage, ErrorKind, GenerationStats, ModelInfo, Role, StopReason, WorkerInfo};
pub use rss::rss_bytes;
pub use supervisor::{Completion, GenerateOptions, LlmSettings, LlmStatus, LlmSupervisor, Priority};
