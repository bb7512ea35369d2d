//! Asking a running Roxy for its figures (what `roxy stats` does first).

use crate::metrics::StageStats;
use std::time::Duration;

/// The live stage table from the Roxy API on 127.0.0.1:`port`, or `None` when nothing (or
/// something that is not Roxy) answers there within a moment.
pub fn live_stats(port: u16) -> Option<Vec<StageStats>> {
    #[derive(serde::Deserialize)]
    struct Latency {
        stages: Vec<StageStats>,
    }
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_millis(300))
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .ok()?;
    let response = client.get(format!("http://127.0.0.1:{port}/metrics/latency")).send().ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = response.bytes().ok()?;
    serde_json::from_slice::<Latency>(&body).ok().map(|l| l.stages)
}
