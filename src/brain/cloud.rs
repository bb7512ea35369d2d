//! An OpenAI-compatible chat client (streaming SSE), for the optional cloud route. The key
//! comes from the macOS keychain (service "roxy", account "cloud") or from the environment
//! variable named in `cloud.api_key_env`; it is never logged.

use crate::config::CloudConfig;
use crate::llm::{ChatMessage, Role};
use std::io::{BufRead, BufReader};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("the cloud is enabled but no API key was found: set {env} (or, on macOS, add it to the keychain: security add-generic-password -s roxy -a cloud -w KEY)")]
    NoKey { env: String },
    #[error("the cloud LLM at {url} could not be reached: {source}")]
    Network {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the cloud LLM answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the cloud LLM sent something that is not an OpenAI-style stream: {0}")]
    Protocol(String),
}

pub struct CloudClient {
    http: reqwest::blocking::Client,
    url: String,
    model: String,
    key: String,
}

impl CloudClient {
    pub fn from_config(config: &CloudConfig) -> Result<CloudClient, CloudError> {
        let key = crate::platform::keychain_key().or_else(|| std::env::var(&config.api_key_env).ok().filter(|k| !k.trim().is_empty()));
        let Some(key) = key else { return Err(CloudError::NoKey { env: config.api_key_env.clone() }) };
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|source| CloudError::Network { url: config.base_url.clone(), source })?;
        Ok(CloudClient { http, url: format!("{}/chat/completions", config.base_url.trim_end_matches('/')), model: config.model.clone(), key })
    }

    /// Streams one chat completion; `on_text` gets each piece. Returns the whole text.
    pub fn chat(&self, messages: &[ChatMessage], max_tokens: u32, temperature: f32, on_text: &mut dyn FnMut(&str)) -> Result<String, CloudError> {
        let body = serde_json::json!({
            "model": self.model,
            "stream": true,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "messages": messages.iter().map(|m| serde_json::json!({"role": role(m.role), "content": m.content})).collect::<Vec<_>>(),
        });
        let network = |source| CloudError::Network { url: self.url.clone(), source };
        let response = self.http.post(&self.url).bearer_auth(&self.key).json(&body).send().map_err(network)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().unwrap_or_default();
            return Err(CloudError::Status { status: status.as_u16(), body: body.chars().take(300).collect() });
        }
        let mut text = String::new();
        for line in BufReader::new(response).lines() {
            let line = line.map_err(|e| CloudError::Protocol(e.to_string()))?;
            let Some(data) = line.strip_prefix("data:") else { continue };
            let data = data.trim();
            if data == "[DONE]" {
                break;
            }
            let event: serde_json::Value = serde_json::from_str(data).map_err(|e| CloudError::Protocol(format!("{e} in {data:.80}")))?;
            if let Some(piece) = event["choices"][0]["delta"]["content"].as_str() {
                text.push_str(piece);
                on_text(piece);
            }
        }
        Ok(text)
    }
}

fn role(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}
