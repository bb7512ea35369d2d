//! Endpointing: turns per-frame speech probabilities into utterances.
//!
//! Pure logic (no model), so its rules are unit-tested with made-up probabilities. The rules
//! follow silero-vad's own `get_speech_timestamps`: speech starts at a frame at or above
//! `threshold`; once started, only frames below `threshold - 0.15` count as silence (hysteresis,
//! so a soft syllable does not end the utterance), and a frame at or above `threshold` cancels the
//! silence run.

use super::silero::FRAME;
use super::{ms_to_samples, samples_to_ms, EndReason, Utterance, VadEvent};
use crate::config::VadConfig;
use std::collections::VecDeque;

/// Endpointing rules, in milliseconds of 16 kHz audio.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSettings {
    /// Probability at which a frame counts as speech.
    pub threshold: f32,
    /// Below this (once in speech) a frame counts as silence.
    pub neg_threshold: f32,
    /// Voiced time needed before an utterance starts: less is a click. Below silero's offline
    /// 250 ms because one-word replies ("Hi.", "No.") can be ~200 ms.
    pub min_speech_ms: u32,
    /// A pause this long inside the onset is tolerated (a short first word followed by a stop
    /// consonant: "What t-ime"); a longer one abandons it.
    pub onset_gap_ms: u32,
    /// Silence after speech that ends the utterance.
    pub end_silence_ms: u32,
    /// An utterance is cut here even if the speaker goes on.
    pub max_utterance_ms: u32,
    /// Audio kept before the detected start so the first consonant is not clipped (Silero fires
    /// a frame or two into a word).
    pub pre_roll_ms: u32,
    /// Audio kept after the detected end (trailing consonants are quiet).
    pub post_roll_ms: u32,
}

impl Default for EndpointSettings {
    fn default() -> Self {
        EndpointSettings::from_config(&VadConfig::default())
    }
}

