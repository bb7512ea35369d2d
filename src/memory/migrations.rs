//! The schema, as numbered steps. `PRAGMA user_version` records the last step applied; each step
//! runs in its own transaction, so an interrupted upgrade leaves a consistent older version.
//! Never edit a released step: append a new one.

use rusqlite::{Connection, TransactionBehavior};

/// Step N (1-based) brings the schema from version N-1 to N.
const STEPS: &[&str] = &[
    // 1: conversations and facts.
    "CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        started_at INTEGER NOT NULL
    );
    CREATE TABLE turns (
        id INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        user_text TEXT NOT NULL,
        reply_text TEXT NOT NULL,
        route TEXT NOT NULL DEFAULT '',
        skill TEXT,
        timings TEXT NOT NULL DEFAULT '{}',
        embedding BLOB
    );
    CREATE INDEX turns_by_session ON turns(session_id, id);
    CREATE INDEX turns_by_time ON turns(at);
    CREATE TABLE facts (
        id INTEGER PRIMARY KEY,
        text TEXT NOT NULL,
        norm TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        mentions INTEGER NOT NULL DEFAULT 1,
        embedding BLOB
    );",
    // 2: full-text indexes, kept in step by triggers; `rebuild` indexes rows from version 1.
    "CREATE VIRTUAL TABLE turns_fts USING fts5(
        user_text, reply_text, content='turns', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER turns_fts_insert AFTER INSERT ON turns BEGIN
        INSERT INTO turns_fts(rowid, user_text, reply_text) VALUES (new.id, new.user_text, new.reply_text);
    END;
    CREATE TRIGGER turns_fts_delete AFTER DELETE ON turns BEGIN
        INSERT INTO turns_fts(turns_fts, rowid, user_text, reply_text) VALUES ('delete', old.id, old.user_text, old.reply_text);
    END;
    CREATE TRIGGER turns_fts_update AFTER UPDATE OF user_text, reply_text ON turns BEGIN
        INSERT INTO turns_fts(turns_fts, rowid, user_text, reply_text) VALUES ('delete', old.id, old.user_text, old.reply_text);
        INSERT INTO turns_fts(rowid, user_text, reply_text) VALUES (new.id, new.user_text, new.reply_text);
    END;
    INSERT INTO turns_fts(turns_fts) VALUES ('rebuild');
    CREATE VIRTUAL TABLE facts_fts USING fts5(
        text, content='facts', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER facts_fts_insert AFTER INSERT ON facts BEGIN
        INSERT INTO facts_fts(rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER facts_fts_delete AFTER DELETE ON facts BEGIN
        INSERT INTO facts_fts(facts_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TRIGGER facts_fts_update AFTER UPDATE OF text ON facts BEGIN
        INSERT INTO facts_fts(facts_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO facts_fts(rowid, text) VALUES (new.id, new.text);
    END;
    INSERT INTO facts_fts(facts_fts) VALUES ('rebuild');",
    // 3: the response cache. Keys are SHA-256 digests of canonical requests.
    "CREATE TABLE cache (
        key BLOB PRIMARY KEY,
        kind TEXT NOT NULL,
        value BLOB NOT NULL,
        size INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        last_used_at INTEGER NOT NULL,
        hits INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX cache_by_expiry ON cache(expires_at);
    CREATE INDEX cache_by_use ON cache(last_used_at);
    CREATE TABLE cache_stats (
        kind TEXT PRIMARY KEY,
        hits INTEGER NOT NULL DEFAULT 0,
        misses INTEGER NOT NULL DEFAULT 0
    );",
];

/// The schema version this build writes.
pub const LATEST_VERSION: i64 = STEPS.len() as i64;

pub(crate) fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Applies the steps after the current version, up to `target`. Returns the version before.
pub(crate) fn migrate_to(conn: &mut Connection, target: i64) -> rusqlite::Result<i64> {
    let before = version(conn)?;
    for (index, sql) in STEPS.iter().enumerate().take(target as usize).skip(before.max(0) as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Re-read inside the write lock: another process may have migrated meanwhile.
        if version(&tx)? > index as i64 {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_applies_in_order_and_reaches_the_latest_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        for target in 1..=LATEST_VERSION {
            migrate_to(&mut conn, target).unwrap();
            assert_eq!(version(&conn).unwrap(), target);
        }
        // Idempotent.
        assert_eq!(migrate_to(&mut conn, LATEST_VERSION).unwrap(), LATEST_VERSION);
        let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(ok, "ok");
    }
}
