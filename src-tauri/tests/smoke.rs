//! The real shell starts (tray, window, web view), its page calls the engine over IPC, its
//! engine loads and its live loop runs on a microphone, its local API answers, and it quits
//! cleanly. On Linux it runs under Xvfb (`xvfb-run`, from `scripts/deps --app`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

// Single-instance would merge parallel runs: the tests take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn app_command(root: &Path) -> Command {
    let app = env!("CARGO_BIN_EXE_roxy-app");
    let mut cmd = if cfg!(target_os = "linux") && std::env::var_os("DISPLAY").is_none() {
        let mut c = Command::new("xvfb-run");
        c.args(["-a", app]);
        c
    } else {
        Command::new(app)
    };
    // A private HOME: no ALSA config of the user's, no autostart entry written into theirs.
    cmd.env("HOME", root)
        .env("ROXY_LOG", "info")
        .env("ROXY_CONFIG", root.join("config.toml"))
        .env("ROXY_DATA_DIR", root.join("data"))
        .env_remove("ROXY_MODELS_DIR");
    cmd
}

/// Runs the app for a few seconds with `config` as the user's config file; returns its log.
fn run_app(config: &str) -> String {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("config.toml"), config).unwrap();
    let out = app_command(root.path())
        .env("ROXY_APP_EXIT_AFTER_MS", "6000")
        .output()
        .unwrap_or_else(|e| panic!("could not start the app ({e}); on Linux install Xvfb: scripts/deps --app"));
    let log = plain(&format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "the app failed: {log}");
    log
}

/// The log without its colours (tracing colours stderr even into a pipe).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A plain HTTP/1.0 GET on loopback: (status line, body).
fn get(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("the local API is not listening on {port}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

#[test]
fn the_app_starts_serves_its_pages_registers_its_hotkey_and_quits() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let log = run_app(&format!("[app]\napi_port = {port}\n"));
    assert!(log.contains("roxy-app started"), "{log}");
    assert!(log.contains("IPC doctor"), "the page never reached the engine over IPC: {log}");
    assert!(log.contains("IPC settings"), "the settings form never loaded: {log}");
    assert!(log.contains("hotkey registered") && log.contains(roxy::config::DEFAULT_HOTKEY), "the default hotkey was not registered: {log}");
    // No models in this data dir: the engine says so and how to fix it; the app runs on.
    assert!(log.contains("the voice engine could not load") && log.contains("Fix:"), "{log}");
    assert!(log.contains(&format!("local API listening on http://127.0.0.1:{port}")), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    // A hotkey the system cannot parse is reported (the settings window shows it), a taken API
    // port is logged, and the app runs on.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let log = run_app(&format!("[app]\napi_port = {port}\n\n[hotkey]\nshortcut = \"Alt+Nope\"\n"));
    assert!(log.contains("roxy-app started"), "{log}");
    assert!(log.contains("\"Alt+Nope\" is not a shortcut the system understands"), "{log}");
    assert!(!log.contains("hotkey registered"), "{log}");
    assert!(log.contains("the local API could not start") && log.contains(&format!("port {port}")), "{log}");
    assert!(log.contains("quitting") && !log.contains("panicked"), "{log}");
}

/// With the installed models and an ALSA "microphone" that gives silence (`type null`): the
/// engine loads, "Listen Now" (the menu's path, via `ROXY_APP_LISTEN_ONCE_THEN_QUIT`) makes the
/// loop listen, the silence times out back to idle (8 s of stream time), "Quit" stops the loop,
/// which saves the live statistics; meanwhile the local API answers on `app.api_port` and reports
/// the figures the engine recorded (one registry).
#[test]
fn the_live_loop_listens_on_listen_now_times_out_to_idle_and_the_api_answers() {
    let models = std::env::var_os("ROXY_MODELS_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.roxy/models"));
    if !models.join("vad").exists() {
        eprintln!("SKIPPED: no models in {} (install them: roxy models fetch; or set ROXY_MODELS_DIR)", models.display());
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join(".asoundrc"), "pcm.!default { type null }\n").unwrap();
    let port = free_port();
    std::fs::write(root.path().join("config.toml"), format!("[app]\napi_port = {port}\n")).unwrap();
    let started = Instant::now();
    let mut child = app_command(root.path())
        .env("ROXY_MODELS_DIR", &models)
        .env("ROXY_APP_LISTEN_ONCE_THEN_QUIT", "1")
        // A safety net: the hook quits long before this.
        .env("ROXY_APP_EXIT_AFTER_MS", "100000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start the app ({e}); on Linux install Xvfb: scripts/deps --app"));
    let (tx, lines) = mpsc::channel::<String>();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    let readers = [
        std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l)))),
        std::thread::spawn(move || BufReader::new(err).lines().map_while(Result::ok).for_each(|l| drop(tx2.send(l)))),
    ];
    let mut log = Vec::new();
    let mut api = None;
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(120)) {
        let line = plain(&line);
        // Once listening has started the engine has loaded (and recorded its load times).
        if api.is_none() && line.contains(r#"live event {"event":"state","state":"listening"}"#) {
            api = Some((get(port, "/health"), get(port, "/metrics/latency")));
        }
        log.push(line);
    }
    let status = child.wait().unwrap();
    readers.into_iter().for_each(|r| drop(r.join()));
    let log = log.join("\n");
    let elapsed = started.elapsed();
    eprintln!("the live run took {:.1} s", elapsed.as_secs_f64());
    assert!(status.success(), "the app failed: {log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("engine loaded"), "{log}");
    let at = |needle: &str, from: usize| log[from..].find(needle).map(|i| i + from).unwrap_or_else(|| panic!("no {needle:?} after byte {from} in the log: {log}"));
    let ready = at(r#"live event {"event":"ready""#, 0);
    let listen = at("action action=ListenNow", ready);
    let listening = at(r#"live event {"event":"state","state":"listening"}"#, listen);
    let tray_listening = at("state=Listening", listening);
    let idle = at(r#"live event {"event":"state","state":"idle"}"#, listening);
    at("state=Idle", idle);
    at("quitting", idle);
    assert!(tray_listening > listening);
    assert!(log.contains("voice loop stopped"), "the loop did not stop on Quit: {log}");

    let ((health_status, health), (latency_status, latency)) = api.unwrap_or_else(|| panic!("the loop never listened: {log}"));
    assert!(health_status.contains("200"), "{health_status} {health}");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert!(latency_status.contains("200") && latency.contains("model_load"), "the API does not see the engine's figures: {latency_status} {latency}");

    // Quit saved the live registry where the settings window (and `roxy stats`) read it.
    let saved = std::fs::read_to_string(root.path().join("data/stats.json")).unwrap_or_else(|e| panic!("no saved statistics ({e}): {log}"));
    assert!(saved.contains("model_load"), "{saved}");
    assert!(elapsed < Duration::from_secs(110), "took {elapsed:?}");
}
