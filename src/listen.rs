//! The always-on path over recorded audio: VAD endpointing and the wake word, fed in 80 ms
//! chunks exactly as a live stream would be, with the cost of every chunk measured.
//!
//! `roxy listen --input FILE.wav` and the tests use this; the live microphone loop feeds the
//! same [`Vad`] and [`WakeDetector`] from its capture buffer.

use crate::vad::{Utterance, Vad, VadError, VadEvent, SAMPLE_RATE};
use crate::wake::{WakeDetected, WakeDetector, WakeError};
use serde::Serialize;
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
    pub p95_chunk_ms: f64,
    pub max_chunk_ms: f64,
    /// Processing seconds per second of audio (1 thread each).
    pub real_time_factor: f64,
}

impl StageCost {
    fn from_chunks(mut chunk_ms: Vec<f64>, audio_s: f64) -> StageCost {
        if chunk_ms.is_empty() {
            return StageCost::default();
        }
        let total_ms: f64 = chunk_ms.iter().sum();
        chunk_ms.sort_by(f64::total_cmp);
        let p95 = chunk_ms[((chunk_ms.len() as f64 * 0.95) as usize).min(chunk_ms.len() - 1)];
        StageCost {
            total_ms,
            mean_chunk_ms: total_ms / chunk_ms.len() as f64,
            p95_chunk_ms: p95,
            max_chunk_ms: *chunk_ms.last().unwrap_or(&0.0),
            real_time_factor: total_ms / 1000.0 / audio_s.max(1e-9),
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

/// What the always-on path heard in a recording.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ListenReport {
    pub wake: Vec<WakeDetected>,
    pub utterances: Vec<Utterance>,
    /// Highest wake score seen (useful when tuning `wake.threshold`).
    pub max_wake_score: f32,
    pub cost: ListenCost,
}

/// Runs `samples` (16 kHz mono) through `vad` and `wake` in 80 ms chunks, then closes the
/// stream (an utterance still open at the end is reported with reason `end_of_stream`).
///
/// With `gate_wake` the wake detector skips its heavy stages while the VAD hears no voice (the
/// always-on saving; detections are unchanged, see `OpenWakeWord`).
pub fn listen_samples(samples: &[f32], vad: &mut Vad, mut wake: Option<&mut (dyn WakeDetector + '_)>, gate_wake: bool) -> Result<ListenReport, ListenError> {
    let mut report = ListenReport::default();
    let cpu_before = process_cpu_s();
    let (mut vad_ms, mut wake_ms) = (Vec::new(), Vec::new());
    let on_vad = |events: Vec<VadEvent>, report: &mut ListenReport| {
        report.utterances.extend(events.into_iter().filter_map(|e| match e {
            VadEvent::SpeechEnd(u) => Some(u),
            VadEvent::SpeechStart { .. } => None,
        }))
    };
    for chunk in samples.chunks(CHUNK) {
        let started = Instant::now();
        let events = vad.push(chunk)?;
        vad_ms.push(ms_since(started));
        on_vad(events, &mut report);
        if let Some(wake) = wake.as_deref_mut() {
            let started = Instant::now();
            if gate_wake {
                wake.set_last_voice_ms(vad.last_voice_ms());
            }
            let detections = wake.push(chunk)?;
            wake_ms.push(ms_since(started));
            report.max_wake_score = report.max_wake_score.max(wake.last_score());
            report.wake.extend(detections);
        }
    }
    on_vad(vad.finish()?, &mut report);
    let audio_s = samples.len() as f64 / SAMPLE_RATE as f64;
    let cpu_s = cpu_before.zip(process_cpu_s()).map(|(a, b)| b - a);
    report.cost = ListenCost {
        audio_s,
        cpu_s_per_audio_s: cpu_s.map(|c| c / audio_s.max(1e-9)),
        chunks: samples.len().div_ceil(CHUNK),
        chunk_ms: CHUNK as f64 * 1000.0 / SAMPLE_RATE as f64,
        vad: StageCost::from_chunks(vad_ms, audio_s),
        wake: StageCost::from_chunks(wake_ms, audio_s),
    };
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
