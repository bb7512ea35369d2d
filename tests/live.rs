//! `roxy run` live, on ALSA's `null` device (a private ~/.asoundrc): the real capture path and
//! the coordinator, driven from stdin as the hotkey would be. With no sound card at all, a clear
//! error. (A null device gives silence, so answering speech is tested on files in voice_loop.rs.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn models_dir() -> PathBuf {
    std::env::var_os("ROXY_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".roxy/models"))
}

fn roxy(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_roxy"));
    c.args(args)
        .env("HOME", home)
        .env("ROXY_DATA_DIR", home.join("data"))
        .env("ROXY_CONFIG", home.join("config.toml"))
        .env("ROXY_MODELS_DIR", models_dir())
        .env_remove("ROXY_LOG");
    c
}

#[test]
fn the_hotkey_starts_listening_and_silence_times_out() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".asoundrc"), "pcm.!default {\n  type null\n}\n").unwrap();
    let out = home.path().join("said.wav");
    let mut child = roxy(home.path(), &["run", "--seconds", "12", "--output", out.to_str().unwrap(), "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        // After the models load (a few seconds), press "Enter" like the hotkey.
        std::thread::sleep(Duration::from_secs(1));
        let _ = stdin.write_all(b"\n");
        std::thread::sleep(Duration::from_secs(60));
    });
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let events: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("one JSON event per line")).collect();
    let states: Vec<&str> = events.iter().filter(|e| e["event"] == "state").filter_map(|e| e["state"].as_str()).collect();
    assert_eq!(states, ["idle", "listening", "idle"], "Enter → listening → nothing said → idle: {stdout}");
    assert!(events.iter().any(|e| e["event"] == "ready"), "{stdout}");
    // The null device delivers only zeros: the user is told, as a muted Mac would be.
    assert!(events.iter().any(|e| e["event"] == "mic" && e["problem"].as_str().unwrap().contains("only silence")), "{stdout}");
    // The earcon was played when listening began (into the WAV sink standing in for the speaker).
    let reader = hound::WavReader::open(&out).unwrap();
    let seconds = reader.duration() as f64 / reader.spec().sample_rate as f64;
    assert!((0.1..0.5).contains(&seconds), "the earcon, about 0.2 s: {seconds}");
}

#[test]
fn no_microphone_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".asoundrc"), "pcm.!default {\n  type hw\n  card 7\n}\n").unwrap();
    let output = roxy(home.path(), &["run", "--seconds", "2", "--output", home.path().join("x.wav").to_str().unwrap()]).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("microphone") && said.contains("Fix:") && !said.contains("panicked"), "{said}");
}
