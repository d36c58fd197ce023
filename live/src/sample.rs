//! One second of the stack for the live page: the load balancer's, every gateway's, the
//! microservice's and the worker's metrics read at once (`probe::sampler`), as rates over
//! the second since the previous reading.

use records::names::MetricName;

use super::{Gateway, Point};
use probe::exposition::{sum, Sample};
use records::wire;
use stack::runtime::Endpoints;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The counters of the previous reading, for rates.
#[derive(Default)]
struct Counters {
    at: Option<Instant>,
    by_status: BTreeMap<String, f64>,
    /// Cumulative bucket counts of the load balancer's latency histogram, by upper bound.
    buckets: Vec<(f64, f64)>,
    by_backend: BTreeMap<String, f64>,
    /// The load balancer's metrics were read: its rates need two reads in a row.
    lb_read: bool,
    rejected: BTreeMap<String, f64>,
    /// Cache hits and misses by gateway: a gateway's ratio needs two reads of it in a row.
    cache: BTreeMap<String, (f64, f64)>,
    jobs: Option<f64>,
    cpu: Option<(u64, u64)>,
    generator_seconds: BTreeMap<u32, f64>,
}

pub struct LiveSampler {
    client: reqwest::Client,
    lb_metrics: String,
    lb_base: String,
    worker: String,
    microservice: String,
    before: Counters,
    /// Every gateway seen: one that leaves the load balancer's list is `gone`.
    seen: BTreeSet<String>,
    /// Gateways that were in rotation once: one out of rotation that never was is `starting`.
    served: BTreeSet<String>,
    /// The load balancer's last answer to `/backends`, for a second it does not answer.
    last_backends: Option<wire::Backends>,
}

/// Requests of each status class in `lb_requests_total` (the load balancer counts its own
/// answers without a gateway there too, as `backend="none"`).
fn by_status(s: &[Sample]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for x in s
        .iter()
        .filter(|x| MetricName::LbRequestsTotal.whole().is(&x.name))
    {
        let class = x
            .labels
            .get("status")
            .and_then(|c| c.chars().next())
            .map_or("other".to_string(), |c| format!("{c}xx"));
        *out.entry(class).or_insert(0.0) += x.value;
    }
    out
}

/// `lb_upstream_duration_seconds_bucket` summed over backends: (upper bound, cumulative).
fn buckets(s: &[Sample]) -> Vec<(f64, f64)> {
    let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for x in s
        .iter()
        .filter(|x| MetricName::LbUpstreamDurationSeconds.bucket().is(&x.name))
    {
        let le = match x.labels.get("le").map(String::as_str) {
            Some("+Inf") => f64::INFINITY,
            Some(v) => match v.parse() {
                Ok(v) => v,
                Err(_) => continue,
            },
            None => continue,
        };
        by_le.entry(le.to_bits()).or_insert((le, 0.0)).1 += x.value;
    }
    let mut out: Vec<(f64, f64)> = by_le.into_values().collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The `q` quantile (0..=1) of a histogram's counts in this interval, as Prometheus's
/// `histogram_quantile` estimates it: linear within the bucket the rank falls in, the lower
/// bound of the last (infinite) bucket. In milliseconds; `None` without requests.
pub fn quantile_ms(q: f64, now: &[(f64, f64)], before: &[(f64, f64)]) -> Option<f64> {
    let delta: Vec<(f64, f64)> = now
        .iter()
        .map(|(le, c)| {
            let prev = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, c)| *c);
            (*le, (c - prev).max(0.0))
        })
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in &delta {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0 * 1000.0);
            }
            let inside = count - lower.1;
            let share = if inside > 0.0 {
                (rank - lower.1) / inside
            } else {
                1.0
            };
            return Some((lower.0 + (le - lower.0) * share) * 1000.0);
        }
        lower = (le, count);
    }
    None
}

fn rate(now: f64, before: Option<f64>, secs: f64) -> Option<f64> {
    before.map(|b| (now - b).max(0.0) / secs)
}

fn ok_samples(read: &Result<Vec<Sample>, String>) -> Option<&[Sample]> {
    read.as_ref().ok().map(Vec::as_slice)
}

