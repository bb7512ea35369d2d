//! Roxy's menu-bar shell: a tray icon, the settings window and the panel over the engine. Thin
//! by design: every command below calls into the `roxy` engine crate and returns its result.

mod engine;
mod hotkey;
mod platform;
mod tray;

use engine::{Action, StateEvent};
use roxy::config::{Config, ConfigError};
use roxy::models::{FetchEvent, FetchOptions, FileReport, Manifest, OnProgress};
use roxy::paths::Paths;
use roxy::presets::{MemoryInfo, MemoryMode, PresetChoice, Tier};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tauri::{AppHandle, Emitter, Manager, State, WindowEvent};

/// The shell's own state; the engine's lives in the engine.
pub struct Shell {
    paths: Paths,
    loop_state: Mutex<StateEvent>,
    /// From the last tray event: where the panel goes.
    tray_rect: Mutex<Option<tauri::Rect>>,
    /// The registered hotkey and the last registration error.
    hotkey: Mutex<(Option<tauri_plugin_global_shortcut::Shortcut>, Option<String>)>,
}

/// The engine's health report (models, memory, audio devices, ONNX Runtime) for the window.
#[tauri::command]
async fn doctor(shell: State<'_, Shell>) -> Result<roxy::doctor::Report, String> {
    let paths = shell.paths.clone();
    let report = tauri::async_runtime::spawn_blocking(move || {
        let manifest = Manifest::from_env().map_err(|e| e.to_string())?;
        Ok::<_, String>(roxy::doctor::run(&paths, &manifest))
    })
    .await
    .map_err(|e| e.to_string())??;
    tracing::info!(checks = report.checks.len(), errors = report.has_errors(), "IPC doctor");
    Ok(report)
}

/// Everything the settings form needs: the effective config and what each preset gives.
#[derive(Serialize)]
struct SettingsView {
    path: std::path::PathBuf,
    file_found: bool,
    /// The file could not be used; the form shows the auto preset and saving replaces the file.
    load_error: Option<String>,
    detected: Tier,
    memory: MemoryInfo,
    config: Config,
    presets: BTreeMap<&'static str, Config>,
    hotkey_error: Option<String>,
}

#[tauri::command]
fn settings(shell: State<'_, Shell>) -> SettingsView {
    let memory = MemoryInfo::detect();
    let (config, file_found, load_error) = match Config::load(&shell.paths.config_file, memory) {
        Ok(l) => (l.config, l.file_found, None),
        Err(e) => (Config::preset_base(PresetChoice::Auto, memory), true, Some(e.to_string())),
    };
    let presets = [("auto", PresetChoice::Auto), ("8gb", PresetChoice::Gb8), ("32gb", PresetChoice::Gb32), ("custom", PresetChoice::Custom)]
        .map(|(name, p)| (name, Config::preset_base(p, memory)))
        .into();
    let hotkey_error = shell.hotkey.lock().unwrap_or_else(|e| e.into_inner()).1.clone();
    tracing::info!(load_error = load_error.is_some(), "IPC settings");
    SettingsView { path: shell.paths.config_file.clone(), file_found, load_error, detected: Tier::for_total_memory(memory.total), memory, config, presets, hotkey_error }
}

/// A save that failed, with the config key to point at when there is one.
#[derive(Serialize)]
struct SaveError {
    key: Option<String>,
    message: String,
}

/// Validates and saves the settings, then applies the hotkey and launch at login. The hotkey is
/// registered before writing, so a taken shortcut is reported and nothing is saved.
#[tauri::command]
fn save_settings(app: AppHandle, shell: State<'_, Shell>, config: serde_json::Value) -> Result<(), SaveError> {
    let config: Config = serde_json::from_value(config).map_err(|e| SaveError { key: None, message: format!("the settings are malformed: {e}") })?;
    let path = &shell.paths.config_file;
    config.validate(path).map_err(config_error)?;
    hotkey::apply(&app, &config.hotkey.shortcut).map_err(|message| SaveError { key: Some("hotkey.shortcut".into()), message })?;
    app.state::<engine::Live>().set_hotkey_mode(config.hotkey.mode);
    hotkey::apply_autostart(&app, config.app.launch_at_login).map_err(|message| SaveError { key: Some("app.launch_at_login".into()), message })?;
    config.save_user_file(path, MemoryInfo::detect()).map_err(config_error)?;
    tracing::info!(path = %path.display(), "settings saved");
    Ok(())
}

fn config_error(e: ConfigError) -> SaveError {
    let key = match &e {
        ConfigError::Value { key, .. } => Some(key.to_string()),
        _ => None,
    };
    SaveError { key, message: e.to_string() }
}

