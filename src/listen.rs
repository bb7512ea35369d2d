//! The always-on path over recorded audio: VAD endpointing and the wake word, fed in 80 ms
//! chunks exactly as a live stream would be, with the cost of every chunk measured.
//!
//! `roxy listen --input FILE.wav` and the tests use this; the live microphone loop feeds the
//! same [`Vad`] and [`WakeDetector`] from its capture buffer.

use crate::vad::{Utterance, Vad, VadError, VadEvent, SAMPLE_RATE};
use crate::wake::{WakeDetected, WakeDetector, WakeError};
use serde::Serialize;
use std::collections::VecDeque;
use std::time::Instant;

/// Samples per chunk fed to the stages (80 ms: openWakeWord's step; VAD frames it into 32 ms).
pub const CHUNK: usize = crate::wake::CHUNK;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(transparent)]
    Vad(#[from] VadError),
    #[error(transparent)]
    Wake(#[from] WakeError),
}

/// Processing cost of one stage over a whole stream, in wall-clock ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StageCost {
    pub total_ms: f64,
    pub mean_chunk_ms: f64,
    /// Over the most recent chunks (up to ~17 minutes of them).
    pub p95_chunk_ms: f64,
    pub max_chunk_ms: f64,
    /// Processing seconds per second of audio (1 thread each).
    pub real_time_factor: f64,
}

/// Per-chunk times of one stage; bounded, so a live stream can keep it forever.
#[derive(Debug, Default)]
struct ChunkTimes {
    total_ms: f64,
    count: usize,
    max_ms: f64,
    recent: VecDeque<f64>,
}

impl ChunkTimes {
    const RECENT: usize = 12_500;

    fn add(&mut self, ms: f64) {
        self.total_ms += ms;
        self.count += 1;
        self.max_ms = self.max_ms.max(ms);
        if self.recent.len() == Self::RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(ms);
    }

