//! The brain with real models: MiniLM intent matching over every skill, SmolLM2 through the
//! worker, and the cloud route against a local OpenAI-compatible server that records what it
//! was sent (personal data must never reach it).

use roxy::brain::skills::{Launcher, OpenTarget};
use roxy::brain::{Brain, BrainDeps, Route};
use roxy::config::Config;
use roxy::memory::{Memory, MiniLm};
use roxy::metrics::Registry;
use roxy::models::Manifest;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

fn models_dir() -> PathBuf {
    std::env::var_os("ROXY_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".roxy/models"))
}

#[derive(Default)]
struct Recorder(Mutex<Vec<OpenTarget>>);

impl Launcher for Recorder {
    fn launch(&self, target: &OpenTarget) -> std::io::Result<()> {
        self.0.lock().unwrap().push(target.clone());
        Ok(())
    }
}

struct Fixture {
    brain: Brain,
    launched: Arc<Recorder>,
    _dir: tempfile::TempDir,
}

fn brain_with(config: Config) -> Fixture {
    let models = models_dir();
    let dir = tempfile::tempdir().unwrap();
    let embedder: Arc<dyn roxy::memory::Embedder> = Arc::new(MiniLm::load(&models).expect("MiniLM is installed: roxy models fetch --tier default"));
    let memory = Arc::new(Memory::open_with(&dir.path().join("memory.sqlite3"), Some(embedder.clone()), &config.memory).expect("a fresh store"));
    for fact in ["my car is parked on level 3", "my sister Anna's birthday is June 3rd", "the wifi password is hunter2"] {
        memory.remember(fact).unwrap();
    }
    let launched = Arc::new(Recorder::default());
    let deps = BrainDeps { embedder, memory: Some(memory), metrics: Arc::new(Registry::new()), launcher: launched.clone() };
    let manifest = Manifest::from_env().expect("the bundled manifest");
    let (brain, _timers) = Brain::new(&config, &models, &manifest, deps).expect("the brain loads");
    Fixture { brain, launched, _dir: dir }
}

fn greedy_config() -> Config {
    let mut config = Config::default();
    config.llm.temperature = 0.0;
    config.llm.max_tokens = 24;
    config
}

/// (utterance, the skill that must answer or "llm"). Phrasings differ from the templates.
const LABELLED: &[(&str, &str)] = &[
    ("what time is it", "clock"),
    ("Could you tell me the time please?", "clock"),
    ("what's today's date", "clock"),
    ("which day of the week is it today", "clock"),
    ("set a timer for 10 minutes", "timer"),
    ("start a timer for 45 seconds", "timer"),
    ("Set a 3 minute timer.", "timer"),
    ("remind me to take the bread out in 20 minutes", "timer"),
    ("remind me in an hour to call the bank", "timer"),
    ("cancel my timer", "timer"),
    ("how much time is left on the timer", "timer"),
    ("what's 12 times 7", "calculator"),
    ("what is 144 divided by 12", "calculator"),
    ("how much is 15 percent of 80", "calculator"),
    ("what's the square root of 81", "calculator"),
    ("what is 2 plus 2", "calculator"),
    ("calculate 19 minus 4", "calculator"),
    ("how much battery is left", "system_info"),
    ("what's my battery at", "system_info"),
    ("how much memory am I using", "system_info"),
    ("how much RAM is free", "system_info"),
    ("open Safari", "open"),
    ("launch notes", "open"),
    ("open youtube", "open"),
    ("go to wikipedia", "open"),
    ("how fast are you", "stats"),
    ("what's your average response time", "stats"),
    ("stop", "stop"),
    ("stop talking", "stop"),
    ("never mind", "stop"),
    ("be quiet", "stop"),
    ("remember that my locker code is 4512", "remember"),
    ("remember my dentist appointment is on Friday at 3", "remember"),
    ("please remember that I parked on the third floor", "remember"),
    ("remember that the keys are in the drawer", "remember"),
    ("where did I park my car", "recall"),
    ("when is Anna's birthday", "recall"),
    ("what's the wifi password", "recall"),
    ("what do you know about me", "recall"),
    ("forget the wifi password", "forget"),
    ("forget that my car is on level 3", "forget"),
    // Out of domain: the LLM answers these.
    ("what is the capital of France", "llm"),
    ("tell me a joke", "llm"),
    ("why is the sky blue", "llm"),
    ("who wrote Romeo and Juliet", "llm"),
    ("what should I cook for dinner tonight", "llm"),
    ("how do I make pancakes", "llm"),
    ("what's the meaning of life", "llm"),
    ("can you recommend a good book", "llm"),
    ("how far away is the moon", "llm"),
    ("what time does the sun set in Paris", "llm"),
    ("what is machine learning", "llm"),
    ("translate hello into Spanish", "llm"),
    ("how many legs does a spider have", "llm"),
    ("what's a good name for a dog", "llm"),
    ("write a haiku about autumn", "llm"),
];

#[test]
fn routing_accuracy_on_a_labelled_set() {
    let f = brain_with(Config::default());
    let mut wrong = Vec::new();
    let mut skill_scores = Vec::new();
    for (utterance, want) in LABELLED {
        let decision = f.brain.decide(utterance).unwrap();
        let got = decision.skill().unwrap_or("llm");
        if let roxy::brain::Decision::Skill { confidence, .. } = &decision {
            skill_scores.push(*confidence);
        }
        if got != *want {
            let names = f.brain.skill_names();
            let top: Vec<String> = f.brain.intents().scores(utterance).unwrap().iter().take(3).map(|s| format!("{} {:.2}", names[s.skill], s.similarity)).collect();
            wrong.push(format!("{utterance:?}: wanted {want}, got {got} (scores: {})", top.join(", ")));
        }
    }
    let accuracy = 1.0 - wrong.len() as f64 / LABELLED.len() as f64;
    println!("routing accuracy {:.1}% over {} utterances; confusions:", accuracy * 100.0, LABELLED.len());
    for w in &wrong {
        println!("  {w}");
    }
    // Measured 100 % on this set at threshold 0.7; one or two misses are tolerated so that a
    // model or tokenizer update shows up in the printed confusions before it fails the build.
    assert!(accuracy >= 0.95, "routing accuracy {accuracy:.3}: {wrong:#?}");
    assert!(f.launched.0.lock().unwrap().is_empty(), "deciding never runs a skill");
}

#[test]
fn skills_answer_through_the_router() {
    let f = brain_with(Config::default());
    let mut heard = String::new();
    let reply = f.brain.answer("What's 12 times 7?", &mut |t| heard.push_str(t)).unwrap();
    assert_eq!((reply.route, reply.skill, reply.text.as_str()), (Route::Skill, Some("calculator"), "12 times 7 is 84."));
    assert_eq!(heard, reply.text, "the skill's answer is streamed like the LLM's");
    assert!(reply.confidence >= 0.7 && reply.ms.skill.is_some());

    let reply = f.brain.answer("remember that my locker code is 4512", &mut |_| {}).unwrap();
    assert_eq!(reply.skill, Some("remember"), "{reply:?}");
    let reply = f.brain.answer("what's my locker code?", &mut |_| {}).unwrap();
    assert_eq!(reply.skill, Some("recall"), "{reply:?}");
    assert_eq!(reply.text, "You told me your locker code is 4512.");

    let reply = f.brain.answer("open Safari", &mut |_| {}).unwrap();
    assert_eq!(reply.text, "Opening Safari.");
    assert_eq!(*f.launched.0.lock().unwrap(), vec![OpenTarget::App("Safari".into())]);

    let reply = f.brain.answer("stop", &mut |_| {}).unwrap();
    assert_eq!((reply.text.as_str(), reply.action), ("", Some(roxy::brain::skills::Action::Stop)));
}

#[test]
fn the_local_llm_answers_what_no_skill_covers() {
    let f = brain_with(greedy_config());
    let mut streamed = String::new();
    let reply = f.brain.answer("What is the capital of France?", &mut |t| streamed.push_str(t)).unwrap();
    println!("{}", serde_json::to_string(&reply).unwrap());
    assert_eq!(reply.route, Route::Local);
    assert!(!reply.text.is_empty() && streamed.trim() == reply.text);
    assert!(reply.tokens.is_some_and(|n| n <= 24), "max_tokens is respected: {:?}", reply.tokens);
    assert!(reply.ms.llm_first_token.is_some());
    // A fresh conversation, so the second answer sees the same prompt as the first.
    f.brain.memory().unwrap().new_conversation().unwrap();
    let again = f.brain.answer("What is the capital of France?", &mut |_| {}).unwrap();
    assert_eq!(again.text, reply.text, "temperature 0 is deterministic");
    f.brain.shutdown();
}

/// The statistics pane's cache figures come from the real caches a turn uses.
#[test]
fn cache_rates_count_real_lookups() {
    let f = brain_with(greedy_config());
    for _ in 0..2 {
        f.brain.answer("What time is it?", &mut |_| {}).unwrap();
    }
    let rates = f.brain.cache_rates();
    println!("{rates:#?}");
    let intent = rates.iter().find(|r| r.name == "intent question vectors").unwrap();
    assert!(intent.lookups >= 2 && intent.hits >= 1, "the repeated question came from the intent cache: {intent:?}");
    assert!(rates.iter().any(|r| r.name == "recall question vectors"));
    assert!(rates.iter().any(|r| r.name == "response cache: tts audio"), "every response-cache kind is listed: {rates:?}");
    f.brain.shutdown();
}

/// After a turn, priming puts the conversation into the LLM's KV cache, so the next question
/// prefills only itself (and the recalled facts), not the whole conversation again.
#[test]
fn priming_leaves_only_the_new_question_to_prefill() {
    let f = brain_with(greedy_config());
    let first = f.brain.answer("Tell me something about the moon.", &mut |_| {}).unwrap();
    assert_eq!(first.route, Route::Local);
    let _ = f.brain.answer("What time is it?", &mut |_| {}).unwrap();
    let question = "Why do cats purr?";
    f.brain.prime();
    let primed = f.brain.answer(question, &mut |_| {}).unwrap();
    let (prompt, cached) = (primed.prompt_tokens.unwrap(), primed.cached_tokens.unwrap());
    println!("primed: {cached} of {prompt} prompt tokens cached");
    // The question with its chat markup is about 15 tokens here; no fact matches it.
    assert!(prompt - cached <= 20, "only the new question was prefilled: {cached} of {prompt} cached");

    // Without priming the skill turn in between is prefilled with the question.
    let _ = f.brain.answer("What day is it today?", &mut |_| {}).unwrap();
    let unprimed = f.brain.answer("Why is the sea salty?", &mut |_| {}).unwrap();
    let missed = unprimed.prompt_tokens.unwrap() - unprimed.cached_tokens.unwrap();
    println!("unprimed: {missed} prompt tokens prefilled");
    assert!(missed > prompt - cached, "priming saved prefill: {missed} vs {}", prompt - cached);
    f.brain.shutdown();
}

/// What the live loop needs to begin an answer before the user is known to have finished: the
/// route without running anything (a skill may act, so only the local LLM's questions qualify),
/// and an answer recorded only if it is kept.
#[test]
fn an_answer_begun_early_is_recorded_only_if_kept() {
    let f = brain_with(greedy_config());
    let memory = f.brain.memory().unwrap().clone();
    let facts_before = memory.store().facts().list().unwrap().len();
    assert!(!f.brain.local_llm_would_answer("remember that my locker code is 4512"));
    assert!(!f.brain.local_llm_would_answer("set a timer for 5 minutes"));
    assert_eq!(memory.store().facts().list().unwrap().len(), facts_before, "deciding stored no fact");
    assert!(f.brain.local_llm_would_answer("Why do cats purr?"));

    let dropped = f.brain.answer_if("Why do cats", &mut |_| {}, &|| false).unwrap();
    assert!(!dropped.text.is_empty(), "the LLM answered the half question");
    assert_eq!(memory.session().turns().len(), 0, "an answer not kept is not recorded");
    let kept = f.brain.answer_if("Why do cats purr?", &mut |_| {}, &|| true).unwrap();
    let turns: Vec<String> = memory.session().turns().map(|t| t.record.user_text.clone()).collect();
    assert_eq!(turns, ["Why do cats purr?"], "the kept answer is: {}", kept.text);
    f.brain.shutdown();
}

/// A minimal OpenAI-compatible server: records each request body and streams back an answer
/// that repeats every placeholder it was sent (as a real model would when it uses them).
fn fake_cloud() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let placeholder = regex::Regex::new(r"\[[A-Z]+_\d+\]").unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                if let Some(v) = line.to_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                line.clear();
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let body = String::from_utf8(body).unwrap();
            let placeholders: Vec<String> = placeholder.find_iter(&body).map(|m| m.as_str().to_string()).collect();
            record.lock().unwrap().push(body);
            let answer = format!("Done: I wrote to {} about it.", placeholders.join(" and "));
            let mut out = stream;
            let mut sse = String::new();
            // Split mid-placeholder on purpose: the restorer must cope.
            let (a, b) = answer.split_at(answer.len() / 2);
            for piece in [a, b] {
                sse.push_str(&format!("data: {}\n\n", serde_json::json!({"choices": [{"delta": {"content": piece}}]})));
            }
            sse.push_str("data: [DONE]\n\n");
            let _ = write!(out, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{sse}", sse.len());
        }
    });
    (url, seen)
}

