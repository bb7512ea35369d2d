//! The whole loop on the real default models, through the `roxy` binary as a user runs it:
//! spoken questions in a WAV file → VAD → Whisper → SmolLM2 (worker process) → Piper → reply WAV.
//! The reply audio is checked by listening to it with Whisper.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::{SpeechLab, Voice};

fn models_dir() -> PathBuf {
    let dir = std::env::var_os("ROXY_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".roxy/models"));
    assert!(dir.join("llm").is_dir() && dir.join("tts").is_dir(), "default models missing in {}: run scripts/test", dir.display());
    dir
}

fn roxy(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roxy"))
        .args(args)
        .env("ROXY_MODELS_DIR", models_dir())
        .env("ROXY_DATA_DIR", data)
        .env("ROXY_CONFIG", data.join("config.toml"))
        .env_remove("ROXY_LOG")
        .env_remove("ROXY_PRESET")
        .env_remove("ROXY_MANIFEST")
        .output()
        .unwrap()
}

fn said(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn words(text: &str) -> Vec<String> {
    support::normalise(text)
}

#[test]
fn only_speech_opened_by_the_wake_word_is_answered() {
    let lab = SpeechLab::new();
    let voice = Voice::new("en-us", 160);
    // (what is said, what the turn must have heard, the route)
    let q1 = "What time is it?";
    let ignored = "What is two plus two?";
    let q2 = "Tell me a joke about cats.";
    let gap = lab.silence(1.5, 22050);
    let input = lab.path().join("conversation.wav");
    let status = Command::new("sox")
        .arg(lab.silence(0.5, 22050))
        .arg(lab.speak(&format!("Hey Jarvis, {q1}"), voice))
        .arg(&gap)
        .arg(lab.speak(ignored, voice))
        .arg(&gap)
        .arg(lab.speak("Hey Jarvis.", voice))
        .arg(lab.silence(0.8, 22050))
        .arg(lab.speak(q2, voice))
        .arg(&gap)
        .arg(&input)
        .status()
        .unwrap();
    assert!(status.success());

    let data = tempfile::tempdir().unwrap();
    let reply = data.path().join("reply.wav");
    let out = roxy(data.path(), &["run", "--input", input.to_str().unwrap(), "--output", reply.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", said(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let turns = report["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 2, "one turn per wake word, none for the question without it: {report:#}");

    for (turn, (question, route)) in turns.iter().zip([(q1, "skill"), (q2, "local")]) {
        let heard = turn["heard"].as_str().unwrap();
        assert!(support::wer(question, heard) <= 0.34, "heard {heard:?} for {question:?}: the wake phrase is cut off");
        assert_eq!(turn["route"], route, "{turn}");
        assert!(!turn["reply"].as_str().unwrap().trim().is_empty(), "{turn}");
        assert!(turn["reply_audio_s"].as_f64().unwrap() > 0.3, "{turn}");
        for key in ["wake", "endpoint", "stt", "intent", "tts_first_audio", "e2e_first_audio"] {
            assert!(turn["ms"][key].as_f64().is_some_and(|v| v >= 0.0), "{key} missing: {turn}");
        }
        let (start, end) = (turn["utterance_ms"][0].as_u64().unwrap(), turn["utterance_ms"][1].as_u64().unwrap());
        assert!(end > start + 800, "a whole question, not a fragment: {turn}");
        assert!(turn["wake_at_ms"].as_u64().unwrap() <= end);
    }
    assert_eq!(turns[0]["skill"], "clock");
    assert!(turns[0]["reply"].as_str().unwrap().starts_with("It's "), "{}", turns[0]);
    assert!(turns[1]["ms"]["llm_first_token"].as_f64().unwrap() > 0.0);
    assert!(turns[1]["utterance_ms"][0].as_u64() > turns[0]["utterance_ms"][1].as_u64());

    // The reply file is the spoken answers: Whisper hears the first answer's words in it.
    let spec = hound::WavReader::open(&reply).unwrap().spec();
    assert_eq!(spec.sample_rate, 22050);
    let back = roxy(data.path(), &["transcribe", reply.to_str().unwrap()]);
    assert!(back.status.success(), "{}", said(&back));
    let heard_back = words(&String::from_utf8_lossy(&back.stdout));
    let replied = words(turns[1]["reply"].as_str().unwrap());
    let found = replied.iter().filter(|w| heard_back.contains(w)).count();
    assert!(found * 2 >= replied.len(), "the reply audio should say {replied:?}; Whisper heard {heard_back:?}");

    // The run's timings are kept for `roxy stats`.
    let stats = roxy(data.path(), &["stats", "--json"]);
    assert!(stats.status.success(), "{}", said(&stats));
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    let e2e = stats.as_array().unwrap().iter().find(|s| s["stage"] == "e2e").expect("an e2e row");
    assert_eq!(e2e["count"], 2);
    assert!(e2e["p90"].as_f64().unwrap() >= e2e["p50"].as_f64().unwrap());
}

#[test]
fn a_typed_question_is_answered_aloud() {
    let data = tempfile::tempdir().unwrap();
    let reply = data.path().join("reply.wav");
    let out = roxy(data.path(), &["run", "--text", "Say hello to me.", "--output", reply.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", said(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["turns"].as_array().unwrap().len(), 1);
    assert!(report["turns"][0]["ms"]["stt"].is_null(), "no speech, no STT");
    let samples = hound::WavReader::open(&reply).unwrap().len();
    assert!(samples > 22050 / 4, "at least a quarter second of speech, got {samples} samples");
}

#[test]
fn a_fixed_phrase_is_spoken_from_the_cache_the_second_time() {
    let data = tempfile::tempdir().unwrap();
    let reply = data.path().join("reply.wav");
    let mut spoken = Vec::new();
    for _ in 0..2 {
        let out = roxy(data.path(), &["run", "--text", "cancel my timer", "--output", reply.to_str().unwrap(), "--json"]);
        assert!(out.status.success(), "{}", said(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["turns"][0]["reply"], "There's no timer running.", "{report}");
        spoken.push(hound::WavReader::open(&reply).unwrap().into_samples::<i16>().map(Result::unwrap).collect::<Vec<_>>());
    }
    assert_eq!(spoken[0], spoken[1], "the cached audio is the audio made the first time");
    let stats = roxy(data.path(), &["cache", "stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    let tts = stats["kinds"].as_array().unwrap().iter().find(|k| k["kind"] == "tts_audio").unwrap().clone();
    assert_eq!((tts["entries"].as_u64(), tts["hits"].as_u64(), tts["misses"].as_u64()), (Some(1), Some(1), Some(1)), "{tts}");
}

#[test]
fn silence_gets_no_answer_and_bad_input_is_named() {
    let lab = SpeechLab::new();
    let data = tempfile::tempdir().unwrap();
    let reply = data.path().join("reply.wav");
    let out = roxy(data.path(), &["run", "--input", lab.silence(3.0, 16000).to_str().unwrap(), "--output", reply.to_str().unwrap()]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("no speech heard"), "{}", said(&out));

    let bogus = data.path().join("notes.wav");
    std::fs::write(&bogus, b"this is not audio").unwrap();
    let out = roxy(data.path(), &["run", "--input", bogus.to_str().unwrap(), "--output", reply.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(said(&out).contains("notes.wav") && !said(&out).contains("panicked"), "{}", said(&out));
}
