//! Linux: ALSA's chatter and config reloads, `/sys` battery, `xdg-open`, `/proc` memory.

use std::process::Command;

pub(super) const DEFAULT_GPU_LAYERS: u32 = 0;

/// The ONNX Runtime library's file name.
pub const ONNX_LIBRARY_NAME: &str = "libonnxruntime.so";

/// ALSA prints a line to stderr for every PCM plugin it probes and cannot open (pulse, jack,
/// oss…): dozens on a machine without sound hardware, burying Roxy's own output. Send them to
/// the debug log instead. Called before any audio device is opened.
pub fn quiet_audio_backend() {
    alsa_quiet::install();
}

/// ALSA reads its configuration (`/etc/asound.conf`, `~/.asoundrc`) once per process and only
/// notices changes to the top-level `alsa.conf`, so a device defined or fixed in `~/.asoundrc`
/// after start-up (a USB/Bluetooth mic plugged in, PulseAudio/PipeWire starting) would never be
/// seen. Dropping the cached tree makes the next open read the files again. Streams already
/// open keep their own reference (alsa-lib refcounts the tree since 1.1.2), so this is safe
/// while playback runs; it is only called before retrying a device that is not there.
pub fn reload_audio_config() {
    // SAFETY: no arguments; alsa-lib serialises config updates under its own lock.
    unsafe { alsa_sys::snd_config_update_free_global() };
}

/// Charge in percent and whether it is charging, or `None` without a battery.
pub fn battery_state() -> Option<(u8, bool)> {
    let dir = std::fs::read_dir("/sys/class/power_supply").ok()?;
    for entry in dir.flatten() {
        let path = entry.path();
        let read = |name: &str| std::fs::read_to_string(path.join(name)).map(|s| s.trim().to_string()).ok();
        if read("type").as_deref() == Some("Battery") {
            let percent = read("capacity")?.parse().ok()?;
            return Some((percent, read("status").as_deref() == Some("Charging")));
        }
    }
    None
}

/// espeak-ng's data comes from the system package: no bundled copy.
pub fn bundled_espeak_data_parent() -> Option<std::path::PathBuf> {
    None
}

/// The command that starts an app by name (its lower-cased executable on Linux).
pub fn open_app_command(app: &str) -> Command {
    Command::new(app.to_lowercase())
}

/// The command that opens a URL in the default browser.
pub fn open_url_command(url: &str) -> Command {
    let mut c = Command::new("xdg-open");
    c.arg(url);
    c
}

/// The cloud API key from the OS's secret store: none on Linux (use the config or the
/// environment).
pub fn keychain_key() -> Option<String> {
    None
}

/// Resident memory of another process in bytes, cheaper than a sysinfo refresh.
pub fn process_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

mod alsa_quiet {
    use std::ffi::CStr;
    use std::os::raw::{c_char, c_int};

    /// ALSA declares the handler variadic; the format arguments are ignored, so a handler with
    /// only the named parameters is called correctly on every Linux ABI Roxy builds for.
    unsafe extern "C" fn to_log(file: *const c_char, line: c_int, function: *const c_char, err: c_int, fmt: *const c_char) {
        let text = |p: *const c_char| if p.is_null() { String::new() } else { unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned() };
        tracing::debug!(target: "alsa", "{}:{} {}: {} (err {err})", text(file), line, text(function), text(fmt));
    }

    pub fn install() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let handler: unsafe extern "C" fn(*const c_char, c_int, *const c_char, c_int, *const c_char) = to_log;
            // SAFETY: see `to_log`; the transmute only adds the variadic tail to the type.
            type Variadic = unsafe extern "C" fn(*const c_char, c_int, *const c_char, c_int, *const c_char, ...);
            type Named = unsafe extern "C" fn(*const c_char, c_int, *const c_char, c_int, *const c_char);
            unsafe { alsa_sys::snd_lib_error_set_handler(Some(std::mem::transmute::<Named, Variadic>(handler))) };
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\troxy-llm\nVmPeak:\t  300000 kB\nVmRSS:\t  123456 kB\nThreads:\t3\n";
        assert_eq!(super::parse_vm_rss(status), Some(123456 * 1024));
        assert_eq!(super::parse_vm_rss("Name:\tx\n"), None);
    }
}
