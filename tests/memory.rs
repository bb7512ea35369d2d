//! The memory store end to end: real SQLite files in temp dirs, the real `roxy` binary.
//! `cargo test -j2 --test memory`. Latency is measured by `roxy memory bench`, not here.

use roxy::config::Config;
use roxy::memory::{MemoryError, SearchFilter, Session, Store, TurnRecord, DB_FILE_NAME};
use roxy::presets::MemoryInfo;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn roxy(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roxy"));
    cmd.args(args)
        .env("ROXY_DATA_DIR", data_dir)
        .env("ROXY_CONFIG", data_dir.join("config.toml"))
        .env("ROXY_MODELS_DIR", data_dir.join("models"))
        .env_remove("ROXY_PRESET");
    cmd
}

fn run_ok(data_dir: &Path, args: &[&str]) -> Output {
    let out = roxy(data_dir, args).output().expect("roxy runs");
    assert!(out.status.success(), "roxy {args:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn facts_told_to_one_process_are_recalled_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(dir.path(), &["memory", "remember", "My sister's birthday is June 3rd"]);
    run_ok(dir.path(), &["memory", "remember", "The spare key is under the blue pot"]);
    let again = json(&run_ok(dir.path(), &["memory", "remember", "my sister's birthday is June 3rd.", "--json"]));
    assert_eq!(again["merged"], true, "{again}");

    let found = json(&run_ok(dir.path(), &["memory", "recall", "when is my sister's birthday?", "--json"]));
    let texts: Vec<&str> = found.as_array().unwrap().iter().map(|r| r["fact"]["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["my sister's birthday is June 3rd."]);

    let facts = json(&run_ok(dir.path(), &["memory", "facts", "--json"]));
    assert_eq!(facts.as_array().unwrap().len(), 2);

    let gone = json(&run_ok(dir.path(), &["memory", "forget", "spare key", "--json"]));
    assert_eq!(gone[0]["text"], "The spare key is under the blue pot");
    let store = Store::open_in(dir.path()).unwrap();
    assert_eq!(store.facts().count().unwrap(), 1);
}

#[test]
fn history_written_by_the_binary_is_searchable_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(dir.path(), &["memory", "write-burst", "--count", "30"]);
    let hits = json(&run_ok(dir.path(), &["memory", "search", "burst question 17", "--json"]));
    let hits = hits.as_array().unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["user_text"], "burst question 17");
    // Nothing older than a day exists, so the date filter keeps everything that matches.
    let recent = json(&run_ok(dir.path(), &["memory", "search", "burst", "--days", "1", "--limit", "100", "--json"]));
    assert_eq!(recent.as_array().unwrap().len(), 30);

    let file = dir.path().join("export.json");
    run_ok(dir.path(), &["memory", "export", file.to_str().unwrap()]);
    let export: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(export["turns"].as_array().unwrap().len(), 30);
    assert_eq!(export["turns"][29]["user_text"], "burst question 29");

    let refused = roxy(dir.path(), &["memory", "clear"]).output().unwrap();
    assert!(!refused.status.success(), "clear without --yes must not delete");
    assert_eq!(Store::open_in(dir.path()).unwrap().history().count().unwrap(), 30);
    run_ok(dir.path(), &["memory", "clear", "--yes"]);
    assert_eq!(Store::open_in(dir.path()).unwrap().history().count().unwrap(), 0);
}

#[test]
fn the_session_window_follows_the_preset() {
    for (preset, expected) in [("8gb", 20), ("32gb", 100)] {
        let dir = tempfile::tempdir().unwrap();
        let (config, _) = Config::from_toml("", &dir.path().join("c.toml"), MemoryInfo::detect(), Some(preset)).unwrap();
        assert_eq!(config.memory.session_turns, expected);
        let store = Arc::new(Store::open_in(dir.path()).unwrap());
        let mut session = Session::start(store.clone(), config.memory.session_turns).unwrap();
        for i in 0..expected + 15 {
            session.record(TurnRecord { user_text: format!("turn {i}"), reply_text: "ok".into(), ..Default::default() }).unwrap();
        }
        let window: Vec<String> = session.turns().map(|t| t.record.user_text.clone()).collect();
        assert_eq!(window.len(), expected as usize, "{preset}");
        assert_eq!(window[0], "turn 15");
        assert_eq!(store.history().count().unwrap(), expected as u64 + 15, "the history keeps every turn");
    }
}

/// Kill -9 in the middle of a burst of writes, many times: every acknowledged turn is there
/// and the file passes `PRAGMA integrity_check`.
#[test]
fn killing_the_process_mid_write_loses_no_acknowledged_turn() {
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged = BTreeSet::new();
    for round in 0..20u64 {
        let mut child = roxy(dir.path(), &["memory", "write-burst"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let acks = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let acks = acks.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(id) = line.strip_prefix("ack ") {
                        acks.lock().unwrap().push(id.parse::<i64>().unwrap());
                    }
                }
            })
        };
        // Wait for the burst to be under way, then kill at a different point each round.
        let started = Instant::now();
        while acks.lock().unwrap().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(30), "the writer never acknowledged a turn");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(round * 7 % 40));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        reader.join().unwrap();
        acknowledged.extend(acks.lock().unwrap().iter().copied());

        let store = Store::open_in(dir.path()).unwrap();
        assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new(), "round {round}");
        let stored: BTreeSet<i64> = store.history().all().unwrap().iter().map(|t| t.id).collect();
        let lost: Vec<_> = acknowledged.difference(&stored).collect();
        assert!(lost.is_empty(), "round {round}: acknowledged turns missing after kill -9: {lost:?}");
    }
    eprintln!("{} turns acknowledged across 20 kills, none lost", acknowledged.len());
    let store = Store::open_in(dir.path()).unwrap();
    assert!(acknowledged.len() > 20, "the test must actually have written ({} turns)", acknowledged.len());
    // The full-text index stayed in step with the table through every kill.
    let last = *acknowledged.iter().next_back().unwrap();
    let turn = store.history().all().unwrap().into_iter().find(|t| t.id == last).unwrap();
    let hits = store.history().search(&turn.record.user_text, &SearchFilter::default()).unwrap();
    assert!(hits.iter().any(|h| h.turn.id == last));
}

