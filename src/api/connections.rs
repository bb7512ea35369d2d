//! The accept loop: HTTP/1.1 connections with a cap, a timer on every request head (slow or
//! idle clients are closed, keep-alive included), and a shutdown that waits a bounded time for
//! requests in flight. axum's own `serve` has none of these bounds.

use super::telemetry::Telemetry;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// What one client can cost the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Open connections at once; more wait to be accepted, so a flood of idle sockets cannot
    /// use up the process's descriptors (256 by default on macOS).
    pub max_connections: usize,
    /// A request head (and the wait for the next one on a kept-alive connection) must arrive
    /// within this.
    pub header_timeout: Duration,
    /// A request body must arrive within this.
    pub body_timeout: Duration,
    /// The largest request body.
    pub max_body_bytes: usize,
    /// Chats waiting for a slot beyond this are refused with 429 and Retry-After.
    pub max_queued_chats: usize,
    /// A chat completion is cut off (finish_reason `length`) after this long.
    pub chat_deadline: Duration,
    /// How long shutdown waits for requests in flight before closing them.
    pub shutdown_grace: Duration,
}

impl Limits {
    pub fn from_config(api: &crate::config::ApiConfig) -> Limits {
        Limits {
            max_connections: api.max_connections as usize,
            header_timeout: Duration::from_secs(api.header_timeout_secs.into()),
            body_timeout: Duration::from_secs(30),
            max_body_bytes: 2 * 1024 * 1024,
            max_queued_chats: api.queue_limit as usize,
            chat_deadline: Duration::from_secs(api.chat_timeout_secs.into()),
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&crate::config::ApiConfig::default())
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight
/// finish for at most `limits.shutdown_grace`.
pub async fn serve(listener: tokio::net::TcpListener, router: Router, limits: Limits, telemetry: &Telemetry, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        // At the cap, new clients wait in the kernel's backlog (no descriptor spent) until an
        // open connection ends; the header timer ends idle ones.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the connection semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE) or a connection reset before accept: wait a
                // little instead of spinning on the error.
                tracing::debug!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        let open = telemetry.connections.clone();
        open.inc();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::trace!("connection ended: {e}");
            }
            open.dec();
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("API shutdown: requests still open after {:?} were closed", limits.shutdown_grace);
    }
}
