//! The voice loop, headless: audio → VAD + wake word → Whisper → the brain (a skill, or the
//! local LLM streamed) → Piper (sentence by sentence while the LLM is still writing) → reply
//! audio. `roxy run` drives it over a WAV file or a typed question; every stage reports into
//! the timing registry.
//!
//! With `wake.enabled`, only speech that contains the wake word ("hey jarvis, what time is
//! it?") or follows it within `FOLLOW_UP_MS` ("hey jarvis" … "what time is it?") is answered.

use crate::audio::wav::{self, WavError};
use crate::brain::{Brain, BrainDeps, BrainError, Route};
use crate::config::Config;
use crate::listen::{ListenError, ListenEvent, Listener, CHUNK};
use crate::metrics::{ms_since, round_ms, Registry, Stage};
use crate::models::Manifest;
use crate::stt::{Stt, SttError};
use crate::tts::{self, StreamOptions, Tts, TtsError};
use crate::vad::{EndpointSettings, SileroVad, Vad, VadError};
use crate::wake::{WakeDetector, WakeError, WakeModels, WakeSettings};
use regex::Regex;
use serde::Serialize;
use std::path::Path;
use crate::audio::playback::AudioSink;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

/// Silence between two replies in the output file.
const REPLY_GAP_S: f32 = 0.4;
/// After a wake word on its own, speech starting within this long is the command.
const FOLLOW_UP_MS: u64 = 8_000;
/// A detection this close before the speech start (or inside it) belongs to that utterance.
const WAKE_SLACK_MS: u64 = 1_500;