#[test]
fn a_corrupt_file_is_a_clear_error_and_is_kept_aside_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE_NAME);
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();

    let err = Store::open(&path).err().expect("garbage must not open");
    assert!(matches!(err, MemoryError::Corrupt { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()) && message.contains("Fix:"), "{message}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "a failed open leaves the file alone");

    // The CLI recovers: the old file kept under a timestamped name, a fresh store in its place.
    let out = roxy(dir.path(), &["memory", "remember", "the cat is called Miso"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unreadable") && stderr.contains(".corrupt-"), "{stderr}");
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{DB_FILE_NAME}.corrupt-")))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), garbage);
    assert_eq!(Store::open(&path).unwrap().facts().count().unwrap(), 1);
}

#[test]
fn another_programs_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE_NAME);
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("CREATE TABLE photos(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO photos(name) VALUES ('a.jpg');").unwrap();
    drop(other);
    let err = Store::open(&path).err().expect("a foreign database must not be used");
    assert!(matches!(err, MemoryError::Corrupt { .. }) && err.to_string().contains("another program"), "{err}");
    let photos: i64 = rusqlite::Connection::open(&path).unwrap().query_row("SELECT count(*) FROM photos", [], |r| r.get(0)).unwrap();
    assert_eq!(photos, 1, "the other program's data is untouched");
}

#[test]
fn cache_stats_and_purge_from_the_cli() {
    use roxy::config::MemoryConfig;
    use roxy::memory::{CacheKind, CacheRequest, ResponseCache};
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Arc::new(Store::open_in(dir.path()).unwrap());
        // Entries written "a year ago" by the clock are expired for the CLI's real clock.
        let year_ms = 365 * 24 * 3600 * 1000;
        let cache = ResponseCache::new(store.clone(), &MemoryConfig::default()).with_clock(move || roxy::memory::now_ms() - year_ms);
        cache.put(&CacheRequest::new(CacheKind::Skill, "weather", "Paris"), b"sunny").unwrap();
        let fresh = ResponseCache::new(store, &MemoryConfig::default());
        let tts = CacheRequest::new(CacheKind::TtsAudio, "piper-joe", "One moment.");
        fresh.put(&tts, b"RIFF....").unwrap();
        fresh.get(&tts).unwrap().expect("hit");
        fresh.get(&CacheRequest::new(CacheKind::TtsAudio, "piper-joe", "Goodbye.")).unwrap();
    }
    let stats = json(&run_ok(dir.path(), &["cache", "stats", "--json"]));
    let tts = stats["kinds"].as_array().unwrap().iter().find(|k| k["kind"] == "tts_audio").unwrap();
    assert_eq!((tts["hits"].as_u64(), tts["misses"].as_u64(), tts["hit_rate"].as_f64()), (Some(1), Some(1), Some(0.5)));
    let purged = json(&run_ok(dir.path(), &["cache", "purge", "--json"]));
    assert_eq!(purged["purged"], 1, "only the year-old skill result");
    let stats = json(&run_ok(dir.path(), &["cache", "stats", "--json"]));
    let entries: u64 = stats["kinds"].as_array().unwrap().iter().map(|k| k["entries"].as_u64().unwrap()).sum();
    assert_eq!(entries, 1);
}

