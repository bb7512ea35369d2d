//! The database file: opening, pragmas, migrations, one writer and a pool of readers.
//!
//! WAL with `synchronous=NORMAL`: a killed process never loses a committed transaction (the WAL
//! is in the file system before COMMIT returns); a power cut may lose the last few, never
//! corrupt the file. Readers never block the writer and vice versa.

use super::migrations::{self, LATEST_VERSION};
use super::vectors::VectorIndex;
use super::MemoryError;
use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::Duration;

pub const DB_FILE_NAME: &str = "memory.sqlite3";

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Address space (not memory) mapped per connection for reads.
const MMAP_BYTES: u64 = 256 * 1024 * 1024;
/// Idle reader connections kept open; more are opened on demand and closed after use.
const MAX_IDLE_READERS: usize = 4;

pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// The facts' vectors, loaded on the first recall by meaning and kept in step with our own
    /// writes; reloaded when another process has written (see [`Store::fact_index`]).
    fact_vectors: RwLock<Option<FactVectors>>,
}

pub(crate) struct FactVectors {
    pub(crate) index: VectorIndex,
    /// The writer's `PRAGMA data_version` when loaded: it changes only when another connection
    /// (another process, or another `Store` on the same file) commits.
    data_version: i64,
}

/// What [`Store::open_or_recover`] did.
pub struct Opened {
    pub store: Store,
    /// Where an unreadable file was moved to before a fresh store was created.
    pub moved_aside: Option<PathBuf>,
    /// The schema version found on disk (0 = new file).
    pub migrated_from: i64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic inside a closure drops its transaction (rolled back), so the connection is sound.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Store {
    /// Opens (creating if needed) `<data_dir>/memory.sqlite3`.
    pub fn open_in(data_dir: &Path) -> Result<Store, MemoryError> {
        Self::open(&data_dir.join(DB_FILE_NAME))
    }

    /// Opens or creates the database at `path` and migrates it to the latest schema.
    /// A corrupt or foreign file is an error; the file is left untouched.
    pub fn open(path: &Path) -> Result<Store, MemoryError> {
        Self::open_reporting(path).map(|(store, _)| store)
    }

    fn open_reporting(path: &Path) -> Result<(Store, i64), MemoryError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::paths::ensure_private_dir(dir).map_err(|source| MemoryError::CreateDir { path: dir.into(), source })?;
        }
        let err = |e| classify(path, e);
        let mut writer = connect(path).map_err(err)?;
        // SQLite gives the -wal and -shm files the database's mode: owner-only for all three.
        for suffix in ["", "-wal", "-shm"] {
            let _ = crate::paths::restrict_file(Path::new(&format!("{}{suffix}", path.display())));
        }
        let mode: String = retry_busy(|| writer.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))).map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(MemoryError::Invalid(format!(
                "memory database {}: the file system refused WAL mode (got `{mode}`). Fix: keep the data dir on a local disk (set ROXY_DATA_DIR)",
                path.display()
            )));
        }
        writer.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;

        let found = migrations::version(&writer).map_err(err)?;
        if found > LATEST_VERSION {
            return Err(MemoryError::TooNew { path: path.into(), found, supported: LATEST_VERSION });
        }
        if found == 0 {
            let tables: i64 = writer.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(err)?;
            if tables > 0 {
                return Err(MemoryError::Corrupt {
                    path: path.into(),
                    reason: format!("a SQLite database with {tables} schema objects of another program"),
                });
            }
        }
        migrations::migrate_to(&mut writer, LATEST_VERSION).map_err(err)?;
        Ok((Store { path: path.into(), writer: Mutex::new(writer), readers: Mutex::new(Vec::new()), fact_vectors: RwLock::new(None) }, found))
    }

    /// Like [`Store::open`], but a corrupt or foreign file is renamed to
    /// `<name>.corrupt-<unix time>` (with its `-wal`/`-shm`) and a fresh store is created.
    /// Nothing is ever deleted.
    pub fn open_or_recover(path: &Path) -> Result<Opened, MemoryError> {
        match Self::open_reporting(path) {
            Ok((store, migrated_from)) => Ok(Opened { store, moved_aside: None, migrated_from }),
            Err(MemoryError::Corrupt { reason, .. }) => {
                let stamp = super::now_ms() / 1000;
                let aside = PathBuf::from(format!("{}.corrupt-{stamp}", path.display()));
                for suffix in ["", "-wal", "-shm"] {
                    let from = PathBuf::from(format!("{}{suffix}", path.display()));
                    let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                    if from.exists() {
                        std::fs::rename(&from, &to).map_err(|source| MemoryError::MoveAside { path: from.clone(), to, source })?;
                    }
                }
                tracing::warn!(path = %path.display(), kept = %aside.display(), %reason, "unreadable memory database moved aside; starting a fresh one");
                let (store, _) = Self::open_reporting(path)?;
                Ok(Opened { store, moved_aside: Some(aside), migrated_from: 0 })
            }
            Err(e) => Err(e),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn schema_version(&self) -> Result<i64, MemoryError> {
        self.read(migrations::version)
    }

    /// Runs `f` on a pooled read-only connection.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, MemoryError> {
        let conn = match lock(&self.readers).pop() {
            Some(conn) => conn,
            None => connect(&self.path).and_then(|c| c.pragma_update(None, "query_only", true).map(|_| c)).map_err(|e| self.err(e))?,
        };
        let result = f(&conn).map_err(|e| self.err(e));
        let mut idle = lock(&self.readers);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }

    /// Runs `f` in one IMMEDIATE transaction on the writer and commits it; an error rolls back.
    /// When this returns Ok the data is committed and survives the process being killed.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction) -> rusqlite::Result<T>) -> Result<T, MemoryError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
        let value = f(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(value)
    }

    /// Like [`Store::write`], then `then` updates the in-memory fact vectors (when loaded) while
    /// the writer is still held, so updates apply in commit order.
    pub(crate) fn write_then<T>(
        &self,
        f: impl FnOnce(&Transaction) -> rusqlite::Result<T>,
        then: impl FnOnce(&T, &mut VectorIndex),
    ) -> Result<T, MemoryError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
        let value = f(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        if let Some(loaded) = self.fact_vectors.write().unwrap_or_else(|p| p.into_inner()).as_mut() {
            then(&value, &mut loaded.index);
        }
        Ok(value)
    }

    /// Runs `f` on the facts' vectors, loading them first if needed or if another connection
    /// has written since they were loaded.
    pub(crate) fn fact_index<T>(&self, f: impl FnOnce(&VectorIndex) -> T) -> Result<T, MemoryError> {
        let version = {
            let conn = lock(&self.writer);
            conn.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0)).map_err(|e| self.err(e))?
        };
        {
            let loaded = self.fact_vectors.read().unwrap_or_else(|p| p.into_inner());
            if let Some(v) = loaded.as_ref().filter(|v| v.data_version == version) {
                return Ok(f(&v.index));
            }
        }
        let mut slot = self.fact_vectors.write().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_none_or(|v| v.data_version != version) {
            // Read after taking `version`: the snapshot holds at least what that version saw.
            let index = self.read(|c| {
                let mut stmt = c.prepare("SELECT id, embedding FROM facts WHERE embedding IS NOT NULL ORDER BY id")?;
                let mut rows = stmt.query([])?;
                let mut index = VectorIndex::default();
                while let Some(r) = rows.next()? {
                    index.upsert(r.get(0)?, &super::embed::from_blob(r.get_ref(1)?.as_blob()?));
                }
                Ok(index)
            })?;
            *slot = Some(FactVectors { index, data_version: version });
        }
        Ok(f(&slot.as_ref().expect("just loaded").index))
    }

    /// `PRAGMA integrity_check`: an empty list means the file is sound.
    pub fn integrity_check(&self) -> Result<Vec<String>, MemoryError> {
        let rows = self.read(|c| {
            let mut stmt = c.prepare("PRAGMA integrity_check")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>();
            rows
        })?;
        Ok(rows.into_iter().filter(|r| r != "ok").collect())
    }

    /// Bytes used by the database and its WAL.
    pub fn disk_bytes(&self) -> u64 {
        ["", "-wal"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{}{s}", self.path.display())).ok())
            .map(|m| m.len())
            .sum()
    }

    fn err(&self, e: rusqlite::Error) -> MemoryError {
        classify(&self.path, e)
    }
}

