//! Sample-rate conversion of whole mono clips (files, finished utterances).
//!
//! A fixed ratio is what files need, so this uses rubato's synchronous FFT resampler: as clean
//! as its sinc resampler and much cheaper. `process_all` trims the filter delay at the start
//! and flushes the tail, so the output is exactly `ceil(len * to / from)` samples with nothing
//! shifted or lost.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::audioadapter::Adapter;
use rubato::{Fft, FixedSync, Resampler};

/// Chunk size hint: large enough to be efficient, small enough that short clips stay cheap.
const CHUNK_FRAMES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("cannot resample from {from} Hz to {to} Hz: {message}")]
    Rate { from: u32, to: u32, message: String },
}

/// Resamples a mono clip from `from` Hz to `to` Hz. Equal rates return the input unchanged.
pub fn resample_mono(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, ResampleError> {
    let fail = |message: String| ResampleError::Rate { from, to, message };
    if from == 0 || to == 0 {
        return Err(fail("sample rates must be above zero".into()));
    }
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, CHUNK_FRAMES, 1, FixedSync::Both)
        .map_err(|e| fail(e.to_string()))?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| fail(e.to_string()))?;
    let output = resampler.process_all(&input, samples.len(), None).map_err(|e| fail(e.to_string()))?;
    let frames = output.frames();
    Ok(output.take_data().into_iter().take(frames).collect())
}

/// Fixed-ratio resampling of a live stream: push any number of samples, get what is ready.
/// Keeps the filter state between pushes, so chunk edges leave no clicks.
pub struct StreamResampler {
    inner: Option<Fft<f32>>,
    pending: Vec<f32>,
}

impl StreamResampler {
    pub fn new(from: u32, to: u32) -> Result<StreamResampler, ResampleError> {
        if from == 0 || to == 0 {
            return Err(ResampleError::Rate { from, to, message: "sample rates must be above zero".into() });
        }
        let inner = (from != to)
            .then(|| Fft::<f32>::new(from as usize, to as usize, CHUNK_FRAMES, 1, FixedSync::Input))
            .transpose()
            .map_err(|e| ResampleError::Rate { from, to, message: e.to_string() })?;
        Ok(StreamResampler { inner, pending: Vec::new() })
    }

    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<f32>, ResampleError> {
        let Some(resampler) = self.inner.as_mut() else {
            return Ok(samples.to_vec());
        };
        self.pending.extend_from_slice(samples);
        let mut out = Vec::new();
        loop {
            let need = resampler.input_frames_next();
            if self.pending.len() < need {
                break;
            }
            let fail = |message: String| ResampleError::Rate { from: 0, to: 0, message };
            let input = InterleavedSlice::new(&self.pending[..need], 1, need).map_err(|e| fail(e.to_string()))?;
            let chunk = resampler.process(&input, None).map_err(|e| fail(e.to_string()))?;
            let frames = chunk.frames();
            out.extend(chunk.take_data().into_iter().take(frames));
            self.pending.drain(..need);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: u32, seconds: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n).map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin() * 0.5).collect()
    }

    /// Sample index of the first value above half the peak: where a click lands.
    fn onset(samples: &[f32]) -> usize {
        samples.iter().position(|s| s.abs() > 0.25).unwrap_or(usize::MAX)
    }

    #[test]
    fn lengths_follow_the_ratio_with_nothing_lost() {
        for (from, to) in [(8000, 16000), (22050, 16000), (44100, 16000), (48000, 16000), (16000, 48000)] {
            for len in [1usize, 100, 1023, 1024, 1025, 12345, 48000] {
                let input = vec![0.1f32; len];
                let out = resample_mono(&input, from, to).unwrap();
                let expected = (len as f64 * to as f64 / from as f64).ceil() as usize;
                assert_eq!(out.len(), expected, "{from} -> {to}, {len} samples");
            }
        }
    }

    #[test]
    fn keeps_a_tone_and_its_timing() {
        let input = sine(440.0, 48000, 1.0);
        let out = resample_mono(&input, 48000, 16000).unwrap();
        let expected = sine(440.0, 16000, 1.0);
        // Skip the edges, where the filter sees the clip's hard start and end.
        let err: f32 = out[800..15200].iter().zip(&expected[800..15200]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 0.02, "max error {err}");

        // An impulse at 0.5 s must stay at 0.5 s: the startup delay is trimmed.
        let mut click = vec![0.0f32; 44100];
        click[22050] = 1.0;
        click[22051] = 1.0;
        let out = resample_mono(&click, 44100, 16000).unwrap();
        let at = onset(&out);
        assert!((7995..=8005).contains(&at), "click moved to sample {at}");
    }

    #[test]
    fn same_rate_and_empty_are_passthrough_and_zero_rate_is_an_error() {
        assert_eq!(resample_mono(&[0.5, -0.5], 16000, 16000).unwrap(), vec![0.5, -0.5]);
        assert!(resample_mono(&[], 44100, 16000).unwrap().is_empty());
        assert!(resample_mono(&[0.0], 0, 16000).is_err());
    }

    #[test]
    fn a_stream_resampled_in_odd_chunks_matches_the_rate_and_the_tone() {
        let input = sine(440.0, 48000, 1.0);
        let mut stream = StreamResampler::new(48000, 16000).unwrap();
        let mut out = Vec::new();
        for chunk in input.chunks(317) {
            out.extend(stream.push(chunk).unwrap());
        }
        // All but the last partial block is out: within one block of a third of the input.
        assert!((16000 - out.len() as i64).unsigned_abs() <= 1024, "{}", out.len());
        // Still a 440 Hz tone: count zero crossings over the settled middle part.
        let middle = &out[2000..14000];
        let crossings = middle.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
        let hz = crossings as f32 / 2.0 / (middle.len() as f32 / 16000.0);
        assert!((hz - 440.0).abs() < 5.0, "{hz} Hz");
        assert!(StreamResampler::new(16000, 16000).unwrap().push(&[0.5, -0.5]).unwrap() == vec![0.5, -0.5]);
    }
}
