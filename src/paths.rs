//! Where Roxy keeps things. Every location can be moved with a `ROXY_*` variable so tests and
//! scripts run isolated from a user's real install.

use std::path::PathBuf;

/// The resolved directories for one run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Paths {
    /// The config file (`ROXY_CONFIG`).
    pub config_file: PathBuf,
    /// Database, logs, API token (`ROXY_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Installed model files (`ROXY_MODELS_DIR`, default `<data>/models`).
    pub models_dir: PathBuf,
    /// Downloads kept for resuming and re-installing (`ROXY_CACHE_DIR`, default `<data>/cache`).
    pub cache_dir: PathBuf,
    pub logs_dir: PathBuf,
}

impl Paths {
    /// Resolves from the environment, falling back to the platform's conventional folders
    /// (`~/Library/Application Support/ai.roxy.Roxy` on macOS, XDG dirs on Linux).
    pub fn from_env() -> Self {
        let dirs = directories::ProjectDirs::from("ai", "roxy", "Roxy");
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let data_dir = var("ROXY_DATA_DIR")
            .or_else(|| dirs.as_ref().map(|d| d.data_dir().to_path_buf()))
            .unwrap_or_else(|| PathBuf::from(".roxy"));
        let config_file = var("ROXY_CONFIG")
            .or_else(|| dirs.as_ref().map(|d| d.config_dir().join("config.toml")))
            .unwrap_or_else(|| data_dir.join("config.toml"));
        let models_dir = var("ROXY_MODELS_DIR").unwrap_or_else(|| data_dir.join("models"));
        let cache_dir = var("ROXY_CACHE_DIR").unwrap_or_else(|| data_dir.join("cache"));
        let logs_dir = data_dir.join("logs");
        Paths { config_file, data_dir, models_dir, cache_dir, logs_dir }
    }

    /// All paths under one root: what tests use.
    pub fn under(root: &std::path::Path) -> Self {
        Paths {
            config_file: root.join("config.toml"),
            data_dir: root.to_path_buf(),
            models_dir: root.join("models"),
            cache_dir: root.join("cache"),
            logs_dir: root.join("logs"),
        }
    }
}
