//! Always-on wake word: openWakeWord's three ONNX stages, streamed in 80 ms chunks.
//!
//! 16 kHz audio (as int16 sample values) → `melspectrogram.onnx` (32 bins per 10 ms, scaled
//! `x/10 + 2`) → `embedding_model.onnx` over the last 76 mel frames, one 96-dim embedding per
//! 80 ms → the keyword model over the last N embeddings (16 for `hey_jarvis`) → a score in [0, 1].
//! This follows openwakeword 0.5.1 (`utils.AudioFeatures._streaming_features`, `Model.predict`)
//! step for step, including its start-up state (mel buffer of ones, embedding history seeded from
//! noise) and its zeroing of the first five scores, so thresholds tuned for it mean the same here.
//!
//! [`WakeModels`] holds the weights (load once, share); [`OpenWakeWord`] is one stream's state.

use crate::config::WakeConfig;
use crate::onnx::OnnxError;
use crate::vad::{open_session, VadError};
use ort::session::Session;
use ort::value::TensorRef;
use serde::Serialize;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Samples per chunk (80 ms at 16 kHz): one embedding and one score per chunk.
pub const CHUNK: usize = 1280;
const MEL_BINS: usize = 32;
/// Mel frames per embedding window, and the step between windows.
const WINDOW: usize = 76;
const EMBEDDING: usize = 96;
/// Audio before the chunk fed to the mel model so its frames line up across chunks (3 hops).
const MEL_OVERLAP: usize = 160 * 3;
/// openWakeWord keeps ~10 s of embeddings; keyword models look at the last 16–34.
const MAX_FEATURES: usize = 120;
/// openWakeWord reports 0 for the first five chunks of a stream while its buffers fill.
const WARMUP_CHUNKS: usize = 5;

/// The keyword models `roxy models fetch` installs.
pub const KEYWORDS: [&str; 6] = ["hey_jarvis", "alexa", "hey_mycroft", "hey_rhasspy", "timer", "weather"];

pub fn melspectrogram_path(models_dir: &Path) -> PathBuf {
    models_dir.join("wake").join("melspectrogram.onnx")
}

pub fn embedding_path(models_dir: &Path) -> PathBuf {
    models_dir.join("wake").join("embedding_model.onnx")
}

pub fn keyword_path(models_dir: &Path, name: &str) -> PathBuf {
    models_dir.join("wake").join(format!("{name}_v0.1.onnx"))
}

