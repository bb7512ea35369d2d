//! The intent fast path: every skill's template phrases are embedded once at start-up into one
//! matrix of unit vectors; a query is one matrix–vector product (cosine per template), and the
//! best template per skill is that skill's score. Query vectors are kept in an LRU cache, so a
//! repeated command costs a hash lookup.

use super::skills::{words, Skill};
use crate::memory::{Embedder, MemoryError};
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const CACHED_QUERIES: usize = 512;

pub struct IntentMatcher {
    embedder: Arc<dyn Embedder>,
    /// Row i of `matrix` belongs to skill `owners[i]`.
    owners: Vec<usize>,
    matrix: Vec<f32>,
    dims: usize,
    skills: usize,
    cache: Mutex<LruCache<String, Arc<Vec<f32>>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// A skill's best template similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub skill: usize,
    pub similarity: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CacheCounts {
    pub hits: u64,
    pub misses: u64,
}

impl IntentMatcher {
    pub fn new(skills: &[Arc<dyn Skill>], embedder: Arc<dyn Embedder>) -> Result<IntentMatcher, MemoryError> {
        let mut owners = Vec::new();
        let mut matrix = Vec::new();
        let mut dims = 0;
        for (i, skill) in skills.iter().enumerate() {
            for template in skill.templates() {
                let v = embedder.embed(&words::shape(template))?;
                dims = v.len();
                matrix.extend_from_slice(&v);
                owners.push(i);
            }
        }
        Ok(IntentMatcher {
            embedder,
            owners,
            matrix,
            dims,
            skills: skills.len(),
            cache: Mutex::new(LruCache::new(NonZeroUsize::new(CACHED_QUERIES).expect("non-zero"))),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    pub fn templates(&self) -> usize {
        self.owners.len()
    }

    /// Every skill's score for `utterance`, best first.
    pub fn scores(&self, utterance: &str) -> Result<Vec<Score>, MemoryError> {
        let query = self.embed(utterance)?;
        let mut best = vec![f32::MIN; self.skills];
        if self.dims > 0 {
            for (row, &owner) in self.matrix.chunks_exact(self.dims).zip(&self.owners) {
                let cosine: f32 = row.iter().zip(query.iter()).map(|(a, b)| a * b).sum();
                best[owner] = best[owner].max(cosine);
            }
        }
        let mut scores: Vec<Score> = best.into_iter().enumerate().map(|(skill, similarity)| Score { skill, similarity }).collect();
        scores.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        Ok(scores)
    }

    fn embed(&self, utterance: &str) -> Result<Arc<Vec<f32>>, MemoryError> {
        let key = words::shape(utterance);
        if let Some(v) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(v.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let v = Arc::new(self.embedder.embed(&key)?);
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).put(key, v.clone());
        Ok(v)
    }

    pub fn cache_counts(&self) -> CacheCounts {
        CacheCounts { hits: self.hits.load(Ordering::Relaxed), misses: self.misses.load(Ordering::Relaxed) }
    }
}
