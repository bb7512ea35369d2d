//! `roxy run` with no input: the live loop on the microphone and speaker, until Ctrl-C.
//! Press Enter to talk without the wake word (like the hotkey); type `stop` to silence Roxy.

use anyhow::Result;
use roxy::audio::capture::Microphone;
use roxy::audio::playback::{AudioSink, Speaker, WavSink};
use roxy::config::Config;
use roxy::coordinator::Trigger;
use roxy::live::{self, Command, LiveEvent, LiveOptions};
use roxy::models::Manifest;
use roxy::paths::Paths;
use roxy::presets::MemoryInfo;
use roxy::voice_loop::Engine;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

pub fn live_command(device: Option<&str>, seconds: Option<f32>, output: Option<&Path>, json: bool, paths: &Paths, manifest: &Manifest) -> Result<ExitCode> {
    let config = Config::load(&paths.config_file, MemoryInfo::detect())?.config;
    // The microphone first: without one there is nothing to load models for.
    let mic = Microphone::open(device)?;
    let metrics = Arc::new(roxy::metrics::Registry::new());
    let (engine, load) = Engine::load(config, &paths.models_dir, &paths.data_dir, manifest, metrics.clone())?;
    let engine = Arc::new(engine);
    let wav = output.map(|_| Arc::new(WavSink::new(engine.sample_rate())));
    let sink: Arc<dyn AudioSink> = match &wav {
        Some(wav) => wav.clone(),
        None => Arc::new(Speaker::open_default()?),
    };
    let (commands, inbox) = mpsc::channel();
    let on_interrupt = commands.clone();
    ctrlc::set_handler(move || {
        let _ = on_interrupt.send(Command::Quit);
    })?;
    let from_stdin = commands.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            let command = match line.trim() {
                "" => Command::Activate(Trigger::Hotkey),
                "d" | "done" => Command::EndUtterance,
                "s" | "stop" => Command::Stop,
                "q" | "quit" => Command::Quit,
                _ => continue,
            };
            if from_stdin.send(command).is_err() {
                break;
            }
        }
    });
    if !json {
        eprintln!(
            "models loaded in {:.1} s. Say \"{}\", or press Enter to talk (type done to end early); type stop to interrupt, Ctrl-C to quit.",
            (load.vad_ms + load.wake_ms + load.stt_ms + load.brain_ms + load.tts_ms) / 1000.0,
            engine.wake_models().map_or("(wake word off)".to_string(), |m| m.name().replace('_', " "))
        );
    }
    let options = LiveOptions { until: seconds.map(|s| Instant::now() + Duration::from_secs_f32(s.max(0.1))), ..Default::default() };
    let result = live::run(engine.clone(), mic.events(), sink, inbox, options, &mut |event| print_event(event, json));
    drop(commands);
    engine.shutdown();
    if let Err(e) = roxy::metrics::save(&roxy::metrics::stats_file(&paths.data_dir), &metrics.snapshot()) {
        tracing::warn!("{e}");
    }
    if let (Some(wav), Some(path)) = (wav, output) {
        wav.write(path)?;
        if !json {
            eprintln!("what Roxy said is in {}", path.display());
        }
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

fn print_event(event: &LiveEvent, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(event) {
            println!("{line}");
        }
        return;
    }
    match event {
        LiveEvent::Ready { device, .. } => eprintln!("listening on {device}"),
        LiveEvent::State { state } => eprintln!("[{}]", serde_json::to_value(state).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()),
        LiveEvent::Wake { model, score, .. } => eprintln!("wake word {model} ({score:.2})"),
        LiveEvent::Turn { turn, .. } => {
            println!("you:  {}\nroxy: {}", turn.heard, turn.reply);
            let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} ms"));
            println!("      stt {}, end of speech to first audio {}", ms(turn.ms.stt), ms(turn.ms.e2e_first_audio));
        }
        LiveEvent::NothingHeard { .. } => eprintln!("(listening for the command)"),
        LiveEvent::Timer { text } => println!("roxy: {text}"),
        LiveEvent::Mic { problem, .. } => eprintln!("microphone: {problem}"),
        LiveEvent::Error { message } => eprintln!("error: {message}"),
    }
}
