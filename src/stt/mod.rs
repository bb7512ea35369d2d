//! Speech to text: Whisper (whisper.cpp through whisper-rs) on 16 kHz mono utterances.
//!
//! [`Stt`] holds the weights (a `WhisperContext`, loaded once) and creates a fresh decoder state
//! per utterance, so one loaded model can serve utterances from any thread and nothing from one
//! utterance leaks into the next. Silence and noise come back as an empty transcript, never as
//! invented words (see [`gate`]).

pub mod gate;
pub mod model_file;

use crate::audio::wav::{self, WavError, SAMPLE_RATE};
use crate::config::SttConfig;
use crate::models::{self, Manifest};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

/// Whisper's encoder produces 50 frames per second of audio; 1500 frames is its full 30 s window.
const AUDIO_CTX_PER_SECOND: f64 = 50.0;
const AUDIO_CTX_FULL: i32 = 1500;
/// Extra encoder frames past the end of the utterance, and the least ever used: very short
/// windows make tiny models repeat themselves or stop early.
const AUDIO_CTX_MARGIN: i32 = 64;
const AUDIO_CTX_MIN: i32 = 128;

/// Tokens one segment may hold: speech is about 4 tokens a second, so this only cuts off a
/// repetition loop (hard noise, damaged weights) that would otherwise decode for minutes.
const TOKENS_BASE: f64 = 24.0;
const TOKENS_PER_SECOND: f64 = 10.0;
const TOKENS_MAX: i32 = 224;
/// The trimmed-window attempts' tighter cap: past 6 words a second (about 8 tokens) their
/// result is doubted anyway, and a repetition loop ("What time is it? What time is it? …")
/// should not decode for long before it is.
const FAST_TOKENS_BASE: f64 = 8.0;
const FAST_TOKENS_PER_SECOND: f64 = 8.0;

/// whisper.cpp returns nothing at all for input under one second; pad up to this with silence.
const MIN_SAMPLES: usize = SAMPLE_RATE as usize * 11 / 10;

/// Above this no-speech probability a transcript is discarded when it is only a stock phrase.
const DOUBTFUL_NO_SPEECH: f32 = 0.2;
/// Above this the whole transcript is discarded: Whisper is confident nobody spoke.
const NO_SPEECH: f32 = 0.6;

/// More threads than this do not make Whisper faster on a single utterance (whisper.cpp's own
/// default is the same cap).
const MAX_THREADS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum SttError {
    #[error("no speech-to-text model is installed (wanted `{wanted}` in {models_dir}). Fix: roxy models fetch --tier default")]
    NoModel { wanted: String, models_dir: PathBuf },
    #[error("speech-to-text model {path} is missing. Fix: roxy models fetch --tier default")]
    ModelMissing { path: PathBuf },
    #[error("speech-to-text model {path} is damaged ({detail}). Fix: roxy models fetch --tier default reinstalls it")]
    ModelCorrupt { path: PathBuf, detail: String },
    #[error("whisper could not load {path}: it is not a valid ggml Whisper model. Fix: roxy models fetch --tier default reinstalls it")]
    ModelLoad { path: PathBuf },
    #[error("config key `stt.language` = {value:?} is not a Whisper language code (e.g. en, de, fr, or auto)")]
    Language { value: String },
    #[error("speech-to-text failed: {0}")]
    Whisper(String),
    #[error(transparent)]
    Audio(#[from] WavError),
}

/// What [`Stt::load`] needs; [`Stt::from_config`] fills it from the config and the manifest.
#[derive(Debug, Clone)]
pub struct SttSettings {
    pub model_path: PathBuf,
    /// The manifest id, for reports.
    pub model_id: String,
    /// A Whisper language code, or `auto` to detect it (multilingual models only).
    pub language: String,
    /// Shrink the encoder window to the utterance (see [`audio_ctx_for`]).
    pub trim_audio_ctx: bool,
    /// Beam search width; 1 = greedy.
    pub beam_size: u32,
    /// Decode over a trimmed window first, greedily and then with beam search, keeping the
    /// first result that does not look wrong (see [`doubt`]); only then run the configured
    /// (careful) decode.
    pub fast_pass: bool,
    pub threads: usize,
}

impl SttSettings {
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        let model_path = model_path.into();
        let model_id = model_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let defaults = SttConfig::default();
        SttSettings {
            model_path,
            model_id,
            language: defaults.language,
            trim_audio_ctx: defaults.trim_audio_ctx,
            beam_size: defaults.beam_size,
            fast_pass: defaults.fast_pass,
            threads: default_threads(),
        }
    }
}