#[derive(Debug, thiserror::Error)]
pub enum WakeError {
    #[error("unknown wake-word model `{name}` (config key `wake.model`); installed models are: {}", KEYWORDS.join(", "))]
    UnknownModel { name: String },
    #[error("wake-word model {path} is missing. Fix: roxy models fetch --tier default")]
    ModelMissing { path: PathBuf },
    #[error("wake-word model {path} is damaged or not the right model ({detail}). Fix: roxy models fetch --tier default reinstalls it")]
    ModelCorrupt { path: PathBuf, detail: String },
    #[error(transparent)]
    Runtime(#[from] OnnxError),
    #[error("wake-word detection failed: {0}")]
    Inference(String),
}

impl From<VadError> for WakeError {
    fn from(e: VadError) -> Self {
        match e {
            VadError::ModelMissing { path } => WakeError::ModelMissing { path },
            VadError::ModelCorrupt { path, detail } => WakeError::ModelCorrupt { path, detail },
            VadError::Runtime(e) => WakeError::Runtime(e),
            VadError::Inference(e) => WakeError::Inference(e),
        }
    }
}

/// When a score counts as a detection.
#[derive(Debug, Clone, PartialEq)]
pub struct WakeSettings {
    pub threshold: f32,
    /// Consecutive chunks at or above the threshold needed to fire.
    pub patience: u32,
    /// No second detection within this long of one.
    pub cooldown_ms: u32,
}

impl WakeSettings {
    pub fn from_config(config: &WakeConfig) -> Self {
        WakeSettings { threshold: config.threshold, patience: config.patience.max(1), cooldown_ms: config.cooldown_ms }
    }
}

impl Default for WakeSettings {
    fn default() -> Self {
        WakeSettings::from_config(&WakeConfig::default())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WakeDetected {
    pub model: String,
    pub score: f32,
    /// Stream position (ms) at the end of the chunk that fired.
    pub at_ms: u64,
}

/// The seam the listening loop uses: any wake-word engine that takes 16 kHz mono audio.
pub trait WakeDetector: Send {
    /// Feeds samples in [-1, 1] in any chunk size; returns the detections they completed.
    fn push(&mut self, samples: &[f32]) -> Result<Vec<WakeDetected>, WakeError>;
    /// Forgets the stream so far (e.g. after the assistant has spoken).
    fn reset(&mut self);
    fn model(&self) -> &str;
    /// Score of the last full 80 ms chunk (0 before the first).
    fn last_score(&self) -> f32;
    /// Where the VAD last heard voice in this stream (ms), `None` for not yet. Once told, a
    /// detector may skip work while there is no voice; never told, it processes everything.
    fn set_last_voice_ms(&mut self, _at_ms: Option<u64>) {}
}

/// The three openWakeWord models for one keyword, shared by every stream.
pub struct WakeModels {
    name: String,
    melspec: Mutex<Session>,
    embedding: Mutex<Session>,
    keyword: Mutex<Session>,
    /// Embeddings the keyword model looks at (16 for hey_jarvis, 34 for timer).
    input_frames: usize,
    /// 1 for a wake word; multi-class models (timer) have class 0 = none.
    classes: usize,
    /// The embedding history a fresh stream starts from (see [`WakeModels::load`]).
    initial_features: VecDeque<[f32; EMBEDDING]>,
}

impl std::fmt::Debug for WakeModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeModels").field("name", &self.name).field("input_frames", &self.input_frames).finish()
    }
}

impl WakeModels {
    /// Loads the shared feature models and the keyword model `name` (one of [`KEYWORDS`]).
    pub fn load(models_dir: &Path, name: &str) -> Result<Arc<WakeModels>, WakeError> {
        if !KEYWORDS.contains(&name) {
            return Err(WakeError::UnknownModel { name: name.into() });
        }
        Self::load_files(&melspectrogram_path(models_dir), &embedding_path(models_dir), &keyword_path(models_dir, name), name, models_dir)
    }

