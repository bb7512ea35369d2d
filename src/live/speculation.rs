//! An answer begun at the pause that may end a command, while the VAD waits out the quiet that
//! confirms it: the LLM writes and Piper speaks into a [`Gate`] that holds the audio. The end of
//! speech opens the gate, so the opening is heard at once; more speech drops it instead: the
//! generation stops, the held audio is thrown away and nothing reaches memory.
//!
//! Only the local LLM's answers are begun early: a skill may act (set a timer, store a fact),
//! and the cloud must not see words the user has not finished saying.

use crate::audio::playback::AudioSink;
use crate::metrics::round_ms;
use crate::voice_loop::{Engine, LoopError, Playback, Turn};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Audio held until the answer is confirmed, then passed on to the speaker as it comes.
pub struct Gate {
    state: Mutex<GateState>,
}

enum GateState {
    Holding(Vec<(Vec<f32>, u32)>),
    Open { sink: Arc<dyn AudioSink>, on_first: Option<Box<dyn FnOnce() + Send>>, first_heard: Option<Instant> },
    Closed,
}

impl Default for Gate {
    fn default() -> Self {
        Gate { state: Mutex::new(GateState::Holding(Vec::new())) }
    }
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on audio goes to `sink`, what was held first; `on_first` is called when the
    /// first of it does.
    pub fn open(&self, sink: Arc<dyn AudioSink>, on_first: impl FnOnce() + Send + 'static) {
        let mut state = self.lock();
        let GateState::Holding(held) = std::mem::replace(&mut *state, GateState::Closed) else { return };
        *state = GateState::Open { sink, on_first: Some(Box::new(on_first)), first_heard: None };
        for (samples, rate) in held {
            state.pass(&samples, rate);
        }
    }

    /// Drops what is held and everything that comes later.
    pub fn close(&self) {
        *self.lock() = GateState::Closed;
    }

    /// When the first audio reached the speaker.
    pub fn first_heard(&self) -> Option<Instant> {
        match &*self.lock() {
            GateState::Open { first_heard, .. } => *first_heard,
            _ => None,
        }
    }
}

impl GateState {
    fn pass(&mut self, samples: &[f32], rate: u32) {
        match self {
            GateState::Holding(held) => held.push((samples.to_vec(), rate)),
            GateState::Open { sink, on_first, first_heard } => {
                sink.play(samples, rate);
                if first_heard.is_none() && !samples.is_empty() {
                    *first_heard = Some(Instant::now());
                    if let Some(told) = on_first.take() {
                        told();
                    }
                }
            }
            GateState::Closed => {}
        }
    }
}

impl AudioSink for Gate {
    fn play(&self, samples: &[f32], sample_rate: u32) {
        self.lock().pass(samples, sample_rate);
    }

    fn stop(&self) {
        match &mut *self.lock() {
            GateState::Holding(held) => held.clear(),
            GateState::Open { sink, .. } => sink.stop(),
            GateState::Closed => {}
        }
    }

    fn is_playing(&self) -> bool {
        match &*self.lock() {
            GateState::Open { sink, .. } => sink.is_playing(),
            _ => false,
        }
    }
}

/// The live loop's handle on an answer that may be begun early.
pub struct Speculation {
    gate: Arc<Gate>,
    cancel: Arc<AtomicBool>,
    verdict: Sender<bool>,
    /// The answer and when it began; closed without one when none was begun.
    done: Receiver<Result<(Turn, Instant), LoopError>>,
}

/// The other end, for the thread that has the transcript.
pub struct Runner {
    gate: Arc<Gate>,
    cancel: Arc<AtomicBool>,
    verdict: Mutex<Receiver<bool>>,
    done: Sender<Result<(Turn, Instant), LoopError>>,
}

