//! The series a run records over time, second by second or decision by decision:
//! `server.jsonl` ([`ServerSample`]: each service's counters), `autoscaler.jsonl`
//! ([`AutoscalerSample`]) and `latency_per_second.json` ([`LatencyPerSecond`]). Part of the
//! run record: `crate::record` re-exports them under its own path.

use crate::record::Measured;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One line of `server.jsonl`: the servers' counters at `t` seconds into the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSample {
    pub t: f64,
    /// Unix time of the sample (lines it up with the autoscaler's decisions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<f64>,
    /// The load balancer's metrics could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_by_backend: Option<BTreeMap<String, f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backends_healthy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<f64>,
    pub gateways: BTreeMap<String, Measured<GatewaySample>>,
    /// Share of the machine's CPU busy since the previous sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_cpu_busy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<Measured<WorkerSample>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub microservice: Option<Measured<MicroserviceSample>>,
}

/// One decision of the autoscaler (`autoscaler.jsonl`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoscalerSample {
    /// Unix time of the decision.
    pub at: f64,
    /// Seconds since the autoscaler started.
    pub t: f64,
    pub metric_name: String,
    /// The ready gateways' average over the sync period (None: none reported it).
    pub metric: Option<f64>,
    pub target: f64,
    pub tolerance: f64,
    /// Gateways in rotation (with or without a metric), starting, and without a metric.
    pub ready: u32,
    pub not_ready: u32,
    pub missing: u32,
    pub current: u32,
    pub proposed: u32,
    pub stabilized: u32,
    pub desired: u32,
    pub reason: String,
    /// How long the runtime took to reach `desired` (a scale happened).
    pub scale_secs: Option<f64>,
    pub error: Option<String>,
}

/// A gateway's counters (totals since it started).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewaySample {
    pub requests: f64,
    pub cache_hit: f64,
    pub cache_miss: f64,
    pub cache_error: f64,
    pub limiter_rejected: f64,
    /// Seconds requests held a limiter slot, and how many did (`limiter_slot_seconds`).
    pub slot_seconds: f64,
    pub slot_holds: f64,
    pub cpu_seconds: f64,
    /// The process's start (unix seconds): a change between samples is a restart.
    pub started_at: f64,
}

/// The microservice's counters and its pool's gauges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MicroserviceSample {
    pub requests: f64,
    /// Requests answered 503 (no database connection within its timeout, too many clients).
    pub unavailable: f64,
    pub pool_open: f64,
    pub pool_available: f64,
    /// Requests waiting for a pooled connection.
    pub pool_waiting: f64,
    pub started_at: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerSample {
    pub queue_length: f64,
    pub queue_pending: f64,
    pub queue_lag: f64,
    pub jobs_in_progress: f64,
    pub jobs_processed: f64,
    /// Jobs this worker took over from a worker that died holding them.
    pub jobs_reclaimed: f64,
    /// Replayed jobs whose result was already stored (stored once, not twice).
    pub duplicates_absorbed: f64,
    pub started_at: f64,
}

/// `latency_per_second.json`: index = second of the run; None for a second without requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LatencyPerSecond {
    /// Unix time of second 0 of these series: when the load generator's attack began.
    pub started_at: Option<f64>,
    /// When (ms into the attack) the first user started: its login, or (the users logged in
    /// before the load) its first request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_login_ms: Option<u64>,
    /// The window every count of the run was taken in, in ms into the attack: from the first
    /// request sent to the last answer received (a user stopped at the run's end still gets
    /// the answer it waits for). `run.json`'s `duration_secs` is its length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<[f64; 2]>,
    /// The scenario's requests answered in each second.
    pub requests: Vec<u64>,
    /// The scenario's requests sent in each second: a stall shows here as the requests a
    /// model did or did not send while nothing came back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sent: Vec<u64>,
    pub failures: Vec<u64>,
    /// Answers per second by status class: `2xx`, `4xx`, `5xx`, and `none` for a request
    /// that got no answer (refused, reset, timed out).
    pub status_classes: BTreeMap<String, Vec<u64>>,
    /// Answers per second by exact status, for the classes a fault report tells apart (503
    /// with `Retry-After` is shedding, 502/504 are upstream failures, 500 is a bug).
    pub statuses: BTreeMap<u16, Vec<u64>>,
    pub p50_ms: Vec<Option<f64>>,
    pub p95_ms: Vec<Option<f64>>,
    pub p99_ms: Vec<Option<f64>>,
    /// Open model: each second's service time (from the real send; the percentiles above run
    /// from the intended send), and the arrivals meant for it that were dropped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_p50_ms: Vec<Option<f64>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_p99_ms: Vec<Option<f64>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<u64>,
    /// The whole run's successful requests only: what a user who got an answer waited.
    pub ok: OkLatency,
}

impl LatencyPerSecond {
    /// The length of [`Self::window_ms`] in seconds.
    pub fn window_secs(&self) -> Option<f64> {
        self.window_ms
            .map(|[a, b]| (b - a) / 1000.0)
            .filter(|s| *s > 0.0)
    }
}

/// `count` over `secs` seconds: 0 for a window of no length.
pub fn per_second(count: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        count / secs
    } else {
        0.0
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OkLatency {
    pub requests: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// (percentile, ms) of the successful requests, from p50 to the slowest.
    pub curve: Vec<(f64, f64)>,
}

impl OkLatency {
    /// The percentiles drawn in the report's percentile charts.
    pub const CURVE: [f64; 10] = [50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 99.5, 99.9, 100.0];
}
