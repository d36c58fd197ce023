//! The lab's settings: one table, the only place their defaults are written.
//!
//! A setting has one name everywhere: the environment variable a service reads (and its
//! `--kebab-case` flag), the field of its `/config`, the key in `.env` and in
//! `docker-compose.yml`, and the report's column. `.env.example` is generated from this table
//! (`lab env-example`), and a test checks it and `docker-compose.yml` against the table.
//!
//! Values are resolved as: the table's default, then `.env`, then the process environment
//! (so `MAX_IN_FLIGHT=8 make up` works, as it does with docker compose itself).

use anyhow::{bail, Context};
use std::collections::BTreeMap;

/// A setting's name: `Name::LbPort` is `LB_PORT`; a misspelt one does not compile.
pub use records::names::SettingName as Name;

/// A service of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    LoadBalancer,
    Gateway,
    Microservice,
    Worker,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::Microservice,
        Service::Worker,
        Service::Gateway,
        Service::LoadBalancer,
    ];

    /// The name of its binary, its compose service and its log file.
    pub fn name(self) -> &'static str {
        match self {
            Service::LoadBalancer => "load_balancer",
            Service::Gateway => "gateway",
            Service::Microservice => "microservice",
            Service::Worker => "worker",
        }
    }

    pub fn parse(name: &str) -> anyhow::Result<Service> {
        Service::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .with_context(|| {
                format!(
                    "unknown service {name:?}: one of load_balancer, gateway, microservice, worker"
                )
            })
    }
}

/// Where a setting takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// An environment variable these services read.
    Services(&'static [Service]),
    /// A setting of the compose runtime itself (a container limit, an image password).
    Compose,
    /// A host port the stack publishes (compose) or listens on (native).
    HostPort,
    /// The lab's own: read by the lab (the autoscaler), never passed to a service.
    Lab,
}

/// What a value must look like.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueKind {
    /// A whole number within [min, max].
    Int {
        min: u64,
        max: u64,
    },
    /// A positive decimal number (CPUs).
    Cpus,
    /// A decimal number within [min, max].
    Decimal {
        min: f64,
        max: f64,
    },
    /// Rate policies: `4/15s,100%/15s` (at most 4 replicas, or 100 %, per 15 s).
    Policies,
    Bool,
    /// One of a few words.
    Word(&'static [&'static str]),
    /// Any non-empty text of at least this many characters.
    Text {
        min_len: usize,
    },
    /// A TCP port, 1..=65535.
    Port,
    /// SLA rules (`records::sla`), or empty for the default rules.
    Sla,
    /// An image registry and namespace: `ghcr.io/owner`, `127.0.0.1:5000/scalelab`.
    Registry,
    /// An image tag: `0.1.0`.
    Tag,
    /// A secret that goes into a URL as it is (compose's `DATABASE_URL`): letters, digits,
    /// `.`, `_`, `~`, `-`, at least this many.
    UrlSafe {
        min_len: usize,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: Name,
    pub default: &'static str,
    pub scope: Scope,
    pub kind: ValueKind,
    /// One line for `.env.example` and `lab settings`.
    pub meaning: &'static str,
    /// Left out of printed tables and run records.
    pub secret: bool,
}

const ALL: &[Service] = &[
    Service::LoadBalancer,
    Service::Gateway,
    Service::Microservice,
    Service::Worker,
];
const GW: &[Service] = &[Service::Gateway];
const MS: &[Service] = &[Service::Microservice];
const WK: &[Service] = &[Service::Worker];
const LB: &[Service] = &[Service::LoadBalancer];

const fn s(
    name: Name,
    default: &'static str,
    scope: Scope,
    kind: ValueKind,
    meaning: &'static str,
) -> Setting {
    Setting {
        name,
        default,
        scope,
        kind,
        meaning,
        secret: false,
    }
}

const fn int(min: u64, max: u64) -> ValueKind {
    ValueKind::Int { min, max }
}

