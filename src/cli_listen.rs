//! `roxy listen --input FILE.wav` and `roxy wake FILE.wav`: the always-on path over a recording.

use anyhow::Result;
use roxy::config::{Config, WakeConfig};
use roxy::listen::{listen_samples, ListenReport};
use roxy::models::Manifest;
use roxy::paths::Paths;
use roxy::presets::MemoryInfo;
use roxy::stt::Stt;
use roxy::vad::{EndpointSettings, SileroVad, Vad};
use roxy::wake::{WakeDetector, WakeModels, WakeSettings};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ListenArgs {
    /// A WAV file (any rate or channel count), streamed through VAD and the wake word in 80 ms
    /// chunks. Without it Roxy listens to the microphone until Ctrl-C (or `--seconds`).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Live mode: the input device (default: the system's default input).
    #[arg(long, conflicts_with = "input")]
    device: Option<String>,
    /// Live mode: stop after this many seconds.
    #[arg(long, conflicts_with = "input")]
    seconds: Option<f32>,
    /// Live mode: when there is no microphone yet, say so and wait for one instead of failing.
    #[arg(long, conflicts_with = "input")]
    wait_for_device: bool,
    /// Wake-word model (default: config `wake.model`): hey_jarvis, alexa, hey_mycroft, hey_rhasspy, timer, weather.
    #[arg(long)]
    model: Option<String>,
    /// Wake score that counts as a detection (default: config `wake.threshold`).
    #[arg(long)]
    threshold: Option<f32>,
    /// Do not transcribe the utterances.
    #[arg(long)]
    no_stt: bool,
    /// Run every wake-word stage on every chunk, not only while the VAD hears voice (for
    /// comparing cost; detections are the same).
    #[arg(long)]
    no_gate: bool,
    /// Print wake events, utterances, transcripts and per-chunk cost as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct WakeArgs {
    /// A WAV file (any rate or channel count).
    file: PathBuf,
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    threshold: Option<f32>,
    /// One JSON line per detection: {"model", "t" (seconds), "score"}.
    #[arg(long)]
    json: bool,
}

fn wake_config(config: &Config, model: &Option<String>, threshold: Option<f32>) -> Result<WakeConfig> {
    let mut wake = config.wake.clone();
    if let Some(model) = model {
        wake.model = model.clone();
    }
    if let Some(t) = threshold {
        anyhow::ensure!(t > 0.0 && t < 1.0, "--threshold must be between 0 and 1 (exclusive), got {t}");
        wake.threshold = t;
    }
    Ok(wake)
}

/// Reads the file and runs VAD and (if enabled) the wake word over it.
fn run_file(file: &Path, config: &Config, wake_cfg: &WakeConfig, models_dir: &Path, gate: bool) -> Result<(ListenReport, roxy::audio::wav::WavInfo)> {
    let (samples, info) = roxy::audio::wav::read_mono_16k(file)?;
    let silero = SileroVad::load(models_dir)?;
    let mut vad = Vad::new(&silero, EndpointSettings::from_config(&config.vad));
    let mut wake = if wake_cfg.enabled {
        Some(WakeModels::load(models_dir, &wake_cfg.model)?.detector(WakeSettings::from_config(wake_cfg)))
    } else {
        None
    };
    let report = listen_samples(&samples, &mut vad, wake.as_mut().map(|w| w as &mut dyn WakeDetector), gate)?;
    if let Some(w) = &wake {
        let s = w.stage_ms();
        let per = |ms: f64| ms / s.chunks.max(1) as f64;
        tracing::info!(chunks = s.chunks, scored = s.scored, embeddings = s.embeddings, mel_ms = per(s.melspectrogram), embedding_ms = per(s.embedding), keyword_ms = per(s.keyword), "wake cost per chunk by stage");
    }
    Ok((report, info))
}