/// One manifest model and the check of each of its files.
#[derive(Serialize)]
struct ModelView {
    id: String,
    role: String,
    tiers: Vec<String>,
    description: String,
    files: Vec<FileReport>,
}

/// Installed / missing / corrupt per model (hashes every installed file, so off the main thread).
#[tauri::command]
async fn models(shell: State<'_, Shell>) -> Result<Vec<ModelView>, String> {
    let dir = shell.paths.models_dir.clone();
    tauri::async_runtime::spawn_blocking(move || {
        let manifest = Manifest::from_env().map_err(|e| e.to_string())?;
        let platform = roxy::models::current_platform();
        Ok(manifest
            .for_platform(&platform)
            .map(|m| ModelView { id: m.id.clone(), role: m.role.clone(), tiers: m.tiers.clone(), description: m.description.clone(), files: roxy::models::check_model(m, &dir) })
            .collect())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Model download events (`roxy::models::FetchEvent`), shared with `ui/`.
const MODELS_PROGRESS_EVENT: &str = "roxy://models-progress";

/// The cancel flag of the model download in progress, if one is.
#[derive(Default)]
struct Downloads(Mutex<Option<Arc<AtomicBool>>>);

/// Installs `tier`'s models (only `models` of it when given) on a blocking thread, emitting
/// `roxy://models-progress`: progress events, then one done / error / cancelled, also returned.
#[tauri::command]
async fn download_models(app: AppHandle, shell: State<'_, Shell>, downloads: State<'_, Downloads>, tier: String, models: Option<Vec<String>>) -> Result<FetchEvent, String> {
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let mut current = downloads.0.lock().unwrap_or_else(|e| e.into_inner());
        if current.is_some() {
            return Err("a download is already running".into());
        }
        *current = Some(cancel.clone());
    }
    let (paths, emitter) = (shell.paths.clone(), app.clone());
    let mut opts = FetchOptions { progress: false, models: models.unwrap_or_default(), cancel: Some(cancel), ..FetchOptions::new(&tier) };
    opts.on_progress = Some(OnProgress(Arc::new(move |p| drop(emitter.emit(MODELS_PROGRESS_EVENT, FetchEvent::Progress(p))))));
    let done = tauri::async_runtime::spawn_blocking(move || match Manifest::from_env() {
        Ok(manifest) => FetchEvent::finished(roxy::models::fetch_tier(&manifest, &paths.models_dir, &paths.cache_dir, &opts)),
        Err(e) => FetchEvent::Error { message: e.to_string() },
    })
    .await
    .unwrap_or_else(|e| FetchEvent::Error { message: e.to_string() });
    *downloads.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    tracing::info!(%tier, ?done, "IPC download_models");
    let _ = app.emit(MODELS_PROGRESS_EVENT, &done);
    Ok(done)
}

/// Asks the download in progress to stop (it keeps its bytes and resumes next time). Returns
/// whether there was one.
#[tauri::command]
fn cancel_download(downloads: State<'_, Downloads>) -> bool {
    let current = downloads.0.lock().unwrap_or_else(|e| e.into_inner());
    current.as_ref().inspect(|c| c.store(true, Ordering::Relaxed)).is_some()
}

#[derive(Serialize)]
struct Unloaded {
    /// The worker's resident memory just before it stopped; `None` when it was not running.
    freed_bytes: Option<u64>,
}

/// Stops the LLM worker now, freeing its model; the next question loads it again.
#[tauri::command]
fn unload_models(live: State<'_, engine::Live>) -> Result<Unloaded, String> {
    let brain = live.brain().ok_or("the voice engine has not loaded yet (or could not load), so there is no model to unload")?;
    let freed_bytes = brain.unload_llm();
    tracing::info!(?freed_bytes, "IPC unload_models");
    Ok(Unloaded { freed_bytes })
}

/// Timing statistics and memory for the statistics pane.
#[derive(Serialize)]
struct StatsView {
    stages: Vec<roxy::metrics::StageStats>,
    /// Where the figures come from, and why there are none when there are none.
    source: std::path::PathBuf,
    note: Option<String>,
    rss_bytes: Option<u64>,
    memory: MemoryInfo,
    mode: MemoryMode,
    /// Cache hit rates, once the engine has loaded.
    caches: Vec<roxy::brain::CacheRate>,
}

/// The live registry the engine and the local API record into, once it holds a turn (loading
/// the models alone does not count); before that (or when the engine could not load), the figures last saved by this app or by
/// a `roxy run` in a terminal.
#[tauri::command]
fn stats(shell: State<'_, Shell>, live: State<'_, engine::Live>) -> Result<StatsView, String> {
    let source = roxy::metrics::stats_file(&shell.paths.data_dir);
    let live_stages = live.loaded.load(std::sync::atomic::Ordering::Relaxed).then(|| live.metrics.snapshot()).filter(|s| s.iter().any(|s| s.count > 0 && s.stage != roxy::metrics::Stage::ModelLoad));
    let (stages, note) = match live_stages {
        Some(stages) => (stages, Some(format!("Live figures from this session (saved to {} when Roxy quits); refreshed every 2 s. Times in ms.", source.display()))),
        None => match roxy::metrics::load(&source) {
            Ok(s) => (s, Some(format!("No turns in this session yet: these are the figures last saved to {}. Times in ms.", source.display()))),
            Err(e @ roxy::metrics::StatsFileError::Missing(_)) => (Vec::new(), Some(e.to_string())),
            Err(e) => return Err(e.to_string()),
        },
    };
    let memory = MemoryInfo::detect();
    let caches = live.brain().map(|b| b.cache_rates()).unwrap_or_default();
    Ok(StatsView { stages, source, note, rss_bytes: roxy::llm::rss_bytes(std::process::id()), memory, mode: MemoryMode::for_available_memory(memory.available), caches })
}

/// The loop's current state, for a panel that just opened (later changes come as events).
#[tauri::command]
fn loop_state(shell: State<'_, Shell>) -> StateEvent {
    shell.loop_state.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The panel's buttons.
#[tauri::command]
fn perform(app: AppHandle, action: Action) {
    engine::dispatch(&app, action);
}

fn main() {
    let paths = Paths::from_env();
    let _log = roxy::logging::init(&paths.logs_dir, "info");
    let idle = StateEvent::idle();
    tauri::Builder::default()
        // First, so a second launch only brings the first one's settings forward.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| tray::show(app, "main")))
        .plugin(hotkey::plugin())
        .plugin(tauri_plugin_autostart::init(tauri_plugin_autostart::MacosLauncher::LaunchAgent, None))
        .manage(engine::Live::new())
        .manage(Downloads::default())
        .manage(Shell { paths: paths.clone(), loop_state: Mutex::new(idle), tray_rect: Mutex::new(None), hotkey: Mutex::new((None, None)) })
        .invoke_handler(tauri::generate_handler![doctor, settings, save_settings, models, stats, loop_state, perform, download_models, cancel_download, unload_models])
        .setup(move |app| {
            platform::menu_bar_only(app);
            tray::build(app)?;
            // The local API and the voice engine (loading on a thread of its own).
            engine::start(app.handle(), paths.clone());

            // A broken config must not stop the app: the settings window shows the error.
            match Config::load(&paths.config_file, MemoryInfo::detect()) {
                Ok(loaded) => {
                    let _ = hotkey::apply(app.handle(), &loaded.config.hotkey.shortcut);
                    if let Err(e) = hotkey::apply_autostart(app.handle(), loaded.config.app.launch_at_login) {
                        tracing::warn!("{e}");
                    }
                }
                Err(e) => tracing::warn!("config not applied: {e}"),
            }

            // CI smoke test: start fully (tray, windows, IPC), then quit on our own.
            if let Some(ms) = std::env::var("ROXY_APP_EXIT_AFTER_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
                tray::show(app.handle(), "main");
                tray::show_panel(app.handle());
                let handle = app.handle().clone();
                std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                    tracing::info!("ROXY_APP_EXIT_AFTER_MS elapsed; quitting");
                    engine::quit(&handle);
                });
            }
            tracing::info!("roxy-app started");
            Ok(())
        })
        .on_window_event(|window, event| match event {
            // Closing a window hides it: the app lives in the tray until Quit.
            WindowEvent::CloseRequested { api, .. } => {
                api.prevent_close();
                let _ = window.hide();
            }
            // The panel behaves like a menu: it goes away when focus leaves it.
            WindowEvent::Focused(false) if window.label() == "panel" && std::env::var_os("ROXY_APP_EXIT_AFTER_MS").is_none() => {
                let _ = window.hide();
            }
            _ => {}
        })
        .run(tauri::generate_context!())
        .unwrap_or_else(|e| {
            eprintln!("error: Roxy's window could not start: {e}. Fix: on Linux install webkit2gtk-4.1 and run inside a desktop session (or Xvfb)");
            std::process::exit(1);
        });
}