impl EndpointSettings {
    pub fn from_config(config: &VadConfig) -> Self {
        EndpointSettings {
            threshold: config.threshold,
            // Default 0.15: silero-vad's own hysteresis.
            neg_threshold: (config.threshold - config.hysteresis).max(0.01),
            min_speech_ms: config.min_speech_ms,
            onset_gap_ms: config.onset_gap_ms,
            end_silence_ms: config.end_silence_ms,
            max_utterance_ms: config.max_utterance_ms,
            pre_roll_ms: config.pre_roll_ms,
            post_roll_ms: config.post_roll_ms.min(config.end_silence_ms),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// Speech heard since `start`: `voiced` samples of it so far, and the current run of `gap`
    /// silent samples.
    Onset { start: u64, voiced: u64, gap: u64 },
    /// In an utterance; `silence_since` is where the current silence run began.
    Speaking { start: u64, silence_since: Option<u64> },
}

/// Per-stream endpointing state.
#[derive(Debug)]
pub struct Endpointer {
    settings: EndpointSettings,
    state: State,
    /// Stream position (samples) of the next frame.
    pos: u64,
    /// The last `pre_roll` samples before the current frame (Idle), or everything since
    /// `buffer_start` (Onset/Speaking).
    buffer: VecDeque<f32>,
    buffer_start: u64,
    /// Whether to send [`VadEvent::Pause`]: each one copies the utterance, wasted on a
    /// consumer that only wants utterances.
    pauses: bool,
    /// The silence run (its start) a [`VadEvent::Pause`] was sent for.
    paused_at: Option<u64>,
}

impl Endpointer {
    pub fn new(settings: EndpointSettings) -> Self {
        Endpointer { settings, state: State::Idle, pos: 0, buffer: VecDeque::new(), buffer_start: 0, pauses: false, paused_at: None }
    }

    /// Send [`VadEvent::Pause`] from now on (or stop).
    pub fn report_pauses(&mut self, on: bool) {
        self.pauses = on;
    }

    pub fn settings(&self) -> &EndpointSettings {
        &self.settings
    }

    /// Stream position in samples (16 kHz) after the frames pushed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    pub fn in_speech(&self) -> bool {
        matches!(self.state, State::Speaking { .. })
    }

    /// Feeds one frame and its speech probability; returns the event it caused, if any.
    pub fn push_frame(&mut self, frame: &[f32], prob: f32) -> Option<VadEvent> {
        let s = &self.settings;
        let frame_start = self.pos;
        let frame_end = frame_start + frame.len() as u64;
        self.buffer.extend(frame.iter().copied());
        self.pos = frame_end;
        let speech = prob >= s.threshold;
        let silence = prob < s.neg_threshold;

        let (next, event) = match self.state {
            State::Idle if speech => self.onset_progress(frame_start, frame.len() as u64, 0),
            State::Idle => (State::Idle, None),
            State::Onset { start, voiced, gap } => {
                let n = frame.len() as u64;
                let (voiced, gap) = if silence { (voiced, gap + n) } else { (voiced + n, 0) };
                if gap > ms_to_samples(s.onset_gap_ms) {
                    (State::Idle, None)
                } else {
                    self.onset_progress(start, voiced, gap)
                }
            }
            State::Speaking { start, silence_since } => {
                let silence_since = if speech {
                    None
                } else if silence {
                    silence_since.or(Some(frame_start))
                } else {
                    silence_since
                };
                match silence_since {
                    Some(since) if frame_end - since >= ms_to_samples(s.end_silence_ms) => {
                        (State::Idle, Some(self.finish(start, since, EndReason::Silence)))
                    }
                    _ if frame_end - start >= ms_to_samples(s.max_utterance_ms) => {
                        (State::Idle, Some(self.finish(start, silence_since.unwrap_or(frame_end), EndReason::MaxLength)))
                    }
                    // Quiet for the post-roll: the utterance is what it will be if the quiet lasts.
                    Some(since) if self.pauses && self.paused_at != Some(since) && frame_end - since >= ms_to_samples(s.post_roll_ms) => {
                        self.paused_at = Some(since);
                        (State::Speaking { start, silence_since }, Some(VadEvent::Pause(self.cut(start, since, EndReason::Silence))))
                    }
                    _ => (State::Speaking { start, silence_since }, None),
                }
            }
        };
        self.state = next;
        if self.state == State::Idle {
            self.trim_to_pre_roll();
        }
        event
    }

    /// Ends an open utterance at the end of the stream (a file ran out mid-sentence).
    pub fn flush(&mut self) -> Option<VadEvent> {
        self.close(EndReason::EndOfStream)
    }

    /// Ends an open utterance here, for `reason`; speech still in its onset is dropped.
    pub fn close(&mut self, reason: EndReason) -> Option<VadEvent> {
        let event = match self.state {
            State::Speaking { start, silence_since } => Some(self.finish(start, silence_since.unwrap_or(self.pos), reason)),
            _ => None,
        };
        self.state = State::Idle;
        self.trim_to_pre_roll();
        event
    }

    pub fn reset(&mut self) {
        self.state = State::Idle;
        self.pos = 0;
        self.buffer.clear();
        self.buffer_start = 0;
        self.paused_at = None;
    }

    fn onset_progress(&mut self, start: u64, voiced: u64, gap: u64) -> (State, Option<VadEvent>) {
        if voiced >= ms_to_samples(self.settings.min_speech_ms) {
            (State::Speaking { start, silence_since: None }, Some(VadEvent::SpeechStart { at_ms: samples_to_ms(start) }))
        } else {
            (State::Onset { start, voiced, gap }, None)
        }
    }

    fn finish(&mut self, start: u64, end: u64, reason: EndReason) -> VadEvent {
        VadEvent::SpeechEnd(self.cut(start, end, reason))
    }

    /// The utterance `[start, end)` (plus pre/post roll) from the buffer.
    fn cut(&self, start: u64, end: u64, reason: EndReason) -> Utterance {
        let audio_start = start.saturating_sub(ms_to_samples(self.settings.pre_roll_ms)).max(self.buffer_start);
        let audio_end = (end + ms_to_samples(self.settings.post_roll_ms)).min(self.pos);
        let from = (audio_start - self.buffer_start) as usize;
        let to = (audio_end - self.buffer_start) as usize;
        let samples: Vec<f32> = self.buffer.range(from..to).copied().collect();
        Utterance { start_ms: samples_to_ms(start), end_ms: samples_to_ms(end), audio_start_ms: samples_to_ms(audio_start), samples, reason }
    }

    fn trim_to_pre_roll(&mut self) {
        // Keep whole frames' worth of history so the pre-roll is always available.
        let keep = ms_to_samples(self.settings.pre_roll_ms) as usize + FRAME;
        if self.buffer.len() > keep {
            self.buffer.drain(..self.buffer.len() - keep);
        }
        self.buffer_start = self.pos - self.buffer.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEECH: f32 = 0.9;
    const QUIET: f32 = 0.05;

    /// Runs `probs` (one per 32 ms frame) through an endpointer; frame `i` holds the value `i`.
    fn run(settings: EndpointSettings, probs: &[f32]) -> Vec<VadEvent> {
        run_with(Endpointer::new(settings), probs)
    }

    fn run_with(mut ep: Endpointer, probs: &[f32]) -> Vec<VadEvent> {
        let mut events: Vec<VadEvent> = Vec::new();
        for (i, &p) in probs.iter().enumerate() {
            let frame = vec![i as f32; FRAME];
            events.extend(ep.push_frame(&frame, p));
        }
        events.extend(ep.flush());
        events
    }

    fn frames(ms: u32) -> usize {
        (ms_to_samples(ms) as usize).div_ceil(FRAME)
    }

    fn pattern(parts: &[(f32, u32)]) -> Vec<f32> {
        parts.iter().flat_map(|&(p, ms)| std::iter::repeat_n(p, frames(ms))).collect()
    }

    fn utterances(events: &[VadEvent]) -> Vec<&Utterance> {
        events.iter().filter_map(|e| if let VadEvent::SpeechEnd(u) = e { Some(u) } else { None }).collect()
    }

    #[test]
    fn speech_between_silences_is_one_utterance_with_pre_roll() {
        let probs = pattern(&[(QUIET, 1024), (SPEECH, 1024), (QUIET, 1024)]);
        let events = run(EndpointSettings::default(), &probs);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0], VadEvent::SpeechStart { at_ms: 1024 });
        let u = utterances(&events)[0];
        assert_eq!((u.start_ms, u.end_ms, u.reason), (1024, 2048, EndReason::Silence));
        // Pre-roll: 300 ms before the start; post-roll 200 ms after the end.
        assert_eq!(u.audio_start_ms, 724);
        assert_eq!(u.samples.len() as u64, ms_to_samples(300 + 1024 + 200));
        // The first sample is from the frame 300 ms before the start (frame values are indices).
        assert_eq!(u.samples[0], (ms_to_samples(724) / FRAME as u64) as f32);
    }

