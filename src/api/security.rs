//! Who may talk to the local API: only loopback Host names (a web page that rebinds its DNS name
//! to 127.0.0.1 still sends its own name), no browser origin but the local ones, and the bearer
//! token for anything that changes state or costs compute.

use super::error::ApiError;
use super::Api;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The token file inside the data dir.
pub const TOKEN_FILE_NAME: &str = "api_token";
/// Shorter tokens are not ours (a truncated or hand-edited file).
const MIN_TOKEN_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("could not read the API token {path}: {source}. Fix: check the data dir's permissions")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("could not create the API token {path}: {source}. Fix: check the data dir is writable")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the API token {path} is not a token (expected at least {MIN_TOKEN_LEN} letters or digits). Fix: delete it and a new one is made on the next start")]
    Invalid { path: PathBuf },
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

pub fn token_file(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKEN_FILE_NAME)
}

/// The API token, generated (256 random bits, hex) on first run and kept owner-only (0600).
pub fn load_or_create_token(data_dir: &Path) -> Result<String, TokenError> {
    let path = token_file(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim();
            if token.len() < MIN_TOKEN_LEN || !token.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(TokenError::Invalid { path });
            }
            restrict_permissions(&path);
            return Ok(token.to_string());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(TokenError::Read { path, source }),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    let token = hex::encode(bytes);
    let write_err = |source| TokenError::Write { path: path.clone(), source };
    crate::paths::ensure_private_dir(data_dir).map_err(write_err)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(token.as_bytes()).and_then(|()| file.write_all(b"\n")).map_err(write_err)?;
            Ok(token)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_token(data_dir),
        Err(source) => Err(TokenError::Write { path, source }),
    }
}

/// A token file readable by others is tightened rather than rejected.
fn restrict_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!("the API token {} was readable by others; setting it to 0600", path.display());
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// `localhost`, `127.0.0.1` or `[::1]`, each with an optional port.
pub fn is_loopback_authority(authority: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, port)) => (host == "::1", port),
            None => return false,
        }
    } else {
        let (host, port) = authority.find(':').map_or((authority, ""), |i| authority.split_at(i));
        (host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1", port)
    };
    let port_ok = port.is_empty() || port.strip_prefix(':').is_some_and(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// Origins of pages allowed to call the API: local ones (a dev server, the app's own webview).
pub fn is_local_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else { return false };
    matches!(scheme, "http" | "https" | "tauri") && !rest.contains('/') && is_loopback_authority(rest)
}

/// Host and Origin checks for every request; the bearer token for every non-GET one.
pub async fn guard(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    if let Err(e) = check(&api, request.method(), request.headers(), request.uri().authority().map(|a| a.as_str())) {
        return e.into_response();
    }
    next.run(request).await
}

fn check(api: &Api, method: &Method, headers: &HeaderMap, uri_authority: Option<&str>) -> Result<(), ApiError> {
    // HTTP/1.1 names the host in the Host header; an absolute-form request line names it in the URI.
    let host = headers.get(header::HOST).map(|h| h.to_str().unwrap_or("(not text)")).or(uri_authority);
    match host {
        Some(host) if is_loopback_authority(host) => {}
        Some(host) => {
            return Err(ApiError::misdirected(format!(
                "Host `{host}` is not this machine: the Roxy API answers only requests addressed to localhost, 127.0.0.1 or [::1] (this blocks DNS-rebinding attacks). Fix: use http://127.0.0.1:{}/",
                api.port_hint()
            )))
        }
        None => return Err(ApiError::misdirected("the request has no Host header. Fix: send `Host: 127.0.0.1`".into())),
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("(not text)");
        if !is_local_origin(origin) {
            return Err(ApiError::forbidden(format!(
                "requests from web pages at `{origin}` are not allowed: the Roxy API serves only local programs and local pages"
            )));
        }
    }
    if method != Method::GET && method != Method::HEAD {
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(token) if constant_time_eq(token.trim().as_bytes(), api.token.as_bytes()) => {}
            Some(_) => return Err(ApiError::unauthorized(format!("wrong API token. Fix: send the token from {} as `Authorization: Bearer <token>`", api.token_hint()))),
            None => {
                return Err(ApiError::unauthorized(format!(
                    "{method} requests need the API token. Fix: send the token from {} as `Authorization: Bearer <token>`",
                    api.token_hint()
                )))
            }
        }
    }
    Ok(())
}

/// Compares without stopping at the first difference, so timing does not leak the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_pass() {
        for ok in ["localhost", "localhost:8742", "LOCALHOST:1", "127.0.0.1", "127.0.0.1:8742", "[::1]", "[::1]:8742"] {
            assert!(is_loopback_authority(ok), "{ok}");
        }
        for bad in [
            "evil.com", "evil.com:8742", "localhost.evil.com", "127.0.0.1.nip.io", "127.0.0.2", "::1", "[::1", "[::2]:80",
            "localhost:", "localhost:abc", "localhost:8742:1", "", "0.0.0.0:8742", "user@localhost",
        ] {
            assert!(!is_loopback_authority(bad), "{bad}");
        }
    }

    #[test]
    fn only_local_origins_pass() {
        assert!(is_local_origin("http://localhost:5173"));
        assert!(is_local_origin("tauri://localhost"));
        assert!(is_local_origin("https://127.0.0.1"));
        for bad in ["null", "https://evil.com", "http://localhost.evil.com", "file://", "http://localhost/x", "ftp://localhost"] {
            assert!(!is_local_origin(bad), "{bad}");
        }
    }

    #[test]
    fn token_is_created_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let token = load_or_create_token(dir.path()).unwrap();
        assert_eq!(token.len(), 64);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(token_file(dir.path())).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(load_or_create_token(dir.path()).unwrap(), token);
        assert_ne!(load_or_create_token(tempfile::tempdir().unwrap().path()).unwrap(), token);

        std::fs::write(token_file(dir.path()), "short\n").unwrap();
        let err = load_or_create_token(dir.path()).unwrap_err().to_string();
        assert!(err.contains("api_token") && err.contains("Fix: delete it"), "{err}");
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
