//! `roxy run` live, on ALSA's `null` device (a private ~/.asoundrc): the real capture path and
//! the coordinator, driven from stdin as the hotkey would be. With no sound card at all, a clear
//! error. (A null device gives silence, so answering speech is tested on files in voice_loop.rs.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn models_dir() -> PathBuf {
    std::env::var_os("ROXY_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".roxy/models"))
}

fn roxy(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_roxy"));
    c.args(args)
        .env("HOME", home)
        .env("ROXY_DATA_DIR", home.join("data"))
        .env("ROXY_CONFIG", home.join("config.toml"))
        .env("ROXY_MODELS_DIR", models_dir())
        .env_remove("ROXY_LOG");
    c
}

#[test]
fn the_hotkey_starts_listening_and_silence_times_out() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".asoundrc"), "pcm.!default {\n  type null\n}\n").unwrap();
    let out = home.path().join("said.wav");
    let mut child = roxy(home.path(), &["run", "--seconds", "12", "--output", out.to_str().unwrap(), "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        // After the models load (a few seconds), press "Enter" like the hotkey.
        std::thread::sleep(Duration::from_secs(1));
        let _ = stdin.write_all(b"\n");
        std::thread::sleep(Duration::from_secs(60));
    });
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let events: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("one JSON event per line")).collect();
    let states: Vec<&str> = events.iter().filter(|e| e["event"] == "state").filter_map(|e| e["state"].as_str()).collect();
    assert_eq!(states, ["idle", "listening", "idle"], "Enter → listening → nothing said → idle: {stdout}");
    assert!(events.iter().any(|e| e["event"] == "ready"), "{stdout}");
    // The null device delivers only zeros: the user is told, as a muted Mac would be.
    assert!(events.iter().any(|e| e["event"] == "mic" && e["problem"].as_str().unwrap().contains("only silence")), "{stdout}");
    // The earcon was played when listening began (into the WAV sink standing in for the speaker).
    let reader = hound::WavReader::open(&out).unwrap();
    let seconds = reader.duration() as f64 / reader.spec().sample_rate as f64;
    assert!((0.1..0.5).contains(&seconds), "the earcon, about 0.2 s: {seconds}");
}

#[test]
fn no_microphone_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".asoundrc"), "pcm.!default {\n  type hw\n  card 7\n}\n").unwrap();
    let output = roxy(home.path(), &["run", "--seconds", "2", "--output", home.path().join("x.wav").to_str().unwrap()]).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("microphone") && said.contains("Fix:") && !said.contains("panicked"), "{said}");
}

mod support;

/// `parts` (WAV files) joined with sox into one 16 kHz recording.
fn joined(lab: &support::SpeechLab, name: &str, parts: &[PathBuf]) -> Vec<f32> {
    let input = lab.path().join(name);
    let status = std::process::Command::new("sox").args(parts).arg(&input).status().unwrap();
    assert!(status.success(), "sox joins {parts:?}");
    roxy::audio::wav::read_mono_16k(&input).unwrap().0
}

/// The default config's engine on the installed default models, with its own data dir.
fn engine_with(config: roxy::config::Config) -> (std::sync::Arc<roxy::voice_loop::Engine>, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let manifest = roxy::models::Manifest::from_env().unwrap();
    let metrics = std::sync::Arc::new(roxy::metrics::Registry::new());
    let (engine, _) = roxy::voice_loop::Engine::load(config, &models_dir(), data.path(), &manifest, metrics).expect("the default models are installed");
    (std::sync::Arc::new(engine), data)
}

/// Short answers, and the LLM loaded and primed before the user speaks, as after a few seconds
/// of use.
fn engine_with_a_warm_llm() -> (std::sync::Arc<roxy::voice_loop::Engine>, tempfile::TempDir) {
    let mut config = roxy::config::Config::default();
    config.llm.max_tokens = 16;
    let (engine, data) = engine_with(config);
    engine.brain().warm_up().expect("the default LLM loads");
    engine.settle();
    (engine, data)
}