/// `stt.threads = 0`: min(4, cores). Never more threads than cores: ggml's threads spin while
/// they wait for each other, so oversubscribed they are several times slower (measured on 2
/// cores under load: 4 threads 55–60 s against 10–22 s for 2 threads; README, "Speech in").
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4).clamp(1, MAX_THREADS)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub start_s: f32,
    pub end_s: f32,
    pub text: String,
}

/// Why a transcript is empty although there was audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// Below the energy floor: Whisper was not run.
    Quiet,
    /// A steady tone (a beep, a sine, a dial tone): Whisper was not run.
    Tone,
    /// Whisper's no-speech probability said nobody spoke.
    NoSpeech,
    /// Whisper produced only sound markers (`[BLANK_AUDIO]`, `(music)`) or a stock phrase.
    NonSpeech,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SttTimings {
    /// Model load time, reported once: on the first transcript after loading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_ms: Option<f64>,
    pub stt_ms: f64,
    pub audio_s: f64,
}

/// Which decode produced a transcript.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    /// Greedy over the trimmed window, and it passed the checks.
    Fast,
    /// Greedy was doubted; beam search over the trimmed window passed the checks.
    Beam,
    /// The configured decode, without a fast pass before it.
    Careful,
    /// The configured decode after both trimmed-window decodes were doubted, and why the last was.
    Retried { doubt: Doubt },
}

/// Why a fast-pass transcript is not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Doubt {
    /// Nothing usable came out although the audio is loud enough to be speech.
    Empty,
    /// A run of words comes twice: the trimmed window's typical failure.
    Repeats,
    /// More words than anyone says in that much audio.
    TooFast,
    /// Whisper's own token probabilities are low.
    Unsure,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    /// What was said, trimmed; empty for silence and noise.
    pub text: String,
    pub segments: Vec<Segment>,
    /// Whisper's highest no-speech probability over the segments (0 when Whisper was skipped).
    pub no_speech_prob: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Rejection>,
    /// Mean probability of the text tokens (1 when Whisper was skipped).
    pub confidence: f32,
    pub pass: Pass,
    pub timings: SttTimings,
}

/// One decode's raw result, before the speech checks.
struct Decoded {
    segments: Vec<Segment>,
    no_speech_prob: f32,
    confidence: f32,
}

/// A loaded Whisper model.
pub struct Stt {
    ctx: WhisperContext,
    settings: SttSettings,
    /// Resolved from the settings: `None` means detect.
    language: Option<String>,
    load_ms: f64,
    load_reported: AtomicBool,
    /// Whisper already uses every core it is given and its threads spin while they wait, so
    /// two utterances at once are slower than one after the other: they queue here.
    decoding: std::sync::Mutex<()>,
}

impl std::fmt::Debug for Stt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stt").field("settings", &self.settings).field("language", &self.language).finish()
    }
}

impl Stt {
    /// Resolves the configured model (falling back to the installed default-tier one), verifies
    /// it against the manifest's checksum, and loads it.
    pub fn from_config(config: &SttConfig, models_dir: &Path, manifest: &Manifest) -> Result<Stt, SttError> {
        let resolved = models::resolve(manifest, models_dir, "stt", &config.model)
            .ok_or_else(|| SttError::NoModel { wanted: config.model.clone(), models_dir: models_dir.to_path_buf() })?;
        if let Some(wanted) = &resolved.fallback_from {
            tracing::info!("STT model `{wanted}` is not installed; using `{}`", resolved.id);
        }
        // whisper.cpp trusts the tensor sizes in the file; a damaged one can abort the process,
        // so a file the manifest pins is checked before it is handed over.
        models::verify::before_use(manifest, models_dir, &resolved.path)
            .map_err(|bad| SttError::ModelCorrupt { path: bad.path, detail: bad.detail })?;
        let mut settings = SttSettings::new(resolved.path);
        settings.model_id = resolved.id;
        settings.language = config.language.clone();
        settings.trim_audio_ctx = config.trim_audio_ctx;
        settings.beam_size = config.beam_size;
        settings.fast_pass = config.fast_pass;
        if config.threads > 0 {
            settings.threads = config.threads as usize;
        }
        Stt::load(settings)
    }

