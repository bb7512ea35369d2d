//! The real shell starts (tray, window, web view), its page calls the engine over IPC, and it
//! quits cleanly. On Linux it runs under Xvfb (`xvfb-run`, from `scripts/deps --app`).

use std::process::Command;

/// Runs the app for a few seconds with `config` as the user's config file; returns its log.
fn run_app(config: &str) -> String {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("config.toml"), config).unwrap();
    let app = env!("CARGO_BIN_EXE_roxy-app");
    let mut cmd = if cfg!(target_os = "linux") && std::env::var_os("DISPLAY").is_none() {
        let mut c = Command::new("xvfb-run");
        c.args(["-a", app]);
        c
    } else {
        Command::new(app)
    };
    let out = cmd
        .env("ROXY_APP_EXIT_AFTER_MS", "6000")
        .env("ROXY_LOG", "info")
        .env("ROXY_CONFIG", root.path().join("config.toml"))
        .env("ROXY_DATA_DIR", root.path().join("data"))
        .output()
        .unwrap_or_else(|e| panic!("could not start the app ({e}); on Linux install Xvfb: scripts/deps --app"));
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the app failed: {log}");
    log
}

// One test, two runs one after the other: single-instance would merge parallel runs.
#[test]
fn the_app_starts_serves_its_pages_registers_its_hotkey_and_quits() {
    let log = run_app("");
    assert!(log.contains("roxy-app started"), "{log}");
    assert!(log.contains("IPC doctor"), "the page never reached the engine over IPC: {log}");
    assert!(log.contains("IPC settings"), "the settings form never loaded: {log}");
    assert!(log.contains("hotkey registered") && log.contains("Alt+Space"), "the default hotkey was not registered: {log}");
    assert!(!log.contains("panicked"), "{log}");

    // A hotkey the system cannot parse is reported (the settings window shows it) and the app runs on.
    let log = run_app("[hotkey]\nshortcut = \"Alt+Nope\"\n");
    assert!(log.contains("roxy-app started"), "{log}");
    assert!(log.contains("\"Alt+Nope\" is not a shortcut the system understands"), "{log}");
    assert!(!log.contains("hotkey registered"), "{log}");
}