#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error(transparent)]
    Audio(#[from] WavError),
    #[error(transparent)]
    Vad(#[from] VadError),
    #[error(transparent)]
    Wake(#[from] WakeError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(transparent)]
    Stt(#[from] SttError),
    #[error(transparent)]
    Brain(#[from] BrainError),
    #[error(transparent)]
    Tts(#[from] TtsError),
}

/// Every model of the loop, loaded once.
pub struct Engine {
    vad: Arc<SileroVad>,
    wake: Option<Arc<WakeModels>>,
    stt: Stt,
    brain: Arc<Brain>,
    tts: Arc<dyn Tts>,
    config: Config,
    metrics: Arc<Registry>,
    timers: std::sync::Mutex<Option<mpsc::Receiver<crate::brain::skills::TimerFired>>>,
    phrases: Option<Arc<PhraseCache>>,
    /// The LLM being primed with the conversation after a turn (see [`Brain::prime`]).
    priming: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Where a reply's audio goes while it is made, and the switch that abandons it (barge-in).
#[derive(Default, Clone)]
pub struct Playback {
    pub sink: Option<Arc<dyn AudioSink>>,
    pub cancel: Arc<AtomicBool>,
    /// Called once, when the first audio is handed to the sink.
    pub on_first_audio: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Set for an answer begun before the user was known to have finished (see
    /// `live::speculation`): asked once the answer is done whether to record the turn, and the
    /// e2e figure is left to the caller, who knows when the user finished.
    pub keep: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadTimes {
    pub vad_ms: f64,
    pub wake_ms: f64,
    pub stt_ms: f64,
    /// Intent templates embedded, memory opened. The LLM loads in the background.
    pub brain_ms: f64,
    pub tts_ms: f64,
}

/// One exchange, with the figures the settings pane shows.
#[derive(Debug, Clone, Serialize)]
pub struct Turn {
    pub heard: String,
    pub reply: String,
    pub route: Route,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skill: Option<&'static str>,
    /// Where the utterance sat in the input, when it came from audio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utterance_ms: Option<(u64, u64)>,
    /// Where the wake word that opened this turn was detected in the input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wake_at_ms: Option<u64>,
    pub ms: TurnTimes,
    /// The local LLM's prompt, and how much of it came from its KV cache (see `Brain::prime`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u32>,
    pub reply_audio_s: f64,
    #[serde(skip)]
    pub audio: Vec<f32>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TurnTimes {
    /// Wake-word processing of the chunk that fired.
    pub wake: Option<f64>,
    /// VAD processing of the chunk that closed the utterance.
    pub endpoint: Option<f64>,
    pub stt: Option<f64>,
    /// Live: how long the answer waited for STT after the end of speech; less than `stt` when
    /// the transcription began at the pause that turned out to end the utterance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stt_wait: Option<f64>,
    /// Live: how long before the end of speech the answer began, at the pause, its audio held
    /// until the end of speech (see `live::speculation`); negative when the transcription
    /// outlasted the wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_start: Option<f64>,
    pub intent: Option<f64>,
    pub skill: Option<f64>,
    pub llm_first_token: Option<f64>,
    pub llm_total: Option<f64>,
    /// From the first sentence handed to TTS to its audio.
    pub tts_first_audio: Option<f64>,
    /// From the end of speech (or the question) to the first reply audio.
    pub e2e_first_audio: Option<f64>,
    pub total: f64,
}

/// What the loop's TTS thread made: the audio, and when the first sentence was handed over
/// and when its audio came out.
type SpokenAudio = (Vec<f32>, Option<(Instant, Instant)>);

impl Engine {
    pub fn load(config: Config, models_dir: &Path, data_dir: &Path, manifest: &Manifest, metrics: Arc<Registry>) -> Result<(Engine, LoadTimes), LoopError> {
        let timed = |stage_started: Instant| {
            let ms = ms_since(stage_started);
            metrics.record_ms(Stage::ModelLoad, ms);
            ms
        };
        // The voice is the slowest to load (Piper's graph and a warm-up run: ~0.6 s here, 2 s
        // with ONNX Runtime 1.31): it loads beside the rest instead of after it.
        let voice = {
            let (tts_config, dir, manifest) = (config.tts.clone(), models_dir.to_path_buf(), manifest.clone());
            std::thread::Builder::new().name("roxy-tts-load".into()).spawn(move || {
                let t = Instant::now();
                tts::load_from_config(&tts_config, &dir, &manifest).map(|voice| (voice, ms_since(t)))
            })
        };
        let t = Instant::now();
        let vad = SileroVad::load(models_dir)?;
        let vad_ms = timed(t);
        let t = Instant::now();
        let wake = if config.wake.enabled { Some(WakeModels::load(models_dir, &config.wake.model)?) } else { None };
        let wake_ms = timed(t);
        let t = Instant::now();
        let stt = Stt::from_config(&config.stt, models_dir, manifest)?;
        let stt_ms = timed(t);
        let t = Instant::now();
        let deps = BrainDeps::open(data_dir, models_dir, &config, metrics.clone())?;
        let (brain, timers) = Brain::new(&config, models_dir, manifest, deps)?;
        let brain = Arc::new(brain);
        let brain_ms = timed(t);
        // The LLM loads in its worker process while the rest loads and Roxy starts listening;
        // a first question that needs it waits for it. Without a model, skills still answer.
        let warming = (brain.clone(), metrics.clone());
        let spawned = std::thread::Builder::new().name("roxy-llm-warm-up".into()).spawn(move || {
            let t = Instant::now();
            match warming.0.warm_up() {
                Ok(()) => warming.1.record_ms(Stage::ModelLoad, ms_since(t)),
                Err(e) => tracing::warn!("the local LLM is not ready: {e}"),
            }
        });
        let warming = spawned.inspect_err(|e| tracing::warn!("the LLM loads at the first question instead: {e}")).ok();
        let (voice, tts_ms) = match voice {
            Ok(loading) => loading.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?,
            // No thread to be had: load it here.
            Err(_) => {
                let t = Instant::now();
                (tts::load_from_config(&config.tts, models_dir, manifest)?, ms_since(t))
            }
        };
        metrics.record_ms(Stage::ModelLoad, tts_ms);
        let tts: Arc<dyn Tts> = Arc::new(voice);
        let load = LoadTimes { vad_ms, wake_ms, stt_ms, brain_ms, tts_ms };
        let phrases = brain.memory().map(|m| Arc::new(PhraseCache::new(m.store().clone(), &config)));
        // Once everything has loaded (not competing with it), the last conversation goes into
        // the LLM's cache so the first question does not pay for it.
        let primed = brain.clone();
        let priming = std::thread::Builder::new()
            .name("roxy-llm-prime".into())
            .spawn(move || {
                if warming.is_some_and(|w| w.join().is_ok()) {
                    primed.prime();
                }
            })
            .ok();
        Ok((Engine { vad, wake, stt, brain, tts, config, metrics, timers: std::sync::Mutex::new(Some(timers)), phrases, priming: std::sync::Mutex::new(priming) }, load))
    }

    pub fn sample_rate(&self) -> u32 {
        self.tts.sample_rate()
    }

    pub fn brain(&self) -> &Brain {
        &self.brain
    }

    /// The brain, for another front end of the same Roxy (the local API): one LLM worker.
    pub fn shared_brain(&self) -> Arc<Brain> {
        self.brain.clone()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn metrics(&self) -> &Arc<Registry> {
        &self.metrics
    }

    pub fn stt(&self) -> &Stt {
        &self.stt
    }

    /// The voice replies are spoken with.
    pub fn tts(&self) -> &dyn Tts {
        self.tts.as_ref()
    }

    pub fn vad_model(&self) -> &Arc<SileroVad> {
        &self.vad
    }

    pub fn wake_models(&self) -> Option<&Arc<WakeModels>> {
        self.wake.as_ref()
    }

    /// Timers and reminders coming due (once: the live loop takes it).
    pub fn take_timer_events(&self) -> Option<mpsc::Receiver<crate::brain::skills::TimerFired>> {
        self.timers.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The command in a transcript: the wake phrase at its start cut off.
    pub fn command_in(&self, transcript: &str) -> String {
        match &self.wake {
            Some(models) => wake_phrase(models.name()).replace(transcript, "").trim().to_string(),
            None => transcript.trim().to_string(),
        }
    }

    /// Finds the utterances in 16 kHz audio (fed in live-sized chunks) and answers those the
    /// wake word opened (every one when the wake word is off).
    pub fn respond_to_audio(&self, samples: &[f32]) -> Result<Vec<Turn>, LoopError> {
        let mut vad = Vad::new(&self.vad, EndpointSettings::from_config(&self.config.vad));
        let mut detector = self.wake.as_ref().map(|m| m.detector(WakeSettings::from_config(&self.config.wake)));
        let mut listener = Listener::new(&mut vad, detector.as_mut().map(|d| d as &mut dyn WakeDetector), true);
        let mut events = Vec::new();
        for chunk in samples.chunks(CHUNK) {
            let t = Instant::now();
            let got = listener.push(chunk)?;
            let chunk_ms = ms_since(t);
            events.extend(got.into_iter().map(|e| (e, chunk_ms)));
        }
        events.extend(listener.finish()?.into_iter().map(|e| (e, 0.0)));
        drop(listener);

        let wake_on = self.wake.is_some();
        let mut turns = Vec::new();
        // The latest wake detection not yet used by a turn: (at_ms, chunk ms).
        let mut wake: Option<(u64, f64)> = None;
        for (event, chunk_ms) in events {
            let utterance = match event {
                ListenEvent::Wake(w) => {
                    self.metrics.record_ms(Stage::Wake, chunk_ms);
                    wake = Some((w.at_ms, chunk_ms));
                    continue;
                }
                ListenEvent::SpeechStart { .. } | ListenEvent::Pause(_) => continue,
                ListenEvent::SpeechEnd(u) => u,
            };
            let opened_by = match (wake_on, wake) {
                (false, _) => None,
                (true, Some((at, ms))) if at + WAKE_SLACK_MS >= utterance.start_ms && at <= utterance.end_ms + WAKE_SLACK_MS => Some((at, ms)),
                (true, Some((at, ms))) if at <= utterance.start_ms && utterance.start_ms - at <= FOLLOW_UP_MS => Some((at, ms)),
                (true, _) => {
                    tracing::debug!("speech at {} ms without the wake word: ignored", utterance.start_ms);
                    continue;
                }
            };
            self.metrics.record_ms(Stage::VadEndpoint, chunk_ms);
            let end_of_speech = Instant::now();
            let t = Instant::now();
            let heard = self.stt.transcribe(&utterance.samples)?.text;
            let stt_ms = ms_since(t);
            self.metrics.record_ms(Stage::Stt, stt_ms);
            let command = self.command_in(&heard);
            if command.chars().all(|c| !c.is_alphanumeric()) {
                // The wake word alone: the command is the next utterance.
                continue;
            }
            wake = None;
            let mut turn = self.respond_to_text(&command, end_of_speech)?;
            turn.ms.stt = Some(stt_ms);
            turn.ms.endpoint = Some(round_ms(chunk_ms));
            turn.ms.wake = opened_by.map(|(_, ms)| round_ms(ms));
            turn.wake_at_ms = opened_by.map(|(at, _)| at);
            turn.utterance_ms = Some((utterance.start_ms, utterance.end_ms));
            turns.push(turn);
        }
        Ok(turns)
    }

    /// Answers `heard`: a skill at once, or the LLM streamed with each finished sentence going
    /// to TTS as it completes. `since` is when the user stopped speaking: the e2e clock.
    pub fn respond_to_text(&self, heard: &str, since: Instant) -> Result<Turn, LoopError> {
        self.respond(heard, since, &Playback::default())
    }

    /// [`Engine::respond_to_text`], playing each piece of audio into `out.sink` as soon as it is
    /// made; `out.cancel` stops the LLM and drops the speech not yet made.
    pub fn respond(&self, heard: &str, since: Instant, out: &Playback) -> Result<Turn, LoopError> {
        let (sentences_tx, sentences_rx) = mpsc::channel::<(String, Instant)>();
        let tts = self.tts.clone();
        let rate = self.tts.sample_rate();
        let Playback { sink, cancel, on_first_audio, .. } = out.clone();
        let phrases = self.phrases.clone();
        let options = StreamOptions::from_config(&self.config.tts);
        // Speaks sentences as they arrive; returns the audio and when the first came out.
        let speaker = std::thread::Builder::new()
            .name("roxy-loop-tts".into())
            .spawn(move || -> Result<SpokenAudio, TtsError> {
                let mut audio = Vec::new();
                let mut first = None;
                for (n, (sentence, handed_over)) in sentences_rx.into_iter().enumerate() {
                    if cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut play = |samples: &[f32], audio: &mut Vec<f32>| {
                        if first.is_none() && !samples.is_empty() {
                            first = Some((handed_over, Instant::now()));
                            if let Some(told) = &on_first_audio {
                                told();
                            }
                        }
                        if let Some(sink) = &sink {
                            sink.play(samples, rate);
                        }
                        audio.extend_from_slice(samples);
                    };
                    let cached = phrases.as_ref().and_then(|p| p.request(&sentence).map(|req| (p, req)));
                    if let Some(samples) = cached.as_ref().and_then(|(p, req)| p.get(req)) {
                        play(&samples, &mut audio);
                        continue;
                    }
                    // Only the reply's opening clause is worth speaking early; later sentences
                    // are made while earlier ones play.
                    let options = StreamOptions { early_first_clause: n == 0 && options.early_first_clause, ..options };
                    let made_from = audio.len();
                    let mut whole = true;
                    for chunk in tts::stream(tts.as_ref(), &sentence, options) {
                        let chunk = chunk?;
                        if cancel.load(Ordering::Relaxed) {
                            whole = false;
                            break;
                        }
                        play(&chunk.samples, &mut audio);
                    }
                    if let (Some((p, req)), true) = (&cached, whole) {
                        p.put(req, &audio[made_from..]);
                    }
                }
                Ok((audio, first))
            })
            .expect("spawning the loop's TTS thread");

        let mut pending = String::new();
        let mut handed_over = false;
        let mut cancelled = false;
        let keep = || out.keep.as_ref().is_none_or(|keep| keep());
        let answered = self.brain.answer_if(heard, &mut |piece| {
            if out.cancel.load(Ordering::Relaxed) {
                // The generation in progress is this one: stop it here too, in case the
                // canceller's own stop came before it began.
                if !cancelled {
                    cancelled = true;
                    self.brain.cancel();
                }
                return;
            }
            pending.push_str(piece);
            let mut ready = take_sentences(&mut pending);
            // The opening goes to TTS as soon as it is complete, not with its sentence.
            if ready.is_empty() && !handed_over {
                ready.extend(take_opening(&mut pending));
            }
            for sentence in ready {
                handed_over = true;
                tracing::debug!(after_ms = ms_since(since), %sentence, "speech handed to TTS");
                let _ = sentences_tx.send((sentence, Instant::now()));
            }
        }, &keep);
        if !pending.trim().is_empty() && !out.cancel.load(Ordering::Relaxed) {
            let _ = sentences_tx.send((std::mem::take(&mut pending), Instant::now()));
        }
        drop(sentences_tx);
        let spoken = speaker.join().expect("the TTS thread does not panic");
        // The user listens now: the time to get the LLM ready for the next question.
        let brain = self.brain.clone();
        let mut priming = self.priming.lock().unwrap_or_else(|e| e.into_inner());
        // After the priming already under way (the one after loading may still be loading the LLM).
        let before = priming.take();
        *priming = std::thread::Builder::new()
            .name("roxy-llm-prime".into())
            .spawn(move || {
                if let Some(before) = before {
                    let _ = before.join();
                }
                brain.prime();
            })
            .ok();
        drop(priming);
        let reply = answered?;
        let (audio, first) = spoken?;
        let (prompt_tokens, cached_tokens) = (reply.prompt_tokens, reply.cached_tokens);

        let tts_first_audio = first.map(|(handed, out)| out.duration_since(handed).as_secs_f64() * 1000.0);
        let e2e = first.map(|(_, out)| out.duration_since(since).as_secs_f64() * 1000.0);
        tts_first_audio.inspect(|ms| self.metrics.record_ms(Stage::TtsFirstAudio, *ms));
        if out.keep.is_none() {
            e2e.inspect(|ms| self.metrics.record_ms(Stage::E2e, *ms));
        }
        Ok(Turn {
            heard: heard.to_string(),
            reply: reply.text,
            route: reply.route,
            skill: reply.skill,
            utterance_ms: None,
            wake_at_ms: None,
            ms: TurnTimes {
                intent: Some(reply.ms.intent),
                skill: reply.ms.skill,
                llm_first_token: reply.ms.llm_first_token,
                llm_total: reply.ms.llm_total,
                tts_first_audio: tts_first_audio.map(round_ms),
                e2e_first_audio: e2e.map(round_ms),
                total: ms_since(since),
                ..Default::default()
            },
            prompt_tokens,
            cached_tokens,
            reply_audio_s: audio.len() as f64 / self.tts.sample_rate() as f64,
            audio,
        })
    }

    /// Speaks `text` as is (no brain), straight into `sink`: timers, errors, confirmations.
    pub fn respond_verbatim(&self, text: &str, sink: &dyn AudioSink) -> Result<(), LoopError> {
        for chunk in tts::stream(self.tts.as_ref(), text, StreamOptions::from_config(&self.config.tts)) {
            sink.play(&chunk?.samples, self.tts.sample_rate());
        }
        Ok(())
    }

    /// Waits for the work a turn leaves running in the background (priming the LLM for the next
    /// question), as a user's next question gives it time to finish. For benchmarks and tests.
    pub fn settle(&self) {
        if let Some(priming) = self.priming.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = priming.join();
        }
    }

    /// Stops the LLM worker.
    pub fn shutdown(&self) {
        self.brain.shutdown();
    }
}

/// Matches the wake phrase at the start of a transcript, as Whisper writes it: "Hey Jarvis,",
/// "Hey, Jarvis.", "Jarvis". Built from the keyword model's name (`hey_jarvis` → "jarvis").
fn wake_phrase(model: &str) -> Regex {
    let word = model.rsplit(['_', ' ']).next().unwrap_or(model);
    Regex::new(&format!(r"(?i)^\W*(?:(?:hey|hi|ok|okay|a)\W+)?{}\w*\W*", regex::escape(word))).expect("an escaped word is a valid pattern")
}

/// Speech for short fixed phrases ("There's no timer running.", "Cancelled your timer.") kept in
/// the response cache, so saying one again costs a lookup instead of synthesis. Sentences with
/// digits (times, results) change too often to be worth keeping.
struct PhraseCache {
    cache: crate::memory::ResponseCache,
    voice: String,
    speed: f32,
    noise: f32,
}

const FIXED_PHRASE_CHARS: usize = 80;

impl PhraseCache {
    fn new(store: Arc<crate::memory::Store>, config: &Config) -> PhraseCache {
        PhraseCache { cache: crate::memory::ResponseCache::new(store, &config.memory), voice: config.tts.voice.clone(), speed: config.tts.speed, noise: config.tts.noise_scale }
    }

    fn request(&self, sentence: &str) -> Option<crate::memory::CacheRequest> {
        let fixed = sentence.len() <= FIXED_PHRASE_CHARS && !sentence.chars().any(|c| c.is_ascii_digit());
        fixed.then(|| {
            crate::memory::CacheRequest::new(crate::memory::CacheKind::TtsAudio, &self.voice, sentence).param("speed", self.speed).param("noise", self.noise)
        })
    }

    fn get(&self, req: &crate::memory::CacheRequest) -> Option<Vec<f32>> {
        match self.cache.get(req) {
            Ok(Some(bytes)) => Some(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!("phrase cache: {e}");
                None
            }
        }
    }

    fn put(&self, req: &crate::memory::CacheRequest, samples: &[f32]) {
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        if let Err(e) = self.cache.put(req, &bytes) {
            tracing::debug!("phrase cache: {e}");
        }
    }
}

/// Writes every reply, one after the other with a short gap, into one WAV file.
pub fn write_replies(path: &Path, turns: &[Turn], sample_rate: u32) -> Result<(), WavError> {
    let gap = vec![0.0; (REPLY_GAP_S * sample_rate as f32) as usize];
    let mut all = Vec::new();
    for (i, turn) in turns.iter().enumerate() {
        if i > 0 {
            all.extend_from_slice(&gap);
        }
        all.extend_from_slice(&turn.audio);
    }
    wav::write_mono(path, &all, sample_rate)
}

/// Removes and returns the finished sentences at the front of `text` (streamed LLM output),
/// leaving the unfinished rest. Conservative: a sentence ends at `.`, `!` or `?` followed by
/// a space and a capital or digit (or a newline), not after a list number ("1. Open") or a short
/// abbreviation. "3.5" never ends one: no space follows its period.
pub fn take_sentences(text: &mut String) -> Vec<String> {
    const ABBREVIATIONS: [&str; 9] = ["mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e"];
    let mut done = Vec::new();
    loop {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut cut = None;
        for (k, &(i, c)) in chars.iter().enumerate() {
            let next = chars.get(k + 1).map(|&(_, c)| c);
            let after = chars.get(k + 2).map(|&(_, c)| c);
            let ends = match c {
                '\n' => true,
                '!' | '?' => matches!(next, Some(' ')) && after.is_some(),
                '.' => {
                    let word: String = text[..i].chars().rev().take_while(|c| c.is_alphanumeric() || *c == '.').collect::<Vec<_>>().into_iter().rev().collect();
                    matches!(next, Some(' ')) && after.is_some_and(|a| a.is_uppercase() || a.is_ascii_digit() || a == '"') && !list_number(&text[..i]) && !ABBREVIATIONS.contains(&word.to_lowercase().as_str())
                }
                _ => false,
            };
            if ends {
                cut = Some(i + c.len_utf8());
                break;
            }
        }
        let Some(cut) = cut else { break };
        let sentence = text[..cut].trim().to_string();
        text.replace_range(..cut, "");
        if !sentence.is_empty() {
            done.push(sentence);
        }
    }
    done
}

/// Whether `before` (text up to a period) ends in a list item's number: digits that open the
/// text, a line or a sentence, or follow a colon ("Steps: 1."), unlike "born in 1867.".
fn list_number(before: &str) -> bool {
    let digits = before.trim_end_matches(|c: char| c.is_ascii_digit());
    if digits.len() == before.len() {
        return false;
    }
    let lead = digits.trim_end_matches([' ', '\t']);
    lead.is_empty() || lead.ends_with(['\n', ':', '.', '!', '?'])
}

/// Removes and returns the opening of `text` (streamed LLM output) once it is complete: up to
/// a clause mark ("Sure,") or a phrase opener ("The sky looks blue | because"); see
/// [`tts::sentences::first_cut`].
pub fn take_opening(text: &mut String) -> Option<String> {
    let cut = tts::sentences::first_cut(text, false)?;
    let head = cut.head(text);
    text.replace_range(..cut.tail_start, "");
    (!head.is_empty()).then_some(head)
}

#[cfg(test)]
mod tests {
    use super::{take_opening, take_sentences, wake_phrase};

    #[test]
    fn the_opening_clause_is_cut_once_the_next_word_has_begun() {
        let mut text = String::from("Sure,");
        assert_eq!(take_opening(&mut text), None, "the comma could still be a number's");
        text.push_str(" I");
        assert_eq!(take_opening(&mut text).as_deref(), Some("Sure,"));
        assert_eq!(text, "I");
        let mut text = String::from("About 1,000 people live there, mostly");
        assert_eq!(take_opening(&mut text).as_deref(), Some("About 1,000 people live there,"));
        let mut text = String::from("Paris is the capital of France");
        assert_eq!(take_opening(&mut text), None);
    }

    #[test]
    fn a_long_opening_is_cut_before_a_phrase_opener_once_it_is_a_whole_word() {
        let mut text = String::from("The sky looks blue because");
        assert_eq!(take_opening(&mut text), None, "`because` could still grow");
        text.push_str(" sunlight");
        assert_eq!(take_opening(&mut text).as_deref(), Some("The sky looks blue,"));
        assert_eq!(text, "because sunlight");
        // A joiner waits for the word after it: a clause, or not.
        let mut text = String::from("A famous fact about cats is that");
        assert_eq!(take_opening(&mut text), None);
        text.push_str(" they ");
        assert_eq!(take_opening(&mut text).as_deref(), Some("A famous fact about cats is,"));
        let mut text = String::from("Sleeping better is all about a healthy and happy routine ");
        assert_eq!(take_opening(&mut text), None);
        let mut text = String::from("Cats sleep because ");
        assert_eq!(take_opening(&mut text), None, "too few words before it");
    }

    #[test]
    fn a_sentence_may_end_in_a_number_but_not_at_a_list_number() {
        let (done, rest) = feed(&["It was found in 1867. In 1871, he", " wrote"]);
        assert_eq!(done, vec!["It was found in 1867."]);
        assert_eq!(rest.trim(), "In 1871, he wrote");
        let (done, rest) = feed(&["Steps: 1. Open the app. 2. Close it. Done"]);
        assert_eq!(done, vec!["Steps: 1. Open the app.", "2. Close it."]);
        assert_eq!(rest.trim(), "Done");
    }

    #[test]
    fn the_wake_phrase_is_cut_from_the_transcript() {
        let phrase = wake_phrase("hey_jarvis");
        for (heard, command) in [("Hey Jarvis, what time is it?", "what time is it?"), ("Hey, Jarvis. Set a timer.", "Set a timer."), ("jarvis", ""), ("What is Jarvis?", "What is Jarvis?")] {
            assert_eq!(phrase.replace(heard, "").trim(), command, "{heard}");
        }
    }

    fn feed(pieces: &[&str]) -> (Vec<String>, String) {
        let mut pending = String::new();
        let mut out = Vec::new();
        for p in pieces {
            pending.push_str(p);
            out.extend(take_sentences(&mut pending));
        }
        (out, pending)
    }

    #[test]
    fn streamed_sentences_are_cut_only_when_finished() {
        let (done, rest) = feed(&["Paris is the cap", "ital of France. It has", " about 2.1 million people! Dr. Smith", " lives there"]);
        assert_eq!(done, vec!["Paris is the capital of France.", "It has about 2.1 million people!"]);
        assert_eq!(rest.trim(), "Dr. Smith lives there");
    }

    #[test]
    fn a_terminator_at_the_end_waits_for_what_follows() {
        let (done, rest) = feed(&["Yes. ", "no way"]);
        assert!(done.is_empty(), "a lower-case continuation is not a new sentence: {done:?}");
        assert_eq!(rest, "Yes. no way");
        let (done, _) = feed(&["One.\nTwo"]);
        assert_eq!(done, vec!["One."]);
    }
}
