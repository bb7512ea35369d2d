//! `roxy doctor`: every precondition of the voice loop, each problem with its fix.

use crate::config::Config;
use crate::models::{self, FileStatus, Manifest};
use crate::paths::Paths;
use crate::presets::{MemoryInfo, MemoryMode, Tier};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub level: Level,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(name: impl Into<String>, level: Level, detail: impl Into<String>, fix: Option<String>) -> Check {
        Check { name: name.into(), level, detail: detail.into(), fix }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub platform: String,
    pub memory: MemoryInfo,
    pub tier: Option<Tier>,
    pub mode: MemoryMode,
    pub paths: Paths,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.checks.iter().any(|c| c.level == Level::Error)
    }
}

/// Roles the voice loop needs, with the config field that chooses the model.
fn roles(config: &Config) -> Vec<(&'static str, String)> {
    vec![
        ("llm", config.llm.model.clone()),
        ("stt", config.stt.model.clone()),
        ("tts", config.tts.voice.clone()),
        ("vad", "silero-vad".into()),
        ("wake-features", "openwakeword-features".into()),
        ("wake", config.wake.model.clone()),
        ("embed", "minilm-l6-v2-int8".into()),
        ("runtime", "onnxruntime".into()),
    ]
}

pub fn run(paths: &Paths, manifest: &Manifest) -> Report {
    let memory = MemoryInfo::detect();
    let mode = MemoryMode::for_available_memory(memory.available);
    let mut checks = Vec::new();

    let (config, tier) = match Config::load(&paths.config_file, memory) {
        Ok(loaded) => {
            let origin = if loaded.file_found { paths.config_file.display().to_string() } else { "defaults (no config file yet)".into() };
            let preset = loaded.tier.map_or("custom".to_string(), |t| t.manifest_tier().to_string());
            checks.push(Check::new("config", Level::Ok, format!("{origin}; preset {preset}"), None));
            (loaded.config, loaded.tier)
        }
        Err(e) => {
            checks.push(Check::new("config", Level::Error, e.to_string(), Some(format!("edit or remove {}", paths.config_file.display()))));
            (Config::default(), None)
        }
    };
    checks.push(Check::new(
        "memory",
        if mode == MemoryMode::Full { Level::Ok } else { Level::Warn },
        format!("{:.1} GiB total, {:.1} GiB available → mode {:?}", gib(memory.total), gib(memory.available), mode),
        (mode != MemoryMode::Full).then(|| "close memory-hungry apps; Roxy trims the LLM context (LITE) or answers from skills only (MINIMAL) until memory frees up".to_string()),
    ));

    let tier_hint = tier.map_or("default", Tier::manifest_tier);
    for (role, wanted) in roles(&config) {
        let check = match models::resolve(manifest, &paths.models_dir, role, &wanted) {
            None => Check::new(
                format!("model:{role}"),
                Level::Error,
                format!("no {role} model installed (wanted {wanted})"),
                Some("roxy models fetch --tier default".into()),
            ),
            Some(found) => {
                let model = manifest.find(&found.id, &models::current_platform()).expect("resolved from the manifest");
                let reports = models::check_model(model, &paths.models_dir);
                let bad: Vec<String> = reports.iter().filter(|r| !r.is_ok()).map(|r| r.describe("default")).collect();
                let worst = reports.iter().map(|r| &r.status).fold(Level::Ok, |acc, s| match s {
                    FileStatus::Ok => acc,
                    FileStatus::Unverified if acc == Level::Ok => Level::Warn,
                    FileStatus::Unverified => acc,
                    _ => Level::Error,
                });
                let mut detail = format!("{} ({} file(s) verified)", found.id, reports.iter().filter(|r| r.is_ok()).count());
                let mut fix = (!bad.is_empty()).then(|| bad.join("; "));
                let mut level = worst;
                if let Some(wanted) = &found.fallback_from {
                    detail.push_str(&format!(", standing in for {wanted} which is not installed"));
                    if level == Level::Ok {
                        level = Level::Warn;
                        fix = Some(format!("roxy models fetch --tier {tier_hint}"));
                    }
                }
                Check::new(format!("model:{role}"), level, detail, fix)
            }
        };
        checks.push(check);
    }

    checks.push(match crate::onnx::ensure_runtime(&paths.models_dir) {
        Ok(path) => Check::new("onnx-runtime", Level::Ok, format!("loaded {}", path.display()), None),
        Err(e) => Check::new("onnx-runtime", Level::Error, e.to_string(), Some("roxy models fetch --tier default".into())),
    });

    checks.push(llm_worker_check());
    checks.push(memory_store_check(paths));

    let devices = crate::audio::devices::list();
    let default_in = devices.inputs.iter().find(|d| d.is_default).or(devices.inputs.first());
    checks.push(match default_in {
        Some(d) => Check::new("microphone", Level::Ok, format!("{} ({})", d.name, d.format.as_deref().unwrap_or("?")), None),
        None => Check::new(
            "microphone",
            Level::Warn,
            format!("no input device on host {}", devices.host),
            Some("connect a microphone (and on macOS allow Roxy in System Settings → Privacy & Security → Microphone); file input (`--input FILE.wav`) works without one".into()),
        ),
    });
    checks.push(match devices.outputs.iter().find(|d| d.is_default).or(devices.outputs.first()) {
        Some(d) => Check::new("speaker", Level::Ok, d.name.clone(), None),
        None => Check::new("speaker", Level::Warn, "no output device", Some("connect speakers or headphones; `--output FILE.wav` works without one".into())),
    });

    Report { platform: models::current_platform(), memory, tier, mode, paths: paths.clone(), checks }
}

