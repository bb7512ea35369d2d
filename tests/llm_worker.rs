//! End to end with the real `roxy-llm` worker and the SmolLM2-135M-Instruct GGUF.
//!
//! The worker must be built first, and the model present (see [`model_path`]):
//! `cargo build -p roxy-llm -j2 && cargo test --test llm_worker -j2`
//! Add `-- --nocapture` to see the measured load, prefill and decode numbers.

use roxy::llm::{ChatMessage, Completion, GenerateOptions, LlmError, LlmSettings, LlmSupervisor, Role, StopReason};
use roxy_protocol::PROTOCOL_VERSION;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// `ROXY_TEST_LLM_GGUF`, else `$ROXY_MODELS_DIR/llm/<file>`, else the repo's `.roxy/models`
/// (where `scripts/test` installs the default tier).
/// A missing model fails the test: these tests must not pass without running.
fn model_path() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("ROXY_TEST_LLM_GGUF").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(path));
    }
    if let Some(dir) = std::env::var_os("ROXY_MODELS_DIR").filter(|v| !v.is_empty()) {
        candidates.push(Path::new(&dir).join("llm").join(MODEL_FILE));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".roxy/models/llm").join(MODEL_FILE));
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| {
        panic!(
            "the test LLM ({MODEL_FILE}) is missing; looked in: {}. Install it with `scripts/test` or \
             `ROXY_MODELS_DIR=.roxy/models cargo run -- models fetch --tier default`, or set ROXY_TEST_LLM_GGUF to the file",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })
}

fn settings(model: impl Into<PathBuf>) -> LlmSettings {
    roxy::llm::find_worker(None).unwrap_or_else(|e| panic!("{e}\n(run `cargo build -p roxy-llm -j2` first)"));
    LlmSettings { n_ctx: 2048, n_threads: 2, idle_timeout: None, ..LlmSettings::new(model) }
}

fn greedy(max_tokens: u32) -> GenerateOptions {
    GenerateOptions { max_tokens, temperature: 0.0, seed: 7, ..GenerateOptions::default() }
}

fn system() -> ChatMessage {
    ChatMessage::new(
        Role::System,
        "You are Roxy, a friendly voice assistant running on the user's own computer. \
         Answer in one or two short sentences that sound natural when read aloud. \
         Never use lists, tables, code blocks or emoji.",
    )
}

fn ask(question: &str) -> Vec<ChatMessage> {
    vec![system(), ChatMessage::new(Role::User, question)]
}

fn report(label: &str, supervisor: &LlmSupervisor, completion: &Completion) {
    let s = &completion.stats;
    let decode_ms = s.total_ms.saturating_sub(s.first_token_ms).max(1);
    let status = supervisor.status();
    eprintln!(
        "[{label}] {:?} | prompt {} (cached {}) | prefill {} ms | first token {} ms | {} tokens in {} ms = {:.1} tok/s | load {} ms | worker RSS {:.0} MiB\n  {:?}",
        s.stop_reason,
        s.prompt_tokens,
        s.cached_tokens,
        s.prefill_ms,
        s.first_token_ms,
        s.completion_tokens,
        s.total_ms,
        s.completion_tokens.saturating_sub(1) as f64 * 1000.0 / decode_ms as f64,
        status.model.as_ref().map_or(0, |m| m.load_ms),
        status.rss_bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0),
        completion.text,
    );
}

#[test]
fn ping_round_trip_reports_the_protocol_version() {
    let supervisor = LlmSupervisor::new(settings(""));
    assert!(!supervisor.status().running, "the worker starts lazily");
    let info = supervisor.ping().expect("ping");
    assert_eq!(info.protocol, PROTOCOL_VERSION);
    assert!(!info.version.is_empty() && info.backend.contains("llama.cpp"), "{info:?}");
    let status = supervisor.status();
    assert!(status.running);
    assert_eq!(status.pid, Some(info.pid));
    assert!(status.rss_bytes.unwrap_or(0) > 0, "{status:?}");
    assert_eq!(supervisor.ping().expect("second ping").pid, info.pid, "same worker");
    supervisor.stop();
    assert!(!supervisor.status().running);
}

