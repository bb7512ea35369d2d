//! [`LlmSupervisor`]: the engine's handle on the local LLM. It starts the worker on first use,
//! loads the model, streams completions, cancels them, notices when the worker dies (failing
//! that turn and starting a fresh worker on the next call) and stops an idle worker to give its
//! memory back.

use super::locate::find_worker;
use super::process::{write_request, SharedStdin, WorkerProcess};
use super::rss::rss_bytes;
use super::LlmError;
use roxy_protocol::{
    ChatMessage, ErrorKind, Event, GenerateRequest, GenerationStats, LoadRequest, ModelInfo, Request, WorkerInfo,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// How long a worker asked to shut down gets before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// The idle check never sleeps longer than this, so settings changes apply promptly.
const MAX_IDLE_CHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq)]
pub struct LlmSettings {
    /// The GGUF model file.
    pub model_path: PathBuf,
    /// Context length in tokens; 0 uses the model's training context.
    pub n_ctx: u32,
    /// Decoding threads; 0 lets the worker choose.
    pub n_threads: u32,
    /// Layers offloaded to the GPU (Metal on macOS); 0 is CPU only.
    pub n_gpu_layers: u32,
    /// Stop the worker after this long without requests; `None` keeps it running.
    pub idle_timeout: Option<Duration>,
    /// The worker executable; `None` searches (see [`find_worker`]).
    pub worker_path: Option<PathBuf>,
    /// Longest wait for a starting worker's Ready event.
    pub start_timeout: Duration,
    /// Longest wait for a model to load.
    pub load_timeout: Duration,
    /// Longest silence during a generation (the prompt's prefill included).
    pub response_timeout: Duration,
}

impl LlmSettings {
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        LlmSettings {
            model_path: model_path.into(),
            n_ctx: 4096,
            n_threads: 0,
            // Metal is always there on a Mac; elsewhere the worker is built for the CPU.
            n_gpu_layers: crate::platform::DEFAULT_GPU_LAYERS,
            idle_timeout: Some(Duration::from_secs(300)),
            worker_path: None,
            start_timeout: Duration::from_secs(30),
            load_timeout: Duration::from_secs(300),
            response_timeout: Duration::from_secs(120),
        }
    }

    fn load_request(&self, id: u64) -> LoadRequest {
        LoadRequest {
            id,
            model_path: self.model_path.clone(),
            n_ctx: self.n_ctx,
            n_threads: self.n_threads,
            n_gpu_layers: self.n_gpu_layers,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    pub max_tokens: u32,
    /// 0 is greedy and deterministic.
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u32,
    pub stop: Vec<String>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions { max_tokens: 256, temperature: 0.7, top_p: 0.9, seed: 0, stop: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub stats: GenerationStats,
}

/// A snapshot for status pages and `roxy doctor`.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmStatus {
    pub running: bool,
    pub pid: Option<u32>,
    pub worker: Option<WorkerInfo>,
    /// The loaded model, with its load time.
    pub model: Option<ModelInfo>,
    /// The worker's resident memory.
    pub rss_bytes: Option<u64>,
    /// Workers started so far (more than one means restarts: crashes or idle stops).
    pub starts: u32,
}

pub struct LlmSupervisor {
    inner: Arc<Inner>,
    /// Dropping it wakes and ends the idle thread.
    _stop_idle_thread: Sender<()>,
}

struct Inner {
    settings: Mutex<LlmSettings>,
    /// Held for a whole call: the worker serves one request at a time.
    worker: Mutex<Option<Running>>,
    /// The generation in progress, reachable by `cancel` while `worker` is held.
    active: Mutex<Option<ActiveTurn>>,
    /// Readable at any time, unlike `worker`.
    snapshot: Mutex<Snapshot>,
    next_id: AtomicU64,
    /// Voice turns waiting for the worker: a background generation yields to them.
    foreground_waiting: AtomicUsize,
}

struct Running {
    process: WorkerProcess,
    /// What was loaded and with which parameters (the request's id is irrelevant).
    model: Option<(LoadRequest, ModelInfo)>,
}

struct ActiveTurn {
    id: u64,
    stdin: SharedStdin,
    /// An API chat, which a voice turn preempts.
    background: bool,
    /// Set when a voice turn cancelled it, so it ends as `Preempted`, not as a client's cancel.
    preempted: bool,
}

impl ActiveTurn {
    /// Asks the worker to stop this generation; whether the request was sent.
    fn cancel(&self) -> bool {
        match write_request(&self.stdin, &Request::Cancel { id: self.id }) {
            Ok(()) => true,
            Err(e) => {
                // The turn itself will report the dead worker.
                tracing::debug!("could not send Cancel: {e}");
                false
            }
        }
    }
}

/// Who is waiting for the answer: the voice loop goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Someone is listening (the voice loop).
    Voice,
    /// An API client: runs when no voice turn wants the worker, and is cut short
    /// ([`LlmError::Preempted`]) when one arrives.
    Background,
}

