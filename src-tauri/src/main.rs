//! Roxy's menu-bar shell: a tray icon and a window over the engine. Thin by design: every
//! command below calls into the `roxy` engine crate and returns its result.

use roxy::models::Manifest;
use roxy::paths::Paths;
use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager};

/// The engine's health report (models, memory, audio devices, ONNX Runtime) for the window.
#[tauri::command]
fn doctor() -> Result<roxy::doctor::Report, String> {
    let manifest = Manifest::from_env().map_err(|e| e.to_string())?;
    let report = roxy::doctor::run(&Paths::from_env(), &manifest);
    tracing::info!(checks = report.checks.len(), errors = report.has_errors(), "IPC doctor");
    Ok(report)
}

fn show_window(app: &AppHandle) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.show();
        let _ = window.set_focus();
    }
}

fn main() {
    let paths = Paths::from_env();
    let _log = roxy::logging::init(&paths.logs_dir, "info");
    tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![doctor])
        .setup(|app| {
            // A menu-bar app: no Dock icon, no app switcher entry.
            #[cfg(target_os = "macos")]
            app.set_activation_policy(tauri::ActivationPolicy::Accessory);

            let open = MenuItem::with_id(app, "open", "Open Roxy", true, None::<&str>)?;
            let quit = MenuItem::with_id(app, "quit", "Quit Roxy", true, Some("CmdOrCtrl+Q"))?;
            let menu = Menu::with_items(app, &[&open, &quit])?;
            TrayIconBuilder::with_id("roxy")
                .icon(app.default_window_icon().cloned().expect("icons are bundled by tauri.conf.json"))
                .tooltip("Roxy")
                .menu(&menu)
                .on_menu_event(|app, event| match event.id.as_ref() {
                    "open" => show_window(app),
                    "quit" => app.exit(0),
                    _ => {}
                })
                .build(app)?;

            // CI smoke test: start fully (tray, window, IPC), then quit on our own.
            if let Some(ms) = std::env::var("ROXY_APP_EXIT_AFTER_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
                show_window(app.handle());
                let handle = app.handle().clone();
                std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                    tracing::info!("ROXY_APP_EXIT_AFTER_MS elapsed; quitting");
                    handle.exit(0);
                });
            }
            tracing::info!("roxy-app started");
            Ok(())
        })
        .run(tauri::generate_context!())
        .unwrap_or_else(|e| {
            eprintln!("error: Roxy's window could not start: {e}. Fix: on Linux install webkit2gtk-4.1 and run inside a desktop session (or Xvfb)");
            std::process::exit(1);
        });
}
