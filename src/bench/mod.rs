//! `roxy bench`: every stage's benchmark on the installed models, in one table: the figure, its
//! target, within/over, and the ratio to a baseline where there is one (bare whisper.cpp for
//! STT, llama.cpp's own decode for the LLM). Speed targets live here, never in timed tests.
//!
//! The engine runs on a scratch data dir (removed afterwards), so the benchmark's turns never
//! reach the user's history or memory.

mod live_turns;
mod llm;
mod stt;

use crate::audio::resample::resample_mono;
use crate::audio::wav::SAMPLE_RATE;
use crate::config::Config;
use crate::listen::listen_samples;
use crate::metrics::{Registry, Stage};
use crate::models::Manifest;
use crate::paths::Paths;
use crate::presets::MemoryInfo;
use crate::tts::{self, StreamOptions, Tts};
use crate::vad::{EndpointSettings, Vad};
use crate::voice_loop::Engine;
use crate::wake::{WakeModels, WakeSettings};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// A short run for CI: fewer repetitions, shorter audio, a smaller memory store.
    pub quick: bool,
}

/// How much of everything one run does.
struct Sizes {
    stt_runs: usize,
    stt_full_ctx_runs: usize,
    llm_max_tokens: u32,
    /// Alternating supervisor / baseline rounds of the LLM speed comparison.
    llm_rounds: usize,
    intent_queries: usize,
    memory_rows: usize,
    memory_queries: usize,
    tts_runs: usize,
    listen_s: f64,
    turns: usize,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes { stt_runs: 2, stt_full_ctx_runs: 1, llm_max_tokens: 24, llm_rounds: 1, intent_queries: 30, memory_rows: 300, memory_queries: 50, tts_runs: 2, listen_s: 20.0, turns: 3 }
        } else {
            Sizes { stt_runs: 10, stt_full_ctx_runs: 5, llm_max_tokens: 64, llm_rounds: 3, intent_queries: 120, memory_rows: 2_000, memory_queries: 200, tts_runs: 5, listen_s: 60.0, turns: 10 }
        }
    }
}

/// A target: `value` (or `ratio`) must be at most / at least `limit`.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// "value" or "ratio".
    pub on: &'static str,
    /// "<=" or ">=".
    pub op: &'static str,
    pub limit: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub stage: &'static str,
    pub figure: String,
    pub value: f64,
    pub unit: &'static str,
    pub target: Option<Target>,
    /// Whether the figure meets its target (`None`: no target).
    pub within: Option<bool>,
    /// The same figure measured on the bare library, where there is one.
    pub baseline: Option<f64>,
    /// value / baseline.
    pub ratio: Option<f64>,
}

