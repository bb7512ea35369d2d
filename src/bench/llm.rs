//! The LLM through Roxy's supervisor against llama.cpp's own speed, measured inside a worker on
//! the same GGUF with the same load parameters (the `Bench` request).

use crate::llm::{find_worker, ChatMessage, GenerateOptions, LlmError, LlmSupervisor, Role};
use roxy_protocol::{read_message, write_message, BenchRequest, BenchStats, Event, LoadRequest, Request};
use std::io::BufReader;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Figures seen from the engine's side of the supervisor.
pub struct Supervised {
    /// Prompt tokens evaluated for the cold turn (none cached).
    pub prefill_tokens: u32,
    pub prefill_per_s: f64,
    pub decode_per_s: f64,
    pub completion_tokens: u32,
    pub ttft_cold_ms: f64,
    pub ttft_cached_ms: f64,
    pub cached_tokens: u32,
}

/// A long, fixed preamble, so the cached prefix is most of the prompt (as the system prompt and
/// recalled memory are in a real conversation). Nothing before it starts the same way (each
/// round names itself first), so the worker has none of it cached; being fixed per round, it
/// gets the same greedy answer (and as many decoded tokens) every run.
fn preamble(round: usize) -> String {
    let facts = [
        "The user lives in Lisbon and prefers metric units.",
        "The user's sister Ana has a birthday on the ninth of March.",
        "The user works from home on Mondays and Fridays.",
        "The user is learning to play the cello and practises in the evening.",
        "The user's favourite food is grilled sardines with bread.",
        "The user has a cat called Pixel who is seven years old.",
    ];
    let mut text = format!("Benchmark round {round}. You are Roxy, a concise voice assistant. Answer in plain sentences. Known facts:\n");
    for round in 0..3 {
        for fact in facts {
            text.push_str(&format!("- ({round}) {fact}\n"));
        }
    }
    text
}

/// One turn through the supervisor, timed on this side: (time to first token, completion).
fn turn(llm: &LlmSupervisor, messages: &[ChatMessage], max_tokens: u32) -> Result<(f64, f64, crate::llm::Completion), LlmError> {
    let options = GenerateOptions { max_tokens, temperature: 0.0, top_p: 1.0, seed: 0, stop: Vec::new() };
    let started = Instant::now();
    let mut first: Option<f64> = None;
    let completion = llm.generate(messages, &options, |_| {
        first.get_or_insert_with(|| started.elapsed().as_secs_f64() * 1000.0);
    })?;
    let total = started.elapsed().as_secs_f64() * 1000.0;
    let first = first.unwrap_or(total);
    Ok((first, total, completion))
}

/// A cold turn (a preamble the worker has never seen), then the same preamble with another
/// question: the worker keeps the shared prefix's KV cache.
pub fn supervised(llm: &LlmSupervisor, max_tokens: u32, round: usize) -> Result<Supervised, LlmError> {
    llm.load()?;
    let system = ChatMessage::new(Role::System, preamble(round));
    let cold = [system.clone(), ChatMessage::new(Role::User, "Tell me a long story about my cat Pixel.")];
    let (ttft_cold_ms, total_ms, completion) = turn(llm, &cold, max_tokens)?;
    let stats = &completion.stats;
    let prefill_tokens = stats.prompt_tokens - stats.cached_tokens;
    // Tokens after the first arrive at the decode rate.
    let decode_s = ((total_ms - ttft_cold_ms) / 1000.0).max(1e-6);
    let decode_per_s = stats.completion_tokens.saturating_sub(1).max(1) as f64 / decode_s;
    let cached = [system, ChatMessage::new(Role::User, "What is my cat called?")];
    let (ttft_cached_ms, _, again) = turn(llm, &cached, 8)?;
    Ok(Supervised {
        prefill_tokens,
        prefill_per_s: prefill_tokens as f64 / (ttft_cold_ms / 1000.0).max(1e-6),
        decode_per_s,
        completion_tokens: stats.completion_tokens,
        ttft_cold_ms,
        ttft_cached_ms,
        cached_tokens: again.stats.cached_tokens,
    })
}

/// llama.cpp's own figures from a worker of our own (the supervisor has no Bench call), with
/// the supervisor's load parameters, so the two runs differ only in the path around llama.cpp.
pub fn raw(llm: &LlmSupervisor, prompt_tokens: u32, decode_tokens: u32) -> anyhow::Result<BenchStats> {
    let settings = llm.settings();
    let path = find_worker(settings.worker_path.as_deref())?;
    let protocol = |message: String| anyhow::anyhow!("LLM baseline worker {}: {message}. Fix: rebuild both with `cargo build -p roxy -p roxy-llm`", path.display());
    let mut child = Command::new(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| LlmError::Spawn { path: path.clone(), source })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let result = (|| {
        let load = LoadRequest { id: 1, model_path: settings.model_path.clone(), n_ctx: settings.n_ctx, n_threads: settings.n_threads, n_gpu_layers: settings.n_gpu_layers };
        let send = |stdin: &mut std::process::ChildStdin, request: &Request| write_message(stdin, request).map_err(|e| protocol(format!("writing a request: {e}")));
        send(&mut stdin, &Request::Load(load))?;
        send(&mut stdin, &Request::Bench(BenchRequest { id: 2, prompt_tokens, decode_tokens }))?;
        loop {
            let event: Option<Event> = read_message(&mut stdout).map_err(|e| protocol(e.to_string()))?;
            match event {
                Some(Event::BenchDone(stats)) => return Ok(stats),
                Some(Event::Error { kind, message, .. }) => return Err(LlmError::Worker { kind, message }.into()),
                Some(_) => {}
                None => return Err(protocol("exited before answering Bench (a worker older than this engine?)".into())),
            }
        }
    })();
    let _ = write_message(&mut stdin, &Request::Shutdown);
    drop(stdin);
    let _ = child.wait();
    result
}
