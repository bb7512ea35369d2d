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
