//! The shell's macOS-only calls, in one place (`scripts/check-macos` allows `target_os` here and
//! in the engine's `src/platform/` only). Tauri's macOS APIs do not exist in a Linux build, so
//! this file is checked by reading on a Mac-less machine.

/// A menu-bar app: no Dock icon, no app-switcher entry.
pub fn menu_bar_only(#[allow(unused)] app: &mut tauri::App) {
    #[cfg(target_os = "macos")]
    app.set_activation_policy(tauri::ActivationPolicy::Accessory);
}