/// The `roxy-llm` worker is found, starts, and speaks this engine's protocol version.
fn llm_worker_check() -> Check {
    let fix = "build it with `cargo build -p roxy-llm` (or install it next to roxy), or set ROXY_LLM_WORKER".to_string();
    let path = match crate::llm::find_worker(None) {
        Ok(path) => path,
        Err(e) => return Check::new("llm-worker", Level::Error, e.to_string(), Some(fix)),
    };
    let supervisor = crate::llm::LlmSupervisor::new(crate::llm::LlmSettings { idle_timeout: None, ..crate::llm::LlmSettings::new("") });
    let check = match supervisor.ping() {
        Ok(info) => Check::new("llm-worker", Level::Ok, format!("{} ({}, protocol v{}, {})", path.display(), info.version, info.protocol, info.backend), None),
        Err(e) => Check::new("llm-worker", Level::Error, e.to_string(), Some(fix)),
    };
    supervisor.stop();
    check
}

/// The memory database: found, opens, sound (`PRAGMA quick_check`), schema version, rows.
/// Read only: nothing is migrated, created or moved by the check.
pub fn memory_store_check(paths: &Paths) -> Check {
    use crate::memory::{self, MemoryError, LATEST_VERSION};
    let path = paths.data_dir.join(memory::DB_FILE_NAME);
    let shown = path.display();
    let move_aside = format!("quit Roxy, then `mv '{shown}' '{shown}.bad'`; a fresh store is created on the next start and the moved file keeps the old data");
    match memory::health(&path) {
        Ok(h) if !h.exists => Check::new("memory-store", Level::Ok, format!("{shown} not created yet (it is on first use)"), None),
        Ok(h) if !h.problems.is_empty() => Check::new(
            "memory-store",
            Level::Error,
            format!("{shown} is damaged: quick_check found {}", h.problems.iter().take(3).cloned().collect::<Vec<_>>().join("; ")),
            Some(format!("save what is readable with `roxy memory export FILE`, then {move_aside}")),
        ),
        Ok(h) => {
            let upgrade = if h.schema_version < LATEST_VERSION { format!(" (upgraded to v{LATEST_VERSION} on the next start)") } else { String::new() };
            Check::new(
                "memory-store",
                Level::Ok,
                format!(
                    "{shown}: {:.1} MB, schema v{}{upgrade}, {} turns, {} facts, {} cache entries, quick_check ok",
                    h.bytes as f64 / 1e6,
                    h.schema_version,
                    h.turns,
                    h.facts,
                    h.cache_entries
                ),
                None,
            )
        }
        Err(e @ MemoryError::Corrupt { .. }) => Check::new("memory-store", Level::Error, e.to_string(), Some(move_aside)),
        Err(e @ MemoryError::TooNew { .. }) => Check::new("memory-store", Level::Error, e.to_string(), Some("update Roxy, or set ROXY_DATA_DIR to use another data dir".into())),
        Err(e @ MemoryError::Busy { .. }) => Check::new("memory-store", Level::Warn, e.to_string(), Some("quit the other Roxy process and run `roxy doctor` again".into())),
        Err(e) => Check::new("memory-store", Level::Error, e.to_string(), Some(format!("check that {} is readable and writable", paths.data_dir.display()))),
    }
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// The report as a table for a terminal.
pub fn render(report: &Report) -> String {
    let mut out = format!("Roxy doctor — {}\n", report.platform);
    for c in &report.checks {
        let mark = match c.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Error => "FAIL",
        };
        out.push_str(&format!("[{mark}] {:<20} {}\n", c.name, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("       {:<20} fix: {fix}\n", ""));
        }
    }
    out
}