/// What the session has recorded: the user's side of each turn.
fn recorded(engine: &roxy::voice_loop::Engine) -> Vec<String> {
    engine.brain().memory().unwrap().session().turns().map(|t| t.record.user_text.clone()).collect()
}

/// `samples` fed at real-time pace into the live loop until its first turn (then it quits);
/// with `hotkey`, the hotkey is pressed first (no wake word needed).
fn the_first_turn(engine: &std::sync::Arc<roxy::voice_loop::Engine>, samples: Vec<f32>, name: &str, hotkey: bool) -> Box<roxy::voice_loop::Turn> {
    use roxy::audio::playback::WavSink;
    use roxy::live::{self, LiveEvent, LiveOptions};
    use std::sync::{mpsc, Arc};
    use std::time::Instant;

    let sink = Arc::new(WavSink::new(engine.sample_rate()));
    let (commands, inbox) = mpsc::channel();
    if hotkey {
        commands.send(live::Command::Activate(roxy::coordinator::Trigger::Hotkey)).unwrap();
    }
    let mut events: Vec<LiveEvent> = Vec::new();
    let options = LiveOptions { until: Some(Instant::now() + Duration::from_secs(90)), ..Default::default() };
    let mic = live::file_source(samples, name);
    live::run(engine.clone(), &mic, sink, inbox, options, &mut |e| {
        if let LiveEvent::Turn { .. } = e {
            let _ = commands.send(live::Command::Quit);
        }
        events.push(e.clone());
    })
    .unwrap();
    engine.shutdown();
    let turn = events.iter().find_map(|e| if let LiveEvent::Turn { turn, .. } = e { Some(turn.clone()) } else { None });
    let shown: Vec<String> = events.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    turn.unwrap_or_else(|| panic!("a turn was answered:\n{}", shown.join("\n")))
}

/// Real barge-in: recorded speech fed at real-time pace into the live loop. "Hey Jarvis" while
/// Roxy is still answering stops the answer (playback cut, generation cancelled) and the next
/// command is answered.
#[test]
fn the_wake_word_during_an_answer_interrupts_it() {
    use roxy::audio::playback::WavSink;
    use roxy::live::{self, LiveEvent, LiveOptions};
    use std::sync::{mpsc, Arc};
    use std::time::Instant;

    let lab = support::SpeechLab::new();
    let voice = support::Voice::new("en-us", 160);
    let samples = joined(
        &lab,
        "barge_in.wav",
        &[lab.silence(0.5, 22050), lab.speak("Hey Jarvis, tell me a long story about a brave little dragon.", voice), lab.silence(6.0, 22050), lab.speak("Hey Jarvis, what time is it?", voice)],
    );
    let mut config = roxy::config::Config::default();
    config.llm.temperature = 0.0;
    config.llm.max_tokens = 200;
    let (engine, _data) = engine_with(config);
    let sink = Arc::new(WavSink::new(engine.sample_rate()));
    let (commands, inbox) = mpsc::channel();
    let mut events: Vec<LiveEvent> = Vec::new();
    let options = LiveOptions { until: Some(Instant::now() + Duration::from_secs(120)), ..Default::default() };
    let mic = live::file_source(samples, "barge_in.wav");
    // From the wake word heard mid-answer to listening again: the loop stops playback before it
    // reports the new state (the hotkey test below measures the audio itself).
    let (mut state, mut wake_during_answer, mut stopped_after) = (String::new(), None::<Instant>, None::<Duration>);
    live::run(engine.clone(), &mic, sink.clone(), inbox, options, &mut |e| {
        match e {
            LiveEvent::Wake { .. } if state == "speaking" => wake_during_answer = Some(Instant::now()),
            LiveEvent::State { state: s } => {
                state = serde_json::to_value(s).unwrap().as_str().unwrap().to_string();
                if let (Some(at), None) = (wake_during_answer, stopped_after) {
                    stopped_after = Some(at.elapsed());
                }
            }
            LiveEvent::Turn { n: 2, .. } => {
                let _ = commands.send(live::Command::Quit);
            }
            _ => {}
        }
        events.push(e.clone());
    })
    .unwrap();
    engine.shutdown();

    let lines: Vec<String> = events.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    let shown = lines.join("\n");
    let turn = |n: u64| {
        events.iter().find_map(|e| match e {
            LiveEvent::Turn { n: m, interrupted, turn } if *m == n => Some((*interrupted, turn.clone())),
            _ => None,
        })
    };
    // Turn 1 was cut: mid-speech (a Turn marked interrupted) or, on a busy machine, before it
    // had anything to say (dropped after the transcription).
    let first = turn(1);
    let dropped = events.iter().any(|e| matches!(e, LiveEvent::NothingHeard { n: 1 }));
    assert!(first.as_ref().is_some_and(|(cut, _)| *cut) || (first.is_none() && dropped), "the first answer was interrupted:\n{shown}");
    let (second_cut, second) = turn(2).unwrap_or_else(|| panic!("turn 2 answered:\n{shown}"));
    assert!(!second_cut && second.reply.starts_with("It's"), "the clock answered the second command:\n{shown}");
    // Between the two turns the loop went back to listening without passing through idle.
    let states: Vec<String> = events.iter().filter_map(|e| match e {
        LiveEvent::State { state } => Some(serde_json::to_value(state).unwrap().as_str().unwrap().to_string()),
        _ => None,
    }).collect();
    let barge = states.windows(2).any(|w| (w[0] == "speaking" || w[0] == "thinking") && w[1] == "listening");
    assert!(barge, "barge-in: {states:?}");
    // What was heard is less than the two answers would have taken to say.
    if let Some(stopped) = stopped_after {
        println!("wake word during the answer → playback stopped: {:.3} ms", stopped.as_secs_f64() * 1000.0);
        assert!(stopped < Duration::from_millis(100), "barge-in stops the audio within 100 ms: {stopped:?}");
    }
    let heard_s = sink.heard().len() as f64 / engine.sample_rate() as f64;
    let first_s = first.map_or(0.0, |(_, t)| t.reply_audio_s);
    println!("first reply {first_s:.1} s made; heard in all {heard_s:.1} s; states {states:?}");
    assert!(heard_s < first_s + second.reply_audio_s + 0.5, "playback was cut");
}