#[test]
fn stdout_carries_only_protocol_even_with_verbose_logs() {
    use roxy_protocol::{ErrorKind, Event};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};

    let model = model_path();
    let worker = roxy::llm::find_worker(None).expect("worker built");
    let mut child = Command::new(worker)
        .env("ROXY_LLM_LOG", "trace")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });
    let load = serde_json::json!({"type": "load", "id": 3, "model_path": model, "n_ctx": 512});
    let input = format!(
        "{}\nnot json\n{}\n{load}\n{}\n{}\n",
        r#"{"type":"ping","id":1}"#,
        r#"{"type":"generate","id":2,"messages":[{"role":"user","content":"hi"}],"max_tokens":4}"#,
        r#"{"type":"unload","id":4}"#,
        r#"{"type":"shutdown"}"#,
    );
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();

    let events: Vec<Event> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|line| {
            let line = line.unwrap();
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not an event ({e}): {line}"))
        })
        .collect();
    assert!(child.wait().unwrap().success());
    let logs = stderr_reader.join().unwrap();
    assert!(logs.contains("llama-cpp-2"), "llama.cpp's logs go to stderr");

    assert!(matches!(&events[0], Event::Ready(info) if info.protocol == PROTOCOL_VERSION), "{events:?}");
    assert!(matches!(&events[1], Event::Pong { id: 1, .. }), "{events:?}");
    assert!(matches!(&events[2], Event::Error { id: None, kind: ErrorKind::BadRequest, .. }), "{events:?}");
    assert!(matches!(&events[3], Event::Error { id: Some(2), kind: ErrorKind::NoModel, .. }), "{events:?}");
    assert!(matches!(&events[4], Event::Loaded(info) if info.id == 3 && info.n_ctx == 512), "{events:?}");
    assert!(matches!(&events[5], Event::Unloaded { id: 4 }), "{events:?}");
    assert!(matches!(&events[6], Event::Bye), "{events:?}");
    assert_eq!(events.len(), 7, "{events:?}");
}

#[test]
fn answers_a_question_and_greedy_decoding_is_deterministic() {
    let supervisor = LlmSupervisor::new(settings(model_path()));
    let loaded = supervisor.load().expect("load SmolLM2");
    assert!(loaded.chat_template, "SmolLM2 ships a ChatML template: {loaded:?}");
    eprintln!(
        "loaded {} in {} ms (n_ctx {}, trained {})",
        loaded.description, loaded.load_ms, loaded.n_ctx, loaded.n_ctx_train
    );

    let mut streamed = String::new();
    let first = supervisor
        .generate(&ask("What is the capital of France?"), &greedy(48), |piece| streamed.push_str(piece))
        .expect("generate");
    report("capital", &supervisor, &first);
    assert!(!first.text.trim().is_empty(), "empty answer: {first:?}");
    assert_eq!(streamed, first.text, "the streamed pieces make up the answer");
    assert!(first.stats.completion_tokens >= 1 && first.stats.completion_tokens <= 48, "{:?}", first.stats);
    assert!(matches!(first.stats.stop_reason, StopReason::Eos | StopReason::MaxTokens), "{:?}", first.stats);

    let second = supervisor.generate(&ask("What is the capital of France?"), &greedy(48), |_| {}).expect("again");
    report("capital again", &supervisor, &second);
    assert_eq!(second.text, first.text, "temperature 0 must be deterministic");
    assert_eq!(second.stats.completion_tokens, first.stats.completion_tokens);
}

#[test]
fn sampling_with_the_same_seed_repeats() {
    let supervisor = LlmSupervisor::new(settings(model_path()));
    let options = GenerateOptions { max_tokens: 24, temperature: 0.9, top_p: 0.95, seed: 1234, stop: Vec::new() };
    let question = ask("Tell me something about cats.");
    let a = supervisor.generate(&question, &options, |_| {}).expect("first");
    let b = supervisor.generate(&question, &options, |_| {}).expect("second");
    assert_eq!(a.text, b.text, "same seed, same text");
}

#[test]
fn stop_strings_end_the_generation_and_are_not_returned() {
    let supervisor = LlmSupervisor::new(settings(model_path()));
    let unstopped =
        supervisor.generate(&ask("Count from 1 to 20, separated by commas."), &greedy(64), |_| {}).expect("count");
    // Stop on the third character of whatever it says, so the test does not depend on the wording.
    let stop: String = unstopped.text.chars().skip(2).take(2).collect();
    let cut = unstopped.text.find(&stop).expect("stop string occurs");
    let options = GenerateOptions { stop: vec![stop.clone()], ..greedy(64) };
    let stopped =
        supervisor.generate(&ask("Count from 1 to 20, separated by commas."), &options, |_| {}).expect("stopped");
    assert_eq!(stopped.stats.stop_reason, StopReason::StopString, "{stopped:?}");
    assert_eq!(stopped.text, unstopped.text[..cut], "text up to, not including, {stop:?}");
}