    /// Loads the model at `settings.model_path` as is (no checksum: see [`Stt::from_config`]).
    pub fn load(settings: SttSettings) -> Result<Stt, SttError> {
        // whisper.cpp logs every load step to stderr; send it to `tracing` instead.
        whisper_rs::install_logging_hooks();
        let path = settings.model_path.clone();
        if !path.is_file() {
            return Err(SttError::ModelMissing { path });
        }
        let layout = model_file::check(&path).map_err(|detail| SttError::ModelCorrupt { path: path.clone(), detail })?;
        let started = Instant::now();
        let ctx = WhisperContext::new_with_params(&path, WhisperContextParameters::default()).map_err(|_| SttError::ModelLoad { path: path.clone() })?;
        let load_ms = ms_since(started);
        let language = resolve_language(&settings.language, ctx.is_multilingual())?;
        tracing::info!(model = %settings.model_id, load_ms, tensors = layout.tensors, threads = settings.threads, "STT model loaded");
        Ok(Stt { ctx, settings, language, load_ms, load_reported: AtomicBool::new(false), decoding: std::sync::Mutex::new(()) })
    }

    pub fn settings(&self) -> &SttSettings {
        &self.settings
    }

    pub fn load_ms(&self) -> f64 {
        self.load_ms
    }

    /// Transcribes one utterance of 16 kHz mono audio.
    pub fn transcribe(&self, samples: &[f32]) -> Result<Transcript, SttError> {
        self.transcribe_as(samples, self.settings.fast_pass, self.settings.trim_audio_ctx)
    }

    /// [`Stt::transcribe`] with the configured decode only, its window trimmed or not (for
    /// measurements).
    pub fn transcribe_with(&self, samples: &[f32], trim_audio_ctx: bool) -> Result<Transcript, SttError> {
        self.transcribe_as(samples, false, trim_audio_ctx)
    }

    /// [`Stt::transcribe`] with the fast pass chosen per call (for measurements).
    pub fn transcribe_as(&self, samples: &[f32], fast_pass: bool, trim_audio_ctx: bool) -> Result<Transcript, SttError> {
        let started = Instant::now();
        let audio_s = samples.len() as f64 / SAMPLE_RATE as f64;
        let load_ms = (!self.load_reported.swap(true, Ordering::Relaxed)).then_some(self.load_ms);
        let timings = || SttTimings { load_ms, stt_ms: ms_since(started), audio_s };

        let quiet = gate::peak_frame_rms(samples) < gate::ENERGY_FLOOR;
        if quiet || gate::is_steady_tone(samples) {
            return Ok(Transcript {
                text: String::new(),
                segments: Vec::new(),
                no_speech_prob: 0.0,
                rejected: Some(if quiet { Rejection::Quiet } else { Rejection::Tone }),
                confidence: 1.0,
                pass: Pass::Careful,
                timings: timings(),
            });
        }
        let mut padded;
        let samples = if samples.len() < MIN_SAMPLES {
            padded = samples.to_vec();
            padded.resize(MIN_SAMPLES, 0.0);
            &padded[..]
        } else {
            samples
        };

        let mut pass = Pass::Careful;
        if fast_pass {
            // Greedy, then beam search, both over the trimmed window: each is kept unless doubted.
            let mut attempts = vec![(1, Pass::Fast)];
            if self.settings.beam_size > 1 {
                attempts.push((self.settings.beam_size, Pass::Beam));
            }
            for (beam, kept) in attempts {
                // No hotter retries here: they cost up to 2 s on a poor try (measured in `roxy
                // bench`), more than the full-window decode that a doubt leads to.
                let mut attempt = self.decode(samples, beam, true, false)?;
                let (text, rejected) = judge(&attempt);
                let Some(why) = doubt(&text, rejected, attempt.confidence, audio_s) else {
                    return Ok(transcript(attempt, text, rejected, kept, timings()));
                };
                // The trimmed window's classic failure: the command, then copies of it.
                let said_once = matches!(why, Doubt::Repeats | Doubt::TooFast)
                    .then(|| once_said(&text))
                    .flatten()
                    .filter(|said| doubt(said, None, attempt.confidence, audio_s).is_none());
                if let Some(said) = said_once {
                    tracing::debug!(heard = %text, kept = %said, "STT: a repeated sentence kept once");
                    attempt.segments = vec![Segment { start_s: 0.0, end_s: audio_s as f32, text: said.clone() }];
                    return Ok(transcript(attempt, said, None, kept, timings()));
                }
                tracing::debug!(doubt = ?why, beam, heard = %text, confidence = attempt.confidence, "STT: trimmed-window decode doubted");
                pass = Pass::Retried { doubt: why };
            }
        }
        let careful = self.decode(samples, self.settings.beam_size, trim_audio_ctx, true)?;
        let (text, rejected) = judge(&careful);
        Ok(transcript(careful, text, rejected, pass, timings()))
    }

