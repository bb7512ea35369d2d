//! Roxy's local HTTP API (`roxy serve`; the app runs it too): health, Prometheus metrics, the
//! timing table, memory, and an OpenAI-compatible chat endpoint, on 127.0.0.1 only.
//!
//! Security: Host must be a loopback name (DNS rebinding), browser origins other than local
//! ones are refused and no CORS headers are sent, and every non-GET request needs the bearer
//! token from `<data dir>/api_token` (see [`security`]).

pub mod backend;
pub mod client;
pub mod connections;
pub mod error;
pub mod openai;
pub mod security;
pub mod telemetry;

pub use backend::{BrainBackend, ChatBackend, ChatDone, ChatError, ChatEvent, ChatRequest, ChatStream, FinishReason, LateBackend, LlmBackend, UnavailableBackend};
pub use connections::Limits;
pub use error::ApiError;
pub use openai::ChatDefaults;
pub use security::{load_or_create_token, token_file, TokenError};
pub use telemetry::MemorySample;

use crate::memory::ResponseCache;
use crate::metrics::Registry as StageRegistry;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use telemetry::Telemetry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The content type of the OpenMetrics text exposition `prometheus-client` writes.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("port {port} on 127.0.0.1 is in use (is Roxy already running?). Fix: stop the other program, or pick another port with `roxy serve --port N` or `app.api_port` in the config")]
    PortInUse { port: u16 },
    #[error("could not listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("could not start the API's threads: {0}")]
    Runtime(std::io::Error),
}

/// Everything the handlers share.
pub struct Api {
    backend: Arc<dyn ChatBackend>,
    stages: Arc<StageRegistry>,
    token: String,
    token_path: Option<PathBuf>,
    chat_slots: Arc<Semaphore>,
    concurrency: usize,
    chat_defaults: ChatDefaults,
    limits: Limits,
    telemetry: Telemetry,
    started: Instant,
    started_unix: u64,
    port: std::sync::atomic::AtomicU16,
}

impl Api {
    /// `stages` is the registry the voice loop records into (shared with the engine);
    /// `concurrency` chat completions are generated at once, the rest queue.
    pub fn new(backend: Arc<dyn ChatBackend>, stages: Arc<StageRegistry>, token: String, concurrency: usize) -> Api {
        Self::with_cache(backend, stages, token, concurrency, None)
    }

    /// As [`Api::new`], also reporting the response cache's hit rates in `/metrics`.
    pub fn with_cache(backend: Arc<dyn ChatBackend>, stages: Arc<StageRegistry>, token: String, concurrency: usize, cache: Option<Arc<ResponseCache>>) -> Api {
        let started = Instant::now();
        let concurrency = concurrency.max(1);
        Api {
            telemetry: Telemetry::new(stages.clone(), backend.clone(), cache, started),
            backend,
            stages,
            token,
            token_path: None,
            chat_slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            chat_defaults: ChatDefaults::default(),
            limits: Limits::default(),
            started,
            started_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            port: std::sync::atomic::AtomicU16::new(0),
        }
    }

    /// Generation defaults and limits (from `[llm]`).
    pub fn chat_defaults(mut self, defaults: ChatDefaults) -> Api {
        self.chat_defaults = defaults;
        self
    }

    /// Connection, request and queue bounds.
    pub fn limits(mut self, limits: Limits) -> Api {
        self.limits = limits;
        self
    }

    /// Where the token lives, named in 401 messages.
    pub fn token_path(mut self, path: PathBuf) -> Api {
        self.token_path = Some(path);
        self
    }

    pub fn stages(&self) -> &Arc<StageRegistry> {
        &self.stages
    }

