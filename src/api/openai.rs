//! `POST /v1/chat/completions` and `GET /v1/models` in OpenAI's shapes, so local apps written for
//! that API can use Roxy. Unknown request fields are ignored, as OpenAI-compatible servers do.

use super::backend::{ChatDone, ChatError, ChatEvent, ChatRequest, ChatStream, FinishReason};
use super::error::ApiError;
use super::{Api, Limits};
use crate::llm::{ChatMessage, GenerateOptions, Role, SYSTEM_PROMPT};
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<InMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    seed: Option<i64>,
    stop: Option<Stop>,
    n: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

/// Request JSON, with a 400 naming the problem (axum's own extractor answers 415/422 and needs
/// a Content-Type header that `curl -d` does not send).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty; it must be a JSON object"));
    }
    let invalid = |field: String, e: &dyn std::fmt::Display| ApiError::bad_request(format!("the request body is not valid JSON for this endpoint{field}: {e}"));
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        invalid(if path == "." { String::new() } else { format!(" at `{path}`") }, e.inner())
    })?;
    de.end().map_err(|e| invalid(String::new(), &e))?;
    Ok(value)
}

/// The most tokens one API answer may ask for: a longer one would hold the only worker
/// (shared with the voice loop) for minutes.
pub const API_MAX_TOKENS: u32 = 1024;

/// Limits and defaults for generation, from `[llm]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatDefaults {
    pub options: GenerateOptions,
    /// The largest `max_tokens` a request may ask for (below the context size).
    pub max_tokens_limit: u32,
}

impl ChatDefaults {
    pub fn from_config(config: &crate::config::LlmConfig) -> ChatDefaults {
        let limit = config.context_size.saturating_sub(1).clamp(1, API_MAX_TOKENS);
        let mut options = GenerateOptions::from_config(config);
        // A request that names no max_tokens gets the config's, within the cap too.
        options.max_tokens = options.max_tokens.min(limit);
        ChatDefaults { options, max_tokens_limit: limit }
    }
}

impl Default for ChatDefaults {
    fn default() -> Self {
        ChatDefaults::from_config(&crate::config::LlmConfig::default())
    }
}

fn to_backend(req: &CompletionRequest, defaults: &ChatDefaults) -> Result<ChatRequest, ApiError> {
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request("`n` must be 1: Roxy generates one choice per request"));
    }
    if req.messages.is_empty() {
        return Err(ApiError::bad_request("`messages` is empty; send at least one {\"role\": \"user\", \"content\": \"...\"}"));
    }
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    for (i, m) in req.messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ApiError::bad_request(format!(
                    "messages[{i}].role `{other}` is not supported; use system, user or assistant (tools and functions are not available)"
                )))
            }
        };
        let content = match &m.content {
            Some(Content::Text(text)) => text.clone(),
            Some(Content::Parts(parts)) => {
                let mut text = String::new();
                for (j, part) in parts.iter().enumerate() {
                    match (part.kind.as_str(), &part.text) {
                        ("text", Some(t)) => text.push_str(t),
                        (kind, _) => {
                            return Err(ApiError::bad_request(format!(
                                "messages[{i}].content[{j}] is of type `{kind}`; only text parts ({{\"type\": \"text\", \"text\": \"...\"}}) are supported"
                            )))
                        }
                    }
                }
                text
            }
            None => String::new(),
        };
        if content.contains('\0') {
            return Err(ApiError::bad_request(format!("messages[{i}].content holds a NUL character; send text without it")));
        }
        messages.push(ChatMessage::new(role, content));
    }
    if !messages.iter().any(|m| m.role == Role::User) {
        return Err(ApiError::bad_request("`messages` has no user message; add {\"role\": \"user\", \"content\": \"...\"} for Roxy to answer"));
    }
    if !messages.iter().any(|m| m.role == Role::System) {
        messages.insert(0, ChatMessage::new(Role::System, SYSTEM_PROMPT));
    }

    let mut options = defaults.options.clone();
    if let Some(t) = req.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(ApiError::bad_request(format!("`temperature` {t} is out of range; use 0 to 2")));
        }
        options.temperature = t;
    }
    if let Some(p) = req.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(ApiError::bad_request(format!("`top_p` {p} is out of range; use a value above 0 and at most 1")));
        }
        options.top_p = p;
    }
    if let Some(max) = req.max_completion_tokens.or(req.max_tokens) {
        if max == 0 || max > defaults.max_tokens_limit {
            return Err(ApiError::bad_request(format!(
                "`max_tokens` {max} is out of range; use 1 to {}",
                defaults.max_tokens_limit
            )));
        }
        options.max_tokens = max;
    }
    if let Some(seed) = req.seed {
        options.seed = u32::try_from(seed).map_err(|_| ApiError::bad_request(format!("`seed` {seed} is out of range; use 0 to {}", u32::MAX)))?;
    }
    match &req.stop {
        Some(Stop::One(s)) => options.stop = vec![s.clone()],
        Some(Stop::Many(v)) => {
            if v.len() > 4 {
                return Err(ApiError::bad_request("`stop` has more than 4 strings"));
            }
            options.stop = v.clone();
        }
        None => {}
    }
    options.stop.retain(|s| !s.is_empty());
    Ok(ChatRequest { messages, options })
}

