//! The response cache: answers keyed by the SHA-256 of a canonical request, so the same request
//! (model, input, parameters) always finds the same entry and nothing else can.
//!
//! Only deterministic requests are stored: an LLM answer sampled at temperature > 0 is not "the"
//! answer and replaying it would make Roxy repetitive in a way the user never asked for.

use super::{MemoryError, Store};
use crate::config::MemoryConfig;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheKind {
    LlmText,
    TtsAudio,
    Skill,
}

impl CacheKind {
    pub const ALL: [CacheKind; 3] = [CacheKind::LlmText, CacheKind::TtsAudio, CacheKind::Skill];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::LlmText => "llm_text",
            CacheKind::TtsAudio => "tts_audio",
            CacheKind::Skill => "skill",
        }
    }
}

/// A request whose answer may be cached. `params` is a sorted map, so the key does not depend on
/// the order the caller set them in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheRequest {
    pub kind: CacheKind,
    /// Model, voice or skill id: a different one must never share an entry.
    pub model: String,
    /// Prompt, phrase or skill arguments.
    pub input: String,
    pub params: BTreeMap<String, serde_json::Value>,
}

impl CacheRequest {
    pub fn new(kind: CacheKind, model: impl Into<String>, input: impl Into<String>) -> Self {
        CacheRequest { kind, model: model.into(), input: input.into(), params: BTreeMap::new() }
    }

    pub fn param(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }

    /// SHA-256 of the request's canonical JSON (struct fields in declaration order, params sorted).
    pub fn key(&self) -> [u8; 32] {
        let canonical = serde_json::to_vec(self).expect("a request of strings and JSON values serialises");
        Sha256::digest(&canonical).into()
    }