struct Snapshot {
    pid: Option<u32>,
    worker: Option<WorkerInfo>,
    model: Option<ModelInfo>,
    starts: u32,
    last_used: Instant,
}

impl LlmSupervisor {
    /// Starts nothing yet: the worker starts on the first call that needs it.
    pub fn new(settings: LlmSettings) -> Self {
        let inner = Arc::new(Inner {
            settings: Mutex::new(settings),
            worker: Mutex::new(None),
            active: Mutex::new(None),
            snapshot: Mutex::new(Snapshot {
                pid: None,
                worker: None,
                model: None,
                starts: 0,
                last_used: Instant::now(),
            }),
            next_id: AtomicU64::new(1),
            foreground_waiting: AtomicUsize::new(0),
        });
        let (stop, stopped) = mpsc::channel();
        spawn_idle_thread(Arc::downgrade(&inner), stopped);
        LlmSupervisor { inner, _stop_idle_thread: stop }
    }

    pub fn settings(&self) -> LlmSettings {
        lock(&self.inner.settings).clone()
    }

    /// Takes effect on the next call: a changed model or context reloads, a changed worker path
    /// applies when the worker next starts.
    pub fn set_settings(&self, settings: LlmSettings) {
        *lock(&self.inner.settings) = settings;
    }

    /// Round trip to the worker (starting it if needed); returns what it reports about itself.
    pub fn ping(&self) -> Result<WorkerInfo, LlmError> {
        self.inner.call(|inner, running| {
            let id = inner.next_id();
            let timeout = lock(&inner.settings).start_timeout;
            running.process.send(&Request::Ping { id }, "answering a ping")?;
            loop {
                match running.process.next_event(timeout, "answering a ping")? {
                    Event::Pong { id: pong, info } if pong == id => return Ok(info),
                    other => tracing::debug!("ignoring {other:?} while waiting for Pong"),
                }
            }
        })
    }

    /// Makes sure the configured model is loaded (e.g. to warm up before the first turn).
    pub fn load(&self) -> Result<ModelInfo, LlmError> {
        self.inner.call(|inner, running| inner.ensure_loaded(running))
    }

    /// Runs one chat completion, calling `on_token` with each piece of text as it arrives.
    /// A cancelled generation (see [`Self::cancel`]) still returns `Ok`, with stop reason
    /// `Cancelled` and the text produced so far.
    pub fn generate(&self, messages: &[ChatMessage], options: &GenerateOptions, on_token: impl FnMut(&str)) -> Result<Completion, LlmError> {
        self.generate_as(Priority::Voice, messages, options, on_token)
    }

    /// [`Self::generate`] for `priority`: a voice turn preempts a background generation in
    /// progress (within one token) and is served before background ones that wait.
    pub fn generate_as(
        &self,
        priority: Priority,
        messages: &[ChatMessage],
        options: &GenerateOptions,
        mut on_token: impl FnMut(&str),
    ) -> Result<Completion, LlmError> {
        let background = priority == Priority::Background;
        let _waiting = match priority {
            Priority::Voice => Some(self.inner.wait_as_voice()),
            Priority::Background => {
                self.inner.yield_to_voice();
                None
            }
        };
        self.inner.call(|inner, running| {
            if background && inner.foreground_waiting.load(Ordering::SeqCst) > 0 {
                return Err(LlmError::Preempted);
            }
            drop(_waiting);
            inner.ensure_loaded(running)?;
            let id = inner.next_id();
            let request = Request::Generate(GenerateRequest {
                id,
                messages: messages.to_vec(),
                max_tokens: options.max_tokens,
                temperature: options.temperature,
                top_p: options.top_p,
                seed: options.seed,
                stop: options.stop.clone(),
            });
            let timeout = lock(&inner.settings).response_timeout;
            let during = "generating a reply";
            *lock(&inner.active) = Some(ActiveTurn { id, stdin: running.process.stdin(), background, preempted: false });
            let _active = ClearActive(inner);
            // A voice turn that arrived while this one was loading the model.
            if background && inner.foreground_waiting.load(Ordering::SeqCst) > 0 {
                return Err(LlmError::Preempted);
            }
            running.process.send(&request, during)?;
            // A preempting Cancel sent before the request reached the worker was ignored.
            if let Some(turn) = lock(&inner.active).as_ref().filter(|turn| turn.preempted) {
                turn.cancel();
            }
            let mut text = String::new();
            loop {
                match running.process.next_event(timeout, during)? {
                    Event::Token { id: token_id, text: piece } if token_id == id => {
                        text.push_str(&piece);
                        on_token(&piece);
                    }
                    Event::Done(stats) if stats.id == id => {
                        if lock(&inner.active).as_ref().is_some_and(|turn| turn.preempted) {
                            return Err(LlmError::Preempted);
                        }
                        return Ok(Completion { text, stats });
                    }
                    Event::Error { id: Some(error_id), kind, message } if error_id == id => {
                        if kind == ErrorKind::NoModel {
                            // The worker lost its model (should not happen): reload next time.
                            running.model = None;
                        }
                        return Err(LlmError::Worker { kind, message });
                    }
                    other => tracing::debug!("ignoring {other:?} during generation {id}"),
                }
            }
        })
    }

