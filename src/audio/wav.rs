//! WAV files in and out.
//!
//! Reading accepts what people actually have (8/16/24/32-bit integer or 32-bit float PCM, any
//! rate, any number of channels) and hands the engine 16 kHz mono `f32` in [-1, 1]. Every
//! failure is a [`WavError`] naming the file and what to do; bad input never panics.

use super::resample::{resample_mono, ResampleError};
use hound::{SampleFormat, WavSpec};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The rate every stage of the engine works at (Whisper, Silero VAD).
pub const SAMPLE_RATE: u32 = 16_000;

#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a WAV file (RIFF header missing); convert it with `sox {path} -r 16000 -c 1 OUT.wav`")]
    NotWav { path: PathBuf },
    #[error("{path} is truncated: the file ends before the audio its header announces ({detail}); re-export or re-record it")]
    Truncated { path: PathBuf, detail: String },
    #[error("{path} is a damaged WAV file ({detail}); re-export it, or repair it with `sox --ignore-length {path} -r 16000 -c 1 OUT.wav`")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path} uses a WAV encoding Roxy cannot read ({detail}); convert it with `sox {path} -r 16000 -c 1 -b 16 OUT.wav`")]
    Unsupported { path: PathBuf, detail: String },
    #[error("{path} contains no audio")]
    Empty { path: PathBuf },
    #[error("{path}: {source}")]
    Resample { path: PathBuf, source: ResampleError },
    #[error("cannot write {path}: {detail}")]
    Write { path: PathBuf, detail: String },
}

/// What a file held before conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WavInfo {
    pub sample_rate: u32,
    pub channels: u16,
    pub bits_per_sample: u16,
    pub float: bool,
    /// Samples per channel.
    pub frames: usize,
}

impl WavInfo {
    pub fn duration_s(&self) -> f64 {
        self.frames as f64 / self.sample_rate as f64
    }
}

/// Reads a WAV file as 16 kHz mono: channels averaged, then resampled.
pub fn read_mono_16k(path: &Path) -> Result<(Vec<f32>, WavInfo), WavError> {
    let (samples, info) = read_mono(path)?;
    let samples = resample_mono(&samples, info.sample_rate, SAMPLE_RATE)
        .map_err(|source| WavError::Resample { path: path.to_path_buf(), source })?;
    Ok((samples, info))
}

/// Reads a WAV file as mono at its own rate (channels averaged).
pub fn read_mono(path: &Path) -> Result<(Vec<f32>, WavInfo), WavError> {
    let io = |source| WavError::Io { path: path.to_path_buf(), source };
    let mut file = File::open(path).map_err(io)?;
    check_riff_header(&mut file, path)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    decode_mono(BufReader::new(file), file_len, path)
}

/// Writes mono samples as 16-bit PCM (the most widely readable form); values are clipped to [-1, 1].
pub fn write_mono(path: &Path, samples: &[f32], sample_rate: u32) -> Result<(), WavError> {
    let fail = |e: hound::Error| WavError::Write { path: path.to_path_buf(), detail: e.to_string() };
    let spec = WavSpec { channels: 1, sample_rate, bits_per_sample: 16, sample_format: SampleFormat::Int };
    let mut writer = hound::WavWriter::create(path, spec).map_err(fail)?;
    for &s in samples {
        writer.write_sample((s.clamp(-1.0, 1.0) * i16::MAX as f32).round() as i16).map_err(fail)?;
    }
    writer.finalize().map_err(fail)
}

/// hound's own message for a non-WAV file is cryptic; name the problem before it gets there.
fn check_riff_header(file: &mut File, path: &Path) -> Result<(), WavError> {
    let mut header = Vec::with_capacity(12);
    file.take(12)
        .read_to_end(&mut header)
        .map_err(|source| WavError::Io { path: path.to_path_buf(), source })?;
    let riff = header.len() >= 4 && &header[..4] == b"RIFF";
    let wave = header.len() >= 12 && &header[8..12] == b"WAVE";
    match (riff, wave) {
        (true, true) => Ok(()),
        (true, false) if header.len() < 12 => {
            Err(WavError::Truncated { path: path.to_path_buf(), detail: format!("only {} bytes", header.len()) })
        }
        _ => Err(WavError::NotWav { path: path.to_path_buf() }),
    }
}

