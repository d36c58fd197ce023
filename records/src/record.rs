//! The record of a load-test run, as files in `tests/results/<run-id>/`: one typed definition
//! for the load generator that writes it, the report that reads it and the lab that checks it.
//!
//! - `run.json`: [`RunRecord`]
//! - `server.jsonl`: a [`ServerSample`] per line, one a second
//! - `latency_per_second.json`: [`LatencyPerSecond`]
//! - `autoscaler.jsonl`: an [`AutoscalerSample`] per decision (autoscaled runs)
//! - `<run-id>-breakpoint/breakpoint.json`: [`BreakpointRecord`]
//! - `experiment.json`, `fault.json`: what the lab measured or did beside a run (in the
//!   `catalogue` crate, beside the experiments and faults that write them)
//!
//! `schema_version` says which shape a record has. Version 1 (no field) is the shape written
//! before the field existed and still reads; a record from a newer scalelab is refused with a
//! message saying so.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

// The series over time (`server.jsonl`, `autoscaler.jsonl`, `latency_per_second.json`) live
// in `series`, under this module's path too.
pub use crate::series::*;

/// The shape written now. 2: `schema_version` itself, `experiment`.
pub const SCHEMA_VERSION: u32 = 2;

fn version_one() -> u32 {
    1
}

/// `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    #[serde(default = "version_one")]
    pub schema_version: u32,
    #[serde(default)]
    pub run_id: Option<String>,
    pub scenario: String,
    #[serde(default)]
    pub profile: String,
    #[serde(default)]
    pub load: Load,
    /// The `mixed` scenario's key law (other scenarios have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Keys>,
    /// [min, max] per iteration; None with NO_THINK.
    #[serde(default)]
    pub think_time_ms: Option<[u64; 2]>,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub runtime: String,
    #[serde(default)]
    pub gateways: u32,
    /// The experiment this run belongs to, its side and the settings it flipped.
    #[serde(default)]
    pub experiment: Option<Experiment>,
    #[serde(default)]
    pub started: String,
    #[serde(default)]
    pub ended: String,
    /// The window every count and rate of this record is taken over: seconds from the
    /// first request sent to the last answer received (the load's `DURATION_SECS`, plus
    /// the answers its users still waited for when it ended). Records before this
    /// definition held Goose's whole seconds from the first user's start to the stop.
    #[serde(default)]
    pub duration_secs: f64,
    pub latency_ms: LatencySummary,
    pub requests: u64,
    #[serde(default)]
    pub failures: u64,
    #[serde(default)]
    pub error_pct: f64,
    pub rps: f64,
    #[serde(default)]
    pub by_route: BTreeMap<String, RouteRecord>,
    #[serde(default)]
    pub cache_seen_by_client: CacheSeen,
    #[serde(default)]
    pub longtask: Option<LongtaskSummary>,
    #[serde(default)]
    pub relogins: u64,
    /// The 503s the load generator got, and how many lacked `Retry-After`.
    #[serde(default)]
    pub shed: Shed,
    #[serde(default)]
    pub server: ServerSummary,
    #[serde(default)]
    pub stack: Stack,
    #[serde(default)]
    pub calibration: Option<Calibration>,
    #[serde(default)]
    pub generator: Generator,
    /// How the load was offered: `closed` (each user waits for its answer, then thinks) or
    /// `open` (a fixed arrival rate, whatever the answers take).
    #[serde(default)]
    pub model: LoadModel,
    /// Open model: the schedule's arrivals, sent or dropped, and the second clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<Arrivals>,
    /// Each load generator's part when several ran (empty for one): the run's totals are
    /// their sums, its percentiles those of their merged raw latencies.
    #[serde(default)]
    pub generators: Vec<GeneratorPart>,
    /// Where the generators ran against the stack's CPUs: pinned apart, or why not.
    #[serde(default)]
    pub generator_pinning: Option<String>,
    #[serde(default)]
    pub sla: Sla,
    #[serde(default)]
    pub host: HostInfo,
    #[serde(default)]
    pub versions: Versions,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Load {
    pub users: usize,
    /// Users started per second while they start.
    pub rate: f64,
    /// The whole load's length, its users' start included (`DURATION_SECS`).
    pub duration_secs: u64,
    /// The first seconds of it in which the users start (`users / rate` for the profiles
    /// that start every user and hold them; a `stages` run's ramp-up, a `wave`'s first step).
    pub ramp_secs: f64,
}

