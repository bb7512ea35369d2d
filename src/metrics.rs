//! Timing statistics for every stage of the voice loop: one registry of per-stage histograms
//! (lifetime, plus a recent window), each figure checked against its target, persisted so
//! `roxy stats` can show the last session's numbers.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many of the latest samples the recent window keeps.
pub const RECENT: usize = 100;
/// Histograms hold microseconds up to an hour at 3 significant digits.
const MAX_US: u64 = 3_600_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Wake,
    VadEndpoint,
    Stt,
    Intent,
    Skill,
    LlmFirstToken,
    LlmTotal,
    TtsFirstAudio,
    /// End of speech → first audio out.
    E2e,
    MemorySearch,
    ModelLoad,
}

impl Stage {
    pub const ALL: [Stage; 11] = [
        Stage::Wake,
        Stage::VadEndpoint,
        Stage::Stt,
        Stage::Intent,
        Stage::Skill,
        Stage::LlmFirstToken,
        Stage::LlmTotal,
        Stage::TtsFirstAudio,
        Stage::E2e,
        Stage::MemorySearch,
        Stage::ModelLoad,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Wake => "wake",
            Stage::VadEndpoint => "vad_endpoint",
            Stage::Stt => "stt",
            Stage::Intent => "intent",
            Stage::Skill => "skill",
            Stage::LlmFirstToken => "llm_first_token",
            Stage::LlmTotal => "llm_total",
            Stage::TtsFirstAudio => "tts_first_audio",
            Stage::E2e => "e2e",
            Stage::MemorySearch => "memory_search",
            Stage::ModelLoad => "model_load",
        }
    }

    /// The product's per-stage ceilings (ms), checked against p90. `None`: no target.
    pub fn target_ms(self) -> Option<f64> {
        match self {
            Stage::Wake => Some(200.0),
            Stage::Intent => Some(500.0),
            Stage::Skill => Some(500.0),
            Stage::LlmTotal => Some(2_000.0),
            Stage::TtsFirstAudio => Some(300.0),
            Stage::MemorySearch => Some(100.0),
            Stage::E2e => Some(4_000.0),
            Stage::VadEndpoint | Stage::Stt | Stage::LlmFirstToken | Stage::ModelLoad => None,
        }
    }
}

/// One stage's figures, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageStats {
    pub stage: Stage,
    pub count: u64,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    /// p50 and p90 over the last [`RECENT`] samples.
    pub recent_p50: f64,
    pub recent_p90: f64,
    pub target_ms: Option<f64>,
    /// p90 within the target (`None` without a target).
    pub within_target: Option<bool>,
}

struct Series {
    lifetime: Histogram<u64>,
    /// Exact sum of the samples (µs), so the mean needs no walk over the histogram.
    sum_us: u128,
    recent: VecDeque<u64>,
}

impl Series {
    fn new() -> Series {
        Series { lifetime: Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds"), sum_us: 0, recent: VecDeque::with_capacity(RECENT) }
    }

    fn record(&mut self, us: u64) {
        let us = us.clamp(1, MAX_US);
        self.lifetime.record(us).expect("clamped into range");
        self.sum_us += u128::from(us);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(us);
    }

    fn stats(&self, stage: Stage) -> StageStats {
        let h = &self.lifetime;
        let ms = |us: u64| us as f64 / 1000.0;
        let mut recent: Vec<u64> = self.recent.iter().copied().collect();
        recent.sort_unstable();
        // One walk over the buckets for all four quantiles (each `value_at_quantile` walks from
        // the start, and `mean` walks them all): a snapshot went from ~1 ms to a few µs a stage.
        let mut q = h.value_at_quantiles([0.50, 0.90, 0.95, 0.99]).map(ms);
        let mut next = || q.next().unwrap_or(0.0);
        let (p50, p90, p95, p99) = (next(), next(), next(), next());
        let target_ms = stage.target_ms();
        StageStats {
            stage,
            count: h.len(),
            avg: if h.is_empty() { 0.0 } else { self.sum_us as f64 / h.len() as f64 / 1000.0 },
            min: ms(h.min()),
            max: ms(h.max()),
            p50,
            p90,
            p95,
            p99,
            recent_p50: ms(nearest_rank(&recent, 0.50)),
            recent_p90: ms(nearest_rank(&recent, 0.90)),
            target_ms,
            within_target: target_ms.map(|t| p90 <= t),
        }
    }
}

/// The nearest-rank percentile of sorted values (0 for none).
fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Thread-safe: every stage records into one registry.
#[derive(Default)]
pub struct Registry {
    series: Mutex<BTreeMap<Stage, Series>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    pub fn record(&self, stage: Stage, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.series.lock().unwrap_or_else(|e| e.into_inner()).entry(stage).or_insert_with(Series::new).record(us);
    }

