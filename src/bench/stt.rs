//! Roxy's STT against bare whisper.cpp: the same utterance, the same parameters, interleaved
//! in one process so both see the same machine load.

use crate::audio::wav::SAMPLE_RATE;
use crate::stt::{audio_ctx_for, Stt, SttError};
use std::time::Instant;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

/// Best-of-N milliseconds per utterance: the least disturbed run is the fairest comparison on a
/// shared machine (medians swung 2× either way at load 4 on 2 cores).
pub struct SttComparison {
    pub roxy_ms: f64,
    pub bare_ms: f64,
}

/// Loads a second context on the same file: a bare `WhisperContext` owns its weights.
pub fn bare_context(stt: &Stt) -> Result<WhisperContext, SttError> {
    let path = &stt.settings().model_path;
    WhisperContext::new_with_params(path, WhisperContextParameters::default()).map_err(|_| SttError::ModelLoad { path: path.clone() })
}

/// What [`Stt::transcribe_with`] asks of whisper.cpp, rebuilt from the public settings.
fn bare_params<'a>(stt: &Stt, samples: usize, trim: bool) -> FullParams<'a, 'a> {
    let settings = stt.settings();
    let strategy = match settings.beam_size {
        0 | 1 => SamplingStrategy::Greedy { best_of: 1 },
        width => SamplingStrategy::BeamSearch { beam_size: width as i32, patience: -1.0 },
    };
    let mut params = FullParams::new(strategy);
    params.set_n_threads(settings.threads as i32);
    // The bench utterance is English and the default-tier model is English-only.
    params.set_language(Some("en"));
    params.set_no_context(true);
    params.set_print_special(false);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_timestamps(false);
    let seconds = samples as f64 / SAMPLE_RATE as f64;
    params.set_max_tokens(((24.0 + 10.0 * seconds).ceil() as i32).min(224));
    if trim {
        params.set_audio_ctx(audio_ctx_for(samples));
    }
    params
}

/// One bare `create_state` + `full` + reading the segments, as Roxy does, timed in ms.
fn bare_once(ctx: &WhisperContext, stt: &Stt, samples: &[f32], trim: bool) -> Result<(f64, String), SttError> {
    let started = Instant::now();
    let mut state = ctx.create_state().map_err(|e| SttError::Whisper(e.to_string()))?;
    state.full(bare_params(stt, samples.len(), trim), samples).map_err(|e| SttError::Whisper(e.to_string()))?;
    let text: String = state.as_iter().filter_map(|s| s.to_str_lossy().ok().map(|t| t.into_owned())).collect();
    Ok((started.elapsed().as_secs_f64() * 1000.0, text))
}

/// `runs` interleaved pairs (after one warm-up each when `warm_up`: the first call on a context
/// pays one-off allocations); the best of each.
pub fn compare(stt: &Stt, bare: &WhisperContext, samples: &[f32], trim: bool, runs: usize, warm_up: bool, mut tick: impl FnMut()) -> Result<SttComparison, SttError> {
    if warm_up {
        stt.transcribe_with(samples, trim)?;
        bare_once(bare, stt, samples, trim)?;
    }
    let (mut roxy, mut plain) = (Vec::new(), Vec::new());
    for i in 0..runs {
        // Alternate which goes first, so neither always follows the other's cache state.
        let mut pair = [0.0; 2];
        for side in [i % 2, 1 - i % 2] {
            pair[side] = if side == 0 {
                let t = Instant::now();
                stt.transcribe_with(samples, trim)?;
                t.elapsed().as_secs_f64() * 1000.0
            } else {
                bare_once(bare, stt, samples, trim)?.0
            };
        }
        roxy.push(pair[0]);
        plain.push(pair[1]);
        tick();
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(SttComparison { roxy_ms: best(&roxy), bare_ms: best(&plain) })
}
