//! The typed protocol the engine and the `roxy-llm` worker speak over the worker's stdio.
//!
//! One JSON object per line. The engine writes [`Request`]s to the worker's stdin; the worker
//! writes [`Event`]s to its stdout. Logs go to the worker's stderr, never stdout, so the stream
//! stays parseable. This crate links no ggml: both sides depend on it, and only the worker links
//! llama.cpp (whisper-rs and llama-cpp-2 vendor incompatible ggml copies).

use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, Write};
use std::path::PathBuf;

/// Bumped whenever a message changes shape; the engine refuses a worker that differs.
pub const PROTOCOL_VERSION: u32 = 1;

/// Engine → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Liveness and version check; answered by [`Event::Pong`], even while a generation runs.
    Ping { id: u64 },
    /// Load a GGUF model, replacing any loaded one; answered by [`Event::Loaded`] or an
    /// [`Event::Error`] of kind [`ErrorKind::Model`].
    Load(LoadRequest),
    /// Chat completion on the loaded model; answered by [`Event::Token`]s, then [`Event::Done`].
    Generate(GenerateRequest),
    /// Stop generation `id` before its next token; it still ends with [`Event::Done`]
    /// (stop reason [`StopReason::Cancelled`]). Unknown or finished ids are ignored.
    Cancel { id: u64 },
    /// Free the model and its context; answered by [`Event::Unloaded`].
    Unload { id: u64 },
    /// Stop the worker cleanly, cancelling any generation; answered by [`Event::Bye`].
    Shutdown,
    /// Time llama.cpp itself on the loaded model (the baseline `roxy bench` compares against);
    /// answered by [`Event::BenchDone`]. Clears the KV cache.
    Bench(BenchRequest),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRequest {
    pub id: u64,
    /// Prompt tokens evaluated in one `llama_decode` batch (capped by the batch size).
    pub prompt_tokens: u32,
    /// Tokens then decoded one at a time, greedily.
    pub decode_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadRequest {
    pub id: u64,
    pub model_path: PathBuf,
    /// Context length in tokens; 0, or more than the model was trained on, means the training length.
    pub n_ctx: u32,
    /// CPU threads for decoding; 0 lets the worker choose.
    #[serde(default)]
    pub n_threads: u32,
    /// Layers to offload to the GPU (Metal on macOS); 0 keeps everything on the CPU.
    #[serde(default)]
    pub n_gpu_layers: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub id: u64,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: u32,
    /// 0 samples greedily, which makes the output deterministic.
    #[serde(default)]
    pub temperature: f32,
    #[serde(default = "default_top_p")]
    pub top_p: f32,
    #[serde(default)]
    pub seed: u32,
    /// Generation ends before any of these strings; they are not part of the output.
    #[serde(default)]
    pub stop: Vec<String>,
}

fn default_top_p() -> f32 {
    1.0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage { role, content: content.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// The name chat templates expect.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// Worker → engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Sent once, unprompted, as soon as the worker starts.
    Ready(WorkerInfo),
    Pong { id: u64, info: WorkerInfo },
    Loaded(ModelInfo),
    Unloaded { id: u64 },
    /// Generated text, sent as soon as it is sampled. Always whole UTF-8 characters; text that
    /// might begin a stop string is held back until it is known not to.
    Token {
        id: u64,
        text: String,
    },
    /// The last event of a generation, however it ended.
    Done(GenerationStats),
    /// A request failed; `id` is the request's, when it had one.
    Error { id: Option<u64>, kind: ErrorKind, message: String },
    Bye,
    BenchDone(BenchStats),
}

/// llama.cpp's own speed on the loaded model, timed around the library calls only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchStats {
    pub id: u64,
    /// Tokens actually evaluated in the prefill batch.
    pub prompt_tokens: u32,
    pub prefill_us: u64,
    /// Tokens actually decoded (greedy; end-of-generation tokens are decoded like any other).
    pub decode_tokens: u32,
    pub decode_us: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: u64,
    pub model_path: PathBuf,
    /// Human-readable: name, architecture, parameter count, file size.
    pub description: String,
    pub load_ms: u64,
    /// The context length in use.
    pub n_ctx: u32,
    pub n_ctx_train: u32,
    /// Whether the GGUF carries a chat template (without one the worker falls back to ChatML).
    pub chat_template: bool,
    pub n_params: u64,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    pub id: u64,
    pub stop_reason: StopReason,
    /// Tokens in the templated prompt, cached ones included.
    pub prompt_tokens: u32,
    /// Prompt tokens whose KV cache was kept from the previous generation (not recomputed).
    pub cached_tokens: u32,
    pub completion_tokens: u32,
    /// Time to evaluate the uncached part of the prompt.
    pub prefill_ms: u64,
    /// From the request's arrival to the first sampled token.
    pub first_token_ms: u64,
    pub total_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model ended its turn.
    Eos,
    MaxTokens,
    StopString,
    Cancelled,
    /// The context window filled up before the model finished.
    ContextFull,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub protocol: u32,
    /// The worker crate's version.
    pub version: String,
    /// The llama.cpp build the worker links (backend name and build info).
    pub backend: String,
    pub pid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The line could not be parsed as a request.
    BadRequest,
    /// The model file is missing, unreadable or not a valid GGUF.
    Model,
    /// A generation was requested before a model was loaded.
    NoModel,
    /// The prompt does not fit in the context window.
    ContextOverflow,
    /// Anything else that went wrong inside the worker.
    Internal,
}

/// Writes one message as a JSON line and flushes, so the peer sees it at once.
pub fn write_message<W: Write, T: Serialize>(mut out: W, message: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// Reads the next message. `Ok(None)` at end of stream; a malformed line is an
/// `InvalidData` error that names what was wrong.
pub fn read_message<R: BufRead, T: for<'de> Deserialize<'de>>(input: &mut R) -> io::Result<Option<T>> {
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    serde_json::from_str(line.trim_end())
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad protocol line {:?}: {e}", line.trim_end())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_json_lines() {
        let info = WorkerInfo { protocol: PROTOCOL_VERSION, version: "0.1.0".into(), backend: "cpu".into(), pid: 7 };
        let mut buf = Vec::new();
        write_message(&mut buf, &Event::Pong { id: 3, info: info.clone() }).unwrap();
        write_message(&mut buf, &Event::Bye).unwrap();
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 2);
        let mut reader = io::Cursor::new(buf);
        assert_eq!(read_message::<_, Event>(&mut reader).unwrap(), Some(Event::Pong { id: 3, info }));
        assert_eq!(read_message::<_, Event>(&mut reader).unwrap(), Some(Event::Bye));
        assert_eq!(read_message::<_, Event>(&mut reader).unwrap(), None);
    }

    fn round_trip<T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug>(message: &T) {
        let mut buf = Vec::new();
        write_message(&mut buf, message).unwrap();
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1, "one message, one line");
        assert_eq!(read_message::<_, T>(&mut io::Cursor::new(buf)).unwrap().as_ref(), Some(message));
    }

    #[test]
    fn every_request_round_trips() {
        let requests = [
            Request::Ping { id: 1 },
            Request::Load(LoadRequest {
                id: 2,
                model_path: "/models/llm/a b.gguf".into(),
                n_ctx: 2048,
                n_threads: 4,
                n_gpu_layers: 99,
            }),
            Request::Generate(GenerateRequest {
                id: 3,
                messages: vec![
                    ChatMessage::new(Role::System, "Be brief."),
                    ChatMessage::new(Role::User, "Line one\nand \"quotes\" é"),
                ],
                max_tokens: 64,
                temperature: 0.7,
                top_p: 0.9,
                seed: 42,
                stop: vec!["\n\n".into()],
            }),
            Request::Cancel { id: 3 },
            Request::Unload { id: 4 },
            Request::Shutdown,
            Request::Bench(BenchRequest { id: 5, prompt_tokens: 128, decode_tokens: 32 }),
        ];
        for request in &requests {
            round_trip(request);
        }
    }

    #[test]
    fn every_event_round_trips() {
        let events = [
            Event::Loaded(ModelInfo {
                id: 2,
                model_path: "/m.gguf".into(),
                description: "SmolLM2 135M".into(),
                load_ms: 120,
                n_ctx: 2048,
                n_ctx_train: 8192,
                chat_template: true,
                n_params: 134_515_008,
                size_bytes: 98_000_000,
            }),
            Event::Unloaded { id: 4 },
            Event::BenchDone(BenchStats { id: 5, prompt_tokens: 128, prefill_us: 90_000, decode_tokens: 32, decode_us: 400_000 }),
            Event::Token { id: 3, text: " Paris".into() },
            Event::Done(GenerationStats {
                id: 3,
                stop_reason: StopReason::StopString,
                prompt_tokens: 30,
                cached_tokens: 20,
                completion_tokens: 5,
                prefill_ms: 12,
                first_token_ms: 15,
                total_ms: 80,
            }),
            Event::Error { id: Some(3), kind: ErrorKind::ContextOverflow, message: "too long".into() },
            Event::Error { id: None, kind: ErrorKind::BadRequest, message: "bad".into() },
        ];
        for event in &events {
            round_trip(event);
        }
    }

    #[test]
    fn wire_format_is_flat_snake_case_json() {
        let json = serde_json::to_value(Request::Cancel { id: 9 }).unwrap();
        assert_eq!(json, serde_json::json!({"type": "cancel", "id": 9}));
        let json = serde_json::to_value(Event::Done(GenerationStats {
            id: 1,
            stop_reason: StopReason::MaxTokens,
            prompt_tokens: 0,
            cached_tokens: 0,
            completion_tokens: 0,
            prefill_ms: 0,
            first_token_ms: 0,
            total_ms: 0,
        }))
        .unwrap();
        assert_eq!(json["type"], "done");
        assert_eq!(json["stop_reason"], "max_tokens");
        let json = serde_json::to_value(ChatMessage::new(Role::Assistant, "hi")).unwrap();
        assert_eq!(json, serde_json::json!({"role": "assistant", "content": "hi"}));
    }

    #[test]
    fn generate_fills_optional_sampling_fields_with_defaults() {
        let line = r#"{"type":"generate","id":5,"messages":[{"role":"user","content":"hi"}],"max_tokens":8}"#;
        let request: Request = read_message(&mut io::Cursor::new(line)).unwrap().unwrap();
        let Request::Generate(generate) = request else { panic!("not a generate: {request:?}") };
        assert_eq!((generate.temperature, generate.top_p, generate.seed), (0.0, 1.0, 0));
        assert!(generate.stop.is_empty());
    }

    #[test]
    fn unknown_role_is_rejected() {
        let line = r#"{"type":"generate","id":5,"messages":[{"role":"wizard","content":"hi"}],"max_tokens":8}"#;
        let err = read_message::<_, Request>(&mut io::Cursor::new(line)).unwrap_err();
        assert!(err.to_string().contains("wizard"), "{err}");
    }

    #[test]
    fn malformed_line_is_an_error_naming_the_line() {
        let mut reader = io::Cursor::new(b"{\"type\":\"nope\"}\n".to_vec());
        let err = read_message::<_, Request>(&mut reader).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
