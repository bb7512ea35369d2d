//! Shared test helpers: real speech made on the spot with espeak-ng and sox, and word error rate.
//!
//! Use from an integration test with `mod support;`. Needs `espeak-ng` and `sox` on PATH
//! (`apt-get install espeak-ng sox`, `brew install espeak-ng sox`); a missing tool fails the
//! test with that hint rather than skipping it.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// An espeak-ng voice at a speaking rate (words per minute, espeak's default is 175).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Voice {
    pub name: &'static str,
    pub wpm: u32,
}

impl Voice {
    pub const fn new(name: &'static str, wpm: u32) -> Self {
        Voice { name, wpm }
    }
}

impl std::fmt::Display for Voice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.wpm)
    }
}

/// American and British male voices and a female variant.
pub const VOICE_NAMES: [&str; 3] = ["en-us", "en-gb", "en+f3"];
/// Slow, default and fast speech.
pub const SPEEDS: [u32; 3] = [140, 175, 200];

/// Every voice at every speed.
pub fn all_voices() -> Vec<Voice> {
    VOICE_NAMES.iter().flat_map(|&name| SPEEDS.iter().map(move |&wpm| Voice::new(name, wpm))).collect()
}

/// One voice per speed, each voice once: covers both axes in three utterances per sentence.
pub fn voice_sample() -> Vec<Voice> {
    VOICE_NAMES.iter().zip(SPEEDS).map(|(&name, wpm)| Voice::new(name, wpm)).collect()
}

/// Short commands of the kind a voice assistant hears, with numbers, names and places.
pub const COMMANDS: [&str; 10] = [
    "Set a timer for ten minutes.",
    "What is the weather like in London tomorrow?",
    "Turn off the lights in the kitchen.",
    "Remind me to call my mother at five o'clock.",
    "Play some jazz music in the living room.",
    "What time is it in Tokyo?",
    "Add milk and eggs to my shopping list.",
    "How many days are left until Christmas?",
    "Send a message to John saying I will be late.",
    "Turn the volume up to fifty percent.",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noise {
    White,
    Pink,
}

impl Noise {
    fn sox_name(self) -> &'static str {
        match self {
            Noise::White => "whitenoise",
            Noise::Pink => "pinknoise",
        }
    }
}

/// How a converted file stores its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Int(u32),
    Float32,
}

/// A temporary folder of generated audio (removed when dropped).
pub struct SpeechLab {
    dir: tempfile::TempDir,
}

