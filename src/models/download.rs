//! Resumable HTTP downloads with checksum verification: what a Mac user's model fetch uses.
//!
//! Bytes go to `DEST.partial`; a cut connection leaves it there and the next attempt asks for the
//! rest with a `Range` header. Only a file whose SHA-256 matches is moved into place; a mismatch
//! deletes the partial file so a bad download is never kept.

use super::verify::{sha256_file, sidecar_path};
use super::FetchError;
use indicatif::ProgressBar;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub sha256: String,
    pub bytes: u64,
    /// Bytes that were already on disk from an earlier, interrupted attempt.
    pub resumed_from: u64,
}

pub fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

/// Who watches a download: the terminal bar, an optional byte callback `(done, total)`, and an
/// optional cancel flag checked between chunks.
pub struct Watch<'a> {
    pub bar: &'a ProgressBar,
    pub on_bytes: Option<&'a dyn Fn(u64, Option<u64>)>,
    pub cancel: Option<&'a AtomicBool>,
}

impl<'a> Watch<'a> {
    pub fn bar(bar: &'a ProgressBar) -> Self {
        Watch { bar, on_bytes: None, cancel: None }
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }

    fn position(&self, done: u64, total: Option<u64>) {
        self.bar.set_position(done);
        if let Some(f) = self.on_bytes {
            f(done, total);
        }
    }
}

/// The HTTP client model fetches use: Roxy's user agent, a connect timeout, and `timeout` for
/// a whole request (`None` for downloads, which may take long).
pub(super) fn http_client(timeout: Option<Duration>) -> reqwest::Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .timeout(timeout)
        .user_agent(concat!("roxy/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Downloads `url` to `dest`, resuming a partial file, retrying up to `attempts` times on
/// network errors. Without `expected_sha256`, the server must send the file's SHA-256
/// (`X-Linked-Etag` or `ETag`, as Hugging Face does); it is then kept in a sidecar file.
pub fn download(
    url: &str,
    dest: &Path,
    expected_sha256: Option<&str>,
    attempts: u32,
    progress: &ProgressBar,
) -> Result<Downloaded, FetchError> {
    download_watched(url, dest, expected_sha256, attempts, &Watch::bar(progress))
}

/// [`download`] reporting bytes to `watch` and stopping with [`FetchError::Cancelled`] within
/// one chunk of its cancel flag being set; the `.partial` file is kept so the next call resumes.
pub fn download_watched(
    url: &str,
    dest: &Path,
    expected_sha256: Option<&str>,
    attempts: u32,
    watch: &Watch,
) -> Result<Downloaded, FetchError> {
    let client = http_client(None).map_err(|e| FetchError::Network { url: url.into(), message: e.to_string() })?;
    let mut last_error = None;
    for attempt in 1..=attempts.max(1) {
        if watch.cancelled() {
            return Err(FetchError::Cancelled);
        }
        match download_once(&client, url, dest, expected_sha256, watch) {
            Err(e @ FetchError::Network { .. }) => {
                tracing::warn!(attempt, error = %e, "download interrupted; will resume");
                last_error = Some(e);
                if attempt < attempts {
                    std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
                }
            }
            other => return other,
        }
    }
    Err(last_error.expect("at least one attempt ran"))
}

fn download_once(
    client: &reqwest::blocking::Client,
    url: &str,
    dest: &Path,
    expected_sha256: Option<&str>,
    watch: &Watch,
) -> Result<Downloaded, FetchError> {
    let net = |message: String| FetchError::Network { url: url.into(), message };
    let io = |path: &Path, e: std::io::Error| FetchError::Io { path: path.into(), source: e };
    let partial = partial_path(dest);
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    let mut offset = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);

    let mut request = client.get(url);
    if offset > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={offset}-"));
    }
    let mut response = request.send().map_err(|e| net(e.to_string()))?;
    let status = response.status();
    let resumed_from = match status.as_u16() {
        206 => offset,
        200 => {
            offset = 0; // the server ignored the range: start over
            0
        }
        // The partial file already holds everything.
        416 if offset > 0 => offset,
        _ => return Err(FetchError::Http { url: url.into(), status: status.as_u16() }),
    };
    let server_sha = header_sha256(response.headers());
    let expected = match (expected_sha256, server_sha.as_deref()) {
        (Some(pinned), _) => pinned.to_lowercase(),
        (None, Some(server)) => server.to_string(),
        (None, None) => return Err(FetchError::NoChecksum { url: url.into() }),
    };

    if status.as_u16() != 416 {
        let total = response.content_length().map(|len| len + offset);
        watch.bar.set_length(total.unwrap_or(0));
        let mut done = offset;
        watch.position(done, total);
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(offset > 0)
            .truncate(offset == 0)
            .open(&partial)
            .map_err(|e| io(&partial, e))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            if watch.cancelled() {
                // Keep what arrived: the next download resumes from it.
                file.sync_all().map_err(|e| io(&partial, e))?;
                return Err(FetchError::Cancelled);
            }
            let n = response.read(&mut buf).map_err(|e| net(format!("connection lost after {done} bytes: {e}")))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(|e| io(&partial, e))?;
            done += n as u64;
            watch.position(done, total);
        }
        file.sync_all().map_err(|e| io(&partial, e))?;
        if let Some(total) = total {
            if done < total {
                return Err(net(format!("connection closed at {done} of {total} bytes")));
            }
        }
    }

    let actual = sha256_file(&partial).map_err(|e| io(&partial, e))?;
    let bytes = std::fs::metadata(&partial).map_err(|e| io(&partial, e))?.len();
    if actual != expected {
        let _ = std::fs::remove_file(&partial);
        return Err(FetchError::ChecksumMismatch { what: url.into(), expected, actual });
    }
    std::fs::rename(&partial, dest).map_err(|e| io(dest, e))?;
    if expected_sha256.is_none() {
        let sidecar = sidecar_path(dest);
        std::fs::write(&sidecar, format!("{actual}\n")).map_err(|e| io(&sidecar, e))?;
    }
    Ok(Downloaded { sha256: actual, bytes, resumed_from })
}

/// A SHA-256 the server states for the body (Hugging Face: `X-Linked-Etag` for LFS files).
fn header_sha256(headers: &reqwest::header::HeaderMap) -> Option<String> {
    ["x-linked-etag", "etag"].iter().find_map(|name| {
        let value = headers.get(*name)?.to_str().ok()?;
        let value = value.trim_start_matches("W/").trim_matches('"').to_lowercase();
        (value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())).then_some(value)
    })
}
