//! The set of gateways the load balancer may use, and which of them are in rotation.
//!
//! Membership comes from discovery (names re-resolved periodically, plus a run-time list set
//! through the admin port). A member enters the rotation only after it passed a health check,
//! leaves it when a check fails (at once if the connection is refused, after
//! `UNHEALTHY_THRESHOLD` failures otherwise) or when a request could not connect to it, and
//! returns after `HEALTHY_THRESHOLD` passing checks. Requests already sent to a member that
//! leaves are not interrupted: they hold their own reference to it.

use records::names::MetricName;

use arc_swap::ArcSwap;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Discovery over `host:port` entries: every name is resolved again on each call, so that
/// `docker compose up --scale gateway=N` replicas join and leave without a restart.
pub struct DnsDiscovery {
    entries: ArcSwap<Vec<String>>,
}

impl DnsDiscovery {
    pub fn new(entries: Vec<String>) -> Self {
        Self {
            entries: ArcSwap::from_pointee(entries),
        }
    }

    pub fn entries(&self) -> Vec<String> {
        self.entries.load().as_ref().clone()
    }

    pub fn set_entries(&self, entries: Vec<String>) {
        self.entries.store(Arc::new(entries));
    }

    /// Every address the entries resolve to now. A name that does not resolve (say, a service
    /// scaled to 0) contributes nothing; the others still count.
    pub async fn discover(&self) -> BTreeSet<SocketAddr> {
        let mut found = BTreeSet::new();
        for entry in self.entries.load().iter() {
            match tokio::net::lookup_host(entry.as_str()).await {
                Ok(addrs) => found.extend(addrs),
                Err(err) => tracing::debug!(%entry, %err, "backend entry does not resolve"),
            }
        }
        found
    }
}

/// One gateway address known to the load balancer.
pub struct Member {
    pub addr: SocketAddr,
    pub label: String,
    healthy: AtomicBool,
    /// Set through the admin port before the lab stops this gateway: out of rotation at
    /// once, whatever its health, while the requests it already has complete.
    draining: AtomicBool,
    /// Requests this load balancer has sent it that have not completed.
    in_flight: AtomicUsize,
    ok_streak: AtomicU32,
    fail_streak: AtomicU32,
    /// Requests by status code, created on first use (no lock, no allocation per request).
    by_status: Box<[OnceLock<IntCounter>]>,
    pub latency: Histogram,
    requests: IntCounterVec,
}

const STATUS_SLOTS: usize = 600;

impl Member {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request as in flight to this member until the guard is dropped.
    pub fn busy(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    pub fn count(&self, status: u16) {
        let slot = (status as usize).min(STATUS_SLOTS - 1);
        self.by_status[slot]
            .get_or_init(|| {
                self.requests
                    .with_label_values(&[self.label.as_str(), &status.to_string()])
            })
            .inc();
    }
}

/// One request in flight to a member; see [`Member::busy`].
pub struct InFlight<'a>(&'a Member);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct PoolMetrics {
    pub requests: IntCounterVec,
    pub latency: prometheus::HistogramVec,
    pub healthy: IntGauge,
    pub known: IntGauge,
    pub retries: IntCounter,
    pub discovery_changes: IntCounter,
    pub health_changes: IntCounterVec,
    pub no_backend: IntCounter,
}