/// The installed MiniLM model: `$ROXY_MODELS_DIR`, else the repo's `.roxy/models` (where the
/// set-up script installs the default tier). Missing everywhere fails the test with the fix.
fn models_dir() -> std::path::PathBuf {
    let candidates: Vec<std::path::PathBuf> = std::env::var_os("ROXY_MODELS_DIR")
        .filter(|v| !v.is_empty())
        .map(Into::into)
        .into_iter()
        .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join(".roxy/models")])
        .collect();
    candidates.iter().find(|d| d.join("embed/all-MiniLM-L6-v2-int8.onnx").is_file()).cloned().unwrap_or_else(|| {
        panic!("the embedding model is missing; looked in {candidates:?}. Install it with `ROXY_DATA_DIR=.roxy cargo run -- models fetch --tier default`")
    })
}

#[test]
fn minilm_finds_facts_by_meaning() {
    use roxy::memory::{Embedder, MiniLm};
    let embedder = MiniLm::load(&models_dir()).unwrap();
    let v = embedder.embed("hello there").unwrap();
    assert_eq!(v.len(), 384);
    assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4, "unit length");

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    let facts = store.facts_by_meaning(&embedder);
    let wifi = facts.remember("The wireless network password is hunter2").unwrap().fact;
    let birthday = facts.remember("Anna, my sister, was born on June 3rd").unwrap().fact;
    facts.remember("My dentist is Dr. Lee on Main Street").unwrap();
    facts.remember("I park the car on level 3 of the garage").unwrap();

    for (question, expected) in [("what's the wifi code?", wifi.id), ("when is my sister's birthday?", birthday.id)] {
        let found = facts.recall(question, 3).unwrap();
        eprintln!("{question:?} -> {:?}", found.iter().map(|(f, s)| (f.text.as_str(), (s * 100.0).round() / 100.0)).collect::<Vec<_>>());
        assert_eq!(found.first().map(|(f, _)| f.id), Some(expected), "{question:?}: {found:?}");
    }
    let only: Vec<i64> = facts.recall("wifi code", 3).unwrap().iter().map(|(f, _)| f.id).collect();
    assert_eq!(only, [wifi.id], "unrelated facts fall below the similarity floor");
}

