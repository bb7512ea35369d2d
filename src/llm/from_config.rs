//! Turning the user's `[llm]` config into worker settings and generation options.

use super::{GenerateOptions, LlmSettings};
use crate::config::LlmConfig;
use crate::models::{self, Manifest};
use std::path::Path;
use std::time::Duration;

/// Who Roxy is: short spoken answers, nothing that cannot be read aloud.
pub const SYSTEM_PROMPT: &str = "You are Roxy, a friendly voice assistant running on the user's own computer. \
Answer in one or two short sentences that sound natural when read aloud. \
Never use lists, tables, code blocks or emoji.";

#[derive(Debug, thiserror::Error)]
pub enum LlmModelError {
    #[error("no LLM model is installed (wanted `{wanted}` in {models_dir}). Fix: roxy models fetch --tier default")]
    Missing { wanted: String, models_dir: std::path::PathBuf },
    #[error("the LLM model {0}")]
    Damaged(#[from] models::verify::Damaged),
}

impl LlmSettings {
    /// Settings for the configured model, or the installed default-tier one standing in for it.
    pub fn from_config(config: &LlmConfig, models_dir: &Path, manifest: &Manifest) -> Result<LlmSettings, LlmModelError> {
        let resolved = models::resolve(manifest, models_dir, "llm", &config.model)
            .ok_or_else(|| LlmModelError::Missing { wanted: config.model.clone(), models_dir: models_dir.to_path_buf() })?;
        if let Some(wanted) = &resolved.fallback_from {
            tracing::info!("LLM model `{wanted}` is not installed; using `{}`", resolved.id);
        }
        // llama.cpp loads a GGUF with damaged weights without complaint and answers nonsense.
        models::verify::before_use(manifest, models_dir, &resolved.path)?;
        let mut settings = LlmSettings::new(resolved.path);
        settings.n_ctx = config.context_size;
        settings.n_threads = config.threads;
        settings.n_gpu_layers = config.gpu_layers;
        settings.idle_timeout = (config.idle_unload_secs > 0).then(|| Duration::from_secs(config.idle_unload_secs));
        Ok(settings)
    }
}

impl GenerateOptions {
    pub fn from_config(config: &LlmConfig) -> GenerateOptions {
        GenerateOptions {
            max_tokens: config.max_tokens,
            temperature: config.temperature,
            top_p: config.top_p,
            seed: config.seed,
            ..GenerateOptions::default()
        }
    }
}