impl Load {
    /// The seconds every user is held once all have started: the rest of the run in whole
    /// seconds as Goose takes them (rounded down: the load never outlasts DURATION_SECS),
    /// at least 1.
    pub fn hold_secs(&self) -> u64 {
        (self.duration_secs as f64 - self.ramp_secs)
            .floor()
            .max(1.0) as u64
    }
}

/// The keys of the `mixed` scenario: key k (rank 1 to `key_space`) drawn with the Zipf law's
/// probability k^−s / H(N, s), where H(N, s) = Σ_{i=1..N} i^−s (s = 0: uniform).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Keys {
    pub distribution: KeyLaw,
    pub key_space: u64,
    pub zipf_s: f64,
    /// The hottest key's share of the draws, 1 / H(N, s): what the sampler is tested against.
    pub hottest_share: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyLaw {
    #[default]
    Zipf,
}

impl Keys {
    pub fn zipf(key_space: u64, zipf_s: f64) -> Self {
        Self {
            distribution: KeyLaw::Zipf,
            key_space,
            zipf_s,
            hottest_share: 1.0 / harmonic(key_space, zipf_s),
        }
    }

    /// The share of draws that go to the `k` hottest keys: H(k, s) / H(N, s).
    pub fn top_share(&self, k: u64) -> f64 {
        harmonic(k.min(self.key_space), self.zipf_s) / harmonic(self.key_space, self.zipf_s)
    }
}