#[test]
fn minilm_tokens_match_the_reference_tokenizer() {
    // Ids from Hugging Face `tokenizers` 0.23.3 with this tokenizer.json (no padding).
    let golden: [(&str, &[i64]); 7] = [
        ("My sister's birthday is June 3rd.", &[101, 2026, 2905, 1005, 1055, 5798, 2003, 2238, 3822, 1012, 102]),
        ("What's the Wi-Fi password? (it's hunter2!)", &[101, 2054, 1005, 1055, 1996, 15536, 1011, 10882, 20786, 1029, 1006, 2009, 1005, 1055, 4477, 2475, 999, 1007, 102]),
        ("Remind me: buy 2 kg of apples @ 5pm", &[101, 10825, 2033, 1024, 4965, 1016, 4705, 1997, 18108, 1030, 1019, 9737, 102]),
        ("Tokyo 東京 is big", &[101, 5522, 1879, 1755, 2003, 2502, 102]),
        ("unaffordable antidisestablishmentarianism", &[101, 14477, 4246, 8551, 3085, 3424, 10521, 4355, 7875, 13602, 3672, 12199, 2964, 102]),
        ("e-mail  \t tabs\nnewlines", &[101, 1041, 1011, 5653, 21628, 2015, 2047, 12735, 102]),
        ("naïve café", &[101, 15743, 7668, 102]),
    ];
    let embedder = roxy::memory::MiniLm::load(&models_dir()).unwrap();
    for (text, ids) in golden {
        assert_eq!(embedder.token_ids(text), ids, "{text:?}");
    }
}