    /// Loads the models at explicit paths; ONNX Runtime is found through `models_dir`.
    pub fn load_files(melspec: &Path, embedding: &Path, keyword: &Path, name: &str, models_dir: &Path) -> Result<Arc<WakeModels>, WakeError> {
        let melspec_session = open_session(melspec, models_dir)?;
        let embedding_session = open_session(embedding, models_dir)?;
        let keyword_session = open_session(keyword, models_dir)?;
        let corrupt = |path: &Path, detail: String| WakeError::ModelCorrupt { path: path.into(), detail };
        let (input_frames, classes) = keyword_shape(&keyword_session).map_err(|d| corrupt(keyword, d))?;
        let mut models = WakeModels {
            name: name.into(),
            melspec: Mutex::new(melspec_session),
            embedding: Mutex::new(embedding_session),
            keyword: Mutex::new(keyword_session),
            input_frames,
            classes,
            initial_features: VecDeque::new(),
        };
        // openWakeWord starts every stream with the embeddings of 4 s of low noise, so the
        // keyword model sees a full history from the first chunk. Computed once here (it is 41
        // embeddings) with a fixed seed, so runs are repeatable.
        let noise = seeded_noise(16_000 * 4, 1000);
        let mel = models.melspectrogram(&noise).map_err(|e| corrupt(melspec, e))?;
        let windows: Vec<&[[f32; MEL_BINS]]> = (0..mel.len()).step_by(8).filter(|&i| i + WINDOW <= mel.len()).map(|i| &mel[i..i + WINDOW]).collect();
        models.initial_features = models.embed(&windows).map_err(|e| corrupt(embedding, e))?.into();
        Ok(Arc::new(models))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A fresh detector for one audio stream.
    pub fn detector(self: &Arc<Self>, settings: WakeSettings) -> OpenWakeWord {
        let mut mel = VecDeque::with_capacity(WINDOW + 8);
        mel.extend(std::iter::repeat_n([1.0f32; MEL_BINS], WINDOW));
        OpenWakeWord {
            models: Arc::clone(self),
            settings,
            raw: VecDeque::with_capacity(CHUNK + MEL_OVERLAP),
            pending: Vec::with_capacity(CHUNK),
            mel,
            mel_end: WINDOW as u64,
            unembedded: VecDeque::new(),
            features: self.initial_features.clone(),
            chunks: 0,
            voice: None,
            above: 0,
            cooldown_until: 0,
            pos: 0,
            last_score: 0.0,
            max_score: 0.0,
            stage_ms: StageMs::default(),
        }
    }

    /// Mel frames of int16-valued samples, with openWakeWord's `x/10 + 2`.
    fn melspectrogram(&self, samples: &[f32]) -> Result<Vec<[f32; MEL_BINS]>, String> {
        let input = TensorRef::from_array_view(([1usize, samples.len()], samples)).map_err(|e| e.to_string())?;
        let mut session = self.melspec.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session.run(ort::inputs!["input" => input]).map_err(|e| e.to_string())?;
        let (_, data) = outputs[0].try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
        if data.len() % MEL_BINS != 0 {
            return Err(format!("mel output of {} values is not a multiple of {MEL_BINS} bins", data.len()));
        }
        Ok(data.chunks_exact(MEL_BINS).map(|f| std::array::from_fn(|i| f[i] / 10.0 + 2.0)).collect())
    }

    /// One embedding per 76-frame mel window.
    fn embed(&self, windows: &[&[[f32; MEL_BINS]]]) -> Result<Vec<[f32; EMBEDDING]>, String> {
        let flat: Vec<f32> = windows.iter().flat_map(|w| w.iter().flatten().copied()).collect();
        let input = TensorRef::from_array_view(([windows.len(), WINDOW, MEL_BINS, 1], &flat[..])).map_err(|e| e.to_string())?;
        let mut session = self.embedding.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session.run(ort::inputs!["input_1" => input]).map_err(|e| e.to_string())?;
        let (_, data) = outputs[0].try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
        if data.len() != windows.len() * EMBEDDING {
            return Err(format!("embedding output has {} values, expected {}", data.len(), windows.len() * EMBEDDING));
        }
        Ok(data.chunks_exact(EMBEDDING).map(|e| std::array::from_fn(|i| e[i])).collect())
    }

    /// The keyword score over the last `input_frames` embeddings.
    fn score(&self, features: &[f32]) -> Result<f32, String> {
        let input = TensorRef::from_array_view(([1usize, self.input_frames, EMBEDDING], features)).map_err(|e| e.to_string())?;
        let mut session = self.keyword.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session.run(ort::inputs![input]).map_err(|e| e.to_string())?;
        let (_, data) = outputs[0].try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
        Ok(match self.classes {
            1 => data[0],
            // Class 0 is "none of them": the best other class is the score.
            _ => data[1..].iter().copied().fold(0.0, f32::max),
        })
    }
}

/// Input frames and output classes of a keyword model: input [1, N, 96], output [1, C].
fn keyword_shape(session: &Session) -> Result<(usize, usize), String> {
    let dims = |outlets: &[ort::value::Outlet], what: &str| -> Result<Vec<i64>, String> {
        let outlet = outlets.first().ok_or(format!("it has no {what}"))?;
        outlet.dtype().tensor_shape().map(|s| s.to_vec()).ok_or(format!("its {what} is not a tensor"))
    };
    let input = dims(session.inputs(), "input")?;
    let output = dims(session.outputs(), "output")?;
    match (input.as_slice(), output.as_slice()) {
        ([1, n, 96], [1, c]) if *n > 0 && *c > 0 => Ok((*n as usize, *c as usize)),
        _ => Err(format!("input shape {input:?} / output shape {output:?}, expected [1, N, 96] / [1, C]: not an openWakeWord keyword model")),
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Uniform integers in [-amplitude, amplitude) as f32, from a fixed-seed xorshift.
fn seeded_noise(n: usize, amplitude: i32) -> Vec<f32> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x % (2 * amplitude as u64)) as i64 - amplitude as i64) as f32
        })
        .collect()
}

