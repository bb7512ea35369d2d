//! Finding the `roxy-llm` worker executable.

use super::LlmError;
use std::path::{Path, PathBuf};

pub const WORKER_FILE_NAME: &str = if cfg!(windows) { "roxy-llm.exe" } else { "roxy-llm" };
pub const WORKER_ENV: &str = "ROXY_LLM_WORKER";

/// Looks, in order: at `configured`; at `ROXY_LLM_WORKER`; next to the current executable (an
/// installed app, `target/debug/roxy`); in its parent directory (test binaries run from
/// `target/debug/deps/`); on `PATH`. An explicit path that is wrong is an error, not skipped,
/// so a typo does not silently pick up another build.
pub fn find_worker(configured: Option<&Path>) -> Result<PathBuf, LlmError> {
    if let Some(path) = configured {
        return explicit(path, "the LLM worker setting");
    }
    if let Some(path) = std::env::var_os(WORKER_ENV).filter(|v| !v.is_empty()) {
        return explicit(Path::new(&path), WORKER_ENV);
    }
    let mut candidates = Vec::new();
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)) {
        candidates.push(exe_dir.join(WORKER_FILE_NAME));
        if let Some(parent) = exe_dir.parent() {
            candidates.push(parent.join(WORKER_FILE_NAME));
        }
    }
    if let Some(path_var) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path_var).map(|dir| dir.join(WORKER_FILE_NAME)));
    }
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| LlmError::WorkerNotFound {
        searched: candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
    })
}

fn explicit(path: &Path, source_name: &'static str) -> Result<PathBuf, LlmError> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(LlmError::WorkerPathInvalid { path: path.to_path_buf(), source_name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_configured_path_is_an_error_naming_it() {
        let err = find_worker(Some(Path::new("/nonexistent/roxy-llm"))).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("/nonexistent/roxy-llm") && message.contains("Fix:"), "{message}");
    }

    #[test]
    fn a_configured_file_is_used_as_is() {
        let exe = std::env::current_exe().unwrap();
        assert_eq!(find_worker(Some(&exe)).unwrap(), exe);
    }
}