#[test]
fn two_processes_writing_at_once_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let writers: Vec<_> = (0..2)
        .map(|_| roxy(dir.path(), &["memory", "write-burst", "--count", "300"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap())
        .collect();
    for w in writers {
        let out = w.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let store = Store::open_in(dir.path()).unwrap();
    assert_eq!(store.history().count().unwrap(), 600);
    assert!(store.integrity_check().unwrap().is_empty());
}

#[test]
fn damage_inside_the_file_is_reported_by_stats() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(dir.path(), &["memory", "write-burst", "--count", "500"]);
    let path = dir.path().join(DB_FILE_NAME);
    {
        // Checkpoint the WAL into the main file, so the damage below hits real pages.
        let store = Store::open(&path).unwrap();
        drop(store);
        let c = rusqlite::Connection::open(&path).unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 40 * 4096, "{} bytes", bytes.len());
    for b in &mut bytes[20 * 4096..30 * 4096] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let out = roxy(dir.path(), &["memory", "stats"]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(!out.status.success(), "damage must not pass as healthy: {text}");
    assert!(text.contains("corrupt") || (text.contains("integrity") && !text.contains("integrity ok")), "{text}");
}

/// The per-turn API the brain uses, with the real MiniLM model: recalled facts and the bounded
/// session window come back as chat messages, and each recorded turn is searchable by meaning
/// at once (its vector is stored with it, no backfill needed).
#[test]
fn the_brain_api_recalls_facts_keeps_the_window_and_embeds_new_turns() {
    use roxy::config::MemoryConfig;
    use roxy::llm::Role;
    use roxy::memory::Memory;
    use roxy::paths::Paths;
    use std::collections::BTreeMap;

    let dir = tempfile::tempdir().unwrap();
    let paths = Paths { models_dir: models_dir(), ..Paths::under(dir.path()) };
    let config = MemoryConfig { session_turns: 3, ..Default::default() };
    let memory = Memory::open(&paths, &config).unwrap();
    assert_eq!(memory.embedder_problem(), None);
    memory.remember("Anna, my sister, was born on June 3rd").unwrap();
    memory.remember("The wireless network password is hunter2").unwrap();
    assert!(memory.remember("my sister Anna was born June 3rd").unwrap().merged, "a rewording merges");

    let timings = BTreeMap::from([("stt".to_string(), 150u64), ("llm".to_string(), 400)]);
    let said = [
        ("set a timer for tomorrow morning", "Timer set for tomorrow at 7."),
        ("do I need an umbrella tomorrow", "Rain is likely tomorrow, take an umbrella."),
        ("what time is it", "It is noon."),
        ("play some jazz", "Playing jazz."),
    ];
    for (heard, reply) in said {
        memory.record_turn(heard, reply, "llm", None, &timings).unwrap();
    }
    let clock = memory.record_turn("what day is it", "It is Monday.", "skill", Some("clock"), &BTreeMap::new()).unwrap();
    assert_eq!((clock.record.route.as_str(), clock.record.skill.as_deref()), ("skill", Some("clock")));

    let context = memory.context_for("when is my sister's birthday?").unwrap();
    let shown: Vec<(Role, &str)> = context.iter().map(|m| (m.role, m.content.as_str())).collect();
    eprintln!("{shown:#?}");
    // The conversation first (it stays in the LLM's KV cache between turns), then the facts.
    let (facts, turns) = shown.split_last().unwrap();
    assert_eq!(facts.0, Role::System);
    assert!(facts.1.contains("June 3rd") && !facts.1.contains("hunter2"), "only the related fact: {}", facts.1);
    assert_eq!(
        turns,
        [
            (Role::User, "what time is it"),
            (Role::Assistant, "It is noon."),
            (Role::User, "play some jazz"),
            (Role::Assistant, "Playing jazz."),
            (Role::User, "what day is it"),
            (Role::Assistant, "It is Monday."),
        ],
        "the last 3 turns (memory.session_turns), oldest first"
    );
    assert_eq!(memory.context_for("play it again").unwrap().len(), 6, "nothing recalled: no system message");

    // Every recorded turn already has its vector: nothing to backfill, and the re-rank sees
    // them. No turn has both words, so both "tomorrow" turns match; by meaning the umbrella wins.
    assert_eq!(memory.embed_backlog(100).unwrap(), 0);
    let hits = memory.search("tomorrow weather", &SearchFilter::default()).unwrap();
    let found: Vec<&str> = hits.iter().map(|h| h.turn.record.user_text.as_str()).collect();
    assert_eq!(found, ["do I need an umbrella tomorrow", "set a timer for tomorrow morning"], "{hits:?}");
    assert!(hits[0].score > hits[1].score);
    let stored = memory.store().history().recent(None, 10).unwrap();
    assert_eq!(stored.len(), 5, "the history keeps every turn");
    assert_eq!(stored[0].record.timings, timings);

    // The same question again comes from the query-vector cache.
    let (hits_before, _) = memory.query_cache_counts();
    memory.context_for("when is my sister's birthday?").unwrap();
    assert_eq!(memory.query_cache_counts().0, hits_before + 1);

    // A restart resumes the conversation's window and keeps the facts.
    drop(memory);
    let again = Memory::open(&paths, &config).unwrap();
    let context = again.context_for("what's the wifi code?").unwrap();
    let facts = context.last().unwrap();
    assert!(facts.content.contains("hunter2") && !facts.content.contains("June"), "{}", facts.content);
    assert_eq!(context[context.len() - 2].content, "It is Monday.");
    again.new_conversation().unwrap();
    assert_eq!(again.context_for("play it again").unwrap().len(), 0);
}

/// Facts written by another process (the CLI while the app runs) reach the in-memory vectors.
#[test]
fn facts_remembered_by_another_process_are_recalled_by_meaning() {
    use roxy::config::MemoryConfig;
    use roxy::memory::Memory;
    use roxy::paths::Paths;
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths { models_dir: models_dir(), ..Paths::under(dir.path()) };
    let memory = Memory::open(&paths, &MemoryConfig::default()).unwrap();
    memory.remember("My dentist is Dr. Lee on Main Street").unwrap();
    assert!(memory.recall("what's the wifi code?", 3).unwrap().is_empty());
    let out = roxy(dir.path(), &["memory", "remember", "The wireless network password is hunter2"]).env("ROXY_MODELS_DIR", models_dir()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let found = memory.recall("what's the wifi code?", 3).unwrap();
    assert_eq!(found.first().map(|(f, _)| f.text.as_str()), Some("The wireless network password is hunter2"), "{found:?}");
    let gone = roxy(dir.path(), &["memory", "forget", "wireless password"]).output().unwrap();
    assert!(gone.status.success());
    assert!(memory.recall("what's the wifi code?", 3).unwrap().is_empty(), "forgotten elsewhere, forgotten here");
}

#[test]
fn search_filters_by_date_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open_in(dir.path()).unwrap();
        let h = store.history();
        let s = h.start_session(0).unwrap();
        let day = 86_400_000i64;
        // 2024-06-01, 2024-06-02 (late evening) and 2024-06-03, as stored timestamps.
        for (i, at) in [19_875 * day + 3_600_000, 19_876 * day + 23 * 3_600_000, 19_877 * day].into_iter().enumerate() {
            h.append(s, at, &TurnRecord { user_text: format!("garden question {i}"), reply_text: "ok".into(), ..Default::default() }).unwrap();
        }
    }
    let texts = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["memory", "search", "garden", "--words", "--json"];
        all.extend_from_slice(args);
        let mut found: Vec<String> = json(&run_ok(dir.path(), &all)).as_array().unwrap().iter().map(|h| h["user_text"].as_str().unwrap().to_string()).collect();
        found.sort();
        found
    };
    assert_eq!(texts(&[]).len(), 3);
    assert_eq!(texts(&["--since", "2024-06-02"]), ["garden question 1", "garden question 2"]);
    assert_eq!(texts(&["--until", "2024-06-02"]), ["garden question 0", "garden question 1"], "--until includes the whole day");
    assert_eq!(texts(&["--since", "2024-06-02", "--until", "2024-06-02"]), ["garden question 1"]);
    let bad = roxy(dir.path(), &["memory", "search", "garden", "--since", "June"]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("YYYY-MM-DD"));
}

