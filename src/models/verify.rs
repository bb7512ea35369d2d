//! Checking installed model files against the manifest.

use super::manifest::{Model, ModelFile};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Streams a file through SHA-256; returns lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Where a digest learnt at download time is kept for files the manifest does not pin.
pub fn sidecar_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".sha256");
    path.with_file_name(name)
}

/// The digest a file must have: the manifest's, else the sidecar's.
pub fn expected_sha256(file: &ModelFile, installed: &Path) -> Option<String> {
    file.sha256.clone().or_else(|| {
        std::fs::read_to_string(sidecar_path(installed))
            .ok()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| s.len() == 64)
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FileStatus {
    Ok,
    Missing,
    /// Wrong size or digest: damaged, truncated or replaced.
    Corrupt { expected: String, actual: String },
    /// Present, but nothing to check it against (no pinned digest, no sidecar).
    Unverified,
    Unreadable { error: String },
}

impl FileStatus {
    /// The problem in a few words, for errors that name the file themselves.
    pub fn detail(&self) -> String {
        match self {
            FileStatus::Ok => "ok".into(),
            FileStatus::Missing => "missing".into(),
            FileStatus::Corrupt { expected, actual } => format!("expected {expected}, found {actual}"),
            FileStatus::Unverified => "no checksum to verify it against".into(),
            FileStatus::Unreadable { error } => error.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub model: String,
    pub role: String,
    pub path: PathBuf,
    #[serde(flatten)]
    pub status: FileStatus,
}

impl FileReport {
    pub fn is_ok(&self) -> bool {
        self.status == FileStatus::Ok
    }

    /// One line a user can act on.
    pub fn describe(&self, tier_hint: &str) -> String {
        let p = self.path.display();
        match &self.status {
            FileStatus::Ok => format!("{p}: ok"),
            FileStatus::Missing => format!("{p}: missing. Fix: roxy models fetch --tier {tier_hint}"),
            FileStatus::Corrupt { expected, actual } => format!(
                "{p}: CORRUPT (expected {expected}, found {actual}). Fix: roxy models fetch --tier {tier_hint} reinstalls it"
            ),
            FileStatus::Unverified => format!("{p}: present but unverified (no checksum known). Fix: roxy models fetch --tier {tier_hint} --force"),
            FileStatus::Unreadable { error } => format!("{p}: unreadable ({error}). Fix: check its permissions, or delete it and run roxy models fetch --tier {tier_hint}"),
        }
    }
}

/// Checks one file: size first (cheap), then the full digest.
pub fn check_file(file: &ModelFile, models_dir: &Path) -> FileStatus {
    let path = models_dir.join(&file.path);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileStatus::Missing,
        Err(e) => return FileStatus::Unreadable { error: e.to_string() },
    };
    if let Some(size) = file.size {
        if meta.len() != size {
            return FileStatus::Corrupt { expected: format!("{size} bytes"), actual: format!("{} bytes", meta.len()) };
        }
    }
    let Some(expected) = expected_sha256(file, &path) else {
        return FileStatus::Unverified;
    };
    match sha256_file(&path) {
        Ok(actual) if actual == expected => FileStatus::Ok,
        Ok(actual) => FileStatus::Corrupt { expected: format!("sha256 {expected}"), actual: format!("sha256 {actual}") },
        Err(e) => FileStatus::Unreadable { error: e.to_string() },
    }
}

pub fn check_model(model: &Model, models_dir: &Path) -> Vec<FileReport> {
    model
        .files
        .iter()
        .map(|f| FileReport {
            model: model.id.clone(),
            role: model.role.clone(),
            path: models_dir.join(&f.path),
            status: check_file(f, models_dir),
        })
        .collect()
}
