//! Deciding that audio or Whisper's output is not speech.
//!
//! Whisper always wants to say something: on silence and noise it emits markers such as
//! `[BLANK_AUDIO]` or `(music)`, or invents a stock phrase. Three checks keep that out of the
//! voice loop: an energy gate before Whisper, Whisper's own no-speech probability, and a text
//! filter for markers and the well-known invented phrases.

/// 20 ms frames for the energy gate.
const FRAME: usize = 320;

/// Loudest-frame RMS below this (about -50 dBFS) is a quiet room, not a voice: skip Whisper.
/// A loudest frame rather than the whole clip, so one short word in a long pause still counts.
pub const ENERGY_FLOOR: f32 = 0.003;

/// RMS of the loudest 20 ms frame.
pub fn peak_frame_rms(samples: &[f32]) -> f32 {
    samples
        .chunks(FRAME)
        .map(|frame| (frame.iter().map(|s| s * s).sum::<f32>() / frame.len() as f32).sqrt())
        .fold(0.0, f32::max)
}

/// 32 ms analysis frames for the tone check (31 Hz bins at 16 kHz).
const TONE_FRAME: usize = 512;

/// A loud frame is tonal when this share of its energy sits within a few bins of its two
/// strongest peaks (a sine, a beep, a dial tone); voiced speech spreads over many harmonics.
const TONAL_SHARE: f32 = 0.9;

/// True when the audio is a steady tone rather than speech: nearly every loud frame is tonal and
/// its main peak stays put. Whisper spends many times real time on such audio (its fallback
/// decodes at rising temperatures) and finds no words, so it is not run.
pub fn is_steady_tone(samples: &[f32]) -> bool {
    use rustfft::{num_complex::Complex, FftPlanner};
    let fft = FftPlanner::<f32>::new().plan_fft_forward(TONE_FRAME);
    let window: Vec<f32> = (0..TONE_FRAME).map(|i| 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / TONE_FRAME as f32).cos()).collect();
    let mut buf = vec![Complex::new(0.0f32, 0.0); TONE_FRAME];
    let (mut loud, mut tonal, mut steady) = (0usize, 0usize, 0usize);
    let mut last_peak: Option<usize> = None;
    for frame in samples.chunks_exact(TONE_FRAME) {
        let rms = (frame.iter().map(|s| s * s).sum::<f32>() / TONE_FRAME as f32).sqrt();
        if rms < ENERGY_FLOOR {
            continue;
        }
        loud += 1;
        for ((b, &x), w) in buf.iter_mut().zip(frame).zip(&window) {
            *b = Complex::new(x * w, 0.0);
        }
        fft.process(&mut buf);
        let power: Vec<f32> = buf[1..TONE_FRAME / 2].iter().map(|c| c.norm_sqr()).collect();
        let total: f32 = power.iter().sum();
        if total <= 0.0 {
            continue;
        }
        let near = |k: usize| k.saturating_sub(3)..(k + 4).min(power.len());
        let first = (0..power.len()).max_by(|&a, &b| power[a].total_cmp(&power[b])).unwrap_or(0);
        let second = (0..power.len()).filter(|k| !near(first).contains(k)).max_by(|&a, &b| power[a].total_cmp(&power[b]));
        let mut share: f32 = power[near(first)].iter().sum();
        if let Some(k) = second {
            share += near(k).filter(|i| !near(first).contains(i)).map(|i| power[i]).sum::<f32>();
        }
        if share / total >= TONAL_SHARE {
            tonal += 1;
        }
        if last_peak.is_some_and(|p| p.abs_diff(first) <= 1) {
            steady += 1;
        }
        last_peak = Some(first);
    }
    loud >= 8 && tonal * 10 >= loud * 9 && steady * 10 >= (loud - 1) * 8
}