/// Every lab setting, grouped as `.env.example` shows them.
pub const TABLE: &[Setting] = &[
    Setting {
        name: Name::JwtSecret,
        default: "",
        scope: Scope::Services(GW),
        kind: ValueKind::Text { min_len: 16 },
        meaning: "Signs the gateways' JWTs; at least 16 characters (make up generates one). Never commit .env.",
        secret: true,
    },
    Setting {
        name: Name::AdminToken,
        default: "",
        scope: Scope::Services(LB),
        kind: ValueKind::Text { min_len: 16 },
        meaning: "Every change through the load balancer's admin port (drain, backend list) carries it; only the lab has it (make up generates one).",
        secret: true,
    },
    // The knobs behind "1 vs 3 gateways".
    s(Name::MaxInFlight, "4", Scope::Services(GW), int(0, 100_000),
      "Requests each gateway serves at once (0 = no limit): a fixed pool of server workers, as in the seed lab."),
    s(Name::MaxQueue, "64", Scope::Services(GW), int(0, 1_000_000),
      "Requests each gateway queues for a slot before it answers 503."),
    s(Name::QueueTimeoutMs, "5000", Scope::Services(GW), int(1, 600_000),
      "Longest wait for a slot."),
    s(Name::MicroserviceTimeoutMs, "5000", Scope::Services(GW), int(1, 600_000),
      "Longest wait for the microservice's answer; past it the gateway answers 504."),
    s(Name::GatewayCpus, "0.5", Scope::Compose, ValueKind::Cpus,
      "CPUs each gateway container may use (compose only)."),
    s(Name::CacheEnabled, "true", Scope::Services(GW), ValueKind::Bool,
      "Cache-aside in Redis for /data and /process."),
    s(Name::CacheTtlSecs, "30", Scope::Services(GW), int(1, 86_400),
      "Lifetime of a cache entry."),
    // The slow path.
    s(Name::DbPoolSize, "10", Scope::Services(MS), int(1, 1000),
      "Postgres connections in the microservice's pool: with the service time, its capacity (Little's law)."),
    s(Name::DbDelayMs, "50", Scope::Services(MS), int(0, 60_000),
      "pg_sleep per microservice request, holding its connection."),
    s(Name::SeedRows, "100000", Scope::Services(MS), int(1, 100_000_000),
      "Rows in the table every microservice request scans."),
    // Tactics (make experiment NAME=...): each a switch of the stack, usable on its own too.
    s(Name::ItemsIndex, "false", Scope::Services(MS), ValueKind::Bool,
      "An index on the column the microservice filters on (created at start when true, dropped when false)."),
    s(Name::DbPoolMode, "pooled", Scope::Services(MS), ValueKind::Word(&["pooled", "per-request"]),
      "pooled: requests borrow DB_POOL_SIZE open connections; per-request: each opens and closes its own."),
    s(Name::MicroserviceClient, "shared", Scope::Services(GW), ValueKind::Word(&["shared", "per-request"]),
      "shared: one keep-alive HTTP client per gateway; per-request: a new client (and connection) per cache miss."),
    s(Name::LongtaskMode, "queued", Scope::Services(GW), ValueKind::Word(&["queued", "inline"]),
      "Where a gateway runs a long task: queued for the worker (202 at once), or inline, inside the request (200 once done: offloading undone)."),
    s(Name::ListingCache, "local", Scope::Services(GW), ValueKind::Word(&["none", "redis", "local"]),
      "Where the gateway caches /listing: nowhere, in Redis (shared), or in each gateway's memory."),
    s(Name::ListingTtlSecs, "10", Scope::Services(GW), int(1, 86_400),
      "Lifetime of a cached listing: the most stale a /listing answer can be."),
    s(Name::ListingDelayMs, "300", Scope::Services(MS), int(0, 60_000),
      "How long the microservice's /listing takes (a slow object-store listing)."),
    s(Name::GatewayThreads, "0", Scope::Services(GW), int(0, 256),
      "Threads of each gateway's runtime and its password checks at once (0 = one per core; 1 = one event loop, like a Node.js process)."),
    // The queue.
    s(Name::WorkerConcurrency, "4", Scope::Services(WK), int(1, 1000),
      "Long tasks the worker runs at once."),
    s(Name::BatchSize, "20", Scope::Services(WK), int(1, 10_000),
      "Task results the worker writes per transaction at most."),
    s(Name::VisibilityTimeoutMs, "30000", Scope::Services(WK), int(300, 3_600_000),
      "A job delivered but not acknowledged for this long is taken over by a live worker (a crashed worker's jobs); a running job's worker renews it."),
    s(Name::MaxAttempts, "5", Scope::Services(WK), int(1, 1_000),
      "Runs of a job at most: one delivered again after that many runs without completing (a poison job) is dead-lettered (status dead, a copy in the :dead stream)."),
    // Replicas of the other tiers (native and compose; Swarm runs one of each).
    s(Name::Workers, "1", Scope::Lab, int(1, 16),
      "Worker instances consuming the queue (native: ports WORKER_PORT, +100, +200, ...; compose: --scale, host ports the engine chooses)."),
    s(Name::Microservices, "1", Scope::Lab, int(1, 16),
      "Microservice instances; each gateway sends its misses to them in turn (native: ports MICROSERVICE_PORT, +100, ...; compose: --scale, found by DNS)."),
    // Lab users: the gateway seeds them, the load generator logs in as them.
    s(Name::LabUsers, "100", Scope::Services(GW), int(1, 1_000_000),
      "Lab users user1..userN."),
    Setting {
        name: Name::LabPassword,
        default: "scalelab",
        scope: Scope::Services(GW),
        kind: ValueKind::Text { min_len: 1 },
        meaning: "Their password (a change takes effect on the next start: the users are hashed again).",
        secret: true,
    },
    // The load balancer.
    s(Name::HealthIntervalMs, "1000", Scope::Services(LB), int(1, 600_000),
      "How often the load balancer checks each gateway's /health."),
    s(Name::DiscoveryIntervalMs, "1000", Scope::Services(LB), int(1, 600_000),
      "How often it re-resolves the gateways' name (compose replicas join and leave)."),
    s(Name::LbAlgorithm, "round-robin", Scope::Services(LB), ValueKind::Word(&["round-robin", "random", "consistent"]),
      "How the load balancer picks the next gateway (Pingora's algorithms): in turn, at random, or by consistent hashing of the request (its key parameter, else its path and query)."),
    // Every service.
    s(Name::LogFormat, "pretty", Scope::Services(ALL), ValueKind::Word(&["pretty", "json"]),
      "pretty or json."),
    s(Name::RustLog, "info", Scope::Services(ALL), ValueKind::Text { min_len: 1 },
      "Log filter."),
    s(Name::ShutdownGraceSecs, "5", Scope::Services(ALL), int(1, 600),
      "Longest drain after SIGTERM."),
    s(Name::ShutdownDelayMs, "0", Scope::Services(GW), int(0, 60_000),
      "A gateway serves this long after SIGTERM before it refuses connections (the swarm runtime uses 3000 when 0: Swarm, not the lab, picks which gateway leaves)."),
    Setting {
        name: Name::PostgresPassword,
        default: "",
        scope: Scope::Compose,
        kind: ValueKind::UrlSafe { min_len: 8 },
        meaning: "Password of the stack's Postgres, compose's and the native one (make up generates one; the native Postgres the lab made is given a new one at its next start).",
        secret: true,
    },
    // Images (compose, swarm): one registry and one tag name every image the lab runs, the
    // released ones by default (a fork or a school mirror is IMAGE_REGISTRY alone).
    s(Name::ImageRegistry, "ghcr.io/scalelab", Scope::Compose, ValueKind::Registry,
      "Where the lab's images come from: <registry>/scalelab-app, -lab, and copies of postgres, redis and prometheus (a school mirror or a fork: its own)."),
    s(Name::ImageTag, env!("CARGO_PKG_VERSION"), Scope::Compose, ValueKind::Tag,
      "Tag of the scalelab-app and scalelab-lab images: the checkout's version (the lab refuses images of another version)."),
    s(Name::DockerSocket, "/var/run/docker.sock", Scope::Compose, ValueKind::Text { min_len: 1 },
      "The Docker engine's socket on the host, mounted into the lab container (rootless Docker: /run/user/<uid>/docker.sock)."),
    // The autoscaler (make autoscale): the Kubernetes HPA's algorithm with classroom timings.
    s(Name::AutoscaleMetric, "utilization", Scope::Lab, ValueKind::Word(&["utilization", "cpu", "p95"]),
      "What the autoscaler reads per gateway: utilization ((in service + waiting) / MAX_IN_FLIGHT), cpu (share of its CPU limit), or p95 (the load balancer's p95 to it / SLA_P95_MS)."),
    s(Name::AutoscaleTarget, "0.7", Scope::Lab, ValueKind::Decimal { min: 0.01, max: 100.0 },
      "The metric's target per gateway: desired = ceil(current x metric / target)."),
    s(Name::MinReplicas, "1", Scope::Lab, int(1, 100), "Fewest gateways the autoscaler keeps."),
    s(Name::MaxReplicas, "3", Scope::Lab, int(1, 100), "Most gateways the autoscaler starts."),
    s(Name::SyncPeriodSecs, "2", Scope::Lab, int(1, 300),
      "How often the autoscaler decides (Kubernetes: 15 s; shorter so a class period sees it)."),
    s(Name::Tolerance, "0.1", Scope::Lab, ValueKind::Decimal { min: 0.0, max: 1.0 },
      "No change while metric / target is within 1 +- this."),
    s(Name::ScaleUpStabilizationSecs, "0", Scope::Lab, int(0, 3600),
      "A scale-up takes the lowest recommendation of this window."),
    s(Name::ScaleDownStabilizationSecs, "30", Scope::Lab, int(0, 3600),
      "A scale-down takes the highest recommendation of this window (Kubernetes: 300 s; 30 s fits a class period)."),
    s(Name::ScaleUpPolicies, "4/15s,100%/15s", Scope::Lab, ValueKind::Policies,
      "At most N gateways or P % per period when scaling up; the most permissive wins."),
    s(Name::ScaleDownPolicies, "100%/15s", Scope::Lab, ValueKind::Policies,
      "The same when scaling down."),
    s(Name::SlaP95Ms, "500", Scope::Lab, int(1, 600_000),
      "The SLA's 95th percentile: the p95 metric's unit, and the load test's verdict."),
    s(Name::Student, "", Scope::Lab, ValueKind::Text { min_len: 0 },
      "Your name on the archive `make handin` builds (handin/lab<N>-<name>.tar.gz)."),
    s(Name::Sla, "", Scope::Lab, ValueKind::Sla,
      "SLA rules checked at the end of every run, k6-style: p95<500ms,error<1%,rps>=100,GET /data:p99<1s (empty: p95 below SLA_P95_MS, errors at most 1 %)."),
    s(Name::FailOnSla, "0", Scope::Lab, ValueKind::Word(&["0", "1", "false", "true"]),
      "1: a command whose run missed its SLA exits 99 (after writing the run and the report), naming the rule."),
    // Host ports.
    s(Name::LbPort, "8080", Scope::HostPort, ValueKind::Port,
      "The load balancer, where the load goes."),
    s(Name::LbMetricsPort, "9100", Scope::HostPort, ValueKind::Port,
      "Its metrics, /health and GET /backends (127.0.0.1 only)."),
    s(Name::LbAdminPort, "9101", Scope::HostPort, ValueKind::Port,
      "Its admin port: PUT /backends, PUT /drain (127.0.0.1 only)."),
    s(Name::MicroservicePort, "8001", Scope::HostPort, ValueKind::Port,
      "The microservice (127.0.0.1 only; the load test reads its /config)."),
    s(Name::WorkerPort, "8002", Scope::HostPort, ValueKind::Port,
      "The worker (127.0.0.1 only; the load test samples its queue)."),
    s(Name::PrometheusPort, "9090", Scope::HostPort, ValueKind::Port,
      "Prometheus of the observability profile (127.0.0.1 only)."),
    s(Name::LivePort, "8089", Scope::HostPort, ValueKind::Port,
      "The lab's live page (http://127.0.0.1:LIVE_PORT/) while a command drives load, and for make watch (127.0.0.1 only)."),
];