impl PoolMetrics {
    pub fn new(metrics: &common::metrics::Metrics) -> Self {
        let m = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    MetricName::LbRequestsTotal.as_str(),
                    "Requests proxied, by backend and response status",
                ),
                &["backend", "status"],
            )
            .expect("valid metric"),
            latency: prometheus::HistogramVec::new(
                HistogramOpts::new(
                    MetricName::LbUpstreamDurationSeconds.as_str(),
                    "Time from choosing a backend to its response header",
                )
                .buckets(common::metrics::LATENCY_BUCKETS.to_vec()),
                &["backend"],
            )
            .expect("valid metric"),
            healthy: common::metrics::gauge(MetricName::LbBackendsHealthy, "Backends in rotation"),
            known: common::metrics::gauge(MetricName::LbBackendsKnown, "Backends discovered"),
            retries: common::metrics::counter(
                MetricName::LbRetriesTotal,
                "Requests tried again on another backend",
            ),
            discovery_changes: common::metrics::counter(
                MetricName::LbDiscoveryChangesTotal,
                "Times the discovered backend set changed",
            ),
            health_changes: IntCounterVec::new(
                Opts::new(
                    MetricName::LbHealthChangesTotal.as_str(),
                    "Backends entering (up) or leaving (down) the rotation",
                ),
                &["backend", "to"],
            )
            .expect("valid metric"),
            no_backend: common::metrics::counter(
                MetricName::LbNoBackendTotal,
                "Requests answered 503 because no backend was healthy",
            ),
        };
        metrics.register(Box::new(m.requests.clone()));
        metrics.register(Box::new(m.latency.clone()));
        metrics.register(Box::new(m.healthy.clone()));
        metrics.register(Box::new(m.known.clone()));
        metrics.register(Box::new(m.retries.clone()));
        metrics.register(Box::new(m.discovery_changes.clone()));
        metrics.register(Box::new(m.health_changes.clone()));
        metrics.register(Box::new(m.no_backend.clone()));
        m
    }
}

#[derive(Debug, Clone)]
pub struct HealthPolicy {
    pub path: String,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

pub struct Pool {
    pub discovery: DnsDiscovery,
    members: ArcSwap<Vec<Arc<Member>>>,
    rotation: ArcSwap<Vec<Arc<Member>>>,
    next: AtomicUsize,
    /// Serialises membership and rotation rebuilds (never taken on the request path).
    rebuild: Mutex<()>,
    pub metrics: PoolMetrics,
    policy: HealthPolicy,
    probe: reqwest::Client,
}

/// What a health probe saw.
enum Probe {
    Passed,
    Refused,
    Failed(String),
}

impl Pool {
    pub fn new(entries: Vec<String>, policy: HealthPolicy, metrics: PoolMetrics) -> Self {
        let probe = reqwest::Client::builder()
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .pool_max_idle_per_host(1)
            .build()
            .expect("http client");
        Self {
            discovery: DnsDiscovery::new(entries),
            members: ArcSwap::from_pointee(Vec::new()),
            rotation: ArcSwap::from_pointee(Vec::new()),
            next: AtomicUsize::new(0),
            rebuild: Mutex::new(()),
            metrics,
            policy,
            probe,
        }
    }

    /// The next backend in round-robin order that this request has not tried yet.
    pub fn select(&self, tried: &[SocketAddr]) -> Option<Arc<Member>> {
        let rotation = self.rotation.load();
        let n = rotation.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &rotation[(start + i) % n])
            .find(|m| !tried.contains(&m.addr))
            .cloned()
    }

    pub fn retries_inc(&self) {
        self.metrics.retries.inc();
    }

    /// Counts a request answered before any backend was chosen (none healthy, bad request).
    pub fn count_unassigned(&self, status: u16) {
        self.metrics
            .requests
            .with_label_values(&["none", &status.to_string()])
            .inc();
    }

    pub fn members(&self) -> Arc<Vec<Arc<Member>>> {
        self.members.load_full()
    }

    fn rebuild_rotation(&self) {
        let members = self.members.load();
        let rotation: Vec<Arc<Member>> = members
            .iter()
            .filter(|m| m.is_healthy() && !m.is_draining())
            .cloned()
            .collect();
        self.metrics.healthy.set(rotation.len() as i64);
        self.metrics.known.set(members.len() as i64);
        self.rotation.store(Arc::new(rotation));
    }

    fn set_health(&self, member: &Member, healthy: bool, why: &str) {
        if member.healthy.swap(healthy, Ordering::SeqCst) != healthy {
            let _guard = self.rebuild.lock().expect("not poisoned");
            self.rebuild_rotation();
            let to = if healthy { "up" } else { "down" };
            self.metrics
                .health_changes
                .with_label_values(&[member.label.as_str(), to])
                .inc();
            tracing::info!(backend = %member.label, to, why, "backend rotation changed");
        }
    }