    /// Stops the generation in progress within one token. Returns whether there was one (a call
    /// still starting the worker or loading the model has none yet).
    pub fn cancel(&self) -> bool {
        lock(&self.inner.active).as_ref().is_some_and(ActiveTurn::cancel)
    }

    /// Stops a background generation in progress (its client went away); a voice turn goes on.
    pub fn cancel_background(&self) -> bool {
        lock(&self.inner.active).as_ref().filter(|t| t.background).is_some_and(ActiveTurn::cancel)
    }

    /// Stops the worker now, freeing the model's memory; the next call starts a new one.
    /// Waits for a call in progress to finish first.
    pub fn stop(&self) {
        let mut worker = lock(&self.inner.worker);
        self.inner.stop_worker(&mut worker);
    }

    /// Never waits for a call in progress.
    pub fn status(&self) -> LlmStatus {
        let mut status = {
            let snapshot = lock(&self.inner.snapshot);
            LlmStatus {
                running: snapshot.pid.is_some(),
                pid: snapshot.pid,
                worker: snapshot.worker.clone(),
                model: snapshot.model.clone(),
                rss_bytes: None,
                starts: snapshot.starts,
            }
        };
        status.rss_bytes = status.pid.and_then(rss_bytes);
        status
    }
}

/// A voice turn's place in line; leaving it lets background generations start again.
struct VoiceWaiting<'a>(&'a Inner);

