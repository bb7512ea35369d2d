//! Long-term facts the user asked Roxy to remember ("my sister's birthday is June 3rd").
//! Saying the same fact again merges it (a mention count) instead of storing a copy. With an
//! [`Embedder`], facts are also found by meaning ("what's the wifi code" finds "the wireless
//! password is hunter2") and a reworded repeat merges too, unless the two differ in a
//! particular: a number, a name or a negation ("room 101" and "room 102" are two facts).

use super::embed::{self, Embedder};
use super::fts::{self, Mode};
use super::{now_ms, MemoryError, Store};
use rusqlite::{params, OptionalExtension, Row};
use std::collections::HashSet;
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
    /// The stored wording this one replaced, when a reworded repeat changed it.
    pub replaced: Option<String>,
}

/// The facts view of a [`Store`].
pub struct Facts<'a> {
    store: &'a Store,
    embedder: Option<&'a dyn Embedder>,
}

/// Cosine at or above which a new fact is the same fact reworded (MiniLM: paraphrases score
/// 0.9+, related but different facts 0.5-0.8).
const MERGE_SIMILARITY: f32 = 0.93;
/// Cosine below which a fact is unrelated to a question (MiniLM: unrelated pairs score < 0.2).
const MIN_SIMILARITY: f32 = 0.35;
/// Added to the cosine of a fact that also shares words with the question.
const KEYWORD_BONUS: f64 = 0.1;

/// How many of the newest matching facts a recall ranks.
const RANK_WINDOW: usize = 500;

const FACT_COLUMNS: &str = "f.id, f.text, f.created_at, f.updated_at, f.mentions";

fn fact_from_row(r: &Row) -> rusqlite::Result<Fact> {
    Ok(Fact { id: r.get(0)?, text: r.get(1)?, created_at_ms: r.get(2)?, updated_at_ms: r.get(3)?, mentions: r.get(4)? })
}

/// Words that make two similar sentences different facts: a negation flips one, and a number
/// or a name changes what it is about. MiniLM scores "fact 1" / "fact 2" and "room 101" /
/// "room 102" as paraphrases.
fn same_particulars(a: &str, b: &str) -> bool {
    struct Particulars {
        numbers: Vec<String>,
        names: Vec<String>,
        words: HashSet<String>,
        negated: bool,
    }
    fn read(text: &str) -> Particulars {
        const NEGATIONS: &[&str] = &["not", "no", "never", "nobody", "nothing", "none", "nor", "cannot", "neither"];
        const NUMBER_WORDS: &[&str] = &[
            "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen",
            "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty", "thirty", "forty", "fifty", "sixty",
            "seventy", "eighty", "ninety", "hundred", "thousand", "million", "first", "second", "third", "fourth", "fifth",
            "sixth", "seventh", "eighth", "ninth", "tenth", "half", "dozen",
        ];
        // Capitalised only because they open the sentence.
        const OPENERS: &[&str] = &["my", "the", "a", "an", "our", "your", "his", "her", "their", "i", "we", "it", "this", "that", "there", "remember"];
        let mut p = Particulars { numbers: Vec::new(), names: Vec::new(), words: HashSet::new(), negated: false };
        for (i, raw) in text.split_whitespace().enumerate() {
            let word = raw.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'');
            let word = word.strip_suffix("'s").unwrap_or(word);
            if word.is_empty() {
                continue;
            }
            let lower = word.to_lowercase();
            if NEGATIONS.contains(&lower.as_str()) || lower.ends_with("n't") {
                p.negated = true;
            }
            if word.chars().any(|c| c.is_ascii_digit()) || NUMBER_WORDS.contains(&lower.as_str()) {
                p.numbers.push(lower.clone());
            } else if word.chars().next().is_some_and(char::is_uppercase) && lower != "i" && !(i == 0 && OPENERS.contains(&lower.as_str())) {
                p.names.push(lower.clone());
            }
            p.words.insert(lower);
        }
        p.numbers.sort();
        p
    }
    let (a, b) = (read(a), read(b));
    // Names compare without case: speech-to-text may write "anna" where the user typed "Anna".
    a.numbers == b.numbers && a.negated == b.negated && a.names.iter().all(|n| b.words.contains(n)) && b.names.iter().all(|n| a.words.contains(n))
}

