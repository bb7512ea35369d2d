//! The real shell starts (tray, window, web view), its page calls the engine over IPC, and it
//! quits cleanly. On Linux it runs under Xvfb (`xvfb-run`, from `scripts/deps --app`).

use std::process::Command;

#[test]
fn the_app_starts_serves_its_page_and_quits() {
    let root = tempfile::tempdir().unwrap();
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
    assert!(log.contains("roxy-app started"), "{log}");
    assert!(log.contains("IPC doctor"), "the page never reached the engine over IPC: {log}");
}
