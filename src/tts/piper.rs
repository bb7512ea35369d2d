//! Piper (VITS) voices through ONNX Runtime: phoneme ids in, audio at the voice's rate out.
//!
//! The session (the weights, ~60 MB) is loaded once; each sentence is one `run` with its own
//! input tensors, so nothing from one sentence carries into the next. `run` needs the session
//! mutably, hence the mutex: sentences are synthesised one at a time per voice.

use super::voice::{self, VoiceConfig};
use super::{espeak, Scales, Tts, TtsError};
use ort::session::Session;
use ort::value::Tensor;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// A short utterance ("hello") run once at load.
const WARM_UP: &str = "həlˈoʊ.";

pub struct PiperVoice {
    session: Mutex<Session>,
    config: VoiceConfig,
    model_path: PathBuf,
    scales: Scales,
    /// Multi-speaker voices take a speaker id; we use speaker 0.
    has_sid: bool,
    load_ms: f64,
}

impl std::fmt::Debug for PiperVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperVoice").field("model", &self.model_path).field("scales", &self.scales).finish()
    }
}

impl PiperVoice {
    /// Loads `model` (a `.onnx`) and its `.onnx.json`; `scales` of `None` uses the voice's own.
    /// ONNX Runtime is found through `models_dir` (see [`crate::onnx`]).
    pub fn load(model: &Path, models_dir: &Path, scales: Option<Scales>) -> Result<PiperVoice, TtsError> {
        let started = Instant::now();
        if !model.is_file() {
            return Err(TtsError::VoiceMissing { path: model.into() });
        }
        let config = VoiceConfig::load(&voice::config_path(model))?;
        let scales = scales.unwrap_or(Scales { noise_scale: config.noise_scale, length_scale: config.length_scale, noise_w: config.noise_w });
        let corrupt = |detail: String| TtsError::VoiceCorrupt { path: model.into(), detail };
        let (session, threads) = super::open_session(model, models_dir, corrupt)?;
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for required in ["input", "input_lengths", "scales"] {
            if !names.contains(&required) {
                return Err(corrupt(format!("it has no `{required}` input (inputs: {names:?}); it is not a Piper voice")));
            }
        }
        let has_sid = names.contains(&"sid");
        let mut voice = PiperVoice { session: Mutex::new(session), config, model_path: model.into(), scales, has_sid, load_ms: 0.0 };
        // ONNX Runtime allocates and picks kernels on the first run; pay that here, at load,
        // rather than in the first sentence a user waits for.
        voice.synthesize_phonemes(WARM_UP).map_err(|e| corrupt(format!("a test run failed: {e}")))?;
        voice.load_ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(model = %model.display(), load_ms = voice.load_ms, threads, "Piper voice loaded");
        Ok(voice)
    }

    pub fn config(&self) -> &VoiceConfig {
        &self.config
    }

    pub fn model_path(&self) -> &Path {
        &self.model_path
    }

    pub fn scales(&self) -> Scales {
        self.scales
    }

    pub fn load_ms(&self) -> f64 {
        self.load_ms
    }

    /// Synthesises already-phonemised text (IPA, Piper's form).
    pub fn synthesize_phonemes(&self, phonemes: &str) -> Result<Vec<f32>, TtsError> {
        let (ids, unknown) = self.config.phoneme_ids(phonemes);
        if unknown > 0 {
            tracing::debug!(unknown, phonemes, "phonemes the voice does not know were skipped");
        }
        // BOS, pad and EOS alone: nothing to say.
        if ids.len() <= 3 {
            return Ok(Vec::new());
        }
        let fail = |e: ort::Error| TtsError::Inference(e.to_string());
        let n = ids.len();
        let input = Tensor::from_array(([1usize, n], ids)).map_err(fail)?;
        let lengths = Tensor::from_array(([1usize], vec![n as i64])).map_err(fail)?;
        let s = self.scales;
        let scales = Tensor::from_array(([3usize], vec![s.noise_scale, s.length_scale, s.noise_w])).map_err(fail)?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = if self.has_sid {
            let sid = Tensor::from_array(([1usize], vec![0i64])).map_err(fail)?;
            session.run(ort::inputs!["input" => input, "input_lengths" => lengths, "scales" => scales, "sid" => sid])
        } else {
            session.run(ort::inputs!["input" => input, "input_lengths" => lengths, "scales" => scales])
        }
        .map_err(fail)?;
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(fail)?;
        // VITS output can overshoot slightly; clip rather than wrap when written as 16-bit.
        Ok(audio.iter().map(|s| s.clamp(-1.0, 1.0)).collect())
    }
}

impl Tts for PiperVoice {
    fn sample_rate(&self) -> u32 {
        self.config.sample_rate
    }

    fn synthesize_sentence(&self, text: &str) -> Result<Vec<f32>, TtsError> {
        let phonemes = espeak::phonemize_joined(text, &self.config.espeak_voice)?;
        self.synthesize_phonemes(&phonemes)
    }
}