/// The duplicate key: case, spacing and punctuation do not make a different fact.
fn normalise(text: &str) -> String {
    fts::words(text).join(" ")
}

impl Store {
    /// Facts found by words only.
    pub fn facts(&self) -> Facts<'_> {
        Facts { store: self, embedder: None }
    }

    /// Facts found by meaning and by words.
    pub fn facts_by_meaning<'a>(&'a self, embedder: &'a dyn Embedder) -> Facts<'a> {
        Facts { store: self, embedder: Some(embedder) }
    }
}

impl Facts<'_> {
    pub fn remember(&self, text: &str) -> Result<Remembered, MemoryError> {
        let text = text.trim();
        let norm = normalise(text);
        if norm.is_empty() {
            return Err(MemoryError::Invalid("a fact needs at least one word".into()));
        }
        let vector = self.embedder.map(|e| e.embed(text)).transpose()?;
        let blob = vector.as_deref().map(embed::to_blob);
        // A reworded repeat merges into the closest fact. Looked up before the write: a fact
        // written in between can at worst be stored twice, never lost.
        let nearest = match &vector {
            Some(v) => self.store.fact_index(|ix| ix.query(v).and_then(|q| ix.top(&q, 1).first().copied()))?,
            None => None,
        };
        let merge_into = nearest.filter(|&(_, sim)| sim >= MERGE_SIMILARITY).map(|(id, _)| id);
        let now = now_ms();
        let returning = FACT_COLUMNS.replace("f.", "");
        let replaced = std::cell::RefCell::new(None);
        let fact = self.store.write_then(
            |tx| {
                replaced.replace(None);
                if let Some(id) = merge_into {
                    let taken: bool = tx.query_row("SELECT EXISTS(SELECT 1 FROM facts WHERE norm = ?1 AND id != ?2)", params![norm, id], |r| r.get(0))?;
                    let before: Option<String> = tx.query_row("SELECT text FROM facts WHERE id = ?1", params![id], |r| r.get(0)).optional()?;
                    let same_fact = before.as_deref().is_some_and(|b| same_particulars(b, text));
                    if !taken && same_fact {
                        replaced.replace(before.filter(|b| normalise(b) != norm));
                        // Keeping the latest wording; no row if it was forgotten meanwhile.
                        let updated = tx
                            .query_row(
                                &format!("UPDATE facts SET text = ?2, norm = ?3, updated_at = ?4, mentions = mentions + 1, embedding = ?5 WHERE id = ?1 RETURNING {returning}"),
                                params![id, text, norm, now, blob],
                                fact_from_row,
                            )
                            .optional()?;
                        if let Some(fact) = updated {
                            return Ok(fact);
                        }
                    }
                }
                // The latest wording wins; the first time it was said is kept.
                tx.query_row(
                    &format!(
                        "INSERT INTO facts AS f(text, norm, created_at, updated_at, embedding) VALUES (?1, ?2, ?3, ?3, ?4)
                         ON CONFLICT(norm) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at,
                             mentions = f.mentions + 1, embedding = coalesce(excluded.embedding, f.embedding)
                         RETURNING {returning}"
                    ),
                    params![text, norm, now, blob],
                    fact_from_row,
                )
            },
            |fact, index| {
                if let Some(v) = &vector {
                    index.upsert(fact.id, v);
                }
            },
        )?;
        Ok(Remembered { merged: fact.mentions > 1, fact, replaced: replaced.into_inner() })
    }

    /// Facts related to `query`, most relevant first, with a score (higher is better). With an
    /// embedder: cosine similarity over every fact's vector (held in memory) plus a bonus for
    /// shared words; without: BM25 over content words.
    pub fn recall(&self, query: &str, limit: usize) -> Result<Vec<(Fact, f64)>, MemoryError> {
        let by_words = self.recall_by_words(query, limit.max(20))?;
        let Some(embedder) = self.embedder else {
            return Ok(by_words.into_iter().take(limit).collect());
        };
        let q = embedder.embed(query)?;
        self.recall_by_vector(&q, by_words, limit)
    }

    /// [`Facts::recall`] for a question already embedded (the benchmark times this part).
    pub fn recall_with_vector(&self, query: &str, vector: &[f32], limit: usize) -> Result<Vec<(Fact, f64)>, MemoryError> {
        let by_words = self.recall_by_words(query, limit.max(20))?;
        self.recall_by_vector(vector, by_words, limit)
    }

    fn recall_by_vector(&self, q: &[f32], by_words: Vec<(Fact, f64)>, limit: usize) -> Result<Vec<(Fact, f64)>, MemoryError> {
        let keyword_ids: HashSet<i64> = by_words.iter().map(|(f, _)| f.id).collect();
        // The nearest by meaning, and the cosine of every word match (which gets a bonus).
        type Scores = (Vec<(i64, f32)>, Vec<(i64, Option<f32>)>);
        let (nearest, keyword_sims): Scores = self.store.fact_index(|ix| match ix.query(q) {
            Some(pq) => (ix.top(&pq, limit + keyword_ids.len()), keyword_ids.iter().map(|&id| (id, ix.score(&pq, id))).collect()),
            None => (Vec::new(), keyword_ids.iter().map(|&id| (id, None)).collect()),
        })?;
        let mut scored: Vec<(i64, f64)> = nearest.into_iter().filter(|&(id, sim)| sim >= MIN_SIMILARITY && !keyword_ids.contains(&id)).map(|(id, sim)| (id, sim as f64)).collect();
        // Keyword hits stored before embeddings existed still count.
        scored.extend(keyword_sims.into_iter().map(|(id, sim)| (id, sim.unwrap_or(MIN_SIMILARITY) as f64 + KEYWORD_BONUS)));
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
        scored.truncate(limit);
        let mut facts: std::collections::HashMap<i64, Fact> = by_words.into_iter().map(|(f, _)| (f.id, f)).collect();
        self.store.read(|c| {
            let mut stmt = c.prepare_cached(&format!("SELECT {FACT_COLUMNS} FROM facts f WHERE f.id = ?1"))?;
            scored
                .iter()
                .filter_map(|&(id, score)| match facts.remove(&id) {
                    Some(f) => Some(Ok((f, score))),
                    // Forgotten between the scan and now: skipped.
                    None => stmt.query_row([id], fact_from_row).optional().transpose().map(|r| r.map(|f| (f, score))),
                })
                .collect()
        })
    }

    /// Computes the vectors of facts stored without one (before the embedder was available).
    /// Returns how many were filled in.
    pub fn embed_missing(&self) -> Result<usize, MemoryError> {
        let Some(embedder) = self.embedder else { return Ok(0) };
        let missing: Vec<(i64, String)> = self.store.read(|c| {
            let mut stmt = c.prepare("SELECT id, text FROM facts WHERE embedding IS NULL")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })?;
        if missing.is_empty() {
            return Ok(0);
        }
        let vectors = missing.iter().map(|(id, text)| Ok((*id, embedder.embed(text)?))).collect::<Result<Vec<_>, MemoryError>>()?;
        self.store.write_then(
            |tx| {
                let mut stmt = tx.prepare_cached("UPDATE facts SET embedding = ?2 WHERE id = ?1 AND embedding IS NULL")?;
                let mut done = Vec::new();
                for (id, v) in &vectors {
                    if stmt.execute(params![id, embed::to_blob(v)])? == 1 {
                        done.push(*id);
                    }
                }
                Ok(done)
            },
            |done, index| {
                for (id, v) in vectors.iter().filter(|(id, _)| done.contains(id)) {
                    index.upsert(*id, v);
                }
            },
        )
        .map(|done| done.len())
    }

    /// Facts sharing content words with `query`, most relevant first. Only the newest
    /// RANK_WINDOW matches are ranked, which bounds the cost of a question made of common words.
    fn recall_by_words(&self, query: &str, limit: usize) -> Result<Vec<(Fact, f64)>, MemoryError> {
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
        self.store.write_then(
            |tx| {
                let mut stmt = tx.prepare_cached(&format!("DELETE FROM facts WHERE id = ?1 RETURNING {}", FACT_COLUMNS.replace("f.", "")))?;
                let mut rows = stmt.query_map([id], fact_from_row)?;
                rows.next().transpose()
            },
            |_, index| index.remove(id),
        )
    }

    /// Deletes every fact containing all the words of `text`; returns them.
    pub fn forget_matching(&self, text: &str) -> Result<Vec<Fact>, MemoryError> {
        let Some(expr) = fts::match_expr(text, Mode::All) else { return Ok(Vec::new()) };
        self.store.write_then(
            |tx| {
                let mut stmt = tx.prepare_cached(&format!(
                    "DELETE FROM facts WHERE id IN (SELECT rowid FROM facts_fts WHERE facts_fts MATCH ?1) RETURNING {}",
                    FACT_COLUMNS.replace("f.", "")
                ))?;
                let rows = stmt.query_map([expr], fact_from_row)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            },
            |gone, index| gone.iter().for_each(|f| index.remove(f.id)),
        )
    }

    pub fn count(&self) -> Result<u64, MemoryError> {
        self.store.read(|c| c.query_row("SELECT count(*) FROM facts", [], |r| r.get::<_, i64>(0))).map(|n| n as u64)
    }

    pub fn clear(&self) -> Result<u64, MemoryError> {
        self.store.write_then(|tx| tx.execute("DELETE FROM facts", []).map(|n| n as u64), |_, index| index.clear())
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
    fn facts_that_differ_in_a_number_a_name_or_a_negation_are_different_facts() {
        let different = [
            ("fact 1", "fact 2"),
            ("Room 101", "Room 102"),
            ("my locker code is 4312", "my locker code is 4313"),
            ("the meeting is on the third floor", "the meeting is on the fifth floor"),
            ("Anna is my sister", "Maria is my sister"),
            ("my sister is Anna", "my sister is Maria"),
            ("the back door is locked", "the back door is not locked"),
            ("I like coffee", "I don't like coffee"),
        ];
        for (a, b) in different {
            assert!(!same_particulars(a, b), "{a:?} / {b:?}");
        }
        let same = [
            ("my car is parked on level 3", "my car's parked on level 3"),
            ("Anna is my sister", "my sister is anna"),
            ("The wifi password is hunter2", "the wifi password is hunter2"),
            ("my dentist is Dr. Lee", "Dr. Lee is my dentist"),
        ];
        for (a, b) in same {
            assert!(same_particulars(a, b), "{a:?} / {b:?}");
        }
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

    /// Each known word points along one "meaning" axis; synonyms share an axis.
    struct Concepts;
    impl Embedder for Concepts {
        fn embed(&self, text: &str) -> Result<Vec<f32>, MemoryError> {
            const AXES: [&[&str]; 4] = [&["wifi", "wireless", "network"], &["password", "code", "passcode"], &["birthday", "born"], &["dentist", "teeth"]];
            let mut v = vec![0.01f32; AXES.len()];
            for w in fts::words(text) {
                if let Some(axis) = AXES.iter().position(|a| a.contains(&w.as_str())) {
                    v[axis] += 1.0;
                }
            }
            embed::normalise(&mut v);
            Ok(v)
        }
    }

    #[test]
    fn with_an_embedder_facts_are_found_by_meaning_and_rewordings_merge() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let f = store.facts_by_meaning(&Concepts);
        let wifi = f.remember("The wireless network password is hunter2").unwrap().fact;
        let dentist = f.remember("My dentist is Dr. Lee").unwrap().fact;
        let found = f.recall("what's the wifi code?", 5).unwrap();
        assert_eq!(found.first().map(|(fact, _)| fact.id), Some(wifi.id), "no shared word, same meaning: {found:?}");
        assert!(found.iter().all(|(fact, _)| fact.id != dentist.id), "{found:?}");
        // Words-only recall cannot see it.
        assert!(store.facts().recall("what's the wifi code?", 5).unwrap().is_empty());

        let again = f.remember("wifi passcode: hunter2").unwrap();
        assert!(again.merged && again.fact.id == wifi.id, "{again:?}");
        assert_eq!(again.fact.text, "wifi passcode: hunter2", "the latest wording is kept");
        assert_eq!(f.count().unwrap(), 2);
    }

    #[test]
    fn facts_stored_without_vectors_are_embedded_later() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let old = store.facts().remember("I was born on May 2nd").unwrap().fact;
        let f = store.facts_by_meaning(&Concepts);
        // Before backfill, it is still found through its words.
        assert_eq!(f.recall("when was I born", 5).unwrap()[0].0.id, old.id);
        assert_eq!(f.embed_missing().unwrap(), 1);
        assert_eq!(f.recall("my birthday", 5).unwrap()[0].0.id, old.id);
    }
}