    /// One `whisper_full`. `retry_hotter`: whisper.cpp's own fallback, decoding again at rising
    /// temperatures when the result looks poor (each retry a whole decoder pass); off for the
    /// trimmed-window attempts, whose results [`doubt`] checks instead.
    fn decode(&self, samples: &[f32], beam_size: u32, trim_audio_ctx: bool, retry_hotter: bool) -> Result<Decoded, SttError> {
        let strategy = match beam_size {
            0 | 1 => SamplingStrategy::Greedy { best_of: 1 },
            width => SamplingStrategy::BeamSearch { beam_size: width as i32, patience: -1.0 },
        };
        let mut params = FullParams::new(strategy);
        params.set_n_threads(self.settings.threads as i32);
        params.set_language(Some(self.language.as_deref().unwrap_or("auto")));
        params.set_no_context(true);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        params.set_max_tokens(if retry_hotter { max_tokens_for(samples.len()) } else { fast_max_tokens_for(samples.len()) });
        if trim_audio_ctx {
            params.set_audio_ctx(audio_ctx_for(samples.len()));
        }
        if !retry_hotter {
            params.set_temperature_inc(0.0);
        }

        let started = Instant::now();
        let mut state = self.ctx.create_state().map_err(|e| SttError::Whisper(format!("creating a decoder state: {e}")))?;
        let state_ms = ms_since(started);
        {
            let _turn = self.decoding.lock().unwrap_or_else(|e| e.into_inner());
            state.full(params, samples).map_err(|e| SttError::Whisper(e.to_string()))?;
        }
        tracing::debug!(beam_size, trim_audio_ctx, state_ms, total_ms = ms_since(started), "STT decode");

        let eot = self.ctx.token_eot();
        let (mut prob_sum, mut prob_count) = (0.0f64, 0usize);
        let mut segments = Vec::new();
        let mut no_speech_prob = 0.0f32;
        for segment in state.as_iter() {
            no_speech_prob = no_speech_prob.max(segment.no_speech_probability());
            for i in 0..segment.n_tokens() {
                // Special tokens (timestamps, end of text) come after the text vocabulary.
                if let Some(token) = segment.get_token(i).filter(|t| t.token_id() < eot) {
                    prob_sum += token.token_probability() as f64;
                    prob_count += 1;
                }
            }
            let raw = segment.to_str_lossy().map_err(|e| SttError::Whisper(e.to_string()))?;
            let text = gate::strip_annotations(&raw);
            if gate::has_words(&text) {
                segments.push(Segment {
                    start_s: segment.start_timestamp() as f32 / 100.0,
                    end_s: segment.end_timestamp() as f32 / 100.0,
                    text,
                });
            }
        }
        let confidence = if prob_count == 0 { 0.0 } else { (prob_sum / prob_count as f64) as f32 };
        Ok(Decoded { segments, no_speech_prob, confidence })
    }
}

/// The decoded text, and whether the speech checks throw it away.
fn judge(decoded: &Decoded) -> (String, Option<Rejection>) {
    let text = decoded.segments.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ");
    let p = decoded.no_speech_prob;
    let rejected = if text.is_empty() {
        Some(Rejection::NonSpeech)
    } else if p > NO_SPEECH {
        Some(Rejection::NoSpeech)
    } else if p > DOUBTFUL_NO_SPEECH && gate::is_stock_phrase(&text) {
        Some(Rejection::NonSpeech)
    } else {
        None
    };
    (text, rejected)
}

fn transcript(decoded: Decoded, text: String, rejected: Option<Rejection>, pass: Pass, timings: SttTimings) -> Transcript {
    if let Some(reason) = rejected {
        tracing::debug!(?reason, no_speech_prob = decoded.no_speech_prob, heard = %text, "STT: not speech");
        return Transcript { text: String::new(), segments: Vec::new(), no_speech_prob: decoded.no_speech_prob, rejected, confidence: decoded.confidence, pass, timings };
    }
    Transcript { text, segments: decoded.segments, no_speech_prob: decoded.no_speech_prob, rejected: None, confidence: decoded.confidence, pass, timings }
}

