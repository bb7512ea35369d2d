//! Model provisioning against a local HTTP server: the download path a Mac user's 8 GB / 32 GB
//! fetch takes (resume after a cut connection, checksum mismatch, server-supplied digests), the
//! `roxy models` CLI on a custom manifest, and damaged files reported by `verify` and `doctor`.

use indicatif::ProgressBar;
use roxy::models::download::{download, partial_path};
use roxy::models::{fetch_tier, FetchError, FetchEvent, FetchOptions, FetchPhase, FetchProgress, Manifest, OnProgress};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the server treats requests.
#[derive(Clone, Default)]
struct Behaviour {
    /// Close the connection after this many body bytes on the first request only.
    cut_first_after: Option<usize>,
    /// Header carrying the body's sha256, like Hugging Face's `X-Linked-Etag`.
    digest_header: Option<(&'static str, String)>,
    /// Serve this instead of the real body (a file that changed upstream).
    body_override: Option<Vec<u8>>,
    /// Send the body in chunks of this many bytes with this pause between (a slow link).
    slow: Option<(usize, Duration)>,
}

struct Server {
    url: String,
    /// The `Range` header of every request, in order (`None` when absent).
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

fn serve(body: Vec<u8>, behaviour: Behaviour) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/model.bin", listener.local_addr().unwrap());
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = ranges.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            handle(stream, &body, &behaviour, &seen);
        }
    });
    Server { url, ranges }
}

