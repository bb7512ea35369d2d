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
    crate::platform::quiet_audio_backend();
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