impl SpeechLab {
    pub fn new() -> Self {
        require_tool("espeak-ng", "--version");
        require_tool("sox", "--version");
        SpeechLab { dir: tempfile::tempdir().expect("creating a temp dir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, stem: &str) -> PathBuf {
        let safe: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect();
        self.dir.path().join(format!("{safe}.wav"))
    }

    /// `text` spoken by `voice`: espeak-ng's own output, 22.05 kHz mono 16-bit.
    pub fn speak(&self, text: &str, voice: Voice) -> PathBuf {
        let out = self.file(&format!("say-{}-{}-{:016x}", voice.name, voice.wpm, hash(text)));
        if !out.exists() {
            run(Command::new("espeak-ng").args(["-v", voice.name, "-s", &voice.wpm.to_string(), "-w"]).arg(&out).arg(text));
        }
        out
    }

    /// `src` resampled to `rate` Hz with `channels` channels in `encoding`, by sox.
    pub fn convert(&self, src: &Path, rate: u32, channels: u32, encoding: Encoding) -> PathBuf {
        let stem = src.file_stem().unwrap_or_default().to_string_lossy();
        let (tag, args): (String, Vec<&str>) = match encoding {
            Encoding::Int(8) => ("u8".into(), vec!["-e", "unsigned-integer", "-b", "8"]),
            Encoding::Int(bits) => (format!("i{bits}"), vec!["-e", "signed-integer", "-b", bits_str(bits)]),
            Encoding::Float32 => ("f32".into(), vec!["-e", "floating-point", "-b", "32"]),
        };
        let out = self.file(&format!("{stem}-{rate}-{channels}ch-{tag}"));
        run(Command::new("sox").arg(src).args(["-r", &rate.to_string(), "-c", &channels.to_string()]).args(args).arg(&out));
        out
    }

    /// `seconds` of digital silence at `rate` Hz, made by sox.
    pub fn silence(&self, seconds: f32, rate: u32) -> PathBuf {
        let out = self.file(&format!("silence-{seconds}-{rate}"));
        run(Command::new("sox").args(["-n", "-r", &rate.to_string(), "-c", "1", "-b", "16"]).arg(&out).args(["trim", "0", &seconds.to_string()]));
        out
    }

    /// `seconds` of noise at 16 kHz, peak amplitude `level` (0..1), made by sox (repeatable seed).
    pub fn noise(&self, kind: Noise, seconds: f32, level: f32) -> PathBuf {
        let out = self.file(&format!("{}-{seconds}-{level}", kind.sox_name()));
        run(Command::new("sox")
            .args(["-R", "-n", "-r", "16000", "-c", "1", "-b", "16"])
            .arg(&out)
            .args(["synth", &seconds.to_string(), kind.sox_name(), "vol", &level.to_string()]));
        out
    }

    /// `speech` with `kind` noise mixed in at `snr_db` (speech RMS over noise RMS, whole clip),
    /// written as 16 kHz mono.
    pub fn with_noise(&self, speech: &Path, kind: Noise, snr_db: f32) -> PathBuf {
        let (voice, _) = roxy::audio::wav::read_mono_16k(speech).expect("reading generated speech");
        let seconds = voice.len() as f32 / 16000.0 + 0.1;
        let (noise, _) = roxy::audio::wav::read_mono(&self.noise(kind, seconds, 0.5)).expect("reading generated noise");
        let gain = rms(&voice) / rms(&noise) / 10f32.powf(snr_db / 20.0);
        let mixed: Vec<f32> = voice.iter().zip(&noise).map(|(v, n)| v + n * gain).collect();
        let stem = speech.file_stem().unwrap_or_default().to_string_lossy();
        let out = self.file(&format!("{stem}-{}-{snr_db}dB", kind.sox_name()));
        roxy::audio::wav::write_mono(&out, &mixed, 16000).expect("writing mixed audio");
        out
    }
}

impl Default for SpeechLab {
    fn default() -> Self {
        Self::new()
    }
}

pub fn rms(samples: &[f32]) -> f32 {
    (samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32).sqrt()
}

fn bits_str(bits: u32) -> &'static str {
    match bits {
        16 => "16",
        24 => "24",
        32 => "32",
        other => panic!("no {other}-bit conversion in the test helpers"),
    }
}

fn hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

fn require_tool(tool: &str, probe: &str) {
    let ok = Command::new(tool).arg(probe).output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "`{tool}` is needed to make test speech; install it (apt-get install espeak-ng sox / brew install espeak-ng sox)");
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

// ------------------------------------------------------------------------ word error rate ----

/// Words for comparison: lowercase, punctuation dropped (apostrophes too, so "o'clock" and
/// "oclock" agree), hyphens split, numbers spelt out ("10" -> "ten", "50%" -> "fifty percent",
/// "5:00" -> "five").
pub fn normalise(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let spaced = text.to_lowercase().replace(['-', '/'], " ").replace('%', " percent ");
    for raw in spaced.split_whitespace() {
        let token: String = raw.chars().filter(|c| c.is_alphanumeric() || *c == ':').collect();
        if token.is_empty() {
            continue;
        }
        if token.chars().all(|c| c.is_ascii_digit() || c == ':') && token.chars().any(|c| c.is_ascii_digit()) {
            // "5:00" -> five, "10:30" -> ten thirty
            let mut parts = token.split(':').filter(|p| !p.is_empty());
            if let Some(hours) = parts.next() {
                words.extend(number_words(hours));
            }
            for minutes in parts.filter(|m| !m.trim_start_matches('0').is_empty()) {
                words.extend(number_words(minutes));
            }
        } else {
            words.push(token.replace(':', ""));
        }
    }
    words
}

fn number_words(digits: &str) -> Vec<String> {
    const ONES: [&str; 20] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
    ];
    const TENS: [&str; 10] = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
    let Ok(n) = digits.parse::<u64>() else { return vec![digits.to_string()] };
    fn below_thousand(n: u64, out: &mut Vec<String>) {
        let (hundreds, rest) = (n / 100, n % 100);
        if hundreds > 0 {
            out.push(ONES[hundreds as usize].into());
            out.push("hundred".into());
        }
        if rest >= 20 {
            out.push(TENS[(rest / 10) as usize].into());
            if rest % 10 > 0 {
                out.push(ONES[(rest % 10) as usize].into());
            }
        } else if rest > 0 || hundreds == 0 {
            out.push(ONES[rest as usize].into());
        }
    }
    if n >= 1_000_000 {
        return digits.chars().map(|d| ONES[d.to_digit(10).unwrap_or(0) as usize].to_string()).collect();
    }
    let mut out = Vec::new();
    if n >= 1000 {
        below_thousand(n / 1000, &mut out);
        out.push("thousand".into());
        if n % 1000 > 0 {
            below_thousand(n % 1000, &mut out);
        }
    } else {
        below_thousand(n, &mut out);
    }
    out
}

/// Word-level edit distance (substitutions + insertions + deletions) between normalised texts,
/// and the reference's word count: WER = errors / words.
pub fn word_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let r = normalise(reference);
    let h = normalise(hypothesis);
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let substitute = prev[j] + usize::from(rw != hw);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    (prev[h.len()], r.len())
}

pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (errors, words) = word_errors(reference, hypothesis);
    errors as f64 / words.max(1) as f64
}
