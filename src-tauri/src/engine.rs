//! The adapter between the shell and the engine's live voice loop (`roxy::live`). The tray, the
//! hotkey and the panel's buttons produce typed [`Action`]s, which become `live::Command`s on a
//! channel; the loop's `LiveEvent`s become typed [`StateEvent`]s for the tray icon and the panel.
//! The engine loads, listens and answers on its own threads: nothing here blocks the UI.
//!
//! Also started here, with the app: the local API (`roxy serve`'s server) on `app.api_port`,
//! sharing the metrics registry the engine records into.

use crate::tray;
use roxy::api::{self, Api, BrainBackend, ChatDefaults, LateBackend, ServerHandle};
use roxy::audio::capture::Microphone;
use roxy::audio::playback::{AudioSink, Speaker, WavSink};
use roxy::config::{Config, HotkeyMode};
use roxy::coordinator::{State, Trigger};
use roxy::live::{self, Command, LiveEvent, LiveOptions};
use roxy::metrics::Registry;
use roxy::models::Manifest;
use roxy::paths::Paths;
use roxy::presets::MemoryInfo;
use roxy::voice_loop::Engine;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tauri::{AppHandle, Emitter, Manager};

/// What the user asked for, from the tray menu, the hotkey or the panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Start listening now, as if the wake word was heard.
    ListenNow,
    /// The global hotkey went down / up; applied per `hotkey.mode` (see [`Live::hotkey`]).
    HotkeyPressed,
    HotkeyReleased,
    /// Cut the current answer short (or stop listening).
    StopSpeaking,
    /// Stop (or resume) listening for the wake word.
    MuteWakeWord { muted: bool },
}

/// The voice loop's state, as the tray icon and the panel show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoopState {
    Idle,
    Listening,
    Thinking,
    Speaking,
    Muted,
    Error,
}

impl From<State> for LoopState {
    fn from(state: State) -> Self {
        match state {
            State::Idle => LoopState::Idle,
            State::Listening => LoopState::Listening,
            State::Thinking => LoopState::Thinking,
            State::Speaking => LoopState::Speaking,
        }
    }
}

/// What the panel shows live: the state plus the current exchange.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateEvent {
    pub state: LoopState,
    /// What the user said.
    pub transcript: String,
    /// Roxy's answer (or a timer that came due).
    pub answer: String,
    /// A problem to show (with the error state, or as a warning).
    pub detail: Option<String>,
    /// Progress that is not a problem: "loading models…", "listening on …".
    #[serde(default)]
    pub status: Option<String>,
}

impl StateEvent {
    pub fn idle() -> StateEvent {
        StateEvent { state: LoopState::Idle, transcript: String::new(), answer: String::new(), detail: None, status: None }
    }
}

/// Event names, shared with `ui/`.
pub const ACTION_EVENT: &str = "roxy://action";
pub const STATE_EVENT: &str = "roxy://state";

/// The shell's handle on the running engine.
pub struct Live {
    /// To the live loop; `None` until it runs (and after it stopped).
    commands: Mutex<Option<Sender<Command>>>,
    /// The registry the engine and the API record into; `stats` reads it.
    pub metrics: Arc<Registry>,
    /// The engine loaded (the live registry is the one to show).
    pub loaded: AtomicBool,
    wake_muted: AtomicBool,
    hotkey_mode: Mutex<HotkeyMode>,
    /// The loop's last state, for the hotkey's toggle.
    loop_state: Mutex<State>,
    /// Signalled when the engine thread has finished (metrics saved, WAV written).
    finished: Mutex<Option<mpsc::Receiver<()>>>,
    api: Mutex<Option<ServerHandle>>,
    /// What answers the API's chat: the engine's own brain once it has loaded.
    chat: Arc<LateBackend>,
    /// The engine's brain once it has loaded ("Unload now" frees its LLM).
    brain: std::sync::OnceLock<Arc<roxy::brain::Brain>>,
}

impl Live {
    pub fn new() -> Live {
        Live {
            commands: Mutex::new(None),
            metrics: Arc::new(Registry::new()),
            loaded: AtomicBool::new(false),
            wake_muted: AtomicBool::new(false),
            hotkey_mode: Mutex::new(HotkeyMode::Toggle),
            loop_state: Mutex::new(State::Idle),
            finished: Mutex::new(None),
            api: Mutex::new(None),
            chat: Arc::new(LateBackend::new("Roxy is still loading its models; try again in a few seconds")),
            brain: std::sync::OnceLock::new(),
        }
    }

