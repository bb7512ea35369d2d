//! Roxy's typed configuration: built-in defaults, then the tier preset, then the user's file.
//!
//! Every field has a default, so an empty or missing file is a valid config. Unknown keys and
//! out-of-range values are errors that name the key, so a typo never silently does nothing.

use crate::presets::{MemoryInfo, PresetChoice, Tier};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is invalid: {message}Fix the key named above, or delete it to use the default (`roxy config show` prints the effective config).")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}` = {value} is invalid: {expected}. Fix it in {path}.")]
    Value { path: PathBuf, key: &'static str, value: String, expected: &'static str },
    #[error("environment variable {name}={value:?} is invalid: {expected}")]
    Env { name: &'static str, value: String, expected: &'static str },
    #[error("cannot write config file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub preset: PresetChoice,
    pub llm: LlmConfig,
    pub stt: SttConfig,
    pub tts: TtsConfig,
    pub wake: WakeConfig,
    pub vad: VadConfig,
    pub memory: MemoryConfig,
    pub router: RouterConfig,
    pub skills: SkillsConfig,
    pub hotkey: HotkeyConfig,
    pub cloud: CloudConfig,
    pub app: AppConfig,
    pub api: ApiConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Manifest id of the GGUF to use; falls back to the bundled model when not installed.
    pub model: String,
    pub max_tokens: u32,
    pub temperature: f32,
    pub top_p: f32,
    pub context_size: u32,
    /// 0 = one per performance core.
    pub threads: u32,
    /// Layers offloaded to the GPU (Metal on macOS); 0 = CPU only.
    pub gpu_layers: u32,
    /// Stop the LLM worker after this long unused, freeing its memory; 0 = never.
    pub idle_unload_secs: u64,
    pub seed: u32,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            model: "smollm2-135m-instruct-q4_1".into(),
            max_tokens: 256,
            temperature: 0.7,
            top_p: 0.9,
            context_size: 4096,
            threads: 0,
            gpu_layers: crate::platform::DEFAULT_GPU_LAYERS,
            idle_unload_secs: 300,
            seed: 42,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SttConfig {
    pub model: String,
    pub language: String,
    /// Shrink Whisper's audio context to the utterance length in the careful decode: faster on
    /// short commands, but tiny.en then sometimes repeats words (measured by `tests/stt.rs`).
    pub trim_audio_ctx: bool,
    /// Beam search width of the careful decode; 1 = greedy.
    pub beam_size: u32,
    /// First decode over a window trimmed to the utterance (about 10x faster on a short
    /// command), greedily and then with beam search, and run the careful decode only when both
    /// look wrong: empty, repeating, too many words for the audio, or low token probabilities.
    pub fast_pass: bool,
    /// Whisper's compute threads; 0 = automatic (see `roxy::stt::auto_threads`). More threads
    /// than free cores make Whisper much slower, not faster: its threads spin while they wait.
    pub threads: u32,
}

