//! Seams to the engine's voice-loop coordinator (being written in the `roxy` crate). The tray,
//! the hotkey and the panel's buttons produce typed [`Action`]s; the coordinator will report
//! typed [`LoopState`]s back. Until it exists, `dispatch` logs the action and emits it as the
//! `roxy://action` event, and the state stays idle (or muted) — nothing listens or speaks yet.

use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Emitter};

/// What the user asked for, from the tray menu, the hotkey or the panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Start listening now, as if the wake word was heard.
    ListenNow,
    /// The global hotkey went down / up; the coordinator applies `hotkey.mode` (toggle or push-to-talk).
    HotkeyPressed,
    HotkeyReleased,
    /// Cut the current answer short.
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

/// What the panel shows live: the state plus the current exchange.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateEvent {
    pub state: LoopState,
    /// What the user said (partial while listening).
    pub transcript: String,
    /// Roxy's answer so far.
    pub answer: String,
    /// A problem to show with the error state.
    pub detail: Option<String>,
}

/// Event names, shared with `ui/`.
pub const ACTION_EVENT: &str = "roxy://action";
pub const STATE_EVENT: &str = "roxy://state";

/// NOT WIRED: hands `action` to the coordinator once it exists. For now it is logged and
/// emitted so the UI (and tests) can see it.
pub fn dispatch(app: &AppHandle, action: Action) {
    tracing::info!(?action, "action (the engine coordinator is not wired to the shell yet)");
    let _ = app.emit(ACTION_EVENT, action);
}