/// The generalised harmonic number H(n, s) = Σ_{i=1..n} i^−s: summed exactly up to 100,000
/// terms; beyond, the first 10,000 summed and the rest as the integral of x^−s from
/// 10,000.5 to n + 0.5 (the midpoint rule, exact to about 1e−12 there).
pub fn harmonic(n: u64, s: f64) -> f64 {
    const EXACT: u64 = 100_000;
    const HEAD: u64 = 10_000;
    let sum = |to: u64| (1..=to).map(|i| (i as f64).powf(-s)).sum::<f64>();
    if n <= EXACT {
        return sum(n);
    }
    let (a, b) = (HEAD as f64 + 0.5, n as f64 + 0.5);
    let tail = if (s - 1.0).abs() < 1e-12 {
        (b / a).ln()
    } else {
        (b.powf(1.0 - s) - a.powf(1.0 - s)) / (1.0 - s)
    };
    sum(HEAD) + tail
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Experiment {
    pub name: String,
    /// `A`, `B`, …
    pub side: String,
    /// NAME=value of each setting this side sets.
    pub settings: BTreeMap<String, String>,
}

/// Milliseconds; the percentiles are None where the run had none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LatencySummary {
    pub avg: f64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteRecord {
    pub requests: u64,
    pub failures: u64,
    pub status_codes: BTreeMap<u16, u64>,
    pub latency_ms: LatencySummary,
    /// Open model: from each request's real send (`latency_ms` runs from its intended one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_ms: Option<LatencySummary>,
}

/// The `X-Cache` answers the load generator saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheSeen {
    pub hit: u64,
    pub miss: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LongtaskSummary {
    pub submitted: u64,
    pub done: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub end_to_end_ms: JobTimes,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobTimes {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

/// A measurement, or why it could not be taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Measured<T> {
    // First: untagged variants are tried in order, and a lenient T would take `{"error"}`.
    Failed { error: String },
    Ok(T),
}

impl<T> Measured<T> {
    pub fn ok(&self) -> Option<&T> {
        match self {
            Measured::Ok(v) => Some(v),
            Measured::Failed { .. } => None,
        }
    }
}

/// 503 answers seen by the load generator: shedding must say when to come back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Shed {
    pub answers_503: u64,
    pub without_retry_after: u64,
}

/// What the servers counted over the run (differences between the first and last sample).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSummary {
    pub samples: usize,
    /// The load balancer's requests per gateway address.
    pub requests_by_backend: Option<BTreeMap<String, f64>>,
    pub cache: Option<Measured<GatewayCache>>,
    pub gateway_cpu: Option<GatewayCpu>,
    pub host_cpu_busy: Option<HostCpuBusy>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayCache {
    pub hit: f64,
    pub miss: f64,
    pub error: f64,
    pub hit_ratio: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayCpu {
    pub seconds: f64,
    pub requests: f64,
    pub per_request_ms: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostCpuBusy {
    pub mean: f64,
    pub max: f64,
    pub samples: usize,
}

/// The settings in force, from each service's `/config` (never guessed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stack {
    pub load_balancer: Option<ServiceConfig>,
    /// By gateway address.
    pub gateways: BTreeMap<String, Option<ServiceConfig>>,
    pub microservice: Option<ServiceConfig>,
}

impl Stack {
    /// The first gateway's settings (every gateway runs the same ones).
    pub fn gateway(&self) -> Option<&ServiceConfig> {
        self.gateways.values().flatten().next()
    }
}

/// The part of a service's `/config` the report reads; the rest is kept as it came.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceConfig {
    pub max_in_flight: Option<u32>,
    pub max_queue: Option<u32>,
    pub cache_enabled: Option<bool>,
    pub cache_ttl_secs: Option<u32>,
    pub db_pool_size: Option<u32>,
    pub db_delay_ms: Option<u32>,
    pub microservice_url: Option<String>,
    /// The gateway's: every microservice MICROSERVICE_URL resolved to when it was read.
    pub microservice_instances: Option<Vec<String>>,
    pub host: Option<HostLimits>,
    /// Set instead of the rest when `/config` could not be read.
    pub error: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// The cores a service sees and its container's CPU limit (`/config`'s `host`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostLimits {
    pub cores: Option<u32>,
    pub cpu_limit: Option<f64>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// Service time measured one request at a time before the load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Calibration {
    pub requests: usize,
    pub failed: usize,
    pub p50_ms: Option<f64>,
    pub min_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Generator {
    /// Its process's CPU (user + system) over the load, seconds.
    pub cpu_seconds: f64,
    pub cpu_per_request_us: f64,
    /// `cpu_seconds` over the run's window and every core of the machine.
    pub share_of_machine: f64,
    /// It kept more than 80 % of the one core it runs on busy: its latencies include its
    /// own queueing (GENERATORS=K spreads the load over K generators).
    pub saturated: bool,
}

/// The load model of a run: what was really done, nothing claimed that was not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadModel {
    /// `closed` or `open`.
    pub kind: String,
    /// Open model: requests per second offered, across every generator, at the start and
    /// (a ramp) at the end of the schedule.
    pub arrival_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_arrival_rate: Option<f64>,
    /// Open model: `constant` or `poisson` spacing, and the seed of the Poisson draws.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spacing: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Open model: requests in flight at most (each generator's share); an arrival that
    /// finds them all busy is dropped and counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    /// Where a request's latency starts: `intended send` (open: the schedule's time, so a
    /// stall's wait is counted) or `send` (closed: a user sends when its last answer came).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_from: Option<String>,
}

/// What became of an open run's schedule: every arrival it meant to send was sent (late or
/// on time) or dropped, none skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Arrivals {
    /// Arrivals the schedule held.
    pub scheduled: u64,
    /// Sent, each timed from its intended send.
    pub sent: u64,
    /// Found every request slot busy (MAX_IN_FLIGHT): not sent, counted.
    pub dropped: u64,
    /// How late the sends were against the schedule.
    pub send_lag_ms: Lag,
    /// Service time of every request: from its real send to its answer (`latency_ms` runs
    /// from its intended send).
    pub service_ms: LatencySummary,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Lag {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: f64,
}

/// One load generator of a run made by several.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GeneratorPart {
    pub index: usize,
    pub users: usize,
    pub requests: u64,
    pub failures: u64,
    pub cpu_seconds: f64,
    pub cpu_per_request_us: f64,
    /// The CPUs it was pinned to (`taskset`), when it was.
    pub cpus: Option<String>,
    /// Milliseconds its load started after the first generator's.
    pub start_offset_ms: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sla {
    pub p95_ms: Option<f64>,
    pub error_pct: Option<f64>,
    pub met: Option<bool>,
    pub failed_rules: Vec<String>,
    /// Each rule of the run's SLA (`records::sla`) with its verdict.
    pub rules: Vec<SlaCheck>,
}

/// One SLA rule's verdict on a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlaCheck {
    /// As the SLA setting wrote it: `p95<500ms`, `GET /data:p99<1s`.
    pub rule: String,
    /// What the run measured (None: nothing to measure, which fails the rule).
    pub observed: Option<f64>,
    /// `ms`, `%` or `req/s`.
    pub unit: String,
    pub passed: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostInfo {
    pub cpu: Option<String>,
    pub cores: Option<u32>,
    pub memory_gib: Option<f64>,
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Versions {
    pub scalelab: Option<String>,
    pub goose: Option<String>,
    pub git_commit: Option<String>,
    pub kernel: Option<String>,
}

/// `breakpoint.json`: a step-load search, each step a run of its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BreakpointRecord {
    #[serde(default)]
    pub scenario: String,
    #[serde(default)]
    pub sla: Sla,
    #[serde(default)]
    pub start_users: usize,
    #[serde(default)]
    pub step_users: usize,
    #[serde(default)]
    pub step_secs: u64,
    #[serde(default)]
    pub max_steps: usize,
    pub steps: Vec<BreakpointStep>,
    #[serde(default)]
    pub highest_passing: Option<BreakpointStep>,
    #[serde(default)]
    pub first_failing: Option<BreakpointStep>,
    #[serde(default)]
    pub broke: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BreakpointStep {
    pub step: usize,
    pub users: usize,
    pub run_id: Option<String>,
    pub rps: f64,
    pub p95_ms: Option<f64>,
    pub error_pct: f64,
    pub sla_met: bool,
    pub generator_saturated: bool,
}

/// Reads a JSON file into `T`; errors are one line naming what is wrong ("not JSON: …",
/// "no `latency_ms` (a partial run?)", "written by a newer scalelab …").
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let version = value
        .get("schema_version")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    if version > u64::from(SCHEMA_VERSION) {
        return Err(format!(
            "schema version {version} was written by a newer scalelab (this one reads up to {SCHEMA_VERSION}); update this checkout"
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        let text = e.to_string();
        match text
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            Some(field) => format!("no `{field}` (a partial run?)"),
            None => format!("not a run record of schema version {version}: {text}"),
        }
    })
}

impl RunRecord {
    pub fn read(dir: &Path) -> Result<RunRecord, String> {
        read_json(&dir.join("run.json"))
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("run.json"), text)
    }

    /// Successful requests of the scenario's routes (logins left out) per second.
    pub fn goodput(&self) -> f64 {
        let scenario: Vec<&RouteRecord> = scenario_routes(&self.by_route).collect();
        let ok = if scenario.is_empty() {
            self.requests.saturating_sub(self.failures) as f64
        } else {
            scenario
                .iter()
                .map(|r| r.requests.saturating_sub(r.failures) as f64)
                .sum()
        };
        per_second(ok, self.duration_secs)
    }
}