/// What `roxy doctor` reports about the database, read without changing it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    pub path: PathBuf,
    /// False: not created yet (it is on first use).
    pub exists: bool,
    /// The file and its WAL.
    pub bytes: u64,
    pub schema_version: i64,
    pub turns: u64,
    pub facts: u64,
    pub cache_entries: u64,
    /// `PRAGMA quick_check` findings; empty = sound.
    pub problems: Vec<String>,
}

/// Checks the database at `path` without migrating, creating or moving anything: opens it,
/// reads the schema version, runs `PRAGMA quick_check` and counts rows. A file that is not a
/// Roxy database is [`MemoryError::Corrupt`]; a newer schema [`MemoryError::TooNew`].
pub fn health(path: &Path) -> Result<Health, MemoryError> {
    let mut health = Health { path: path.into(), exists: path.exists(), bytes: 0, schema_version: 0, turns: 0, facts: 0, cache_entries: 0, problems: Vec::new() };
    if !health.exists {
        return Ok(health);
    }
    health.bytes = ["", "-wal"].iter().filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok()).map(|m| m.len()).sum();
    let err = |e| classify(path, e);
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    conn.pragma_update(None, "query_only", true).map_err(err)?;
    health.schema_version = migrations::version(&conn).map_err(err)?;
    if health.schema_version > LATEST_VERSION {
        return Err(MemoryError::TooNew { path: path.into(), found: health.schema_version, supported: LATEST_VERSION });
    }
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(err)?;
    if health.schema_version == 0 && tables > 0 {
        return Err(MemoryError::Corrupt { path: path.into(), reason: format!("a SQLite database with {tables} schema objects of another program") });
    }
    let mut stmt = conn.prepare("PRAGMA quick_check").map_err(err)?;
    let found = stmt.query_map([], |r| r.get::<_, String>(0)).and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>()).map_err(err)?;
    health.problems = found.into_iter().filter(|r| r != "ok").collect();
    let count = |table: &str| conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get::<_, i64>(0)).map(|n| n as u64).map_err(err);
    if health.schema_version >= 1 && health.problems.is_empty() {
        health.turns = count("turns")?;
        health.facts = count("facts")?;
    }
    if health.schema_version >= 3 && health.problems.is_empty() {
        health.cache_entries = count("cache")?;
    }
    Ok(health)
}