    pub fn record_ms(&self, stage: Stage, ms: f64) {
        self.record(stage, Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }

    /// Figures for every stage that has samples, in pipeline order.
    pub fn snapshot(&self) -> Vec<StageStats> {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.iter().map(|(stage, s)| s.stats(*stage)).collect()
    }

    pub fn reset(&self) {
        self.series.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StatsFileError {
    #[error("no timing statistics saved yet at {0}. Fix: use Roxy (roxy run, roxy bench) first")]
    Missing(PathBuf),
    #[error("timing statistics file {path} is unreadable ({detail}). Fix: delete it; the next session writes a fresh one")]
    Corrupt { path: PathBuf, detail: String },
    #[error("could not write timing statistics to {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Where the last session's figures are kept.
pub fn stats_file(data_dir: &Path) -> PathBuf {
    data_dir.join("stats.json")
}

/// Writes the figures atomically (temp file + rename): a crash mid-write keeps the old file.
pub fn save(path: &Path, stats: &[StageStats]) -> Result<(), StatsFileError> {
    let err = |source| StatsFileError::Write { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent() {
        crate::paths::ensure_private_dir(dir).map_err(err)?;
    }
    let tmp = path.with_extension("json.tmp");
    let json = serde_json::to_vec_pretty(stats).expect("stats serialise");
    std::fs::write(&tmp, json).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

pub fn load(path: &Path) -> Result<Vec<StageStats>, StatsFileError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StatsFileError::Missing(path.to_path_buf())),
        Err(e) => return Err(StatsFileError::Corrupt { path: path.to_path_buf(), detail: e.to_string() }),
    };
    serde_json::from_slice(&bytes).map_err(|e| StatsFileError::Corrupt { path: path.to_path_buf(), detail: e.to_string() })
}

/// The table `roxy stats` prints and the settings pane mirrors.
/// "within", "OVER", or nothing when there is no target: the status column of the text tables.
pub fn status_label(within: Option<bool>) -> &'static str {
    match within {
        Some(true) => "within",
        Some(false) => "OVER",
        None => "",
    }
}

pub fn render(stats: &[StageStats]) -> String {
    let mut out = format!(
        "{:<16} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  {}\n",
        "stage", "count", "avg", "min", "p50", "p90", "p99", "max", "recent90", "target", "status"
    );
    for s in stats {
        let target = s.target_ms.map_or("-".to_string(), |t| format!("{t:.0}"));
        let status = status_label(s.within_target);
        out.push_str(&format!(
            "{:<16} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9}  {}\n",
            s.stage.name(),
            s.count,
            s.avg,
            s.min,
            s.p50,
            s.p90,
            s.p99,
            s.max,
            s.recent_p90,
            target,
            status
        ));
    }
    out
}

/// Milliseconds since `started`, to 0.1 ms: how every stage time is reported.
pub fn ms_since(started: Instant) -> f64 {
    round_ms(started.elapsed().as_secs_f64() * 1000.0)
}

/// `ms` to 0.1 ms.
pub fn round_ms(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_the_samples() {
        let registry = Registry::new();
        // 1..=1000 ms: p50 = 500, p90 = 900, p99 = 990 (within the histogram's 0.1 % precision).
        for ms in 1..=1000u64 {
            registry.record(Stage::Stt, Duration::from_millis(ms));
        }
        let s = &registry.snapshot()[0];
        assert_eq!(s.count, 1000);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.002 + 0.01;
        assert!(close(s.min, 1.0) && close(s.max, 1000.0), "{s:?}");
        assert!(close(s.avg, 500.5), "{s:?}");
        assert!(close(s.p50, 500.0) && close(s.p90, 900.0) && close(s.p95, 950.0) && close(s.p99, 990.0), "{s:?}");
        // The recent window holds the last 100 samples: 901..=1000.
        assert_eq!((s.recent_p50, s.recent_p90), (950.0, 990.0));
    }

    #[test]
    fn one_walk_gives_the_same_quantiles_as_separate_ones() {
        let mut series = Series::new();
        let mut x = 88_172_645_463_325_252u64;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            series.record(x % 20_000_000);
        }
        let s = series.stats(Stage::Stt);
        let h = &series.lifetime;
        for (got, q) in [(s.p50, 0.5), (s.p90, 0.9), (s.p95, 0.95), (s.p99, 0.99)] {
            assert_eq!(got, h.value_at_quantile(q) as f64 / 1000.0, "q = {q}");
        }
        // The exact mean, within the histogram's precision of its bucketed mean.
        assert!((s.avg - h.mean() / 1000.0).abs() <= s.avg * 0.001, "{} vs {}", s.avg, h.mean() / 1000.0);
    }

    #[test]
    fn p90_is_checked_against_the_stage_target() {
        let registry = Registry::new();
        for _ in 0..95 {
            registry.record_ms(Stage::Wake, 50.0);
        }
        for _ in 0..5 {
            registry.record_ms(Stage::Wake, 900.0);
        }
        registry.record_ms(Stage::TtsFirstAudio, 450.0);
        registry.record_ms(Stage::Stt, 10.0);
        let snap = registry.snapshot();
        let by = |stage| snap.iter().find(|s| s.stage == stage).unwrap();
        assert_eq!(by(Stage::Wake).within_target, Some(true), "5 % outliers do not move p90");
        assert_eq!(by(Stage::TtsFirstAudio).within_target, Some(false));
        assert_eq!(by(Stage::Stt).within_target, None);
        assert!(render(&snap).contains("OVER"));
        registry.reset();
        assert!(registry.snapshot().is_empty());
    }

    #[test]
    fn figures_survive_a_save_and_a_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = stats_file(dir.path());
        assert!(matches!(load(&path), Err(StatsFileError::Missing(_))));
        let registry = Registry::new();
        registry.record_ms(Stage::E2e, 1234.0);
        save(&path, &registry.snapshot()).unwrap();
        assert_eq!(load(&path).unwrap(), registry.snapshot());
        assert!(!path.with_extension("json.tmp").exists());

        std::fs::write(&path, b"{ half a file").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("stats.json") && err.contains("Fix: delete it"), "{err}");
    }
}
