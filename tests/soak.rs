//! A bounded soak on loopback: spoken turns through the whole voice loop while API clients
//! chat (some leave mid-answer, some send bad requests, some hold idle sockets) and poll
//! /health and /metrics. The process's RSS and open descriptors must stay flat, and the LLM
//! worker's too.
//!
//! `cargo test --workspace --test soak -- --nocapture` (ROXY_SOAK_SECS, default 75, for longer).

mod support;

use roxy::api::{self, Api, BrainBackend, Limits, ServerHandle};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{SpeechLab, Voice};

fn models_dir() -> PathBuf {
    let dir = std::env::var_os("ROXY_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".roxy/models"));
    assert!(dir.join("llm").is_dir() && dir.join("tts").is_dir(), "default models missing in {}: run scripts/test", dir.display());
    dir
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

fn rss_mib(pid: u32) -> f64 {
    roxy::llm::rss_bytes(pid).unwrap_or(0) as f64 / (1024.0 * 1024.0)
}

#[derive(Default)]
struct Counts {
    chats: AtomicU64,
    abandoned: AtomicU64,
    refused: AtomicU64,
    bad: AtomicU64,
    polls: AtomicU64,
    failures: AtomicU64,
}

#[test]
fn voice_turns_and_api_load_leave_memory_and_descriptors_flat() {
    let soak = Duration::from_secs(std::env::var("ROXY_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(75));
    let lab = SpeechLab::new();
    let voice = Voice::new("en-us", 165);
    let questions = ["Hey Jarvis, what is twelve times seven?", "Hey Jarvis, what time is it?", "Hey Jarvis, tell me a fact about the moon."];
    let spoken: Vec<Vec<f32>> = questions
        .iter()
        .map(|q| {
            let wav = lab.path().join("q.wav");
            let status = std::process::Command::new("sox").arg(lab.silence(0.4, 22050)).arg(lab.speak(q, voice)).arg(lab.silence(1.0, 22050)).arg(&wav).status().unwrap();
            assert!(status.success());
            roxy::audio::wav::read_mono_16k(&wav).unwrap().0
        })
        .collect();

    let data = tempfile::tempdir().unwrap();
    let mut config = roxy::config::Config::default();
    config.llm.max_tokens = 24;
    let manifest = roxy::models::Manifest::from_env().unwrap();
    let metrics = Arc::new(roxy::metrics::Registry::new());
    let (engine, _timers) = roxy::voice_loop::Engine::load(config, &models_dir(), data.path(), &manifest, metrics.clone()).expect("the default models are installed");
    let engine = Arc::new(engine);
    engine.brain().warm_up().unwrap();
    let token = api::load_or_create_token(data.path()).unwrap();
    let limits = Limits { header_timeout: Duration::from_secs(2), max_queued_chats: 4, chat_deadline: Duration::from_secs(20), ..Limits::default() };
    let server = ServerHandle::start(Arc::new(Api::new(Arc::new(BrainBackend::new(engine.shared_brain(), "roxy")), metrics, token.clone(), 1).limits(limits)), 0).unwrap();
    let base = format!("http://{}", server.addr());

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (stop, counts, base, token) = (stop.clone(), counts.clone(), base.clone(), token.clone());
            runtime.spawn(async move {
                let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().unwrap();
                let chat = |body: serde_json::Value| http.post(format!("{base}/v1/chat/completions")).header("Authorization", format!("Bearer {token}")).json(&body).send();
                let mut round = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    round += 1;
                    let question = serde_json::json!({"messages": [{"role": "user", "content": format!("Say one short sentence about the number {round}.")}], "stream": round.is_multiple_of(2)});
                    match (client, round % 4) {
                        // Poll and hold an idle socket for a while.
                        (0, _) => {
                            let idle = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
                            for path in ["/health", "/metrics", "/metrics/latency"] {
                                match http.get(format!("{base}{path}")).send().await {
                                    Ok(r) if r.status() == 200 => counts.polls.fetch_add(1, Ordering::SeqCst),
                                    _ => counts.failures.fetch_add(1, Ordering::SeqCst),
                                };
                            }
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            drop(idle);
                        }
                        // A client that goes away after the first piece of a streamed answer.
                        (1, 0) => {
                            if let Ok(mut r) = chat(serde_json::json!({"messages": [{"role": "user", "content": "Tell me a long story."}], "stream": true})).await {
                                let _ = r.chunk().await;
                                counts.abandoned.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        // Bad requests.
                        (1, 1) => {
                            let r = chat(serde_json::json!({"messages": [{"role": "system", "content": "x"}]})).await.unwrap();
                            assert_eq!(r.status(), 400);
                            counts.bad.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => match chat(question).await {
                            Ok(r) if r.status() == 200 => {
                                let _ = r.text().await;
                                counts.chats.fetch_add(1, Ordering::SeqCst);
                            }
                            // A full queue, or a voice turn took the model: both say when to retry.
                            Ok(r) if (r.status() == 429 || r.status() == 503) && r.headers().contains_key("retry-after") => {
                                counts.refused.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                            other => {
                                eprintln!("chat failed: {:?}", other.map(|r| r.status()));
                                counts.failures.fetch_add(1, Ordering::SeqCst);
                            }
                        },
                    }
                }
            })
        })
        .collect();

    let llm_pid = || engine.brain().llm().and_then(|l| l.status().pid).unwrap_or(0);
    let started = Instant::now();
    let mut samples: Vec<(f64, usize, f64, f64)> = Vec::new();
    let mut turns = 0;
    let mut heard_empty = 0;
    while started.elapsed() < soak {
        let said = &spoken[turns % spoken.len()];
        let answered = engine.respond_to_audio(said).expect("a voice turn");
        if answered.first().is_none_or(|t| t.reply.trim().is_empty()) {
            heard_empty += 1;
        }
        turns += 1;
        samples.push((started.elapsed().as_secs_f64(), open_descriptors(), rss_mib(std::process::id()), rss_mib(llm_pid())));
        // A person pauses between commands; API chats are served in the gaps (during a voice
        // turn they yield to it).
        std::thread::sleep(Duration::from_millis(1500));
    }
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        runtime.block_on(client).unwrap();
    }
    server.shutdown();
    engine.shutdown();

    // Flat: the last quarter against the second (after warm-up: caches, the worker's KV cache).
    let quarter = |q: usize| {
        let n = samples.len();
        let part = &samples[n * q / 4..(n * (q + 1) / 4).max(n * q / 4 + 1)];
        let max = |f: fn(&(f64, usize, f64, f64)) -> f64| part.iter().map(f).fold(0.0, f64::max);
        (max(|s| s.1 as f64), max(|s| s.2), max(|s| s.3))
    };
    let (fd_warm, rss_warm, llm_warm) = quarter(1);
    let (fd_end, rss_end, llm_end) = quarter(3);
    eprintln!(
        "soak {:.0} s: {turns} voice turns ({heard_empty} without a reply), API: {} chats, {} abandoned, {} refused with Retry-After, {} bad, {} polls, {} failures",
        started.elapsed().as_secs_f64(),
        counts.chats.load(Ordering::SeqCst),
        counts.abandoned.load(Ordering::SeqCst),
        counts.refused.load(Ordering::SeqCst),
        counts.bad.load(Ordering::SeqCst),
        counts.polls.load(Ordering::SeqCst),
        counts.failures.load(Ordering::SeqCst)
    );
    eprintln!("descriptors {fd_warm} -> {fd_end}; RSS {rss_warm:.0} -> {rss_end:.0} MiB; LLM worker RSS {llm_warm:.0} -> {llm_end:.0} MiB");
    assert!(turns >= 8, "only {turns} voice turns in {soak:?}");
    assert!(heard_empty * 4 <= turns, "{heard_empty} of {turns} voice turns got no reply");
    assert!(counts.chats.load(Ordering::SeqCst) >= 4, "API chats were answered alongside the voice turns");
    assert_eq!(counts.failures.load(Ordering::SeqCst), 0, "no API request failed outright");
    assert!(fd_end <= fd_warm + 4.0, "open descriptors grew from {fd_warm} to {fd_end}");
    assert!(rss_end <= rss_warm * 1.10 + 16.0, "RSS grew from {rss_warm:.0} to {rss_end:.0} MiB");
    assert!(llm_end <= llm_warm * 1.10 + 16.0, "the LLM worker's RSS grew from {llm_warm:.0} to {llm_end:.0} MiB");
}
