//! What answers `/v1/chat/completions`: a [`ChatBackend`] turns messages and options into a
//! stream of text. [`LlmBackend`] is the local LLM; Roxy's router can stand behind the same seam.

use crate::llm::{ChatMessage, ErrorKind, GenerateOptions, LlmError, LlmSupervisor, Priority, StopReason};
use crate::metrics::{Registry, Stage};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub options: GenerateOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The answer is complete (or a stop string was reached).
    Stop,
    /// Cut short by `max_tokens` or the context window.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatDone {
    pub finish_reason: FinishReason,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    Text(String),
    /// Always the last event of a stream that did not fail.
    Done(ChatDone),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChatError {
    /// Nothing can answer now (no model installed, worker missing): 503.
    #[error("{0}")]
    Unavailable(String),
    /// This request failed (the worker crashed mid-answer): 500.
    #[error("{0}")]
    Failed(String),
    /// The request cannot be answered as sent (the prompt overflows the context): 400.
    #[error("{0}")]
    BadRequest(String),
    /// A voice turn took the model: 503 with Retry-After.
    #[error("{0}")]
    Busy(String),
}

pub type ChatStream = BoxStream<'static, Result<ChatEvent, ChatError>>;

pub trait ChatBackend: Send + Sync + 'static {
    /// The id `/v1/models` lists and completions report.
    fn model_id(&self) -> String;

    /// Starts a completion. Text arrives as the stream is polled; dropping the stream cancels it.
    /// Must be called within a tokio runtime.
    fn chat(&self, request: ChatRequest) -> ChatStream;

    /// Memory the backend holds outside this process (the LLM worker's RSS), for `/metrics`.
    fn external_memory_bytes(&self) -> Option<u64> {
        None
    }
}

/// The local LLM through its supervisor (one worker; generations run one at a time, and the
/// voice loop's go first).
pub struct LlmBackend {
    llm: Arc<LlmSupervisor>,
    model_id: String,
    metrics: Arc<Registry>,
}

impl LlmBackend {
    /// `model_id` is what clients see (the manifest id of the configured model).
    pub fn new(llm: Arc<LlmSupervisor>, model_id: impl Into<String>, metrics: Arc<Registry>) -> Self {
        LlmBackend { llm, model_id: model_id.into(), metrics }
    }
}

impl ChatBackend for LlmBackend {
    fn model_id(&self) -> String {
        self.model_id.clone()
    }

    fn chat(&self, request: ChatRequest) -> ChatStream {
        let (llm, metrics) = (self.llm.clone(), self.metrics.clone());
        let cancel = self.llm.clone();
        stream_blocking(move || { cancel.cancel_background(); }, move |say| {
            let completion = llm.generate_as(Priority::Background, &request.messages, &request.options, say).map_err(chat_error)?;
            let s = &completion.stats;
            if s.stop_reason != StopReason::Cancelled {
                metrics.record_ms(Stage::LlmFirstToken, s.first_token_ms as f64);
                metrics.record_ms(Stage::LlmTotal, s.total_ms as f64);
            }
            let finish_reason = match s.stop_reason {
                StopReason::MaxTokens | StopReason::ContextFull => FinishReason::Length,
                StopReason::Eos | StopReason::StopString | StopReason::Cancelled => FinishReason::Stop,
            };
            Ok(ChatEvent::Done(ChatDone { finish_reason, prompt_tokens: s.prompt_tokens, completion_tokens: s.completion_tokens }))
        })
    }

    fn external_memory_bytes(&self) -> Option<u64> {
        self.llm.status().rss_bytes
    }
}