#[test]
fn the_cloud_sees_placeholders_never_personal_data() {
    let (url, seen) = fake_cloud();
    let mut config = greedy_config();
    config.cloud.enabled = true;
    config.cloud.base_url = url;
    config.cloud.model = "test-model".into();
    config.cloud.api_key_env = "ROXY_TEST_CLOUD_KEY".into();
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("ROXY_TEST_CLOUD_KEY", "sk-test-key-not-a-secret-123456") };
    let f = brain_with(config);
    let question = "ask the cloud to draft an email to anna.k@example.com telling Anna my card 4111 1111 1111 1111 \
                    was charged twice, call me on +1 415 555 0132, I live at 221 Baker Street";
    let mut heard = String::new();
    let reply = f.brain.answer(question, &mut |t| heard.push_str(t)).unwrap();
    println!("{}", serde_json::to_string(&reply).unwrap());
    assert_eq!(reply.route, Route::Cloud);
    let bodies = seen.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    for secret in ["anna.k@example.com", "Anna", "4111", "415 555", "221 Baker", "sk-test-key"] {
        assert!(!bodies[0].contains(secret), "{secret} reached the cloud: {}", bodies[0]);
    }
    assert!(bodies[0].contains("[EMAIL_1]") && bodies[0].contains("[CARD_1]"), "{}", bodies[0]);
    assert!(heard.contains("anna.k@example.com") && heard.contains("4111 1111 1111 1111"), "placeholders restored: {heard}");
    assert!(!heard.contains('['), "{heard}");
    assert!(reply.redacted.len() >= 4, "{:?}", reply.redacted);

    // Short local questions stay local even with the cloud on.
    let reply = f.brain.answer("what's 2 plus 2", &mut |_| {}).unwrap();
    assert_eq!(reply.route, Route::Skill);
    assert_eq!(seen.lock().unwrap().len(), 1);
    f.brain.shutdown();
}