/// The first sentence of `text` when everything after it only repeats it (the last copy may be
/// cut short): "What time is it? What time is it? What ti" → "What time is it?".
pub fn once_said(text: &str) -> Option<String> {
    let words = |t: &str| t.split_whitespace().map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase()).filter(|w| !w.is_empty()).collect::<Vec<_>>();
    let end = text.find(['.', '?', '!'])? + 1;
    let (first, rest) = text.split_at(end);
    let (once, rest) = (words(first), words(rest));
    if once.is_empty() || rest.is_empty() {
        return None;
    }
    // Each copy matches word for word; the last word of all may be cut off mid-word.
    let (last, whole) = rest.split_last()?;
    let copies = whole.iter().zip(once.iter().cycle()).all(|(w, o)| w == o) && once[whole.len() % once.len()].starts_with(last.as_str());
    copies.then(|| first.trim().to_string())
}

/// Words per second nobody exceeds (fast speech is about 4).
const MAX_WORDS_PER_SECOND: f64 = 6.0;
/// Below this mean token probability the fast pass is decoded again.
const MIN_FAST_CONFIDENCE: f32 = 0.6;
/// A run of this many words appearing twice counts as a repetition.
const REPEAT_RUN: usize = 3;

/// Why a fast-pass result should be decoded again, if it should. Speech that the careful pass
/// rejects as well costs one extra decode; a wrong command costs the user far more.
pub fn doubt(text: &str, rejected: Option<Rejection>, confidence: f32, audio_s: f64) -> Option<Doubt> {
    if rejected.is_some() {
        return Some(Doubt::Empty);
    }
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    if words.len() as f64 > MAX_WORDS_PER_SECOND * audio_s.max(1.0) {
        return Some(Doubt::TooFast);
    }
    let mut runs = std::collections::HashSet::new();
    if words.windows(REPEAT_RUN).any(|run| !runs.insert(run)) {
        return Some(Doubt::Repeats);
    }
    (confidence < MIN_FAST_CONFIDENCE).then_some(Doubt::Unsure)
}

/// The encoder window for an utterance of `samples`: its length in encoder frames plus a margin.
pub fn audio_ctx_for(samples: usize) -> i32 {
    let frames = (samples as f64 / SAMPLE_RATE as f64 * AUDIO_CTX_PER_SECOND).ceil() as i32;
    (frames + AUDIO_CTX_MARGIN).clamp(AUDIO_CTX_MIN, AUDIO_CTX_FULL)
}

fn fast_max_tokens_for(samples: usize) -> i32 {
    let seconds = samples as f64 / SAMPLE_RATE as f64;
    ((FAST_TOKENS_BASE + FAST_TOKENS_PER_SECOND * seconds).ceil() as i32).min(TOKENS_MAX)
}

fn max_tokens_for(samples: usize) -> i32 {
    let seconds = samples as f64 / SAMPLE_RATE as f64;
    ((TOKENS_BASE + TOKENS_PER_SECOND * seconds).ceil() as i32).min(TOKENS_MAX)
}

fn resolve_language(language: &str, multilingual: bool) -> Result<Option<String>, SttError> {
    let language = language.trim().to_lowercase();
    if language == "auto" || language.is_empty() {
        return Ok(if multilingual { None } else { Some("en".into()) });
    }
    if whisper_rs::get_lang_id(&language).is_none() {
        return Err(SttError::Language { value: language });
    }
    if !multilingual && language != "en" {
        tracing::warn!("stt.language = {language:?}, but the STT model is English-only; transcribing as English");
        return Ok(Some("en".into()));
    }
    Ok(Some(language))
}