/// Names earlier versions used in `.env`: an old file gets the new name in its error.
/// `<host>[:port]/<path>` as Docker takes a repository's prefix: lower case, no tag, no
/// digest, nothing a shell or the Docker CLI would read as anything else.
fn is_registry(value: &str) -> bool {
    let mut parts = value.split('/');
    let host = parts.next().unwrap_or_default();
    let host_ok = host.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && host
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | ':'));
    let path_ok = parts.all(|p| {
        !p.is_empty()
            && p.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && p.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
    });
    host_ok && path_ok && value.len() <= 200
}

/// Docker's rule for a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn is_tag(value: &str) -> bool {
    value.len() <= 128
        && value.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

mod env_file;
pub(crate) use env_file::random_secret;
pub use env_file::{env_example, is_docker_variable, parse_env_file, GENERATED};

/// The setting a text names (a `.env` key, an environment variable), if any.
pub fn find(name: &str) -> Option<&'static Setting> {
    Name::parse(name).map(setting)
}

/// The table's row of a setting.
pub fn setting(name: Name) -> &'static Setting {
    TABLE
        .iter()
        .find(|s| s.name == name)
        .expect("the table has every name (every_name_is_in_the_table_once)")
}

impl Setting {
    pub fn applies_to(&self, service: Service) -> bool {
        matches!(self.scope, Scope::Services(list) if list.contains(&service))
    }

