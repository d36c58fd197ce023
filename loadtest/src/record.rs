//! The record of a run: `run.json`, and the servers' counters sampled once a second into
//! `server.jsonl` (the distribution over gateways as the server saw it). The shapes are
//! `records::record`'s, shared with the report.

use records::names::{MetricName, Series};

use crate::{Load, Options};
use records::record::{
    Calibration, GatewayCache, GatewayCpu, GatewaySample, HostCpuBusy, HostInfo, LongtaskSummary,
    Measured, MicroserviceSample, RunRecord, ServerSample, ServerSummary, Sla, Stack, Versions,
    WorkerSample,
};
use records::wire;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use records::time::{utc_now, utc_stamp};

/// Every metric the per-second samples read (the functions below): the sampler parses
/// nothing else of each page.
const SAMPLED: &[Series] = &[
    MetricName::LbRequestsTotal.whole(),
    MetricName::LbBackendsHealthy.whole(),
    MetricName::LbRetriesTotal.whole(),
    MetricName::HttpRequestsTotal.whole(),
    MetricName::CacheRequestsTotal.whole(),
    MetricName::LimiterRejectedTotal.whole(),
    MetricName::LimiterSlotSeconds.sum(),
    MetricName::LimiterSlotSeconds.count(),
    MetricName::ProcessCpuSecondsTotal.whole(),
    MetricName::ProcessStartTimeSeconds.whole(),
    MetricName::DbPoolConnections.whole(),
    MetricName::DbPoolAvailable.whole(),
    MetricName::DbPoolWaiting.whole(),
    MetricName::QueueLength.whole(),
    MetricName::QueuePending.whole(),
    MetricName::QueueLag.whole(),
    MetricName::JobsInProgress.whole(),
    MetricName::JobsProcessedTotal.whole(),
    MetricName::JobsReclaimedTotal.whole(),
    MetricName::ResultsDuplicatesAbsorbedTotal.whole(),
];

/// Requests per backend from the load balancer's `lb_requests_total`.
fn per_backend(samples: &[probe::exposition::Sample]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| MetricName::LbRequestsTotal.whole().is(&s.name))
    {
        if let Some(backend) = s.labels.get("backend") {
            *out.entry(backend.clone()).or_insert(0.0) += s.value;
        }
    }
    out
}

fn gateway_sample(s: &[probe::exposition::Sample]) -> GatewaySample {
    let cache = |result: &str| {
        probe::exposition::sum(s, MetricName::CacheRequestsTotal, &[("result", result)])
    };
    GatewaySample {
        requests: probe::exposition::sum(s, MetricName::HttpRequestsTotal, &[]),
        cache_hit: cache("hit"),
        cache_miss: cache("miss"),
        cache_error: cache("error"),
        limiter_rejected: probe::exposition::sum(s, MetricName::LimiterRejectedTotal, &[]),
        slot_seconds: probe::exposition::sum(s, MetricName::LimiterSlotSeconds.sum(), &[]),
        slot_holds: probe::exposition::sum(s, MetricName::LimiterSlotSeconds.count(), &[]),
        cpu_seconds: probe::exposition::sum(s, MetricName::ProcessCpuSecondsTotal, &[]),
        started_at: probe::exposition::sum(s, MetricName::ProcessStartTimeSeconds, &[]),
    }
}

fn microservice_sample(s: &[probe::exposition::Sample]) -> MicroserviceSample {
    let g = |name: MetricName| probe::exposition::sum(s, name, &[]);
    MicroserviceSample {
        requests: g(MetricName::HttpRequestsTotal),
        unavailable: probe::exposition::sum(s, MetricName::HttpRequestsTotal, &[("status", "503")]),
        pool_open: g(MetricName::DbPoolConnections),
        pool_available: g(MetricName::DbPoolAvailable),
        pool_waiting: g(MetricName::DbPoolWaiting),
        started_at: g(MetricName::ProcessStartTimeSeconds),
    }
}