    #[test]
    fn a_pause_gives_the_utterance_early_and_exactly_as_it_ends() {
        let probs = pattern(&[(QUIET, 1024), (SPEECH, 1024), (QUIET, 150), (SPEECH, 512), (QUIET, 1024)]);
        assert!(!run(EndpointSettings::default(), &probs).iter().any(|e| matches!(e, VadEvent::Pause(_))), "only when asked for");
        let mut ep = Endpointer::new(EndpointSettings::default());
        ep.report_pauses(true);
        let events = run_with(ep, &probs);
        let pauses: Vec<&Utterance> = events.iter().filter_map(|e| if let VadEvent::Pause(u) = e { Some(u) } else { None }).collect();
        // A 150 ms gap is shorter than the post-roll: no pause there, one at the end.
        assert_eq!(pauses.len(), 1, "{events:?}");
        let end = utterances(&events)[0];
        assert_eq!(pauses[0], end, "the pause carries the utterance the end will");
        let at = events.iter().position(|e| matches!(e, VadEvent::Pause(_))).unwrap();
        assert!(matches!(events[at + 1], VadEvent::SpeechEnd(_)), "{events:?}");
    }

    #[test]
    fn a_blip_shorter_than_min_speech_is_ignored() {
        let probs = pattern(&[(QUIET, 500), (SPEECH, 96), (QUIET, 1000)]);
        assert!(run(EndpointSettings::default(), &probs).is_empty());
    }

