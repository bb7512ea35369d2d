//! The bench's timed turns as a user has them: the hotkey, then the question spoken into the live
//! loop (the one `roxy run` and the app run) at the pace of speech, so Whisper and the answer
//! start at the pause that ends the question, as they do for a user. Replies go to a sink that
//! takes them at once: only the time to the first audio is measured.

use super::TurnFigures;
use crate::audio::capture::{CaptureEvent, DeviceFormat, SAMPLE_RATE};
use crate::audio::playback::AudioSink;
use crate::coordinator::{State, Trigger};
use crate::listen::CHUNK;
use crate::live::{self, Command, LiveEvent, LiveOptions};
use crate::voice_loop::Engine;
use anyhow::{bail, Context};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Samples above this level are speech (Piper's silence is exact zeros; its quietest speech is
/// far above).
const LAST_WORD_LEVEL: f32 = 1e-3;
/// Longest a turn may take from the hotkey to its report.
const TURN_LIMIT: Duration = Duration::from_secs(120);

/// Plays nothing and is never busy; notes when audio first arrives after [`Discard::arm`].
#[derive(Default)]
struct Discard {
    /// (armed, first audio since).
    first: Mutex<(bool, Option<Instant>)>,
}

impl Discard {
    /// From now on, the next audio is the reply's (the earcon came before).
    fn arm(&self) {
        *self.first.lock().unwrap_or_else(|e| e.into_inner()) = (true, None);
    }

    fn first_audio(&self) -> Option<Instant> {
        self.first.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

impl AudioSink for Discard {
    fn play(&self, samples: &[f32], _sample_rate: u32) {
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.0 && first.1.is_none() && !samples.is_empty() {
            first.1 = Some(Instant::now());
        }
    }
    fn stop(&self) {}
    fn is_playing(&self) -> bool {
        false
    }
}

/// `question` (`spoken`: its 16 kHz audio) asked in a run of the live loop of its own.
pub(super) fn run(engine: &Arc<Engine>, question: &str, spoken: &[f32]) -> anyhow::Result<TurnFigures> {
    let (audio_tx, audio_rx) = mpsc::channel();
    let (commands_tx, commands_rx) = mpsc::channel();
    let (events_tx, events) = mpsc::channel::<LiveEvent>();
    std::thread::scope(|scope| {
        let sink = Arc::new(Discard::default());
        let speaker = sink.clone();
        let looping = scope.spawn(move || {
            let options = LiveOptions { listen_timeout_ms: 60_000, until: None };
            let mut forward = |e: &LiveEvent| drop(events_tx.send(e.clone()));
            live::run(engine.clone(), &audio_rx, speaker, commands_rx, options, &mut forward)
        });
        let format = DeviceFormat { device: "bench".into(), sample_rate: SAMPLE_RATE, channels: 1, sample_format: "f32".into() };
        let _ = audio_tx.send(CaptureEvent::Started(format));
        let asked = commands_tx
            .send(Command::Activate(Trigger::Hotkey))
            .context("the live loop stopped")
            .and_then(|()| ask(&audio_tx, &events, &sink, spoken))
            .with_context(|| format!("the live turn {question:?}"));
        let _ = commands_tx.send(Command::Quit);
        let ran = looping.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // The loop's own failure explains a turn's.
        ran?;
        asked
    })
}

/// Waits for listening, speaks `audio` in real time (each chunk delivered when its last sample
/// has been said, as a microphone does), then quiet until the turn is reported.
fn ask(audio_tx: &mpsc::Sender<CaptureEvent>, events: &mpsc::Receiver<LiveEvent>, sink: &Discard, audio: &[f32]) -> anyhow::Result<TurnFigures> {
    // Where the speaker's last word ends: the quiet padding after it is part of the wait.
    let last_word_end = audio.iter().rposition(|s| s.abs() > LAST_WORD_LEVEL).map_or(0, |i| i + 1);
    let started = Instant::now();
    let listening = |e: &LiveEvent| matches!(e, LiveEvent::State { state: State::Listening });
    loop {
        match events.recv_timeout(TURN_LIMIT.saturating_sub(started.elapsed())) {
            Ok(e) if listening(&e) => break,
            Ok(_) => {}
            Err(_) => bail!("the hotkey did not start listening"),
        }
    }
    let silence = vec![0.0f32; CHUNK];
    let mut chunks = audio.chunks(CHUNK).chain(std::iter::repeat(silence.as_slice()));
    sink.arm();
    let paced = Instant::now();
    let last_word = paced + Duration::from_secs_f64(last_word_end as f64 / SAMPLE_RATE as f64);
    let mut sent = 0usize;
    loop {
        while let Ok(event) = events.try_recv() {
            match event {
                LiveEvent::Turn { turn, .. } => {
                    let ms = &turn.ms;
                    let heard_at = sink.first_audio().context("no reply audio reached the speaker")?;
                    return Ok(TurnFigures {
                        e2e_ms: ms.e2e_first_audio.context("the reply made no audio")?,
                        last_word_ms: Some(heard_at.saturating_duration_since(last_word).as_secs_f64() * 1000.0),
                        stt_ms: ms.stt,
                        stt_wait_ms: ms.stt_wait,
                        head_start_ms: ms.head_start,
                        intent_ms: ms.intent,
                        llm_first_token_ms: ms.llm_first_token,
                        tts_first_audio_ms: ms.tts_first_audio,
                        heard: turn.heard,
                        reply: turn.reply,
                        route: turn.route,
                    });
                }
                LiveEvent::NothingHeard { .. } => bail!("the live loop heard nothing"),
                LiveEvent::Error { message } => bail!("the live loop failed: {message}"),
                LiveEvent::State { state: State::Idle } => bail!("the live loop went idle without answering"),
                _ => {}
            }
        }
        if started.elapsed() > TURN_LIMIT {
            bail!("no answer within {} s", TURN_LIMIT.as_secs());
        }
        let due = paced + Duration::from_secs_f64(((sent + 1) * CHUNK) as f64 / SAMPLE_RATE as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let chunk = chunks.next().unwrap_or(&silence);
        audio_tx.send(CaptureEvent::Audio(chunk.to_vec())).context("the live loop stopped")?;
        sent += 1;
    }
}
