//! `tracing` setup: a filter from `ROXY_LOG` (e.g. `info`, `roxy=debug,ort=warn`), to stderr and
//! to a daily-rotated file in the logs dir (the last 7 kept).

use std::path::Path;
use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};

/// Keep it alive for the life of the process: dropping it flushes the file writer.
pub struct LogGuard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_env("ROXY_LOG").unwrap_or_else(|_| EnvFilter::new(default))
}

/// Installs the global subscriber: stderr at `stderr_default` (unless `ROXY_LOG` says otherwise),
/// the log file at `info`. A logs dir that cannot be created degrades to stderr only.
pub fn init(logs_dir: &Path, stderr_default: &str) -> LogGuard {
    let stderr_layer = fmt::layer().with_writer(std::io::stderr).with_target(false).with_filter(filter(stderr_default));
    let appender = std::fs::create_dir_all(logs_dir).ok().and_then(|_| {
        tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix("roxy")
            .filename_suffix("log")
            .max_log_files(7)
            .build(logs_dir)
            .ok()
    });
    let Some(appender) = appender else {
        let _ = tracing_subscriber::registry().with(stderr_layer).try_init();
        return LogGuard(None);
    };
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let file_layer = fmt::layer().with_writer(writer).with_ansi(false).with_filter(filter("info"));
    let _ = tracing_subscriber::registry().with(stderr_layer).with(file_layer).try_init();
    LogGuard(Some(guard))
}