/// Serves one request, recording its `Range` in `seen` as soon as it is read (before the body:
/// a slow body may still be going out when the client already has all it asked for).
fn handle(mut stream: TcpStream, body: &[u8], b: &Behaviour, seen: &Mutex<Vec<Option<String>>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_string());
            }
        }
    }
    let first = {
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.push(range.clone());
        seen.len() == 1
    };
    let body = b.body_override.as_deref().unwrap_or(body);
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok())
        .unwrap_or(0);
    let mut head = if start >= body.len() && start > 0 {
        format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\n", body.len())
    } else if start > 0 {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\nContent-Length: {}\r\n",
            body.len() - 1,
            body.len(),
            body.len() - start
        )
    } else {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", body.len())
    };
    if let Some((name, value)) = &b.digest_header {
        head.push_str(&format!("{name}: \"{value}\"\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    let _ = stream.write_all(head.as_bytes());
    let mut payload = &body[start.min(body.len())..];
    if first {
        if let Some(cut) = b.cut_first_after {
            payload = &payload[..cut.min(payload.len())];
        }
    }
    match b.slow {
        Some((chunk, pause)) => {
            for part in payload.chunks(chunk) {
                if stream.write_all(part).and_then(|_| stream.flush()).is_err() {
                    break; // the client hung up (a cancelled download)
                }
                std::thread::sleep(pause);
            }
        }
        None => {
            let _ = stream.write_all(payload);
        }
    }
    let _ = stream.flush();
}

/// 3 MiB that differ at every offset, so a resume at the wrong place cannot match the digest.
fn body() -> Vec<u8> {
    (0..3 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn quiet() -> ProgressBar {
    ProgressBar::hidden()
}

#[test]
fn a_cut_connection_is_resumed_with_a_range_request() {
    let body = body();
    let cut = 1_000_000;
    let server = serve(body.clone(), Behaviour { cut_first_after: Some(cut), ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("llm/model.bin");

    let got = download(&server.url, &dest, Some(&sha(&body)), 3, &quiet()).unwrap();

    assert_eq!(got.resumed_from, cut as u64, "the second attempt continues where the first stopped");
    assert_eq!(got.bytes, body.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert!(!partial_path(&dest).exists(), "the partial file is renamed into place");
    assert_eq!(*server.ranges.lock().unwrap(), vec![None, Some(format!("bytes={cut}-"))]);
}

#[test]
fn a_partial_file_left_by_a_killed_fetch_is_resumed_by_the_next_one() {
    let body = body();
    let cut = 2_000_000;
    let server = serve(body.clone(), Behaviour { cut_first_after: Some(cut), ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("model.bin");

    // One attempt only: the fetch gives up like a process killed mid-download.
    let err = download(&server.url, &dest, Some(&sha(&body)), 1, &quiet()).unwrap_err();
    assert!(matches!(err, FetchError::Network { .. }), "{err}");
    assert!(err.to_string().contains("resumes where it stopped"), "the error says what to do: {err}");
    assert_eq!(std::fs::metadata(partial_path(&dest)).unwrap().len(), cut as u64, "the bytes so far are kept");
    assert!(!dest.exists(), "an incomplete file is never installed");

    let got = download(&server.url, &dest, Some(&sha(&body)), 1, &quiet()).unwrap();
    assert_eq!(got.resumed_from, cut as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
}

#[test]
fn a_checksum_mismatch_is_a_clear_error_and_nothing_is_kept() {
    let body = body();
    let mut changed = body.clone();
    changed[12345] ^= 0x40;
    let server = serve(body.clone(), Behaviour { body_override: Some(changed.clone()), ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("model.bin");

    let err = download(&server.url, &dest, Some(&sha(&body)), 3, &quiet()).unwrap_err();

    match &err {
        FetchError::ChecksumMismatch { expected, actual, .. } => {
            assert_eq!(expected, &sha(&body));
            assert_eq!(actual, &sha(&changed));
        }
        other => panic!("expected a checksum mismatch, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains("not kept") && message.contains("Fix:"), "{message}");
    assert!(!dest.exists() && !partial_path(&dest).exists(), "neither the file nor the partial download is kept");
    assert_eq!(server.ranges.lock().unwrap().len(), 1, "a mismatch is not retried as a network error");
}

#[test]
fn a_server_digest_is_checked_and_kept_beside_the_file_for_later_verification() {
    let body = body();
    let server = serve(body.clone(), Behaviour { digest_header: Some(("X-Linked-Etag", sha(&body))), ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("model.bin");

    download(&server.url, &dest, None, 1, &quiet()).unwrap();
    assert_eq!(std::fs::read_to_string(roxy::models::verify::sidecar_path(&dest)).unwrap().trim(), sha(&body));

    // A server that names a digest the body does not have is caught the same way.
    let liar = serve(body.clone(), Behaviour { digest_header: Some(("ETag", sha(b"something else"))), ..Default::default() });
    let other = dir.path().join("other.bin");
    let err = download(&liar.url, &other, None, 1, &quiet()).unwrap_err();
    assert!(matches!(err, FetchError::ChecksumMismatch { .. }), "{err}");
    assert!(!other.exists());
}

#[test]
fn a_file_without_any_digest_is_refused() {
    let server = serve(body(), Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("model.bin");
    let err = download(&server.url, &dest, None, 1, &quiet()).unwrap_err();
    assert!(matches!(err, FetchError::NoChecksum { .. }), "{err}");
    assert!(err.to_string().contains("pin `sha256`"), "{err}");
    assert!(!dest.exists());
}

// ---- the CLI on a manifest whose hub-style tier points at the local server ----

fn roxy(root: &Path, manifest: Option<&Path>, models: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roxy"));
    cmd.args(args)
        .env("ROXY_CONFIG", root.join("config.toml"))
        .env("ROXY_DATA_DIR", root.join("data"))
        .env("ROXY_CACHE_DIR", root.join("cache"))
        .env("ROXY_MODELS_DIR", models)
        .env_remove("ROXY_LOG")
        .env_remove("ROXY_PRESET");
    match manifest {
        Some(m) => cmd.env("ROXY_MANIFEST", m),
        None => cmd.env_remove("ROXY_MANIFEST"),
    };
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn flip_a_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn the_cli_fetches_a_hub_tier_idempotently_and_reports_a_flipped_byte() {
    let body = body();
    let server = serve(body.clone(), Behaviour { cut_first_after: Some(700_000), ..Default::default() });
    let root = tempfile::tempdir().unwrap();
    let models = root.path().join("models");
    let manifest = root.path().join("manifest.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"version = 1
[[model]]
id = "test-llm"
role = "llm"
tiers = ["hub"]
license = "MIT"
description = "served by the test"
[[model.file]]
path = "llm/model.bin"
size = {}
sha256 = "{}"
source = {{ url = "{}" }}
"#,
            body.len(),
            sha(&body),
            server.url
        ),
    )
    .unwrap();
    Manifest::load(&manifest).expect("the test manifest parses");

    let out = roxy(root.path(), Some(&manifest), &models, &["models", "fetch", "--tier", "hub", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let fetched: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(fetched[0]["action"], "installed");
    assert_eq!(std::fs::read(models.join("llm/model.bin")).unwrap(), body);
    assert_eq!(server.ranges.lock().unwrap().len(), 2, "cut once, resumed once");

    let out = roxy(root.path(), Some(&manifest), &models, &["models", "fetch", "--tier", "hub", "--json"]);
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again[0]["action"], "already_installed");
    assert_eq!(server.ranges.lock().unwrap().len(), 2, "an intact file is not downloaded again");

    flip_a_byte(&models.join("llm/model.bin"), 4242);
    let out = roxy(root.path(), Some(&manifest), &models, &["models", "verify", "--tier", "hub"]);
    assert!(!out.status.success(), "verify fails on a damaged file");
    let said = text(&out);
    assert!(said.contains("CORRUPT") && said.contains("Fix: roxy models fetch --tier hub"), "{said}");

    let out = roxy(root.path(), Some(&manifest), &models, &["models", "fetch", "--tier", "hub", "--json"]);
    let repaired: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(repaired[0]["action"], "replaced");
    assert_eq!(std::fs::read(models.join("llm/model.bin")).unwrap(), body);
}

/// A manifest with one hub-style model, `test-llm` in tier `hub`, served from `url`.
fn hub_manifest(path: &Path, body: &[u8], url: &str) -> Manifest {
    std::fs::write(
        path,
        format!(
            "version = 1\n[[model]]\nid = \"test-llm\"\nrole = \"llm\"\ntiers = [\"hub\"]\nlicense = \"MIT\"\ndescription = \"served by the test\"\n\
             [[model.file]]\npath = \"llm/model.bin\"\nsize = {}\nsha256 = \"{}\"\nsource = {{ url = \"{url}\" }}\n",
            body.len(),
            sha(body)
        ),
    )
    .unwrap();
    Manifest::load(path).unwrap()
}

/// Asserts the byte counts of the `Downloading` events never go back.
fn assert_monotonic(events: &[FetchProgress]) {
    let bytes: Vec<u64> = events.iter().filter(|e| e.phase == FetchPhase::Downloading).map(|e| e.bytes).collect();
    assert!(bytes.windows(2).all(|w| w[0] <= w[1]), "progress went backwards: {bytes:?}");
}

#[test]
fn a_fetch_reports_progress_and_a_cancelled_one_keeps_its_bytes_and_resumes_later() {
    let body = body();
    // 3 MiB in 64 KiB chunks 15 ms apart: about 0.7 s, slow enough to cancel in the middle.
    let server = serve(body.clone(), Behaviour { slow: Some((64 * 1024, Duration::from_millis(15))), ..Default::default() });
    let root = tempfile::tempdir().unwrap();
    let models = root.path().join("models");
    let manifest = hub_manifest(&root.path().join("manifest.toml"), &body, &server.url);
    let dest = models.join("llm/model.bin");

    let events = Arc::new(Mutex::new(Vec::<FetchProgress>::new()));
    let cancel = Arc::new(AtomicBool::new(false));
    let cancel_at = Arc::new(Mutex::new(None::<Instant>));
    let armed = Arc::new(AtomicBool::new(true)); // the user presses Cancel once
    let mut opts = FetchOptions::new("hub");
    opts.progress = false;
    opts.attempts = 1;
    opts.cancel = Some(cancel.clone());
    opts.on_progress = Some(OnProgress(Arc::new({
        let (events, cancel, cancel_at, armed) = (events.clone(), cancel.clone(), cancel_at.clone(), armed.clone());
        move |p: FetchProgress| {
            // The user presses Cancel once a third has arrived.
            if p.phase == FetchPhase::Downloading && p.bytes >= 1_000_000 && armed.swap(false, Ordering::SeqCst) {
                *cancel_at.lock().unwrap() = Some(Instant::now());
                cancel.store(true, Ordering::SeqCst);
            }
            events.lock().unwrap().push(p);
        }
    })));

    let err = fetch_tier(&manifest, &models, &root.path().join("cache"), &opts).unwrap_err();
    let stopped_after = cancel_at.lock().unwrap().expect("the cancel was pressed").elapsed();
    assert!(matches!(err, FetchError::Cancelled), "{err}");
    assert!(err.to_string().contains("resumes"), "the message says the download is kept: {err}");
    assert!(stopped_after < Duration::from_millis(500), "stopped promptly, not at the end: {stopped_after:?}");
    let kept = std::fs::metadata(partial_path(&dest)).expect("the partial file is kept").len();
    assert!(kept >= 1_000_000 && kept < body.len() as u64, "kept {kept} bytes");
    assert!(!dest.exists(), "a half file never sits under the final name");

    let seen = std::mem::take(&mut *events.lock().unwrap());
    assert_eq!(seen[0].phase, FetchPhase::Checking);
    let downloading: Vec<&FetchProgress> = seen.iter().filter(|e| e.phase == FetchPhase::Downloading).collect();
    assert!(downloading.len() >= 3, "several progress events: {seen:?}");
    assert!(downloading.iter().all(|e| e.model == "test-llm" && e.file == "llm/model.bin" && e.total == Some(body.len() as u64) && e.index == 1 && e.count == 1));
    assert_monotonic(&seen);
    assert!(!seen.iter().any(|e| e.phase == FetchPhase::Done), "a cancelled file is not done");

    // The next fetch asks for the rest only and installs a verified file.
    cancel.store(false, Ordering::SeqCst);
    let done = fetch_tier(&manifest, &models, &root.path().join("cache"), &opts).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert!(!partial_path(&dest).exists());
    assert_eq!(server.ranges.lock().unwrap().last().unwrap(), &Some(format!("bytes={kept}-")), "resumed, not restarted");
    let seen = std::mem::take(&mut *events.lock().unwrap());
    assert_monotonic(&seen);
    let first = seen.iter().find(|e| e.phase == FetchPhase::Downloading).unwrap();
    assert_eq!(first.bytes, kept, "progress starts from the kept bytes");
    let last = seen.last().unwrap();
    assert_eq!((last.phase, last.bytes, last.total), (FetchPhase::Done, body.len() as u64, Some(body.len() as u64)));

    // What the app emits: typed, tagged events.
    let json = |e: FetchEvent| serde_json::to_value(e).unwrap();
    let progress = json(FetchEvent::Progress(first.clone()));
    assert_eq!((progress["kind"].as_str(), progress["phase"].as_str(), progress["bytes"].as_u64()), (Some("progress"), Some("downloading"), Some(kept)));
    assert_eq!(json(FetchEvent::finished(Ok(done)))["files"][0]["action"], "installed");
    assert_eq!(json(FetchEvent::finished(Err(FetchError::Cancelled)))["kind"], "cancelled");
}

#[test]
fn a_fetch_of_chosen_models_names_an_unknown_one() {
    let body = body();
    let root = tempfile::tempdir().unwrap();
    let manifest = hub_manifest(&root.path().join("manifest.toml"), &body, "http://127.0.0.1:9/never");
    let mut opts = FetchOptions::new("hub");
    opts.progress = false;
    opts.models = vec!["nope".into()];
    let err = fetch_tier(&manifest, &root.path().join("models"), &root.path().join("cache"), &opts).unwrap_err();
    assert!(matches!(err, FetchError::UnknownModel { .. }) && err.to_string().contains("`nope`"), "{err}");
}

#[test]
fn an_unknown_tier_and_an_unreadable_manifest_are_named() {
    let root = tempfile::tempdir().unwrap();
    let models = root.path().join("models");
    let out = roxy(root.path(), None, &models, &["models", "fetch", "--tier", "64gb"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("unknown tier `64gb`") && text(&out).contains("default"), "{}", text(&out));

    let missing = root.path().join("nope.toml");
    let out = roxy(root.path(), Some(&missing), &models, &["models", "list"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("nope.toml") && text(&out).contains("ROXY_MANIFEST"), "{}", text(&out));
}

/// The installed default models: `$ROXY_MODELS_DIR`, else the repo's `.roxy/models` (what
/// `scripts/test` fills).
fn installed_models() -> PathBuf {
    let dir = std::env::var_os("ROXY_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".roxy/models"));
    assert!(dir.join("vad/silero_vad.onnx").is_file(), "default models missing in {}: run scripts/test (or roxy models fetch)", dir.display());
    dir
}

#[test]
fn doctor_and_verify_report_a_damaged_default_model_with_its_fix() {
    let source = installed_models();
    let root = tempfile::tempdir().unwrap();
    let models = root.path().join("models");
    std::fs::create_dir_all(models.join("vad")).unwrap();
    std::fs::copy(source.join("vad/silero_vad.onnx"), models.join("vad/silero_vad.onnx")).unwrap();

    let doctor = |models: &Path| {
        let out = roxy(root.path(), None, models, &["doctor", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        let vad = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "model:vad").cloned().unwrap();
        (out.status.success(), vad)
    };
    let (_, vad) = doctor(&models);
    assert_eq!(vad["level"], "ok", "{vad}");

    // The worker check pings the real roxy-llm (built beside roxy by `cargo build --workspace`).
    let out = roxy(root.path(), None, &models, &["doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let worker = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "llm-worker").cloned().unwrap();
    assert_eq!(worker["level"], "ok", "{worker}");
    assert!(worker["detail"].as_str().unwrap().contains(&format!("protocol v{}", roxy_protocol::PROTOCOL_VERSION)), "{worker}");

    flip_a_byte(&models.join("vad/silero_vad.onnx"), 100_000);
    let (ok, vad) = doctor(&models);
    assert!(!ok, "doctor exits non-zero when a model is damaged");
    assert_eq!(vad["level"], "error", "{vad}");
    let fix = vad["fix"].as_str().unwrap();
    assert!(fix.contains("roxy models fetch --tier default"), "{vad}");
    assert!(vad.to_string().contains("CORRUPT"), "{vad}");

    let out = roxy(root.path(), None, &models, &["models", "verify", "--json"]);
    assert!(!out.status.success());
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vad_file = reports.as_array().unwrap().iter().find(|r| r["role"] == "vad").unwrap();
    assert_eq!(vad_file["status"], "corrupt", "{vad_file}");
}

/// The Whisper conversion runs in Rust (no Python, no numpy on a Mac's first run) and makes the
/// very file the manifest pins; a cancelled one leaves nothing behind.
#[test]
fn the_whisper_conversion_in_rust_reproduces_the_pinned_ggml_file() {
    use roxy::models::convert::{convert_whisper_ct2, ConvertError};
    let source = installed_models().join("stt/whisper-tiny.en-ct2");
    assert!(source.join("model.bin").is_file(), "the CTranslate2 source is installed by the default tier: {}", source.display());
    let manifest = Manifest::builtin();
    let pinned = manifest.models.iter().find(|m| m.id == "whisper-tiny.en").unwrap().files[0].sha256.clone().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("ggml-tiny.en.bin");
    let started = Instant::now();
    let converted = convert_whisper_ct2(&source, &dest, None).unwrap();
    eprintln!("converted in {:.2} s: {converted:?}", started.elapsed().as_secs_f64());
    assert_eq!(sha(&std::fs::read(&dest).unwrap()), pinned, "byte for byte the file the manifest pins");
    assert_eq!(converted.bytes, std::fs::metadata(&dest).unwrap().len());

    let cancelled = AtomicBool::new(true);
    let again = out.path().join("again.bin");
    assert!(matches!(convert_whisper_ct2(&source, &again, Some(&cancelled)), Err(ConvertError::Cancelled)));
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1, "no partial file is left");

    // A truncated source is named, with the fix.
    let broken = out.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::copy(source.join("vocabulary.txt"), broken.join("vocabulary.txt")).unwrap();
    let bytes = std::fs::read(source.join("model.bin")).unwrap();
    std::fs::write(broken.join("model.bin"), &bytes[..bytes.len() / 2]).unwrap();
    let err = convert_whisper_ct2(&broken, &out.path().join("x.bin"), None).unwrap_err().to_string();
    assert!(err.contains("truncated") && err.contains("Fix:"), "{err}");
}

/// A package index on loopback: `/simple/<project>/` (PEP 691 JSON, or PEP 503 HTML when
/// `html`) and the files it links; every path asked for is recorded.
fn package_index(files: Vec<(String, Vec<u8>)>, html: bool) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            seen.lock().unwrap().push(path.clone());
            let (content_type, body): (&str, Vec<u8>) = if path.starts_with("/simple/") {
                if html {
                    let links: String = files.iter().map(|(name, bytes)| format!("<a href=\"../../files/{name}#sha256={}\">{name}</a><br/>\n", sha(bytes))).collect();
                    ("text/html", format!("<!DOCTYPE html><html><body>{links}</body></html>").into_bytes())
                } else {
                    let listed: Vec<serde_json::Value> = files.iter().map(|(name, bytes)| serde_json::json!({"filename": name, "url": format!("/files/{name}"), "hashes": {"sha256": sha(bytes)}})).collect();
                    ("application/vnd.pypi.simple.v1+json", serde_json::json!({"meta": {"api-version": "1.1"}, "files": listed}).to_string().into_bytes())
                }
            } else {
                let name = path.trim_start_matches("/files/");
                match files.iter().find(|(n, _)| n == name) {
                    Some((_, bytes)) => ("application/octet-stream", bytes.clone()),
                    None => {
                        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                        continue;
                    }
                }
            };
            let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(&body);
        }
    });
    (format!("{base}/simple"), asked)
}

fn wheel_with(member: &str, content: &[u8]) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut bytes);
    zip.start_file(member, zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(content).unwrap();
    zip.finish().unwrap();
    bytes.into_inner()
}

/// Registry wheels come straight from the package index, with no Python on the machine: the
/// wheel for the platform is picked, checked against the index's digest, cached, and a wheel
/// the index's digest does not match is refused.
#[test]
fn registry_wheels_are_fetched_from_the_index_without_python() {
    let model = b"an onnx model, or near enough".to_vec();
    let wheel = wheel_with("tiny_vad/data/vad.onnx", &model);
    let other_platform = wheel_with("tiny_vad/data/vad.onnx", b"the wrong build");
    for html in [false, true] {
        let files = vec![
            ("tiny_vad-1.0-cp311-cp311-macosx_14_0_arm64.whl".to_string(), other_platform.clone()),
            ("tiny_vad-1.0-cp311-cp311-manylinux_2_28_x86_64.whl".to_string(), wheel.clone()),
            ("tiny_vad-0.9-cp311-cp311-manylinux_2_28_x86_64.whl".to_string(), other_platform.clone()),
        ];
        let (index, asked) = package_index(files, html);
        let root = tempfile::tempdir().unwrap();
        let manifest_path = root.path().join("manifest.toml");
        std::fs::write(
            &manifest_path,
            format!(
                "version = 1\n[[model]]\nid = \"tiny-vad\"\nrole = \"vad\"\ntiers = [\"t\"]\nlicense = \"MIT\"\ndescription = \"test\"\n[[model.file]]\npath = \"vad/vad.onnx\"\nsize = {}\nsha256 = \"{}\"\nsource = {{ pypi = \"tiny-vad==1.0\", member = \"tiny_vad/data/vad.onnx\", wheel_platform = \"manylinux_2_28_x86_64\", python = \"3.11\" }}\n",
                model.len(),
                sha(&model)
            ),
        )
        .unwrap();
        let manifest = Manifest::load(&manifest_path).unwrap();
        let models = root.path().join("models");
        let cache = root.path().join("cache");
        let opts = FetchOptions { progress: false, index: index.clone(), ..FetchOptions::new("t") };
        fetch_tier(&manifest, &models, &cache, &opts).unwrap_or_else(|e| panic!("html={html}: {e}"));
        assert_eq!(std::fs::read(models.join("vad/vad.onnx")).unwrap(), model, "html={html}: the linux build, version 1.0");
        assert_eq!(asked.lock().unwrap().len(), 2, "one index page and one wheel: {:?}", asked.lock().unwrap());

        // Installed and cached: nothing is asked again; a lost model comes from the cached wheel.
        std::fs::remove_file(models.join("vad/vad.onnx")).unwrap();
        fetch_tier(&manifest, &models, &cache, &opts).unwrap();
        assert_eq!(asked.lock().unwrap().len(), 2, "the cached wheel was used");
    }

    // A release the index does not have is named; a download that does not match the digest is
    // refused and nothing is kept.
    let (index, _) = package_index(vec![("tiny_vad-1.0-py3-none-any.whl".into(), wheel.clone())], false);
    let err = roxy::models::pypi::find_wheel(&index, roxy::models::pypi::Wanted { requirement: "tiny-vad==2.0", platform: None, python: None }).unwrap_err().to_string();
    assert!(err.contains("no wheel of tiny-vad==2.0") && err.contains("Fix:"), "{err}");
    let found = roxy::models::pypi::find_wheel(&index, roxy::models::pypi::Wanted { requirement: "tiny-vad==1.0", platform: None, python: None }).unwrap();
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join(&found.filename);
    let bad = download(&found.url, &dest, Some(&"0".repeat(64)), 1, &quiet()).unwrap_err();
    assert!(matches!(bad, FetchError::ChecksumMismatch { .. }), "{bad}");
    assert!(!dest.exists());
}
