//! `roxy memory bench`: search latency as the store grows, insert throughput, cache latency.
//! Runs on throwaway databases in a scratch directory, never on the user's store.

use super::embed::{self, CachedEmbedder, Embedder};
use super::{CacheKind, CacheRequest, MemoryError, ResponseCache, SearchFilter, Store, TurnRecord};
use crate::config::MemoryConfig;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// Turns stored (and as many facts).
    pub rows: usize,
    /// Turns per second, 1000 per transaction.
    pub insert_batched_per_s: f64,
    /// Turns per second, one transaction (one commit) each, as a live conversation writes.
    pub insert_single_per_s: f64,
    /// History: FTS5 BM25 over turns, the best 50 re-ranked by cosine with the question's vector.
    pub search_p50_ms: f64,
    pub search_p99_ms: f64,
    /// Facts by content words (BM25).
    pub recall_p50_ms: f64,
    pub recall_p99_ms: f64,
    /// Facts by meaning, given the question's vector: the in-memory vector scan plus word matches.
    pub meaning_p50_ms: f64,
    pub meaning_p99_ms: f64,
    /// Loading every fact vector into memory (once per process, or after another process wrote).
    pub vectors_load_ms: f64,
    pub vectors_mb: f64,
    pub cache_hit_p50_ms: f64,
    pub cache_miss_p50_ms: f64,
    pub db_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub queries: usize,
    /// Embedding one question with MiniLM (p50, p99), when the model is installed: a query-cache
    /// miss.
    pub embed_ms: Option<(f64, f64)>,
    /// The same question again, served by the query-vector cache (p50, p99).
    pub embed_cached_ms: Option<(f64, f64)>,
    /// 1-minute load average when the run ended (Linux): other work on the machine inflates p99.
    pub load_average: Option<f64>,
    pub rows: Vec<BenchRow>,
}

/// A tiny deterministic generator (xorshift64*), so every run searches the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// 4,000 made-up words drawn with a Zipf-like (log-uniform rank) distribution: a few words are
/// in most turns, most words are rare, as in real speech.
struct Words {
    vocab: Vec<String>,
}

impl Words {
    fn new() -> Self {
        const SYL: [&str; 20] = ["ka", "lo", "mi", "ren", "sa", "tu", "vel", "po", "dri", "an", "ces", "jo", "mur", "qui", "ta", "ne", "bor", "fi", "gal", "hu"];
        let vocab = (0..4000).map(|i| format!("{}{}{}", SYL[i % 20], SYL[(i / 20) % 20], SYL[(i / 400) % 20])).collect();
        Words { vocab }
    }
    fn pick(&self, rng: &mut Rng) -> &str {
        let rank = ((self.vocab.len() as f64).ln() * rng.unit()).exp() as usize - 1;
        &self.vocab[rank.min(self.vocab.len() - 1)]
    }
    fn sentence(&self, rng: &mut Rng, len: usize) -> String {
        (0..len).map(|_| self.pick(rng)).collect::<Vec<_>>().join(" ")
    }
}

fn random_unit(rng: &mut Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..embed::DIMENSIONS).map(|_| rng.unit() as f32 - 0.5).collect();
    embed::normalise(&mut v);
    v
}

/// Stands in for the model when it is not installed: the scan is timed, not the embedding.
struct RandomEmbedder;

impl Embedder for RandomEmbedder {
    fn embed(&self, text: &str) -> Result<Vec<f32>, MemoryError> {
        let seed = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        Ok(random_unit(&mut Rng(seed | 1)))
    }
}

fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    sorted_ms[((sorted_ms.len() - 1) as f64 * p).round() as usize]
}

fn timed<T>(samples: &mut Vec<f64>, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let value = f();
    samples.push(start.elapsed().as_secs_f64() * 1000.0);
    value
}

