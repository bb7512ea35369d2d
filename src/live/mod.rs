//! The live loop: microphone in, speaker out, wake word armed, until told to quit. One control
//! thread owns the [`Coordinator`] and feeds it everything in order: audio events (wake word,
//! end of speech), commands (hotkey, menu, stdin), answer progress and timers. Answers run on
//! their own thread, so listening (and barge-in) never waits for the LLM or TTS.

mod speculation;

use crate::audio::capture::{CaptureEvent, DeviceFormat, SAMPLE_RATE};
use crate::audio::playback::{wait_until_quiet, AudioSink};
use crate::coordinator::{Coordinator, Effect, Input, State, Trigger};
use crate::listen::{ListenEvent, Listener};
use crate::metrics::{round_ms, Stage};
use crate::vad::{EndpointSettings, Utterance, Vad};
use crate::voice_loop::{Engine, LoopError, Playback, Turn};
use crate::wake::{WakeDetector, WakeSettings};
use serde::Serialize;
use speculation::Speculation;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// From the hotkey, the menu or the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Activate(Trigger),
    /// Push-to-talk released: what was said so far is the utterance (nothing said: back to idle).
    EndUtterance,
    Stop,
    /// Ignore (true) or heed (false) the wake word; the hotkey and menu still work.
    MuteWake(bool),
    Quit,
}

/// What the live loop reports (the CLI prints these; the app shows them).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LiveEvent {
    Ready { device: String, sample_rate: u32 },
    State { state: State },
    Wake { model: String, score: f32, at_ms: u64 },
    /// `interrupted`: barge-in or stop cut it short (the turn holds what was made by then).
    Turn { n: u64, interrupted: bool, turn: Box<Turn> },
    NothingHeard { n: u64 },
    Timer { text: String },
    Mic { kind: MicProblem, problem: String },
    Error { message: String },
}

/// What is wrong with the microphone: the first two mean Roxy cannot hear, the last only that
/// some audio was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MicProblem {
    /// Only zeros: muted, or not allowed (macOS privacy).
    Silent,
    /// The device went away.
    Lost,
    /// The machine was too busy to keep up; listening goes on.
    Overrun,
}

impl MicProblem {
    /// Roxy cannot hear the user until it is fixed.
    pub fn is_blocking(self) -> bool {
        self != MicProblem::Overrun
    }
}

pub struct LiveOptions {
    /// Listening with no speech for this long goes back to idle (stream time).
    pub listen_timeout_ms: u64,
    /// Stop by itself at this moment (tests, demos).
    pub until: Option<Instant>,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions { listen_timeout_ms: 8_000, until: None }
    }
}

const OVERRUN_REPORT_EVERY: Duration = Duration::from_secs(5);

/// A transcription started at a pause, for the utterance spanning `span` (ms), and the answer
/// that may be begun from it.
struct EarlyTranscript {
    span: (u64, u64),
    result: Receiver<Result<crate::stt::Transcript, crate::stt::SttError>>,
    answer: Speculation,
}

enum Progress {
    FirstAudio(u64),
    Done(u64, Result<Option<(Box<Turn>, bool)>, String>),
}

struct Control<'e> {
    engine: &'e Arc<Engine>,
    sink: Arc<dyn AudioSink>,
    coordinator: Coordinator,
    progress: Sender<Progress>,
    /// Samples heard so far, and the same as stream time.
    stream_samples: u64,
    stream_ms: u64,
    listening_since_ms: u64,
    speech_open: bool,
    utterance: Option<Utterance>,
    /// Processing ms of the chunks that fired the wake word and closed the utterance.
    wake_ms: Option<f64>,
    endpoint_ms: Option<f64>,
    /// The utterance as it stood when the speaker paused, already being transcribed.
    early: Option<EarlyTranscript>,
    cancel: Option<(u64, Arc<AtomicBool>)>,
    earcon: Arc<Vec<f32>>,
    earcon_rate: u32,
    on_event: &'e mut dyn FnMut(&LiveEvent),
}