    /// Marks exactly these addresses as draining (and every other member as not): they
    /// leave the rotation now and get no new request until they leave discovery. Returns
    /// the addresses that matched no member.
    pub fn set_draining(&self, addrs: &BTreeSet<SocketAddr>) -> Vec<SocketAddr> {
        let _guard = self.rebuild.lock().expect("not poisoned");
        let members = self.members.load();
        for m in members.iter() {
            let drain = addrs.contains(&m.addr);
            if m.draining.swap(drain, Ordering::SeqCst) != drain {
                tracing::info!(backend = %m.label, draining = drain, "backend drain changed");
            }
        }
        self.rebuild_rotation();
        addrs
            .iter()
            .filter(|a| !members.iter().any(|m| m.addr == **a))
            .copied()
            .collect()
    }

    /// A request could not connect: take the member out now rather than at the next check.
    pub fn connect_failed(&self, member: &Member) {
        member.ok_streak.store(0, Ordering::SeqCst);
        self.set_health(member, false, "connect failed");
    }

    /// Runs discovery once. New members start out of rotation and are probed at once.
    pub async fn discover(&self) -> Vec<Arc<Member>> {
        let found = self.discovery.discover().await;
        let added: Vec<Arc<Member>>;
        {
            let _guard = self.rebuild.lock().expect("not poisoned");
            let current = self.members.load();
            let known: BTreeSet<SocketAddr> = current.iter().map(|m| m.addr).collect();
            if known == found {
                return Vec::new();
            }
            let kept: Vec<Arc<Member>> = current
                .iter()
                .filter(|m| found.contains(&m.addr))
                .cloned()
                .collect();
            added = found
                .iter()
                .filter(|a| !known.contains(a))
                .map(|addr| Arc::new(self.member(*addr)))
                .collect();
            for gone in current.iter().filter(|m| !found.contains(&m.addr)) {
                tracing::info!(backend = %gone.label, "backend left discovery; draining");
            }
            for new in &added {
                tracing::info!(backend = %new.label, "backend discovered; waiting for a passing health check");
            }
            let mut next = kept;
            next.extend(added.iter().cloned());
            self.members.store(Arc::new(next));
            self.metrics.discovery_changes.inc();
            self.rebuild_rotation();
        }
        added
    }

    fn member(&self, addr: SocketAddr) -> Member {
        let label = addr.to_string();
        Member {
            addr,
            healthy: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            ok_streak: AtomicU32::new(0),
            fail_streak: AtomicU32::new(0),
            by_status: (0..STATUS_SLOTS).map(|_| OnceLock::new()).collect(),
            latency: self.metrics.latency.with_label_values(&[label.as_str()]),
            requests: self.metrics.requests.clone(),
            label,
        }
    }

    /// Probes the given members concurrently and applies the thresholds.
    pub async fn check(&self, members: &[Arc<Member>]) {
        let probes = members
            .iter()
            .map(|m| async move { (m, self.probe(m).await) });
        for (member, outcome) in futures::future::join_all(probes).await {
            match outcome {
                Probe::Passed => {
                    member.fail_streak.store(0, Ordering::SeqCst);
                    let streak = member.ok_streak.fetch_add(1, Ordering::SeqCst) + 1;
                    if streak >= self.policy.healthy_threshold {
                        self.set_health(member, true, "health check passed");
                    }
                }
                Probe::Refused => {
                    member.ok_streak.store(0, Ordering::SeqCst);
                    member.fail_streak.fetch_add(1, Ordering::SeqCst);
                    self.set_health(member, false, "connection refused");
                }
                Probe::Failed(why) => {
                    member.ok_streak.store(0, Ordering::SeqCst);
                    let streak = member.fail_streak.fetch_add(1, Ordering::SeqCst) + 1;
                    if streak >= self.policy.unhealthy_threshold {
                        self.set_health(member, false, &why);
                    }
                }
            }
        }
    }

    async fn probe(&self, member: &Member) -> Probe {
        let url = format!("http://{}{}", member.addr, self.policy.path);
        match self.probe.get(&url).send().await {
            Ok(resp) if resp.status().is_success() => Probe::Passed,
            Ok(resp) => Probe::Failed(format!("health check answered {}", resp.status())),
            Err(e) if e.is_connect() && !e.is_timeout() => Probe::Refused,
            Err(e) => Probe::Failed(format!("health check failed: {e}")),
        }
    }
}