/// One stream's openWakeWord state.
///
/// The embedding model is most of the cost (~75 %), so embeddings are computed lazily: while
/// the VAD reports no voice (see [`WakeDetector::set_last_voice_ms`]) only the cheap mel stage
/// runs, and when voice returns the missing embeddings of the keyword model's window are
/// computed from the kept mel frames in one batch. Scores while voice is heard are therefore the
/// same as with every stage running; in silence the score is 0 without running the models.
pub struct OpenWakeWord {
    models: Arc<WakeModels>,
    settings: WakeSettings,
    /// The last chunk plus the overlap before it, as int16 values.
    raw: VecDeque<f32>,
    /// Samples waiting for a full chunk.
    pending: Vec<f32>,
    mel: VecDeque<[f32; MEL_BINS]>,
    /// Mel frames produced so far (counting the initial ones): the absolute index after `mel`'s last.
    mel_end: u64,
    /// Chunks whose embedding is not computed yet, as the `mel_end` after each (oldest first).
    unembedded: VecDeque<u64>,
    features: VecDeque<[f32; EMBEDDING]>,
    chunks: usize,
    /// `None`: no VAD attached, every chunk is scored. `Some(last)`: where the VAD last heard
    /// voice (ms), or `Some(None)` for not yet.
    voice: Option<Option<u64>>,
    /// Consecutive chunks at or above the threshold.
    above: u32,
    cooldown_until: u64,
    /// Samples consumed.
    pos: u64,
    last_score: f32,
    max_score: f32,
    stage_ms: StageMs,
}

/// Time spent in each stage since the stream started (to see where the always-on cost goes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageMs {
    pub chunks: usize,
    /// Chunks the keyword model scored (the rest were skipped for lack of voice).
    pub scored: usize,
    pub embeddings: usize,
    pub melspectrogram: f64,
    pub embedding: f64,
    pub keyword: f64,
}

impl OpenWakeWord {
    pub fn stage_ms(&self) -> StageMs {
        self.stage_ms
    }

    pub fn settings(&self) -> &WakeSettings {
        &self.settings
    }

    /// Highest score since the stream started or was reset (for tuning and tests).
    pub fn max_score(&self) -> f32 {
        self.max_score
    }

    /// How long after the last voice a chunk can still score: the keyword window plus the
    /// embedding's mel window, and a chunk of slack for the VAD's frame lag.
    fn voice_hold_ms(&self) -> u64 {
        (self.models.input_frames * CHUNK) as u64 * 1000 / 16_000 + (WINDOW as u64 * 10) + 2 * 80
    }

    fn gate_open(&self) -> bool {
        let now_ms = (self.pos + CHUNK as u64) * 1000 / 16_000;
        match self.voice {
            None => true,
            Some(None) => false,
            Some(Some(at)) => now_ms.saturating_sub(at) <= self.voice_hold_ms(),
        }
    }