    fn cost(&self, audio_s: f64) -> StageCost {
        if self.count == 0 {
            return StageCost::default();
        }
        let mut sorted: Vec<f64> = self.recent.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let p95 = sorted[((sorted.len() as f64 * 0.95) as usize).min(sorted.len() - 1)];
        StageCost {
            total_ms: self.total_ms,
            mean_chunk_ms: self.total_ms / self.count as f64,
            p95_chunk_ms: p95,
            max_chunk_ms: self.max_ms,
            real_time_factor: self.total_ms / 1000.0 / audio_s.max(1e-9),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ListenCost {
    pub audio_s: f64,
    /// CPU seconds the whole process used while listening, per second of audio (Linux; the
    /// wall-clock figures below also count time spent waiting for a busy CPU).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_s_per_audio_s: Option<f64>,
    pub chunks: usize,
    pub chunk_ms: f64,
    pub vad: StageCost,
    pub wake: StageCost,
}

/// What the always-on path heard, in stream order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ListenEvent {
    Wake(WakeDetected),
    SpeechStart { at_ms: u64 },
    /// See [`VadEvent::Pause`].
    Pause(Utterance),
    SpeechEnd(Utterance),
}

impl From<VadEvent> for ListenEvent {
    fn from(e: VadEvent) -> Self {
        match e {
            VadEvent::SpeechStart { at_ms } => ListenEvent::SpeechStart { at_ms },
            VadEvent::Pause(u) => ListenEvent::Pause(u),
            VadEvent::SpeechEnd(u) => ListenEvent::SpeechEnd(u),
        }
    }
}

/// One stream through VAD and the wake word: push 16 kHz mono audio in any chunk size, get
/// typed events; every stage's cost per chunk is kept. The live loop and the file path both use it.
pub struct Listener<'a, 'w> {
    vad: &'a mut Vad,
    wake: Option<&'a mut (dyn WakeDetector + 'w)>,
    /// Let the wake detector skip its heavy stages while the VAD hears no voice (the always-on
    /// saving; detections are unchanged, see `OpenWakeWord`).
    gate_wake: bool,
    vad_times: ChunkTimes,
    wake_times: ChunkTimes,
    samples: u64,
    max_wake_score: f32,
}

impl<'a, 'w> Listener<'a, 'w> {
    pub fn new(vad: &'a mut Vad, wake: Option<&'a mut (dyn WakeDetector + 'w)>, gate_wake: bool) -> Self {
        Listener { vad, wake, gate_wake, vad_times: ChunkTimes::default(), wake_times: ChunkTimes::default(), samples: 0, max_wake_score: 0.0 }
    }

    /// Feeds one chunk (80 ms is what the stages work in; any size is accepted).
    pub fn push(&mut self, chunk: &[f32]) -> Result<Vec<ListenEvent>, ListenError> {
        self.samples += chunk.len() as u64;
        let started = Instant::now();
        let mut events: Vec<ListenEvent> = self.vad.push(chunk)?.into_iter().map(Into::into).collect();
        self.vad_times.add(ms_since(started));
        if let Some(wake) = self.wake.as_deref_mut() {
            let started = Instant::now();
            if self.gate_wake {
                wake.set_last_voice_ms(self.vad.last_voice_ms());
            }
            let detections = wake.push(chunk)?;
            self.wake_times.add(ms_since(started));
            self.max_wake_score = self.max_wake_score.max(wake.last_score());
            events.extend(detections.into_iter().map(ListenEvent::Wake));
        }
        Ok(events)
    }

    /// Ends the stream: an utterance still open is reported with reason `end_of_stream`.
    pub fn finish(&mut self) -> Result<Vec<ListenEvent>, ListenError> {
        Ok(self.vad.finish()?.into_iter().map(Into::into).collect())
    }

    /// Closes an open utterance now, for push-to-talk's release; the stream goes on.
    pub fn close_utterance(&mut self) -> Option<crate::vad::Utterance> {
        self.vad.close_utterance()
    }

    /// Highest wake score so far (useful when tuning `wake.threshold`).
    pub fn max_wake_score(&self) -> f32 {
        self.max_wake_score
    }

    /// Cost so far (CPU time is measured by [`listen_samples`], not here).
    pub fn cost(&self) -> ListenCost {
        let audio_s = self.samples as f64 / SAMPLE_RATE as f64;
        ListenCost {
            audio_s,
            cpu_s_per_audio_s: None,
            chunks: self.vad_times.count,
            chunk_ms: CHUNK as f64 * 1000.0 / SAMPLE_RATE as f64,
            vad: self.vad_times.cost(audio_s),
            wake: self.wake_times.cost(audio_s),
        }
    }
}

/// What the always-on path heard in a recording.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ListenReport {
    pub wake: Vec<WakeDetected>,
    pub utterances: Vec<Utterance>,
    /// Highest wake score seen (useful when tuning `wake.threshold`).
    pub max_wake_score: f32,
    pub cost: ListenCost,
}

/// Runs `samples` (16 kHz mono) through `vad` and `wake` in 80 ms chunks, as a live stream
/// would arrive, then closes the stream. `gate_wake`: see [`Listener`].
pub fn listen_samples(samples: &[f32], vad: &mut Vad, wake: Option<&mut (dyn WakeDetector + '_)>, gate_wake: bool) -> Result<ListenReport, ListenError> {
    let cpu_before = process_cpu_s();
    let mut listener = Listener::new(vad, wake, gate_wake);
    let mut events = Vec::new();
    for chunk in samples.chunks(CHUNK) {
        events.extend(listener.push(chunk)?);
    }
    events.extend(listener.finish()?);
    let mut report = ListenReport { max_wake_score: listener.max_wake_score(), cost: listener.cost(), ..Default::default() };
    report.cost.cpu_s_per_audio_s = cpu_before.zip(process_cpu_s()).map(|(a, b)| (b - a) / report.cost.audio_s.max(1e-9));
    for event in events {
        match event {
            ListenEvent::Wake(w) => report.wake.push(w),
            ListenEvent::SpeechEnd(u) => report.utterances.push(u),
            ListenEvent::SpeechStart { .. } | ListenEvent::Pause(_) => {}
        }
    }
    Ok(report)
}

/// User + system CPU time of this process, from /proc (10 ms resolution); `None` elsewhere.
fn process_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces): utime is the 12th, stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // The kernel reports in USER_HZ, which is 100 on every Linux ABI Rust targets.
    Some(ticks / 100.0)
}

fn ms_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}