#[test]
fn bad_model_files_are_model_errors_and_the_worker_stays_usable() {
    let good = model_path();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.gguf");
    let not_gguf = dir.path().join("flipped.gguf");
    let mut bytes = std::fs::read(&good).unwrap();
    bytes[..4].iter_mut().for_each(|b| *b = !*b);
    std::fs::write(&not_gguf, &bytes).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    bytes[..4].iter_mut().for_each(|b| *b = !*b);
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    let supervisor = LlmSupervisor::new(settings(&missing));
    for (path, expected) in [(&missing, "does not exist"), (&not_gguf, "not a GGUF"), (&truncated, "could not load")] {
        supervisor.set_settings(settings(path));
        let err = supervisor.load().expect_err("a bad model must not load");
        let message = err.to_string();
        eprintln!("{message}");
        assert!(matches!(err, LlmError::Model { .. }), "{err:?}");
        assert!(message.contains(&path.display().to_string()), "names the file: {message}");
        assert!(message.contains(expected) && message.contains("Fix:"), "{message}");
    }
    assert_eq!(supervisor.status().starts, 1, "no crash, no restart");

    supervisor.set_settings(settings(&good));
    let reply = supervisor.generate(&ask("Say hello."), &greedy(16), |_| {}).expect("the worker still works");
    assert!(!reply.text.is_empty());
    assert_eq!(supervisor.status().starts, 1);
}

#[cfg(unix)]
#[test]
fn a_killed_worker_fails_the_turn_and_the_next_turn_recovers() {
    let supervisor = LlmSupervisor::new(settings(model_path()));
    let mut killed = None;
    let result = supervisor.generate(&ask("Count from 1 to 100, separated by commas."), &greedy(300), |_| {
        if killed.is_none() {
            let pid = supervisor.status().pid.expect("running");
            let status = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
            assert!(status.success());
            killed = Some(pid);
        }
    });
    let err = result.expect_err("the turn whose worker died must fail");
    eprintln!("{err}");
    assert!(err.is_worker_failure(), "{err:?}");
    assert!(err.to_string().contains("signal 9") && err.to_string().contains("restarted"), "{err}");
    assert!(!supervisor.status().running);

    let reply = supervisor.generate(&ask("What is the capital of France?"), &greedy(16), |_| {}).expect("next turn");
    assert!(!reply.text.is_empty());
    let status = supervisor.status();
    assert_eq!(status.starts, 2);
    assert_ne!(status.pid, killed);
}

#[test]
fn cancel_stops_a_generation_within_a_few_tokens() {
    let supervisor = LlmSupervisor::new(settings(model_path()));
    assert!(!supervisor.cancel(), "nothing to cancel yet");
    let mut tokens_seen = 0;
    let completion = supervisor
        .generate(&ask("Count from 1 to 100, separated by commas."), &greedy(300), |_| {
            tokens_seen += 1;
            if tokens_seen == 1 {
                assert!(supervisor.cancel());
            }
        })
        .expect("a cancelled generation still ends normally");
    report("cancel", &supervisor, &completion);
    assert_eq!(completion.stats.stop_reason, StopReason::Cancelled);
    // The Cancel line is read while the token after it is computed; pipes add a little slack.
    assert!(completion.stats.completion_tokens <= 5, "{:?}", completion.stats);

    let next = supervisor.generate(&ask("Say hello."), &greedy(16), |_| {}).expect("usable after cancel");
    assert_ne!(next.stats.stop_reason, StopReason::Cancelled);
}

#[test]
fn later_turns_reuse_the_cached_prompt_prefix() {
    let supervisor = LlmSupervisor::new(settings(model_path()));
    let mut conversation = ask("What is the capital of France?");
    let first = supervisor.generate(&conversation, &greedy(32), |_| {}).expect("turn 1");
    report("turn 1 (cold)", &supervisor, &first);
    assert_eq!(first.stats.cached_tokens, 0, "nothing cached yet");

    // The follow-up repeats turn 1 verbatim: all of it, the answer included, is cached.
    conversation.push(ChatMessage::new(Role::Assistant, first.text.clone()));
    conversation.push(ChatMessage::new(Role::User, "And of Italy?"));
    let second = supervisor.generate(&conversation, &greedy(32), |_| {}).expect("turn 2");
    report("turn 2 (follow-up)", &supervisor, &second);
    assert!(second.stats.cached_tokens >= first.stats.prompt_tokens, "{:?} vs {:?}", second.stats, first.stats);

    // A new conversation with the same system prompt reuses at least the system prompt.
    let third = supervisor.generate(&ask("Name a colour."), &greedy(16), |_| {}).expect("turn 3");
    report("turn 3 (same system prompt)", &supervisor, &third);
    assert!(third.stats.cached_tokens > 30, "the system prompt is ~50 tokens: {:?}", third.stats);
    assert!(third.stats.cached_tokens < third.stats.prompt_tokens);
}

#[test]
fn an_idle_worker_is_stopped_and_restarted_on_demand() {
    let supervisor = LlmSupervisor::new(LlmSettings { idle_timeout: Some(Duration::from_millis(500)), ..settings("") });
    let first = supervisor.ping().expect("ping").pid;
    std::thread::sleep(Duration::from_millis(2000));
    assert!(!supervisor.status().running, "stopped after 0.5 s idle");
    let second = supervisor.ping().expect("ping after idle stop").pid;
    assert_ne!(first, second);
    assert_eq!(supervisor.status().starts, 2);
}