impl Speculation {
    pub fn new() -> (Speculation, Runner) {
        let (gate, cancel) = (Arc::new(Gate::default()), Arc::new(AtomicBool::new(false)));
        let (verdict_tx, verdict_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let runner = Runner { gate: gate.clone(), cancel: cancel.clone(), verdict: Mutex::new(verdict_rx), done: done_tx };
        (Speculation { gate, cancel, verdict: verdict_tx, done: done_rx }, runner)
    }

    /// Barge-in and stop reach the answer through this, begun early or not.
    pub fn cancel_flag(&self) -> &Arc<AtomicBool> {
        &self.cancel
    }

    /// The user has finished (at `ended`): the held audio plays now, then the rest as it is made.
    /// Waits for the whole answer; `None` when none was begun. The turn's e2e runs from `ended`,
    /// and its `head_start` says how long before `ended` the answer began.
    pub fn confirm(self, sink: Arc<dyn AudioSink>, ended: Instant, on_first_audio: impl FnOnce() + Send + 'static) -> Option<Result<Turn, LoopError>> {
        self.gate.open(sink, on_first_audio);
        let _ = self.verdict.send(true);
        let (mut turn, began) = match self.done.recv().ok()? {
            Ok(done) => done,
            Err(e) => return Some(Err(e)),
        };
        // Heard when the gate let it through: at once if it was ready before the end of speech.
        turn.ms.e2e_first_audio = self.gate.first_heard().map(|at| round_ms(at.saturating_duration_since(ended).as_secs_f64() * 1000.0));
        let head_start_s = if began <= ended { (ended - began).as_secs_f64() } else { -(began - ended).as_secs_f64() };
        turn.ms.head_start = Some(round_ms(head_start_s * 1000.0));
        Some(Ok(turn))
    }

    /// The user went on talking (or Roxy stopped listening): stop and forget the answer.
    pub fn discard(self) {
        self.cancel.store(true, Ordering::Relaxed);
        let _ = self.verdict.send(false);
        self.gate.close();
    }
}

impl Runner {
    /// Answers `command` into the gate when the local LLM would answer it (returns at once
    /// otherwise): the turn is recorded only if the speculation is confirmed.
    pub fn run(self, engine: &Engine, command: &str) {
        if self.cancel.load(Ordering::Relaxed) || !engine.brain().local_llm_would_answer(command) {
            return;
        }
        let verdict = self.verdict;
        let keep = Arc::new(move || verdict.lock().unwrap_or_else(|e| e.into_inner()).recv().unwrap_or(false));
        let out = Playback { sink: Some(self.gate.clone()), cancel: self.cancel.clone(), on_first_audio: None, keep: Some(keep) };
        let began = Instant::now();
        let _ = self.done.send(engine.respond(command, began, &out).map(|turn| (turn, began)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::playback::WavSink;

    #[test]
    fn the_gate_holds_audio_until_opened_and_drops_it_when_closed() {
        let gate = Gate::default();
        gate.play(&[0.5; 100], 1000);
        assert!(!gate.is_playing(), "held audio is not playing");
        let sink = Arc::new(WavSink::new(1000));
        let (told_tx, told) = mpsc::channel();
        gate.open(sink.clone(), move || {
            let _ = told_tx.send(());
        });
        assert!(told.try_recv().is_ok(), "the held audio reached the speaker on opening");
        let opened = gate.first_heard().expect("heard when opened");
        gate.play(&[0.5; 50], 1000);
        assert_eq!(gate.first_heard(), Some(opened));
        crate::audio::playback::wait_until_quiet(sink.as_ref(), std::time::Duration::from_secs(2));
        assert_eq!(sink.heard().len(), 150, "held audio, then what came after");

        let closed = Gate::default();
        closed.play(&[0.5; 100], 1000);
        closed.close();
        closed.open(sink.clone(), || panic!("a closed gate passes nothing"));
        closed.play(&[0.5; 100], 1000);
        assert_eq!(closed.first_heard(), None);
        assert_eq!(sink.heard().len(), 150);
    }
}