pub async fn models(State(api): State<Arc<Api>>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{ "id": api.backend.model_id(), "object": "model", "created": api.started_unix, "owned_by": "roxy" }],
    }))
}

/// The request body, within the size and time limits (413 and 408 in OpenAI's error shape).
async fn read_body(body: Body, limits: &Limits) -> Result<Bytes, ApiError> {
    let deadline = tokio::time::Instant::now() + limits.body_timeout;
    let mut chunks = body.into_data_stream();
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, chunks.next()).await {
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "invalid_request_error",
                    format!("the request body did not arrive within {} s. Fix: send the whole body at once", limits.body_timeout.as_secs()),
                ))
            }
            Ok(None) => return Ok(out.into()),
            Ok(Some(Err(e))) => return Err(ApiError::bad_request(format!("the request body could not be read: {e}"))),
            Ok(Some(Ok(chunk))) => {
                if out.len() + chunk.len() > limits.max_body_bytes {
                    drain(chunks, deadline, limits.max_body_bytes * 16).await;
                    return Err(ApiError::too_large(limits.max_body_bytes));
                }
                out.extend_from_slice(&chunk);
            }
        }
    }
}

/// Reads and drops what is left of an oversized body (up to `most` bytes, until the body
/// deadline), so the client hears the 413 instead of a reset from a socket closed on unread data.
async fn drain(mut chunks: axum::body::BodyDataStream, deadline: tokio::time::Instant, most: usize) {
    let mut seen = 0;
    while seen < most {
        match tokio::time::timeout_at(deadline, chunks.next()).await {
            Ok(Some(Ok(chunk))) => seen += chunk.len(),
            _ => return,
        }
    }
}

/// Ends `stream` at `deadline`: the generation is dropped (and so cancelled) and the answer
/// so far finishes with `length`, as if `max_tokens` had been reached.
fn until(stream: ChatStream, deadline: tokio::time::Instant) -> ChatStream {
    futures_util::stream::unfold(Some((stream, 0u32)), move |state| async move {
        let (mut stream, pieces) = state?;
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(ChatEvent::Text(text)))) => Some((Ok(ChatEvent::Text(text)), Some((stream, pieces + 1)))),
            Ok(Some(item)) => Some((item, None)),
            Ok(None) => None,
            Err(_) => {
                tracing::info!("a chat completion reached the API's deadline and was cut short");
                let done = ChatDone { finish_reason: FinishReason::Length, prompt_tokens: 0, completion_tokens: pieces };
                Some((Ok(ChatEvent::Done(done)), None))
            }
        }
    })
    .boxed()
}

pub async fn chat_completions(State(api): State<Arc<Api>>, body: Body) -> Result<Response, ApiError> {
    let body = read_body(body, &api.limits).await?;
    let req: CompletionRequest = parse_json(&body)?;
    let backend_request = to_backend(&req, &api.chat_defaults)?;
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    // Queue for a slot in arrival order; a full queue is a 429.
    let slot = api.chat_slot().await?;
    let deadline = tokio::time::Instant::now() + api.limits.chat_deadline;
    let mut stream = until(api.backend.chat(backend_request), deadline);
    let id = completion_id();
    let created = unix_now();
    let model = req.model.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| api.backend.model_id());

    // The first event decides the status: a backend that cannot answer is an HTTP error, not a
    // 200 whose stream says so.
    let first = stream.next().await;
    let first = match first {
        Some(Ok(event)) => event,
        Some(Err(e)) => return Err(chat_error(e)),
        None => return Err(ApiError::internal("the model ended the answer without finishing it; see the log")),
    };

    if !req.stream {
        let (text, done) = collect(first, stream).await?;
        drop(slot);
        return Ok(Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": done.finish_reason.as_str() }],
            "usage": usage(&done),
        }))
        .into_response());
    }

    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
    };
    let opening = chunk(json!({ "role": "assistant", "content": "" }), None);
    let events = futures_util::stream::once(std::future::ready(Ok(first))).chain(stream).map(move |item| {
        // The slot is held until the stream is dropped (finished or the client left).
        let _slot = &slot;
        let value = match item {
            Ok(ChatEvent::Text(text)) => chunk(json!({ "content": text }), None),
            Ok(ChatEvent::Done(done)) => {
                let mut last = chunk(json!({}), Some(done.finish_reason.as_str()));
                if include_usage {
                    last["usage"] = usage(&done);
                }
                last
            }
            Err(e) => chat_error(e).body(),
        };
        sse_json(&value)
    });
    let all = futures_util::stream::once(std::future::ready(sse_json(&opening)))
        .chain(events)
        .chain(futures_util::stream::once(std::future::ready(Ok(Event::default().data("[DONE]")))));
    Ok(Sse::new(all).keep_alive(KeepAlive::default()).into_response())
}

