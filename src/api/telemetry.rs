//! `/metrics` in the Prometheus (OpenMetrics) text format via `prometheus-client`: per-endpoint
//! request counts and latency histograms, process and system memory, uptime, the voice loop's
//! per-stage figures and the response cache's hit rates. Also the memory samples behind
//! `/metrics/memory`.

use super::backend::ChatBackend;
use crate::memory::{CacheKind, ResponseCache};
use crate::metrics::Registry as StageRegistry;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Memory samples kept for the trend (one per [`SAMPLE_EVERY`]: an hour).
pub const MEMORY_SAMPLES: usize = 360;
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Scrapes within this long reuse one memory reading (reading /proc on every request of a
/// load test would measure /proc, not the API).
const MEMORY_FRESH: Duration = Duration::from_millis(500);
/// The cache's figures come from SQLite; refreshed at most this often.
const CACHE_FRESH: Duration = Duration::from_secs(5);
/// A stage snapshot walks every HDR histogram (about 1 ms for one stage here); scrapes within
/// this long share one.
const STAGES_FRESH: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
    pub method: String,
}

type HistogramFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs .. ~52 s, doubling.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 21))
}

/// One memory reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemorySample {
    pub unix_ms: u64,
    pub uptime_s: f64,
    /// This process.
    pub rss_bytes: u64,
    pub vms_bytes: u64,
    /// The LLM worker (or other backend process), when running.
    pub backend_rss_bytes: Option<u64>,
    pub system_total_bytes: u64,
    pub system_available_bytes: u64,
    pub system_used_bytes: u64,
}

pub struct Telemetry {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    pub chat_queued: Gauge,
    pub chat_active: Gauge,
    /// Chats refused with 429 because the queue was full.
    pub chat_refused: Counter,
    /// Open HTTP connections.
    pub connections: Gauge,
    memory: Arc<MemoryProbe>,
    samples: Mutex<VecDeque<MemorySample>>,
    stage_snapshot: SharedSnapshot,
}

type SharedSnapshot = Arc<Mutex<Option<(Instant, Arc<Vec<crate::metrics::StageStats>>)>>>;

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

impl Telemetry {
    pub fn new(stages: Arc<StageRegistry>, backend: Arc<dyn ChatBackend>, cache: Option<Arc<ResponseCache>>, started: Instant) -> Telemetry {
        let mut registry = Registry::with_prefix("roxy");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by endpoint, method and status", requests.clone());
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response headers, by endpoint (a streamed answer's body continues after)",
            latency.clone(),
        );
        let chat_queued = Gauge::default();
        registry.register("chat_queued", "Chat completions waiting for a free slot (api.concurrency)", chat_queued.clone());
        let chat_active = Gauge::default();
        registry.register("chat_active", "Chat completions being generated now", chat_active.clone());
        let chat_refused = Counter::default();
        registry.register("chat_refused", "Chat completions refused with 429 because the queue was full", chat_refused.clone());
        let connections = Gauge::default();
        registry.register("http_connections", "Open HTTP connections", connections.clone());
        let memory = Arc::new(MemoryProbe::new(backend, started));
        registry.register_collector(Box::new(ProcessCollector { memory: memory.clone(), started }));
        let stage_snapshot = SharedSnapshot::default();
        registry.register_collector(Box::new(StageCollector { stages, snapshot: stage_snapshot.clone() }));
        if let Some(cache) = cache {
            registry.register_collector(Box::new(CacheCollector { cache, last: Mutex::new(None) }));
        }
        Telemetry {
            registry,
            requests,
            latency,
            chat_queued,
            chat_active,
            chat_refused,
            connections,
            memory,
            samples: Mutex::new(VecDeque::with_capacity(MEMORY_SAMPLES)),
            stage_snapshot,
        }
    }