/// Runs until `Command::Quit`, `options.until`, or the command channel closing. `audio` is a
/// microphone's events (`Microphone::events`) or any other source of them ([`file_source`]).
pub fn run(engine: Arc<Engine>, audio: &Receiver<CaptureEvent>, sink: Arc<dyn AudioSink>, commands: Receiver<Command>, options: LiveOptions, on_event: &mut dyn FnMut(&LiveEvent)) -> Result<(), LoopError> {
    let config = engine.config().clone();
    let mut vad = Vad::new(engine.vad_model(), EndpointSettings::from_config(&config.vad));
    // Commands are transcribed at the pause that may end them (see `transcribe_early`).
    vad.report_pauses(true);
    let mut detector = engine.wake_models().map(|m| m.detector(WakeSettings::from_config(&config.wake)));
    let mut listener = Listener::new(&mut vad, detector.as_mut().map(|d| d as &mut dyn WakeDetector), true);
    let timers = engine.take_timer_events();
    let (progress_tx, progress) = mpsc::channel();
    let (earcon, earcon_rate) = earcon();
    let mut control = Control {
        engine: &engine,
        sink,
        coordinator: Coordinator::default(),
        progress: progress_tx,
        stream_samples: 0,
        stream_ms: 0,
        listening_since_ms: 0,
        speech_open: false,
        utterance: None,
        wake_ms: None,
        endpoint_ms: None,
        early: None,
        cancel: None,
        earcon: Arc::new(earcon),
        earcon_rate,
        on_event,
    };
    let wake_on = engine.wake_models().is_some();
    // (samples dropped since the last report, when it was); the first overrun is reported at once.
    let mut overruns = (0u64, None::<Instant>);
    let mut wake_muted = false;
    (control.on_event)(&LiveEvent::State { state: State::Idle });
    loop {
        if options.until.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        match commands.try_recv() {
            Ok(Command::Quit) | Err(mpsc::TryRecvError::Disconnected) => break,
            Ok(Command::Activate(trigger)) => control.apply(Input::Activate(trigger)),
            Ok(Command::EndUtterance) if control.coordinator.state() == State::Listening => {
                control.speech_open = false;
                match listener.close_utterance() {
                    Some(u) => {
                        control.utterance = Some(u);
                        control.apply(Input::SpeechEnded);
                    }
                    None => control.apply(Input::ListenTimeout),
                }
            }
            Ok(Command::EndUtterance) => {}
            Ok(Command::Stop) => control.apply(Input::Stop),
            Ok(Command::MuteWake(muted)) => wake_muted = muted,
            Err(mpsc::TryRecvError::Empty) => {}
        }
        while let Ok(p) = progress.try_recv() {
            control.progress(p);
        }
        if let Some(timers) = &timers {
            while let Ok(fired) = timers.try_recv() {
                control.announce(&fired.text);
            }
        }
        match audio.recv_timeout(Duration::from_millis(20)) {
            Ok(CaptureEvent::Audio(chunk)) => {
                let t = Instant::now();
                let events = listener.push(&chunk)?;
                let chunk_ms = t.elapsed().as_secs_f64() * 1000.0;
                control.stream_samples += chunk.len() as u64;
                control.stream_ms = control.stream_samples * 1000 / SAMPLE_RATE as u64;
                for event in events {
                    match event {
                        ListenEvent::Wake(_) if wake_muted => {}
                        ListenEvent::Wake(w) => {
                            control.engine.metrics().record_ms(Stage::Wake, chunk_ms);
                            control.wake_ms = Some(chunk_ms);
                            (control.on_event)(&LiveEvent::Wake { model: w.model.clone(), score: w.score, at_ms: w.at_ms });
                            control.apply(Input::Activate(Trigger::WakeWord));
                        }
                        ListenEvent::SpeechStart { .. } => control.speech_open = true,
                        ListenEvent::Pause(u) if control.coordinator.state() == State::Listening => control.transcribe_early(u),
                        ListenEvent::Pause(_) => {}
                        ListenEvent::SpeechEnd(u) => {
                            control.speech_open = false;
                            if control.coordinator.state() == State::Listening {
                                control.engine.metrics().record_ms(Stage::VadEndpoint, chunk_ms);
                                control.utterance = Some(u);
                                control.endpoint_ms = Some(chunk_ms);
                                control.apply(Input::SpeechEnded);
                            }
                        }
                    }
                }
                let quiet_for = control.stream_ms.saturating_sub(control.listening_since_ms);
                if control.coordinator.state() == State::Listening && !control.speech_open && quiet_for > options.listen_timeout_ms {
                    control.apply(Input::ListenTimeout);
                }
            }
            Ok(CaptureEvent::Started(format)) => {
                let device = format!("{} ({} Hz, {} ch){}", format.device, format.sample_rate, format.channels, if wake_on { "" } else { ", wake word off" });
                (control.on_event)(&LiveEvent::Ready { device, sample_rate: format.sample_rate });
            }
            Ok(CaptureEvent::SilentInput { ms }) => (control.on_event)(&LiveEvent::Mic {
                kind: MicProblem::Silent,
                problem: format!("the microphone has given only silence for {:.1} s: is it muted, or is Roxy not allowed to use it (macOS: System Settings → Privacy & Security → Microphone)?", ms as f64 / 1000.0),
            }),
            Ok(CaptureEvent::Overrun { dropped }) => {
                // Summed and reported at most every few seconds: a struggling machine should not
                // also flood the log.
                overruns.0 += dropped;
                if overruns.1.is_none_or(|last| last.elapsed() >= OVERRUN_REPORT_EVERY) {
                    let ms = overruns.0 * 1000 / SAMPLE_RATE as u64;
                    (control.on_event)(&LiveEvent::Mic { kind: MicProblem::Overrun, problem: format!("{ms} ms of audio were dropped: the machine is too busy") });
                    overruns = (0, Some(Instant::now()));
                }
            }
            Ok(CaptureEvent::DeviceLost { message }) => (control.on_event)(&LiveEvent::Mic { kind: MicProblem::Lost, problem: format!("the microphone went away ({message}); waiting for it to come back") }),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    control.drop_early();
    if let Some((_, cancel)) = &control.cancel {
        cancel.store(true, Ordering::Relaxed);
        control.engine.brain().cancel();
    }
    control.sink.stop();
    Ok(())
}

impl Control<'_> {
    fn apply(&mut self, input: Input) {
        let before = self.coordinator.state();
        let effects = self.coordinator.handle(input);
        let after = self.coordinator.state();
        for effect in effects {
            match effect {
                Effect::Earcon => self.sink.play(&self.earcon, self.earcon_rate),
                Effect::StartListening => self.listening_since_ms = self.stream_ms,
                Effect::StopPlayback => self.sink.stop(),
                Effect::Cancel(n) => {
                    if let Some((turn, cancel)) = &self.cancel {
                        if *turn == n {
                            cancel.store(true, Ordering::Relaxed);
                            self.engine.brain().cancel();
                        }
                    }
                }
                Effect::Answer(n) => self.answer(n),
            }
        }
        // Listening ended without an utterance (stopped, timed out): nothing to answer early.
        if before == State::Listening && after == State::Idle {
            self.drop_early();
        }
        if before != after {
            (self.on_event)(&LiveEvent::State { state: after });
        }
    }

    /// Forgets the transcription begun at a pause, and stops the answer begun from it.
    fn drop_early(&mut self) {
        if let Some(early) = self.early.take() {
            early.answer.discard();
        }
    }

    fn progress(&mut self, p: Progress) {
        match p {
            Progress::FirstAudio(n) => self.apply(Input::AnswerStarted(n)),
            Progress::Done(n, Ok(Some((turn, interrupted)))) => {
                (self.on_event)(&LiveEvent::Turn { n, interrupted, turn });
                self.apply(Input::AnswerDone(n));
            }
            Progress::Done(n, Ok(None)) => {
                (self.on_event)(&LiveEvent::NothingHeard { n });
                self.apply(Input::NothingHeard(n));
            }
            Progress::Done(n, Err(message)) => {
                (self.on_event)(&LiveEvent::Error { message });
                self.apply(Input::Failed(n));
            }
        }
    }

    /// Starts transcribing `utterance` while the VAD waits to see whether the pause ends it, and
    /// then, when the local LLM would answer, the answer itself (its audio held; see
    /// [`speculation`]). When the pause does end the utterance, the answer starts from this
    /// transcript, and is heard as soon as the end of speech confirms it.
    fn transcribe_early(&mut self, utterance: Utterance) {
        // A later pause: the user went on talking.
        self.drop_early();
        let (tx, rx) = mpsc::channel();
        let (answer, runner) = Speculation::new();
        let engine = self.engine.clone();
        let samples = utterance.samples;
        let spawned = std::thread::Builder::new().name("roxy-stt-early".into()).spawn(move || {
            let transcript = engine.stt().transcribe(&samples);
            let command = transcript.as_ref().ok().map(|t| engine.command_in(&t.text));
            let _ = tx.send(transcript);
            if let Some(command) = command.filter(|c| c.chars().any(char::is_alphanumeric)) {
                runner.run(&engine, &command);
            }
        });
        self.early = spawned.ok().map(|_| EarlyTranscript { span: (utterance.start_ms, utterance.end_ms), result: rx, answer });
    }

    /// Transcribes the closed utterance and answers it on a thread of its own.
    fn answer(&mut self, n: u64) {
        let Some(utterance) = self.utterance.take() else {
            let _ = self.progress.send(Progress::Done(n, Ok(None)));
            return;
        };
        // The same audio (see `VadEvent::Pause`), so the same transcript.
        let early = match self.early.take() {
            Some(e) if e.span == (utterance.start_ms, utterance.end_ms) => Some(e),
            other => {
                if let Some(stale) = other {
                    stale.answer.discard();
                }
                None
            }
        };
        let cancel = early.as_ref().map_or_else(|| Arc::new(AtomicBool::new(false)), |e| e.answer.cancel_flag().clone());
        self.cancel = Some((n, cancel.clone()));
        let (engine, sink, progress) = (self.engine.clone(), self.sink.clone(), self.progress.clone());
        let since = Instant::now();
        let (wake_ms, endpoint_ms) = (self.wake_ms.take(), self.endpoint_ms.take());
        let spawned = std::thread::Builder::new().name(format!("roxy-turn-{n}")).spawn(move || {
            let result = (|| -> Result<Option<(Box<Turn>, bool)>, LoopError> {
                let t = Instant::now();
                let (transcript, early) = match early.and_then(|e| e.result.recv().ok().map(|t| (t, e.answer))) {
                    Some((result, answer)) => (result?, Some(answer)),
                    None => (engine.stt().transcribe(&utterance.samples)?, None),
                };
                let stt_wait_ms = t.elapsed().as_secs_f64() * 1000.0;
                let stt_ms = transcript.timings.stt_ms;
                engine.metrics().record_ms(Stage::Stt, stt_ms);
                let heard = transcript.text;
                let command = engine.command_in(&heard);
                let first = progress.clone();
                let on_first_audio = move || drop(first.send(Progress::FirstAudio(n)));
                let begun = match early {
                    Some(answer) => answer.confirm(sink.clone(), since, on_first_audio.clone()).transpose()?,
                    None => None,
                };
                let mut turn = match begun {
                    Some(turn) => {
                        turn.ms.e2e_first_audio.inspect(|ms| engine.metrics().record_ms(Stage::E2e, *ms));
                        turn
                    }
                    None => {
                        if command.chars().all(|c| !c.is_alphanumeric()) || cancel.load(Ordering::Relaxed) {
                            return Ok(None);
                        }
                        let out = Playback { sink: Some(sink.clone()), cancel: cancel.clone(), on_first_audio: Some(Arc::new(on_first_audio)), keep: None };
                        engine.respond(&command, since, &out)?
                    }
                };
                turn.ms.stt = Some(round_ms(stt_ms));
                turn.ms.stt_wait = Some(round_ms(stt_wait_ms));
                turn.ms.wake = wake_ms.map(round_ms);
                turn.ms.endpoint = endpoint_ms.map(round_ms);
                turn.utterance_ms = Some((utterance.start_ms, utterance.end_ms));
                if !cancel.load(Ordering::Relaxed) {
                    wait_until_quiet(sink.as_ref(), Duration::from_secs(600));
                }
                Ok(Some((Box::new(turn), cancel.load(Ordering::Relaxed))))
            })();
            let _ = progress.send(Progress::Done(n, result.map_err(|e| e.to_string())));
        });
        if let Err(e) = spawned {
            let _ = self.progress.send(Progress::Done(n, Err(format!("could not start the answer: {e}"))));
        }
    }

    /// A timer or reminder came due: said when Roxy is not busy with a turn, shown always.
    fn announce(&mut self, text: &str) {
        (self.on_event)(&LiveEvent::Timer { text: text.to_string() });
        if self.coordinator.state() != State::Idle {
            return;
        }
        let (engine, sink, text) = (self.engine.clone(), self.sink.clone(), text.to_string());
        let (earcon, rate) = (self.earcon.clone(), self.earcon_rate);
        std::thread::spawn(move || {
            sink.play(&earcon, rate);
            if let Err(e) = engine.respond_verbatim(&text, sink.as_ref()) {
                tracing::warn!("could not say the timer: {e}");
            }
        });
    }
}

/// The listening chime from `assets/`.
fn earcon() -> (Vec<f32>, u32) {
    const WAV: &[u8] = include_bytes!("../../assets/earcon.wav");
    match hound::WavReader::new(std::io::Cursor::new(WAV)) {
        Ok(reader) => {
            let rate = reader.spec().sample_rate;
            let samples = reader.into_samples::<i16>().filter_map(Result::ok).map(|s| s as f32 / 32768.0).collect();
            (samples, rate)
        }
        Err(e) => {
            tracing::warn!("the earcon asset is unreadable: {e}");
            (Vec::new(), SAMPLE_RATE)
        }
    }
}

/// Recorded 16 kHz audio delivered like a microphone: 80 ms chunks at the pace they were
/// recorded (so the loop's real-time behaviour, barge-in included, is what a user would get).
/// After the recording comes silence, as from a quiet room, until the loop stops.
pub fn file_source(samples: Vec<f32>, name: &str) -> Receiver<CaptureEvent> {
    let (tx, rx) = mpsc::channel();
    let format = DeviceFormat { device: name.to_string(), sample_rate: SAMPLE_RATE, channels: 1, sample_format: "f32".into() };
    std::thread::spawn(move || {
        let _ = tx.send(CaptureEvent::Started(format));
        let started = Instant::now();
        let silence = vec![0.0; crate::listen::CHUNK];
        let chunks = samples.chunks(crate::listen::CHUNK).chain(std::iter::repeat(silence.as_slice()));
        for (i, chunk) in chunks.enumerate() {
            let due = started + Duration::from_secs_f64((i * crate::listen::CHUNK) as f64 / SAMPLE_RATE as f64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            // Stops when the loop is gone.
            if tx.send(CaptureEvent::Audio(chunk.to_vec())).is_err() {
                return;
            }
        }
    });
    rx
}