/// The routes of a run's scenario: every route but the logins, which are its users'
/// set-up. The one rule for goodput, the report's bounds and the per-second series.
pub fn scenario_routes(
    by_route: &BTreeMap<String, RouteRecord>,
) -> impl Iterator<Item = &RouteRecord> {
    by_route
        .iter()
        .filter(|(name, _)| !is_login(name))
        .map(|(_, r)| r)
}

/// Whether a route (`POST /login`, `/login`) is the login.
pub fn is_login(route: &str) -> bool {
    route.contains("/login")
}

/// Every line of `autoscaler.jsonl` that parses (none for a run without the autoscaler).
pub fn read_autoscaler(dir: &Path) -> Vec<AutoscalerSample> {
    std::fs::read_to_string(dir.join("autoscaler.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Every line of `server.jsonl` that parses.
pub fn read_server_samples(dir: &Path) -> Vec<ServerSample> {
    std::fs::read_to_string(dir.join("server.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn harmonic_numbers_exact_and_for_large_key_spaces() {
        assert!((super::harmonic(1000, 1.0) - 7.485470860550345).abs() < 1e-12);
        assert_eq!(super::harmonic(3, 0.0), 3.0);
        // Past the exact range, within 1e-9 of the sum.
        let n = 300_000;
        let exact: f64 = (1..=n).map(|i| (i as f64).powf(-1.2)).sum();
        assert!((super::harmonic(n, 1.2) - exact).abs() < 1e-9);
        let exact: f64 = (1..=n).map(|i| 1.0 / i as f64).sum();
        assert!((super::harmonic(n, 1.0) - exact).abs() < 1e-9);
    }

    use super::*;

    #[test]
    fn a_version_one_record_without_most_fields_still_reads() {
        let v: RunRecord = serde_json::from_str(
            r#"{"scenario":"hit","requests":10,"rps":1.0,"latency_ms":{"avg":1.0,"p95":3},
                "server":{"cache":{"error":"no gateway's metrics were reachable"}},
                "stack":{"gateways":{"a":{"max_in_flight":4,"host":{"cores":2}},"b":null}}}"#,
        )
        .unwrap();
        assert_eq!(v.schema_version, 1);
        assert_eq!(v.latency_ms.p95, Some(3.0));
        assert!(matches!(v.server.cache, Some(Measured::Failed { .. })));
        assert_eq!(v.stack.gateway().and_then(|g| g.max_in_flight), Some(4));
        assert_eq!(
            v.stack.gateway().and_then(|g| g.host.as_ref()?.cores),
            Some(2)
        );
    }

    #[test]
    fn newer_and_partial_records_are_refused_with_a_reason() {
        let dir = std::env::temp_dir().join(format!("record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("run.json"),
            r#"{"schema_version": 99, "scenario": "hit"}"#,
        )
        .unwrap();
        let err = RunRecord::read(&dir).unwrap_err();
        assert!(err.contains("newer scalelab"), "{err}");
        std::fs::write(
            dir.join("run.json"),
            r#"{"scenario": "hit", "requests": 1, "rps": 1}"#,
        )
        .unwrap();
        let err = RunRecord::read(&dir).unwrap_err();
        assert_eq!(err, "no `latency_ms` (a partial run?)");
        std::fs::write(dir.join("run.json"), "{").unwrap();
        assert!(RunRecord::read(&dir).unwrap_err().starts_with("not JSON"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_gateway_sample_is_a_measurement_or_an_error() {
        let s: ServerSample = serde_json::from_str(
            r#"{"t":1.0,"gateways":{"a":{"requests":5,"cpu_seconds":0.5},"b":{"error":"refused"}}}"#,
        )
        .unwrap();
        assert_eq!(s.gateways["a"].ok().map(|g| g.requests), Some(5.0));
        assert!(s.gateways["b"].ok().is_none());
    }
}
