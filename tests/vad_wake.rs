//! VAD endpointing and the wake word on the real models, on speech made here by espeak-ng/sox.
//!
//! Needs the default models (`scripts/test`, or
//! `ROXY_MODELS_DIR=.roxy/models cargo run -- models fetch --tier default`).
//! Figures (scores, boundaries, cost) are printed: run with `--nocapture` to see them.

mod support;

use roxy::audio::wav::read_mono_16k;
use roxy::listen::{listen_samples, ListenEvent, ListenReport, Listener};
use roxy::vad::{EndReason, EndpointSettings, SileroVad, Utterance, Vad, VadError};
use roxy::wake::{WakeDetector, WakeError, WakeModels, WakeSettings};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use support::{all_voices, voice_sample, Encoding, Noise, SpeechLab, Voice, COMMANDS, VOICE_NAMES};

const RATE: usize = 16_000;

fn models_dir() -> PathBuf {
    let dir = std::env::var_os("ROXY_MODELS_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".roxy/models"));
    assert!(
        roxy::vad::silero::model_path(&dir).is_file(),
        "no VAD model in {}: run `scripts/test` or `ROXY_MODELS_DIR=.roxy/models cargo run -- models fetch --tier default`",
        dir.display()
    );
    dir
}

fn silero() -> Arc<SileroVad> {
    static MODEL: OnceLock<Arc<SileroVad>> = OnceLock::new();
    MODEL.get_or_init(|| SileroVad::load(&models_dir()).expect("loading Silero VAD")).clone()
}

fn jarvis() -> Arc<WakeModels> {
    static MODEL: OnceLock<Arc<WakeModels>> = OnceLock::new();
    MODEL.get_or_init(|| WakeModels::load(&models_dir(), "hey_jarvis").expect("loading openWakeWord")).clone()
}

/// VAD + hey_jarvis with the default config over 16 kHz samples.
fn listen(samples: &[f32]) -> ListenReport {
    let mut vad = Vad::new(&silero(), EndpointSettings::default());
    let mut wake = jarvis().detector(WakeSettings::default());
    listen_samples(samples, &mut vad, Some(&mut wake), true).expect("listening")
}

fn silence(seconds: f32) -> Vec<f32> {
    vec![0.0; (seconds * RATE as f32) as usize]
}

/// `text` by `voice` at 16 kHz with `pad` seconds of silence either side.
fn padded(lab: &SpeechLab, text: &str, voice: Voice, pad: f32) -> Vec<f32> {
    let (speech, _) = read_mono_16k(&lab.speak(text, voice)).expect("reading espeak output");
    [silence(pad), speech, silence(pad)].concat()
}

/// Where the sound actually is: first and last sample above 1% of full scale, in ms.
fn sound_extent_ms(samples: &[f32]) -> (u64, u64) {
    let loud = |s: &&f32| s.abs() > 0.01;
    let first = samples.iter().position(|s| loud(&s)).expect("the clip has sound");
    let last = samples.iter().rposition(|s| loud(&s)).expect("the clip has sound");
    ((first * 1000 / RATE) as u64, (last * 1000 / RATE) as u64)
}

fn spans(utterances: &[Utterance]) -> Vec<(u64, u64)> {
    utterances.iter().map(|u| (u.start_ms, u.end_ms)).collect()
}

// ------------------------------------------------------------------------------------ VAD ----

#[test]
fn vad_finds_utterance_boundaries_in_padded_speech() {
    let lab = SpeechLab::new();
    for voice in voice_sample() {
        for text in [COMMANDS[0], COMMANDS[2], COMMANDS[5]] {
            let samples = padded(&lab, text, voice, 1.5);
            let (truth_start, truth_end) = sound_extent_ms(&samples);
            let report = listen(&samples);
            println!("{voice} {text:?}: sound {truth_start}–{truth_end} ms, VAD {:?}", spans(&report.utterances));
            assert_eq!(report.utterances.len(), 1, "{voice} {text:?}: {:?}", spans(&report.utterances));
            let u = &report.utterances[0];
            assert_eq!(u.reason, EndReason::Silence);
            assert!(u.start_ms.abs_diff(truth_start) <= 150, "{voice} {text:?}: start {} vs sound at {truth_start}", u.start_ms);
            assert!(u.end_ms.abs_diff(truth_end) <= 150, "{voice} {text:?}: end {} vs sound until {truth_end}", u.end_ms);
            // The utterance audio includes the pre-roll, so the first word is not clipped.
            assert!(u.audio_start_ms + 200 <= truth_start, "pre-roll missing: audio from {} ms, sound at {truth_start}", u.audio_start_ms);
            let audio_end = u.audio_start_ms + (u.samples.len() * 1000 / RATE) as u64;
            assert!(audio_end >= truth_end, "utterance audio ends at {audio_end} ms, before the sound ({truth_end})");
        }
    }
}

#[test]
fn vad_hears_one_word_replies() {
    let lab = SpeechLab::new();
    for voice in VOICE_NAMES.map(|name| Voice::new(name, 200)) {
        for word in ["Yes.", "No.", "Stop.", "Hi."] {
            let samples = padded(&lab, word, voice, 1.0);
            let report = listen(&samples);
            assert_eq!(report.utterances.len(), 1, "{voice} {word:?}: {:?}", spans(&report.utterances));
            let (start, end) = sound_extent_ms(&samples);
            let u = &report.utterances[0];
            assert!(u.start_ms.abs_diff(start) <= 150 && u.end_ms.abs_diff(end) <= 150, "{voice} {word:?}: {:?} vs sound {start}–{end}", spans(&report.utterances));
        }
    }
}

#[test]
fn vad_splits_two_utterances_separated_by_a_pause() {
    let lab = SpeechLab::new();
    for voice in voice_sample() {
        let (first, _) = read_mono_16k(&lab.speak(COMMANDS[0], voice)).unwrap();
        let (second, _) = read_mono_16k(&lab.speak(COMMANDS[3], voice)).unwrap();
        let samples = [silence(0.5), first, silence(1.5), second, silence(1.0)].concat();
        let report = listen(&samples);
        println!("{voice}: {:?}", spans(&report.utterances));
        assert_eq!(report.utterances.len(), 2, "{voice}: {:?}", spans(&report.utterances));
        assert!(report.utterances.iter().all(|u| u.reason == EndReason::Silence));
    }
}

#[test]
fn vad_and_wake_stay_quiet_on_silence_and_noise() {
    let lab = SpeechLab::new();
    let white = read_mono_16k(&lab.noise(Noise::White, 20.0, 0.5)).unwrap().0;
    let pink = read_mono_16k(&lab.noise(Noise::Pink, 20.0, 0.5)).unwrap().0;
    let faint = read_mono_16k(&lab.noise(Noise::White, 20.0, 0.01)).unwrap().0;
    for (name, samples) in [("silence", silence(20.0)), ("white noise", white), ("pink noise", pink), ("faint white noise", faint)] {
        // Ungated too: the wake model itself must not fire on noise, not only the VAD gate.
        let [(report, _), (ungated, _)] = gated_and_ungated(&samples);
        println!("{name}: {} utterances, max wake score {:.3} (ungated {:.3})", report.utterances.len(), report.max_wake_score, ungated.max_wake_score);
        assert!(report.utterances.is_empty(), "{name}: {:?}", spans(&report.utterances));
        assert!(report.wake.is_empty() && ungated.wake.is_empty(), "{name}: {:?} {:?}", report.wake, ungated.wake);
    }
}

#[test]
fn vad_cuts_at_max_utterance_length() {
    let lab = SpeechLab::new();
    let voice = Voice::new("en-us", 175);
    // Four commands back to back with short pauses: one long stretch of speech.
    let speech: Vec<f32> = COMMANDS[..4]
        .iter()
        .flat_map(|t| [read_mono_16k(&lab.speak(t, voice)).unwrap().0, silence(0.2)].concat())
        .collect();
    let settings = EndpointSettings { max_utterance_ms: 3000, ..Default::default() };
    let mut vad = Vad::new(&silero(), settings);
    let report = listen_samples(&speech, &mut vad, None, true).unwrap();
    println!("{:?}", report.utterances.iter().map(|u| (u.start_ms, u.end_ms, u.reason)).collect::<Vec<_>>());
    assert!(report.utterances.len() >= 2);
    assert_eq!(report.utterances[0].reason, EndReason::MaxLength);
    assert!(report.utterances.iter().all(|u| u.end_ms - u.start_ms <= 3000 + 32));
}

// ------------------------------------------------------------------------------ wake word ----

#[test]
fn hey_jarvis_is_detected_in_most_voices_and_speeds() {
    let lab = SpeechLab::new();
    let voices = all_voices();
    let mut detected = 0;
    for &voice in &voices {
        let samples = padded(&lab, "hey jarvis", voice, 1.0);
        let (_, phrase_end) = sound_extent_ms(&samples);
        let report = listen(&samples);
        let at = report.wake.first().map(|w| w.at_ms);
        println!(
            "{voice}: max score {:.3}, detected at {at:?} ms, phrase ends {phrase_end} ms, latency {:?} ms",
            report.max_wake_score,
            at.map(|a| a as i64 - phrase_end as i64)
        );
        assert!(report.wake.len() <= 1, "{voice}: one phrase fired twice: {:?}", report.wake);
        if let Some(w) = report.wake.first() {
            assert_eq!(w.model, "hey_jarvis");
            assert!(w.score >= 0.5);
            // Fires during or shortly after the phrase, not somewhere else in the clip.
            assert!(w.at_ms + 500 >= phrase_end && w.at_ms <= phrase_end + 600, "{voice}: fired at {} ms, phrase ends {phrase_end}", w.at_ms);
            detected += 1;
        }
    }
    println!("hey jarvis detected in {detected}/{} espeak voices", voices.len());
    // Measured: every espeak voice/speed here scores 0.73–0.998; allow one miss for
    // platform differences in espeak's output.
    assert!(detected + 1 >= voices.len(), "only {detected}/{} detected", voices.len());
}

#[test]
fn hey_jarvis_in_noise() {
    let lab = SpeechLab::new();
    let mut detected = 0;
    let mut cases = 0;
    for voice in voice_sample() {
        let clean = lab.path().join(format!("padded-{}-{}.wav", voice.name, voice.wpm));
        roxy::audio::wav::write_mono(&clean, &padded(&lab, "hey jarvis", voice, 0.5), 16_000).unwrap();
        for (noise, snr) in [(Noise::White, 10.0), (Noise::Pink, 10.0), (Noise::White, 5.0)] {
            let (samples, _) = read_mono_16k(&lab.with_noise(&clean, noise, snr)).unwrap();
            let report = listen(&samples);
            println!("{voice} {noise:?} {snr} dB: max score {:.3}, fired {}, utterances {:?}", report.max_wake_score, report.wake.len(), spans(&report.utterances));
            assert!(report.wake.len() <= 1);
            if snr >= 10.0 {
                cases += 1;
                detected += report.wake.len();
                // The noise is continuous; the VAD still finds the phrase and nothing else.
                assert_eq!(report.utterances.len(), 1, "{voice} {noise:?} {snr} dB: {:?}", spans(&report.utterances));
            }
        }
    }
    println!("hey jarvis at 10 dB SNR: detected {detected}/{cases}");
    // Measured: 6/6 at 10 dB here; 5 dB is shown only (some voices drop to ~0.25 there).
    assert!(detected + 1 >= cases, "only {detected}/{cases} detected at 10 dB SNR");
}

#[test]
fn other_speech_does_not_wake() {
    let lab = SpeechLab::new();
    let negatives = ["Hey there, what's the weather?", "Hey Jason.", "Hey Alexa.", "Harvest season."];
    let mut worst: f32 = 0.0;
    for voice in voice_sample() {
        for text in negatives.iter().chain(COMMANDS.iter()) {
            let report = listen(&padded(&lab, text, voice, 0.5));
            worst = worst.max(report.max_wake_score);
            assert!(report.wake.is_empty(), "{voice} {text:?} woke: {:?}", report.wake);
        }
    }
    println!("highest hey_jarvis score on other speech: {worst:.3}");
    // A near-rhyme is the hard case; shown, not asserted (espeak en+f3 "hey travis" scores ~0.76).
    for voice in voice_sample() {
        let report = listen(&padded(&lab, "Hey Travis.", voice, 0.5));
        println!("{voice} \"hey travis\": max score {:.3}, fired {}", report.max_wake_score, !report.wake.is_empty());
    }
}

#[test]
fn wake_and_vad_work_at_other_rates_and_channel_counts() {
    let lab = SpeechLab::new();
    let voice = Voice::new("en-us", 160);
    let speech = lab.speak("hey jarvis", voice);
    let reference = listen(&padded(&lab, "hey jarvis", voice, 1.0));
    for (rate, channels) in [(8_000, 1), (44_100, 2), (48_000, 1)] {
        let converted = lab.convert(&speech, rate, channels, Encoding::Int(16));
        let (samples, info) = read_mono_16k(&converted).unwrap();
        assert_eq!((info.sample_rate, info.channels), (rate, channels as u16));
        let samples = [silence(1.0), samples, silence(1.0)].concat();
        let report = listen(&samples);
        println!("{rate} Hz {channels} ch: wake {:?}, utterances {:?}", report.wake, spans(&report.utterances));
        assert_eq!(report.wake.len(), 1, "{rate} Hz {channels} ch: max score {:.3}", report.max_wake_score);
        assert_eq!(report.utterances.len(), 1);
        let (a, b) = (&report.utterances[0], &reference.utterances[0]);
        assert!(a.start_ms.abs_diff(b.start_ms) <= 100 && a.end_ms.abs_diff(b.end_ms) <= 150, "{:?} vs 16 kHz {:?}", spans(&report.utterances), spans(&reference.utterances));
    }
}

#[test]
fn chunk_size_does_not_change_what_is_heard() {
    let lab = SpeechLab::new();
    let samples = padded(&lab, "hey jarvis", Voice::new("en-gb", 160), 1.0);
    let whole = listen(&samples);
    // Odd-sized chunks, as a capture callback delivers them, through the streaming Listener.
    let mut vad = Vad::new(&silero(), EndpointSettings::default());
    let mut wake = jarvis().detector(WakeSettings::default());
    let mut listener = Listener::new(&mut vad, Some(&mut wake), true);
    let mut events = Vec::new();
    for chunk in samples.chunks(441) {
        events.extend(listener.push(chunk).unwrap());
    }
    events.extend(listener.finish().unwrap());
    assert!(matches!(events[0], ListenEvent::SpeechStart { .. }), "{events:?}");
    let ends: Vec<_> = events.iter().filter_map(|e| if let ListenEvent::SpeechEnd(u) = e { Some((u.start_ms, u.end_ms)) } else { None }).collect();
    let wakes: Vec<_> = events.iter().filter_map(|e| if let ListenEvent::Wake(w) = e { Some(w.clone()) } else { None }).collect();
    assert_eq!(ends, spans(&whole.utterances));
    assert_eq!(wakes, whole.wake);
    assert_eq!(listener.cost().chunks, samples.len().div_ceil(441));
}

#[test]
fn streams_share_weights_but_not_state() {
    let lab = SpeechLab::new();
    let samples = padded(&lab, "hey jarvis", Voice::new("en-us", 160), 1.0);
    let models = jarvis();
    let mut a = models.detector(WakeSettings::default());
    let mut b = models.detector(WakeSettings::default());
    // Interleave: stream b hears only silence while a hears the phrase.
    let quiet = silence(samples.len() as f32 / RATE as f32);
    let (mut hits_a, mut hits_b) = (0, 0);
    for (ca, cb) in samples.chunks(1280).zip(quiet.chunks(1280)) {
        hits_a += a.push(ca).unwrap().len();
        hits_b += b.push(cb).unwrap().len();
    }
    assert_eq!((hits_a, hits_b), (1, 0));
    // After a reset the stream is fresh: the same phrase fires again.
    a.reset();
    assert_eq!(a.push(&samples).unwrap().len(), 1);
}

/// Runs hey_jarvis with and without VAD gating; returns both reports and the detectors' stage counts.
fn gated_and_ungated(samples: &[f32]) -> [(ListenReport, roxy::wake::StageMs); 2] {
    [true, false].map(|gate| {
        let mut vad = Vad::new(&silero(), EndpointSettings::default());
        let mut wake = jarvis().detector(WakeSettings::default());
        let report = listen_samples(samples, &mut vad, Some(&mut wake), gate).unwrap();
        (report, wake.stage_ms())
    })
}

#[test]
fn vad_gating_saves_work_without_changing_detections() {
    let lab = SpeechLab::new();
    let mut clips: Vec<(String, Vec<f32>)> = all_voices().into_iter().map(|v| (format!("{v} hey jarvis"), padded(&lab, "hey jarvis", v, 3.0))).collect();
    for text in ["Hey Travis.", "Hey there, what's the weather?", COMMANDS[1]] {
        clips.push((format!("en-us {text}"), padded(&lab, text, Voice::new("en-us", 175), 3.0)));
    }
    let (mut gated_embeddings, mut all_embeddings) = (0, 0);
    for (name, samples) in &clips {
        let [(gated, g), (ungated, u)] = gated_and_ungated(samples);
        assert_eq!(gated.wake.len(), ungated.wake.len(), "{name}");
        for (a, b) in gated.wake.iter().zip(&ungated.wake) {
            assert_eq!(a.at_ms, b.at_ms, "{name}");
            assert!((a.score - b.score).abs() < 1e-3, "{name}: {} vs {}", a.score, b.score);
        }
        assert!((gated.max_wake_score - ungated.max_wake_score).abs() < 1e-3, "{name}: {} vs {}", gated.max_wake_score, ungated.max_wake_score);
        assert!(g.embeddings < u.embeddings, "{name}: gating saved nothing ({} embeddings)", g.embeddings);
        gated_embeddings += g.embeddings;
        all_embeddings += u.embeddings;
    }
    println!("gated: {gated_embeddings} of {all_embeddings} embeddings computed over clips with 3 s of silence either side");
    // In silence nothing heavy runs at all.
    let [(_, g), (_, u)] = gated_and_ungated(&silence(10.0));
    assert_eq!((g.embeddings, g.scored), (0, 0));
    assert_eq!(u.scored, u.chunks);
}

#[test]
fn every_shipped_keyword_model_fires_on_its_phrase_and_not_on_silence() {
    let lab = SpeechLab::new();
    // espeak says "mycroft" so that the model does not know it (0.0 in openwakeword's own Python
    // too); "my croft" is how a person says it.
    let phrases = [
        ("hey_jarvis", "hey jarvis"),
        ("alexa", "alexa"),
        ("hey_mycroft", "hey my croft"),
        ("hey_rhasspy", "hey rhasspy"),
        ("timer", "set a timer for five minutes"),
        ("weather", "what's the weather"),
    ];
    assert_eq!(phrases.map(|(m, _)| m), roxy::wake::KEYWORDS);
    for (name, phrase) in phrases {
        let models = WakeModels::load(&models_dir(), name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut quiet = models.detector(WakeSettings::default());
        assert!(quiet.push(&silence(2.0)).unwrap().is_empty(), "{name} fired on silence");
        let mut detector = models.detector(WakeSettings::default());
        let hits = detector.push(&padded(&lab, phrase, Voice::new("en-us", 160), 1.0)).unwrap();
        println!("{name} on {phrase:?}: max score {:.3}, detections {}", detector.max_score(), hits.len());
        assert_eq!(hits.len(), 1, "{name} on {phrase:?}: max score {:.3}", detector.max_score());
        assert_eq!(hits[0].model, name);
    }
}

#[test]
fn patience_and_cooldown_come_from_the_settings() {
    let lab = SpeechLab::new();
    let once = padded(&lab, "hey jarvis", Voice::new("en-gb", 160), 1.0);
    let twice = [once.clone(), once.clone()].concat();
    let run = |samples: &[f32], settings: WakeSettings| jarvis().detector(settings).push(samples).unwrap();
    let defaults = WakeSettings::default();
    // Two phrases ~2.5 s apart: both fire with the default 2 s cooldown, one with a 5 s cooldown.
    assert_eq!(run(&twice, defaults.clone()).len(), 2);
    assert_eq!(run(&twice, WakeSettings { cooldown_ms: 5000, ..defaults.clone() }).len(), 1);
    // Patience: more consecutive chunks above threshold fire later; more than the phrase gives, never.
    let first = run(&once, WakeSettings { patience: 1, ..defaults.clone() })[0].at_ms;
    let patient = run(&once, WakeSettings { patience: 3, ..defaults.clone() });
    assert_eq!(patient.len(), 1);
    assert_eq!(patient[0].at_ms, first + 2 * 80);
    assert_eq!(run(&once, defaults.clone())[0].at_ms, first + (defaults.patience as u64 - 1) * 80);
    assert!(run(&once, WakeSettings { patience: 25, ..defaults.clone() }).is_empty());
    // A threshold above every score this clip reaches: nothing.
    assert!(run(&once, WakeSettings { threshold: 0.9999, ..defaults }).is_empty());
}

#[test]
fn always_on_cost_is_reported() {
    let lab = SpeechLab::new();
    // A minute of mostly silence with a few commands, like an idle room.
    let mut samples = Vec::new();
    for (i, text) in COMMANDS.iter().take(5).enumerate() {
        samples.extend(silence(10.0));
        samples.extend(read_mono_16k(&lab.speak(text, voice_sample()[i % 3])).unwrap().0);
    }
    let report = listen(&samples);
    let c = &report.cost;
    println!(
        "always-on over {:.0} s: VAD {:.3} ms/chunk (RTF {:.4}), wake {:.3} ms/chunk p95 {:.3} max {:.3} (RTF {:.4}), total RTF {:.4}",
        c.audio_s, c.vad.mean_chunk_ms, c.vad.real_time_factor, c.wake.mean_chunk_ms, c.wake.p95_chunk_ms, c.wake.max_chunk_ms,
        c.wake.real_time_factor, c.vad.real_time_factor + c.wake.real_time_factor
    );
    assert_eq!(c.chunks, samples.len().div_ceil(1280));
    assert_eq!(report.utterances.len(), 5, "{:?}", spans(&report.utterances));
    assert!(c.wake.total_ms > 0.0 && c.vad.total_ms > 0.0);
}

// --------------------------------------------------------------------------------- errors ----

#[test]
fn missing_models_name_the_file_and_the_fix() {
    let empty = tempfile::tempdir().unwrap();
    let err = SileroVad::load(empty.path()).unwrap_err();
    assert!(matches!(err, VadError::ModelMissing { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("silero_vad.onnx") && msg.contains("roxy models fetch --tier default"), "{msg}");

    let err = WakeModels::load(empty.path(), "hey_jarvis").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, WakeError::ModelMissing { .. }), "{msg}");
    assert!(msg.contains("melspectrogram.onnx") && msg.contains("roxy models fetch --tier default"), "{msg}");

    let err = WakeModels::load(&models_dir(), "hey_siri").unwrap_err();
    assert!(matches!(err, WakeError::UnknownModel { .. }));
    assert!(err.to_string().contains("wake.model") && err.to_string().contains("hey_jarvis"), "{err}");
}

#[test]
fn corrupt_models_name_the_file_and_the_fix() {
    let models = models_dir();
    let dir = tempfile::tempdir().unwrap();
    // Half an ONNX file: ONNX Runtime rejects it.
    let truncated = dir.path().join("silero_vad.onnx");
    let bytes = std::fs::read(roxy::vad::silero::model_path(&models)).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = SileroVad::load_file(&truncated, &models).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, VadError::ModelCorrupt { .. }), "{msg}");
    assert!(msg.contains(&truncated.display().to_string()) && msg.contains("roxy models fetch --tier default"), "{msg}");

    // A valid ONNX file that is the wrong model (the VAD where the keyword model should be).
    let wrong = roxy::vad::silero::model_path(&models);
    let err = WakeModels::load_files(&roxy::wake::melspectrogram_path(&models), &roxy::wake::embedding_path(&models), &wrong, "hey_jarvis", &models).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, WakeError::ModelCorrupt { .. }), "{msg}");
    assert!(msg.contains("silero_vad.onnx") && msg.contains("roxy models fetch --tier default"), "{msg}");

    // Random bytes as the embedding model.
    let garbage = dir.path().join("embedding_model.onnx");
    std::fs::write(&garbage, b"not an onnx model at all").unwrap();
    let err = WakeModels::load_files(&roxy::wake::melspectrogram_path(&models), &garbage, &roxy::wake::keyword_path(&models, "alexa"), "alexa", &models).unwrap_err();
    assert!(err.to_string().contains("embedding_model.onnx"), "{err}");
}