    /// The token file as `~/…`: a 401 goes to any local client, which need not learn the
    /// home directory's absolute path.
    fn token_hint(&self) -> String {
        let Some(path) = &self.token_path else { return "the data dir's api_token file".into() };
        let home = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_absolute() && h.parent().is_some());
        match home.and_then(|h| path.strip_prefix(h).ok().map(|rest| rest.to_path_buf())) {
            Some(rest) => format!("~/{}", rest.display()),
            None => path.file_name().map_or_else(|| "the api_token file".into(), |f| format!("the data dir's {}", f.to_string_lossy())),
        }
    }

    fn port_hint(&self) -> String {
        match self.port.load(std::sync::atomic::Ordering::Relaxed) {
            0 => "PORT".into(),
            port => port.to_string(),
        }
    }

    /// A generation slot: at once, after a wait in the queue, or a 429 when the queue is full.
    async fn chat_slot(&self) -> Result<ChatSlot, ApiError> {
        let permit = match self.chat_slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let waiting = Waiting::enter(&self.telemetry.chat_queued, self.limits.max_queued_chats).ok_or_else(|| {
                    self.telemetry.chat_refused.inc();
                    ApiError::busy(
                        format!(
                            "{} chats are already waiting for the model. Fix: retry after the Retry-After seconds, or raise api.concurrency",
                            self.limits.max_queued_chats
                        ),
                        self.retry_after_s(),
                    )
                })?;
                // The semaphore is never closed, so acquiring only waits.
                let permit = self.chat_slots.clone().acquire_owned().await;
                drop(waiting);
                permit.map_err(|_| ApiError::unavailable("the API is shutting down"))?
            }
        };
        self.telemetry.chat_active.inc();
        Ok(ChatSlot { _permit: permit, active: self.telemetry.chat_active.clone() })
    }

    /// About how long the queue ahead takes to drain: the typical generation time per waiting
    /// chat and slot (10 s per chat before any was timed).
    fn retry_after_s(&self) -> u64 {
        let typical_s = self.stages.snapshot().into_iter().find(|s| s.stage == crate::metrics::Stage::LlmTotal && s.count > 0).map_or(10.0, |s| s.p50 / 1000.0);
        let ahead = (self.limits.max_queued_chats + self.concurrency) as f64 / self.concurrency as f64;
        (typical_s * ahead).ceil().clamp(1.0, 600.0) as u64
    }
}

/// A place in the chat queue, counted in the `chat_queued` gauge; leaving (served, or the
/// client gave up) frees it.
struct Waiting(prometheus_client::metrics::gauge::Gauge);

impl Waiting {
    fn enter(queued: &prometheus_client::metrics::gauge::Gauge, limit: usize) -> Option<Waiting> {
        use std::sync::atomic::Ordering;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        queued.inner().fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < limit).then_some(n + 1)).ok()?;
        Some(Waiting(queued.clone()))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A chat generation slot; frees itself (and the active count) when dropped.
struct ChatSlot {
    _permit: OwnedSemaphorePermit,
    active: prometheus_client::metrics::gauge::Gauge,
}

impl Drop for ChatSlot {
    fn drop(&mut self) {
        self.active.dec();
    }
}

/// All routes with their guards. Layers run outside in: catch-panic, request metrics, security.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(prometheus))
        .route("/metrics/latency", get(latency))
        .route("/metrics/memory", get(memory))
        .route("/metrics/sample", post(sample))
        .route("/metrics/reset", post(reset))
        .route("/v1/models", get(openai::models))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(api.clone(), security::guard))
        .layer(axum::middleware::from_fn_with_state(api.clone(), track))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .with_state(api)
}

/// Binds 127.0.0.1:`port` (0 picks a free port). Never any other interface.
pub fn bind(port: u16) -> Result<std::net::TcpListener, ServeError> {
    let bind_err = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::AddrInUse => ServeError::PortInUse { port },
        _ => ServeError::Bind { port, source },
    };
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map_err(bind_err)?;
    // tokio needs a non-blocking socket.
    listener.set_nonblocking(true).map_err(bind_err)?;
    Ok(listener)
}

/// Serves on a [`bind`]-made listener until `shutdown` completes, then lets the requests in
/// flight finish (for at most `limits.shutdown_grace`).
pub async fn serve(listener: std::net::TcpListener, api: Arc<Api>, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    if let Ok(addr) = listener.local_addr() {
        api.port.store(addr.port(), std::sync::atomic::Ordering::Relaxed);
    }
    spawn_memory_sampler(&api);
    connections::serve(listener, router(api.clone()), api.limits.clone(), &api.telemetry, shutdown).await;
    Ok(())
}