/// The command is transcribed while the VAD waits out the end-of-speech silence: once the
/// speaker has been quiet for the post-roll the utterance is fixed, so the answer starts from
/// that transcript instead of decoding after the wait.
#[test]
fn a_command_is_transcribed_during_the_end_of_speech_wait() {
    let lab = support::SpeechLab::new();
    let voice = support::Voice::new("en-us", 160);
    let samples = joined(&lab, "early_stt.wav", &[lab.silence(0.5, 22050), lab.speak("Hey Jarvis, what time is it?", voice), lab.silence(2.0, 22050)]);
    let (engine, _data) = engine_with(roxy::config::Config::default());
    let turn = the_first_turn(&engine, samples, "early_stt.wav", false);
    assert!(turn.reply.starts_with("It's"), "the clock answered: {:?} → {:?}", turn.heard, turn.reply);
    let (decode, waited) = (turn.ms.stt.unwrap(), turn.ms.stt_wait.unwrap());
    println!("STT decode {decode:.0} ms; the answer waited {waited:.0} ms for it after the end of speech");
    assert!(waited < decode, "the decode began before the end of speech: waited {waited} ms of {decode} ms");
}

/// A question for the LLM is answered during the same wait: from the pause on, the LLM writes
/// and Piper speaks into held audio, which plays the moment the end of speech confirms it.
#[test]
fn an_llm_answer_begins_during_the_end_of_speech_wait() {
    let lab = support::SpeechLab::new();
    let voice = support::Voice::new("en-us", 160);
    // By hotkey: Whisper tiny often doubts its fast pass over a wake phrase and decodes again
    // (see the README), which would leave no wait to begin the answer in.
    let samples = joined(&lab, "early_answer.wav", &[lab.silence(0.5, 22050), lab.speak("Why is the sky blue?", voice), lab.silence(2.0, 22050)]);
    let (engine, _data) = engine_with_a_warm_llm();
    let turn = the_first_turn(&engine, samples, "early_answer.wav", true);
    assert_eq!(turn.route, roxy::brain::Route::Local, "the LLM answered {:?}", turn.heard);
    assert!(!turn.reply.is_empty() && turn.reply_audio_s > 0.0, "the LLM's answer was spoken: {:?}", turn.heard);
    // When it began depends on Whisper beating the 300 ms wait (a debug build on a busy machine
    // may not): that the answer came from the pause is what is checked.
    let head_start = turn.ms.head_start.unwrap_or_else(|| panic!("the answer to {:?} was begun at the pause", turn.heard));
    println!("{:?}: begun {head_start:.0} ms before the end of speech (STT {:?} ms); first audio {:?} ms after it", turn.heard, turn.ms.stt, turn.ms.e2e_first_audio);
    assert_eq!(recorded(&engine), std::slice::from_ref(&turn.heard), "the confirmed answer is recorded once");
}

