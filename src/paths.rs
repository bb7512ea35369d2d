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

/// Creates `dir` (and its parents) and makes it owner-only (0700): it holds the user's facts,
/// conversations and the API token, which other local users must not read. An existing dir
/// that is wider is tightened.
pub fn ensure_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        // A shared dir the user pointed Roxy at (not theirs to change) is used as it is.
        if mode & 0o077 != 0 {
            if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
                tracing::warn!("{} is readable by other users and could not be made private: {e}", dir.display());
            }
        }
    }
    Ok(())
}

/// Makes an existing file owner-only (0600) if it is readable by others.
pub fn restrict_file(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_data_dir_and_its_files_are_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        super::ensure_private_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        super::ensure_private_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700, "a wide dir is tightened");

        let file = dir.join("stats.json");
        std::fs::write(&file, "[]").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::restrict_file(&file).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
