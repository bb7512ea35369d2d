//! Silero VAD v6 through ONNX Runtime: one speech probability per 32 ms frame.
//!
//! The weights ([`SileroVad`]) are loaded once and shared; each audio stream owns a
//! [`SileroStream`] with its recurrent state and the 64-sample context the model expects in
//! front of every 512-sample frame (what silero-vad's own `OnnxWrapper` does).

use super::{open_session, VadError};
use ort::session::Session;
use ort::value::{Tensor, TensorRef};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Samples per frame at 16 kHz (32 ms): the only frame size Silero v5+ accepts at this rate.
pub const FRAME: usize = 512;
/// Samples of the previous frame prepended to each frame.
const CONTEXT: usize = 64;
/// The recurrent state: [2, batch=1, 128].
const STATE: usize = 2 * 128;

/// Where `roxy models fetch` installs the model (see models/manifest.toml, id `silero-vad`).
pub fn model_path(models_dir: &Path) -> PathBuf {
    models_dir.join("vad").join("silero_vad.onnx")
}

/// The loaded Silero model, shared by every stream.
pub struct SileroVad {
    // `Session::run` needs `&mut`; a frame takes ~0.1 ms, so streams simply take turns.
    session: Mutex<Session>,
    path: PathBuf,
}

impl std::fmt::Debug for SileroVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroVad").field("path", &self.path).finish()
    }
}

impl SileroVad {
    /// Loads the installed model from `models_dir`.
    pub fn load(models_dir: &Path) -> Result<Arc<SileroVad>, VadError> {
        Self::load_file(&model_path(models_dir), models_dir)
    }

    /// Loads the model at `path`; ONNX Runtime is found through `models_dir`.
    pub fn load_file(path: &Path, models_dir: &Path) -> Result<Arc<SileroVad>, VadError> {
        let session = open_session(path, models_dir)?;
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        if names != ["input", "state", "sr"] {
            return Err(VadError::ModelCorrupt {
                path: path.into(),
                detail: format!("inputs are {names:?}, expected [\"input\", \"state\", \"sr\"]: not Silero VAD v5/v6"),
            });
        }
        Ok(Arc::new(SileroVad { session: Mutex::new(session), path: path.into() }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fresh per-stream state (cheap: two small buffers).
    pub fn stream(self: &Arc<Self>) -> SileroStream {
        SileroStream { model: Arc::clone(self), state: vec![0.0; STATE], input: vec![0.0; CONTEXT + FRAME] }
    }
}

/// One stream's Silero state.
pub struct SileroStream {
    model: Arc<SileroVad>,
    state: Vec<f32>,
    /// Context (last 64 samples of the previous frame) followed by the current frame.
    input: Vec<f32>,
}

impl SileroStream {
    /// Speech probability of one 512-sample frame of 16 kHz mono audio in [-1, 1].
    pub fn prob(&mut self, frame: &[f32]) -> Result<f32, VadError> {
        assert_eq!(frame.len(), FRAME, "Silero frames are {FRAME} samples");
        self.input[CONTEXT..].copy_from_slice(frame);
        let fail = |e: ort::Error| VadError::Inference(e.to_string());
        let input = TensorRef::from_array_view(([1usize, CONTEXT + FRAME], &self.input[..])).map_err(fail)?;
        let state = TensorRef::from_array_view(([2usize, 1, 128], &self.state[..])).map_err(fail)?;
        let sr = Tensor::from_array(((), vec![16_000i64])).map_err(fail)?;
        let prob = {
            let mut session = self.model.session.lock().unwrap_or_else(|p| p.into_inner());
            let outputs = session.run(ort::inputs!["input" => input, "state" => state, "sr" => sr]).map_err(fail)?;
            let (_, prob) = outputs["output"].try_extract_tensor::<f32>().map_err(fail)?;
            let (_, next) = outputs["stateN"].try_extract_tensor::<f32>().map_err(fail)?;
            if next.len() != STATE || prob.is_empty() {
                return Err(VadError::Inference(format!("unexpected output sizes: state {}, prob {}", next.len(), prob.len())));
            }
            self.state.copy_from_slice(next);
            prob[0]
        };
        self.input.copy_within(FRAME.., 0);
        Ok(prob)
    }

    /// Forgets everything heard so far (a new, unrelated stream).
    pub fn reset(&mut self) {
        self.state.fill(0.0);
        self.input.fill(0.0);
    }
}
