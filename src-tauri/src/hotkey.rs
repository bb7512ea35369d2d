//! The global hotkey and launch at login: applied at start and whenever settings are saved.

use crate::engine::{self, Action};
use crate::Shell;
use std::str::FromStr;
use tauri::{AppHandle, Manager};
use tauri_plugin_global_shortcut::{GlobalShortcutExt, Shortcut, ShortcutEvent, ShortcutState};

/// The plugin, with one handler for whichever shortcut is registered.
pub fn plugin() -> tauri::plugin::TauriPlugin<tauri::Wry> {
    tauri_plugin_global_shortcut::Builder::new()
        .with_handler(|app: &AppHandle, _shortcut: &Shortcut, event: ShortcutEvent| {
            engine::dispatch(app, if event.state() == ShortcutState::Pressed { Action::HotkeyPressed } else { Action::HotkeyReleased });
        })
        .build()
}

/// Parses `text` (e.g. "Alt+Space") as the plugin would, with an error that says how to fix it.
pub fn parse(text: &str) -> Result<Shortcut, String> {
    Shortcut::from_str(text.trim()).map_err(|e| {
        format!("\"{text}\" is not a shortcut the system understands ({e}). Use modifiers and one key joined by +, e.g. Alt+Shift+Space or CmdOrCtrl+Shift+R")
    })
}

/// Makes `text` the registered hotkey. On failure (bad syntax, or taken by another app) the old
/// one stays registered and the error is returned and remembered for the settings window.
pub fn apply(app: &AppHandle, text: &str) -> Result<(), String> {
    let shell = app.state::<Shell>();
    let mut current = shell.hotkey.lock().unwrap_or_else(|e| e.into_inner());
    let result = (|| {
        let wanted = parse(text)?;
        if current.0 == Some(wanted) {
            return Ok(());
        }
        app.global_shortcut().register(wanted).map_err(|e| {
            format!("{text} could not be registered: {e}. Another app probably uses it already (⌥Space is often taken by Alfred, Raycast or ChatGPT): pick another shortcut in Settings → Hotkey")
        })?;
        if let Some(old) = current.0.take() {
            let _ = app.global_shortcut().unregister(old);
        }
        current.0 = Some(wanted);
        tracing::info!(hotkey = text, "hotkey registered");
        Ok(())
    })();
    current.1 = result.as_ref().err().cloned();
    if let Err(e) = &result {
        tracing::warn!("hotkey: {e}");
    }
    result
}

/// Turns launch at login on or off to match the config (a LaunchAgent on macOS).
pub fn apply_autostart(app: &AppHandle, wanted: bool) -> Result<(), String> {
    use tauri_plugin_autostart::ManagerExt;
    let launcher = app.autolaunch();
    let fail = |e: tauri_plugin_autostart::Error| format!("launch at login could not be {}: {e}", if wanted { "turned on" } else { "turned off" });
    if launcher.is_enabled().map_err(fail)? != wanted {
        if wanted { launcher.enable() } else { launcher.disable() }.map_err(fail)?;
        tracing::info!(launch_at_login = wanted, "autostart changed");
    }
    Ok(())
}