impl Drop for VoiceWaiting<'_> {
    fn drop(&mut self) {
        self.0.foreground_waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Inner {
    /// Queues a voice turn and cuts short the background generation in progress, if any.
    fn wait_as_voice(&self) -> VoiceWaiting<'_> {
        self.foreground_waiting.fetch_add(1, Ordering::SeqCst);
        let mut active = lock(&self.active);
        if let Some(turn) = active.as_mut().filter(|t| t.background && !t.preempted) {
            turn.preempted = true;
            turn.cancel();
        }
        VoiceWaiting(self)
    }

    /// Waits (briefly, polling) while voice turns want the worker.
    fn yield_to_voice(&self) {
        while self.foreground_waiting.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs `f` with a live worker, starting one if needed. A worker that crashed, hung or
    /// spoke gibberish is discarded so the next call starts afresh.
    fn call<T>(&self, f: impl FnOnce(&Self, &mut Running) -> Result<T, LlmError>) -> Result<T, LlmError> {
        let mut worker = lock(&self.worker);
        self.touch();
        let result = self.ensure_started(&mut worker).and_then(|running| f(self, running));
        if let Err(e) = &result {
            if e.is_worker_failure() || matches!(e, LlmError::Protocol(_)) {
                tracing::warn!("{e}");
                self.stop_worker(&mut worker);
            }
        }
        self.touch();
        result
    }

    fn ensure_started<'w>(&self, worker: &'w mut Option<Running>) -> Result<&'w mut Running, LlmError> {
        let mut current = worker.take();
        if current.as_mut().is_some_and(|running| running.process.has_exited()) {
            if let Some(dead) = current.take() {
                tracing::warn!(pid = dead.process.pid(), "the LLM worker exited between requests; starting a new one");
                self.retire(dead);
            }
        }
        let running = match current {
            Some(running) => running,
            None => self.start()?,
        };
        Ok(worker.insert(running))
    }

    fn start(&self) -> Result<Running, LlmError> {
        let (path, timeout) = {
            let settings = lock(&self.settings);
            (find_worker(settings.worker_path.as_deref())?, settings.start_timeout)
        };
        let process = WorkerProcess::spawn(&path, timeout)?;
        tracing::info!(pid = process.pid(), backend = %process.info().backend, "started LLM worker {}", path.display());
        let mut snapshot = lock(&self.snapshot);
        snapshot.pid = Some(process.pid());
        snapshot.worker = Some(process.info().clone());
        snapshot.model = None;
        snapshot.starts += 1;
        Ok(Running { process, model: None })
    }

    fn ensure_loaded(&self, running: &mut Running) -> Result<ModelInfo, LlmError> {
        let (wanted, timeout) = {
            let settings = lock(&self.settings);
            (settings.load_request(0), settings.load_timeout)
        };
        if let Some((loaded, info)) = &running.model {
            if *loaded == wanted {
                return Ok(info.clone());
            }
        }
        let path = wanted.model_path.clone();
        if path.as_os_str().is_empty() {
            return Err(LlmError::Model {
                path,
                message:
                    "no LLM model is configured. Fix: run `roxy models fetch`, or set the LLM model path in the config"
                        .into(),
            });
        }
        running.model = None;
        lock(&self.snapshot).model = None;
        let id = self.next_id();
        let during = format!("loading {}", path.display());
        running.process.send(&Request::Load(LoadRequest { id, ..wanted.clone() }), &during)?;
        loop {
            match running.process.next_event(timeout, &during)? {
                Event::Loaded(info) if info.id == id => {
                    tracing::info!(
                        load_ms = info.load_ms,
                        n_ctx = info.n_ctx,
                        "LLM model loaded: {}",
                        info.description
                    );
                    running.model = Some((wanted, info.clone()));
                    lock(&self.snapshot).model = Some(info.clone());
                    return Ok(info);
                }
                Event::Error { id: Some(error_id), kind: ErrorKind::Model, message } if error_id == id => {
                    return Err(LlmError::Model { path, message });
                }
                Event::Error { id: Some(error_id), kind, message } if error_id == id => {
                    return Err(LlmError::Worker { kind, message });
                }
                other => tracing::debug!("ignoring {other:?} while loading"),
            }
        }
    }

    fn stop_worker(&self, worker: &mut Option<Running>) {
        if let Some(running) = worker.take() {
            self.retire(running);
        }
    }

    fn retire(&self, running: Running) {
        tracing::info!(pid = running.process.pid(), "stopping the LLM worker");
        running.process.shutdown(SHUTDOWN_GRACE);
        let mut snapshot = lock(&self.snapshot);
        snapshot.pid = None;
        snapshot.model = None;
    }

    /// Stops the worker if it has been idle long enough; returns how long to sleep.
    fn check_idle(&self) -> Duration {
        let Some(idle_timeout) = lock(&self.settings).idle_timeout else { return MAX_IDLE_CHECK };
        let idle_for = lock(&self.snapshot).last_used.elapsed();
        if idle_for < idle_timeout {
            return (idle_timeout - idle_for).clamp(Duration::from_millis(10), MAX_IDLE_CHECK);
        }
        // A call in progress holds the lock: it is not idle.
        if let Ok(mut worker) = self.worker.try_lock() {
            if worker.is_some() {
                tracing::info!("the LLM worker was idle for {}s; stopping it to free memory", idle_for.as_secs());
                self.stop_worker(&mut worker);
            }
        }
        idle_timeout.clamp(Duration::from_millis(10), MAX_IDLE_CHECK)
    }

    fn touch(&self) {
        lock(&self.snapshot).last_used = Instant::now();
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let mut worker = lock(&self.worker);
        if let Some(running) = worker.take() {
            running.process.shutdown(SHUTDOWN_GRACE);
        }
    }
}

/// Forgets the active turn when a generation ends, however it ends.
struct ClearActive<'a>(&'a Inner);

impl Drop for ClearActive<'_> {
    fn drop(&mut self) {
        *lock(&self.0.active) = None;
    }
}

fn spawn_idle_thread(inner: Weak<Inner>, stop: Receiver<()>) {
    let spawned = std::thread::Builder::new().name("llm-idle".into()).spawn(move || loop {
        let Some(sleep) = inner.upgrade().map(|inner| inner.check_idle()) else { return };
        match stop.recv_timeout(sleep) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("could not start the LLM idle thread ({e}); the worker will not be stopped when idle");
    }
}

/// A poisoned lock only means another thread panicked mid-call; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
