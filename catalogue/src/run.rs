//! One load-test run as the report reads it (built by the report from the run folder): the
//! view the experiments' and faults' words and checks are written against.

use std::collections::BTreeMap;

/// One load-test run, as the report needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Run {
    pub id: String,
    pub scenario: String,
    pub profile: String,
    pub runtime: String,
    pub gateways: u32,
    pub users: u32,
    pub started: String,
    pub duration_secs: f64,
    pub requests: u64,
    pub failures: u64,
    pub rps: f64,
    pub error_pct: f64,
    pub latency: Latency,
    /// Server-side hit ratio from the gateways' counters (None when not scraped).
    pub hit_ratio: Option<f64>,
    pub sla_met: Option<bool>,
    /// Each SLA rule's verdict (runs recorded before the rules have none).
    pub sla_rules: Vec<records::record::SlaCheck>,
    pub sla_p95_ms: Option<f64>,
    pub generator_saturated: bool,
    /// How the load was offered, in words: the model, and the generators when several.
    pub load_model: String,
    pub commit: String,
    pub host: String,
    /// Mean think time per iteration in ms (0 with NO_THINK).
    pub think_ms: f64,
    pub by_backend: BTreeMap<String, f64>,
    /// Knobs recorded from the stack's `/config`.
    pub knobs: Knobs,
    pub series: Series,
    /// (percentile, ms) over every request, from Goose's aggregated row.
    pub percentiles: Vec<(f64, f64)>,
    /// Latency (ms) of the route that carries the scenario (`/data`, `/process`), p50.
    pub route_p50_ms: Option<f64>,
    /// p50, p95 and p99 (ms) of the successful requests only, where the run recorded them.
    pub ok_latency: Option<Percentiles>,
    /// (percentile, ms) of the successful requests only, where the run recorded them.
    pub ok_percentiles: Vec<(f64, f64)>,
    /// Service time measured one request at a time before the load (`calibration.p50_ms`).
    pub calibrated_ms: Option<f64>,
    /// Successful requests per second of the scenario's routes (logins left out): the
    /// throughput comparisons and predictions are about.
    pub goodput: f64,
    /// Users started per second (the profile's rate).
    pub rate: f64,
    /// Mean share of the whole machine's CPU that was busy during the run (0..=1).
    pub host_cpu_busy: Option<f64>,
    /// Cores of the machine the load generator ran on (the stack's, on one machine).
    pub machine_cores: Option<u32>,
    /// The gateways' CPU per request served (ms), from their process CPU counters.
    pub gateway_cpu_ms: Option<f64>,
    /// Worker samples over time, where the run sampled the worker (long tasks).
    pub queue: Vec<QueueSample>,
    /// The experiment the run belongs to: (name, side).
    pub experiment: Option<(String, String)>,
    /// Gateways in the load balancer's rotation, (seconds into the run, count), each second.
    pub in_rotation: Vec<(f64, f64)>,
    /// The autoscaler's decisions, `t` moved to seconds into the run.
    pub autoscaler: Vec<records::record::AutoscalerSample>,
    /// What the lab measured on the stack's counters (runs of `make experiment`).
    pub measured: Option<crate::record::ExperimentRecord>,
    /// End-to-end job times and counts (long-task runs).
    pub longtask: Option<records::record::LongtaskSummary>,
    /// What a fault experiment did and when (runs of `make fault`).
    pub fault: Option<crate::record::FaultRecord>,
    /// Unix time of second 0 of the run (its first server sample).
    pub at0: Option<f64>,
    /// Requests the load balancer sent to a second gateway over the run.
    pub lb_retries: Option<f64>,
    /// Unix time of second 0 of the per-second latency and status series (the attack's
    /// start), where the run recorded it.
    pub series_t0: Option<f64>,
    /// Answers per second by status class (`2xx`, `5xx`, `none`, …) and by status.
    pub status_classes: BTreeMap<String, Vec<u64>>,
    pub statuses: BTreeMap<u16, Vec<u64>>,
    /// The servers' counters each second (`server.jsonl`), for the fault timelines.
    pub server: Vec<records::record::ServerSample>,
    /// The 503s the load generator got and how many lacked `Retry-After`.
    pub shed: records::record::Shed,
    /// Mean time a request held a gateway's limiter slot under the run's load (ms), and the
    /// share of slot holders that were successful requests of the scenario (the rest:
    /// logins, failures).
    pub slot_hold_ms: Option<f64>,
    pub slot_share: Option<f64>,
    /// Requests, failures and statuses per route (`GET /data`, `POST /login`, …).
    pub routes: BTreeMap<String, records::record::RouteRecord>,
    /// The open model: its schedule's arrivals (sent, dropped), the send lag and the service
    /// time beside the latency.
    pub arrivals: Option<records::record::Arrivals>,
}

/// p50, p95 and p99 in ms.
pub type Percentiles = (f64, f64, f64);

/// One second of the worker's queue, from `server.jsonl`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueSample {
    pub t: f64,
    /// Jobs in the stream not yet delivered to any worker (the queue proper).
    pub waiting: f64,
    /// Delivered to a worker but not yet acknowledged.
    pub pending: f64,
    pub in_progress: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency {
    pub avg: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// The settings that bound capacity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Knobs {
    /// Per gateway; 0 means unlimited.
    pub max_in_flight: u32,
    pub cache_enabled: bool,
    pub microservice_pool: Option<u32>,
    /// Microservice instances (each with its own pool of `microservice_pool`).
    pub microservices: u32,
    /// CPUs each gateway may use (a container limit); None = no limit.
    pub gateway_cpu_limit: Option<f64>,
    /// Cores of the machine the gateways run on.
    pub gateway_host_cores: Option<u32>,
    pub max_queue: Option<u32>,
    pub cache_ttl_secs: Option<u32>,
    /// The microservice's deliberate delay per request.
    pub db_delay_ms: Option<u32>,
}

/// Per-second series (index = second of the run).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub rps: Vec<f64>,
    pub errors: Vec<f64>,
    pub users: Vec<f64>,
    /// Average latency per second over the measured routes (ms).
    pub avg_ms: Vec<f64>,
    /// Percentiles per second (ms) from `latency_per_second.json`; empty without it, and
    /// None for a second without requests.
    pub p50_ms: Vec<Option<f64>>,
    pub p95_ms: Vec<Option<f64>>,
    pub p99_ms: Vec<Option<f64>>,
    /// The open model: each second's p99 service time (from the real send; the percentiles
    /// above run from the intended send) and its dropped arrivals.
    pub service_p99_ms: Vec<Option<f64>>,
    pub dropped: Vec<f64>,
    /// The scenario's requests sent each second (the rest of the series count answers).
    pub sent: Vec<f64>,
}