/// Removes bracketed annotations (`[BLANK_AUDIO]`, `(music)`, `*sigh*`, `♪`): they describe
/// sound, they are never words the user said.
pub fn strip_annotations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut closer: Option<char> = None;
    for c in text.chars() {
        match closer {
            Some(end) if c == end => closer = None,
            Some(_) => {}
            None => match c {
                '[' => closer = Some(']'),
                '(' => closer = Some(')'),
                '*' => closer = Some('*'),
                '♪' | '♫' => {}
                _ => out.push(c),
            },
        }
    }
    // An unclosed bracket swallowed the rest: that was an annotation cut off mid-way.
    let words: Vec<&str> = out.split_whitespace().collect();
    words.join(" ")
}

/// True when nothing word-like is left: only punctuation, dashes, ellipses.
pub fn has_words(text: &str) -> bool {
    text.chars().any(char::is_alphanumeric)
}

/// Phrases Whisper is known to invent on silence and noise (they fill its training subtitles).
/// Dropped only when Whisper itself doubts there was speech: a user can say "thank you".
const STOCK_PHRASES: &[&str] = &[
    "you",
    "thank you",
    "thanks for watching",
    "thank you for watching",
    "thank you so much for watching",
    "please subscribe",
    "bye",
    "so",
    "okay",
    "oh",
    "hmm",
];

pub fn is_stock_phrase(text: &str) -> bool {
    let norm: String = text
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace() || *c == '\'')
        .collect::<String>()
        .to_lowercase();
    let norm = norm.split_whitespace().collect::<Vec<_>>().join(" ");
    STOCK_PHRASES.contains(&norm.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freqs: &[f32], seconds: f32) -> Vec<f32> {
        (0..(seconds * 16000.0) as usize)
            .map(|i| freqs.iter().map(|f| (std::f32::consts::TAU * f * i as f32 / 16000.0).sin()).sum::<f32>() * 0.3 / freqs.len() as f32)
            .collect()
    }

    #[test]
    fn tones_and_beeps_are_steady_tones_noise_and_sweeps_are_not() {
        assert!(is_steady_tone(&tone(&[440.0], 2.0)));
        assert!(is_steady_tone(&tone(&[697.0, 1209.0], 1.0)), "a DTMF digit");
        assert!(is_steady_tone(&tone(&[1000.0], 0.5)));
        assert!(!is_steady_tone(&tone(&[440.0], 0.2)), "too short to judge");
        let mut seed = 7u32;
        let noise: Vec<f32> = (0..32000)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        assert!(!is_steady_tone(&noise));
        // A glide (a voice's pitch moves): tonal frames, but the peak does not stay put.
        let glide: Vec<f32> = (0..32000)
            .map(|i| {
                let t = i as f32 / 16000.0;
                (std::f32::consts::TAU * (200.0 * t + 1500.0 * t * t)).sin() * 0.3
            })
            .collect();
        assert!(!is_steady_tone(&glide));
        assert!(!is_steady_tone(&[]));
    }

    #[test]
    fn annotations_are_removed_and_words_kept() {
        assert_eq!(strip_annotations(" [BLANK_AUDIO]"), "");
        assert_eq!(strip_annotations("(upbeat music)"), "");
        assert_eq!(strip_annotations("♪ ♪"), "");
        assert_eq!(strip_annotations("*sigh* turn it off"), "turn it off");
        assert_eq!(strip_annotations(" Set a timer (laughs) for ten minutes."), "Set a timer for ten minutes.");
        assert_eq!(strip_annotations("[Music"), "");
        assert!(!has_words(" ... - "));
        assert!(has_words("Play 10"));
    }

    #[test]
    fn stock_phrases_match_loosely() {
        assert!(is_stock_phrase(" Thank you."));
        assert!(is_stock_phrase("Thanks for watching!"));
        assert!(is_stock_phrase("you"));
        assert!(!is_stock_phrase("Thank you, turn off the lights."));
    }

    #[test]
    fn energy_gate_uses_the_loudest_frame() {
        assert_eq!(peak_frame_rms(&[0.0; 16000]), 0.0);
        let mut clip = vec![0.0f32; 16000 * 3];
        clip[8000..8320].fill(0.1); // one loud frame in three seconds of silence
        assert!((peak_frame_rms(&clip) - 0.1).abs() < 1e-6);
        assert_eq!(peak_frame_rms(&[]), 0.0);
    }
}
