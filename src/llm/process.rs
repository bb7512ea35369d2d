//! One running `roxy-llm` process: its pipes, the thread that parses its events, and the
//! thread that forwards its stderr to our log.

use super::LlmError;
use roxy_protocol::{read_message, write_message, Event, Request, WorkerInfo, PROTOCOL_VERSION};
use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// stderr lines kept to explain a crash.
const STDERR_TAIL_LINES: usize = 8;
/// How long a worker that closed its stdout gets to exit before we kill it.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// How long a crash report waits for the dead worker's last stderr lines to be read.
const STDERR_DRAIN: Duration = Duration::from_millis(300);

/// The worker's stdin, shared so a cancel can be written while a turn waits for events.
pub type SharedStdin = Arc<Mutex<ChildStdin>>;

enum Output {
    Event(Event),
    Malformed(String),
    Closed,
}

pub struct WorkerProcess {
    child: Child,
    stdin: SharedStdin,
    events: Receiver<Output>,
    stderr_tail: Arc<Mutex<StderrTail>>,
    info: WorkerInfo,
}

impl WorkerProcess {
    /// Starts the worker and waits for its Ready event, checking the protocol version.
    pub fn spawn(path: &Path, ready_timeout: Duration) -> Result<Self, LlmError> {
        let mut child = Command::new(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| LlmError::Spawn { path: path.to_path_buf(), source })?;
        let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (Some(stdin), Some(stdout), Some(stderr)) = pipes else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LlmError::Spawn { path: path.to_path_buf(), source: io::Error::other("stdio pipes missing") });
        };
        let stderr_tail = Arc::new(Mutex::new(StderrTail::default()));
        forward_stderr(stderr, child.id(), stderr_tail.clone());
        let events = read_events(stdout);
        let mut process = WorkerProcess {
            child,
            stdin: Arc::new(Mutex::new(stdin)),
            events,
            stderr_tail,
            info: WorkerInfo { protocol: 0, version: String::new(), backend: String::new(), pid: 0 },
        };
        let during = format!("starting {}", path.display());
        match process.next_event(ready_timeout, &during)? {
            Event::Ready(info) if info.protocol == PROTOCOL_VERSION => {
                process.info = info;
                Ok(process)
            }
            Event::Ready(info) => {
                process.kill();
                Err(LlmError::ProtocolMismatch {
                    path: path.to_path_buf(),
                    worker: info.protocol,
                    engine: PROTOCOL_VERSION,
                })
            }
            other => {
                process.kill();
                Err(LlmError::Protocol(format!("expected Ready first, got {other:?}")))
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn info(&self) -> &WorkerInfo {
        &self.info
    }

    pub fn stdin(&self) -> SharedStdin {
        self.stdin.clone()
    }

    pub fn send(&mut self, request: &Request, during: &str) -> Result<(), LlmError> {
        if let Err(e) = write_request(&self.stdin, request) {
            tracing::warn!("writing to the LLM worker failed: {e}");
            return Err(self.crashed(during));
        }
        Ok(())
    }

    /// The next event, or an error if the worker died, went silent for `timeout` (it is then
    /// killed) or sent garbage. `during` says what we were doing, for the error message.
    pub fn next_event(&mut self, timeout: Duration, during: &str) -> Result<Event, LlmError> {
        match self.events.recv_timeout(timeout) {
            Ok(Output::Event(event)) => Ok(event),
            Ok(Output::Malformed(message)) => {
                self.kill();
                Err(LlmError::Protocol(message))
            }
            Ok(Output::Closed) | Err(RecvTimeoutError::Disconnected) => Err(self.crashed(during)),
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                Err(LlmError::Unresponsive { pid: self.pid(), waited_s: timeout.as_secs(), during: during.to_owned() })
            }
        }
    }

    /// Whether the process has exited (killed from outside, crashed between requests).
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Asks the worker to exit, and kills it if it does not within `grace`.
    pub fn shutdown(mut self, grace: Duration) {
        if write_request(&self.stdin, &Request::Shutdown).is_ok() && self.wait_for_exit(grace).is_some() {
            return;
        }
        self.kill();
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Builds the error for a worker that stopped talking, with its exit status and last words.
    fn crashed(&mut self, during: &str) -> LlmError {
        let status = match self.wait_for_exit(EXIT_GRACE) {
            Some(status) => describe_exit(status),
            None => {
                self.kill();
                "closed its output and was killed".to_owned()
            }
        };
        let tail = self.last_stderr_lines();
        let stderr =
            if tail.is_empty() { String::new() } else { format!(" Its last log lines: {}.", tail.join(" | ")) };
        LlmError::Crashed { pid: self.pid(), status, during: during.to_owned(), stderr }
    }

    fn last_stderr_lines(&self) -> Vec<String> {
        let deadline = Instant::now() + STDERR_DRAIN;
        loop {
            let Ok(tail) = self.stderr_tail.lock() else { return Vec::new() };
            if tail.closed || Instant::now() >= deadline {
                return tail.lines.iter().cloned().collect();
            }
            drop(tail);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_for_exit(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => return None,
            }
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if !self.has_exited() {
            self.kill();
        }
    }
}

pub fn write_request(stdin: &SharedStdin, request: &Request) -> io::Result<()> {
    let mut stdin = stdin.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    write_message(&mut *stdin, request)
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    match status.code() {
        Some(code) => format!("exit code {code}"),
        None => status.to_string(),
    }
}

fn read_events(stdout: std::process::ChildStdout) -> Receiver<Output> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        loop {
            let output = match read_message::<_, Event>(&mut stdout) {
                Ok(Some(event)) => Output::Event(event),
                Ok(None) => Output::Closed,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => Output::Malformed(e.to_string()),
                Err(_) => Output::Closed,
            };
            let last = !matches!(output, Output::Event(_));
            if sender.send(output).is_err() || last {
                break;
            }
        }
    });
    receiver
}

fn forward_stderr(stderr: std::process::ChildStderr, pid: u32, tail: Arc<Mutex<StderrTail>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains(" ERROR ") || line.contains(" WARN ") {
                tracing::warn!(target: "roxy_llm", pid, "{line}");
            } else {
                tracing::debug!(target: "roxy_llm", pid, "{line}");
            }
            if let Ok(mut tail) = tail.lock() {
                if tail.lines.len() == STDERR_TAIL_LINES {
                    tail.lines.pop_front();
                }
                tail.lines.push_back(line);
            }
        }
        if let Ok(mut tail) = tail.lock() {
            tail.closed = true;
        }
    });
}

#[derive(Default)]
struct StderrTail {
    lines: VecDeque<String>,
    /// The worker's stderr reached end of file: every line is in.
    closed: bool,
}
