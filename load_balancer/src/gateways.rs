//! The gateways the load balancer knows, for Pingora's `LoadBalancer`: discovery (names
//! re-resolved every `DISCOVERY_INTERVAL_MS`, so compose replicas of one name join and leave
//! without a restart), the active health check (Pingora's `HttpHealthCheck` on `HEALTH_PATH`,
//! with our thresholds), and what Pingora leaves to its user: a new gateway gets no traffic
//! before it passed a check, one whose connection is refused leaves at once (passive
//! marking, by a request or a check), and the metrics by gateway.

use records::names::MetricName;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck};
use pingora::lb::Backend;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// One gateway address the load balancer knows.
pub struct Gateway {
    pub addr: SocketAddr,
    pub label: String,
    /// Pingora's verdict (its health check with our thresholds; it starts healthy).
    pingora_healthy: AtomicBool,
    /// Passed a check since it was discovered, and no connection to it was refused since.
    cleared: AtomicBool,
    /// Taken out of rotation through the admin port (Pingora's `set_enable(false)`).
    draining: AtomicBool,
    /// Requests sent to it that have not completed.
    in_flight: AtomicUsize,
    /// In rotation when last counted (for `lb_health_changes_total` and the log).
    counted: AtomicBool,
    pub latency: Histogram,
    /// Its `lb_requests_total` counters by status, made on first use: no label lookup and no
    /// allocation per request.
    by_status: Box<[OnceLock<IntCounter>]>,
    requests: IntCounterVec,
}

/// Statuses run from 100 to 999.
const STATUS_SLOTS: usize = 1000;

impl Gateway {
    /// Whether new requests may go to it.
    pub fn in_rotation(&self) -> bool {
        self.is_healthy() && !self.draining.load(Ordering::Relaxed)
    }

    pub fn is_healthy(&self) -> bool {
        self.pingora_healthy.load(Ordering::Relaxed) && self.cleared.load(Ordering::Relaxed)
    }

    /// Counts an answer it gave (or the load balancer gave for it).
    pub fn count(&self, status: u16) {
        let slot = usize::from(status).min(STATUS_SLOTS - 1);
        self.by_status[slot]
            .get_or_init(|| {
                self.requests
                    .with_label_values(&[self.label.as_str(), &status.to_string()])
            })
            .inc();
    }