async fn collect(first: ChatEvent, mut rest: ChatStream) -> Result<(String, ChatDone), ApiError> {
    let mut text = String::new();
    let mut event = Some(first);
    loop {
        match event.take() {
            Some(ChatEvent::Text(piece)) => text.push_str(&piece),
            Some(ChatEvent::Done(done)) => return Ok((text, done)),
            None => {}
        }
        match rest.next().await {
            Some(Ok(next)) => event = Some(next),
            Some(Err(e)) => return Err(chat_error(e)),
            None => return Err(ApiError::internal("the model ended the answer without finishing it; see the log")),
        }
    }
}

fn sse_json(value: &Value) -> Result<Event, std::convert::Infallible> {
    Ok(Event::default().data(value.to_string()))
}

fn usage(done: &ChatDone) -> Value {
    json!({ "prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens, "total_tokens": done.prompt_tokens + done.completion_tokens })
}

fn chat_error(e: ChatError) -> ApiError {
    match e {
        ChatError::Unavailable(m) => ApiError::unavailable(m),
        ChatError::Failed(m) => ApiError::internal(m),
        ChatError::BadRequest(m) => ApiError::bad_request(m),
        ChatError::Busy(m) => ApiError { retry_after_s: Some(5), ..ApiError::unavailable(m) },
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn completion_id() -> String {
    let mut bytes = [0u8; 12];
    if getrandom::fill(&mut bytes).is_err() {
        // An id only needs to be unique enough to tell answers apart.
        bytes[..8].copy_from_slice(&(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()) as u64).to_le_bytes());
    }
    format!("chatcmpl-{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> Result<ChatRequest, ApiError> {
        let req: CompletionRequest = parse_json(body.as_bytes())?;
        to_backend(&req, &ChatDefaults::default())
    }

    #[test]
    fn requests_map_to_generation_options() {
        let r = request(r#"{"model":"x","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":8,"seed":3,"stop":"\n","user":"ignored"}"#).unwrap();
        assert_eq!(r.messages[0].role, Role::System, "Roxy's system prompt is added when none is given");
        assert_eq!(r.messages[1], ChatMessage::new(Role::User, "hi"));
        assert_eq!((r.options.temperature, r.options.max_tokens, r.options.seed), (0.0, 8, 3));
        assert_eq!(r.options.stop, vec!["\n".to_string()]);
        let r = request(r#"{"messages":[{"role":"system","content":"be terse"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#).unwrap();
        assert_eq!(r.messages.len(), 2);
        assert_eq!(r.messages[1].content, "ab");
        assert_eq!(r.options.max_tokens, ChatDefaults::default().options.max_tokens);
    }

    #[test]
    fn bad_requests_name_the_field() {
        let cases = [
            ("", "empty"),
            ("{", "not valid JSON"),
            (r#"{"messages":"hi"}"#, "at `messages`"),
            (r#"{"messages":[{"role":"user","content":"x"}]} trailing"#, "trailing characters"),
            (r#"{"messages":[]}"#, "`messages` is empty"),
            (r#"{"messages":[{"role":"tool","content":"x"}]}"#, "messages[0].role `tool`"),
            (r#"{"messages":[{"role":"user","content":"x"}],"temperature":7}"#, "`temperature` 7"),
            (r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#, "`max_tokens` 0"),
            (r#"{"messages":[{"role":"user","content":"x"}],"n":2}"#, "`n` must be 1"),
            (r#"{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#, "image_url"),
            (r#"{"messages":[{"role":"user","content":"x"}],"seed":-1}"#, "`seed` -1"),
        ];
        for (body, want) in cases {
            let err = request(body).unwrap_err();
            assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST, "{body}");
            assert!(err.message.contains(want), "{body}: {}", err.message);
        }
    }
}