fn decode_mono<R: Read>(reader: R, file_len: u64, path: &Path) -> Result<(Vec<f32>, WavInfo), WavError> {
    let reader = hound::WavReader::new(reader).map_err(|e| classify(e, path))?;
    let spec = reader.spec();
    if spec.sample_rate == 0 {
        return Err(WavError::Corrupt { path: path.to_path_buf(), detail: "sample rate is 0".into() });
    }
    let channels = usize::from(spec.channels);
    let frames = reader.duration() as usize;
    if frames == 0 {
        return Err(WavError::Empty { path: path.to_path_buf() });
    }
    // The header's length is untrusted: reserve no more than the file could hold.
    let mut mono = Vec::with_capacity(frames.min(file_len as usize));
    let mut push_frames = |samples: &mut dyn Iterator<Item = Result<f32, hound::Error>>| -> Result<(), WavError> {
        let mut sum = 0.0f32;
        let mut in_frame = 0;
        for sample in samples {
            sum += sample.map_err(|e| classify(e, path))?;
            in_frame += 1;
            if in_frame == channels {
                mono.push(sum / channels as f32);
                sum = 0.0;
                in_frame = 0;
            }
        }
        Ok(())
    };
    match spec.sample_format {
        SampleFormat::Float => {
            if spec.bits_per_sample != 32 {
                return Err(unsupported(path, &spec));
            }
            push_frames(&mut reader.into_samples::<f32>().map(|s| s.map(|v| if v.is_finite() { v } else { 0.0 })))?;
        }
        SampleFormat::Int => {
            // Full scale for the declared width (24-bit in a 32-bit container is still 24-bit).
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(8, 32) - 1)) as f32;
            push_frames(&mut reader.into_samples::<i32>().map(|s| s.map(|v| v as f32 * scale)))?;
        }
    }
    let info = WavInfo {
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        bits_per_sample: spec.bits_per_sample,
        float: spec.sample_format == SampleFormat::Float,
        frames: mono.len(),
    };
    Ok((mono, info))
}

fn unsupported(path: &Path, spec: &WavSpec) -> WavError {
    let kind = if spec.sample_format == SampleFormat::Float { "float" } else { "integer" };
    WavError::Unsupported { path: path.to_path_buf(), detail: format!("{}-bit {kind}", spec.bits_per_sample) }
}

fn classify(e: hound::Error, path: &Path) -> WavError {
    let path = path.to_path_buf();
    match e {
        // hound reports running out of bytes as a plain `Other` error, not an OS error.
        hound::Error::IoError(source) if is_end_of_file(&source) => {
            WavError::Truncated { path, detail: "unexpected end of file".into() }
        }
        hound::Error::IoError(source) => WavError::Io { path, source },
        hound::Error::FormatError(detail) => WavError::Corrupt { path, detail: detail.into() },
        hound::Error::Unsupported => WavError::Unsupported {
            path,
            detail: "only integer PCM and 32-bit float are read; this file is compressed (ADPCM, µ-law, ...) or 64-bit".into(),
        },
        other => WavError::Unsupported { path, detail: other.to_string() },
    }
}