    /// `endpoint` is a route (or `unmatched`); any method outside HTTP's own is counted as
    /// `other`, so made-up methods cannot grow the label set.
    pub fn observe_request(&self, endpoint: &str, method: &str, status: u16, elapsed: Duration) {
        const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];
        let method = METHODS.into_iter().find(|m| *m == method).unwrap_or("other");
        let labels = EndpointLabels { endpoint: endpoint.to_string(), method: method.to_string() };
        self.latency.get_or_create(&labels).observe(elapsed.as_secs_f64());
        self.requests.get_or_create(&RequestLabels { endpoint: labels.endpoint, method: labels.method, status }).inc();
    }

    /// The whole exposition, `# EOF` included.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// A fresh reading (not the cached one), added to the trend.
    pub fn sample_memory(&self) -> MemorySample {
        let sample = self.memory.read_now();
        let mut samples = lock(&self.samples);
        if samples.len() == MEMORY_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(sample.clone());
        sample
    }

    pub fn current_memory(&self) -> MemorySample {
        self.memory.read()
    }

    pub fn memory_samples(&self) -> Vec<MemorySample> {
        lock(&self.samples).iter().cloned().collect()
    }

    pub fn clear_memory_samples(&self) {
        lock(&self.samples).clear();
    }

    /// After the stage registry is reset, the next scrape must not show the old figures.
    pub fn forget_stage_snapshot(&self) {
        *lock(&self.stage_snapshot) = None;
    }
}

struct MemoryProbe {
    backend: Arc<dyn ChatBackend>,
    started: Instant,
    system: Mutex<sysinfo::System>,
    last: Mutex<Option<(Instant, MemorySample)>>,
}

impl MemoryProbe {
    fn new(backend: Arc<dyn ChatBackend>, started: Instant) -> Self {
        MemoryProbe { backend, started, system: Mutex::new(sysinfo::System::new()), last: Mutex::new(None) }
    }

    /// A reading at most [`MEMORY_FRESH`] old.
    fn read(&self) -> MemorySample {
        if let Some((at, sample)) = lock(&self.last).as_ref() {
            if at.elapsed() < MEMORY_FRESH {
                return sample.clone();
            }
        }
        self.read_now()
    }

    fn read_now(&self) -> MemorySample {
        use sysinfo::{MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate};
        let pid = Pid::from_u32(std::process::id());
        let mut sample = {
            let mut system = lock(&self.system);
            system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
            system.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), false, ProcessRefreshKind::nothing().with_memory());
            let (rss_bytes, vms_bytes) = system.process(pid).map_or((0, 0), |p| (p.memory(), p.virtual_memory()));
            MemorySample {
                unix_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
                uptime_s: self.started.elapsed().as_secs_f64(),
                rss_bytes,
                vms_bytes,
                backend_rss_bytes: None,
                system_total_bytes: system.total_memory(),
                system_available_bytes: system.available_memory(),
                system_used_bytes: system.used_memory(),
            }
        };
        sample.backend_rss_bytes = self.backend.external_memory_bytes();
        *lock(&self.last) = Some((Instant::now(), sample.clone()));
        sample
    }
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue + std::fmt::Debug>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: V,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

#[derive(Debug)]
struct ProcessCollector {
    memory: Arc<MemoryProbe>,
    started: Instant,
}

impl std::fmt::Debug for MemoryProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryProbe")
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = self.memory.read();
        gauge(&mut encoder, "uptime_seconds", "Seconds since the API started", self.started.elapsed().as_secs_f64())?;
        gauge(&mut encoder, "process_resident_memory_bytes", "Resident memory (RSS) of this process", m.rss_bytes as i64)?;
        gauge(&mut encoder, "process_virtual_memory_bytes", "Virtual memory (VMS) of this process", m.vms_bytes as i64)?;
        if let Some(rss) = m.backend_rss_bytes {
            gauge(&mut encoder, "llm_worker_resident_memory_bytes", "Resident memory of the LLM worker process", rss as i64)?;
        }
        gauge(&mut encoder, "system_memory_total_bytes", "Physical memory of the machine", m.system_total_bytes as i64)?;
        gauge(&mut encoder, "system_memory_available_bytes", "Memory available to new work without swapping", m.system_available_bytes as i64)?;
        gauge(&mut encoder, "system_memory_used_bytes", "Memory in use on the machine", m.system_used_bytes as i64)?;
        Ok(())
    }
}

/// The voice loop's per-stage histograms ([`crate::metrics::Registry`]), as quantile gauges.
struct StageCollector {
    stages: Arc<StageRegistry>,
    snapshot: SharedSnapshot,
}

impl std::fmt::Debug for StageCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StageCollector")
    }
}

