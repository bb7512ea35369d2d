//! Voice activity detection and endpointing: 16 kHz audio in any chunk size → typed
//! [`VadEvent`]s (speech started; utterance ended, with its audio).
//!
//! [`SileroVad`] holds the weights (load once, share); [`Vad`] is one stream's state (the
//! model's recurrent state, the partial frame, the endpointer), cheap to create per stream.

pub mod endpoint;
pub mod silero;

pub use endpoint::{EndpointSettings, Endpointer};
pub use silero::{SileroStream, SileroVad, FRAME};

use crate::onnx::OnnxError;
use ort::session::Session;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const SAMPLE_RATE: u32 = 16_000;

#[derive(Debug, thiserror::Error)]
pub enum VadError {
    #[error("VAD model {path} is missing. Fix: roxy models fetch --tier default")]
    ModelMissing { path: PathBuf },
    #[error("VAD model {path} is damaged or not the right model ({detail}). Fix: roxy models fetch --tier default reinstalls it")]
    ModelCorrupt { path: PathBuf, detail: String },
    #[error(transparent)]
    Runtime(#[from] OnnxError),
    #[error("voice activity detection failed: {0}")]
    Inference(String),
}

/// Why an utterance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// `end_silence_ms` of silence after speech.
    Silence,
    /// The speaker went on past `max_utterance_ms`.
    MaxLength,
    /// The input ended mid-utterance.
    EndOfStream,
    /// The user closed it (the push-to-talk key was released).
    Released,
}

/// One utterance: times are stream positions in ms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Utterance {
    /// Where speech was detected to start.
    pub start_ms: u64,
    /// Where the closing silence began.
    pub end_ms: u64,
    /// Where `samples` begins (`start_ms` minus the pre-roll).
    pub audio_start_ms: u64,
    /// 16 kHz mono audio: pre-roll, the speech, and a little trailing silence.
    #[serde(skip)]
    pub samples: Vec<f32>,
    pub reason: EndReason,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum VadEvent {
    /// Emitted once the speech has lasted `min_speech_ms`; `at_ms` is where it began.
    SpeechStart { at_ms: u64 },
    /// The speaker has been quiet for the post-roll: the utterance exactly as its `SpeechEnd`
    /// will carry it if the quiet lasts to `end_silence_ms`, so it can be transcribed during
    /// the wait. Once per silence run, and only when asked for ([`Vad::report_pauses`]).
    Pause(Utterance),
    SpeechEnd(Utterance),
}

/// One stream's VAD: feed 16 kHz mono samples in any chunk size.
pub struct Vad {
    silero: SileroStream,
    endpointer: Endpointer,
    /// Samples waiting for a full 512-sample frame.
    pending: Vec<f32>,
    last_prob: f32,
    /// Stream position (samples) at the end of the last frame with any voice in it.
    last_voice_end: Option<u64>,
}

/// A frame this likely to hold speech counts as voice for gating the wake word: well below the
/// utterance threshold, so a soft "hey" still opens the gate.
pub const VOICE_PROB: f32 = 0.2;

impl Vad {
    pub fn new(model: &Arc<SileroVad>, settings: EndpointSettings) -> Vad {
        Vad { silero: model.stream(), endpointer: Endpointer::new(settings), pending: Vec::with_capacity(FRAME), last_prob: 0.0, last_voice_end: None }
    }

    /// Feeds samples; returns the events they completed, in order.
    pub fn push(&mut self, mut samples: &[f32]) -> Result<Vec<VadEvent>, VadError> {
        let mut events = Vec::new();
        while !samples.is_empty() {
            let take = (FRAME - self.pending.len()).min(samples.len());
            self.pending.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.pending.len() == FRAME {
                self.last_prob = self.silero.prob(&self.pending)?;
                events.extend(self.endpointer.push_frame(&self.pending, self.last_prob));
                if self.last_prob >= VOICE_PROB {
                    self.last_voice_end = Some(self.endpointer.position());
                }
                self.pending.clear();
            }
        }
        Ok(events)
    }

    /// Ends the stream: a partial last frame is padded with silence, an open utterance closed.
    pub fn finish(&mut self) -> Result<Vec<VadEvent>, VadError> {
        let mut events = Vec::new();
        if !self.pending.is_empty() {
            let pad = vec![0.0; FRAME - self.pending.len()];
            events.extend(self.push(&pad)?);
        }
        events.extend(self.endpointer.flush());
        Ok(events)
    }

    /// Send [`VadEvent::Pause`] (the live loop transcribes at pauses; other consumers only want
    /// utterances, and each pause copies one).
    pub fn report_pauses(&mut self, on: bool) {
        self.endpointer.report_pauses(on);
    }

    /// Closes an open utterance now (the stream goes on); `None` when none is open.
    pub fn close_utterance(&mut self) -> Option<Utterance> {
        match self.endpointer.close(EndReason::Released) {
            Some(VadEvent::SpeechEnd(u)) => Some(u),
            _ => None,
        }
    }

    /// Speech probability of the last full frame.
    pub fn last_prob(&self) -> f32 {
        self.last_prob
    }

    /// Where (ms) the last frame with voice in it ended; `None` if there has been none.
    pub fn last_voice_ms(&self) -> Option<u64> {
        self.last_voice_end.map(samples_to_ms)
    }

    /// Inside an utterance (after `SpeechStart`, before `SpeechEnd`).
    pub fn in_speech(&self) -> bool {
        self.endpointer.in_speech()
    }

    /// Stream position in ms of the audio processed so far.
    pub fn position_ms(&self) -> u64 {
        samples_to_ms(self.endpointer.position())
    }

    pub fn reset(&mut self) {
        self.silero.reset();
        self.endpointer.reset();
        self.pending.clear();
        self.last_prob = 0.0;
        self.last_voice_end = None;
    }
}

pub(crate) fn ms_to_samples(ms: u32) -> u64 {
    ms as u64 * SAMPLE_RATE as u64 / 1000
}

pub(crate) fn samples_to_ms(samples: u64) -> u64 {
    samples * 1000 / SAMPLE_RATE as u64
}

/// Opens an ONNX model for the always-on path: one thread each (these models are tiny, and
/// the always-on path must not take cores from Whisper or the LLM). A missing file or one ONNX
/// Runtime rejects is reported with the path and the fix.
pub(crate) fn open_session(path: &Path, models_dir: &Path) -> Result<Session, VadError> {
    if !path.is_file() {
        return Err(VadError::ModelMissing { path: path.into() });
    }
    crate::models::verify::before_use(&crate::models::Manifest::builtin(), models_dir, path)
        .map_err(|bad| VadError::ModelCorrupt { path: bad.path, detail: bad.detail })?;
    let env = crate::onnx::environment(models_dir)?;
    let setup = |e: String| VadError::Inference(format!("setting up the ONNX session for {}: {e}", path.display()));
    let mut builder = crate::onnx::single_threaded_builder(&env).map_err(|e| setup(e.to_string()))?;
    builder.commit_from_file(path).map_err(|e| VadError::ModelCorrupt { path: path.into(), detail: e.to_string() })
}