    /// Counts a request as in flight to it until the guard is dropped.
    pub fn busy(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// One request in flight to a gateway; see [`Gateway::busy`].
pub struct InFlight(pub Arc<Gateway>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct Metrics {
    pub requests: IntCounterVec,
    latency: prometheus::HistogramVec,
    healthy: IntGauge,
    known: IntGauge,
    pub retries: IntCounter,
    discovery_changes: IntCounter,
    health_changes: IntCounterVec,
    pub no_backend: IntCounter,
    /// Requests sent again on a new connection because a kept-alive one had been closed.
    pub stale_retries: IntCounter,
    /// Requests the edge refused before forwarding, by reason.
    pub refused: IntCounterVec,
}

impl Metrics {
    pub fn new(metrics: &common::metrics::Metrics) -> Self {
        let register = |c: Box<dyn prometheus::core::Collector>| metrics.register(c);
        let vec = |name: MetricName, help: &str, labels: &[&str]| {
            let v = IntCounterVec::new(Opts::new(name.as_str(), help), labels).expect("valid");
            register(Box::new(v.clone()));
            v
        };
        let counter = |name, help| {
            let c = common::metrics::counter(name, help);
            register(Box::new(c.clone()));
            c
        };
        let gauge = |name, help| {
            let g = common::metrics::gauge(name, help);
            register(Box::new(g.clone()));
            g
        };
        let opts = HistogramOpts::new(
            MetricName::LbUpstreamDurationSeconds.as_str(),
            "Time from choosing a backend to its response header",
        );
        let latency = prometheus::HistogramVec::new(
            opts.buckets(common::metrics::LATENCY_BUCKETS.to_vec()),
            &["backend"],
        )
        .expect("valid metric");
        register(Box::new(latency.clone()));
        Self {
            requests: vec(
                MetricName::LbRequestsTotal,
                "Requests proxied, by backend and response status",
                &["backend", "status"],
            ),
            latency,
            healthy: gauge(MetricName::LbBackendsHealthy, "Backends in rotation"),
            known: gauge(MetricName::LbBackendsKnown, "Backends discovered"),
            retries: counter(
                MetricName::LbRetriesTotal,
                "Requests tried again on another backend",
            ),
            discovery_changes: counter(
                MetricName::LbDiscoveryChangesTotal,
                "Times the discovered backend set changed",
            ),
            health_changes: vec(
                MetricName::LbHealthChangesTotal,
                "Backends entering (up) or leaving (down) the rotation",
                &["backend", "to"],
            ),
            no_backend: counter(
                MetricName::LbNoBackendTotal,
                "Requests answered 503 because no backend was healthy",
            ),
            stale_retries: counter(
                MetricName::LbStaleConnectionRetriesTotal,
                "Requests sent again on a new connection because a kept-alive one had been closed",
            ),
            refused: vec(
                MetricName::LbRefusedRequestsTotal,
                "Requests refused before forwarding (ambiguous framing, limits), by reason",
                &["reason"],
            ),
        }
    }
}

/// The gateways, shared by discovery, the health check, the proxy and the admin port.
pub struct Gateways {
    /// `host:port` entries, re-resolved on every discovery.
    entries: ArcSwap<Vec<String>>,
    known: ArcSwap<HashMap<SocketAddr, Arc<Gateway>>>,
    /// Serialises changes to `known` (never taken on the request path).
    change: Mutex<()>,
    pub metrics: Metrics,
}

impl Gateways {
    pub fn new(entries: Vec<String>, metrics: Metrics) -> Arc<Self> {
        Arc::new(Self {
            entries: ArcSwap::from_pointee(entries),
            known: ArcSwap::from_pointee(HashMap::new()),
            change: Mutex::new(()),
            metrics,
        })
    }

    pub fn entries(&self) -> Vec<String> {
        self.entries.load().as_ref().clone()
    }

    pub fn set_entries(&self, entries: Vec<String>) {
        self.entries.store(Arc::new(entries));
    }

    pub fn get(&self, addr: &SocketAddr) -> Option<Arc<Gateway>> {
        self.known.load().get(addr).cloned()
    }

    /// Every known gateway, by address.
    pub fn all(&self) -> Vec<Arc<Gateway>> {
        let mut all: Vec<_> = self.known.load().values().cloned().collect();
        all.sort_by_key(|g| g.addr);
        all
    }

    pub fn describe(&self) -> records::wire::Backends {
        let backend = |g: &Arc<Gateway>| records::wire::Backend {
            addr: g.label.clone(),
            healthy: g.is_healthy(),
            draining: g.draining.load(Ordering::Relaxed),
            in_flight: g.in_flight.load(Ordering::Relaxed),
        };
        let backends = self.all().iter().map(backend).collect();
        records::wire::Backends {
            entries: self.entries(),
            backends,
        }
    }

    /// A request could not connect: out of rotation now rather than at the next check.
    pub fn connect_failed(&self, gateway: &Gateway) {
        gateway.cleared.store(false, Ordering::SeqCst);
        self.recount(gateway, "connect failed");
    }

    /// Marks exactly these as draining (every other gateway as not); returns the addresses no
    /// gateway has.
    pub fn set_draining(&self, addrs: &BTreeSet<SocketAddr>) -> Vec<SocketAddr> {
        let known = self.known.load();
        let unknown: Vec<SocketAddr> = addrs
            .iter()
            .filter(|a| !known.contains_key(a))
            .copied()
            .collect();
        if !unknown.is_empty() {
            // All or nothing: a typo changes no gateway.
            return unknown;
        }
        for g in known.values() {
            let drain = addrs.contains(&g.addr);
            if g.draining.swap(drain, Ordering::SeqCst) != drain {
                tracing::info!(backend = %g.label, draining = drain, "backend drain changed");
                self.recount(g, "drain");
            }
        }
        unknown
    }

    pub fn is_draining(&self, addr: &SocketAddr) -> bool {
        self.get(addr)
            .is_some_and(|g| g.draining.load(Ordering::Relaxed))
    }

    /// Counts and logs a gateway entering or leaving the rotation, and sets the gauges.
    fn recount(&self, gateway: &Gateway, why: &str) {
        let now = gateway.in_rotation();
        if gateway.counted.swap(now, Ordering::SeqCst) != now {
            let to = if now { "up" } else { "down" };
            self.metrics
                .health_changes
                .with_label_values(&[gateway.label.as_str(), to])
                .inc();
            tracing::info!(backend = %gateway.label, to, why, "backend rotation changed");
        }
        let known = self.known.load();
        let healthy = known.values().filter(|g| g.in_rotation()).count();
        self.metrics.healthy.set(healthy as i64);
        self.metrics.known.set(known.len() as i64);
    }

    /// Every address the entries resolve to now; a name that does not resolve (a service
    /// scaled to 0) contributes nothing. New addresses become gateways waiting for a check.
    async fn resolve(&self) -> BTreeSet<SocketAddr> {
        let mut found = BTreeSet::new();
        for entry in self.entries.load().iter() {
            match tokio::net::lookup_host(entry.as_str()).await {
                Ok(addrs) => found.extend(addrs),
                Err(err) => tracing::debug!(%entry, %err, "backend entry does not resolve"),
            }
        }
        let _guard = self.change.lock().expect("not poisoned");
        let known = self.known.load();
        if known.keys().copied().collect::<BTreeSet<_>>() != found {
            let mut next = HashMap::new();
            for addr in &found {
                let gateway = known.get(addr).cloned().unwrap_or_else(|| {
                    tracing::info!(backend = %addr, "backend discovered; waiting for a passing health check");
                    Arc::new(self.gateway(*addr))
                });
                next.insert(*addr, gateway);
            }
            for gone in known.keys().filter(|a| !found.contains(a)) {
                tracing::info!(backend = %gone, "backend left discovery");
            }
            self.known.store(Arc::new(next));
            self.metrics.discovery_changes.inc();
            drop(_guard);
            for g in self.all() {
                self.recount(&g, "discovery");
            }
        }
        found
    }

    fn gateway(&self, addr: SocketAddr) -> Gateway {
        let label = addr.to_string();
        Gateway {
            addr,
            pingora_healthy: AtomicBool::new(true),
            cleared: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            counted: AtomicBool::new(false),
            latency: self.metrics.latency.with_label_values(&[label.as_str()]),
            by_status: (0..STATUS_SLOTS).map(|_| OnceLock::new()).collect(),
            requests: self.metrics.requests.clone(),
            label,
        }
    }
}

/// Pingora's discovery interface over the entries.
pub struct Discovery(pub Arc<Gateways>);

#[async_trait]
impl ServiceDiscovery for Discovery {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let found = self.0.resolve().await;
        Ok((found.into_iter().map(backend).collect(), HashMap::new()))
    }
}

/// A gateway's address as Pingora's `Backend` (every gateway weighs the same).
pub fn backend(addr: SocketAddr) -> Backend {
    Backend {
        addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
        weight: 1,
        ext: Default::default(),
    }
}

#[derive(Debug, Clone)]
pub struct HealthPolicy {
    pub path: String,
    pub timeout: Duration,
    pub healthy_threshold: usize,
    pub unhealthy_threshold: usize,
}

/// Pingora's HTTP health check, seen by the gateways: a pass clears a gateway, a refused
/// connection takes it out at once, and Pingora's verdicts are mirrored.
pub struct Check {
    http: HttpHealthCheck,
    gateways: Arc<Gateways>,
}

impl Check {
    pub fn new(policy: &HealthPolicy, gateways: Arc<Gateways>) -> Self {
        let mut http = HttpHealthCheck::new("load-balancer", false);
        http.req = pingora::http::RequestHeader::build("GET", policy.path.as_bytes(), None)
            .expect("a path");
        http.req
            .insert_header("Host", "load-balancer")
            .expect("a header");
        http.consecutive_success = policy.healthy_threshold.max(1);
        http.consecutive_failure = policy.unhealthy_threshold.max(1);
        http.peer_template.options.connection_timeout = Some(policy.timeout);
        http.peer_template.options.read_timeout = Some(policy.timeout);
        http.peer_template.options.total_connection_timeout = Some(policy.timeout);
        Self { http, gateways }
    }
}

/// The socket address of a backend (the load balancer knows TCP gateways only).
pub fn inet(backend: &Backend) -> Option<SocketAddr> {
    match backend.addr {
        pingora::protocols::l4::socket::SocketAddr::Inet(addr) => Some(addr),
        _ => None,
    }
}

#[async_trait]
impl HealthCheck for Check {
    async fn check(&self, target: &Backend) -> pingora::Result<()> {
        let result = self.http.check(target).await;
        let gateway = inet(target).and_then(|a| self.gateways.get(&a));
        if let Some(gateway) = gateway {
            match &result {
                Ok(()) => {
                    gateway.cleared.store(true, Ordering::SeqCst);
                    self.gateways.recount(&gateway, "health check passed");
                }
                Err(e) if *e.etype() == pingora::ErrorType::ConnectRefused => {
                    self.gateways.connect_failed(&gateway)
                }
                Err(_) => {}
            }
        }
        result
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        if let Some(gateway) = inet(target).and_then(|a| self.gateways.get(&a)) {
            gateway.pingora_healthy.store(healthy, Ordering::SeqCst);
            let why = if healthy {
                "health check passed"
            } else {
                "health check failed"
            };
            self.gateways.recount(&gateway, why);
        }
    }

    fn health_threshold(&self, success: bool) -> usize {
        self.http.health_threshold(success)
    }
}