impl Collector for StageCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = {
            let mut cached = lock(&self.snapshot);
            match cached.as_ref() {
                Some((at, stats)) if at.elapsed() < STAGES_FRESH => stats.clone(),
                _ => {
                    let stats = Arc::new(self.stages.snapshot());
                    *cached = Some((Instant::now(), stats.clone()));
                    stats
                }
            }
        };
        if stats.is_empty() {
            return Ok(());
        }
        let s = |ms: f64| ms / 1000.0;
        {
            let mut family = encoder.encode_descriptor("stage_samples", "Timed runs of each voice-loop stage", None, MetricType::Counter)?;
            for st in stats.iter() {
                ConstCounter::new(st.count).encode(family.encode_family(&[("stage", st.stage.name())])?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "stage_latency_seconds",
                "Per-stage latency percentiles over the session (HDR histogram, 3 significant digits)",
                None,
                MetricType::Gauge,
            )?;
            for st in stats.iter() {
                for (q, v) in [("0.5", st.p50), ("0.9", st.p90), ("0.95", st.p95), ("0.99", st.p99)] {
                    ConstGauge::new(s(v)).encode(family.encode_family(&[("stage", st.stage.name()), ("quantile", q)])?)?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "stage_recent_latency_seconds",
                "Per-stage latency percentiles over the last 100 runs",
                None,
                MetricType::Gauge,
            )?;
            for st in stats.iter() {
                for (q, v) in [("0.5", st.recent_p50), ("0.9", st.recent_p90)] {
                    ConstGauge::new(s(v)).encode(family.encode_family(&[("stage", st.stage.name()), ("quantile", q)])?)?;
                }
            }
        }
        for (name, help, pick) in [
            ("stage_latency_avg_seconds", "Per-stage mean latency", (|st| st.avg) as fn(&crate::metrics::StageStats) -> f64),
            ("stage_latency_min_seconds", "Per-stage fastest run", |st| st.min),
            ("stage_latency_max_seconds", "Per-stage slowest run", |st| st.max),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for st in stats.iter() {
                ConstGauge::new(s(pick(st))).encode(family.encode_family(&[("stage", st.stage.name())])?)?;
            }
        }
        if stats.iter().any(|st| st.within_target.is_some()) {
            let mut family = encoder.encode_descriptor(
                "stage_within_target",
                "1 when the stage's p90 is within its target, 0 when over (stages without a target are absent)",
                None,
                MetricType::Gauge,
            )?;
            for st in stats.iter() {
                if let Some(within) = st.within_target {
                    ConstGauge::new(i64::from(within)).encode(family.encode_family(&[("stage", st.stage.name())])?)?;
                }
            }
        }
        Ok(())
    }
}

struct CacheCollector {
    cache: Arc<ResponseCache>,
    last: Mutex<Option<(Instant, Option<crate::memory::CacheStats>)>>,
}

impl std::fmt::Debug for CacheCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheCollector")
    }
}

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = {
            let mut last = lock(&self.last);
            match last.as_ref() {
                Some((at, stats)) if at.elapsed() < CACHE_FRESH => stats.clone(),
                _ => {
                    let stats = self.cache.stats().map_err(|e| tracing::warn!("cache stats for /metrics: {e}")).ok();
                    *last = Some((Instant::now(), stats.clone()));
                    stats
                }
            }
        };
        let Some(stats) = stats else { return Ok(()) };
        let kind = |k: CacheKind| match k {
            CacheKind::LlmText => "llm",
            CacheKind::TtsAudio => "tts",
            CacheKind::Skill => "skill",
        };
        {
            let mut family = encoder.encode_descriptor("cache_hit_ratio", "Response cache hits / lookups, by kind (0 before any lookup)", None, MetricType::Gauge)?;
            for k in &stats.kinds {
                ConstGauge::new(k.hit_rate).encode(family.encode_family(&[("kind", kind(k.kind))])?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor("cache_hits", "Response cache hits, by kind", None, MetricType::Counter)?;
            for k in &stats.kinds {
                ConstCounter::new(k.hits).encode(family.encode_family(&[("kind", kind(k.kind))])?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor("cache_misses", "Response cache misses, by kind", None, MetricType::Counter)?;
            for k in &stats.kinds {
                ConstCounter::new(k.misses).encode(family.encode_family(&[("kind", kind(k.kind))])?)?;
            }
        }
        gauge(&mut encoder, "cache_size_bytes", "Response cache size on disk", stats.total_bytes as i64)?;
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