impl Default for SttConfig {
    fn default() -> Self {
        SttConfig { model: "whisper-tiny.en".into(), language: "en".into(), trim_audio_ctx: false, beam_size: 5, fast_pass: true, threads: 0 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtsConfig {
    pub voice: String,
    /// 1.0 = the voice's natural pace; 1.5 = 50 % faster (Piper: divides the length scale).
    pub speed: f32,
    /// Variation in timbre; 0 is flat and deterministic.
    pub noise_scale: f32,
    /// Variation in phoneme durations (rhythm).
    pub noise_w: f32,
    /// Pause between sentences.
    pub sentence_silence_ms: u32,
}

impl Default for TtsConfig {
    fn default() -> Self {
        // Piper's own defaults for medium voices.
        TtsConfig { voice: "piper-en_US-joe-medium".into(), speed: 1.0, noise_scale: 0.667, noise_w: 0.8, sentence_silence_ms: 200 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WakeConfig {
    pub enabled: bool,
    /// Keyword model name: hey_jarvis, alexa, hey_mycroft, hey_rhasspy, timer, weather.
    pub model: String,
    /// Score that counts as a detection: higher means fewer false triggers, more misses.
    pub threshold: f32,
    /// Consecutive 80 ms frames above threshold needed to fire. 2 (not 1) because one frame
    /// over threshold is how near-rhymes ("hey travis") fire; it costs 80 ms of latency
    /// (README, "Speech in": the measured table).
    pub patience: u32,
    /// Ignore further detections for this long after one fires.
    pub cooldown_ms: u32,
}

impl Default for WakeConfig {
    fn default() -> Self {
        WakeConfig { enabled: true, model: "hey_jarvis".into(), threshold: 0.5, patience: 2, cooldown_ms: 2000 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VadConfig {
    pub threshold: f32,
    /// Silence after speech that ends an utterance.
    pub end_silence_ms: u32,
    pub max_utterance_ms: u32,
    /// Voiced time needed before an utterance starts; shorter sounds are clicks. Raise it if
    /// door knocks or keyboard noise start utterances; lower it if one-word replies are missed.
    pub min_speech_ms: u32,
    /// A pause this long inside the onset is tolerated ("What t-ime"); a longer one abandons it.
    pub onset_gap_ms: u32,
    /// Audio kept before the detected start so the first consonant is not clipped.
    pub pre_roll_ms: u32,
    /// Audio kept after the detected end (at most `end_silence_ms`): trailing consonants are quiet.
    pub post_roll_ms: u32,
    /// Once in speech, a frame counts as silence only below `threshold - hysteresis`.
    pub hysteresis: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            threshold: 0.5,
            end_silence_ms: 500,
            max_utterance_ms: 15_000,
            min_speech_ms: 180,
            onset_gap_ms: 300,
            pre_roll_ms: 300,
            post_roll_ms: 200,
            hysteresis: 0.15,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Turns of the current conversation kept as LLM context.
    pub session_turns: u32,
    /// How long a cached answer stays valid, per kind; 0 = never cache that kind.
    /// LLM answers (only deterministic requests, temperature 0, are cached).
    pub cache_ttl_llm_secs: u64,
    /// Synthesised speech for fixed phrases.
    pub cache_ttl_tts_secs: u64,
    /// Skill results (weather, lookups) go stale quickly.
    pub cache_ttl_skill_secs: u64,
    /// Response cache size cap; the least recently used entries are evicted beyond it.
    pub cache_max_mb: u64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            session_turns: 20,
            cache_ttl_llm_secs: 7 * 24 * 3600,
            cache_ttl_tts_secs: 30 * 24 * 3600,
            cache_ttl_skill_secs: 300,
            cache_max_mb: 256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// Intent similarity at or above which a skill answers instead of the LLM.
    pub intent_threshold: f32,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig { intent_threshold: 0.7 }
    }
}

/// What the "open" skill may launch. Only these: the command line is built from this list,
/// never from what was heard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SkillsConfig {
    /// Application names as the OS knows them (`open -a NAME` on macOS).
    pub apps: Vec<String>,
    /// Spoken name → URL.
    pub sites: std::collections::BTreeMap<String, String>,
}

impl Default for SkillsConfig {
    fn default() -> Self {
        let apps = ["Safari", "Notes", "Calendar", "Mail", "Music", "Messages", "Maps", "Photos", "Reminders", "Terminal", "Finder", "System Settings"];
        let sites = [
            ("youtube", "https://www.youtube.com"),
            ("wikipedia", "https://en.wikipedia.org"),
            ("github", "https://github.com"),
            ("gmail", "https://mail.google.com"),
            ("maps", "https://maps.apple.com"),
        ];
        SkillsConfig {
            apps: apps.map(String::from).to_vec(),
            sites: sites.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HotkeyMode {
    /// Press once to start listening; the end of speech stops it.
    #[default]
    Toggle,
    /// Listen while the keys are held.
    PushToTalk,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HotkeyConfig {
    pub shortcut: String,
    pub mode: HotkeyMode,
}

/// The language codes whisper.cpp accepts (its `g_lang` table).
const WHISPER_LANGUAGES: &[&str] = &[
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it", "id", "hi", "fi", "vi", "he", "uk", "el", "ms",
    "cs", "ro", "da", "hu", "ta", "no", "th", "ur", "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn",
    "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc", "ka", "be",
    "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln", "ha",
    "ba", "jw", "su", "yue",
];

/// ⌥⇧Space: ⌥Space is taken by Alfred, Raycast and ChatGPT on many Macs, and macOS does not
/// always report a clash when another app registered the same keys first.
pub const DEFAULT_HOTKEY: &str = "Alt+Shift+Space";

impl Default for HotkeyConfig {
    fn default() -> Self {
        HotkeyConfig { shortcut: DEFAULT_HOTKEY.into(), mode: HotkeyMode::Toggle }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CloudConfig {
    /// Off by default: nothing leaves the machine unless the user turns this on.
    pub enabled: bool,
    /// An OpenAI-compatible endpoint, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub model: String,
    /// Environment variable holding the API key (the OS keychain is tried first).
    pub api_key_env: String,
    /// Redact personal data before a request leaves the machine.
    pub privacy_gateway: bool,
}

impl Default for CloudConfig {
    fn default() -> Self {
        CloudConfig {
            enabled: false,
            base_url: String::new(),
            model: String::new(),
            api_key_env: "ROXY_CLOUD_API_KEY".into(),
            privacy_gateway: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    pub launch_at_login: bool,
    /// Port of the local API (bound to 127.0.0.1 only).
    pub api_port: u16,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig { launch_at_login: false, api_port: 8742 }
    }
}

/// The local API (`roxy serve`); its port is `app.api_port`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Chat completions generated at once; more wait in a queue.
    pub concurrency: u32,
    /// Chats that may wait for a slot; more are refused with 429 and Retry-After.
    pub queue_limit: u32,
    /// Open connections at once; more wait to be accepted.
    pub max_connections: u32,
    /// A request's head must arrive within this (and a kept-alive connection closes after
    /// this long idle).
    pub header_timeout_secs: u32,
    /// A chat completion is cut short (finish_reason `length`) after this long.
    pub chat_timeout_secs: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        // One LLM worker serves one generation at a time.
        ApiConfig { concurrency: 1, queue_limit: 16, max_connections: 128, header_timeout_secs: 10, chat_timeout_secs: 120 }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            preset: PresetChoice::Auto,
            llm: LlmConfig::default(),
            stt: SttConfig::default(),
            tts: TtsConfig::default(),
            wake: WakeConfig::default(),
            vad: VadConfig::default(),
            memory: MemoryConfig::default(),
            router: RouterConfig::default(),
            skills: SkillsConfig::default(),
            hotkey: HotkeyConfig::default(),
            cloud: CloudConfig::default(),
            app: AppConfig::default(),
            api: ApiConfig::default(),
        }
    }
}

/// The effective config and how it came about.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The tier whose values were applied (`None` for the custom preset).
    pub tier: Option<Tier>,
    /// Whether the config file existed.
    pub file_found: bool,
}

impl Config {
    /// Loads `path` (missing = defaults) and applies the preset for a machine with `memory`.
    /// `ROXY_PRESET` overrides the file's `preset`.
    pub fn load(path: &Path, memory: MemoryInfo) -> Result<Loaded, ConfigError> {
        let (user, file_found) = match std::fs::read_to_string(path) {
            Ok(text) => (text, true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), false),
            Err(source) => return Err(ConfigError::Read { path: path.into(), source }),
        };
        Self::from_toml(&user, path, memory, std::env::var("ROXY_PRESET").ok().as_deref()).map(|(config, tier)| Loaded {
            config,
            tier,
            file_found,
        })
    }

    /// Builds the effective config from the user's TOML text. Layers: defaults < preset < file.
    pub fn from_toml(
        user_text: &str,
        path: &Path,
        memory: MemoryInfo,
        preset_override: Option<&str>,
    ) -> Result<(Config, Option<Tier>), ConfigError> {
        let parse_err = |e: toml::de::Error| ConfigError::Parse { path: path.into(), message: e.to_string() };
        // Parsing the file on its own first gives errors with the user's line numbers.
        let user_config: Config = toml::from_str(user_text).map_err(parse_err)?;
        let user_table: toml::Table = toml::from_str(user_text).map_err(parse_err)?;

        let preset = match preset_override.filter(|s| !s.is_empty()) {
            Some(name) => PresetChoice::deserialize(toml::Value::String(name.to_lowercase())).map_err(|_| ConfigError::Env {
                name: "ROXY_PRESET",
                value: name.into(),
                expected: "one of auto, 8gb, 32gb, custom",
            })?,
            None => user_config.preset,
        };
        let tier = preset.resolve(memory.total);

        let mut merged = toml::Table::try_from(Config::default()).expect("defaults serialise");
        if let Some(tier) = tier {
            merge(&mut merged, tier.values());
        }
        merge(&mut merged, user_table);
        merged.insert("preset".into(), toml::Value::try_from(preset).expect("preset serialises"));
        let config: Config = merged.try_into().map_err(parse_err)?;
        config.validate(path)?;
        Ok((config, tier))
    }

    /// Range checks that the type system cannot express.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        fn check(ok: bool, path: &Path, key: &'static str, value: impl ToString, expected: &'static str) -> Result<(), ConfigError> {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Value { path: path.into(), key, value: value.to_string(), expected })
            }
        }
        let c = self;
        check(!c.llm.model.is_empty(), path, "llm.model", "\"\"", "a model id from `roxy models list`")?;
        check((1..=32_768).contains(&c.llm.max_tokens), path, "llm.max_tokens", c.llm.max_tokens, "between 1 and 32768")?;
        check((0.0..=2.0).contains(&c.llm.temperature), path, "llm.temperature", c.llm.temperature, "between 0.0 and 2.0")?;
        check(c.llm.top_p > 0.0 && c.llm.top_p <= 1.0, path, "llm.top_p", c.llm.top_p, "above 0.0 and at most 1.0")?;
        check((256..=131_072).contains(&c.llm.context_size), path, "llm.context_size", c.llm.context_size, "between 256 and 131072")?;
        check(c.llm.max_tokens < c.llm.context_size, path, "llm.max_tokens", c.llm.max_tokens, "smaller than llm.context_size")?;
        check(c.llm.threads <= 256, path, "llm.threads", c.llm.threads, "0 (automatic) or a thread count up to 256")?;
        check(!c.stt.model.is_empty(), path, "stt.model", "\"\"", "a model id from `roxy models list`")?;
        check((1..=16).contains(&c.stt.beam_size), path, "stt.beam_size", c.stt.beam_size, "between 1 (greedy) and 16")?;
        check(c.stt.language == "auto" || WHISPER_LANGUAGES.contains(&c.stt.language.as_str()), path, "stt.language", format!("{:?}", c.stt.language), "\"auto\" or a language code Whisper knows, such as \"en\", \"de\" or \"fr\"")?;
        let wake_models = crate::models::Manifest::from_env().unwrap_or_else(|_| crate::models::Manifest::builtin());
        // A test or mirror manifest without wake models has nothing to check against.
        let mut wake_ids = wake_models.models.iter().filter(|m| m.role == "wake").map(|m| m.id.as_str()).peekable();
        let known_wake = wake_ids.peek().is_none() || wake_ids.any(|id| id == c.wake.model);
        check(known_wake, path, "wake.model", format!("{:?}", c.wake.model), "a wake word model of the manifest: hey_jarvis, alexa, hey_mycroft, hey_rhasspy, timer or weather (`roxy models list`)")?;
        check((0.5..=2.0).contains(&c.tts.speed), path, "tts.speed", c.tts.speed, "between 0.5 and 2.0")?;
        check((0.0..=1.0).contains(&c.tts.noise_scale), path, "tts.noise_scale", c.tts.noise_scale, "between 0.0 and 1.0")?;
        check((0.0..=2.0).contains(&c.tts.noise_w), path, "tts.noise_w", c.tts.noise_w, "between 0.0 and 2.0")?;
        check(c.tts.sentence_silence_ms <= 5_000, path, "tts.sentence_silence_ms", c.tts.sentence_silence_ms, "between 0 and 5000")?;
        check(c.wake.threshold > 0.0 && c.wake.threshold < 1.0, path, "wake.threshold", c.wake.threshold, "between 0.0 and 1.0 (exclusive)")?;
        check((1..=25).contains(&c.wake.patience), path, "wake.patience", c.wake.patience, "between 1 and 25 frames")?;
        check(c.vad.threshold > 0.0 && c.vad.threshold < 1.0, path, "vad.threshold", c.vad.threshold, "between 0.0 and 1.0 (exclusive)")?;
        check((100..=5_000).contains(&c.vad.end_silence_ms), path, "vad.end_silence_ms", c.vad.end_silence_ms, "between 100 and 5000")?;
        check((1_000..=120_000).contains(&c.vad.max_utterance_ms), path, "vad.max_utterance_ms", c.vad.max_utterance_ms, "between 1000 and 120000")?;
        check((32..=2_000).contains(&c.vad.min_speech_ms), path, "vad.min_speech_ms", c.vad.min_speech_ms, "between 32 and 2000")?;
        check(c.vad.min_speech_ms < c.vad.max_utterance_ms, path, "vad.min_speech_ms", c.vad.min_speech_ms, "smaller than vad.max_utterance_ms")?;
        check(c.vad.onset_gap_ms <= 2_000, path, "vad.onset_gap_ms", c.vad.onset_gap_ms, "between 0 and 2000")?;
        check(c.vad.pre_roll_ms <= 2_000, path, "vad.pre_roll_ms", c.vad.pre_roll_ms, "between 0 and 2000")?;
        check(c.vad.post_roll_ms <= 2_000, path, "vad.post_roll_ms", c.vad.post_roll_ms, "between 0 and 2000")?;
        check((0.0..c.vad.threshold).contains(&c.vad.hysteresis), path, "vad.hysteresis", c.vad.hysteresis, "at least 0.0 and below vad.threshold")?;
        check(c.stt.threads <= 64, path, "stt.threads", c.stt.threads, "0 (automatic) or a thread count up to 64")?;
        check((1..=1_000).contains(&c.memory.session_turns), path, "memory.session_turns", c.memory.session_turns, "between 1 and 1000")?;
        check((1..=1_048_576).contains(&c.memory.cache_max_mb), path, "memory.cache_max_mb", c.memory.cache_max_mb, "between 1 and 1048576 (1 TiB)")?;
        check((0.0..=1.0).contains(&c.router.intent_threshold), path, "router.intent_threshold", c.router.intent_threshold, "between 0.0 and 1.0")?;
        for (site, url) in &c.skills.sites {
            check(url.starts_with("http://") || url.starts_with("https://"), path, "skills.sites", format!("{site} = {url:?}"), "an http:// or https:// URL for every site")?;
        }
        check(!c.hotkey.shortcut.trim().is_empty(), path, "hotkey.shortcut", "\"\"", "a shortcut such as \"Alt+Shift+Space\"")?;
        check(
            !c.cloud.enabled || c.cloud.base_url.starts_with("http://") || c.cloud.base_url.starts_with("https://"),
            path,
            "cloud.base_url",
            format!("{:?}", c.cloud.base_url),
            "an http:// or https:// URL when cloud.enabled = true",
        )?;
        check(!c.cloud.enabled || !c.cloud.model.is_empty(), path, "cloud.model", "\"\"", "a model name when cloud.enabled = true")?;
        check(c.app.api_port >= 1024, path, "app.api_port", c.app.api_port, "a port from 1024 to 65535")?;
        check((1..=64).contains(&c.api.concurrency), path, "api.concurrency", c.api.concurrency, "between 1 and 64")?;
        check((1..=1024).contains(&c.api.queue_limit), path, "api.queue_limit", c.api.queue_limit, "between 1 and 1024")?;
        check((4..=4096).contains(&c.api.max_connections), path, "api.max_connections", c.api.max_connections, "between 4 and 4096")?;
        check((1..=300).contains(&c.api.header_timeout_secs), path, "api.header_timeout_secs", c.api.header_timeout_secs, "between 1 and 300")?;
        check((1..=3600).contains(&c.api.chat_timeout_secs), path, "api.chat_timeout_secs", c.api.chat_timeout_secs, "between 1 and 3600")?;
        Ok(())
    }

    /// The effective config as TOML, as `roxy config show` prints it.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    /// What `preset` gives on a machine with `memory` before any user file: defaults < tier.
    pub fn preset_base(preset: PresetChoice, memory: MemoryInfo) -> Config {
        let mut merged = toml::Table::try_from(Config::default()).expect("defaults serialise");
        if let Some(tier) = preset.resolve(memory.total) {
            merge(&mut merged, tier.values());
        }
        let mut config: Config = merged.try_into().expect("built-in presets are valid (checked by tests)");
        config.preset = preset;
        config
    }

    /// Saves this config as the user's file at `path` (what the settings window does): validated
    /// first, then only the keys that differ from its preset's base are written, so a key the user
    /// never changed keeps following the preset. The write is atomic and the previous file is kept
    /// as `<path>.bak`. Comments in the old file are not carried over (the .bak keeps them).
    pub fn save_user_file(&self, path: &Path, memory: MemoryInfo) -> Result<(), ConfigError> {
        self.validate(path)?;
        let mut mine = toml::Table::try_from(self).expect("config serialises");
        let mut base = toml::Table::try_from(Config::preset_base(self.preset, memory)).expect("config serialises");
        tidy_floats(&mut mine);
        tidy_floats(&mut base);
        let mut file = diff(&mine, &base);
        file.insert("preset".into(), mine["preset"].clone());
        let text = format!("# Written by Roxy's settings window; only keys that differ from the preset.\n{}", toml::to_string_pretty(&file).expect("table serialises"));

        // The file must read back as exactly this config, or nothing is written.
        let (again, _) = Config::from_toml(&text, path, memory, None)?;
        if &again != self {
            return Err(ConfigError::Parse { path: path.into(), message: "the saved file would not read back as the same settings (a bug; please report it). ".into() });
        }

        let err = |source| ConfigError::Write { path: path.into(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let with_suffix = |suffix: &str| {
            let mut name = path.file_name().unwrap_or_default().to_os_string();
            name.push(suffix);
            path.with_file_name(name)
        };
        if path.exists() {
            std::fs::copy(path, with_suffix(".bak")).map_err(err)?;
        }
        let tmp = with_suffix(".tmp");
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

/// The keys of `mine` whose values differ from `base`, table by table.
fn diff(mine: &toml::Table, base: &toml::Table) -> toml::Table {
    let mut out = toml::Table::new();
    for (key, value) in mine {
        match (value, base.get(key)) {
            (toml::Value::Table(m), Some(toml::Value::Table(b))) => {
                let sub = diff(m, b);
                if !sub.is_empty() {
                    out.insert(key.clone(), toml::Value::Table(sub));
                }
            }
            (v, Some(b)) if v == b => {}
            (v, _) => {
                out.insert(key.clone(), v.clone());
            }
        }
    }
    out
}

/// Every float in the config is an f32; write `0.7`, not its f64 widening `0.699999988079071`.
fn tidy_floats(table: &mut toml::Table) {
    for (_, value) in table.iter_mut() {
        match value {
            toml::Value::Float(f) => *f = (*f as f32).to_string().parse().unwrap_or(*f),
            toml::Value::Table(t) => tidy_floats(t),
            _ => {}
        }
    }
}

/// Lays `top` over `base`, table by table, so a file that sets one key keeps the others.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024 * 1024 * 1024;
    fn mem(total_gib: u64) -> MemoryInfo {
        MemoryInfo { total: total_gib * GIB, available: total_gib * GIB / 2 }
    }
    fn load(text: &str, total_gib: u64) -> Result<(Config, Option<Tier>), ConfigError> {
        Config::from_toml(text, Path::new("/tmp/roxy.toml"), mem(total_gib), None)
    }

    #[test]
    fn empty_file_gives_the_preset_for_the_machine() {
        let (small, tier) = load("", 8).unwrap();
        assert_eq!(tier, Some(Tier::Gb8));
        assert_eq!(small.llm.model, "qwen3-1.7b-q4_k_m");
        assert_eq!(small.memory.session_turns, 20);
        let (big, tier) = load("", 32).unwrap();
        assert_eq!(tier, Some(Tier::Gb32));
        assert_eq!(big.memory.session_turns, 100);
        assert!(big.llm.context_size > small.llm.context_size);
        assert!(big.llm.max_tokens > small.llm.max_tokens);
        // Keys no preset sets keep their defaults.
        assert_eq!(big.vad.end_silence_ms, 500);
    }

    #[test]
    fn the_file_overrides_the_preset_key_by_key() {
        let (c, _) = load("preset = \"32gb\"\n[llm]\nmax_tokens = 99\n", 8).unwrap();
        assert_eq!(c.preset, PresetChoice::Gb32);
        assert_eq!(c.llm.max_tokens, 99);
        assert_eq!(c.llm.context_size, 16384, "the rest of [llm] still comes from the preset");
    }

    #[test]
    fn custom_preset_applies_no_tier() {
        let (c, tier) = load("preset = \"custom\"", 64).unwrap();
        assert_eq!(tier, None);
        assert_eq!(c.llm, LlmConfig::default());
    }

    #[test]
    fn env_preset_overrides_the_file() {
        let (c, tier) = Config::from_toml("preset = \"32gb\"", Path::new("x"), mem(64), Some("8gb")).unwrap();
        assert_eq!((c.preset, tier), (PresetChoice::Gb8, Some(Tier::Gb8)));
        let err = Config::from_toml("", Path::new("x"), mem(8), Some("huge")).unwrap_err().to_string();
        assert!(err.contains("ROXY_PRESET") && err.contains("auto, 8gb, 32gb, custom"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let err = load("[llm]\nmax_tokenz = 5\n", 8).unwrap_err().to_string();
        assert!(err.contains("max_tokenz"), "{err}");
        assert!(err.contains("line 2"), "the error points at the line: {err}");
        let err = load("[lmm]\n", 8).unwrap_err().to_string();
        assert!(err.contains("lmm"), "{err}");
    }

    #[test]
    fn bad_values_are_errors_that_name_the_key() {
        let err = load("[llm]\ntemperature = 3.5\n", 8).unwrap_err().to_string();
        assert!(err.contains("llm.temperature") && err.contains("3.5") && err.contains("between 0.0 and 2.0"), "{err}");
        let err = load("[llm]\nmax_tokens = \"many\"\n", 8).unwrap_err().to_string();
        assert!(err.contains("max_tokens"), "{err}");
        let err = load("[wake]\nthreshold = 1.0\n", 8).unwrap_err().to_string();
        assert!(err.contains("wake.threshold"), "{err}");
        let err = load("preset = \"16gb\"\n", 8).unwrap_err().to_string();
        assert!(err.contains("16gb"), "{err}");
        let err = load("[cloud]\nenabled = true\nmodel = \"m\"\n", 8).unwrap_err().to_string();
        assert!(err.contains("cloud.base_url"), "{err}");
        let err = load("[llm]\nmax_tokens = 8000\ncontext_size = 4096\n", 8).unwrap_err().to_string();
        assert!(err.contains("smaller than llm.context_size"), "{err}");
        // Typos that used to pass `config show` and `doctor`.
        let err = load("[stt]\nlanguage = \"english\"\n", 8).unwrap_err().to_string();
        assert!(err.contains("stt.language") && err.contains("\"english\"") && err.contains("\"en\""), "{err}");
        let err = load("[wake]\nmodel = \"hey_jarvs\"\n", 8).unwrap_err().to_string();
        assert!(err.contains("wake.model") && err.contains("hey_jarvis"), "{err}");
        for ok in ["[stt]\nlanguage = \"auto\"\n", "[stt]\nlanguage = \"de\"\n", "[wake]\nmodel = \"alexa\"\n"] {
            load(ok, 8).unwrap();
        }
    }

    #[test]
    fn missing_file_is_defaults_and_unreadable_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = Config::load(&dir.path().join("none.toml"), mem(8)).unwrap();
        assert!(!loaded.file_found);
        let err = Config::load(dir.path(), mem(8)).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }

    #[test]
    fn saved_file_holds_only_the_changes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        let (mut c, _) = load("preset = \"8gb\"", 8).unwrap();
        c.llm.temperature = 0.3;
        c.vad.end_silence_ms = 700;
        c.save_user_file(&path, mem(8)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("temperature = 0.3\n") && text.contains("end_silence_ms = 700"), "{text}");
        assert!(!text.contains("max_tokens"), "unchanged keys follow the preset: {text}");
        assert_eq!(Config::load(&path, mem(8)).unwrap().config, c);

        // Saving again keeps the previous file as .bak.
        c.tts.speed = 1.25;
        c.save_user_file(&path, mem(8)).unwrap();
        assert!(std::fs::read_to_string(dir.path().join("sub/config.toml.bak")).unwrap().contains("temperature = 0.3"));
        assert!(std::fs::read_to_string(&path).unwrap().contains("speed = 1.25"));
        assert_eq!(Config::preset_base(PresetChoice::Gb32, mem(8)).llm.model, "qwen3-8b-q4_k_m");
    }

    #[test]
    fn an_invalid_config_is_not_saved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "# mine\n").unwrap();
        let (mut c, _) = load("", 8).unwrap();
        c.llm.temperature = 9.0;
        let err = c.save_user_file(&path, mem(8)).unwrap_err();
        assert!(matches!(err, ConfigError::Value { key: "llm.temperature", .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n", "the old file is untouched");
    }

    #[test]
    fn shown_config_reads_back_identically() {
        let (c, _) = load("[tts]\nspeed = 1.25\n", 32).unwrap();
        let (again, _) = load(&c.to_toml(), 8).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn vad_tuning_and_stt_threads_are_validated_keys() {
        let (c, _) = load("[vad]\nmin_speech_ms = 250\npre_roll_ms = 400\nhysteresis = 0.2\n[stt]\nthreads = 2\n", 8).unwrap();
        assert_eq!((c.vad.min_speech_ms, c.vad.pre_roll_ms, c.vad.hysteresis, c.stt.threads), (250, 400, 0.2, 2));
        assert_eq!(c.vad.onset_gap_ms, VadConfig::default().onset_gap_ms);
        for (text, key) in [
            ("[vad]\nmin_speech_ms = 0\n", "vad.min_speech_ms"),
            ("[vad]\npre_roll_ms = 60000\n", "vad.pre_roll_ms"),
            ("[vad]\nhysteresis = 0.6\n", "vad.hysteresis"),
            ("[stt]\nthreads = 1000\n", "stt.threads"),
        ] {
            let err = load(text, 8).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains("Fix it in"), "{text:?}: {err}");
        }
    }
}