/// A pause inside a question is not its end: what was begun from the first half is dropped
/// (never heard, never recorded), and the whole question is answered.
#[test]
fn going_on_after_a_pause_drops_the_answer_begun_at_it() {
    let lab = support::SpeechLab::new();
    let voice = support::Voice::new("en-us", 160);
    let halves = [lab.speak("Hey Jarvis, tell me why the sky", voice), lab.speak("looks so blue at noon.", voice)];
    // espeak-ng ends each clip with ~350 ms of quiet: past the VAD's post-roll (200 ms), short of
    // its end-of-speech wait (500 ms).
    let samples = joined(&lab, "pause_inside.wav", &[lab.silence(0.5, 22050), halves[0].clone(), halves[1].clone(), lab.silence(2.0, 22050)]);
    let (engine, _data) = engine_with_a_warm_llm();
    let turn = the_first_turn(&engine, samples, "pause_inside.wav", false);
    let heard = turn.heard.to_lowercase();
    assert!(heard.contains("sky") && heard.contains("blue"), "the whole question was answered: {heard:?}");
    assert_eq!(recorded(&engine), std::slice::from_ref(&turn.heard), "only the whole question is recorded");
}

/// Push-to-talk: the key's release closes the utterance then and there, even though the user
/// goes on talking without a pause (the VAD alone would have taken the whole sentence).
#[test]
fn releasing_push_to_talk_ends_the_utterance() {
    use roxy::audio::playback::WavSink;
    use roxy::live::{self, LiveEvent, LiveOptions};
    use roxy::coordinator::Trigger;
    use std::sync::{mpsc, Arc};
    use std::time::Instant;

    let lab = support::SpeechLab::new();
    let voice = support::Voice::new("en-us", 160);
    let command = lab.speak("What time is it?", voice);
    let command_s = roxy::audio::wav::read_mono_16k(&command).unwrap().0.len() as f64 / 16000.0;
    let samples = joined(
        &lab,
        "push_to_talk.wav",
        &[lab.silence(0.5, 22050), command, lab.silence(0.1, 22050), lab.speak("and then tell me a long story about a brave little dragon", voice)],
    );
    let (engine, _data) = engine_with(roxy::config::Config::default());
    let sink = Arc::new(WavSink::new(engine.sample_rate()));
    let (commands, inbox) = mpsc::channel();
    // Pressed before the user speaks; released 150 ms after "what time is it" ends.
    commands.send(live::Command::Activate(Trigger::Hotkey)).unwrap();
    let mut events: Vec<LiveEvent> = Vec::new();
    let options = LiveOptions { until: Some(Instant::now() + Duration::from_secs(60)), ..Default::default() };
    let mic = live::file_source(samples, "push_to_talk.wav");
    let release_at = Instant::now() + Duration::from_secs_f64(0.5 + command_s + 0.15);
    let releaser = commands.clone();
    std::thread::spawn(move || {
        std::thread::sleep(release_at.saturating_duration_since(Instant::now()));
        let _ = releaser.send(live::Command::EndUtterance);
    });
    live::run(engine.clone(), &mic, sink, inbox, options, &mut |e| {
        if let LiveEvent::Turn { .. } | LiveEvent::NothingHeard { .. } = e {
            let _ = commands.send(live::Command::Quit);
        }
        events.push(e.clone());
    })
    .unwrap();
    engine.shutdown();

    let shown = events.iter().map(|e| serde_json::to_string(e).unwrap()).collect::<Vec<_>>().join("\n");
    let turn = events.iter().find_map(|e| match e {
        LiveEvent::Turn { turn, .. } => Some(turn.clone()),
        _ => None,
    });
    let turn = turn.unwrap_or_else(|| panic!("the released utterance was answered:\n{shown}"));
    let heard = turn.heard.to_lowercase();
    assert!(heard.contains("time") && !heard.contains("dragon") && !heard.contains("story"), "only what was said before the release: {heard:?}\n{shown}");
    assert!(turn.reply.starts_with("It's"), "the clock answered: {:?}", turn.reply);
}

