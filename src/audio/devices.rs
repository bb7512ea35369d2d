//! What audio devices this machine has, for `roxy doctor` and the settings window.

use cpal::traits::{DeviceTrait, HostTrait};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    pub name: String,
    pub is_default: bool,
    /// Native format of the default config, e.g. "48000 Hz, 2 ch, f32".
    pub format: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Devices {
    pub host: String,
    pub inputs: Vec<DeviceInfo>,
    pub outputs: Vec<DeviceInfo>,
}

/// Lists input and output devices. Never fails: a machine without sound hardware has none.
pub fn list() -> Devices {
    #[cfg(target_os = "linux")]
    quiet_alsa();
    let host = cpal::default_host();
    let default_in = host.default_input_device().and_then(|d| d.name().ok());
    let default_out = host.default_output_device().and_then(|d| d.name().ok());
    let describe = |d: &cpal::Device, input: bool, default: &Option<String>| {
        let name = d.name().unwrap_or_else(|_| "(unnamed)".into());
        let config = if input { d.default_input_config() } else { d.default_output_config() };
        DeviceInfo {
            is_default: default.as_deref() == Some(name.as_str()),
            format: config.ok().map(|c| format!("{} Hz, {} ch, {}", c.sample_rate().0, c.channels(), c.sample_format())),
            name,
        }
    };
    let inputs = host
        .input_devices()
        .map(|it| it.map(|d| describe(&d, true, &default_in)).filter(|d| d.format.is_some()).collect())
        .unwrap_or_default();
    let outputs = host
        .output_devices()
        .map(|it| it.map(|d| describe(&d, false, &default_out)).filter(|d| d.format.is_some()).collect())
        .unwrap_or_default();
    Devices { host: host.id().name().to_string(), inputs, outputs }
}

/// ALSA prints a line to stderr for every PCM plugin it probes and cannot open (pulse, jack,
/// oss…): dozens on a machine without sound hardware, burying Roxy's own output. Send them to
/// the debug log instead.
#[cfg(target_os = "linux")]
pub(crate) fn quiet_alsa() {
    alsa_quiet::install();
}

/// ALSA reads its configuration (`/etc/asound.conf`, `~/.asoundrc`) once per process and only
/// notices changes to the top-level `alsa.conf`, so a device defined or fixed in `~/.asoundrc`
/// after start-up (a USB/Bluetooth mic plugged in, PulseAudio/PipeWire starting) would never be
/// seen. Dropping the cached tree makes the next open read the files again. Streams already
/// open keep their own reference (alsa-lib refcounts the tree since 1.1.2), so this is safe
/// while playback runs; it is only called before retrying a device that is not there.
#[cfg(target_os = "linux")]
pub(crate) fn reload_alsa_config() {
    // SAFETY: no arguments; alsa-lib serialises config updates under its own lock.
    unsafe { alsa_sys::snd_config_update_free_global() };
}

#[cfg(target_os = "linux")]
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