fn summary(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

/// Benchmarks a fresh store per size in `scratch/bench-<size>` (removed afterwards unless
/// `keep`). `progress` is told what is happening.
pub fn run(
    scratch: &Path,
    sizes: &[usize],
    queries: usize,
    keep: bool,
    embedder: Option<Arc<dyn Embedder>>,
    mut progress: impl FnMut(&str),
) -> Result<BenchReport, MemoryError> {
    let words = Words::new();
    // Recall by meaning is timed with random question vectors (the scan costs the same for any
    // vector); embedding a question with the model is timed on its own.
    let random = RandomEmbedder;
    let (embed_ms, embed_cached_ms) = match embedder {
        Some(e) => {
            // Each question once through the model (a miss), then again from the cache (a hit).
            let cache = CachedEmbedder::new(e, 256);
            let (mut misses, mut hits) = (Vec::new(), Vec::new());
            let mut rng = Rng(7);
            let questions: Vec<String> = (0..100).map(|_| format!("what about {}", words.sentence(&mut rng, 3))).collect();
            for q in &questions {
                timed(&mut misses, || cache.embed(q))?;
            }
            for q in &questions {
                timed(&mut hits, || cache.embed(q))?;
            }
            (Some(summary(misses)), Some(summary(hits)))
        }
        None => (None, None),
    };
    let mut rows = Vec::new();
    for &n in sizes {
        let dir = scratch.join(format!("bench-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(Store::open_in(&dir)?);
        let history = store.history();
        let facts = store.facts();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ n as u64);
        let session = history.start_session(0)?;

        progress(&format!("{n} rows: inserting"));
        let single = 200.min(n);
        let start = Instant::now();
        for i in 0..single {
            let t = TurnRecord { user_text: words.sentence(&mut rng, 8), reply_text: words.sentence(&mut rng, 20), route: "llm".into(), ..Default::default() };
            history.append_with_vector(session, i as i64, &t, Some(&random_unit(&mut rng)))?;
        }
        let insert_single_per_s = single as f64 / start.elapsed().as_secs_f64();
        let start = Instant::now();
        let mut done = single;
        while done < n {
            let batch: Vec<(i64, TurnRecord, Option<Vec<f32>>)> = (done..n.min(done + 1000))
                .map(|i| {
                    let t = TurnRecord { user_text: words.sentence(&mut rng, 8), reply_text: words.sentence(&mut rng, 20), route: "llm".into(), ..Default::default() };
                    (i as i64, t, Some(random_unit(&mut rng)))
                })
                .collect();
            done += batch.len();
            history.append_many_with_vectors(session, &batch)?;
        }
        let insert_batched_per_s = if n > single { (n - single) as f64 / start.elapsed().as_secs_f64() } else { insert_single_per_s };
        // Stored vectors are random unit vectors: the scan costs the same whatever they hold,
        // and embedding 100k facts with the model would take minutes.
        store.write(|tx| {
            let mut stmt = tx.prepare("INSERT OR IGNORE INTO facts(text, norm, created_at, updated_at, embedding) VALUES (?1, ?1, 0, 0, ?2)")?;
            for _ in 0..n {
                stmt.execute(rusqlite::params![words.sentence(&mut rng, 10), embed::to_blob(&random_unit(&mut rng))])?;
            }
            Ok(())
        })?;

        progress(&format!("{n} rows: loading the fact vectors"));
        let by_meaning = store.facts_by_meaning(&random);
        let start = Instant::now();
        let vectors_mb = store.fact_index(|ix| ix.bytes() as f64 / 1e6)?;
        let vectors_load_ms = start.elapsed().as_secs_f64() * 1000.0;

        progress(&format!("{n} rows: searching"));
        let (mut search, mut recall, mut meaning) = (Vec::new(), Vec::new(), Vec::new());
        let filter = SearchFilter { limit: 10, ..Default::default() };
        for _ in 0..queries {
            // Question vectors are random: the re-rank and the scan cost the same for any vector.
            let q = words.sentence(&mut rng, 2);
            let v = random_unit(&mut rng);
            timed(&mut search, || history.search_with_vector(&q, &v, &filter))?;
            let q = format!("what about {}", words.sentence(&mut rng, 3));
            let v = random_unit(&mut rng);
            timed(&mut recall, || facts.recall(&q, 5))?;
            timed(&mut meaning, || by_meaning.recall_with_vector(&q, &v, 5))?;
        }

        progress(&format!("{n} rows: cache"));
        let cache = ResponseCache::new(store.clone(), &MemoryConfig::default());
        let request = |i: usize| CacheRequest::new(CacheKind::LlmText, "bench", format!("prompt {i}")).param("temperature", 0.0);
        for i in 0..100 {
            cache.put(&request(i), &[0u8; 512])?;
        }
        let (mut hits, mut misses) = (Vec::new(), Vec::new());
        for i in 0..queries {
            timed(&mut hits, || cache.get(&request(i % 100)))?;
            timed(&mut misses, || cache.get(&request(1_000_000 + i)))?;
        }

        let (search_p50_ms, search_p99_ms) = summary(search);
        let (recall_p50_ms, recall_p99_ms) = summary(recall);
        let (meaning_p50_ms, meaning_p99_ms) = summary(meaning);
        rows.push(BenchRow {
            rows: n,
            insert_batched_per_s,
            insert_single_per_s,
            search_p50_ms,
            search_p99_ms,
            recall_p50_ms,
            recall_p99_ms,
            meaning_p50_ms,
            meaning_p99_ms,
            vectors_load_ms,
            vectors_mb,
            cache_hit_p50_ms: summary(hits).0,
            cache_miss_p50_ms: summary(misses).0,
            db_bytes: store.disk_bytes(),
        });
        drop(cache);
        drop(store);
        if !keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let load_average = std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next()?.parse().ok());
    Ok(BenchReport { queries, embed_ms, embed_cached_ms, load_average, rows })
}

/// The report as a table, one row per size: the growth curve.
pub fn render(report: &BenchReport) -> String {
    let mut out = format!(
        "{:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>8} {:>9} {:>8}\n",
        "rows", "insert/s", "commits/s", "search50", "search99", "words50", "words99", "meaning50", "meaning99", "hit50", "miss50", "db MB", "vec load", "vec MB"
    );
    for r in &report.rows {
        out += &format!(
            "{:>8} {:>10.0} {:>10.0} {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>7.3}ms {:>7.3}ms {:>8.1} {:>7.0}ms {:>8.1}\n",
            r.rows,
            r.insert_batched_per_s,
            r.insert_single_per_s,
            r.search_p50_ms,
            r.search_p99_ms,
            r.recall_p50_ms,
            r.recall_p99_ms,
            r.meaning_p50_ms,
            r.meaning_p99_ms,
            r.cache_hit_p50_ms,
            r.cache_miss_p50_ms,
            r.db_bytes as f64 / 1e6,
            r.vectors_load_ms,
            r.vectors_mb
        );
    }
    out += &format!(
        "({} queries per size; insert/s = turns with vectors, 1000 per transaction; commits/s = one turn per transaction; search = FTS5 BM25 over turns, best 50 re-ranked by cosine; words = facts by content words; meaning = cosine over every fact's in-memory vector + words, given the question vector; hit/miss = response cache get; vec load = reading every fact vector into memory, once per process; {}",
        report.queries,
        match (report.embed_ms, report.embed_cached_ms) {
            (Some((p50, p99)), Some((c50, c99))) => format!(
                "embedding a question with MiniLM adds p50 {p50:.2} ms, p99 {p99:.2} ms on a query-cache miss, p50 {:.1} µs, p99 {:.1} µs on a hit",
                c50 * 1000.0,
                c99 * 1000.0
            ),
            _ => "MiniLM not installed, question embedding not timed".into(),
        }
    );
    if let Some(load) = report.load_average {
        out += &format!("; load average {load:.2} on {} CPUs", std::thread::available_parallelism().map_or(0, |n| n.get()));
    }
    out + ")\n"
}