/// The API on its own threads, for callers without a tokio runtime (the CLI, the app).
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    pub fn start(api: Arc<Api>, port: u16) -> Result<ServerHandle, ServeError> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("roxy-api")
            .enable_all()
            .build()
            .map_err(ServeError::Runtime)?;
        // Bound here, not on the runtime, so a caller inside another runtime can start one too.
        let listener = bind(port)?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind { port, source })?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("roxy-api-main".into())
            .spawn(move || {
                let served = runtime.block_on(serve(listener, api, async {
                    let _ = rx.await;
                }));
                if let Err(e) = served {
                    tracing::error!("the API server stopped: {e}");
                }
                // A generation still running on a blocking thread must not hold up Quit.
                runtime.shutdown_timeout(std::time::Duration::from_millis(500));
            })
            .map_err(ServeError::Runtime)?;
        Ok(ServerHandle { addr, shutdown: Some(tx), thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks until Ctrl-C (or SIGTERM), then shuts the server down.
    pub fn wait_for_signal(self) -> std::io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async {
            #[cfg(unix)]
            {
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                tokio::select! {
                    r = tokio::signal::ctrl_c() => r?,
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            tokio::signal::ctrl_c().await?;
            Ok::<(), std::io::Error>(())
        })?;
        self.shutdown();
        Ok(())
    }

    /// Stops accepting, lets requests in flight finish, and waits for the server to end.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn_memory_sampler(api: &Arc<Api>) {
    let weak = Arc::downgrade(api);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(telemetry::SAMPLE_EVERY);
        loop {
            every.tick().await;
            let Some(api) = weak.upgrade() else { return };
            // sysinfo reads /proc: keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || api.telemetry.sample_memory()).await;
        }
    });
}

/// Counts every answered request (rejections included) by its route, not its raw path, so
/// scanners cannot blow up the label set.
async fn track(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint = request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    api.telemetry.observe_request(&endpoint, &method, response.status().as_u16(), started.elapsed());
    response
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_default();
    tracing::error!("an API handler panicked: {detail}");
    ApiError::internal("Roxy hit an internal error answering this request (a bug; details in the log). Fix: retry; if it repeats, report it with the log").into_response()
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!(
            "no endpoint {} {}. Endpoints: GET /health, /metrics, /metrics/latency, /metrics/memory, /v1/models; POST /metrics/sample, /metrics/reset, /v1/chat/completions",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    let path = request.uri().path().to_string();
    let allowed = if matches!(path.as_str(), "/metrics/sample" | "/metrics/reset" | "/v1/chat/completions") { "POST" } else { "GET" };
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", format!("{path} does not take {}; use {allowed}", request.method()))
}

async fn health(State(api): State<Arc<Api>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": api.started.elapsed().as_secs_f64(),
        "model": api.backend.model_id(),
        "chat_concurrency": api.concurrency,
    }))
}

async fn prometheus(State(api): State<Arc<Api>>) -> Result<Response, ApiError> {
    let text = api.telemetry.encode().map_err(|_| ApiError::internal("could not encode the metrics; see the log"))?;
    Ok(([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response())
}

/// The `roxy stats` table as JSON.
async fn latency(State(api): State<Arc<Api>>) -> Json<Value> {
    Json(json!({ "uptime_s": api.started.elapsed().as_secs_f64(), "stages": api.stages.snapshot() }))
}

async fn memory(State(api): State<Arc<Api>>) -> Json<Value> {
    let current = api.telemetry.current_memory();
    let samples = api.telemetry.memory_samples();
    // RSS change per minute across the kept samples: a leak shows as a steady climb.
    let trend = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) if b.uptime_s - a.uptime_s >= 1.0 => Some((b.rss_bytes as f64 - a.rss_bytes as f64) / (b.uptime_s - a.uptime_s) * 60.0),
        _ => None,
    };
    Json(json!({
        "current": current,
        "samples": samples,
        "rss_trend_bytes_per_min": trend,
        "sample_every_s": telemetry::SAMPLE_EVERY.as_secs(),
    }))
}

async fn sample(State(api): State<Arc<Api>>) -> Result<Json<Value>, ApiError> {
    let api2 = api.clone();
    let sample = tokio::task::spawn_blocking(move || api2.telemetry.sample_memory())
        .await
        .map_err(|_| ApiError::internal("reading memory figures failed; see the log"))?;
    Ok(Json(json!({ "sample": sample, "samples_kept": api.telemetry.memory_samples().len() })))
}

/// Clears the stage figures and memory samples; request counters stay monotonic, as
/// Prometheus expects.
async fn reset(State(api): State<Arc<Api>>) -> Json<Value> {
    api.stages.reset();
    api.telemetry.forget_stage_snapshot();
    api.telemetry.clear_memory_samples();
    Json(json!({ "reset": ["stages", "memory_samples"] }))
}