    #[test]
    fn a_short_first_word_before_a_gap_starts_the_utterance() {
        // "What" (128 ms), a 200 ms stop closure, then the rest.
        let probs = pattern(&[(QUIET, 1024), (SPEECH, 128), (QUIET, 192), (SPEECH, 800), (QUIET, 1000)]);
        let events = run(EndpointSettings::default(), &probs);
        assert_eq!(events[0], VadEvent::SpeechStart { at_ms: 1024 }, "{events:?}");
        // Two clicks 200 ms apart are not speech.
        let clicks = pattern(&[(QUIET, 1024), (SPEECH, 32), (QUIET, 192), (SPEECH, 32), (QUIET, 1000)]);
        assert!(run(EndpointSettings::default(), &clicks).is_empty());
    }

    #[test]
    fn a_short_pause_does_not_end_the_utterance_but_a_long_one_does() {
        let s = EndpointSettings::default();
        let short = pattern(&[(SPEECH, 800), (QUIET, 320), (SPEECH, 800), (QUIET, 1000)]);
        assert_eq!(utterances(&run(s.clone(), &short)).len(), 1);
        let long = pattern(&[(SPEECH, 800), (QUIET, 1500), (SPEECH, 800), (QUIET, 1000)]);
        let u = run(s, &long);
        assert_eq!(utterances(&u).len(), 2, "{u:?}");
    }

    #[test]
    fn hysteresis_keeps_soft_frames_inside_speech() {
        // 0.4 is below the threshold (0.5) but above the silence level (0.35).
        let probs = pattern(&[(SPEECH, 500), (0.4, 1000), (SPEECH, 500), (QUIET, 1000)]);
        let events = run(EndpointSettings::default(), &probs);
        assert_eq!(utterances(&events).len(), 1, "{events:?}");
    }

    #[test]
    fn max_length_cuts_a_monologue() {
        let s = EndpointSettings { max_utterance_ms: 2000, ..Default::default() };
        let events = run(s, &pattern(&[(SPEECH, 5000)]));
        let u = utterances(&events);
        assert!(u.len() >= 2, "{events:?}");
        assert_eq!(u[0].reason, EndReason::MaxLength);
        assert!(u[0].end_ms - u[0].start_ms <= 2000 + 32);
    }

    #[test]
    fn tuning_comes_from_the_config() {
        let defaults = EndpointSettings::default();
        assert_eq!((defaults.min_speech_ms, defaults.onset_gap_ms, defaults.pre_roll_ms, defaults.post_roll_ms), (180, 300, 300, 200));
        assert!((defaults.neg_threshold - 0.35).abs() < 1e-6);
        let config = VadConfig { min_speech_ms: 400, pre_roll_ms: 100, post_roll_ms: 900, hysteresis: 0.3, ..Default::default() };
        let s = EndpointSettings::from_config(&config);
        assert_eq!((s.min_speech_ms, s.pre_roll_ms, s.post_roll_ms), (400, 100, 500), "post-roll is capped at end_silence_ms");
        assert!((s.neg_threshold - 0.2).abs() < 1e-6);
        // A 300 ms word starts an utterance by default but not with min_speech_ms = 400.
        let word = pattern(&[(QUIET, 500), (SPEECH, 300), (QUIET, 1000)]);
        assert_eq!(utterances(&run(defaults, &word)).len(), 1);
        assert!(run(s.clone(), &word).is_empty());
        // The pre-roll follows the key.
        let u = run(s, &pattern(&[(QUIET, 1024), (SPEECH, 1024), (QUIET, 1024)]));
        assert_eq!(utterances(&u)[0].audio_start_ms, 1024 - 100);
    }

    #[test]
    fn end_of_stream_flushes_an_open_utterance() {
        let events = run(EndpointSettings::default(), &pattern(&[(QUIET, 300), (SPEECH, 1000)]));
        let u = utterances(&events);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].reason, EndReason::EndOfStream);
    }
}
