//! Live capture through the real cpal/ALSA stack. There is no sound card here, so the tests
//! point ALSA's default PCM at its `null` plugin (a device that records exact zeros) through a
//! private `~/.asoundrc` — the same path a muted or permission-blocked Mac microphone takes.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::{Command, Output};

fn roxy(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roxy"))
        .args(args)
        .env("HOME", home)
        .env("ROXY_DATA_DIR", home.join("data"))
        .env("ROXY_CONFIG", home.join("config.toml"))
        .env_remove("ROXY_LOG")
        .output()
        .unwrap()
}

fn said(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_silent_microphone_is_opened_resampled_and_reported_as_silent() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".asoundrc"), "pcm.!default {\n  type null\n}\n").unwrap();
    let saved = home.path().join("capture.wav");
    let out = roxy(home.path(), &["mic", "--seconds", "2.5", "--json", "--save", saved.to_str().unwrap()]);
    assert!(out.status.success(), "{}", said(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["device"]["device"], "default", "{report}");
    assert!(report["device"]["sample_rate"].as_u64().unwrap() >= 8000, "{report}");
    assert!(report["samples_16k"].as_u64().unwrap() >= 16000, "audio arrived: {report}");
    assert_eq!(report["silent"], true, "{report}");
    assert!(report["hint"].as_str().unwrap().contains("Privacy & Security"), "{report}");

    let wav = hound::WavReader::open(&saved).unwrap();
    assert_eq!(wav.spec().sample_rate, 16000);
    assert_eq!(wav.spec().channels, 1);
    assert_eq!(wav.len() as u64, report["samples_16k"].as_u64().unwrap());
}

#[test]
fn a_missing_microphone_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let out = roxy(home.path(), &["mic", "--seconds", "0.5", "--device", "Imaginary USB Mic"]);
    assert!(!out.status.success());
    let text = said(&out);
    assert!(text.contains("no microphone found named \"Imaginary USB Mic\"") && text.contains("Fix:"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn live_listening_reports_a_silent_microphone_and_stops_on_time() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".asoundrc"), "pcm.!default {\n  type null\n}\n").unwrap();
    let models = std::env::var_os("ROXY_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".roxy/models"));
    let out = Command::new(env!("CARGO_BIN_EXE_roxy"))
        .args(["listen", "--seconds", "3", "--json", "--no-stt"])
        .env("HOME", home.path())
        .env("ROXY_MODELS_DIR", models)
        .env("ROXY_DATA_DIR", home.path().join("data"))
        .env("ROXY_CONFIG", home.path().join("config.toml"))
        .env_remove("ROXY_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", said(&out));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.first().map(|e| e["event"].clone()), Some("started".into()), "{events:?}");
    assert!(events.iter().any(|e| e["event"] == "silent_input"), "zeros are reported: {events:?}");
    assert!(!events.iter().any(|e| e["event"] == "wake" || e["event"] == "utterance"), "silence triggers nothing: {events:?}");
}

fn models_dir() -> std::path::PathBuf {
    std::env::var_os("ROXY_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".roxy/models"))
}

/// A default PCM that names a sound card this machine does not have: what ALSA sees when the
/// USB microphone is unplugged.
const NO_CARD: &str = "pcm.!default {\n  type hw\n  card 7\n}\n";
const NULL_MIC: &str = "pcm.!default {\n  type null\n}\n";

#[test]
fn no_microphone_at_all_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".asoundrc"), NO_CARD).unwrap();
    let out = roxy(home.path(), &["mic", "--seconds", "0.5"]);
    assert!(!out.status.success());
    let text = said(&out);
    assert!(text.contains("no microphone found") && text.contains("Fix:"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn capture_starts_when_a_missing_microphone_appears() {
    use std::io::BufRead;
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".asoundrc"), NO_CARD).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_roxy"))
        .args(["listen", "--wait-for-device", "--seconds", "20", "--json", "--no-stt"])
        .env("HOME", home.path())
        .env("ROXY_MODELS_DIR", models_dir())
        .env("ROXY_DATA_DIR", home.path().join("data"))
        .env("ROXY_CONFIG", home.path().join("config.toml"))
        .env_remove("ROXY_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || -> serde_json::Value {
        let line = lines.next().expect("roxy listen ended early").unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    // No device: said at once, and the process keeps waiting.
    let first = next();
    assert_eq!(first["event"], "device_lost", "{first}");
    assert!(first["message"].as_str().unwrap().contains("no microphone found"), "{first}");
    // The device appears (ALSA's config names a working PCM): capture starts within the retry
    // interval, and audio flows (the null device's zeros are reported as silent input, which
    // needs 2 s of delivered samples).
    let plugged = std::time::Instant::now();
    std::fs::write(home.path().join(".asoundrc"), NULL_MIC).unwrap();
    let started = next();
    let start_s = plugged.elapsed().as_secs_f32();
    assert_eq!(started["event"], "started", "{started}");
    assert_eq!(started["device"]["device"], "default", "{started}");
    assert!(started["device"]["sample_rate"].as_u64().unwrap() >= 8000, "{started}");
    let silent = next();
    assert_eq!(silent["event"], "silent_input", "audio arrived after the reopen: {silent}");
    println!("device back → capture started after {start_s:.2} s, then {silent}");
    assert!(start_s < 5.0, "reopened only after {start_s:.1} s");
    let _ = child.kill();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{status}: {stderr}");
}
