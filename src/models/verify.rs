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

/// A model file that failed its check before use.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path} is damaged ({detail}), so it was not loaded. Fix: run `roxy models fetch` to reinstall it (`roxy models verify` checks every file)")]
pub struct Damaged {
    pub path: PathBuf,
    pub detail: String,
}

/// Checks `path` against the manifest before it is loaded: its size, then its sha256 unless
/// this very file (same size and modification time) passed before. A damaged model otherwise
/// loads and answers nonsense, or aborts inside a native library. Files the manifest does not
/// list (a user's own model) and files without a known digest are let through.
pub fn before_use(manifest: &super::Manifest, models_dir: &Path, path: &Path) -> Result<(), Damaged> {
    let Some(file) = manifest.models.iter().flat_map(|m| &m.files).find(|f| models_dir.join(&f.path) == path) else {
        return Ok(());
    };
    let damaged = |detail: String| Damaged { path: path.to_path_buf(), detail };
    let meta = std::fs::metadata(path).map_err(|e| damaged(e.to_string()))?;
    if let Some(size) = file.size.filter(|&s| s != meta.len()) {
        return Err(damaged(format!("{} bytes, expected {size}", meta.len())));
    }
    let Some(expected) = expected_sha256(file, path) else {
        return Ok(());
    };
    let stamp = format!("{} {} {expected}", meta.len(), mtime_ns(&meta));
    let cache = verified_path(path);
    if std::fs::read_to_string(&cache).is_ok_and(|s| s.trim() == stamp) {
        return Ok(());
    }
    let actual = sha256_file(path).map_err(|e| damaged(e.to_string()))?;
    if actual != expected {
        let _ = std::fs::remove_file(&cache);
        return Err(damaged(format!("sha256 {actual}, expected {expected}")));
    }
    // Best effort: a read-only models dir only costs the digest at each start.
    let _ = std::fs::write(&cache, stamp);
    Ok(())
}

/// Where [`before_use`] notes that a file passed: `FILE.verified`.
pub fn verified_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".verified");
    path.with_file_name(name)
}

fn mtime_ns(meta: &std::fs::Metadata) -> u128 {
    meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_for(path: &str, bytes: &[u8]) -> crate::models::Manifest {
        let sha = hex::encode(Sha256::digest(bytes));
        let text = format!(
            "version = 1\n[[model]]\nid = \"m\"\nrole = \"llm\"\ntiers = [\"default\"]\nlicense = \"MIT\"\ndescription = \"d\"\n[[model.file]]\npath = \"{path}\"\nsize = {}\nsha256 = \"{sha}\"\nsource = {{ url = \"http://127.0.0.1:9/m\" }}\n",
            bytes.len()
        );
        crate::models::Manifest::parse(&text, "test").unwrap()
    }

    #[test]
    fn a_file_damaged_at_the_same_size_is_refused_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let path = dir.path().join("llm/model.gguf");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let manifest = manifest_for("llm/model.gguf", &bytes);

        before_use(&manifest, dir.path(), &path).unwrap();
        assert!(verified_path(&path).is_file(), "a passed check is remembered");
        before_use(&manifest, dir.path(), &path).unwrap();

        // 64 KiB overwritten in place: same size, new mtime, so the digest is taken again.
        let mut damaged = bytes.clone();
        damaged[100_000..100_000 + 65_536].fill(0x55);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, &damaged).unwrap();
        let err = before_use(&manifest, dir.path(), &path).unwrap_err();
        assert!(err.detail.starts_with("sha256 "), "{err}");
        assert!(err.to_string().contains("Fix: run `roxy models fetch`"), "{err}");
        assert!(!verified_path(&path).exists(), "the stale note is dropped");

        std::fs::write(&path, &bytes[..1000]).unwrap();
        let err = before_use(&manifest, dir.path(), &path).unwrap_err();
        assert!(err.detail.contains("1000 bytes, expected 300000"), "{err}");

        // Files the manifest does not list are the user's own: let through.
        let own = dir.path().join("llm/mine.gguf");
        std::fs::write(&own, b"anything").unwrap();
        before_use(&manifest, dir.path(), &own).unwrap();
    }
}