fn worker_sample(w: &[probe::exposition::Sample]) -> WorkerSample {
    let g = |name: MetricName| probe::exposition::sum(w, name, &[]);
    WorkerSample {
        queue_length: g(MetricName::QueueLength),
        queue_pending: g(MetricName::QueuePending),
        queue_lag: g(MetricName::QueueLag),
        jobs_in_progress: g(MetricName::JobsInProgress),
        jobs_processed: g(MetricName::JobsProcessedTotal),
        jobs_reclaimed: g(MetricName::JobsReclaimedTotal),
        duplicates_absorbed: g(MetricName::ResultsDuplicatesAbsorbedTotal),
        started_at: g(MetricName::ProcessStartTimeSeconds),
    }
}

pub struct Sampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<ServerSample>>,
}

impl Sampler {
    /// Samples the load balancer's metrics, each gateway's, the worker's and the
    /// microservice's (where their URLs are given) now (before it returns, so
    /// that the first sample precedes the load) and then every second until `stop`. The
    /// gateways are found again from the load balancer's `GET /backends` every second, so a
    /// gateway that joins during the run (scaling) is sampled too.
    pub async fn start(
        metrics_url: &str,
        worker_metrics_url: Option<String>,
        microservice_metrics_url: Option<String>,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
        let mut first_tx = Some(first_tx);
        let url = metrics_url.to_string();
        let lb_base = url.trim_end_matches("/metrics").to_string();
        let path: PathBuf = dir.join("server.jsonl");
        let mut file = std::fs::File::create(&path)?;
        let task = tokio::spawn(async move {
            let client = probe::client::client(Duration::from_secs(2));
            let started = Instant::now();
            let mut lines = Vec::new();
            let mut cpu_before = probe::host::machine_cpu_now();
            let mut gateways: Vec<String> = Vec::new();
            loop {
                // The last sample starts after the stop (one in progress when it came may
                // have read a counter before the load's last answers), and a moment after
                // it: a server counts a request once its answer is written.
                let last = *stopped.borrow();
                if last {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let mut line = ServerSample {
                    t: started.elapsed().as_secs_f64(),
                    at: Some(records::time::now_unix()),
                    ..ServerSample::default()
                };
                // Gateways that left discovery are still sampled (their counters close the run).
                for gw in discover_gateways(&client, &lb_base).await {
                    if !gateways.contains(&gw) {
                        gateways.push(gw);
                    }
                }
                let reading = probe::sampler::Targets {
                    load_balancer: Some(url.clone()),
                    gateways: gateways.clone(),
                    workers: worker_metrics_url.iter().cloned().collect(),
                    microservices: microservice_metrics_url.iter().cloned().collect(),
                    only: Some(SAMPLED),
                }
                .read(&client)
                .await;
                match reading.load_balancer {
                    Some(Ok(samples)) => {
                        line.requests_by_backend = Some(per_backend(&samples));
                        line.backends_healthy = Some(probe::exposition::sum(
                            &samples,
                            MetricName::LbBackendsHealthy,
                            &[],
                        ));
                        line.retries = Some(probe::exposition::sum(
                            &samples,
                            MetricName::LbRetriesTotal,
                            &[],
                        ));
                    }
                    Some(Err(e)) => line.error = Some(e),
                    None => {}
                }
                for (gw, read) in reading.gateways {
                    let sample = match read {
                        Ok(s) => Measured::Ok(gateway_sample(&s)),
                        Err(error) => Measured::Failed { error },
                    };
                    line.gateways.insert(gw, sample);
                }
                // How busy the whole machine was since the last sample: when it is near 1,
                // every service is short of CPU, whatever the modelled bounds say.
                let cpu_now = probe::host::machine_cpu_now();
                if let (Some(before), Some(now)) = (cpu_before, cpu_now) {
                    line.host_cpu_busy = probe::host::busy_share(before, now);
                }
                cpu_before = cpu_now;
                if let Some((_, read)) = reading.workers.into_iter().next() {
                    line.worker = Some(match read {
                        Ok(w) => Measured::Ok(worker_sample(&w)),
                        Err(error) => Measured::Failed { error },
                    });
                }
                if let Some((_, read)) = reading.microservices.into_iter().next() {
                    line.microservice = Some(match read {
                        Ok(m) => Measured::Ok(microservice_sample(&m)),
                        Err(error) => Measured::Failed { error },
                    });
                }
                if let Ok(text) = serde_json::to_string(&line) {
                    let _ = writeln!(file, "{text}");
                }
                lines.push(line);
                if let Some(first) = first_tx.take() {
                    let _ = first.send(());
                }
                if last {
                    return lines;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stopped.changed() => {}
                }
            }
        });
        let _ = first_rx.await;
        Ok(Self { stop, task })
    }

    /// Takes a last sample and returns every sample.
    pub async fn stop(self) -> Vec<ServerSample> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

fn delta_by_backend(samples: &[ServerSample]) -> Option<BTreeMap<String, f64>> {
    let ok: Vec<&BTreeMap<String, f64>> = samples
        .iter()
        .filter_map(|s| s.requests_by_backend.as_ref())
        .collect();
    let (first, last) = (ok.first()?, ok.last()?);
    Some(
        last.iter()
            .map(|(backend, n)| {
                (
                    backend.clone(),
                    n - first.get(backend).copied().unwrap_or(0.0),
                )
            })
            .collect(),
    )
}

/// For each gateway, its first and last successful sample of the run (a gateway that joined
/// late starts from its first sample).
fn gateway_spans(samples: &[ServerSample]) -> Vec<(&GatewaySample, &GatewaySample)> {
    let mut spans: BTreeMap<&str, (&GatewaySample, &GatewaySample)> = BTreeMap::new();
    for s in samples {
        for (gw, m) in &s.gateways {
            if let Some(g) = m.ok() {
                spans
                    .entry(gw.as_str())
                    .and_modify(|span| span.1 = g)
                    .or_insert((g, g));
            }
        }
    }
    spans.into_values().collect()
}

/// The server-side cache picture over the run: hits, misses and errors the gateways counted
/// between their first and last sample, and the hit ratio.
fn gateway_cache(samples: &[ServerSample]) -> Option<Measured<GatewayCache>> {
    if samples.is_empty() {
        return None;
    }
    let spans = gateway_spans(samples);
    if spans.is_empty() {
        return Some(Measured::Failed {
            error: "no gateway's metrics were reachable".into(),
        });
    }
    let mut c = GatewayCache::default();
    for (first, last) in spans {
        c.hit += last.cache_hit - first.cache_hit;
        c.miss += last.cache_miss - first.cache_miss;
        c.error += last.cache_error - first.cache_error;
    }
    let all = c.hit + c.miss + c.error;
    c.hit_ratio = (all > 0.0).then(|| c.hit / all);
    Some(Measured::Ok(c))
}

/// The CPU the gateways spent over the run, and per request they served: the service demand
/// the report's CPU bound divides the gateways' CPU limit by.
fn gateway_cpu(samples: &[ServerSample]) -> Option<GatewayCpu> {
    let (mut seconds, mut requests) = (0.0f64, 0.0f64);
    for (first, last) in gateway_spans(samples) {
        seconds += last.cpu_seconds - first.cpu_seconds;
        requests += last.requests - first.requests;
    }
    (requests > 0.0).then(|| GatewayCpu {
        seconds,
        requests,
        per_request_ms: seconds * 1000.0 / requests,
    })
}

/// Mean and highest share of the machine's CPU that was busy, over the per-second samples.
fn host_cpu_busy(samples: &[ServerSample]) -> Option<HostCpuBusy> {
    let shares: Vec<f64> = samples.iter().filter_map(|s| s.host_cpu_busy).collect();
    (!shares.is_empty()).then(|| HostCpuBusy {
        mean: shares.iter().sum::<f64>() / shares.len() as f64,
        max: shares.iter().copied().fold(0.0, f64::max),
        samples: shares.len(),
    })
}

/// Long tasks of the run: how many, how they ended, end-to-end time percentiles.
fn longtask_summary() -> Option<LongtaskSummary> {
    let jobs = crate::scenarios::JOBS.lock().expect("not poisoned").clone();
    if jobs.submitted == 0 {
        return None;
    }
    let mut times = jobs.end_to_end_ms.clone();
    times.sort_by(|a, b| a.total_cmp(b));
    Some(LongtaskSummary {
        submitted: jobs.submitted,
        done: jobs.done,
        failed: jobs.failed,
        timed_out: jobs.timed_out,
        end_to_end_ms: records::record::JobTimes {
            p50: records::stats::percentile(&times, 0.5),
            p95: records::stats::percentile(&times, 0.95),
            max: times.last().copied(),
        },
    })
}

/// The gateways the load balancer knows, from its `GET /backends` (bounded by the
/// client's timeout: the sampler calls it every second).
pub async fn discover_gateways(client: &reqwest::Client, lb_base: &str) -> Vec<String> {
    let Ok(resp) = client.get(format!("{lb_base}/backends")).send().await else {
        return Vec::new();
    };
    resp.json::<wire::Backends>()
        .await
        .map(|b| b.backends.into_iter().map(|b| b.addr).collect())
        .unwrap_or_default()
}

/// The settings in force, read from each service's `/config` (never guessed).
pub async fn stack_config(
    lb_base: &str,
    gateways: &[String],
    microservice_url: Option<&str>,
) -> Stack {
    let client = probe::client::client(Duration::from_secs(2));
    let get = |url: String| {
        let client = client.clone();
        async move {
            let failed = |e: String| records::record::ServiceConfig {
                error: Some(format!("{url}: {e}")),
                ..Default::default()
            };
            match client.get(&url).send().await {
                Ok(r) => match r.json::<records::wire::ConfigView>().await {
                    Ok(view) => view.merged(),
                    Err(e) => failed(e.to_string()),
                },
                Err(e) => failed(e.to_string()),
            }
        }
    };
    let load_balancer = Some(get(format!("{lb_base}/config")).await);
    let mut per_gateway = BTreeMap::new();
    for gw in gateways {
        per_gateway.insert(gw.clone(), Some(get(format!("http://{gw}/config")).await));
    }
    let microservice = match microservice_url.map(String::from).or_else(|| {
        per_gateway
            .values()
            .flatten()
            .find_map(|c| c.microservice_url.clone())
    }) {
        Some(url) => Some(get(format!("{}/config", url.trim_end_matches('/'))).await),
        None => None,
    };
    Stack {
        load_balancer,
        gateways: per_gateway,
        microservice,
    }
}

fn first_line_of(cmd: &str, arg: &str) -> Option<String> {
    std::process::Command::new(cmd)
        .arg(arg)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.lines().next().unwrap_or("").trim().to_string())
}

fn host() -> HostInfo {
    // The CPU model and memory are known on Linux only (probe::host::proc_file).
    let proc_file = |name: &str| probe::host::proc_file(name).unwrap_or_default();
    let cpuinfo = proc_file("cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let mem_kib = proc_file("meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        });
    HostInfo {
        cpu,
        cores: Some(probe::host::host_cores() as u32),
        memory_gib: mem_kib.map(|k| (k as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0),
        hostname: std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string()),
    }
}

