//! macOS: CoreAudio needs no quieting or reloads, `pmset` for the battery, `open` for apps and
//! URLs, the login keychain for the cloud key, Metal offload by default.
//!
//! Only std and fixed command lines here, so `scripts/check-macos` compiles this file on Linux.

use std::process::Command;

pub(super) const DEFAULT_GPU_LAYERS: u32 = 999;

/// The ONNX Runtime library's file name.
pub const ONNX_LIBRARY_NAME: &str = "libonnxruntime.dylib";

/// CoreAudio does not print probe failures: nothing to quiet.
pub fn quiet_audio_backend() {}

/// CoreAudio notices new devices by itself: nothing to reload.
pub fn reload_audio_config() {}

/// Charge in percent and whether it is charging, or `None` without a battery (a desktop Mac).
pub fn battery_state() -> Option<(u8, bool)> {
    let out = Command::new("pmset").args(["-g", "batt"]).output().ok()?;
    super::parse_pmset_battery(&String::from_utf8_lossy(&out.stdout))
}

/// `Roxy.app/Contents/Resources`, when it holds the espeak-ng-data that `scripts/bundle-macos`
/// copies there (the dylib's built-in path points into Homebrew, which another Mac lacks).
pub fn bundled_espeak_data_parent() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let resources = exe.parent()?.join("../Resources");
    resources.join("espeak-ng-data").is_dir().then_some(resources)
}

/// `open -a APP`: Launch Services finds the app by its name.
pub fn open_app_command(app: &str) -> Command {
    let mut c = Command::new("open");
    c.arg("-a").arg(app);
    c
}

/// `open URL`: the default browser.
pub fn open_url_command(url: &str) -> Command {
    let mut c = Command::new("open");
    c.arg(url);
    c
}

/// The cloud API key from the login keychain (service "roxy", account "cloud").
pub fn keychain_key() -> Option<String> {
    // A fixed command line; nothing from the user goes into it.
    let out = Command::new("security").args(["find-generic-password", "-s", "roxy", "-a", "cloud", "-w"]).output().ok()?;
    let key = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !key.is_empty()).then_some(key)
}

/// No `/proc` on macOS: the caller falls back to sysinfo (task_info).
pub fn process_rss_bytes(_pid: u32) -> Option<u64> {
    None
}
