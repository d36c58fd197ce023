//! The autoscaler: every `SYNC_PERIOD_SECS` it reads a metric from every gateway in the load
//! balancer's rotation, decides a replica count with the HPA algorithm ([`hpa`]), and asks
//! the runtime to scale (which drains a leaving gateway before it stops it). Each decision is
//! logged and recorded (`autoscaler.jsonl` in the run folder).

use records::names::MetricName;

pub mod hpa;

use hpa::{Autoscaler, Behavior, Hpa, Observation, Select};
use live::LiveBoard;
use probe::exposition::{sum, Sample};
use probe::sampler::Targets;
use records::record::AutoscalerSample;
use stack::runtime::Runtime;
use stack::settings::Name;
use stack::settings::{parse_policies, Settings};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// (requests in service + waiting) / MAX_IN_FLIGHT, averaged over the sync period.
    Utilization,
    /// CPU seconds per second over the period / the gateway's CPU limit (or its cores).
    Cpu,
    /// The load balancer's p95 to the gateway over the period / SLA_P95_MS.
    P95,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Utilization => "utilization",
            Metric::Cpu => "cpu",
            Metric::P95 => "p95",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub metric: Metric,
    pub hpa: Hpa,
    pub sync: Duration,
    pub sla_p95_ms: f64,
}

impl Config {
    pub fn from_settings(s: &Settings) -> anyhow::Result<Self> {
        let metric = match s.get(Name::AutoscaleMetric) {
            "cpu" => Metric::Cpu,
            "p95" => Metric::P95,
            _ => Metric::Utilization,
        };
        let (min, max) = (
            s.number(Name::MinReplicas) as u32,
            s.number(Name::MaxReplicas) as u32,
        );
        if min > max {
            anyhow::bail!("MIN_REPLICAS ({min}) must not exceed MAX_REPLICAS ({max})");
        }
        Ok(Self {
            metric,
            hpa: Hpa {
                min_replicas: min,
                max_replicas: max,
                target: s.number(Name::AutoscaleTarget),
                tolerance: s.number(Name::Tolerance),
                scale_up: Behavior {
                    stabilization_secs: s.number(Name::ScaleUpStabilizationSecs),
                    policies: parse_policies(s.get(Name::ScaleUpPolicies))?,
                    select: Select::Max,
                },
                scale_down: Behavior {
                    stabilization_secs: s.number(Name::ScaleDownStabilizationSecs),
                    policies: parse_policies(s.get(Name::ScaleDownPolicies))?,
                    select: Select::Max,
                },
            },
            sync: Duration::from_secs(s.number(Name::SyncPeriodSecs) as u64),
            sla_p95_ms: s.number(Name::SlaP95Ms),
        })
    }
}

/// Scrapes taken during one sync period.
#[derive(Default)]
struct Period {
    /// Per gateway address: (seconds since the period began, its metrics).
    gateways: BTreeMap<String, Vec<(f64, Vec<Sample>)>>,
    /// The load balancer's metrics at the period's start and end.
    lb: Vec<Vec<Sample>>,
}

/// The quantile of a Prometheus histogram's bucket deltas (linear within a bucket).
fn histogram_quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let within = (rank - prev.1) / (count - prev.1).max(f64::MIN_POSITIVE);
            return Some(prev.0 + (le - prev.0) * within.clamp(0.0, 1.0));
        }
        prev = (le, count);
    }
    None
}

/// `lb_upstream_duration_seconds` buckets of one backend, cumulative, sorted by bound.
fn buckets_of(samples: &[Sample], backend: &str) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| {
            MetricName::LbUpstreamDurationSeconds.bucket().is(&s.name)
                && s.labels.get("backend").map(String::as_str) == Some(backend)
        })
        .filter_map(|s| {
            let le = s.labels.get("le")?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, s.value))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