impl LiveSampler {
    pub fn new(endpoints: &Endpoints) -> Self {
        Self {
            client: probe::client::client(Duration::from_millis(800)),
            lb_metrics: endpoints.lb_metrics.clone(),
            lb_base: endpoints
                .lb_metrics
                .trim_end_matches("/metrics")
                .to_string(),
            worker: endpoints.worker_metrics.clone(),
            microservice: format!("{}/metrics", endpoints.microservice),
            before: Counters::default(),
            seen: BTreeSet::new(),
            served: BTreeSet::new(),
            last_backends: None,
        }
    }

    async fn backends(&self) -> Option<wire::Backends> {
        let resp = self
            .client
            .get(format!("{}/backends", self.lb_base))
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    }

    /// Reads everything once and turns it into the second since the previous reading.
    pub async fn next(&mut self, t: f64, generators: &[u32]) -> Point {
        // A second without an answer from `/backends` keeps the last list: no gateway is
        // marked gone for it.
        let answered = self.backends().await;
        let backends_answered = answered.is_some();
        if answered.is_some() {
            self.last_backends = answered;
        }
        let backends = self.last_backends.clone();
        let listed: Vec<String> = backends
            .iter()
            .flat_map(|b| b.backends.iter().map(|x| x.addr.clone()))
            .collect();
        let reading = probe::sampler::Targets {
            load_balancer: Some(self.lb_metrics.clone()),
            gateways: listed.clone(),
            workers: vec![self.worker.clone()],
            microservices: vec![self.microservice.clone()],
            only: None,
        }
        .read(&self.client)
        .await;
        let at = Instant::now();
        let secs = self
            .before
            .at
            .map_or(1.0, |b| at.duration_since(b).as_secs_f64().max(0.05));
        let fresh = !self.before.lb_read;
        let mut now = Counters {
            at: Some(at),
            ..Counters::default()
        };
        let mut point = Point {
            t,
            ..Point::default()
        };

        if let Some(lb) = reading.load_balancer.as_ref().and_then(ok_samples) {
            now.lb_read = true;
            now.by_status = by_status(lb);
            now.buckets = buckets(lb);
            if !fresh {
                for (class, n) in &now.by_status {
                    let prev = self.before.by_status.get(class).copied().unwrap_or(0.0);
                    point
                        .answers
                        .insert(class.clone(), (n - prev).max(0.0) / secs);
                }
                point.p50_ms = quantile_ms(0.50, &now.buckets, &self.before.buckets);
                point.p95_ms = quantile_ms(0.95, &now.buckets, &self.before.buckets);
                point.p99_ms = quantile_ms(0.99, &now.buckets, &self.before.buckets);
            }
            for x in lb
                .iter()
                .filter(|x| MetricName::LbRequestsTotal.whole().is(&x.name))
            {
                if let Some(b) = x.labels.get("backend") {
                    *now.by_backend.entry(b.clone()).or_insert(0.0) += x.value;
                }
            }
        }

        // Each gateway: its state in the load balancer's view, its rate, slots and queue.
        let states: BTreeMap<String, &'static str> = backends
            .iter()
            .flat_map(|b| b.backends.iter())
            .map(|b| {
                let state = if b.draining {
                    "draining"
                } else if b.healthy {
                    "in rotation"
                } else if self.served.contains(&b.addr) {
                    "out of rotation"
                } else {
                    "starting"
                };
                (b.addr.clone(), state)
            })
            .collect();
        let (mut hits, mut misses) = (0.0, 0.0);
        let mut cache_read = false;
        for (addr, read) in &reading.gateways {
            let samples = ok_samples(read);
            let rejected = samples.map(|s| sum(s, MetricName::LimiterRejectedTotal, &[]));
            if let Some(s) = samples {
                let h = sum(s, MetricName::CacheRequestsTotal, &[("result", "hit")]);
                let m = sum(s, MetricName::CacheRequestsTotal, &[("result", "miss")]);
                now.cache.insert(addr.clone(), (h, m));
                // Only a gateway read last second too: one back from a missed read would
                // bring its whole count into one second.
                if let Some((h0, m0)) = self.before.cache.get(addr) {
                    if h >= *h0 && m >= *m0 {
                        hits += h - h0;
                        misses += m - m0;
                        cache_read = true;
                    }
                }
            }
            if let Some(r) = rejected {
                now.rejected.insert(addr.clone(), r);
            }
            let requests = now.by_backend.get(addr).copied().unwrap_or(0.0);
            point.gateways.insert(
                addr.clone(),
                Gateway {
                    state: states.get(addr).copied().unwrap_or("gone").to_string(),
                    rps: if fresh || !now.lb_read {
                        None
                    } else {
                        self.before
                            .by_backend
                            .get(addr)
                            .map(|b| (requests - b).max(0.0) / secs)
                    },
                    in_flight: samples.map(|s| sum(s, MetricName::LimiterInService, &[])),
                    queued: samples.map(|s| sum(s, MetricName::LimiterWaiting, &[])),
                    turned_away: rejected
                        .and_then(|r| rate(r, self.before.rejected.get(addr).copied(), secs)),
                },
            );
        }
        for addr in &listed {
            self.seen.insert(addr.clone());
            if states.get(addr) == Some(&"in rotation") {
                self.served.insert(addr.clone());
            }
        }
        let gone = self
            .seen
            .iter()
            .filter(|a| backends_answered && !listed.contains(a));
        for addr in gone {
            point.gateways.insert(
                addr.clone(),
                Gateway {
                    state: "gone".into(),
                    ..Gateway::default()
                },
            );
        }
        if cache_read && hits + misses > 0.0 {
            point.hit_ratio = Some(hits / (hits + misses));
        }

        if let Some(Some(s)) = reading.microservices.first().map(|(_, r)| ok_samples(r)) {
            let open = sum(s, MetricName::DbPoolConnections, &[]);
            let available = sum(s, MetricName::DbPoolAvailable, &[]);
            point.pool_in_use = Some((open - available).max(0.0));
            point.pool_waiting = Some(sum(s, MetricName::DbPoolWaiting, &[]));
        }
        if let Some(Some(s)) = reading.workers.first().map(|(_, r)| ok_samples(r)) {
            point.queue_waiting = Some(sum(s, MetricName::QueueLag, &[]));
            point.queue_unacked = Some(sum(s, MetricName::QueuePending, &[]));
            let jobs = sum(s, MetricName::JobsProcessedTotal, &[]);
            point.jobs_done = rate(jobs, self.before.jobs, secs);
            point.jobs_dead = Some(sum(s, MetricName::JobsDeadLetteredTotal, &[]));
            now.jobs = Some(jobs);
        }

        now.cpu = probe::host::machine_cpu_now();
        if let (Some(b), Some(n)) = (self.before.cpu, now.cpu) {
            point.cpu_busy = probe::host::busy_share(b, n);
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let mut used = 0.0;
        let mut known = false;
        for pid in generators {
            let Some(stat) = probe::host::proc_file(&format!("{pid}/stat")) else {
                continue;
            };
            let seconds = probe::host::cpu_seconds_from_stat(&stat);
            if let Some(prev) = self.before.generator_seconds.get(pid) {
                used += (seconds - prev).max(0.0);
                known = true;
            }
            now.generator_seconds.insert(*pid, seconds);
        }
        if known {
            point.generator_cpu = Some((used / secs / cores).min(1.0));
        }
        self.before = now;
        point
    }
}

#[cfg(test)]
mod tests {
    use super::quantile_ms;

    #[test]
    fn quantiles_interpolate_within_the_bucket_of_this_interval_only() {
        // Before: 10 requests under 10 ms. Now: 10 more under 10 ms and 10 between 10 and 20.
        let before = [(0.01, 10.0), (0.02, 10.0), (f64::INFINITY, 10.0)];
        let now = [(0.01, 20.0), (0.02, 30.0), (f64::INFINITY, 30.0)];
        assert_eq!(quantile_ms(0.5, &now, &before), Some(10.0));
        assert_eq!(
            quantile_ms(0.75, &now, &before).map(|v| v.round()),
            Some(15.0)
        );
        assert_eq!(
            quantile_ms(0.25, &now, &before).map(|v| v.round()),
            Some(5.0)
        );
        // Nothing in this interval: no figure, not a zero.
        assert_eq!(quantile_ms(0.5, &now, &now), None);
        // Past the last finite bound: its lower bound, as Prometheus gives it.
        let slow = [(0.01, 0.0), (0.02, 0.0), (f64::INFINITY, 4.0)];
        assert_eq!(quantile_ms(0.5, &slow, &[]), Some(20.0));
    }
}