    /// Checks a value; the error is one line naming the setting.
    pub fn check(&self, value: &str) -> anyhow::Result<()> {
        let name = self.name.as_str();
        match self.kind {
            ValueKind::Int { min, max } => match value.parse::<u64>() {
                Ok(v) if (min..=max).contains(&v) => Ok(()),
                _ => bail!("{name} must be a whole number from {min} to {max}, not {value:?}"),
            },
            ValueKind::Decimal { min, max } => match value.parse::<f64>() {
                Ok(v) if v.is_finite() && (min..=max).contains(&v) => Ok(()),
                _ => bail!("{name} must be a number from {min} to {max}, not {value:?}"),
            },
            ValueKind::Policies => parse_policies(value)
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("{name}: {e}")),
            ValueKind::Cpus => match value.parse::<f64>() {
                Ok(v) if v > 0.0 && v.is_finite() => Ok(()),
                _ => bail!("{name} must be a number of CPUs above 0 (like 0.5), not {value:?}"),
            },
            ValueKind::Bool => match value {
                "true" | "false" => Ok(()),
                _ => bail!("{name} must be true or false, not {value:?}"),
            },
            ValueKind::Word(words) => {
                if words.contains(&value) {
                    Ok(())
                } else {
                    bail!("{name} must be one of {}, not {value:?}", words.join(", "))
                }
            }
            ValueKind::Text { min_len } => {
                if value.chars().count() >= min_len && !value.contains(['\n', '\r', '\0']) {
                    Ok(())
                } else if self.secret {
                    bail!("{name} must be at least {min_len} characters on one line")
                } else {
                    bail!("{name} must be at least {min_len} characters on one line, not {value:?}")
                }
            }
            ValueKind::Port => match value.parse::<u16>() {
                Ok(v) if v > 0 => Ok(()),
                _ => bail!("{name} must be a TCP port from 1 to 65535, not {value:?}"),
            },
            ValueKind::Sla if value.trim().is_empty() => Ok(()),
            ValueKind::Sla => records::sla::parse(value)
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("{e}")),
            ValueKind::Registry if is_registry(value) => Ok(()),
            ValueKind::Registry => bail!(
                "{name} must be a registry and namespace like ghcr.io/owner or 127.0.0.1:5000/scalelab (lower case, no tag), not {value:?}"
            ),
            ValueKind::UrlSafe { min_len }
                if value.len() >= min_len
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b)) =>
            {
                Ok(())
            }
            ValueKind::UrlSafe { min_len } => bail!(
                "{name} must be at least {min_len} letters, digits, '.', '_', '~' or '-' (it goes into a URL as it is)"
            ),
            ValueKind::Tag if is_tag(value) => Ok(()),
            ValueKind::Tag => bail!(
                "{name} must be an image tag (letters, digits, '.', '_', '-'; at most 128), not {value:?}"
            ),
        }
    }
}

