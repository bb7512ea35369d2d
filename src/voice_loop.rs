//! The voice loop, headless: utterance audio → Whisper → local LLM (streamed) → Piper (streamed
//! sentence by sentence while the LLM is still writing) → reply audio. `roxy run` drives it over
//! a WAV file or a typed question; every stage reports into the timing registry.

use crate::audio::wav::{self, WavError};
use crate::config::Config;
use crate::llm::{ChatMessage, GenerateOptions, LlmError, LlmSettings, LlmSupervisor, NoLlmModel, Role, SYSTEM_PROMPT};
use crate::metrics::{Registry, Stage};
use crate::models::Manifest;
use crate::stt::{Stt, SttError};
use crate::tts::{self, StreamOptions, Tts, TtsError};
use crate::vad::{EndpointSettings, SileroVad, Vad, VadError, VadEvent};
use serde::Serialize;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Instant;

/// Chunk size the file is fed in, as a live 32 ms microphone callback would deliver it.
const CHUNK: usize = 512;
/// Silence between two replies in the output file.
const REPLY_GAP_S: f32 = 0.4;

#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error(transparent)]
    Audio(#[from] WavError),
    #[error(transparent)]
    Vad(#[from] VadError),
    #[error(transparent)]
    Stt(#[from] SttError),
    #[error(transparent)]
    NoLlm(#[from] NoLlmModel),
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Tts(#[from] TtsError),
}

/// Every model of the loop, loaded once.
pub struct Engine {
    vad: Arc<SileroVad>,
    stt: Stt,
    llm: LlmSupervisor,
    tts: Arc<dyn Tts>,
    config: Config,
    metrics: Arc<Registry>,
    /// The conversation so far (this run's session).
    history: std::sync::Mutex<Vec<ChatMessage>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadTimes {
    pub vad_ms: f64,
    pub stt_ms: f64,
    pub llm_ms: f64,
    pub tts_ms: f64,
}

/// One exchange, with the figures the settings pane shows.
#[derive(Debug, Clone, Serialize)]
pub struct Turn {
    pub heard: String,
    pub reply: String,
    /// Where the utterance sat in the input, when it came from audio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utterance_ms: Option<(u64, u64)>,
    pub ms: TurnTimes,
    pub reply_audio_s: f64,
    #[serde(skip)]
    pub audio: Vec<f32>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TurnTimes {
    pub stt: Option<f64>,
    pub llm_first_token: Option<f64>,
    pub llm_total: Option<f64>,
    /// From the first sentence handed to TTS to its audio.
    pub tts_first_audio: Option<f64>,
    /// From the end of speech (or the question) to the first reply audio.
    pub e2e_first_audio: Option<f64>,
    pub total: f64,
}

impl Engine {
    pub fn load(config: Config, models_dir: &Path, manifest: &Manifest, metrics: Arc<Registry>) -> Result<(Engine, LoadTimes), LoopError> {
        let timed = |stage_started: Instant| {
            let ms = ms_since(stage_started);
            metrics.record_ms(Stage::ModelLoad, ms);
            ms
        };
        let t = Instant::now();
        let vad = SileroVad::load(models_dir)?;
        let vad_ms = timed(t);
        let t = Instant::now();
        let stt = Stt::from_config(&config.stt, models_dir, manifest)?;
        let stt_ms = timed(t);
        let t = Instant::now();
        let llm = LlmSupervisor::new(LlmSettings::from_config(&config.llm, models_dir, manifest)?);
        llm.load()?;
        let llm_ms = timed(t);
        let t = Instant::now();
        let tts: Arc<dyn Tts> = Arc::new(tts::load_from_config(&config.tts, models_dir, manifest)?);
        let tts_ms = timed(t);
        let history = std::sync::Mutex::new(vec![ChatMessage::new(Role::System, SYSTEM_PROMPT)]);
        Ok((Engine { vad, stt, llm, tts, config, metrics, history }, LoadTimes { vad_ms, stt_ms, llm_ms, tts_ms }))
    }

    pub fn sample_rate(&self) -> u32 {
        self.tts.sample_rate()
    }

    /// Finds the utterances in 16 kHz audio (fed in live-sized chunks) and answers each.
    pub fn respond_to_audio(&self, samples: &[f32]) -> Result<Vec<Turn>, LoopError> {
        let mut vad = Vad::new(&self.vad, EndpointSettings::from_config(&self.config.vad));
        let mut turns = Vec::new();
        let mut events = Vec::new();
        for chunk in samples.chunks(CHUNK) {
            events.extend(vad.push(chunk)?);
        }
        events.extend(vad.finish()?);
        for event in events {
            if let VadEvent::SpeechEnd(utterance) = event {
                let end_of_speech = Instant::now();
                let t = Instant::now();
                let heard = self.stt.transcribe(&utterance.samples)?.text;
                let stt_ms = ms_since(t);
                self.metrics.record_ms(Stage::Stt, stt_ms);
                if heard.is_empty() {
                    continue;
                }
                let mut turn = self.respond_to_text(&heard, end_of_speech)?;
                turn.ms.stt = Some(stt_ms);
                turn.utterance_ms = Some((utterance.start_ms, utterance.end_ms));
                turns.push(turn);
            }
        }
        Ok(turns)
    }

    /// Answers `heard`: the LLM streams, and each finished sentence goes to TTS at once.
    /// `since` is when the user stopped speaking: the e2e clock.
    pub fn respond_to_text(&self, heard: &str, since: Instant) -> Result<Turn, LoopError> {
        let messages = {
            let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
            history.push(ChatMessage::new(Role::User, heard));
            history.clone()
        };
        let (sentences_tx, sentences_rx) = mpsc::channel::<(String, Instant)>();
        let tts = self.tts.clone();
        let options = StreamOptions::from_config(&self.config.tts);
        // Speaks sentences as they arrive; returns the audio and when the first came out.
        let speaker = std::thread::Builder::new()
            .name("roxy-loop-tts".into())
            .spawn(move || -> Result<(Vec<f32>, Option<(Instant, Instant)>), TtsError> {
                let mut audio = Vec::new();
                let mut first = None;
                for (n, (sentence, handed_over)) in sentences_rx.into_iter().enumerate() {
                    // Only the reply's opening clause is worth speaking early; later sentences
                    // are made while earlier ones play.
                    let options = StreamOptions { early_first_clause: n == 0 && options.early_first_clause, ..options };
                    for chunk in tts::stream(tts.as_ref(), &sentence, options) {
                        let chunk = chunk?;
                        if first.is_none() && !chunk.samples.is_empty() {
                            first = Some((handed_over, Instant::now()));
                        }
                        audio.extend_from_slice(&chunk.samples);
                    }
                }
                Ok((audio, first))
            })
            .expect("spawning the loop's TTS thread");

        let generated = Instant::now();
        let mut pending = String::new();
        let mut first_token = None;
        let completion = self.llm.generate(&messages, &GenerateOptions::from_config(&self.config.llm), |piece| {
            first_token.get_or_insert_with(|| ms_since(generated));
            pending.push_str(piece);
            for sentence in take_sentences(&mut pending) {
                let _ = sentences_tx.send((sentence, Instant::now()));
            }
        });
        if !pending.trim().is_empty() {
            let _ = sentences_tx.send((std::mem::take(&mut pending), Instant::now()));
        }
        drop(sentences_tx);
        let spoken = speaker.join().expect("the TTS thread does not panic");
        let completion = completion?;
        let (audio, first) = spoken?;
        let llm_total = ms_since(generated);

        let reply = completion.text.trim().to_string();
        self.history.lock().unwrap_or_else(|e| e.into_inner()).push(ChatMessage::new(Role::Assistant, reply.clone()));
        let tts_first_audio = first.map(|(handed, out)| out.duration_since(handed).as_secs_f64() * 1000.0);
        let e2e = first.map(|(_, out)| out.duration_since(since).as_secs_f64() * 1000.0);
        let m = &self.metrics;
        first_token.inspect(|ms| m.record_ms(Stage::LlmFirstToken, *ms));
        m.record_ms(Stage::LlmTotal, llm_total);
        tts_first_audio.inspect(|ms| m.record_ms(Stage::TtsFirstAudio, *ms));
        e2e.inspect(|ms| m.record_ms(Stage::E2e, *ms));
        Ok(Turn {
            heard: heard.to_string(),
            reply,
            utterance_ms: None,
            ms: TurnTimes {
                stt: None,
                llm_first_token: first_token,
                llm_total: Some(llm_total),
                tts_first_audio: tts_first_audio.map(round1),
                e2e_first_audio: e2e.map(round1),
                total: ms_since(since),
            },
            reply_audio_s: audio.len() as f64 / self.tts.sample_rate() as f64,
            audio,
        })
    }

    /// Stops the LLM worker.
    pub fn shutdown(&self) {
        self.llm.stop();
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
/// a space and a capital (or a newline), not after a digit ("3.5") or a short abbreviation.
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
                    let digit_before = text[..i].chars().last().is_some_and(|c| c.is_ascii_digit());
                    matches!(next, Some(' ')) && after.is_some_and(|a| a.is_uppercase() || a == '"') && !digit_before && !ABBREVIATIONS.contains(&word.to_lowercase().as_str())
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

fn ms_since(started: Instant) -> f64 {
    round1(started.elapsed().as_secs_f64() * 1000.0)
}

fn round1(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::take_sentences;

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