fn is_end_of_file(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    e.kind() == ErrorKind::UnexpectedEof || (e.kind() == ErrorKind::Other && e.raw_os_error().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, spec: WavSpec, frames: &[Vec<f64>]) {
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for frame in frames {
            for &v in frame {
                match (spec.sample_format, spec.bits_per_sample) {
                    (SampleFormat::Float, _) => w.write_sample(v as f32).unwrap(),
                    (_, 8) => w.write_sample((v * 127.0) as i8).unwrap(),
                    (_, 16) => w.write_sample((v * 32767.0) as i16).unwrap(),
                    (_, bits) => w.write_sample((v * ((1i64 << (bits - 1)) - 1) as f64) as i32).unwrap(),
                }
            }
        }
        w.finalize().unwrap();
    }

    fn spec(channels: u16, rate: u32, bits: u16, float: bool) -> WavSpec {
        let sample_format = if float { SampleFormat::Float } else { SampleFormat::Int };
        WavSpec { channels, sample_rate: rate, bits_per_sample: bits, sample_format }
    }

    #[test]
    fn reads_every_pcm_width_and_averages_channels() {
        let dir = tempfile::tempdir().unwrap();
        for (bits, float) in [(8, false), (16, false), (24, false), (32, false), (32, true)] {
            let path = dir.path().join(format!("{bits}{float}.wav"));
            write(&path, spec(2, 16000, bits, float), &[vec![0.5, 0.25], vec![-0.5, -0.5], vec![0.0, 1.0]]);
            let (samples, info) = read_mono(&path).unwrap();
            assert_eq!((info.channels, info.bits_per_sample, info.float, info.frames), (2, bits, float, 3));
            let tolerance = if bits == 8 { 0.02 } else { 0.001 };
            for (got, want) in samples.iter().zip([0.375, -0.5, 0.5]) {
                assert!((got - want).abs() < tolerance, "{bits}-bit: {got} vs {want}");
            }
        }
    }

    #[test]
    fn resamples_to_16k_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        let tone: Vec<Vec<f64>> = (0..44100).map(|i| vec![(i as f64 * 0.05).sin() * 0.5]).collect();
        write(&path, spec(1, 44100, 16, false), &tone);
        let (samples, info) = read_mono_16k(&path).unwrap();
        assert_eq!(info.sample_rate, 44100);
        assert_eq!(samples.len(), 16000);

        let out = dir.path().join("out.wav");
        write_mono(&out, &samples, SAMPLE_RATE).unwrap();
        let (back, info) = read_mono(&out).unwrap();
        assert_eq!((info.sample_rate, info.channels, info.frames), (16000, 1, 16000));
        assert!(back.iter().zip(&samples).all(|(a, b)| (a - b).abs() < 1e-3));
    }

    #[test]
    fn bad_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.wav");
        std::fs::write(&text, "hello, not audio").unwrap();
        let err = read_mono_16k(&text).unwrap_err();
        assert!(matches!(err, WavError::NotWav { .. }));
        assert!(err.to_string().contains("notes.wav is not a WAV file (RIFF header missing)"), "{err}");
        assert!(err.to_string().contains("sox"), "{err}");

        let good = dir.path().join("good.wav");
        write(&good, spec(1, 16000, 16, false), &vec![vec![0.1]; 1000]);
        let bytes = std::fs::read(&good).unwrap();

        let truncated = dir.path().join("truncated.wav");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let err = read_mono_16k(&truncated).unwrap_err();
        assert!(matches!(err, WavError::Truncated { .. }), "{err}");
        assert!(err.to_string().contains("truncated.wav is truncated"), "{err}");

        let header_only = dir.path().join("header.wav");
        std::fs::write(&header_only, &bytes[..30]).unwrap();
        assert!(matches!(read_mono_16k(&header_only).unwrap_err(), WavError::Truncated { .. }));

        let empty = dir.path().join("empty.wav");
        write(&empty, spec(1, 16000, 16, false), &[]);
        assert!(matches!(read_mono_16k(&empty).unwrap_err(), WavError::Empty { .. }));

        let zero_bytes = dir.path().join("zero.wav");
        std::fs::write(&zero_bytes, b"").unwrap();
        assert!(matches!(read_mono_16k(&zero_bytes).unwrap_err(), WavError::NotWav { .. }));

        let mut alaw = bytes.clone();
        alaw[20] = 6; // format tag 6 = A-law
        let alaw_path = dir.path().join("alaw.wav");
        std::fs::write(&alaw_path, &alaw).unwrap();
        assert!(matches!(read_mono_16k(&alaw_path).unwrap_err(), WavError::Unsupported { .. }));

        let missing = dir.path().join("missing.wav");
        assert!(matches!(read_mono_16k(&missing).unwrap_err(), WavError::Io { .. }));
    }

    /// Flipped and dropped bytes anywhere in the file: always a result, never a panic.
    #[test]
    fn damaged_files_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.wav");
        write(&good, spec(2, 22050, 16, false), &vec![vec![0.1, -0.1]; 300]);
        let bytes = std::fs::read(&good).unwrap();
        let path = dir.path().join("damaged.wav");
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..400 {
            let mut damaged = bytes.clone();
            if round % 4 == 0 {
                damaged.truncate(next() as usize % bytes.len());
            }
            for _ in 0..1 + round % 3 {
                if damaged.is_empty() {
                    break;
                }
                let at = next() as usize % damaged.len().min(64); // the header is where it matters
                damaged[at] = next() as u8;
            }
            std::fs::write(&path, &damaged).unwrap();
            let _ = read_mono_16k(&path);
        }
    }
}
