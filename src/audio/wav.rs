//! WAV files in and out.
//!
//! Reading accepts what people actually have (8/16/24/32-bit integer or 32-bit float PCM, any
//! rate, any number of channels) and hands the engine 16 kHz mono `f32` in [-1, 1]. Every
//! failure is a [`WavError`] naming the file and what to do; bad input never panics. What a
//! file may cost is bounded before decoding: a plausible sample rate and channel count, and at
//! most [`max_file_seconds`] of audio, whatever the header claims.

use super::resample::{resample_mono, ResampleError};
use hound::{SampleFormat, WavSpec};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The rate every stage of the engine works at (Whisper, Silero VAD).
pub const SAMPLE_RATE: u32 = 16_000;

/// Sample rates that real audio uses; outside them the header is damaged (a 1 Hz header made the
/// resampler allocate gigabytes).
pub const RATES: std::ops::RangeInclusive<u32> = 4_000..=384_000;

/// More channels than any recording Roxy is given has (7.1.4 is 12).
pub const MAX_CHANNELS: u16 = 64;

/// The longest audio read from one file unless `ROXY_MAX_AUDIO_SECONDS` says otherwise.
pub const DEFAULT_MAX_FILE_SECONDS: f64 = 3600.0;

/// The longest audio read from one file: `ROXY_MAX_AUDIO_SECONDS`, or an hour.
pub fn max_file_seconds() -> f64 {
    std::env::var("ROXY_MAX_AUDIO_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .unwrap_or(DEFAULT_MAX_FILE_SECONDS)
}

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
    #[error("{path} uses a WAV encoding Roxy cannot read ({detail}); convert it with `sox {path} -r 16000 -c 1 -e signed-integer -b 16 OUT.wav`")]
    Unsupported { path: PathBuf, detail: String },
    #[error("{path} says its sample rate is {rate} Hz, outside the 4000-384000 Hz that audio uses: the header is damaged or this is not audio. Fix: re-export it, or convert it with `sox {path} -r 16000 -c 1 OUT.wav`")]
    Rate { path: PathBuf, rate: u32 },
    #[error("{path} holds {seconds:.1} s of audio, more than the {max:.1} s Roxy reads from one file. Fix: cut it (`sox {path} OUT.wav trim 0 {max}`), or raise the limit with ROXY_MAX_AUDIO_SECONDS")]
    TooLong { path: PathBuf, seconds: f64, max: f64 },
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
    read_mono_at_most(path, max_file_seconds())
}

fn read_mono_at_most(path: &Path, max_seconds: f64) -> Result<(Vec<f32>, WavInfo), WavError> {
    let io = |source| WavError::Io { path: path.to_path_buf(), source };
    let mut file = File::open(path).map_err(io)?;
    check_riff_header(&mut file, path)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    decode_mono(BufReader::new(file), file_len, max_seconds, path)
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

fn decode_mono<R: Read>(reader: R, file_len: u64, max: f64, path: &Path) -> Result<(Vec<f32>, WavInfo), WavError> {
    let reader = hound::WavReader::new(reader).map_err(|e| classify(e, path))?;
    let spec = reader.spec();
    if !RATES.contains(&spec.sample_rate) {
        return Err(WavError::Rate { path: path.to_path_buf(), rate: spec.sample_rate });
    }
    if spec.channels == 0 || spec.channels > MAX_CHANNELS {
        return Err(WavError::Corrupt { path: path.to_path_buf(), detail: format!("{} channels", spec.channels) });
    }
    let channels = usize::from(spec.channels);
    // The header's length is untrusted: the file's size bounds what it can hold.
    let bytes_per_frame = (channels * usize::from(spec.bits_per_sample.div_ceil(8)).max(1)) as u64;
    let frames = (reader.duration() as u64).min(file_len / bytes_per_frame) as usize;
    if frames == 0 {
        return Err(WavError::Empty { path: path.to_path_buf() });
    }
    let seconds = frames as f64 / spec.sample_rate as f64;
    if seconds > max {
        return Err(WavError::TooLong { path: path.to_path_buf(), seconds, max });
    }
    let mut mono = Vec::with_capacity(frames);
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

    #[test]
    fn headers_that_would_cost_too_much_are_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.wav");
        // 64 KB of audio, as in the report: a 1 Hz header made this 2.5 GB and minutes of work.
        write(&good, spec(1, 16000, 16, false), &vec![vec![0.1]; 32_000]);
        let bytes = std::fs::read(&good).unwrap();
        let with_rate = |rate: u32| {
            let mut b = bytes.clone();
            b[24..28].copy_from_slice(&rate.to_le_bytes());
            b[28..32].copy_from_slice(&(rate * 2).to_le_bytes());
            let path = dir.path().join(format!("rate{rate}.wav"));
            std::fs::write(&path, b).unwrap();
            path
        };
        for rate in [1, 3_999, 1_000_000] {
            let err = read_mono_16k(&with_rate(rate)).unwrap_err();
            assert!(matches!(err, WavError::Rate { rate: r, .. } if r == rate), "{rate}: {err}");
            assert!(err.to_string().contains("Fix:"), "{err}");
        }
        // An 8 kHz phone recording is read as before.
        assert_eq!(read_mono_16k(&with_rate(8_000)).unwrap().0.len(), 64_000);

        let err = read_mono_at_most(&good, 1.5).unwrap_err();
        assert!(matches!(err, WavError::TooLong { .. }), "{err}");
        assert!(err.to_string().contains("holds 2.0 s of audio, more than the 1.5 s") && err.to_string().contains("ROXY_MAX_AUDIO_SECONDS"), "{err}");
        assert!(read_mono_at_most(&good, 2.5).is_ok());

        // A header that claims a day of audio in a 64 KB file: bounded by the file's size.
        let mut long = bytes.clone();
        long[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        let long_path = dir.path().join("claims-a-day.wav");
        std::fs::write(&long_path, long).unwrap();
        let _ = read_mono_16k(&long_path);

        let mut channels = bytes.clone();
        channels[22..24].copy_from_slice(&1000u16.to_le_bytes());
        let channels_path = dir.path().join("channels.wav");
        std::fs::write(&channels_path, channels).unwrap();
        assert!(read_mono_16k(&channels_path).is_err());
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
