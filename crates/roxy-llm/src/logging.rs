//! Logs go to stderr only: stdout carries the protocol. llama.cpp's own log lines are routed
//! through `tracing` too, and its recent errors are kept so a failed load can say why.

use std::collections::VecDeque;
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// The filter when `ROXY_LLM_LOG` is unset. llama.cpp (target `llama-cpp-2`) is chatty at info
/// level; `llama_cpp_2::log` warns about llama.cpp's progress dots, which is noise.
const DEFAULT_FILTER: &str = "warn,roxy_llm=info,llama_cpp_2::log=error";
const KEPT_ERRORS: usize = 4;

static RECENT_ERRORS: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

pub fn init() {
    let filter = EnvFilter::try_from_env("ROXY_LLM_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::registry()
        .with(ErrorRecorder.with_filter(LevelFilter::ERROR))
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false).with_filter(filter))
        .try_init();
    llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
}

/// Forgets recorded errors; call before an operation whose failure you want to explain.
pub fn clear_recent_errors() {
    lock().clear();
}

/// Error messages logged since [`clear_recent_errors`], oldest first, joined by "; ".
pub fn recent_errors() -> Option<String> {
    let errors = lock();
    (!errors.is_empty()).then(|| errors.iter().cloned().collect::<Vec<_>>().join("; "))
}

fn lock() -> std::sync::MutexGuard<'static, VecDeque<String>> {
    RECENT_ERRORS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records ERROR events whatever the log filter says.
struct ErrorRecorder;

impl<S: Subscriber> Layer<S> for ErrorRecorder {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() != Level::ERROR {
            return;
        }
        let mut message = MessageText(String::new());
        event.record(&mut message);
        let text = message.0.trim().to_owned();
        if text.is_empty() {
            return;
        }
        let mut errors = lock();
        if errors.len() == KEPT_ERRORS {
            errors.pop_front();
        }
        errors.push_back(text);
    }
}

struct MessageText(String);

impl Visit for MessageText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_owned();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
