//! Long-term facts the user asked Roxy to remember ("my sister's birthday is June 3rd").
//! Saying the same fact again merges it (a mention count) instead of storing a copy.

use super::fts::{self, Mode};
use super::{now_ms, MemoryError, Store};
use rusqlite::{params, Row};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    pub id: i64,
    pub text: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// How many times the user has said it.
    pub mentions: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Remembered {
    pub fact: Fact,
    /// True when it matched a fact already stored.
    pub merged: bool,
}

/// The facts view of a [`Store`].
pub struct Facts<'a> {
    store: &'a Store,
}

/// How many of the newest matching facts a recall ranks.
const RANK_WINDOW: usize = 500;

const FACT_COLUMNS: &str = "f.id, f.text, f.created_at, f.updated_at, f.mentions";

fn fact_from_row(r: &Row) -> rusqlite::Result<Fact> {
    Ok(Fact { id: r.get(0)?, text: r.get(1)?, created_at_ms: r.get(2)?, updated_at_ms: r.get(3)?, mentions: r.get(4)? })
}

/// The duplicate key: case, spacing and punctuation do not make a different fact.
fn normalise(text: &str) -> String {
    fts::words(text).join(" ")
}

impl Store {
    pub fn facts(&self) -> Facts<'_> {
        Facts { store: self }
    }
}

impl Facts<'_> {
    pub fn remember(&self, text: &str) -> Result<Remembered, MemoryError> {
        let text = text.trim();
        let norm = normalise(text);
        if norm.is_empty() {
            return Err(MemoryError::Invalid("a fact needs at least one word".into()));
        }
        let fact = self.store.write(|tx| {
            // The latest wording wins; the first time it was said is kept.
            tx.query_row(
                &format!(
                    "INSERT INTO facts AS f(text, norm, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
                     ON CONFLICT(norm) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at, mentions = f.mentions + 1
                     RETURNING {}",
                    FACT_COLUMNS.replace("f.", "")
                ),
                params![text, norm, now_ms()],
                fact_from_row,
            )
        })?;
        Ok(Remembered { merged: fact.mentions > 1, fact })
    }

    /// Facts sharing content words with `query`, most relevant first. Only the newest
    /// RANK_WINDOW matches are ranked, which bounds the cost of a question made of common words.
    pub fn recall(&self, query: &str, limit: usize) -> Result<Vec<(Fact, f64)>, MemoryError> {
        let Some(expr) = fts::match_expr(query, Mode::Any) else { return Ok(Vec::new()) };
        self.store.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {FACT_COLUMNS}, m.score
                 FROM (SELECT rowid AS id, bm25(facts_fts) AS score FROM facts_fts WHERE facts_fts MATCH ?1
                       ORDER BY rowid DESC LIMIT {RANK_WINDOW}) AS m
                 JOIN facts f ON f.id = m.id ORDER BY m.score LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![expr, limit as i64], |r| Ok((fact_from_row(r)?, -r.get::<_, f64>(5)?)))?;
            rows.collect()
        })
    }

    /// Every fact, oldest first.
    pub fn list(&self) -> Result<Vec<Fact>, MemoryError> {
        self.store.read(|c| {
            let mut stmt = c.prepare_cached(&format!("SELECT {FACT_COLUMNS} FROM facts f ORDER BY f.id"))?;
            let rows = stmt.query_map([], fact_from_row)?;
            rows.collect()
        })
    }

    /// Deletes the fact with this id; returns it if it existed.
    pub fn forget_id(&self, id: i64) -> Result<Option<Fact>, MemoryError> {
        self.store.write(|tx| {
            let mut stmt = tx.prepare_cached(&format!("DELETE FROM facts WHERE id = ?1 RETURNING {}", FACT_COLUMNS.replace("f.", "")))?;
            let mut rows = stmt.query_map([id], fact_from_row)?;
            rows.next().transpose()
        })
    }

    /// Deletes every fact containing all the words of `text`; returns them.
    pub fn forget_matching(&self, text: &str) -> Result<Vec<Fact>, MemoryError> {
        let Some(expr) = fts::match_expr(text, Mode::All) else { return Ok(Vec::new()) };
        self.store.write(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "DELETE FROM facts WHERE id IN (SELECT rowid FROM facts_fts WHERE facts_fts MATCH ?1) RETURNING {}",
                FACT_COLUMNS.replace("f.", "")
            ))?;
            let rows = stmt.query_map([expr], fact_from_row)?;
            rows.collect()
        })
    }

    pub fn count(&self) -> Result<u64, MemoryError> {
        self.store.read(|c| c.query_row("SELECT count(*) FROM facts", [], |r| r.get::<_, i64>(0))).map(|n| n as u64)
    }

    pub fn clear(&self) -> Result<u64, MemoryError> {
        self.store.write(|tx| tx.execute("DELETE FROM facts", []).map(|n| n as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remember_merges_duplicates_and_recall_ranks_by_content_words() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let f = store.facts();
        let first = f.remember("My sister's birthday is June 3rd").unwrap();
        assert!(!first.merged);
        f.remember("The wifi password is hunter2").unwrap();
        f.remember("My dentist is Dr. Lee on Main Street").unwrap();
        let again = f.remember("  my sister's birthday is june 3rd. ").unwrap();
        assert!(again.merged);
        assert_eq!(again.fact.id, first.fact.id);
        assert_eq!(again.fact.mentions, 2);
        assert_eq!(f.count().unwrap(), 3);

        let found = f.recall("when is my sister's birthday?", 5).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0.id, first.fact.id);
        // "birthdays" stems to "birthday".
        assert_eq!(f.recall("birthdays", 5).unwrap().len(), 1);
        assert!(f.recall("what's the weather", 5).unwrap().is_empty());

        assert!(matches!(f.remember(" ... "), Err(MemoryError::Invalid(_))));
    }

    #[test]
    fn forget_by_words_or_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let f = store.facts();
        let wifi = f.remember("The wifi password is hunter2").unwrap().fact;
        f.remember("My dentist is Dr. Lee").unwrap();
        let gone = f.forget_matching("wifi password").unwrap();
        assert_eq!(gone, vec![wifi]);
        assert!(f.recall("wifi", 5).unwrap().is_empty());
        let dentist = f.list().unwrap().remove(0);
        assert_eq!(f.forget_id(dentist.id).unwrap().map(|f| f.id), Some(dentist.id));
        assert_eq!(f.forget_id(dentist.id).unwrap(), None);
        assert_eq!(f.count().unwrap(), 0);
    }
}