/// Runs `work` on a blocking thread and streams it: each piece it says goes to the client, and
/// its result is the last event. When the client goes away, `cancel` runs once, so no compute is
/// spent on nobody. A small buffer: a slow reader slows generation instead of piling text up.
fn stream_blocking<W>(cancel: impl Fn() + Send + 'static, work: W) -> ChatStream
where
    W: FnOnce(&mut dyn FnMut(&str)) -> Result<ChatEvent, ChatError> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(32);
    tokio::task::spawn_blocking(move || {
        let mut reader_gone = false;
        let mut say = |piece: &str| {
            if !reader_gone && tx.blocking_send(Ok(ChatEvent::Text(piece.to_string()))).is_err() {
                reader_gone = true;
                cancel();
            }
        };
        let last = work(&mut say);
        let _ = tx.blocking_send(last);
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

pub(crate) fn chat_error(e: LlmError) -> ChatError {
    match e {
        LlmError::Preempted => ChatError::Busy(e.to_string()),
        LlmError::Worker { kind: ErrorKind::ContextOverflow, message } => {
            ChatError::BadRequest(format!("the messages do not fit in the model's context ({message}). Fix: send fewer or shorter messages, or a smaller max_tokens"))
        }
        LlmError::WorkerNotFound { .. } | LlmError::WorkerPathInvalid { .. } | LlmError::Spawn { .. } | LlmError::ProtocolMismatch { .. } | LlmError::Model { .. } => {
            ChatError::Unavailable(e.to_string())
        }
        _ => ChatError::Failed(e.to_string()),
    }
}

/// Stands in when no model can answer, so health and metrics still work: every chat gets the
/// reason (and its fix) as a 503.
pub struct UnavailableBackend {
    pub reason: String,
}

impl ChatBackend for UnavailableBackend {
    fn model_id(&self) -> String {
        "none".into()
    }

    fn chat(&self, _request: ChatRequest) -> ChatStream {
        futures_util::stream::once(std::future::ready(Err(ChatError::Unavailable(self.reason.clone())))).boxed()
    }
}

/// Roxy's brain behind the API: the last user message is routed like a spoken one (a skill,
/// or the LLM with the facts recalled for it, or the cloud where configured), so other local
/// apps get the answers the voice loop gives. The client's earlier messages are its own
/// conversation: the voice user's is never shown to it, and its turns are not recorded in it.
/// Generation options come from Roxy's config.
pub struct BrainBackend {
    brain: Arc<crate::brain::Brain>,
    model_id: String,
}

impl BrainBackend {
    pub fn new(brain: Arc<crate::brain::Brain>, model_id: impl Into<String>) -> Self {
        BrainBackend { brain, model_id: model_id.into() }
    }
}

impl ChatBackend for BrainBackend {
    fn model_id(&self) -> String {
        self.model_id.clone()
    }

    fn chat(&self, request: ChatRequest) -> ChatStream {
        let (brain, cancel) = (self.brain.clone(), self.brain.clone());
        stream_blocking(move || { cancel.cancel_background(); }, move |say| {
            match brain.answer_client(&request.messages, say) {
                Ok(reply) => Ok(ChatEvent::Done(ChatDone { finish_reason: FinishReason::Stop, prompt_tokens: reply.prompt_tokens.unwrap_or(0), completion_tokens: reply.tokens.unwrap_or(0) })),
                Err(crate::brain::BrainError::NoLlm(e)) => Err(ChatError::Unavailable(e)),
                Err(crate::brain::BrainError::Llm(e)) => Err(chat_error(e)),
                Err(e) => Err(ChatError::Failed(e.to_string())),
            }
        })
    }

    fn external_memory_bytes(&self) -> Option<u64> {
        self.brain.llm().and_then(|llm| llm.status().rss_bytes)
    }
}

/// A backend that arrives later (the app starts its API before the models have loaded):
/// until [`LateBackend::set`], chat answers 503 with `loading`.
pub struct LateBackend {
    inner: std::sync::RwLock<Option<Arc<dyn ChatBackend>>>,
    loading: String,
}

impl LateBackend {
    pub fn new(loading: impl Into<String>) -> Self {
        LateBackend { inner: std::sync::RwLock::new(None), loading: loading.into() }
    }

    pub fn set(&self, backend: Arc<dyn ChatBackend>) {
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = Some(backend);
    }

    fn current(&self) -> Option<Arc<dyn ChatBackend>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ChatBackend for LateBackend {
    fn model_id(&self) -> String {
        self.current().map_or_else(|| "roxy".to_string(), |b| b.model_id())
    }

    fn chat(&self, request: ChatRequest) -> ChatStream {
        match self.current() {
            Some(backend) => backend.chat(request),
            None => futures_util::stream::once(std::future::ready(Err(ChatError::Unavailable(self.loading.clone())))).boxed(),
        }
    }

    fn external_memory_bytes(&self) -> Option<u64> {
        self.current().and_then(|b| b.external_memory_bytes())
    }
}