impl Period {
    /// The metric of one gateway over the period (None: could not be read).
    fn metric(&self, config: &Config, gateway: &str, cpu_limit: Option<f64>) -> Option<f64> {
        let scrapes = self.gateways.get(gateway)?;
        match config.metric {
            Metric::Utilization => {
                let values: Vec<f64> = scrapes
                    .iter()
                    .filter_map(|(_, s)| {
                        let max = sum(s, MetricName::LimiterMaxInFlight, &[]);
                        (max > 0.0).then(|| {
                            (sum(s, MetricName::LimiterInService, &[])
                                + sum(s, MetricName::LimiterWaiting, &[]))
                                / max
                        })
                    })
                    .collect();
                (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
            }
            Metric::Cpu => {
                let (first, last) = (scrapes.first()?, scrapes.last()?);
                let secs = last.0 - first.0;
                if secs <= 0.0 {
                    return None;
                }
                let cpu = |s: &[Sample]| sum(s, MetricName::ProcessCpuSecondsTotal, &[]);
                Some((cpu(&last.1) - cpu(&first.1)) / secs / cpu_limit.unwrap_or(1.0))
            }
            Metric::P95 => {
                let (first, last) = (self.lb.first()?, self.lb.last()?);
                let (a, b) = (buckets_of(first, gateway), buckets_of(last, gateway));
                let delta: Vec<(f64, f64)> = b
                    .iter()
                    .map(|(le, n)| {
                        let before = a.iter().find(|(l, _)| l == le).map_or(0.0, |(_, c)| *c);
                        (*le, n - before)
                    })
                    .collect();
                histogram_quantile(&delta, 0.95).map(|secs| secs * 1000.0 / config.sla_p95_ms)
            }
        }
    }
}

/// Runs the autoscaler until `stop` resolves; returns every decision it made.
pub struct Controller {
    pub config: Config,
    autoscaler: Autoscaler,
    http: reqwest::Client,
    started: Instant,
    /// CPU limit per gateway address (from its /config), for the cpu metric.
    cpu_limits: BTreeMap<String, Option<f64>>,
    /// Where its decisions are noted on the time axis.
    live: LiveBoard,
}

impl Controller {
    pub fn new(config: Config, live: LiveBoard) -> Self {
        Self {
            live,
            autoscaler: Autoscaler::new(config.hpa.clone()),
            config,
            http: common::http::client(Duration::from_millis(800)),
            started: Instant::now(),
            cpu_limits: BTreeMap::new(),
        }
    }

    async fn cpu_limit(&mut self, gateway: &str) -> Option<f64> {
        if let Some(limit) = self.cpu_limits.get(gateway) {
            return *limit;
        }
        let view = self
            .http
            .get(format!("http://{gateway}/config"))
            .send()
            .await
            .ok()?
            .json::<common::http::ConfigView>()
            .await
            .ok()?;
        let limit = view.host.cpu_limit.or(view.host.cores.map(f64::from));
        self.cpu_limits.insert(gateway.to_string(), limit);
        limit
    }