/// The values in force: every setting of the table, resolved and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    values: BTreeMap<&'static str, String>,
    /// `COMPOSE_*` and `DOCKER_*` lines of `.env`: Compose's and the Docker CLI's own.
    docker: BTreeMap<String, String>,
}

impl Settings {
    /// The table's defaults (JWT_SECRET and ADMIN_TOKEN empty: not valid until set).
    pub fn defaults() -> Self {
        Self {
            values: TABLE
                .iter()
                .map(|s| (s.name.as_str(), s.default.to_string()))
                .collect(),
            docker: BTreeMap::new(),
        }
    }

    /// Sets one setting, checked.
    pub fn set(&mut self, name: &str, value: &str) -> anyhow::Result<()> {
        let setting = find(name)
            .with_context(|| format!("{name} is not a lab setting (`lab settings` lists them)"))?;
        setting.check(value)?;
        self.values.insert(setting.name.as_str(), value.to_string());
        Ok(())
    }

    pub fn get(&self, name: Name) -> &str {
        &self.values[name.as_str()]
    }

    pub fn number(&self, name: Name) -> f64 {
        self.get(name).parse().expect("checked when resolved")
    }

    pub fn port(&self, name: Name) -> u16 {
        self.get(name).parse().expect("checked when resolved")
    }