#[cfg(unix)]
#[test]
fn a_worker_from_another_build_or_one_that_dies_at_start_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fake = |name: &str, script: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let newer =
        fake("newer", r#"echo '{"type":"ready","protocol":999,"version":"9","backend":"fake","pid":1}'; sleep 5"#);
    let supervisor = LlmSupervisor::new(LlmSettings { worker_path: Some(newer), ..settings("") });
    let err = supervisor.ping().expect_err("protocol mismatch");
    assert!(matches!(err, LlmError::ProtocolMismatch { worker: 999, .. }), "{err:?}");
    assert!(err.to_string().contains("v999") && err.to_string().contains("Fix:"), "{err}");

    let dying = fake("dying", "echo 'something broke' >&2; exit 3");
    supervisor.set_settings(LlmSettings { worker_path: Some(dying), ..settings("") });
    let err = supervisor.ping().expect_err("crash at start");
    assert!(err.to_string().contains("exit code 3") && err.to_string().contains("something broke"), "{err}");
}

/// A GGUF with 64 KiB overwritten at the same size loaded and answered "gestational
/// gestational…" with exit code 0; now it is refused before the worker sees it.
#[test]
fn a_damaged_gguf_is_refused_with_the_fix() {
    use roxy::models::Manifest;
    let manifest = Manifest::builtin();
    let config = roxy::config::LlmConfig::default();
    let model = manifest.find(&config.model, &roxy::models::current_platform()).expect("default LLM in the manifest");
    let dir = tempfile::tempdir().unwrap();
    let installed = dir.path().join(&model.files[0].path);
    std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
    std::fs::copy(model_path(), &installed).unwrap();
    LlmSettings::from_config(&config, dir.path(), &manifest).expect("the intact copy passes");

    let mut bytes = std::fs::read(&installed).unwrap();
    let at = bytes.len() / 2;
    bytes[at..at + 65_536].iter_mut().for_each(|b| *b ^= 0xA5);
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&installed, &bytes).unwrap();
    let err = LlmSettings::from_config(&config, dir.path(), &manifest).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, roxy::llm::LlmModelError::Damaged(_)), "{msg}");
    assert!(msg.contains("is damaged (sha256") && msg.contains("Fix: run `roxy models fetch`"), "{msg}");
}

/// An API chat (background) in progress yields to a voice turn within a few tokens, and ends as
/// `Preempted`; a client that goes away stops its own generation but never a voice turn's.
#[test]
fn a_voice_turn_preempts_a_background_generation() {
    use roxy::llm::Priority;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let supervisor = Arc::new(LlmSupervisor::new(settings(model_path())));
    supervisor.load().unwrap();
    let tokens = Arc::new(AtomicU32::new(0));
    let background = std::thread::spawn({
        let (supervisor, tokens) = (supervisor.clone(), tokens.clone());
        move || {
            supervisor.generate_as(Priority::Background, &ask("Tell me a long story about a lighthouse keeper."), &greedy(400), |_| {
                tokens.fetch_add(1, Ordering::SeqCst);
            })
        }
    });
    while tokens.load(Ordering::SeqCst) < 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let asked = std::time::Instant::now();
    let mut first = None;
    let voice = supervisor.generate(&ask("What is the capital of France?"), &greedy(24), |_| {
        first.get_or_insert_with(|| asked.elapsed());
    });
    let voice = voice.unwrap();
    report("voice after preempting", &supervisor, &voice);
    let cut = background.join().unwrap();
    let background_tokens = tokens.load(Ordering::SeqCst);
    eprintln!(
        "voice first token {:?} after asking, behind a background generation (its own prefill + first token {} ms); the background answer stopped after {background_tokens} tokens",
        first.unwrap_or_default(),
        voice.stats.first_token_ms
    );
    assert!(matches!(cut, Err(LlmError::Preempted)), "{cut:?}");
    assert!(background_tokens < 60, "the background generation stopped soon after the voice turn came ({background_tokens} tokens)");
    assert!(!voice.text.is_empty() && voice.stats.stop_reason != StopReason::Cancelled);

    // cancel_background touches nothing but background generations.
    let voice = std::thread::spawn({
        let supervisor = supervisor.clone();
        move || supervisor.generate(&ask("Name three colours."), &greedy(32), |_| {})
    });
    std::thread::sleep(Duration::from_millis(150));
    assert!(!supervisor.cancel_background(), "a voice turn is not a background generation");
    let voice = voice.join().unwrap().unwrap();
    assert_ne!(voice.stats.stop_reason, StopReason::Cancelled);
}
