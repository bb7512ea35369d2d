//! Every turn Roxy has heard and answered, searchable by words (FTS5, BM25-ranked) and date.

use super::embed::{self, Embedder};
use super::fts::{self, Mode};
use super::{MemoryError, Store};
use rusqlite::{params, Row};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What one exchange recorded: the words, how it was answered and how long each stage took.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TurnRecord {
    pub user_text: String,
    pub reply_text: String,
    /// `llm`, `skill`, `cache`, `cloud`...
    pub route: String,
    pub skill: Option<String>,
    /// Stage name → milliseconds (stt, llm, tts...).
    pub timings: BTreeMap<String, u64>,
}

/// A stored turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub id: i64,
    pub session_id: i64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    #[serde(flatten)]
    pub record: TurnRecord,
}

#[derive(Debug, Clone, Copy)]
pub struct SearchFilter {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: usize,
}

impl Default for SearchFilter {
    fn default() -> Self {
        SearchFilter { since_ms: None, until_ms: None, limit: 20 }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    #[serde(flatten)]
    pub turn: Turn,
    /// BM25 relevance; higher is better.
    pub score: f64,
}

/// The history view of a [`Store`].
pub struct History<'a> {
    store: &'a Store,
}

/// How many word matches a search by meaning re-ranks.
const RERANK_CANDIDATES: usize = 50;

/// How many of the newest matches a search ranks.
const RANK_WINDOW: usize = 500;

const TURN_COLUMNS: &str = "t.id, t.session_id, t.at, t.user_text, t.reply_text, t.route, t.skill, t.timings";

fn turn_from_row(r: &Row) -> rusqlite::Result<Turn> {
    let timings: String = r.get(7)?;
    Ok(Turn {
        id: r.get(0)?,
        session_id: r.get(1)?,
        at_ms: r.get(2)?,
        record: TurnRecord {
            user_text: r.get(3)?,
            reply_text: r.get(4)?,
            route: r.get(5)?,
            skill: r.get(6)?,
            // Written by us as JSON; an unreadable value loses only the timings, not the turn.
            timings: serde_json::from_str(&timings).unwrap_or_default(),
        },
    })
}

/// A word match and its stored vector blob (when asked for and present).
type HitWithVector = (SearchHit, Option<Vec<u8>>);

/// The text a turn's vector is computed from: what was asked and what was answered.
pub fn embed_text(user_text: &str, reply_text: &str) -> String {
    format!("{user_text} {reply_text}")
}

impl Store {
    pub fn history(&self) -> History<'_> {
        History { store: self }
    }
}