    /// Runs the stages on one 80 ms chunk; returns its score.
    fn process_chunk(&mut self) -> Result<f32, WakeError> {
        let fail = WakeError::Inference;
        self.chunks += 1;
        self.stage_ms.chunks += 1;
        self.raw.extend(self.pending.iter().map(|s| (s * 32768.0).round().clamp(-32768.0, 32767.0)));
        while self.raw.len() > CHUNK + MEL_OVERLAP {
            self.raw.pop_front();
        }
        let raw = self.raw.make_contiguous();
        let t = Instant::now();
        let frames = self.models.melspectrogram(raw).map_err(fail)?;
        self.stage_ms.melspectrogram += ms_since(t);
        self.mel_end += frames.len() as u64;
        self.mel.extend(frames);
        let n = self.models.input_frames;
        // Enough mel history for the oldest window the keyword model can still look at.
        while self.mel.len() > WINDOW + 8 * n {
            self.mel.pop_front();
        }
        self.unembedded.push_back(self.mel_end);
        while self.unembedded.len() > n {
            self.unembedded.pop_front();
        }
        if !self.gate_open() {
            return Ok(0.0);
        }

        let base = self.mel_end - self.mel.len() as u64;
        let mel = self.mel.make_contiguous();
        let windows: Vec<&[[f32; MEL_BINS]]> = self
            .unembedded
            .iter()
            .filter_map(|&end| {
                let end = end.checked_sub(base)? as usize;
                end.checked_sub(WINDOW).map(|start| &mel[start..end])
            })
            .collect();
        let t = Instant::now();
        let embeddings = self.models.embed(&windows).map_err(fail)?;
        self.stage_ms.embedding += ms_since(t);
        self.stage_ms.embeddings += embeddings.len();
        self.unembedded.clear();
        self.features.extend(embeddings);
        while self.features.len() > MAX_FEATURES {
            self.features.pop_front();
        }
        let recent: Vec<f32> = self.features.iter().skip(self.features.len().saturating_sub(n)).flatten().copied().collect();
        if recent.len() < n * EMBEDDING {
            return Ok(0.0);
        }
        let t = Instant::now();
        let score = self.models.score(&recent).map_err(fail)?;
        self.stage_ms.keyword += ms_since(t);
        self.stage_ms.scored += 1;
        Ok(if self.chunks <= WARMUP_CHUNKS { 0.0 } else { score })
    }
}

impl WakeDetector for OpenWakeWord {
    fn push(&mut self, mut samples: &[f32]) -> Result<Vec<WakeDetected>, WakeError> {
        let mut detections = Vec::new();
        while !samples.is_empty() {
            let take = (CHUNK - self.pending.len()).min(samples.len());
            self.pending.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.pending.len() < CHUNK {
                break;
            }
            let score = self.process_chunk()?;
            self.pending.clear();
            self.pos += CHUNK as u64;
            self.last_score = score;
            self.max_score = self.max_score.max(score);
            self.above = if score >= self.settings.threshold { self.above + 1 } else { 0 };
            if self.above >= self.settings.patience && self.pos >= self.cooldown_until {
                let at_ms = self.pos * 1000 / 16_000;
                self.cooldown_until = self.pos + self.settings.cooldown_ms as u64 * 16;
                detections.push(WakeDetected { model: self.models.name.clone(), score, at_ms });
            }
        }
        Ok(detections)
    }

    fn reset(&mut self) {
        *self = self.models.detector(self.settings.clone());
    }

    fn model(&self) -> &str {
        &self.models.name
    }

    fn last_score(&self) -> f32 {
        self.last_score
    }

    fn set_last_voice_ms(&mut self, at_ms: Option<u64>) {
        self.voice = Some(at_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_repeatable_and_in_range() {
        let a = seeded_noise(1000, 1000);
        assert_eq!(a, seeded_noise(1000, 1000));
        assert!(a.iter().all(|&v| (-1000.0..1000.0).contains(&v)));
        assert!(a.iter().any(|&v| v < -500.0) && a.iter().any(|&v| v > 500.0));
    }
}