    /// `NAME=value` for every setting the service reads.
    pub fn env_for(&self, service: Service) -> Vec<(String, String)> {
        TABLE
            .iter()
            .filter(|s| s.applies_to(service))
            .map(|s| (s.name.to_string(), self.values[s.name.as_str()].clone()))
            .collect()
    }

    /// Every setting as `NAME=value`: what compose interpolates `${NAME}` from, with the
    /// `COMPOSE_*` and `DOCKER_*` variables of `.env`.
    pub fn all(&self) -> Vec<(String, String)> {
        self.values
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .chain(self.docker.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect()
    }

    /// One of the lab's images: `app`, `lab` (`IMAGE_REGISTRY/scalelab-<name>:IMAGE_TAG`).
    pub fn scalelab_image(&self, name: &str) -> String {
        format!(
            "{}/scalelab-{name}:{}",
            self.get(Name::ImageRegistry),
            self.get(Name::ImageTag)
        )
    }
}

/// One of the autoscaler's rate policies (`SCALE_UP_POLICIES`, `SCALE_DOWN_POLICIES`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    /// At most `value` replicas per `period_secs`.
    Pods { value: u32, period_secs: f64 },
    /// At most `value` % of the replicas at the start of the period, per `period_secs`.
    Percent { value: u32, period_secs: f64 },
}

impl Policy {
    pub fn period(&self) -> f64 {
        match *self {
            Policy::Pods { period_secs, .. } | Policy::Percent { period_secs, .. } => period_secs,
        }
    }
}

/// A policy list as written in a setting: `4/15s,100%/15s` → at most 4 replicas per 15 s,
/// or 100 % per 15 s.
pub fn parse_policies(text: &str) -> anyhow::Result<Vec<Policy>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad =
            || anyhow::anyhow!("{part:?} is not N/PERIODs or P%/PERIODs (like 4/15s or 100%/15s)");
        let (amount, period) = part.split_once('/').ok_or_else(bad)?;
        let period_secs: f64 = period
            .strip_suffix('s')
            .and_then(|p| p.parse().ok())
            .filter(|p: &f64| *p > 0.0 && p.is_finite())
            .ok_or_else(bad)?;
        out.push(match amount.strip_suffix('%') {
            Some(p) => Policy::Percent {
                value: p.parse().map_err(|_| bad())?,
                period_secs,
            },
            None => Policy::Pods {
                value: amount.parse().map_err(|_| bad())?,
                period_secs,
            },
        });
    }
    if out.is_empty() {
        bail!("no policy in {text:?}");
    }
    Ok(out)
}