impl Row {
    fn new(stage: &'static str, figure: impl Into<String>, value: f64, unit: &'static str) -> Row {
        Row { stage, figure: figure.into(), value, unit, target: None, within: None, baseline: None, ratio: None }
    }
    fn vs(mut self, baseline: f64) -> Row {
        self.baseline = Some(baseline);
        self.ratio = Some(self.value / baseline);
        self
    }
    fn target(mut self, on: &'static str, op: &'static str, limit: f64) -> Row {
        let x = if on == "ratio" { self.ratio.unwrap_or(f64::NAN) } else { self.value };
        self.within = Some(if op == "<=" { x <= limit } else { x >= limit });
        self.target = Some(Target { on, op, limit });
        self
    }
    fn max(self, limit: f64) -> Row {
        self.target("value", "<=", limit)
    }
    fn ratio_max(self, limit: f64) -> Row {
        self.target("ratio", "<=", limit)
    }
    fn ratio_min(self, limit: f64) -> Row {
        self.target("ratio", ">=", limit)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// "release" or "debug": figures from a debug build are not representative.
    pub build: &'static str,
    pub quick: bool,
    pub cpus: usize,
    /// The tier whose preset the config resolved to ("custom" for none).
    pub preset: String,
    /// 1-minute load average before and after the run (Linux): other work inflates figures.
    pub load_average_before: Option<f64>,
    pub load_average_after: Option<f64>,
    /// The slowest stage of end of speech → first audio (by p50).
    pub slowest_turn_stage: Option<String>,
    pub wall_s: f64,
    pub rows: Vec<Row>,
    /// Every timed live turn, in order: where a slow p90 comes from.
    pub turns: Vec<TurnFigures>,
    /// The same questions through the file loop (`roxy run --input`): STT after the end of speech.
    pub file_turns: Vec<TurnFigures>,
}

/// Questions for the timed turns: skills and LLM answers, none with side effects to undo.
const TURNS: [&str; 10] = [
    "What time is it?",
    "What is the capital of France?",
    "What day is it today?",
    "Tell me a fun fact about cats.",
    "Why is the sky blue?",
    "What is the date today?",
    "How are you today?",
    "Give me a tip for sleeping better.",
    "What is two plus two?",
    "Name a famous painter.",
];
const STT_UTTERANCE: &str = "What time is it in Tokyo right now?";
const TTS_TEXT: &str = "Sure. The weather in Lisbon is sunny today, with a high of twenty four degrees and a light breeze.";

pub fn run(paths: &Paths, manifest: &Manifest, options: Options) -> anyhow::Result<Report> {
    let entered = Instant::now();
    // Process start → here (arguments, logging, manifest): part of any start-up.
    let before_entry_s = process_age_s().unwrap_or(0.0);
    let load_average_before = load_average();
    let sizes = Sizes::new(options.quick);
    let loaded = Config::load(&paths.config_file, MemoryInfo::detect())?;
    let preset = loaded.tier.map_or("custom".to_string(), |t| t.manifest_tier().to_string());
    let config = loaded.config;
    let models_dir = &paths.models_dir;
    let scratch = Scratch::new(&paths.data_dir)?;

    const SECTIONS: u64 = 11;
    let bar = ProgressBar::with_draw_target(Some(SECTIONS), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:24} {pos}/{len} {msg}").expect("a valid template"));
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut rows = Vec::new();

    // 1. Utterances, spoken by Roxy's own voice and resampled to what the microphone path gives.
    bar.set_message("making the test utterances");
    // Without Piper's noise the same words make the same audio every run, so the transcripts,
    // and with them the LLM's seeded answers, repeat and two runs compare.
    let still = crate::config::TtsConfig { noise_scale: 0.0, noise_w: 0.0, ..config.tts.clone() };
    let voice: Arc<dyn Tts> = Arc::new(tts::load_from_config(&still, models_dir, manifest)?);
    let speak = |text: &str| -> anyhow::Result<Vec<f32>> {
        let speech = tts::synthesize(voice.as_ref(), text, StreamOptions::from_config(&config.tts))?;
        let mut samples = resample_mono(&speech.samples, speech.sample_rate, SAMPLE_RATE)?;
        // A little room either side, as an endpointed utterance has.
        let pad = vec![0.0f32; SAMPLE_RATE as usize / 4];
        samples.splice(0..0, pad.iter().copied());
        samples.extend_from_slice(&pad);
        Ok(samples)
    };
    let stt_utterance = speak(STT_UTTERANCE)?;
    let questions: Vec<&str> = TURNS.iter().copied().cycle().take(sizes.turns.max(1)).collect();
    let spoken: Vec<Vec<f32>> = questions.iter().map(|q| speak(q)).collect::<anyhow::Result<_>>()?;
    drop(voice);
    bar.inc(1);

    // 2. Cold start: every model loaded, then the first turn to its first audio.
    bar.set_message("cold start: loading every model and answering the first turn");
    let metrics = Arc::new(Registry::new());
    let t = Instant::now();
    let (engine, _load) = Engine::load(config.clone(), models_dir, scratch.path(), manifest, metrics.clone()).context("loading the engine")?;
    let engine = Arc::new(engine);
    let load_s = t.elapsed().as_secs_f64();
    let first = one_turn(&engine, questions[0], &spoken[0])?;
    engine.settle();
    let cold_s = before_entry_s + load_s + first.e2e_ms / 1000.0;
    rows.push(Row::new("gates", "cold start (process start → first reply audio, models loaded)", cold_s, "s").max(15.0));
    bar.inc(1);

    // 3. End of speech → first audio over a set of turns, asked live (STT included), each
    // next to the same question through the file loop (STT and prefill after the end of
    // speech), alternating which goes first.
    let (mut turns, mut after_endpoint) = (Vec::new(), Vec::new());
    for (i, (question, audio)) in questions.iter().zip(&spoken).enumerate() {
        bar.set_message(format!("turns: {}/{}", i + 1, questions.len()));
        // A user takes seconds to hear the answer and ask again; the LLM's priming fits in them.
        let live = |turns: &mut Vec<TurnFigures>| -> anyhow::Result<()> {
            turns.push(live_turns::run(&engine, question, audio)?);
            engine.settle();
            Ok(())
        };
        if i % 2 == 1 {
            live(&mut turns)?;
        }
        after_endpoint.push(one_turn(&engine, question, audio)?);
        engine.settle();
        if i % 2 == 0 {
            live(&mut turns)?;
        }
    }
    let mut e2e: Vec<f64> = turns.iter().map(|t| t.e2e_ms).collect();
    let mut file_e2e: Vec<f64> = after_endpoint.iter().map(|t| t.e2e_ms).collect();
    let mut last_word: Vec<f64> = turns.iter().filter_map(|t| t.last_word_ms).collect();
    let n = e2e.len();
    rows.push(Row::new("e2e", format!("end of speech → first audio p50, live ({n} turns; baseline: STT after the end of speech)"), percentile(&mut e2e, 0.5), "ms").vs(percentile(&mut file_e2e, 0.5)));
    rows.push(Row::new("e2e", format!("end of speech → first audio p90, live ({n} turns; baseline: STT after the end of speech)"), percentile(&mut e2e, 0.9), "ms").vs(percentile(&mut file_e2e, 0.9)).max(1000.0));
    let wait = config.vad.end_silence_ms;
    rows.push(Row::new("e2e", format!("last word → first audio p50, live (the {wait} ms end-of-speech wait included)"), percentile(&mut last_word, 0.5), "ms"));
    rows.push(Row::new("e2e", format!("last word → first audio p90, live (the {wait} ms end-of-speech wait included)"), percentile(&mut last_word, 0.9), "ms").max(1000.0));
    let mut breakdown: Vec<(&'static str, f64)> = Vec::new();
    for (name, pick) in [
        ("stt_wait", (|t: &TurnFigures| t.stt_wait_ms) as fn(&TurnFigures) -> Option<f64>),
        ("intent", |t| t.intent_ms),
        ("llm_first_token", |t| t.llm_first_token_ms),
        ("tts_first_audio", |t| t.tts_first_audio_ms),
    ] {
        let mut values: Vec<f64> = turns.iter().filter_map(pick).filter(|v| *v > 0.0).collect();
        if !values.is_empty() {
            breakdown.push((name, percentile(&mut values, 0.5)));
        }
    }
    let slowest = breakdown.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|s| s.0);
    for (name, p50) in &breakdown {
        let mark = if Some(*name) == slowest { "  ← slowest" } else { "" };
        rows.push(Row::new("e2e", format!("  {name} p50{mark}"), *p50, "ms"));
    }
    let mut begun: Vec<f64> = turns.iter().filter_map(|t| t.head_start_ms).collect();
    if !begun.is_empty() {
        let n = begun.len();
        rows.push(Row::new("e2e", format!("  answer begun before the end of speech, p50 ({n} LLM turns; the stages above then overlap the wait)"), percentile(&mut begun, 0.5), "ms"));
    }
    bar.inc(1);

    // 4. STT against bare whisper.cpp, with and without the trimmed encoder window.
    let bare = stt::bare_context(engine.stt())?;
    for (pass, (trim, runs)) in [(true, sizes.stt_runs), (false, sizes.stt_full_ctx_runs)].into_iter().enumerate() {
        let label = if trim { "trimmed audio_ctx" } else { "full audio_ctx" };
        let mut done = 0;
        let result = stt::compare(engine.stt(), &bare, &stt_utterance, trim, runs, pass == 0, || {
            done += 1;
            bar.set_message(format!("stt vs bare whisper.cpp ({label}): {done}/{runs}"));
        })?;
        let audio_s = stt_utterance.len() as f64 / SAMPLE_RATE as f64;
        rows.push(Row::new("stt", format!("ms per {audio_s:.1} s utterance, {label}, best of {runs} (baseline: bare whisper_full)"), result.roxy_ms, "ms").vs(result.bare_ms).ratio_max(1.05));
    }
    drop(bare);
    bar.inc(1);

    // 5. The LLM through the supervisor against llama.cpp's own speed on the same GGUF.
    if let Some(supervisor) = engine.brain().llm() {
        // Rounds alternate the two sides and each keeps its best, so a moment of load on this
        // shared machine does not land on one side only.
        let per_s = |tokens: u32, us: u64| tokens as f64 / (us.max(1) as f64 / 1e6);
        let (mut seen, mut raw) = (Vec::new(), Vec::new());
        for round in 0..sizes.llm_rounds {
            bar.set_message(format!("llm: through the supervisor ({}/{})", round + 1, sizes.llm_rounds));
            let s = llm::supervised(supervisor, sizes.llm_max_tokens, round)?;
            bar.set_message(format!("llm: llama.cpp's own speed, baseline worker ({}/{})", round + 1, sizes.llm_rounds));
            raw.push(llm::raw(supervisor, s.prefill_tokens, s.completion_tokens.max(8))?);
            seen.push(s);
        }
        fn best(values: impl Iterator<Item = f64>) -> f64 {
            values.fold(f64::NAN, f64::max)
        }
        fn least(values: impl Iterator<Item = f64>) -> f64 {
            values.fold(f64::NAN, f64::min)
        }
        let (decode, decode_raw) = (best(seen.iter().map(|s| s.decode_per_s)), best(raw.iter().map(|r| per_s(r.decode_tokens, r.decode_us))));
        let (prefill, prefill_raw) = (best(seen.iter().map(|s| s.prefill_per_s)), best(raw.iter().map(|r| per_s(r.prompt_tokens, r.prefill_us))));
        let (cold, cached) = (least(seen.iter().map(|s| s.ttft_cold_ms)), least(seen.iter().map(|s| s.ttft_cached_ms)));
        let first = &seen[0];
        let rounds = if seen.len() > 1 { format!(", best of {}", seen.len()) } else { String::new() };
        rows.push(Row::new("llm", format!("decode tokens/s ({} tokens{rounds}; baseline: llama_decode)", first.completion_tokens), decode, "tok/s").vs(decode_raw).ratio_min(0.95));
        rows.push(Row::new("llm", format!("prefill tokens/s ({} tokens{rounds}; baseline: one llama_decode batch)", first.prefill_tokens), prefill, "tok/s").vs(prefill_raw).ratio_min(0.95));
        rows.push(Row::new("llm", "time to first token, cold prompt", cold, "ms"));
        rows.push(Row::new("llm", format!("time to first token, cached prefix ({} tokens; baseline: cold)", first.cached_tokens), cached, "ms").vs(cold).ratio_max(0.3));
    } else {
        bar.println("llm: no LLM model is installed; its rows are left out. Fix: roxy models fetch --tier default");
    }
    bar.inc(1);

    // 6. Intent routing: new utterances (the embedding model runs), then the same again (cached).
    let utterances = intent_utterances(sizes.intent_queries);
    let mut new = Vec::new();
    let mut cached = Vec::new();
    for (pass, times) in [&mut new, &mut cached].into_iter().enumerate() {
        for (i, u) in utterances.iter().enumerate() {
            if i % 10 == 0 {
                bar.set_message(format!("intent ({}): {i}/{}", if pass == 0 { "new" } else { "repeated" }, utterances.len()));
            }
            let t = Instant::now();
            engine.brain().decide(u)?;
            times.push(ms_since(t));
        }
    }
    rows.push(Row::new("intent", "routing p50, new utterance (embedding runs)", percentile(&mut new, 0.5), "ms").max(5.0));
    rows.push(Row::new("intent", "routing p99, new utterance", percentile(&mut new, 0.99), "ms").max(5.0));
    rows.push(Row::new("intent", "routing p50, repeated utterance (cached)", percentile(&mut cached, 0.5), "ms").max(5.0));
    rows.push(Row::new("intent", "routing p99, repeated utterance", percentile(&mut cached, 0.99), "ms").max(5.0));
    bar.inc(1);

    // 7. Memory search on a fresh store (the memory bench's own data and queries).
    bar.set_message(format!("memory: search over {} turns", sizes.memory_rows));
    let memory = crate::memory::bench(&scratch.path().join("memory-bench"), &[sizes.memory_rows], sizes.memory_queries, false, None, |_| {})?;
    if let Some(m) = memory.rows.first() {
        rows.push(Row::new("memory", format!("history search p99 ({} turns)", m.rows), m.search_p99_ms, "ms").max(Stage::MemorySearch.target_ms().unwrap_or(100.0)));
    }
    bar.inc(1);

    // 8. TTS on its own: time to first audio and real-time factor.
    let (mut first_audio, mut rtf) = (Vec::new(), Vec::new());
    for i in 0..sizes.tts_runs {
        bar.set_message(format!("tts: {}/{}", i + 1, sizes.tts_runs));
        let speech = tts::synthesize(engine.tts(), TTS_TEXT, StreamOptions::from_config(&config.tts))?;
        first_audio.extend(speech.timings.first_audio_ms);
        rtf.push(speech.timings.total_ms / 1000.0 / speech.timings.audio_s.max(1e-9));
    }
    rows.push(Row::new("tts", "time to first audio (median)", median(&mut first_audio), "ms").max(Stage::TtsFirstAudio.target_ms().unwrap_or(300.0)));
    rows.push(Row::new("tts", "real-time factor (synthesis s per audio s)", median(&mut rtf), "x").max(1.0));
    bar.inc(1);

    // 9. The always-on path: wake word + VAD over a long stream of speech and quiet room noise.
    bar.set_message(format!("always-on: wake + VAD over {:.0} s of audio", sizes.listen_s));
    let stream = always_on_audio(&stt_utterance, sizes.listen_s);
    let mut vad = Vad::new(engine.vad_model(), EndpointSettings::from_config(&config.vad));
    let wake = match engine.wake_models() {
        Some(models) => models.clone(),
        None => WakeModels::load(models_dir, &config.wake.model)?,
    };
    let mut detector = wake.detector(WakeSettings::from_config(&config.wake));
    let listened = listen_samples(&stream, &mut vad, Some(&mut detector), true)?;
    let cpu = listened.cost.cpu_s_per_audio_s.unwrap_or(listened.cost.vad.real_time_factor + listened.cost.wake.real_time_factor);
    rows.push(Row::new("always-on", "wake + VAD CPU-s per audio-s", cpu, "x").max(0.02));
    bar.inc(1);

    // 10. Memory: the whole model stack (this process + the LLM worker), then the LLM unloaded.
    bar.set_message("memory use of the model stack");
    let own = crate::llm::rss_bytes(std::process::id()).unwrap_or(0);
    let worker = engine.brain().llm().and_then(|l| l.status().rss_bytes).unwrap_or(0);
    rows.push(Row::new("gates", format!("model stack RSS, {preset} preset (engine {} + LLM worker {} MiB)", mib(own).round(), mib(worker).round()), mib(own + worker), "MiB"));
    if let Some(l) = engine.brain().llm() {
        l.stop();
    }
    rows.push(Row::new("gates", "idle RSS, LLM unloaded (baseline: model stack)", mib(crate::llm::rss_bytes(std::process::id()).unwrap_or(own)), "MiB").vs(mib(own + worker)));
    bar.inc(1);

    // 11. Warm start: the models again, now in the page cache, as a second launch finds them.
    bar.set_message("warm start: loading the engine again");
    engine.shutdown();
    drop(engine);
    let t = Instant::now();
    let (engine, _) = Engine::load(config.clone(), models_dir, scratch.path(), manifest, Arc::new(Registry::new()))?;
    let warm_s = before_entry_s + t.elapsed().as_secs_f64();
    engine.shutdown();
    drop(engine);
    rows.push(Row::new("gates", "warm start (process start → ready to listen)", warm_s, "s").max(3.0));
    let (snapshot_us, walks_us) = snapshot_cost_us();
    rows.push(Row::new("metrics", format!("registry snapshot, {} stages × 1000 samples (baseline: one walk per figure, as before)", Stage::ALL.len()), snapshot_us, "µs").vs(walks_us));
    bar.inc(1);
    bar.finish_and_clear();

    Ok(Report {
        build: if cfg!(debug_assertions) { "debug" } else { "release" },
        quick: options.quick,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        preset,
        load_average_before,
        load_average_after: load_average(),
        slowest_turn_stage: slowest.map(str::to_string),
        wall_s: entered.elapsed().as_secs_f64(),
        rows,
        turns,
        file_turns: after_endpoint,
    })
}

/// One turn's figures, in ms.
#[derive(Debug, Clone, Serialize)]
pub struct TurnFigures {
    pub heard: String,
    pub reply: String,
    pub route: crate::brain::Route,
    pub e2e_ms: f64,
    /// Live: from the end of the speaker's last word to the reply's first audio at the speaker,
    /// the VAD's end-of-speech wait (`vad.end_silence_ms`) included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_word_ms: Option<f64>,
    /// Whisper's decode.
    pub stt_ms: Option<f64>,
    /// How much of it came after the end of speech (live, it starts at the pause before).
    pub stt_wait_ms: Option<f64>,
    /// Live: how long before the end of speech the answer began (at the pause); its LLM first
    /// token and TTS first audio then partly come before the end of speech.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_start_ms: Option<f64>,
    pub intent_ms: Option<f64>,
    pub llm_first_token_ms: Option<f64>,
    pub tts_first_audio_ms: Option<f64>,
}

/// The utterance through Whisper, then the brain and TTS; the clock starts at the end of speech.
fn one_turn(engine: &Engine, question: &str, audio: &[f32]) -> anyhow::Result<TurnFigures> {
    let end_of_speech = Instant::now();
    let heard = engine.stt().transcribe(audio)?.text;
    let stt_ms = ms_since(end_of_speech);
    // A misheard question is still a turn; an unheard one is asked as typed.
    let heard = if heard.trim().is_empty() { question.to_string() } else { heard };
    let turn = engine.respond_to_text(&heard, end_of_speech)?;
    let e2e_ms = turn.ms.e2e_first_audio.with_context(|| format!("the reply to {heard:?} made no audio"))?;
    Ok(TurnFigures {
        heard: turn.heard,
        reply: turn.reply,
        route: turn.route,
        e2e_ms,
        last_word_ms: None,
        stt_ms: Some(stt_ms),
        stt_wait_ms: Some(stt_ms),
        head_start_ms: None,
        intent_ms: turn.ms.intent,
        llm_first_token_ms: turn.ms.llm_first_token,
        tts_first_audio_ms: turn.ms.tts_first_audio,
    })
}

/// Distinct routing questions: every opener with every subject.
fn intent_utterances(n: usize) -> Vec<String> {
    const OPENERS: [&str; 8] = ["what is", "tell me about", "set a timer for", "remind me about", "how long until", "what time is it in", "who wrote", "play some"];
    const SUBJECTS: [&str; 16] = [
        "Tokyo", "ten minutes", "the moon", "jazz", "my meeting", "Christmas", "Paris", "the weather", "dinner", "the news", "Hamlet", "five o'clock", "London", "rain", "my sister", "coffee",
    ];
    SUBJECTS.iter().flat_map(|s| OPENERS.iter().map(move |o| format!("{o} {s}"))).take(n).collect()
}

/// Speech, then a couple of seconds of quiet room noise, repeated to `seconds`.
fn always_on_audio(utterance: &[f32], seconds: f64) -> Vec<f32> {
    let total = (seconds * SAMPLE_RATE as f64) as usize;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        out.extend_from_slice(utterance);
        for _ in 0..SAMPLE_RATE * 2 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            out.push(((rng >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.004);
        }
    }
    out.truncate(total);
    out
}

/// Microseconds per [`Registry::snapshot`] with every stage full of spread-out samples, and for
/// the same figures computed the way it used to (a separate walk per quantile and the mean).
fn snapshot_cost_us() -> (f64, f64) {
    let sample = |i: u64| i * i * 7;
    let registry = Registry::new();
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
    for i in 1..=1000u64 {
        h.record(sample(i)).expect("in range");
        for stage in Stage::ALL {
            registry.record(stage, Duration::from_micros(sample(i)));
        }
    }
    let runs = 50;
    let t = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(registry.snapshot());
    }
    let snapshot = t.elapsed().as_secs_f64() * 1e6 / runs as f64;
    let t = Instant::now();
    for _ in 0..runs {
        for _ in Stage::ALL {
            let h = std::hint::black_box(&h);
            std::hint::black_box((h.mean(), h.min(), h.max(), [0.5, 0.9, 0.95, 0.99].map(|q| h.value_at_quantile(q))));
        }
    }
    (snapshot, t.elapsed().as_secs_f64() * 1e6 / runs as f64)
}