#[test]
fn doctor_reports_the_memory_store_and_a_corrupt_file_with_its_fix() {
    use roxy::doctor::{memory_store_check, Level};
    use roxy::paths::Paths;
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::under(dir.path());
    let fresh = memory_store_check(&paths);
    assert_eq!(fresh.level, Level::Ok, "{fresh:?}");
    assert!(fresh.detail.contains("not created yet"), "{fresh:?}");

    run_ok(dir.path(), &["memory", "write-burst", "--count", "12"]);
    run_ok(dir.path(), &["memory", "remember", "the cat is called Miso"]);
    let ok = memory_store_check(&paths);
    assert_eq!(ok.level, Level::Ok, "{ok:?}");
    assert!(ok.detail.contains("12 turns") && ok.detail.contains("1 facts") && ok.detail.contains("quick_check ok"), "{ok:?}");
    assert!(ok.detail.contains(&format!("schema v{}", roxy::memory::LATEST_VERSION)), "{ok:?}");

    let path = dir.path().join(DB_FILE_NAME);
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    std::fs::write(&path, b"this is not a database, just some text that someone saved here by mistake".repeat(100)).unwrap();
    let bad = memory_store_check(&paths);
    assert_eq!(bad.level, Level::Error, "{bad:?}");
    let fix = bad.fix.clone().unwrap_or_default();
    assert!(bad.detail.contains("corrupt") && fix.contains("mv ") && fix.contains(".bad"), "{bad:?}");
    assert!(path.exists(), "the check moves nothing");
}

/// MiniLM scores these pairs as paraphrases (cosine >= 0.93); they are different facts.
#[test]
fn facts_that_differ_by_one_token_are_both_kept_and_a_rewording_says_what_changed() {
    use roxy::memory::MiniLm;
    let embedder = MiniLm::load(&models_dir()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    let facts = store.facts_by_meaning(&embedder);
    for (a, b) in [("fact 1", "fact 2"), ("Room 101", "Room 102"), ("the alarm code is 4471", "the alarm code is 4472"), ("the garage door is locked", "the garage door is not locked")] {
        let first = facts.remember(a).unwrap();
        let second = facts.remember(b).unwrap();
        assert!(!second.merged && second.fact.id != first.fact.id, "{b:?} overwrote {a:?}: {second:?}");
    }
    assert_eq!(facts.count().unwrap(), 8, "every fact kept");
    let texts: Vec<String> = facts.list().unwrap().into_iter().map(|f| f.text).collect();
    for kept in ["fact 1", "fact 2", "Room 101", "Room 102"] {
        assert!(texts.iter().any(|t| t == kept), "{kept:?} lost: {texts:?}");
    }

    // A real rewording still merges, and says what it replaced.
    let first = facts.remember("My car is parked on level 3 of the garage").unwrap();
    let again = facts.remember("my car's parked on level 3 of the garage").unwrap();
    assert!(again.merged, "{again:?}");
    assert_eq!(again.fact.id, first.fact.id);
    assert_eq!(again.replaced.as_deref(), Some("My car is parked on level 3 of the garage"));
}