    /// Whether the same request always deserves the same answer. LLM text must say
    /// `temperature = 0`; speech and skill results are cached by the caller's choice of phrase.
    pub fn is_deterministic(&self) -> bool {
        match self.kind {
            CacheKind::LlmText => self.params.get("temperature").and_then(|t| t.as_f64()) == Some(0.0),
            CacheKind::TtsAudio | CacheKind::Skill => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindStats {
    pub kind: CacheKind,
    pub entries: u64,
    pub bytes: u64,
    pub hits: u64,
    pub misses: u64,
    /// hits / (hits + misses); 0 before any lookup.
    pub hit_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheStats {
    pub kinds: Vec<KindStats>,
    pub total_bytes: u64,
    pub max_bytes: u64,
}

type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub struct ResponseCache {
    store: Arc<Store>,
    ttl_ms: BTreeMap<&'static str, i64>,
    max_bytes: u64,
    clock: Clock,
}

impl ResponseCache {
    pub fn new(store: Arc<Store>, config: &MemoryConfig) -> Self {
        let ms = |secs: u64| (secs.min(i64::MAX as u64 / 1000) * 1000) as i64;
        let ttl_ms = BTreeMap::from([
            (CacheKind::LlmText.as_str(), ms(config.cache_ttl_llm_secs)),
            (CacheKind::TtsAudio.as_str(), ms(config.cache_ttl_tts_secs)),
            (CacheKind::Skill.as_str(), ms(config.cache_ttl_skill_secs)),
        ]);
        ResponseCache { store, ttl_ms, max_bytes: config.cache_max_mb.saturating_mul(1024 * 1024), clock: Arc::new(super::now_ms) }
    }

    /// Replaces the wall clock (milliseconds since the epoch): tests of expiry.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The cached answer, if present and not expired. Counts a hit or a miss for the kind.
    pub fn get(&self, req: &CacheRequest) -> Result<Option<Vec<u8>>, MemoryError> {
        let key = req.key();
        let kind = req.kind.as_str();
        let now = (self.clock)();
        self.store.write(|tx| {
            let found: Option<(Vec<u8>, i64)> = tx
                .prepare_cached("SELECT value, expires_at FROM cache WHERE key = ?1")?
                .query_row([&key[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let value = match found {
                Some((value, expires_at)) if expires_at > now => {
                    tx.prepare_cached("UPDATE cache SET hits = hits + 1, last_used_at = ?2 WHERE key = ?1")?.execute(params![&key[..], now])?;
                    Some(value)
                }
                Some(_) => {
                    tx.prepare_cached("DELETE FROM cache WHERE key = ?1")?.execute([&key[..]])?;
                    None
                }
                None => None,
            };
            let column = if value.is_some() { "hits" } else { "misses" };
            tx.prepare_cached(&format!(
                "INSERT INTO cache_stats(kind, {column}) VALUES (?1, 1) ON CONFLICT(kind) DO UPDATE SET {column} = {column} + 1"
            ))?
            .execute([kind])?;
            Ok(value)
        })
    }

    /// Stores an answer. Returns false (and stores nothing) for a non-deterministic request or a
    /// kind whose TTL is 0. Evicts the least recently used entries beyond the size cap.
    pub fn put(&self, req: &CacheRequest, value: &[u8]) -> Result<bool, MemoryError> {
        let ttl = self.ttl_ms[req.kind.as_str()];
        if ttl == 0 || !req.is_deterministic() || value.len() as u64 > self.max_bytes {
            return Ok(false);
        }
        let now = (self.clock)();
        let max_bytes = self.max_bytes as i64;
        self.store.write(|tx| {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO cache(key, kind, value, size, created_at, expires_at, last_used_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?5)",
            )?
            .execute(params![&req.key()[..], req.kind.as_str(), value, value.len() as i64, now, now.saturating_add(ttl)])?;
            let mut total: i64 = tx.query_row("SELECT coalesce(sum(size), 0) FROM cache", [], |r| r.get(0))?;
            if total > max_bytes {
                // Oldest use first; stop as soon as the total fits.
                let mut stmt = tx.prepare("SELECT key, size FROM cache ORDER BY last_used_at, rowid")?;
                let mut victims = Vec::new();
                let mut rows = stmt.query([])?;
                while total > max_bytes {
                    let Some(row) = rows.next()? else { break };
                    victims.push(row.get::<_, Vec<u8>>(0)?);
                    total -= row.get::<_, i64>(1)?;
                }
                drop(rows);
                let mut delete = tx.prepare_cached("DELETE FROM cache WHERE key = ?1")?;
                for key in victims {
                    delete.execute([key])?;
                }
            }
            Ok(true)
        })
    }

    /// Deletes expired entries; returns how many.
    pub fn purge_expired(&self) -> Result<u64, MemoryError> {
        let now = (self.clock)();
        self.store.write(|tx| tx.execute("DELETE FROM cache WHERE expires_at <= ?1", [now]).map(|n| n as u64))
    }

    /// Deletes every entry and resets the counters; returns how many entries were removed.
    pub fn clear(&self) -> Result<u64, MemoryError> {
        self.store.write(|tx| {
            let n = tx.execute("DELETE FROM cache", [])?;
            tx.execute("DELETE FROM cache_stats", [])?;
            Ok(n as u64)
        })
    }

    pub fn stats(&self) -> Result<CacheStats, MemoryError> {
        let kinds = self.store.read(|c| {
            let mut kinds = Vec::new();
            for kind in CacheKind::ALL {
                let (entries, bytes): (i64, i64) =
                    c.query_row("SELECT count(*), coalesce(sum(size), 0) FROM cache WHERE kind = ?1", [kind.as_str()], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                let (hits, misses): (i64, i64) = c
                    .query_row("SELECT hits, misses FROM cache_stats WHERE kind = ?1", [kind.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?
                    .unwrap_or((0, 0));
                let lookups = hits + misses;
                kinds.push(KindStats {
                    kind,
                    entries: entries as u64,
                    bytes: bytes as u64,
                    hits: hits as u64,
                    misses: misses as u64,
                    hit_rate: if lookups == 0 { 0.0 } else { hits as f64 / lookups as f64 },
                });
            }
            Ok(kinds)
        })?;
        Ok(CacheStats { total_bytes: kinds.iter().map(|k| k.bytes).sum(), kinds, max_bytes: self.max_bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    fn llm(prompt: &str) -> CacheRequest {
        CacheRequest::new(CacheKind::LlmText, "qwen3-1.7b", prompt).param("temperature", 0.0).param("max_tokens", 256)
    }

    #[test]
    fn the_key_is_canonical_and_covers_every_field() {
        let a = CacheRequest::new(CacheKind::LlmText, "m", "hi").param("temperature", 0.0).param("top_p", 0.9);
        let b = CacheRequest::new(CacheKind::LlmText, "m", "hi").param("top_p", 0.9).param("temperature", 0.0);
        assert_eq!(a.key(), b.key(), "parameter order does not matter");
        assert_ne!(a.key(), a.clone().param("top_p", 0.8).key());
        assert_ne!(a.key(), CacheRequest { model: "n".into(), ..a.clone() }.key());
        assert_ne!(a.key(), CacheRequest { input: "hi!".into(), ..a.clone() }.key());
        assert_ne!(a.key(), CacheRequest { kind: CacheKind::Skill, ..a.clone() }.key());
    }

    #[test]
    fn entries_expire_by_kind_and_hits_and_misses_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_in(dir.path()).unwrap());
        let now = Arc::new(AtomicI64::new(1_000_000));
        let clock = now.clone();
        let config = MemoryConfig { cache_ttl_llm_secs: 60, cache_ttl_skill_secs: 10, ..Default::default() };
        let cache = ResponseCache::new(store, &config).with_clock(move || clock.load(Ordering::SeqCst));

        let weather = CacheRequest::new(CacheKind::Skill, "weather", "Paris");
        assert!(cache.put(&llm("capital of France?"), b"Paris.").unwrap());
        assert!(cache.put(&weather, b"sunny").unwrap());
        assert_eq!(cache.get(&llm("capital of France?")).unwrap().as_deref(), Some(&b"Paris."[..]));
        assert_eq!(cache.get(&llm("capital of Spain?")).unwrap(), None);

        now.fetch_add(11_000, Ordering::SeqCst); // the skill result is stale, the LLM answer is not
        assert_eq!(cache.get(&weather).unwrap(), None);
        assert!(cache.get(&llm("capital of France?")).unwrap().is_some());

        let stats = cache.stats().unwrap();
        let of = |k| stats.kinds.iter().find(|s| s.kind == k).unwrap().clone();
        assert_eq!((of(CacheKind::LlmText).hits, of(CacheKind::LlmText).misses), (2, 1));
        assert!((of(CacheKind::LlmText).hit_rate - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!((of(CacheKind::Skill).hits, of(CacheKind::Skill).misses, of(CacheKind::Skill).entries), (0, 1, 0));

        cache.put(&weather, b"rain").unwrap();
        now.fetch_add(60_000, Ordering::SeqCst);
        assert_eq!(cache.purge_expired().unwrap(), 2);
        assert_eq!(cache.stats().unwrap().total_bytes, 0);
    }

    #[test]
    fn non_deterministic_requests_and_disabled_kinds_are_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_in(dir.path()).unwrap());
        let cache = ResponseCache::new(store, &MemoryConfig { cache_ttl_tts_secs: 0, ..Default::default() });
        let sampled = CacheRequest::new(CacheKind::LlmText, "m", "tell me a joke").param("temperature", 0.7);
        assert!(!cache.put(&sampled, b"...").unwrap());
        assert!(!cache.put(&CacheRequest::new(CacheKind::LlmText, "m", "no temperature given"), b"...").unwrap());
        assert!(!cache.put(&CacheRequest::new(CacheKind::TtsAudio, "voice", "Hello"), b"RIFF").unwrap());
        assert_eq!(cache.stats().unwrap().total_bytes, 0);
    }

    #[test]
    fn the_size_cap_evicts_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_in(dir.path()).unwrap());
        let now = Arc::new(AtomicI64::new(0));
        let clock = now.clone();
        let cache = ResponseCache::new(store, &MemoryConfig { cache_max_mb: 1, ..Default::default() })
            .with_clock(move || clock.fetch_add(1, Ordering::SeqCst));
        let blob = vec![7u8; 400 * 1024];
        for prompt in ["a", "b"] {
            cache.put(&llm(prompt), &blob).unwrap();
        }
        assert!(cache.get(&llm("a")).unwrap().is_some()); // "b" is now the least recently used
        cache.put(&llm("c"), &blob).unwrap();
        assert!(cache.get(&llm("a")).unwrap().is_some());
        assert!(cache.get(&llm("b")).unwrap().is_none());
        assert!(cache.get(&llm("c")).unwrap().is_some());
        assert!(cache.stats().unwrap().total_bytes <= 1024 * 1024);
    }
}
