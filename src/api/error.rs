//! Every failure the API reports: a status and a JSON body in OpenAI's error shape, whose
//! message names the problem and the fix.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    /// OpenAI's `error.type`.
    pub kind: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429, or 503 when the voice loop took the model).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, kind, message: message.into(), retry_after_s: None }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }
    pub fn unauthorized(message: String) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
    }
    pub fn forbidden(message: String) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", message)
    }
    /// 421: the request was meant for some other host.
    pub fn misdirected(message: String) -> Self {
        Self::new(StatusCode::MISDIRECTED_REQUEST, "permission_error", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", message)
    }
    /// 429: the chat queue is full; retry after `retry_after_s`.
    pub fn busy(message: impl Into<String>, retry_after_s: u64) -> Self {
        ApiError { retry_after_s: Some(retry_after_s), ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message) }
    }
    /// 413: the body is over `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("the request body is over the {limit}-byte limit ({} MiB). Fix: send fewer or shorter messages", limit / (1024 * 1024)),
        )
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": { "message": self.message, "type": self.kind, "code": self.status.as_u16() } })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after_s {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