#[test]
fn an_enabled_cloud_without_a_key_is_named_and_local_still_answers() {
    let mut config = greedy_config();
    config.cloud.enabled = true;
    config.cloud.base_url = "http://127.0.0.1:9/v1".into();
    config.cloud.model = "m".into();
    config.cloud.api_key_env = "ROXY_TEST_NO_SUCH_KEY".into();
    let f = brain_with(config);
    let reply = f.brain.answer("ask the cloud what 2 plus 2 is", &mut |_| {}).unwrap();
    // The cloud is not ready, so the router never chose it; the skill answered.
    assert_ne!(reply.route, Route::Cloud);
}

/// `cargo test --release --test brain intent_latency -- --ignored --nocapture`
#[test]
#[ignore = "benchmark: prints figures"]
fn intent_latency() {
    let f = brain_with(Config::default());
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for (utterance, _) in LABELLED {
        let t = Instant::now();
        f.brain.decide(utterance).unwrap();
        cold.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    for _ in 0..10 {
        for (utterance, _) in LABELLED {
            let t = Instant::now();
            f.brain.decide(utterance).unwrap();
            warm.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let pct = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
    };
    println!("templates: {}", f.brain.intents().templates());
    println!("intent (embed + match + plan), new utterance: p50 {:.2} ms  p99 {:.2} ms", pct(&mut cold, 0.5), pct(&mut cold, 0.99));
    println!("intent, repeated utterance (LRU hit):         p50 {:.3} ms  p99 {:.3} ms", pct(&mut warm, 0.5), pct(&mut warm, 0.99));
    println!("query cache: {:?}", f.brain.intents().cache_counts());
}

#[test]
fn asking_the_cloud_by_name_goes_to_the_cloud_even_where_a_skill_matches() {
    let (url, seen) = fake_cloud();
    let mut config = greedy_config();
    config.cloud.enabled = true;
    config.cloud.base_url = url;
    config.cloud.model = "test-model".into();
    config.cloud.api_key_env = "ROXY_TEST_CLOUD_KEY_BY_NAME".into();
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("ROXY_TEST_CLOUD_KEY_BY_NAME", "sk-test-key-not-a-secret-654321") };
    let f = brain_with(config);
    // "alarm" and "set" pull toward the timer skill; the user asked for the cloud.
    for question in ["ask the cloud: what is the alarm code?", "search online for how to set an alarm on a stove"] {
        let reply = f.brain.answer(question, &mut |_| {}).unwrap();
        assert_eq!(reply.route, Route::Cloud, "{question}: {reply:?}");
    }
    assert_eq!(seen.lock().unwrap().len(), 2);
    f.brain.shutdown();
}

/// A cloud request carries only what its question needs: no turns that skills answered, and
/// no stored fact unrelated to it.
#[test]
fn the_cloud_is_not_sent_skill_turns_or_unrelated_facts() {
    let (url, seen) = fake_cloud();
    let mut config = greedy_config();
    config.cloud.enabled = true;
    config.cloud.base_url = url;
    config.cloud.model = "test-model".into();
    config.cloud.api_key_env = "ROXY_TEST_CLOUD_KEY_2".into();
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("ROXY_TEST_CLOUD_KEY_2", "sk-test-key-not-a-secret-654321") };
    let f = brain_with(config);
    for said in ["what's 17 plus 25", "remember that the spare keys are in the blue drawer", "remember that my locker code is 9031"] {
        let reply = f.brain.answer(said, &mut |_| {}).unwrap();
        assert_eq!(reply.route, Route::Skill, "{said}");
    }
    let reply = f.brain.answer("ask the cloud: write two lines about the sea", &mut |_| {}).unwrap();
    assert_eq!(reply.route, Route::Cloud);
    let bodies = seen.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    let body = &bodies[0];
    println!("{body}");
    for absent in ["17 plus 25", "42", "spare keys", "blue drawer", "9031", "locker", "remember"] {
        assert!(!body.contains(absent), "{absent:?} reached the cloud: {body}");
    }
    assert!(body.contains("write two lines about the sea"), "{body}");
    f.brain.shutdown();
}
