//! The worker's side of the stdio protocol: a shared writer for events and a thread that reads
//! requests, so that Ping and Cancel are handled while the main thread is busy generating.

use roxy_protocol::{read_message, write_message, ErrorKind, Event, Request, WorkerInfo};
use std::collections::HashSet;
use std::io::{self, BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};

/// Serialises events from both threads so lines never interleave.
pub struct Output {
    writer: Mutex<Box<dyn Write + Send>>,
}

impl Output {
    pub fn new(writer: Box<dyn Write + Send>) -> Self {
        Output { writer: Mutex::new(writer) }
    }

    /// Fails only when the engine has gone (broken pipe); the worker should then exit.
    pub fn send(&self, event: &Event) -> io::Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        write_message(&mut *writer, event)
    }

    pub fn error(&self, id: Option<u64>, kind: ErrorKind, message: impl Into<String>) -> io::Result<()> {
        self.send(&Event::Error { id, kind, message: message.into() })
    }
}

/// Generations to stop, set by the reader thread and polled by the generation loop once per token.
#[derive(Default)]
pub struct Cancellations {
    ids: Mutex<HashSet<u64>>,
    /// Set on Shutdown or when stdin closes: stop whatever runs.
    all: AtomicBool,
}

impl Cancellations {
    pub fn is_cancelled(&self, id: u64) -> bool {
        self.all.load(Ordering::Relaxed) || self.lock().contains(&id)
    }

    /// Forgets `id` once its generation has finished.
    pub fn clear(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn cancel(&self, id: u64) {
        self.lock().insert(id);
    }

    fn cancel_all(&self) {
        self.all.store(true, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.ids.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Starts the reader thread. The returned channel carries the requests the main thread must act
/// on; it disconnects when stdin closes, which means the engine is gone.
pub fn spawn_reader(
    input: impl BufRead + Send + 'static,
    output: Arc<Output>,
    cancellations: Arc<Cancellations>,
    info: WorkerInfo,
) -> io::Result<Receiver<Request>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::Builder::new().name("stdin".into()).spawn(move || {
        let mut input = input;
        loop {
            match read_message::<_, Request>(&mut input) {
                Ok(Some(Request::Ping { id })) => {
                    let _ = output.send(&Event::Pong { id, info: info.clone() });
                }
                Ok(Some(Request::Cancel { id })) => cancellations.cancel(id),
                Ok(Some(request)) => {
                    if matches!(request, Request::Shutdown) {
                        cancellations.cancel_all();
                    }
                    if sender.send(request).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    tracing::warn!("{e}");
                    let _ = output.error(None, ErrorKind::BadRequest, e.to_string());
                }
                Ok(None) | Err(_) => {
                    tracing::debug!("stdin closed");
                    cancellations.cancel_all();
                    break;
                }
            }
        }
    })?;
    Ok(receiver)
}