    /// Scrapes every gateway in rotation (and the load balancer) four times a second for
    /// one sync period.
    async fn observe(&self, rt: &dyn Runtime) -> anyhow::Result<(records::wire::Backends, Period)> {
        let lb = &rt.stack().load_balancer;
        let view = lb.backends().await?;
        let ready: Vec<String> = view.in_rotation().map(|b| b.addr.clone()).collect();
        let lb_metrics = format!("{}/metrics", lb.metrics);
        let targets = Targets {
            load_balancer: Some(lb_metrics),
            gateways: ready,
            ..Targets::default()
        };
        let mut period = Period::default();
        let began = Instant::now();
        let end = began + self.config.sync;
        loop {
            let at = began.elapsed().as_secs_f64();
            let reading = targets.read(&self.http).await;
            for (gw, samples) in reading.gateways {
                if let Ok(samples) = samples {
                    period.gateways.entry(gw).or_default().push((at, samples));
                }
            }
            if period.lb.is_empty() || Instant::now() + Duration::from_millis(250) >= end {
                if let Some(Ok(s)) = reading.load_balancer {
                    period.lb.push(s);
                }
            }
            if Instant::now() + Duration::from_millis(250) >= end {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok((view, period))
    }

    /// One sync: observe for a period, decide, scale if the decision says so.
    pub async fn step(&mut self, rt: &mut dyn Runtime) -> anyhow::Result<AutoscalerSample> {
        let (view, period) = self.observe(&*rt).await?;
        let mut obs = Observation::default();
        for b in &view.backends {
            if b.draining {
                continue;
            }
            if !b.healthy {
                obs.not_ready += 1;
                continue;
            }
            let limit = if self.config.metric == Metric::Cpu {
                self.cpu_limit(&b.addr).await
            } else {
                None
            };
            match period.metric(&self.config, &b.addr, limit) {
                Some(v) => obs.ready.push(v),
                None => obs.missing += 1,
            }
        }
        let current = (obs.ready.len() as u32 + obs.missing + obs.not_ready).max(1);
        let now = self.started.elapsed().as_secs_f64();
        let d = self.autoscaler.decide(now, current, &obs);
        let mut sample = AutoscalerSample {
            at: records::time::now_unix(),
            t: now,
            metric_name: self.config.metric.name().into(),
            metric: d.metric,
            target: self.config.hpa.target,
            tolerance: self.config.hpa.tolerance,
            ready: obs.ready.len() as u32 + obs.missing,
            not_ready: obs.not_ready,
            missing: obs.missing,
            current,
            proposed: d.proposed,
            stabilized: d.stabilized,
            desired: d.desired,
            reason: d.reason.clone(),
            scale_secs: None,
            error: None,
        };
        eprintln!(
            "autoscaler: {} {} (target {}), {} ready{}, desired {} ({})",
            self.config.metric.name(),
            d.metric.map_or("-".to_string(), |m| format!("{m:.2}")),
            self.config.hpa.target,
            sample.ready,
            if obs.not_ready > 0 {
                format!(" + {} starting", obs.not_ready)
            } else {
                String::new()
            },
            d.desired,
            d.reason
        );
        if d.desired != current {
            self.live.note(format!(
                "autoscaler: {current} → {} gateways ({})",
                d.desired, d.reason
            ));
            let began = Instant::now();
            match rt.scale(d.desired as usize).await {
                Ok(()) => sample.scale_secs = Some(began.elapsed().as_secs_f64()),
                Err(e) => sample.error = Some(format!("{e:#}")),
            }
        }
        Ok(sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quantile_of_histogram_buckets_interpolates_within_a_bucket() {
        // 100 observations: 50 up to 10 ms, 40 more up to 50 ms, 10 more up to 100 ms.
        let b = [
            (0.01, 50.0),
            (0.05, 90.0),
            (0.1, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert!((histogram_quantile(&b, 0.5).unwrap() - 0.01).abs() < 1e-9);
        // p95: rank 95 is halfway through the 50-100 ms bucket.
        assert!((histogram_quantile(&b, 0.95).unwrap() - 0.075).abs() < 1e-9);
        assert_eq!(
            histogram_quantile(&[(0.1, 0.0), (f64::INFINITY, 0.0)], 0.95),
            None
        );
    }

    /// The secrets a settings file must hold.
    const SECRET: &str =
        "JWT_SECRET=0123456789abcdef\nADMIN_TOKEN=fedcba9876543210\nPOSTGRES_PASSWORD=pg-password\n";

    #[test]
    fn the_settings_make_the_controllers_config() {
        let s = Settings::resolve(Some(SECRET), Vec::new()).unwrap();
        let c = Config::from_settings(&s).unwrap();
        assert_eq!(c.metric, Metric::Utilization);
        assert_eq!((c.hpa.min_replicas, c.hpa.max_replicas), (1, 3));
        assert_eq!(c.hpa.scale_down.stabilization_secs, 30.0);
        assert_eq!(c.hpa.scale_up.policies.len(), 2);
        let bad =
            Settings::resolve(Some(&format!("{}MIN_REPLICAS=4\n", SECRET)), Vec::new()).unwrap();
        let err = Config::from_settings(&bad).unwrap_err().to_string();
        assert!(
            err.contains("MIN_REPLICAS (4) must not exceed MAX_REPLICAS (3)"),
            "{err}"
        );
    }
}