/// What a run measured and how, beside Goose's own metrics.
pub struct Outcome {
    pub server: Vec<ServerSample>,
    pub stack: Stack,
    pub calibration: Option<Calibration>,
    pub generator_cpu_seconds: f64,
    pub started: String,
    pub ended: String,
    /// The request log's window (first sent to last answer), seconds; Goose's own duration
    /// when the log had no request.
    pub window_secs: Option<f64>,
    /// Every request's counts and both clocks.
    pub tally: crate::tally::Tally,
    /// The open model: what became of its schedule.
    pub arrivals: Option<records::record::Arrivals>,
}

/// What became of an open run's schedule of `scheduled` arrivals: `sent` were handed to a
/// user, the tally's dropped were not.
pub fn arrivals(
    tally: &crate::tally::Tally,
    scheduled: u64,
    sent: u64,
) -> records::record::Arrivals {
    records::record::Arrivals {
        scheduled,
        sent,
        dropped: tally.dropped,
        send_lag_ms: records::record::Lag {
            p50: tally.lag.percentile_ms(0.50),
            p99: tally.lag.percentile_ms(0.99),
            max: tally.lag.max_ms(),
        },
        service_ms: tally.all(true).summary(),
    }
}

fn word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// The run record of a finished run.
pub fn run_record(
    dir: &Path,
    options: &Options,
    load: &Load,
    metrics: &goose::metrics::GooseMetrics,
    outcome: Outcome,
) -> RunRecord {
    let tally = &outcome.tally;
    let (requests, failures) = (tally.requests(), tally.failures());
    // Every percentile from the tally's histograms, timed from each request's intended send
    // (its real send under the closed model); Goose's own figures time from the real send.
    let by_route = tally.by_route();
    let latency_ms = tally.all(false).summary();
    let hits = crate::scenarios::CACHE_HITS.load(std::sync::atomic::Ordering::SeqCst);
    let misses = crate::scenarios::CACHE_MISSES.load(std::sync::atomic::Ordering::SeqCst);
    let cpu = outcome.generator_cpu_seconds;
    let cpu_per_request_us = if requests > 0 {
        cpu * 1e6 / requests as f64
    } else {
        0.0
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let secs = outcome
        .window_secs
        .unwrap_or(metrics.duration.max(1) as f64);
    let busy = cpu / (secs * cores);
    // The generator runs on one thread: it is saturated when it kept most of one core busy,
    // and its latencies would then measure the generator, not the stack.
    let saturated = cpu / secs > 0.8;
    let server = &outcome.server;
    RunRecord {
        schema_version: records::record::SCHEMA_VERSION,
        run_id: dir.file_name().and_then(|n| n.to_str()).map(String::from),
        scenario: word(&options.scenario),
        profile: word(&options.profile),
        load: *load,
        keys: (options.scenario == records::load::Scenario::Mixed)
            .then(|| records::record::Keys::zipf(options.key_space, options.zipf_s)),
        think_time_ms: options.think_ms(),
        target: options.target.clone(),
        runtime: options.runtime.clone(),
        // As told, else as many as the load balancer knew at the start.
        gateways: options
            .gateways
            .unwrap_or(outcome.stack.gateways.len() as u32),
        experiment: options.experiment(),
        started: outcome.started,
        ended: outcome.ended,
        duration_secs: secs,
        requests,
        failures,
        error_pct: if requests > 0 {
            100.0 * failures as f64 / requests as f64
        } else {
            0.0
        },
        rps: records::record::per_second(requests as f64, secs),
        latency_ms,
        by_route,
        cache_seen_by_client: records::record::CacheSeen {
            hit: hits,
            miss: misses,
        },
        longtask: longtask_summary(),
        relogins: crate::scenarios::RELOGINS.load(std::sync::atomic::Ordering::SeqCst),
        shed: records::record::Shed {
            answers_503: crate::scenarios::SHED.load(std::sync::atomic::Ordering::SeqCst),
            without_retry_after: crate::scenarios::SHED_WITHOUT_RETRY_AFTER
                .load(std::sync::atomic::Ordering::SeqCst),
        },
        server: ServerSummary {
            samples: server.len(),
            requests_by_backend: delta_by_backend(server),
            cache: gateway_cache(server),
            gateway_cpu: gateway_cpu(server),
            host_cpu_busy: host_cpu_busy(server),
        },
        stack: outcome.stack,
        calibration: outcome.calibration,
        generator: records::record::Generator {
            cpu_seconds: cpu,
            cpu_per_request_us,
            share_of_machine: busy,
            saturated,
        },
        model: options.model(),
        arrivals: outcome.arrivals,
        // Its own part when it is one of several (the merge lists them all).
        generators: if options.generators > 1 {
            vec![records::record::GeneratorPart {
                index: options.generator_index,
                users: load.users,
                requests,
                failures,
                cpu_seconds: cpu,
                cpu_per_request_us,
                cpus: options.generator_cpus.clone(),
                start_offset_ms: 0.0,
            }]
        } else {
            Vec::new()
        },
        generator_pinning: options.generator_pinning.clone(),
        sla: Sla {
            p95_ms: Some(options.sla_p95_ms as f64),
            error_pct: Some(options.sla_error_pct),
            // The verdict is the SLA rules' (records::sla::judge), once the record exists.
            ..Sla::default()
        },
        host: host(),
        versions: Versions {
            scalelab: Some(env!("CARGO_PKG_VERSION").into()),
            goose: Some("0.19".into()),
            git_commit: git_commit(),
            kernel: first_line_of("uname", "-r"),
        },
    }
}

fn git_commit() -> Option<String> {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        // The lab container has no git: the checkout's .git is read directly.
        .or_else(|| {
            let cwd = std::env::current_dir().ok()?;
            cwd.ancestors()
                .map(|d| d.join(".git"))
                .find(|g| g.is_dir())
                .and_then(|g| head_commit(&g))
        })
}

/// The commit HEAD names in a `.git` folder: detached, a loose ref, or a packed one.
fn head_commit(git: &std::path::Path) -> Option<String> {
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(name) = head.strip_prefix("ref: ") else {
        return Some(head.to_string()).filter(|h| h.len() >= 40);
    };
    if let Ok(commit) = std::fs::read_to_string(git.join(name)) {
        return Some(commit.trim().to_string());
    }
    let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (commit, r) = l.split_once(' ')?;
        (r == name).then(|| commit.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_is_read_without_git() {
        let git = std::env::temp_dir().join(format!("scalelab-git-{}", std::process::id()));
        let c1 = "1111111111111111111111111111111111111111";
        let c2 = "2222222222222222222222222222222222222222";
        std::fs::create_dir_all(git.join("refs/heads")).unwrap();
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(git.join("refs/heads/main"), format!("{c1}\n")).unwrap();
        assert_eq!(head_commit(&git).as_deref(), Some(c1));
        std::fs::remove_file(git.join("refs/heads/main")).unwrap();
        std::fs::write(
            git.join("packed-refs"),
            format!("# pack-refs with: peeled\n{c2} refs/heads/main\n"),
        )
        .unwrap();
        assert_eq!(head_commit(&git).as_deref(), Some(c2));
        std::fs::write(git.join("HEAD"), format!("{c1}\n")).unwrap();
        assert_eq!(head_commit(&git).as_deref(), Some(c1));
        std::fs::write(git.join("HEAD"), "ref: refs/heads/gone\n").unwrap();
        assert_eq!(head_commit(&git), None);
        std::fs::remove_dir_all(&git).unwrap();
    }

    fn gw(requests: f64, cpu_seconds: f64) -> Measured<GatewaySample> {
        Measured::Ok(GatewaySample {
            requests,
            cpu_seconds,
            ..GatewaySample::default()
        })
    }

    fn sample(t: f64, gateways: Vec<(&str, Measured<GatewaySample>)>) -> ServerSample {
        ServerSample {
            t,
            gateways: gateways
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            ..ServerSample::default()
        }
    }

    #[test]
    fn gateway_cpu_is_the_delta_over_the_run_per_request() {
        let refused = || Measured::Failed {
            error: "refused".into(),
        };
        let samples = [
            sample(0.0, vec![("a", gw(100.0, 1.0)), ("b", refused())]),
            ServerSample {
                t: 1.0,
                error: Some("lb unreachable".into()),
                ..ServerSample::default()
            },
            sample(2.0, vec![("a", gw(600.0, 1.5)), ("b", gw(9.0, 9.0))]),
        ];
        // b has a single sample, its span is empty: only a counts, 0.5 s over 500 requests.
        let cpu = gateway_cpu(&samples).unwrap();
        assert_eq!(cpu.seconds, 0.5);
        assert_eq!(cpu.requests, 500.0);
        assert_eq!(cpu.per_request_ms, 1.0);
        assert_eq!(gateway_cpu(&samples[1..2]), None);
    }

    #[test]
    fn a_gateway_that_joins_mid_run_counts_from_its_first_sample() {
        let samples = [
            sample(0.0, vec![("a", gw(0.0, 0.0))]),
            sample(1.0, vec![("a", gw(100.0, 0.1)), ("c", gw(50.0, 0.05))]),
            sample(2.0, vec![("a", gw(200.0, 0.2)), ("c", gw(150.0, 0.15))]),
        ];
        let cpu = gateway_cpu(&samples).unwrap();
        assert_eq!(cpu.requests, 300.0);
        assert!((cpu.seconds - 0.3).abs() < 1e-9);
    }

    #[test]
    fn host_cpu_busy_is_the_mean_and_max_of_the_samples() {
        let mut samples = vec![ServerSample::default(); 3];
        samples[1].host_cpu_busy = Some(0.5);
        samples[2].host_cpu_busy = Some(1.0);
        let busy = host_cpu_busy(&samples).unwrap();
        assert_eq!(
            busy,
            HostCpuBusy {
                mean: 0.75,
                max: 1.0,
                samples: 2
            }
        );
        assert_eq!(host_cpu_busy(&samples[..1]), None);
    }
}