#[test]
fn cli_listen_reports_wake_and_utterance() {
    let lab = SpeechLab::new();
    let samples = padded(&lab, "hey jarvis", Voice::new("en-gb", 160), 1.0);
    let file = lab.path().join("listen-input.wav");
    // Written at 16 kHz; the CLI reads any rate through the same reader as above.
    roxy::audio::wav::write_mono(&file, &samples, 16_000).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roxy"))
        .args(["listen", "--no-stt", "--json", "--input"])
        .arg(&file)
        .env("ROXY_MODELS_DIR", models_dir())
        .env("ROXY_CONFIG", lab.path().join("no-config.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["wake"].as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(json["wake"][0]["model"], "hey_jarvis");
    assert_eq!(json["utterances"].as_array().map(Vec::len), Some(1), "{json}");
    assert!(json["cost"]["wake"]["mean_chunk_ms"].as_f64().unwrap() > 0.0);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roxy"))
        .args(["listen", "--input"])
        .arg(lab.path().join("missing.wav"))
        .env("ROXY_MODELS_DIR", models_dir())
        .env("ROXY_CONFIG", lab.path().join("no-config.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.wav"));

    // `roxy wake`: one JSON line per detection, in seconds.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roxy"))
        .args(["wake", "--json"])
        .arg(&file)
        .env("ROXY_MODELS_DIR", models_dir())
        .env("ROXY_CONFIG", lab.path().join("no-config.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["model"], "hey_jarvis");
    assert_eq!(lines[0]["t"].as_f64().unwrap(), json["wake"][0]["at_ms"].as_f64().unwrap() / 1000.0);
}

// ------------------------------------------------------------------------ wake tuning table ----

/// The score of every 80 ms chunk of `samples`, every stage run on every chunk (no VAD gate:
/// while voice is heard the gated scores are the same, see `vad_gating_saves_work_…`).
fn wake_trace(samples: &[f32]) -> Vec<f32> {
    let mut detector = jarvis().detector(WakeSettings::default());
    samples
        .chunks_exact(1280)
        .map(|chunk| {
            detector.push(chunk).unwrap();
            detector.last_score()
        })
        .collect()
}

/// The detector's rule applied to a score trace: `patience` consecutive chunks at or above
/// `threshold` fire; returns the chunk index that fired first.
fn fires_at(trace: &[f32], threshold: f32, patience: u32) -> Option<usize> {
    let mut above = 0;
    trace.iter().position(|&s| {
        above = if s >= threshold { above + 1 } else { 0 };
        above >= patience
    })
}

/// Detection rate and false triggers of hey_jarvis for patience 1/2/3 × threshold 0.3/0.5/0.7,
/// on speech made here: the figures behind the `[wake]` defaults (README, "Speech in").
/// `cargo test --release --test vad_wake -- --ignored --nocapture wake_tuning_table`
#[test]
#[ignore = "benchmark: prints the wake tuning table (~1 min)"]
fn wake_tuning_table() {
    let lab = SpeechLab::new();
    let mut positives: Vec<(String, Vec<f32>, u64)> = Vec::new();
    for voice in all_voices() {
        let samples = padded(&lab, "hey jarvis", voice, 1.0);
        let end = sound_extent_ms(&samples).1;
        positives.push((format!("{voice}"), samples, end));
    }
    for voice in voice_sample() {
        let clean = lab.path().join(format!("tuning-{}-{}.wav", voice.name, voice.wpm));
        let samples = padded(&lab, "hey jarvis", voice, 1.0);
        let end = sound_extent_ms(&samples).1;
        roxy::audio::wav::write_mono(&clean, &samples, 16_000).unwrap();
        for noise in [Noise::White, Noise::Pink] {
            let (noisy, _) = read_mono_16k(&lab.with_noise(&clean, noise, 10.0)).unwrap();
            positives.push((format!("{voice} {noise:?} 10 dB"), noisy, end));
        }
    }
    let mut negatives: Vec<(String, Vec<f32>)> = Vec::new();
    for voice in all_voices() {
        for text in ["Hey Travis.", "Jarvis.", "Hey Jason.", "Harvest season."] {
            negatives.push((format!("{voice} {text:?}"), padded(&lab, text, voice, 0.5)));
        }
    }
    for voice in voice_sample() {
        for text in COMMANDS {
            negatives.push((format!("{voice} {text:?}"), padded(&lab, text, voice, 0.5)));
        }
    }
    for noise in [Noise::White, Noise::Pink] {
        let (samples, _) = roxy::audio::wav::read_mono(&lab.noise(noise, 30.0, 0.3)).unwrap();
        negatives.push((format!("{noise:?} noise 30 s"), samples));
    }
    let pos_traces: Vec<Vec<f32>> = positives.iter().map(|(_, s, _)| wake_trace(s)).collect();
    let neg_traces: Vec<Vec<f32>> = negatives.iter().map(|(_, s)| wake_trace(s)).collect();
    let neg_audio_s: f32 = negatives.iter().map(|(_, s)| s.len() as f32 / RATE as f32).sum();

    // The trace rule is the detector's rule: check it against the real detector once.
    for ((_, samples, _), trace) in positives.iter().zip(&pos_traces).take(3) {
        let fired = jarvis().detector(WakeSettings::default()).push(samples).unwrap();
        let d = WakeSettings::default();
        assert_eq!(fired.first().map(|w| w.at_ms), fires_at(trace, d.threshold, d.patience).map(|i| (i as u64 + 1) * 80));
    }

    println!("hey_jarvis: {} positives (9 espeak voices/speeds clean, 3 × white/pink noise at 10 dB SNR); {} negatives ({neg_audio_s:.0} s: \"hey travis\", \"jarvis\", \"hey jason\", \"harvest season\" × 9 voices, 10 commands × 3 voices, 30 s white and pink noise)", positives.len(), negatives.len());
    println!("| threshold | patience | detected | false triggers | latency after phrase end (mean / max ms) | missed / falsely woken by |");
    println!("|---|---|---|---|---|---|");
    for threshold in [0.3f32, 0.5, 0.7] {
        for patience in [1u32, 2, 3] {
            let mut latencies = Vec::new();
            let mut missed = Vec::new();
            for ((name, _, end), trace) in positives.iter().zip(&pos_traces) {
                match fires_at(trace, threshold, patience) {
                    Some(i) => latencies.push(((i as i64 + 1) * 80) - *end as i64),
                    None => missed.push(name.clone()),
                }
            }
            let woken: Vec<String> = negatives
                .iter()
                .zip(&neg_traces)
                .filter(|(_, trace)| fires_at(trace, threshold, patience).is_some())
                .map(|((name, _), _)| name.clone())
                .collect();
            let mean = latencies.iter().sum::<i64>() as f64 / latencies.len().max(1) as f64;
            println!(
                "| {threshold} | {patience} | {}/{} | {}/{} | {mean:.0} / {} | {} |",
                latencies.len(),
                positives.len(),
                woken.len(),
                negatives.len(),
                latencies.iter().max().copied().unwrap_or(0),
                missed.iter().map(|m| format!("miss {m}")).chain(woken.iter().map(|w| format!("woke {w}"))).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let (worst, worst_name) = neg_traces
        .iter()
        .zip(&negatives)
        .map(|(t, (n, _))| (t.iter().cloned().fold(0.0f32, f32::max), n.as_str()))
        .fold((0.0, ""), |a, b| if b.0 > a.0 { b } else { a });
    println!("highest negative score: {worst:.3} ({worst_name})");
}

/// CPU seconds this process has used (user + system, all threads), from /proc (Linux).
#[cfg(target_os = "linux")]
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the ")" that ends the command name: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0 // USER_HZ is 100 on every Linux Roxy builds for
}

/// The always-on cost (VAD + wake word, CPU seconds per audio second, measured as the whole
/// process's CPU time, so ONNX Runtime's own threads count) over ten minutes of a mostly idle
/// room, and the wake latency: from the end of "hey jarvis" (the last sample above 1 % of full
/// scale in the generated audio) to the chunk whose score fired (`at_ms`).
/// Run alone: `cargo test --release --test vad_wake -- --ignored --nocapture always_on_benchmark`
#[cfg(target_os = "linux")]
#[test]
#[ignore = "benchmark: prints the always-on cost and wake latency (~1 min)"]
fn always_on_benchmark() {
    let lab = SpeechLab::new();
    // Ten minutes: 20 s of room noise and silence, then a command, repeated; a wake phrase every
    // other minute.
    let (hiss, _) = roxy::audio::wav::read_mono(&lab.noise(Noise::Pink, 10.0, 0.005)).unwrap();
    let mut samples = Vec::new();
    let mut phrase_ends = Vec::new();
    for i in 0..30 {
        samples.extend(&hiss);
        samples.extend(silence(10.0));
        let voice = voice_sample()[i % 3];
        if i % 6 == 0 {
            let (speech, _) = read_mono_16k(&lab.speak("hey jarvis", voice)).unwrap();
            phrase_ends.push(samples.len() as u64 * 1000 / RATE as u64 + sound_extent_ms(&speech).1);
            samples.extend(speech);
            samples.extend(silence(0.5));
        }
        samples.extend(read_mono_16k(&lab.speak(COMMANDS[i % COMMANDS.len()], voice)).unwrap().0);
    }
    let audio_s = samples.len() as f64 / RATE as f64;
    // Load the models first: their one-off cost is not the always-on cost.
    let (silero, jarvis) = (silero(), jarvis());
    let mut vad = Vad::new(&silero, EndpointSettings::default());
    let mut wake = jarvis.detector(WakeSettings::default());
    let (cpu0, wall0) = (process_cpu_s(), std::time::Instant::now());
    let mut listener = Listener::new(&mut vad, Some(&mut wake as &mut dyn WakeDetector), true);
    let mut wakes = Vec::new();
    for chunk in samples.chunks(1280) {
        for event in listener.push(chunk).unwrap() {
            if let ListenEvent::Wake(w) = event {
                wakes.push(w);
            }
        }
    }
    let (cpu, wall) = (process_cpu_s() - cpu0, wall0.elapsed().as_secs_f64());
    println!("always-on (VAD + hey_jarvis, gated) over {audio_s:.0} s of audio: {cpu:.2} CPU-s = {:.4} CPU-s per audio-s (target < 0.02); wall {wall:.2} s", cpu / audio_s);
    let mut latencies = Vec::new();
    for end in &phrase_ends {
        match wakes.iter().find(|w| w.at_ms + 1000 >= *end && w.at_ms <= end + 1000) {
            Some(w) => latencies.push(w.at_ms as i64 - *end as i64),
            None => println!("phrase ending at {end} ms: missed"),
        }
    }
    latencies.sort();
    println!(
        "wake latency (phrase end → at_ms) over {}/{} phrases: min {} ms, median {} ms, max {} ms (target < 200); false wakes: {}",
        latencies.len(),
        phrase_ends.len(),
        latencies.first().unwrap_or(&0),
        latencies.get(latencies.len() / 2).unwrap_or(&0),
        latencies.last().unwrap_or(&0),
        wakes.len() - latencies.len()
    );
    assert!(!latencies.is_empty(), "no wake phrase was detected: {wakes:?}");
}