/// The table as `lab settings` prints it (secrets shown as set or not).
pub fn describe(settings: &Settings) -> String {
    let mut out = format!(
        "{:<22} {:<10} {:<10} {}\n",
        "SETTING", "VALUE", "DEFAULT", "MEANING"
    );
    for s in TABLE {
        let value = settings.get(s.name);
        let shown = if s.secret {
            if value.is_empty() { "(unset)" } else { "(set)" }.to_string()
        } else {
            value.to_string()
        };
        let default = if s.secret && !s.default.is_empty() {
            "(set)"
        } else {
            s.default
        };
        out.push_str(&format!(
            "{:<22} {:<10} {:<10} {}\n",
            s.name, shown, default, s.meaning
        ));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An environment of these pairs (shared with the `.env` file's tests).
    pub(crate) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub(crate) const SECRET: &str =
        "JWT_SECRET=0123456789abcdef\nADMIN_TOKEN=fedcba9876543210\nPOSTGRES_PASSWORD=pg-password\n";

    #[test]
    fn image_settings_take_only_what_docker_reads_as_a_name() {
        let mut s = Settings::defaults();
        for good in [
            "ghcr.io/scalelab",
            "127.0.0.1:5000/scalelab",
            "registry.school.example/lab/images",
        ] {
            s.set("IMAGE_REGISTRY", good).unwrap();
        }
        for bad in [
            "",
            "GHCR.io/x",
            "ghcr.io/x:tag",
            "ghcr.io//x",
            "ghcr.io/x;rm -rf",
            "ghcr.io/$(id)",
            "-x/y",
            "ghcr.io/x/",
        ] {
            let err = s.set("IMAGE_REGISTRY", bad).unwrap_err().to_string();
            assert!(err.starts_with("IMAGE_REGISTRY must be"), "{bad:?}: {err}");
        }
        for good in ["0.1.0", "latest", "v1_rc-2"] {
            s.set("IMAGE_TAG", good).unwrap();
        }
        for bad in ["", ".x", "-x", "a b", "1.0@sha256", &"x".repeat(129)] {
            assert!(s.set("IMAGE_TAG", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Settings::defaults().get(Name::ImageTag),
            env!("CARGO_PKG_VERSION")
        );
    }

    #[test]
    fn environment_overrides_the_file_which_overrides_the_table() {
        let file = format!("{SECRET}MAX_IN_FLIGHT=8\nMAX_QUEUE=10\n");
        let s =
            Settings::resolve(Some(&file), env(&[("MAX_QUEUE", "12"), ("HOME", "/x")])).unwrap();
        assert_eq!(s.get(Name::MaxInFlight), "8");
        assert_eq!(s.get(Name::MaxQueue), "12");
        assert_eq!(s.get(Name::DbPoolSize), "10");
    }

    #[test]
    fn bad_values_are_one_line_errors_naming_the_setting() {
        for (file, needle) in [
            ("MAX_IN_FLIGHT=-1", "MAX_IN_FLIGHT must be a whole number"),
            ("GATEWAY_CPUS=0", "GATEWAY_CPUS must be a number of CPUs"),
            ("CACHE_ENABLED=yes", "CACHE_ENABLED must be true or false"),
            ("LB_PORT=70000", "LB_PORT must be a TCP port"),
            ("LOG_FORMAT=xml", "LOG_FORMAT must be one of pretty, json"),
            (
                "GATEWAY_MAX_IN_FLIGHT=4",
                "GATEWAY_MAX_IN_FLIGHT is now called MAX_IN_FLIGHT",
            ),
            ("MAX_IN_FLIGTH=4", "MAX_IN_FLIGTH is not a lab setting"),
            ("just words", "expected NAME=value"),
            (
                "AUTOSCALE_METRIC=memory",
                "AUTOSCALE_METRIC must be one of utilization, cpu, p95",
            ),
            ("TOLERANCE=2", "TOLERANCE must be a number from 0 to 1"),
            (
                "SCALE_UP_POLICIES=4 per 15s",
                "is not N/PERIODs or P%/PERIODs",
            ),
        ] {
            let text = format!("{SECRET}{file}\n");
            let err = Settings::resolve(Some(&text), env(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{file}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let err = Settings::resolve(Some("JWT_SECRET=short\n"), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("JWT_SECRET must be at least 16"), "{err}");
        assert!(!err.contains("short"), "a secret is never echoed: {err}");
        let err = Settings::resolve(Some(SECRET), env(&[("DB_POOL_SIZE", "0")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DB_POOL_SIZE must be a whole number from 1"),
            "{err}"
        );
    }

    #[test]
    fn every_name_is_in_the_table_once() {
        for name in Name::ALL {
            assert_eq!(
                TABLE.iter().filter(|s| s.name == *name).count(),
                1,
                "{name}"
            );
        }
        assert_eq!(TABLE.len(), Name::ALL.len());
    }

    #[test]
    fn every_default_passes_its_own_check_and_names_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for s in TABLE {
            assert!(seen.insert(s.name), "{} twice", s.name);
            if !s.secret || !s.default.is_empty() {
                s.check(s.default).unwrap();
            }
        }
    }

    #[test]
    fn a_service_gets_exactly_the_settings_it_reads() {
        let s = Settings::resolve(Some(SECRET), env(&[])).unwrap();
        let names = |svc| {
            s.env_for(svc)
                .into_iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
        };
        assert!(names(Service::Gateway).contains(&"MAX_IN_FLIGHT".to_string()));
        assert!(!names(Service::Microservice).contains(&"MAX_IN_FLIGHT".to_string()));
        assert!(names(Service::Microservice).contains(&"DB_POOL_SIZE".to_string()));
        assert!(!names(Service::Worker).contains(&"DB_POOL_SIZE".to_string()));
        assert!(!names(Service::Gateway).contains(&"GATEWAY_CPUS".to_string()));
    }
}