    pub fn set_hotkey_mode(&self, mode: HotkeyMode) {
        *lock(&self.hotkey_mode) = mode;
    }

    pub fn wake_muted(&self) -> bool {
        self.wake_muted.load(Ordering::Relaxed)
    }

    fn send(&self, command: Command) -> bool {
        match lock(&self.commands).as_ref() {
            Some(tx) => tx.send(command).is_ok(),
            None => false,
        }
    }

    /// The hotkey, per `hotkey.mode`. Toggle: a press starts listening, a press while listening
    /// stops it. Push-to-talk: a press starts listening, the release closes the utterance (what
    /// was said is answered; a pause while the key is held still ends it, as the VAD decides).
    /// The engine's brain, once the engine has loaded.
    pub fn brain(&self) -> Option<Arc<roxy::brain::Brain>> {
        self.brain.get().cloned()
    }

    fn hotkey(&self, pressed: bool) -> Option<Command> {
        let listening = *lock(&self.loop_state) == State::Listening;
        match (*lock(&self.hotkey_mode), pressed) {
            (HotkeyMode::Toggle, true) if listening => Some(Command::Stop),
            (_, true) => Some(Command::Activate(Trigger::Hotkey)),
            (HotkeyMode::PushToTalk, false) if listening => Some(Command::EndUtterance),
            (_, false) => None,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Hands `action` to the live loop, and emits it as `roxy://action` for the UI (and tests).
pub fn dispatch(app: &AppHandle, action: Action) {
    let live = app.state::<Live>();
    let command = match action {
        Action::ListenNow => Some(Command::Activate(Trigger::Menu)),
        Action::HotkeyPressed => live.hotkey(true),
        Action::HotkeyReleased => live.hotkey(false),
        Action::StopSpeaking => Some(Command::Stop),
        Action::MuteWakeWord { muted } => {
            live.wake_muted.store(muted, Ordering::Relaxed);
            Some(Command::MuteWake(muted))
        }
    };
    let delivered = command.is_some_and(|c| live.send(c));
    tracing::info!(?action, ?command, delivered, "action");
    if command.is_some() && !delivered && !matches!(action, Action::MuteWakeWord { .. }) {
        let mut event = current(app);
        if event.detail.is_none() {
            event.detail = Some("Roxy is not listening yet: the engine is still loading or could not start (see above).".into());
        }
        tray::set_state(app, event);
    }
    let _ = app.emit(ACTION_EVENT, action);
}

/// Sends `Quit` to the loop, waits (a few seconds at most) for it to save its statistics, then
/// exits the app. Off the main thread, so the UI stays responsive meanwhile.
pub fn quit(app: &AppHandle) {
    let live = app.state::<Live>();
    let sent = live.send(Command::Quit);
    let finished = lock(&live.finished).take();
    let api = lock(&live.api).take();
    let app = app.clone();
    std::thread::spawn(move || {
        if let (true, Some(finished)) = (sent, finished) {
            if finished.recv_timeout(Duration::from_secs(5)).is_err() {
                tracing::warn!("the voice loop did not stop within 5 s; quitting anyway");
            }
        }
        if let Some(api) = api {
            api.shutdown();
        }
        tracing::info!("quitting");
        app.exit(0);
    });
}

fn current(app: &AppHandle) -> StateEvent {
    lock(&app.state::<crate::Shell>().loop_state).clone()
}

fn show(app: &AppHandle, f: impl FnOnce(&mut StateEvent)) {
    let mut event = current(app);
    f(&mut event);
    tray::set_state(app, event);
}

fn show_error(app: &AppHandle, message: String) {
    tracing::error!("{message}");
    show(app, |e| {
        e.state = LoopState::Error;
        e.detail = Some(message);
        e.status = None;
    });
}

/// Starts the local API and, on a thread of its own, the engine and its live loop.
pub fn start(app: &AppHandle, paths: Paths) {
    let live = app.state::<Live>();
    let config = match Config::load(&paths.config_file, MemoryInfo::detect()) {
        Ok(l) => l.config,
        Err(e) => {
            show_error(app, format!("Roxy cannot start: {e}"));
            return;
        }
    };
    live.set_hotkey_mode(config.hotkey.mode);
    let manifest = match Manifest::from_env() {
        Ok(m) => m,
        Err(e) => {
            show_error(app, format!("Roxy cannot start: {e}"));
            return;
        }
    };
    *lock(&live.api) = start_api(&config, &paths, live.chat.clone(), live.metrics.clone());

    let (tx, rx) = mpsc::channel();
    *lock(&live.commands) = Some(tx);
    let (done_tx, done) = mpsc::channel();
    *lock(&live.finished) = Some(done);
    let (handle, metrics) = (app.clone(), live.metrics.clone());
    let spawned = std::thread::Builder::new().name("roxy-engine".into()).spawn(move || {
        run_engine(&handle, config, &paths, &manifest, metrics, rx);
        *lock(&handle.state::<Live>().commands) = None;
        let _ = done_tx.send(());
    });
    if let Err(e) = spawned {
        *lock(&live.commands) = None;
        show_error(app, format!("could not start the engine's thread: {e}"));
    }
}

fn run_engine(app: &AppHandle, config: Config, paths: &Paths, manifest: &Manifest, metrics: Arc<Registry>, commands: mpsc::Receiver<Command>) {
    show(app, |e| e.status = Some("Loading models…".into()));
    let t = std::time::Instant::now();
    let engine = match Engine::load(config, &paths.models_dir, &paths.data_dir, manifest, metrics.clone()) {
        Ok((engine, _)) => Arc::new(engine),
        Err(e) => {
            let mut message = format!("the voice engine could not load: {e}");
            if !message.contains("Fix:") {
                message.push_str(". Fix: run `roxy models fetch` (`roxy doctor` lists what is missing), then restart Roxy");
            }
            show_error(app, message);
            return;
        }
    };
    let live = app.state::<Live>();
    live.loaded.store(true, Ordering::Relaxed);
    // The API's chat shares this brain (and its one LLM worker) with the voice loop.
    live.chat.set(Arc::new(BrainBackend::new(engine.shared_brain(), "roxy")));
    let _ = live.brain.set(engine.shared_brain());
    tracing::info!(ms = t.elapsed().as_millis() as u64, "engine loaded");

    let mic = match Microphone::open(None) {
        Ok(mic) => mic,
        Err(e) => {
            // The app stays up; capture starts when a microphone appears.
            show_error(app, format!("no microphone: {e}. Roxy starts listening when one is connected"));
            Microphone::open_or_wait(None)
        }
    };
    let mut warning = None;
    let mut wav_out = None;
    let sink: Arc<dyn AudioSink> = match Speaker::open_default() {
        Ok(speaker) => Arc::new(speaker),
        Err(e) => {
            let path = paths.data_dir.join("roxy-app-answers.wav");
            let message = format!("no speaker ({e}): Roxy's answers are written to {} when Roxy quits", path.display());
            tracing::warn!("{message}");
            warning = Some(message);
            let wav = Arc::new(WavSink::new(engine.sample_rate()));
            wav_out = Some((wav.clone(), path));
            wav
        }
    };
    if live.wake_muted() {
        let _ = live.send(Command::MuteWake(true));
    }
    let result = live::run(engine.clone(), mic.events(), sink, commands, LiveOptions::default(), &mut |event| on_event(app, event, &warning));
    engine.shutdown();
    if let Err(e) = roxy::metrics::save(&roxy::metrics::stats_file(&paths.data_dir), &metrics.snapshot()) {
        tracing::warn!("{e}");
    }
    if let Some((wav, path)) = wav_out {
        if let Err(e) = wav.write(&path) {
            tracing::warn!("could not write {}: {e}", path.display());
        }
    }
    match result {
        Ok(()) => tracing::info!("voice loop stopped"),
        Err(e) => show_error(app, format!("the voice loop stopped: {e}")),
    }
}

fn on_event(app: &AppHandle, event: &LiveEvent, warning: &Option<String>) {
    if let Ok(json) = serde_json::to_string(event) {
        tracing::info!(target: "roxy_app::live", "live event {json}");
    }
    let live = app.state::<Live>();
    match event {
        LiveEvent::Ready { device, .. } => {
            show(app, |e| {
                e.status = Some(format!("Listening on {device}"));
                if e.state == LoopState::Error {
                    e.state = LoopState::Idle;
                    e.detail = None;
                }
                if e.detail.is_none() {
                    e.detail = warning.clone();
                }
            });
            test_hooks::on_ready(app);
        }
        LiveEvent::State { state } => {
            *lock(&live.loop_state) = *state;
            let muted = live.wake_muted();
            show(app, |e| {
                e.state = if *state == State::Idle && muted { LoopState::Muted } else { (*state).into() };
                if *state == State::Listening {
                    e.transcript.clear();
                    e.answer.clear();
                }
                // A new state supersedes an old problem (the speaker warning stays).
                e.detail = warning.clone();
            });
            test_hooks::on_state(app, *state);
        }
        LiveEvent::Wake { .. } | LiveEvent::NothingHeard { .. } => {}
        LiveEvent::Turn { turn, interrupted, .. } => show(app, |e| {
            e.transcript = turn.heard.clone();
            e.answer = if *interrupted { format!("{} … (interrupted)", turn.reply) } else { turn.reply.clone() };
        }),
        LiveEvent::Timer { text } => show(app, |e| e.answer = text.clone()),
        LiveEvent::Mic { kind, problem } if kind.is_blocking() => show_error(app, format!("microphone: {problem}")),
        // Listening goes on: a warning beside the state, not the error icon.
        LiveEvent::Mic { problem, .. } => {
            tracing::warn!("microphone: {problem}");
            show(app, |e| e.detail = Some(format!("microphone: {problem}")));
        }
        LiveEvent::Error { message } => show_error(app, message.clone()),
    }
}

/// The local API on `app.api_port`, as `roxy serve` runs it, recording into `metrics`. Chat is
/// answered by the engine's brain once it has loaded (503 "loading" before). A taken port is
/// logged and the app runs on without the API.
fn start_api(config: &Config, paths: &Paths, chat: Arc<LateBackend>, metrics: Arc<Registry>) -> Option<ServerHandle> {
    let token = match api::load_or_create_token(&paths.data_dir) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("the local API is off: {e}");
            return None;
        }
    };
    let api = Api::new(chat, metrics, token, config.api.concurrency as usize)
        .chat_defaults(ChatDefaults::from_config(&config.llm))
        .limits(api::Limits::from_config(&config.api))
        .token_path(api::token_file(&paths.data_dir));
    match ServerHandle::start(Arc::new(api), config.app.api_port) {
        Ok(server) => {
            tracing::info!("local API listening on http://{}", server.addr());
            Some(server)
        }
        Err(e) => {
            tracing::warn!("the local API could not start: {e}");
            None
        }
    }
}

/// Hooks for the smoke test, off unless their variable is set. They go through the same paths
/// as the menu: `ROXY_APP_LISTEN_ONCE_THEN_QUIT=1` clicks "Listen Now" once the microphone is
/// ready, and "Quit" once the loop is back to idle after listening.
mod test_hooks {
    use super::*;
    use std::sync::atomic::AtomicU8;

    // 0: waiting for ready, 1: listen sent, 2: heard listening, 3: quitting.
    static STEP: AtomicU8 = AtomicU8::new(0);

    fn on() -> bool {
        std::env::var_os("ROXY_APP_LISTEN_ONCE_THEN_QUIT").is_some()
    }

    pub fn on_ready(app: &AppHandle) {
        if on() && STEP.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            tracing::info!("ROXY_APP_LISTEN_ONCE_THEN_QUIT: Listen Now");
            dispatch(app, Action::ListenNow);
        }
    }

    pub fn on_state(app: &AppHandle, state: State) {
        if !on() {
            return;
        }
        if state == State::Listening {
            let _ = STEP.compare_exchange(1, 2, Ordering::SeqCst, Ordering::SeqCst);
        } else if state == State::Idle && STEP.compare_exchange(2, 3, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            tracing::info!("ROXY_APP_LISTEN_ONCE_THEN_QUIT: back to idle; Quit");
            quit(app);
        }
    }
}