pub fn listen_command(args: ListenArgs, paths: &Paths, manifest: &Manifest) -> Result<ExitCode> {
    let config = Config::load(&paths.config_file, MemoryInfo::detect())?.config;
    let wake_cfg = wake_config(&config, &args.model, args.threshold)?;
    let Some(input) = args.input.clone() else {
        return listen_live(&args, &config, &wake_cfg, paths, manifest);
    };
    let (report, info) = run_file(&input, &config, &wake_cfg, &paths.models_dir, !args.no_gate)?;
    let stt = if args.no_stt || report.utterances.is_empty() {
        None
    } else {
        match Stt::from_config(&config.stt, &paths.models_dir, manifest) {
            Ok(stt) => Some(stt),
            Err(e) => {
                eprintln!("note: utterances are not transcribed: {e}");
                None
            }
        }
    };
    let mut transcripts = Vec::new();
    for u in &report.utterances {
        transcripts.push(match &stt {
            Some(stt) => Some(stt.transcribe(&u.samples)?),
            None => None,
        });
    }
    if args.json {
        let utterances: Vec<_> = report
            .utterances
            .iter()
            .zip(&transcripts)
            .map(|(u, t)| {
                serde_json::json!({
                    "start_ms": u.start_ms, "end_ms": u.end_ms, "reason": u.reason,
                    "text": t.as_ref().map(|t| t.text.clone()),
                    "stt_ms": t.as_ref().map(|t| t.timings.stt_ms),
                })
            })
            .collect();
        let out = serde_json::json!({
            "file": input, "input": info, "wake_model": wake_cfg.enabled.then_some(&wake_cfg.model),
            "wake": report.wake, "max_wake_score": report.max_wake_score,
            "utterances": utterances, "cost": report.cost,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    for w in &report.wake {
        println!("wake       {:>8.2} s  {} (score {:.3})", w.at_ms as f64 / 1000.0, w.model, w.score);
    }
    for (u, t) in report.utterances.iter().zip(&transcripts) {
        let text = t.as_ref().map(|t| format!("  \"{}\"", t.text)).unwrap_or_default();
        println!("utterance  {:>8.2} s – {:.2} s ({:?}){text}", u.start_ms as f64 / 1000.0, u.end_ms as f64 / 1000.0, u.reason);
    }
    if report.wake.is_empty() && wake_cfg.enabled {
        println!("no wake word ({}; highest score {:.3}, threshold {})", wake_cfg.model, report.max_wake_score, wake_cfg.threshold);
    }
    let c = &report.cost;
    if let Some(cpu) = c.cpu_s_per_audio_s {
        println!("cpu: {cpu:.4} CPU-s per audio-s (VAD + wake, whole process)");
    }
    println!(
        "cost: {:.1} s of audio in {} chunks of {:.0} ms; VAD {:.3} ms/chunk (max {:.2}, RTF {:.4}); wake {:.3} ms/chunk (p95 {:.2}, max {:.2}, RTF {:.4})",
        c.audio_s, c.chunks, c.chunk_ms, c.vad.mean_chunk_ms, c.vad.max_chunk_ms, c.vad.real_time_factor,
        c.wake.mean_chunk_ms, c.wake.p95_chunk_ms, c.wake.max_chunk_ms, c.wake.real_time_factor
    );
    Ok(ExitCode::SUCCESS)
}

pub fn wake_command(args: WakeArgs, paths: &Paths) -> Result<ExitCode> {
    let config = Config::load(&paths.config_file, MemoryInfo::detect())?.config;
    let mut wake_cfg = wake_config(&config, &args.model, args.threshold)?;
    wake_cfg.enabled = true;
    let (samples, _) = roxy::audio::wav::read_mono_16k(&args.file)?;
    let mut wake = WakeModels::load(&paths.models_dir, &wake_cfg.model)?.detector(WakeSettings::from_config(&wake_cfg));
    let detections = wake.push(&samples)?;
    for d in &detections {
        if args.json {
            println!("{}", serde_json::json!({"model": d.model, "t": d.at_ms as f64 / 1000.0, "score": d.score}));
        } else {
            println!("{:.2} s  {} (score {:.3})", d.at_ms as f64 / 1000.0, d.model, d.score);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `roxy listen` on the microphone: one line per event (JSON lines with `--json`).
fn listen_live(args: &ListenArgs, config: &Config, wake_cfg: &WakeConfig, paths: &Paths, manifest: &Manifest) -> Result<ExitCode> {
    use roxy::audio::capture::{CaptureEvent, Microphone};
    use roxy::listen::{ListenEvent, Listener};
    let silero = SileroVad::load(&paths.models_dir)?;
    let mut vad = Vad::new(&silero, EndpointSettings::from_config(&config.vad));
    let mut wake = if wake_cfg.enabled {
        Some(WakeModels::load(&paths.models_dir, &wake_cfg.model)?.detector(WakeSettings::from_config(wake_cfg)))
    } else {
        None
    };
    let stt = if args.no_stt { None } else { Some(Stt::from_config(&config.stt, &paths.models_dir, manifest)?) };
    let mic = if args.wait_for_device { Microphone::open_or_wait(args.device.as_deref()) } else { Microphone::open(args.device.as_deref())? };
    let mut listener = Listener::new(&mut vad, wake.as_mut().map(|w| w as &mut dyn WakeDetector), !args.no_gate);
    let say = |kind: &str, value: serde_json::Value, text: String| {
        if args.json {
            let mut line = serde_json::json!({ "event": kind });
            if let (Some(line), Some(extra)) = (line.as_object_mut(), value.as_object()) {
                line.extend(extra.clone());
            }
            println!("{line}");
        } else {
            println!("{text}");
        }
    };
    let until = args.seconds.map(|s| std::time::Instant::now() + std::time::Duration::from_secs_f32(s.max(0.0)));
    loop {
        let wait = match until {
            Some(t) => match t.checked_duration_since(std::time::Instant::now()) {
                Some(left) => left,
                None => break,
            },
            None => std::time::Duration::from_secs(3600),
        };
        let event = match mic.events().recv_timeout(wait) {
            Ok(event) => event,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match event {
            CaptureEvent::Audio(chunk) => {
                for event in listener.push(&chunk)? {
                    match event {
                        ListenEvent::Wake(w) => say("wake", serde_json::to_value(&w)?, format!("wake word {} (score {:.2})", w.model, w.score)),
                        ListenEvent::SpeechStart { at_ms } => say("speech_start", serde_json::json!({ "at_ms": at_ms }), format!("speech at {at_ms} ms")),
                        ListenEvent::Pause(_) => {}
                        ListenEvent::SpeechEnd(u) => {
                            let text = match &stt {
                                Some(stt) => Some(stt.transcribe(&u.samples)?.text),
                                None => None,
                            };
                            let shown = text.clone().unwrap_or_default();
                            say("utterance", serde_json::json!({ "start_ms": u.start_ms, "end_ms": u.end_ms, "text": text }), format!("heard ({}-{} ms): {shown}", u.start_ms, u.end_ms));
                        }
                    }
                }
            }
            CaptureEvent::SilentInput { ms } => say(
                "silent_input",
                serde_json::json!({ "ms": ms }),
                format!("warning: {ms} ms of pure silence from the microphone: unmute it, or on macOS allow Roxy under System Settings → Privacy & Security → Microphone"),
            ),
            CaptureEvent::DeviceLost { message } => say("device_lost", serde_json::json!({ "message": message }), format!("microphone lost: {message}; waiting for it to come back")),
            // First on opening, again after a lost device came back.
            CaptureEvent::Started(f) => say("started", serde_json::json!({ "device": f }), format!("listening on {} ({} Hz, {} ch); Ctrl-C stops", f.device, f.sample_rate, f.channels)),
            CaptureEvent::Overrun { dropped } => tracing::debug!(dropped, "capture overrun"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
