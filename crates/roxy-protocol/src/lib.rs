//! The typed protocol the engine and the `roxy-llm` worker speak over the worker's stdio.
//!
//! One JSON object per line. The engine writes [`Request`]s to the worker's stdin; the worker
//! writes [`Event`]s to its stdout. Logs go to the worker's stderr, never stdout, so the stream
//! stays parseable. This crate links no ggml: both sides depend on it, and only the worker links
//! llama.cpp (whisper-rs and llama-cpp-2 vendor incompatible ggml copies).

use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, Write};

/// Bumped whenever a message changes shape; the engine refuses a worker that differs.
pub const PROTOCOL_VERSION: u32 = 1;

/// Engine → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Liveness and version check; answered by [`Event::Pong`].
    Ping { id: u64 },
    /// Stop the worker cleanly; answered by [`Event::Bye`].
    Shutdown,
}

/// Worker → engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Sent once, unprompted, as soon as the worker starts.
    Ready(WorkerInfo),
    Pong { id: u64, info: WorkerInfo },
    /// A request failed; `id` is the request's, when it had one.
    Error { id: Option<u64>, kind: ErrorKind, message: String },
    Bye,
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

    #[test]
    fn malformed_line_is_an_error_naming_the_line() {
        let mut reader = io::Cursor::new(b"{\"type\":\"nope\"}\n".to_vec());
        let err = read_message::<_, Request>(&mut reader).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