impl History<'_> {
    /// Starts a new conversation and returns its id.
    pub fn start_session(&self, at_ms: i64) -> Result<i64, MemoryError> {
        self.store.write(|tx| {
            tx.execute("INSERT INTO sessions(started_at) VALUES (?1)", [at_ms])?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// The most recent session's id, if any.
    pub fn latest_session(&self) -> Result<Option<i64>, MemoryError> {
        self.store.read(|c| c.query_row("SELECT max(id) FROM sessions", [], |r| r.get(0)))
    }

    /// Stores one turn (committed on return) and returns its id.
    pub fn append(&self, session_id: i64, at_ms: i64, turn: &TurnRecord) -> Result<i64, MemoryError> {
        self.append_many(session_id, std::slice::from_ref(&(at_ms, turn.clone()))).map(|ids| ids[0])
    }

    /// Stores one turn with its vector (see [`embed_text`]), so searches re-rank it by meaning
    /// from the start. Committed on return.
    pub fn append_with_vector(&self, session_id: i64, at_ms: i64, turn: &TurnRecord, vector: Option<&[f32]>) -> Result<i64, MemoryError> {
        self.append_many_with_vectors(session_id, &[(at_ms, turn.clone(), vector.map(<[f32]>::to_vec))]).map(|ids| ids[0])
    }

    /// Stores many turns in one transaction (imports, benchmarks).
    pub fn append_many(&self, session_id: i64, turns: &[(i64, TurnRecord)]) -> Result<Vec<i64>, MemoryError> {
        let turns: Vec<_> = turns.iter().map(|(at, t)| (*at, t.clone(), None)).collect();
        self.append_many_with_vectors(session_id, &turns)
    }

    /// Stores many turns, each with its vector if it has one, in one transaction.
    pub fn append_many_with_vectors(&self, session_id: i64, turns: &[(i64, TurnRecord, Option<Vec<f32>>)]) -> Result<Vec<i64>, MemoryError> {
        self.store.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO turns(session_id, at, user_text, reply_text, route, skill, timings, embedding) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut ids = Vec::with_capacity(turns.len());
            for (at_ms, t, vector) in turns {
                let timings = serde_json::to_string(&t.timings).expect("a map of numbers serialises");
                let blob = vector.as_deref().map(embed::to_blob);
                stmt.execute(params![session_id, at_ms, t.user_text, t.reply_text, t.route, t.skill, timings, blob])?;
                ids.push(tx.last_insert_rowid());
            }
            Ok(ids)
        })
    }

    /// Turns containing every word of `query`; if none does, turns containing any of its content
    /// words. Best match first.
    pub fn search(&self, query: &str, filter: &SearchFilter) -> Result<Vec<SearchHit>, MemoryError> {
        Ok(self.search_words(query, filter, false)?.into_iter().map(|(hit, _)| hit).collect())
    }

    /// The word search, with each hit's stored vector when `vectors` (read in the same query).
    fn search_words(&self, query: &str, filter: &SearchFilter, vectors: bool) -> Result<Vec<HitWithVector>, MemoryError> {
        for mode in [Mode::All, Mode::Any] {
            let Some(expr) = fts::match_expr(query, mode) else { return Ok(Vec::new()) };
            let hits = self.search_expr(&expr, filter, vectors)?;
            if !hits.is_empty() {
                return Ok(hits);
            }
        }
        Ok(Vec::new())
    }

    fn search_expr(&self, expr: &str, f: &SearchFilter, vectors: bool) -> Result<Vec<HitWithVector>, MemoryError> {
        // BM25 ranks only the newest RANK_WINDOW matches: a word found in tens of thousands of
        // turns would otherwise cost a score per match on every search (100+ ms at 100k turns).
        // Ids grow with time, so the date filter becomes an id range FTS5 can seek to.
        let sql = format!(
            "SELECT {TURN_COLUMNS}, m.score, {}
             FROM (SELECT rowid AS id, bm25(turns_fts) AS score FROM turns_fts
                   WHERE turns_fts MATCH ?1 AND rowid >= ?2 AND rowid <= ?3
                   ORDER BY rowid DESC LIMIT {RANK_WINDOW}) AS m
             JOIN turns t ON t.id = m.id
             WHERE t.at >= ?4 AND t.at <= ?5
             ORDER BY m.score LIMIT ?6",
            if vectors { "t.embedding" } else { "NULL" }
        );
        let (since, until) = (f.since_ms.unwrap_or(i64::MIN), f.until_ms.unwrap_or(i64::MAX));
        self.store.read(|c| {
            let (first_id, last_id): (i64, i64) = if f.since_ms.is_none() && f.until_ms.is_none() {
                (i64::MIN, i64::MAX)
            } else {
                c.prepare_cached(
                    "SELECT (SELECT coalesce(min(id), 9223372036854775807) FROM turns WHERE at >= ?1),
                            (SELECT coalesce(max(id), -9223372036854775808) FROM turns WHERE at <= ?2)",
                )?
                .query_row([since, until], |r| Ok((r.get(0)?, r.get(1)?)))?
            };
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![expr, first_id, last_id, since, until, f.limit as i64], |r| {
                // SQLite's bm25() is negative, lower = better; flip it so callers sort naturally.
                Ok((SearchHit { turn: turn_from_row(r)?, score: -r.get::<_, f64>(8)? }, r.get::<_, Option<Vec<u8>>>(9)?))
            })?;
            rows.collect()
        })
    }

    /// Like [`History::search`], then re-ranked by meaning: the best `RERANK_CANDIDATES` word
    /// matches ordered by the cosine between the query and each turn (turns not yet embedded
    /// keep their word rank, after the embedded ones). The score becomes the cosine.
    pub fn search_by_meaning(&self, query: &str, filter: &SearchFilter, embedder: &dyn Embedder) -> Result<Vec<SearchHit>, MemoryError> {
        let q = embedder.embed(query)?;
        self.search_with_vector(query, &q, filter)
    }

    /// [`History::search_by_meaning`] for a question already embedded (the benchmark times this).
    pub fn search_with_vector(&self, query: &str, q: &[f32], filter: &SearchFilter) -> Result<Vec<SearchHit>, MemoryError> {
        let wide = SearchFilter { limit: filter.limit.max(RERANK_CANDIDATES), ..*filter };
        let hits = self.search_words(query, &wide, true)?;
        let mut scored: Vec<(Option<f32>, SearchHit)> =
            hits.into_iter().map(|(h, blob)| (blob.filter(|b| b.len() == q.len() * 4).map(|b| embed::dot_blob(q, &b)), h)).collect();
        // Stable: equal (or missing) cosines keep the word order.
        scored.sort_by(|a, b| match (a.0, b.0) {
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        Ok(scored
            .into_iter()
            .take(filter.limit)
            .map(|(sim, mut h)| {
                if let Some(sim) = sim {
                    h.score = sim as f64;
                }
                h
            })
            .collect())
    }

    /// Embeds up to `max` turns stored without a vector, newest first: turns written before the
    /// model was installed, or by `write-burst`/imports. [`super::Memory::record_turn`] embeds
    /// each new turn as it is recorded. Returns how many were filled in.
    pub fn embed_missing(&self, embedder: &dyn Embedder, max: usize) -> Result<usize, MemoryError> {
        let missing: Vec<(i64, String)> = self.store.read(|c| {
            let mut stmt = c.prepare_cached("SELECT id, user_text, reply_text FROM turns WHERE embedding IS NULL ORDER BY id DESC LIMIT ?1")?;
            let rows = stmt.query_map([max as i64], |r| Ok((r.get(0)?, embed_text(&r.get::<_, String>(1)?, &r.get::<_, String>(2)?))))?;
            rows.collect()
        })?;
        let vectors = missing.iter().map(|(id, text)| Ok((*id, embed::to_blob(&embedder.embed(text)?)))).collect::<Result<Vec<_>, MemoryError>>()?;
        if vectors.is_empty() {
            return Ok(0);
        }
        self.store.write(|tx| {
            let mut stmt = tx.prepare_cached("UPDATE turns SET embedding = ?2 WHERE id = ?1")?;
            for (id, blob) in &vectors {
                stmt.execute(params![id, blob])?;
            }
            Ok(vectors.len())
        })
    }

    /// The last `limit` turns of a session (or of all sessions), oldest first.
    pub fn recent(&self, session_id: Option<i64>, limit: usize) -> Result<Vec<Turn>, MemoryError> {
        let sql = format!(
            "SELECT * FROM (SELECT {TURN_COLUMNS} FROM turns t WHERE ?1 IS NULL OR t.session_id = ?1 ORDER BY t.id DESC LIMIT ?2) ORDER BY id"
        );
        self.store.read(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![session_id, limit as i64], turn_from_row)?;
            rows.collect()
        })
    }

    /// Every turn, oldest first (export).
    pub fn all(&self) -> Result<Vec<Turn>, MemoryError> {
        self.store.read(|c| {
            let mut stmt = c.prepare(&format!("SELECT {TURN_COLUMNS} FROM turns t ORDER BY t.id"))?;
            let rows = stmt.query_map([], turn_from_row)?;
            rows.collect()
        })
    }

    pub fn count(&self) -> Result<u64, MemoryError> {
        self.store.read(|c| c.query_row("SELECT count(*) FROM turns", [], |r| r.get::<_, i64>(0))).map(|n| n as u64)
    }

    /// Deletes every turn and session. Returns how many turns were removed.
    pub fn clear(&self) -> Result<u64, MemoryError> {
        self.store.write(|tx| {
            let n = tx.execute("DELETE FROM turns", [])?;
            tx.execute("DELETE FROM sessions", [])?;
            Ok(n as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(user: &str, reply: &str) -> TurnRecord {
        TurnRecord { user_text: user.into(), reply_text: reply.into(), route: "llm".into(), ..Default::default() }
    }

    #[test]
    fn search_finds_turns_by_words_ranked_and_by_date() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let h = store.history();
        let s = h.start_session(0).unwrap();
        h.append(s, 1_000, &turn("what's the weather in Paris", "Sunny, 21 degrees in Paris.")).unwrap();
        h.append(s, 2_000, &turn("set a timer for ten minutes", "Timer set for 10 minutes.")).unwrap();
        h.append(s, 3_000, &turn("is it raining in Paris?", "No rain in Paris today.")).unwrap();

        let hits = h.search("Paris weather", &SearchFilter::default()).unwrap();
        assert_eq!(hits.len(), 1, "both words only in the first turn: {hits:?}");
        assert_eq!(hits[0].turn.record.user_text, "what's the weather in Paris");

        // No turn has both words, so any of them counts; stemming matches "timers" to "timer".
        let hits = h.search("timers rain", &SearchFilter::default()).unwrap();
        assert_eq!(hits.len(), 2);

        let since = SearchFilter { since_ms: Some(2_500), ..Default::default() };
        let hits = h.search("Paris", &since).unwrap();
        assert_eq!(hits.iter().map(|h| h.turn.at_ms).collect::<Vec<_>>(), vec![3_000]);

        assert!(h.search("\"unbalanced (", &SearchFilter::default()).unwrap().is_empty());
        assert!(h.search("", &SearchFilter::default()).unwrap().is_empty());
    }

    #[test]
    fn timings_and_skill_round_trip_and_clear_empties_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let h = store.history();
        let s = h.start_session(0).unwrap();
        let mut t = turn("what time is it", "It is noon.");
        t.route = "skill".into();
        t.skill = Some("clock".into());
        t.timings = BTreeMap::from([("stt".into(), 120), ("tts".into(), 80)]);
        h.append(s, 5, &t).unwrap();
        let back = h.recent(Some(s), 10).unwrap();
        assert_eq!(back[0].record, t);
        assert_eq!(h.clear().unwrap(), 1);
        assert_eq!(h.count().unwrap(), 0);
        assert!(h.search("noon", &SearchFilter::default()).unwrap().is_empty());
        assert!(store.integrity_check().unwrap().is_empty());
    }

    /// Vectors along "weather" and "timer" axes.
    struct Topics;
    impl Embedder for Topics {
        fn embed(&self, text: &str) -> Result<Vec<f32>, MemoryError> {
            let words = fts::words(text);
            let count = |set: &[&str]| words.iter().filter(|w| set.contains(&w.as_str())).count() as f32;
            let mut v = vec![0.01 + count(&["rain", "sunny", "weather", "umbrella"]), 0.01 + count(&["timer", "minutes", "alarm"])];
            embed::normalise(&mut v);
            Ok(v)
        }
    }

    #[test]
    fn search_by_meaning_reranks_embedded_turns() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let h = store.history();
        let s = h.start_session(0).unwrap();
        // BM25 prefers the short timer turn for "tomorrow"; by meaning the umbrella one wins.
        let timer = h.append(s, 1, &turn("timer tomorrow", "Timer set for tomorrow, ten minutes.")).unwrap();
        let umbrella = h.append(s, 2, &turn("do I need an umbrella tomorrow", "Rain is likely tomorrow, take an umbrella.")).unwrap();
        let by_words: Vec<i64> = h.search("tomorrow weather", &SearchFilter::default()).unwrap().iter().map(|x| x.turn.id).collect();
        assert_eq!(by_words, [timer, umbrella], "word ranking first");
        assert_eq!(h.embed_missing(&Topics, 100).unwrap(), 2);
        let by_meaning: Vec<i64> = h.search_by_meaning("tomorrow weather", &SearchFilter::default(), &Topics).unwrap().iter().map(|x| x.turn.id).collect();
        assert_eq!(by_meaning, [umbrella, timer]);
        assert_eq!(h.embed_missing(&Topics, 100).unwrap(), 0, "nothing left to embed");
    }
}
