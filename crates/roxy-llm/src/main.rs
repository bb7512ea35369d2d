//! `roxy-llm`: Roxy's local LLM worker. The engine starts it and speaks the `roxy-protocol`
//! JSON-lines protocol over its stdin and stdout. It is a separate executable because
//! llama-cpp-2 and whisper-rs each vendor their own ggml, which cannot share one binary.
//!
//! stdout carries protocol events only. Everything else, llama.cpp's logs and any stray C
//! `printf` included, goes to stderr (filter with `ROXY_LLM_LOG`, e.g. `ROXY_LLM_LOG=debug`).

mod channel;
mod logging;
mod model;
mod session;
mod text;

use channel::{Cancellations, Output};
use llama_cpp_2::llama_backend::LlamaBackend;
use roxy_protocol::{ErrorKind, Event, GenerateRequest, LoadRequest, ModelInfo, Request, WorkerInfo, PROTOCOL_VERSION};
use session::{GenerateError, Session};
use std::io::{self, BufReader, Write};
use std::process::ExitCode;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;

fn main() -> ExitCode {
    logging::init();
    let output = match protocol_stdout() {
        Ok(out) => Arc::new(Output::new(out)),
        Err(e) => {
            tracing::error!("cannot set up stdout for the protocol: {e}");
            return ExitCode::FAILURE;
        }
    };
    let backend = match LlamaBackend::init() {
        Ok(backend) => backend,
        Err(e) => {
            let _ = output.error(None, ErrorKind::Internal, format!("llama.cpp backend failed to start: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let info = worker_info();
    if output.send(&Event::Ready(info.clone())).is_err() {
        return ExitCode::FAILURE;
    }
    let cancellations = Arc::new(Cancellations::default());
    let stdin = BufReader::new(io::stdin());
    let requests = match channel::spawn_reader(stdin, output.clone(), cancellations.clone(), info) {
        Ok(requests) => requests,
        Err(e) => {
            let _ = output.error(None, ErrorKind::Internal, format!("cannot start the stdin reader: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let worker = Worker { backend, output, cancellations, requests };
    match worker.run() {
        Ok(()) => ExitCode::SUCCESS,
        // Writing failed: the engine has gone away, nobody is left to tell.
        Err(e) => {
            tracing::info!("engine disconnected: {e}");
            ExitCode::SUCCESS
        }
    }
}

struct Worker {
    backend: LlamaBackend,
    output: Arc<Output>,
    cancellations: Arc<Cancellations>,
    requests: Receiver<Request>,
}

impl Worker {
    /// Serves requests until Shutdown or until stdin closes. Errors mean stdout is gone.
    fn run(&self) -> io::Result<()> {
        let mut next = self.requests.recv().ok();
        while let Some(request) = next.take() {
            next = match request {
                Request::Load(load) => self.serve_model(&load)?,
                Request::Generate(generate) => {
                    let message = "no model is loaded: send Load before Generate";
                    self.output.error(Some(generate.id), ErrorKind::NoModel, message)?;
                    None
                }
                Request::Bench(bench) => {
                    self.output.error(Some(bench.id), ErrorKind::NoModel, "no model is loaded: send Load before Bench")?;
                    None
                }
                Request::Unload { id } => {
                    self.output.send(&Event::Unloaded { id })?;
                    None
                }
                Request::Shutdown => {
                    self.output.send(&Event::Bye)?;
                    return Ok(());
                }
                // The reader thread answers these itself.
                Request::Ping { .. } | Request::Cancel { .. } => None,
            };
            if next.is_none() {
                next = self.requests.recv().ok();
            }
        }
        tracing::debug!("stdin closed; exiting");
        Ok(())
    }

    /// Loads a model and serves requests with it until one needs it gone. Returns that request
    /// (Load or Shutdown) for [`Self::run`] to handle once the model has been freed.
    fn serve_model(&self, load: &LoadRequest) -> io::Result<Option<Request>> {
        let started = Instant::now();
        let path = &load.model_path;
        let model = match model::load(&self.backend, path, load.n_gpu_layers) {
            Ok(model) => model,
            Err(message) => {
                tracing::warn!("{message}");
                self.output.error(Some(load.id), ErrorKind::Model, message)?;
                return Ok(None);
            }
        };
        let mut session = match Session::new(&self.backend, &model, load.n_ctx, load.n_threads) {
            Ok(session) => session,
            Err(message) => {
                self.output.error(Some(load.id), ErrorKind::Model, message)?;
                return Ok(None);
            }
        };
        let info = ModelInfo {
            id: load.id,
            model_path: path.clone(),
            description: model::describe(&model),
            load_ms: started.elapsed().as_millis() as u64,
            n_ctx: session.n_ctx(),
            n_ctx_train: model.n_ctx_train(),
            chat_template: session.has_chat_template(),
            n_params: model.n_params(),
            size_bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
        };
        tracing::info!(load_ms = info.load_ms, n_ctx = info.n_ctx, "loaded {}: {}", path.display(), info.description);
        self.output.send(&Event::Loaded(info))?;

        while let Ok(request) = self.requests.recv() {
            match request {
                Request::Generate(generate) => self.generate(&mut session, &generate)?,
                Request::Bench(bench) => match session.bench(&bench) {
                    Ok(stats) => self.output.send(&Event::BenchDone(stats))?,
                    Err(e) => self.output.error(Some(bench.id), e.kind, e.message)?,
                },
                Request::Unload { id } => {
                    drop(session);
                    drop(model);
                    self.output.send(&Event::Unloaded { id })?;
                    return Ok(None);
                }
                Request::Load(_) | Request::Shutdown => return Ok(Some(request)),
                Request::Ping { .. } | Request::Cancel { .. } => {}
            }
        }
        Ok(None)
    }

    fn generate(&self, session: &mut Session<'_>, request: &GenerateRequest) -> io::Result<()> {
        let started = Instant::now();
        let id = request.id;
        let output = &self.output;
        let cancellations = &self.cancellations;
        let result = session.generate(request, started, &|| cancellations.is_cancelled(id), &mut |text| {
            output
                .send(&Event::Token { id, text: text.to_owned() })
                .map_err(|e| GenerateError { kind: ErrorKind::Internal, message: format!("stdout closed: {e}") })
        });
        self.cancellations.clear(id);
        match result {
            Ok(stats) => {
                let decode_ms = stats.total_ms.saturating_sub(stats.first_token_ms).max(1);
                tracing::info!(
                    prompt = stats.prompt_tokens,
                    cached = stats.cached_tokens,
                    completion = stats.completion_tokens,
                    prefill_ms = stats.prefill_ms,
                    first_token_ms = stats.first_token_ms,
                    tokens_per_s = format!("{:.1}", stats.completion_tokens as f64 * 1000.0 / decode_ms as f64),
                    "generation {id} ended: {:?}",
                    stats.stop_reason
                );
                output.send(&Event::Done(stats))
            }
            Err(e) => output.error(Some(id), e.kind, e.message),
        }
    }
}

fn worker_info() -> WorkerInfo {
    let devices = llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .map(|d| format!("{} ({})", d.backend, d.description))
        .collect::<Vec<_>>();
    WorkerInfo {
        protocol: PROTOCOL_VERSION,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        backend: format!(
            "llama.cpp on {}",
            if devices.is_empty() { "no devices".to_owned() } else { devices.join(", ") }
        ),
        pid: std::process::id(),
    }
}

/// Returns a writer on the real stdout and points file descriptor 1 at stderr, so that nothing
/// llama.cpp or ggml prints can corrupt the protocol stream.
#[cfg(unix)]
fn protocol_stdout() -> io::Result<Box<dyn Write + Send>> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain descriptor calls; the duplicate is owned by the File alone.
    unsafe {
        let fd = libc::fcntl(libc::STDOUT_FILENO, libc::F_DUPFD_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) < 0 {
            let e = io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        Ok(Box::new(std::fs::File::from_raw_fd(fd)))
    }
}

#[cfg(not(unix))]
fn protocol_stdout() -> io::Result<Box<dyn Write + Send>> {
    Ok(Box::new(io::stdout()))
}