/// The benchmark's own data dir inside the real one, removed when done.
struct Scratch(PathBuf);

impl Scratch {
    fn new(data_dir: &Path) -> anyhow::Result<Scratch> {
        let dir = data_dir.join(format!("bench-scratch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating the benchmark's scratch dir {}. Fix: check that the data dir is writable", dir.display()))?;
        Ok(Scratch(dir))
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The table `roxy bench` prints.
pub fn render(report: &Report) -> String {
    let mut out = format!(
        "roxy bench ({} build{}, {} CPUs, {} preset, load average {} → {}, {:.0} s)\n",
        report.build,
        if report.quick { ", quick" } else { "" },
        report.cpus,
        report.preset,
        report.load_average_before.map_or("-".into(), |l| format!("{l:.2}")),
        report.load_average_after.map_or("-".into(), |l| format!("{l:.2}")),
        report.wall_s
    );
    out.push_str(&format!("{:<10} {:<72} {:>12} {:>14} {:>7} {:>12} {:>7}\n", "stage", "figure", "value", "target", "status", "baseline", "ratio"));
    for r in &report.rows {
        let target = r.target.as_ref().map_or("-".into(), |t| {
            let op = if t.op == "<=" { "≤" } else { "≥" };
            if t.on == "ratio" { format!("ratio {op} {}", t.limit) } else { format!("{op} {} {}", t.limit, r.unit) }
        });
        let status = crate::metrics::status_label(r.within);
        out.push_str(&format!(
            "{:<10} {:<72} {:>12} {:>14} {:>7} {:>12} {:>7}\n",
            r.stage,
            r.figure,
            format!("{} {}", fmt(r.value), r.unit),
            target,
            status,
            r.baseline.map_or("-".into(), |b| format!("{} {}", fmt(b), r.unit)),
            r.ratio.map_or("-".into(), |x| format!("{x:.3}")),
        ));
    }
    if let Some(stage) = &report.slowest_turn_stage {
        out.push_str(&format!("slowest stage of end of speech → first audio: {stage}\n"));
    }
    if let Some(t) = report.turns.iter().max_by(|a, b| a.e2e_ms.total_cmp(&b.e2e_ms)) {
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
        out.push_str(&format!(
            "slowest turn: {:?} ({:?}) {:.0} ms = stt wait {} (of {} decoding) + intent {} + llm first token {} + tts first audio {} (+ waiting for the opening to speak)\n",
            t.heard,
            t.route,
            t.e2e_ms,
            ms(t.stt_wait_ms),
            ms(t.stt_ms),
            ms(t.intent_ms),
            ms(t.llm_first_token_ms),
            ms(t.tts_first_audio_ms)
        ));
    }
    out
}

fn fmt(v: f64) -> String {
    match v.abs() {
        x if x >= 100.0 => format!("{v:.0}"),
        x if x >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.4}"),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Nearest-rank percentile (0 for none).
fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = (q * values.len() as f64).ceil().max(1.0) as usize;
    values[rank.min(values.len()) - 1]
}

fn median(values: &mut [f64]) -> f64 {
    percentile(values, 0.5)
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Seconds since this process started (Linux; 10 ms resolution).
fn process_age_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let start_ticks: f64 = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()?;
    Some((uptime - start_ticks / 100.0).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_apply_to_the_value_or_the_ratio() {
        let r = Row::new("stt", "x", 105.0, "ms").vs(100.0).ratio_max(1.05);
        assert_eq!((r.ratio, r.within), (Some(1.05), Some(true)));
        let r = Row::new("llm", "x", 90.0, "tok/s").vs(100.0).ratio_min(0.95);
        assert_eq!(r.within, Some(false));
        assert_eq!(Row::new("intent", "x", 6.0, "ms").max(5.0).within, Some(false));
        assert_eq!(Row::new("gates", "x", 6.0, "MiB").within, None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!((percentile(&mut v, 0.5), percentile(&mut v, 0.9), percentile(&mut v, 0.99)), (5.0, 9.0, 10.0));
        assert_eq!(percentile(&mut [], 0.5), 0.0);
        assert!(process_age_s().is_none_or(|s| s >= 0.0));
    }
}