fn ms_since(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// What `roxy transcribe --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct FileTranscript {
    pub text: String,
    pub segments: Vec<Segment>,
    pub ms: FileTimings,
    pub audio_s: f64,
    pub model: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileTimings {
    pub load: f64,
    /// WAV read, downmix and resample.
    pub decode: f64,
    pub stt: f64,
}

/// Reads a WAV file (any rate and channel count), loads the configured model and transcribes it.
/// The audio is read first, so a bad file fails before the model load is paid for.
pub fn transcribe_file(path: &Path, config: &SttConfig, models_dir: &Path, manifest: &Manifest) -> Result<FileTranscript, SttError> {
    let started = Instant::now();
    let (samples, _info) = wav::read_mono_16k(path)?;
    let decode = ms_since(started);
    let stt = Stt::from_config(config, models_dir, manifest)?;
    let transcript = stt.transcribe(&samples)?;
    Ok(FileTranscript {
        text: transcript.text,
        segments: transcript.segments,
        ms: FileTimings { load: stt.load_ms(), decode, stt: transcript.timings.stt_ms },
        audio_s: transcript.timings.audio_s,
        model: stt.settings().model_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_ctx_follows_the_utterance_length() {
        assert_eq!(audio_ctx_for(0), AUDIO_CTX_MIN);
        assert_eq!(audio_ctx_for(16000), AUDIO_CTX_MIN); // 50 + 64 < 128
        assert_eq!(audio_ctx_for(16000 * 3), 150 + AUDIO_CTX_MARGIN);
        assert_eq!(audio_ctx_for(16000 * 3 + 1), 151 + AUDIO_CTX_MARGIN);
        assert_eq!(audio_ctx_for(16000 * 60), AUDIO_CTX_FULL);
    }

    #[test]
    fn fast_pass_doubts_what_a_trimmed_window_gets_wrong() {
        let ok = |text: &str| doubt(text, None, 0.9, 2.0);
        assert_eq!(ok("Set a timer for 5 minutes."), None);
        // Measured on the Piper voice with a trimmed window and beam 5.
        assert_eq!(doubt("set a timer for 5 minutes. It's set a timer for 5 minutes.", None, 0.9, 3.0), Some(Doubt::Repeats));
        assert_eq!(ok("no no no no"), Some(Doubt::Repeats));
        assert_eq!(ok("one two three four five six seven eight nine ten eleven twelve thirteen"), Some(Doubt::TooFast));
        assert_eq!(doubt("What time is it?", None, 0.4, 1.5), Some(Doubt::Unsure));
        assert_eq!(doubt("", Some(Rejection::NonSpeech), 0.0, 1.5), Some(Doubt::Empty));
        // Short clips count as a second of audio, so a two-word command is never "too fast".
        assert_eq!(doubt("Stop talking", None, 0.9, 0.3), None);
    }

    #[test]
    fn a_sentence_and_its_copies_is_said_once() {
        assert_eq!(once_said("What time is it? What time is it? What ti").as_deref(), Some("What time is it?"));
        assert_eq!(once_said("Stop. stop stop").as_deref(), Some("Stop."));
        assert_eq!(once_said("set a timer for 5 minutes. It's set a timer for 5 minutes."), None, "not a plain copy");
        assert_eq!(once_said("What time is it?"), None, "nothing repeated");
        assert_eq!(once_said("What time is it? And the date?"), None);
    }

    #[test]
    fn languages_resolve_per_model_kind() {
        assert_eq!(resolve_language("en", false).unwrap(), Some("en".into()));
        assert_eq!(resolve_language("auto", false).unwrap(), Some("en".into()));
        assert_eq!(resolve_language("de", false).unwrap(), Some("en".into()));
        assert_eq!(resolve_language("auto", true).unwrap(), None);
        assert_eq!(resolve_language("DE", true).unwrap(), Some("de".into()));
        assert!(matches!(resolve_language("klingon", true), Err(SttError::Language { .. })));
    }

    #[test]
    fn missing_and_foreign_model_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("ggml-nothing.bin");
        let err = Stt::load(SttSettings::new(&missing)).unwrap_err();
        assert!(matches!(err, SttError::ModelMissing { .. }), "{err}");
        assert!(err.to_string().contains("roxy models fetch --tier default"), "{err}");

        let foreign = dir.path().join("ggml-foreign.bin");
        std::fs::write(&foreign, b"GGUF and then some").unwrap();
        let err = Stt::load(SttSettings::new(&foreign)).unwrap_err();
        assert!(matches!(err, SttError::ModelCorrupt { .. }), "{err}");
        assert!(err.to_string().contains("ggml-foreign.bin"), "{err}");

        let stub = dir.path().join("ggml-stub.bin");
        std::fs::write(&stub, b"lmg").unwrap();
        assert!(matches!(Stt::load(SttSettings::new(&stub)), Err(SttError::ModelCorrupt { .. })));
    }

    #[test]
    fn no_model_installed_names_the_fetch_command() {
        let dir = tempfile::tempdir().unwrap();
        let err = Stt::from_config(&SttConfig::default(), dir.path(), &Manifest::builtin()).unwrap_err();
        assert!(matches!(err, SttError::NoModel { .. }), "{err}");
        assert!(err.to_string().contains("roxy models fetch --tier default"), "{err}");
    }
}