/// Runs `f` again while SQLite answers "busy" at once, up to [`BUSY_TIMEOUT`]. Switching a new
/// file to WAL needs an exclusive lock, and when two processes open it at the same moment SQLite
/// fails one at once instead of calling its busy handler (waiting could deadlock).
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let started = std::time::Instant::now();
    loop {
        match f() {
            Err(e) if matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)) && started.elapsed() < BUSY_TIMEOUT => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Reads through the OS page cache instead of copying every page into each connection's own
    // small cache: the fact-vector scan reads ~8 MB per recall.
    conn.query_row(&format!("PRAGMA mmap_size = {MMAP_BYTES}"), [], |_| Ok(()))?;
    Ok(conn)
}

fn classify(path: &Path, e: rusqlite::Error) -> MemoryError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => MemoryError::Corrupt { path: path.into(), reason: e.to_string() },
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => MemoryError::Busy { path: path.into(), secs: BUSY_TIMEOUT.as_secs() },
        _ => MemoryError::Sqlite { path: path.into(), source: e },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_uses_wal_and_the_latest_schema() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
        let mode: String = store.read(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0))).unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = store.read(|c| c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))).unwrap();
        assert_eq!(fk, 1);
        assert!(store.integrity_check().unwrap().is_empty());
    }

    #[test]
    fn readers_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let err = store.read(|c| c.execute("INSERT INTO sessions(started_at) VALUES (1)", [])).unwrap_err();
        assert!(err.to_string().contains("readonly") || err.to_string().contains("read-only") || err.to_string().contains("query_only"), "{err}");
    }

    #[test]
    fn a_failed_write_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let result = store.write(|tx| {
            tx.execute("INSERT INTO sessions(started_at) VALUES (1)", [])?;
            tx.execute("INSERT INTO no_such_table VALUES (1)", [])
        });
        assert!(result.is_err());
        let n: i64 = store.read(|c| c.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))).unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn a_version_1_database_migrates_and_its_old_rows_become_searchable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE_NAME);
        {
            let mut old = Connection::open(&path).unwrap();
            migrations::migrate_to(&mut old, 1).unwrap();
            old.execute_batch(
                "INSERT INTO sessions(id, started_at) VALUES (1, 0);
                 INSERT INTO turns(session_id, at, user_text, reply_text) VALUES (1, 5, 'remind me to water the ferns', 'Done.');
                 INSERT INTO facts(text, norm, created_at, updated_at) VALUES ('Ferns need rain water', 'ferns need rain water', 0, 0);",
            )
            .unwrap();
        }
        let opened = Store::open_or_recover(&path).unwrap();
        assert_eq!((opened.migrated_from, opened.moved_aside.is_none()), (1, true));
        let store = opened.store;
        assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
        let hits = store.history().search("ferns", &Default::default()).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(store.facts().recall("what do ferns need", 5).unwrap().len(), 1);
    }

    #[test]
    fn health_reads_counts_and_an_old_schema_without_changing_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE_NAME);
        assert!(!health(&path).unwrap().exists);
        assert!(!path.exists(), "checking does not create the file");
        {
            let mut old = Connection::open(&path).unwrap();
            migrations::migrate_to(&mut old, 1).unwrap();
            old.execute_batch("INSERT INTO sessions(id, started_at) VALUES (1, 0); INSERT INTO turns(session_id, at, user_text, reply_text) VALUES (1, 5, 'hi', 'hello');").unwrap();
        }
        let h = health(&path).unwrap();
        assert_eq!((h.exists, h.schema_version, h.turns, h.facts, h.problems.len()), (true, 1, 1, 0, 0));
        assert_eq!(migrations::version(&Connection::open(&path).unwrap()).unwrap(), 1, "not migrated by the check");
        let store = Store::open(&path).unwrap();
        store.facts().remember("the cat is called Miso").unwrap();
        let h = health(&path).unwrap();
        assert_eq!((h.schema_version, h.turns, h.facts), (LATEST_VERSION, 1, 1));
    }

    #[test]
    fn a_newer_schema_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE_NAME);
        drop(Store::open(&path).unwrap());
        Connection::open(&path).unwrap().pragma_update(None, "user_version", LATEST_VERSION + 1).unwrap();
        let err = Store::open_or_recover(&path).err().expect("refused");
        assert!(matches!(err, MemoryError::TooNew { .. }), "{err}");
        assert!(err.to_string().contains("update Roxy"), "{err}");
        assert!(path.exists());
    }
}
