//! Roxy's memory: one SQLite file in the data dir holding the conversation history (with full-text
//! search), long-term facts and the response cache.
//!
//! - [`Store`]: the database: WAL, versioned migrations, one writer and pooled readers, every
//!   write in a transaction, corrupt files kept aside.
//! - [`Session`]: the current conversation, bounded by the preset, served from memory.
//! - [`History`]: every turn, searchable with FTS5 and filters by date; export and clear.
//! - [`Facts`]: remember / recall / forget, duplicates merged; by meaning with an [`Embedder`].
//! - [`ResponseCache`]: content-addressed (SHA-256) answers with a TTL per kind and hit counters.
//! - [`Memory`]: all of it as the brain uses it per turn (`context_for`, `record_turn`).

mod api;
mod bench;
mod cache;
mod context;
mod embed;
mod facts;
mod fts;
mod history;
mod migrations;
mod session;
mod store;
mod vectors;

pub use api::{Memory, CLOUD_FACTS, RECALLED_FACTS};
pub use bench::{render as render_bench, run as bench, BenchReport, BenchRow};
pub use context::chat_context;
pub use embed::{CachedEmbedder, Embedder, MiniLm};
pub use cache::{CacheKind, CacheRequest, CacheStats, KindStats, ResponseCache};
pub use facts::{Fact, Facts, Remembered};
pub use history::{embed_text, History, SearchFilter, SearchHit, Turn, TurnRecord};
pub use migrations::LATEST_VERSION;
pub use session::Session;
pub use store::{health, Health, Opened, Store, DB_FILE_NAME};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("cannot create the data directory {}: {source}. Fix: make it writable, or set ROXY_DATA_DIR to a writable directory", .path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("memory database {} is corrupt or not a Roxy database ({reason}). Fix: quit Roxy and move it aside (`mv '{0}' '{0}.bad'`); a fresh store is created next time and the moved file keeps the old data", .path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("memory database {} has schema version {found}, newer than this Roxy understands ({supported}). Fix: update Roxy, or set ROXY_DATA_DIR to use another data dir", .path.display())]
    TooNew { path: PathBuf, found: i64, supported: i64 },
    #[error("memory database {} stayed locked by another process for {secs} s. Fix: quit the other Roxy process using it", .path.display())]
    Busy { path: PathBuf, secs: u64 },
    #[error("memory database {}: {source}", .path.display())]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("cannot move the unreadable database {} aside to {}: {source}. Fix: move or delete it by hand", .path.display(), .to.display())]
    MoveAside { path: PathBuf, to: PathBuf, source: std::io::Error },
    #[error("cannot write {}: {source}", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
    /// The sentence embedder could not load or run; recall by words still works.
    #[error("{0}")]
    Embedder(String),
}

/// Everything the user has told Roxy, as `roxy memory export` writes it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Export {
    pub schema_version: i64,
    pub exported_at_ms: i64,
    pub turns: Vec<Turn>,
    pub facts: Vec<Fact>,
}

/// Writes every turn and fact to `path` as JSON (via a temporary file, so a failed export never
/// leaves half a file under the final name). Returns the counts.
pub fn export_json(store: &Store, path: &std::path::Path) -> Result<(usize, usize), MemoryError> {
    let export = Export {
        schema_version: store.schema_version()?,
        exported_at_ms: now_ms(),
        turns: store.history().all()?,
        facts: store.facts().list()?,
    };
    let counts = (export.turns.len(), export.facts.len());
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let write = |p: &std::path::Path| -> std::io::Result<()> {
        let file = std::io::BufWriter::new(std::fs::File::create(p)?);
        serde_json::to_writer_pretty(file, &export).map_err(std::io::Error::other)
    };
    write(&tmp).and_then(|_| std::fs::rename(&tmp, path)).map_err(|source| MemoryError::Write { path: path.into(), source })?;
    Ok(counts)
}

/// Milliseconds since the Unix epoch: the unit of every timestamp in the database.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