/// The hotkey while Roxy speaks: playback stops (measured from the press to the speaker being
/// silent, which the issue bounds at 100 ms) and Roxy listens.
#[test]
fn the_hotkey_while_speaking_stops_playback_at_once() {
    use roxy::audio::playback::WavSink;
    use roxy::coordinator::Trigger;
    use roxy::live::{self, LiveEvent, LiveOptions};
    use std::sync::{mpsc, Arc};
    use std::time::Instant;

    let lab = support::SpeechLab::new();
    let samples = joined(&lab, "speak_then_hotkey.wav", &[lab.silence(0.5, 22050), lab.speak("Hey Jarvis, what time is it?", support::Voice::new("en-us", 160))]);
    let (engine, _data) = engine_with(roxy::config::Config::default());
    let sink = Arc::new(WavSink::new(engine.sample_rate()));
    let (commands, inbox) = mpsc::channel();
    let options = LiveOptions { until: Some(Instant::now() + Duration::from_secs(60)), ..Default::default() };
    let mic = live::file_source(samples, "speak_then_hotkey.wav");
    let (mut pressed, mut stopped_after, mut states) = (None::<Instant>, None::<Duration>, Vec::new());
    let mut heard_at_stop = None;
    let watched = sink.clone();
    live::run(engine.clone(), &mic, sink.clone(), inbox, options, &mut |e| {
        if let LiveEvent::State { state } = e {
            let state = serde_json::to_value(state).unwrap().as_str().unwrap().to_string();
            match (state.as_str(), pressed) {
                ("speaking", None) => {
                    pressed = Some(Instant::now());
                    commands.send(live::Command::Activate(Trigger::Hotkey)).unwrap();
                }
                ("listening", Some(at)) if stopped_after.is_none() => {
                    stopped_after = Some(at.elapsed());
                    // Only the new listening chime may play now; the answer is cut.
                    heard_at_stop = Some(watched.heard().len());
                    commands.send(live::Command::Quit).unwrap();
                }
                _ => {}
            }
            states.push(state);
        }
    })
    .unwrap();
    engine.shutdown();
    let stopped = stopped_after.unwrap_or_else(|| panic!("Roxy spoke, the hotkey interrupted it: {states:?}"));
    // What reached the speaker: the first chime, then the answer until the press was handled.
    let rate = engine.sample_rate() as f64;
    let earcon_s = roxy::audio::wav::read_mono_16k(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/earcon.wav").as_path()).unwrap().0.len() as f64 / 16000.0;
    let answer_heard_s = heard_at_stop.unwrap() as f64 / rate - earcon_s;
    println!("hotkey while speaking → listening after {:.1} ms; {:.0} ms of the answer were heard", stopped.as_secs_f64() * 1000.0, answer_heard_s * 1000.0);
    assert!(stopped < Duration::from_millis(100), "barge-in is handled within 100 ms: {stopped:?}");
    assert!(answer_heard_s < 0.1, "the answer stopped within 100 ms of the press: {answer_heard_s:.3} s heard");
}
