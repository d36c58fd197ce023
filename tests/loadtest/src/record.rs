//! The record of a run: `run.json`, and the load balancer's counters sampled once a second
//! into `server.jsonl` (the distribution over gateways as the server saw it).

use crate::{Load, Options};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Civil date and time (UTC) of a Unix time, without a date crate.
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// `20261122T193000Z`: sorts by time, safe in a folder name.
pub fn utc_stamp() -> String {
    let (y, mo, d, h, mi, s) = civil(now_secs());
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// RFC 3339, UTC.
pub fn utc_now() -> String {
    let (y, mo, d, h, mi, s) = civil(now_secs());
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Requests per backend from the load balancer's `lb_requests_total`.
fn per_backend(samples: &[common::metrics::Sample]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in samples.iter().filter(|s| s.name == "lb_requests_total") {
        if let Some(backend) = s.labels.get("backend") {
            *out.entry(backend.clone()).or_insert(0.0) += s.value;
        }
    }
    out
}

pub struct Sampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<Value>>,
}

impl Sampler {
    /// Samples the load balancer's metrics, and each gateway's, now and then every second
    /// until `stop`.
    pub fn start(
        metrics_url: &str,
        gateways: Vec<String>,
        worker_metrics_url: Option<String>,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let url = metrics_url.to_string();
        let path: PathBuf = dir.join("server.jsonl");
        let mut file = std::fs::File::create(&path)?;
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("http client");
            let started = Instant::now();
            let mut lines = Vec::new();
            let mut cpu_before = common::host::machine_cpu_now();
            loop {
                let mut line = match common::metrics::scrape(&client, &url).await {
                    Ok(samples) => json!({
                        "t": started.elapsed().as_secs_f64(),
                        "requests_by_backend": per_backend(&samples),
                        "backends_healthy": common::metrics::sum(&samples, "lb_backends_healthy", &[]),
                        "retries": common::metrics::sum(&samples, "lb_retries_total", &[]),
                    }),
                    Err(e) => json!({"t": started.elapsed().as_secs_f64(), "error": e.to_string()}),
                };
                let mut per_gateway = Map::new();
                for gw in &gateways {
                    let sample = match common::metrics::scrape(
                        &client,
                        &format!("http://{gw}/metrics"),
                    )
                    .await
                    {
                        Ok(s) => {
                            let cache = |result: &str| {
                                common::metrics::sum(
                                    &s,
                                    "cache_requests_total",
                                    &[("result", result)],
                                )
                            };
                            json!({
                                "requests": common::metrics::sum(&s, "http_requests_total", &[]),
                                "cache_hit": cache("hit"),
                                "cache_miss": cache("miss"),
                                "cache_error": cache("error"),
                                "limiter_rejected": common::metrics::sum(&s, "limiter_rejected_total", &[]),
                                "cpu_seconds": common::metrics::sum(&s, "process_cpu_seconds_total", &[]),
                            })
                        }
                        Err(e) => json!({"error": e.to_string()}),
                    };
                    per_gateway.insert(gw.clone(), sample);
                }
                line["gateways"] = Value::Object(per_gateway);
                // How busy the whole machine was since the last sample: when it is near 1,
                // every service is short of CPU, whatever the modelled bounds say.
                let cpu_now = common::host::machine_cpu_now();
                if let (Some(before), Some(now)) = (cpu_before, cpu_now) {
                    line["host_cpu_busy"] = json!(common::host::busy_share(before, now));
                }
                cpu_before = cpu_now;
                if let Some(url) = &worker_metrics_url {
                    line["worker"] = match common::metrics::scrape(&client, url).await {
                        Ok(w) => {
                            let g = |name: &str| common::metrics::sum(&w, name, &[]);
                            json!({"queue_length": g("queue_length"), "queue_pending": g("queue_pending"),
                                   "queue_lag": g("queue_lag"), "jobs_in_progress": g("jobs_in_progress"),
                                   "jobs_processed": g("jobs_processed_total")})
                        }
                        Err(e) => json!({"error": e.to_string()}),
                    };
                }
                let _ = writeln!(file, "{line}");
                lines.push(line);
                if *stopped.borrow() {
                    return lines;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stopped.changed() => {}
                }
            }
        });
        Ok(Self { stop, task })
    }

    /// Takes a last sample and returns every sample.
    pub async fn stop(self) -> Vec<Value> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

fn delta_by_backend(samples: &[Value]) -> Option<Map<String, Value>> {
    let ok: Vec<&Value> = samples
        .iter()
        .filter(|s| s.get("error").is_none())
        .collect();
    let (first, last) = (ok.first()?, ok.last()?);
    let mut out = Map::new();
    if let Some(end) = last["requests_by_backend"].as_object() {
        for (backend, n) in end {
            let before = first["requests_by_backend"][backend]
                .as_f64()
                .unwrap_or(0.0);
            out.insert(backend.clone(), json!(n.as_f64().unwrap_or(0.0) - before));
        }
    }
    Some(out)
}

/// The server-side cache picture over the run: hits, misses and errors the gateways counted
/// between the first and the last sample, and the hit ratio.
fn gateway_cache(samples: &[Value]) -> Value {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Value::Null;
    };
    let Some(end) = last["gateways"].as_object() else {
        return Value::Null;
    };
    let mut totals = [0.0f64; 3];
    let mut reachable = 0;
    for (gw, now) in end {
        if now.get("error").is_some() {
            continue;
        }
        reachable += 1;
        for (i, k) in ["cache_hit", "cache_miss", "cache_error"]
            .iter()
            .enumerate()
        {
            let before = first["gateways"][gw][*k].as_f64().unwrap_or(0.0);
            totals[i] += now[*k].as_f64().unwrap_or(0.0) - before;
        }
    }
    if reachable == 0 {
        return json!({"error": "no gateway's metrics were reachable"});
    }
    let all = totals.iter().sum::<f64>();
    json!({
        "hit": totals[0], "miss": totals[1], "error": totals[2],
        "hit_ratio": if all > 0.0 { json!(totals[0] / all) } else { Value::Null },
    })
}

/// The CPU the gateways spent over the run, and per request they served: the service demand
/// the report's CPU bound divides the gateways' CPU limit by.
fn gateway_cpu(samples: &[Value]) -> Value {
    let ok = |s: &&Value| s["gateways"].is_object();
    let (Some(first), Some(last)) = (samples.iter().find(ok), samples.iter().rev().find(ok)) else {
        return Value::Null;
    };
    let (mut seconds, mut requests) = (0.0f64, 0.0f64);
    for (gw, now) in last["gateways"].as_object().into_iter().flatten() {
        let before = &first["gateways"][gw];
        if now.get("error").is_some() || before.get("error").is_some() || before.is_null() {
            continue;
        }
        let delta = |k: &str| now[k].as_f64().unwrap_or(0.0) - before[k].as_f64().unwrap_or(0.0);
        seconds += delta("cpu_seconds");
        requests += delta("requests");
    }
    if requests <= 0.0 {
        return Value::Null;
    }
    json!({"seconds": seconds, "requests": requests, "per_request_ms": seconds * 1000.0 / requests})
}

/// Mean and highest share of the machine's CPU that was busy, over the per-second samples.
fn host_cpu_busy(samples: &[Value]) -> Value {
    let shares: Vec<f64> = samples
        .iter()
        .filter_map(|s| s["host_cpu_busy"].as_f64())
        .collect();
    if shares.is_empty() {
        return Value::Null;
    }
    json!({
        "mean": shares.iter().sum::<f64>() / shares.len() as f64,
        "max": shares.iter().copied().fold(0.0, f64::max),
        "samples": shares.len(),
    })
}

/// The "Aggregated" row of Goose's response-time table in `goose.json`.
fn goose_aggregate(dir: &Path) -> Value {
    std::fs::read_to_string(dir.join("goose.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|report| {
            report["raw_response_metrics"]
                .as_array()?
                .iter()
                .find(|row| row["name"] == "Aggregated")
                .cloned()
        })
        .unwrap_or(Value::Null)
}

/// Long tasks of the run: how many, how they ended, end-to-end time percentiles.
fn longtask_summary() -> Value {
    let jobs = crate::scenarios::JOBS.lock().expect("not poisoned").clone();
    if jobs.submitted == 0 {
        return Value::Null;
    }
    let mut times = jobs.end_to_end_ms.clone();
    times.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        if times.is_empty() {
            return Value::Null;
        }
        let i = ((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1;
        json!(times[i])
    };
    json!({
        "submitted": jobs.submitted, "done": jobs.done, "failed": jobs.failed,
        "timed_out": jobs.timed_out,
        "end_to_end_ms": {"p50": pct(0.5), "p95": pct(0.95), "max": times.last()},
    })
}

/// The gateways the load balancer knows, from its `GET /backends`.
pub async fn discover_gateways(lb_base: &str) -> Vec<String> {
    let Ok(resp) = reqwest::get(format!("{lb_base}/backends")).await else {
        return Vec::new();
    };
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    body["backends"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|b| b["addr"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The knobs in force, read from each service's `/config` (never guessed).
pub async fn stack_config(
    lb_base: &str,
    gateways: &[String],
    microservice_url: Option<&str>,
) -> Value {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("http client");
    let get = |url: String| {
        let client = client.clone();
        async move {
            match client.get(&url).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .map(|v| {
                        let mut config = v["config"].clone();
                        if config.is_object() && !v["host"].is_null() {
                            config["host"] = v["host"].clone();
                        }
                        config
                    })
                    .unwrap_or(Value::Null),
                Err(e) => json!({"error": format!("{url}: {e}")}),
            }
        }
    };
    let load_balancer = get(format!("{lb_base}/config")).await;
    let mut per_gateway = Map::new();
    for gw in gateways {
        per_gateway.insert(gw.clone(), get(format!("http://{gw}/config")).await);
    }
    let microservice = match microservice_url.map(String::from).or_else(|| {
        per_gateway
            .values()
            .find_map(|c| c["microservice_url"].as_str().map(String::from))
    }) {
        Some(url) => get(format!("{}/config", url.trim_end_matches('/'))).await,
        None => Value::Null,
    };
    json!({"load_balancer": load_balancer, "gateways": per_gateway, "microservice": microservice})
}

fn tool_version(cmd: &str, arg: &str) -> Value {
    std::process::Command::new(cmd)
        .arg(arg)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| json!(s.lines().next().unwrap_or("").trim()))
        .unwrap_or(Value::Null)
}

fn git_commit() -> Value {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| json!(s.trim()))
        .unwrap_or(Value::Null)
}

fn host() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        });
    json!({
        "cpu": cpu,
        "cores": common::host::host_cores(),
        "memory_gib": mem_kib.map(|k| (k as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0),
        "hostname": std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()),
    })
}

#[allow(clippy::too_many_arguments)]
pub fn write_run_json(
    dir: &Path,
    options: &Options,
    load: &Load,
    metrics: &goose::metrics::GooseMetrics,
    server: &[Value],
    stack: Value,
    calibration: Value,
    sla_failed: Vec<String>,
    generator_cpu_seconds: f64,
    started: String,
    ended: String,
) -> anyhow::Result<()> {
    let ms = |us: u64| us as f64 / 1000.0;
    let mut by_route = Map::new();
    let (mut requests, mut failures) = (0usize, 0usize);
    let (mut max_us, mut total_us) = (0u64, 0u64);
    for (name, agg) in &metrics.requests {
        requests += agg.success_count + agg.fail_count;
        failures += agg.fail_count;
        let t = &agg.raw_data;
        max_us = max_us.max(t.maximum_time_us);
        total_us += t.total_time_us;
        by_route.insert(
            name.clone(),
            json!({"requests": agg.success_count + agg.fail_count, "failures": agg.fail_count,
                   "status_codes": agg.status_code_counts,
                   "latency_ms": {"avg": if t.counter > 0 { ms(t.total_time_us) / t.counter as f64 } else { 0.0 },
                                  "p50": ms(t.percentile_us(0.50)), "p95": ms(t.percentile_us(0.95)),
                                  "p99": ms(t.percentile_us(0.99)), "max": ms(t.maximum_time_us)}}),
        );
    }
    let timed: usize = metrics.requests.values().map(|a| a.raw_data.counter).sum();
    // The whole run's percentiles as Goose itself computed them (its JSON report's
    // "Aggregated" row, whole milliseconds), so run.json and Goose's SLA verdict agree.
    let aggregate = goose_aggregate(dir);
    let latency = json!({
        "avg": if timed > 0 { ms(total_us) / timed as f64 } else { 0.0 },
        "p50": aggregate["percentile_50"], "p95": aggregate["percentile_95"],
        "p99": aggregate["percentile_99"], "max": ms(max_us),
    });
    let hits = crate::scenarios::CACHE_HITS.load(std::sync::atomic::Ordering::SeqCst);
    let misses = crate::scenarios::CACHE_MISSES.load(std::sync::atomic::Ordering::SeqCst);
    let cpu_per_request_us = if requests > 0 {
        generator_cpu_seconds * 1e6 / requests as f64
    } else {
        0.0
    };
    // The generator is saturated when it used most of the machine's CPU: its latencies
    // would then measure the generator, not the stack.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let busy = generator_cpu_seconds / (metrics.duration.max(1) as f64 * cores);
    let run = json!({
        "run_id": dir.file_name().and_then(|n| n.to_str()),
        "scenario": options.scenario,
        "profile": options.profile,
        "load": load,
        "think_time_ms": if options.no_think { json!(null) } else { json!([options.think_min_ms, options.think_max_ms]) },
        "target": options.target,
        "runtime": options.runtime,
        // As told, else as many as the load balancer knew at the start.
        "gateways": options.gateways.map(|g| json!(g)).unwrap_or_else(|| {
            json!(stack["gateways"].as_object().map_or(0, |g| g.len()))
        }),
        "started": started,
        "ended": ended,
        "duration_secs": metrics.duration,
        "requests": requests,
        "failures": failures,
        "error_pct": if requests > 0 { 100.0 * failures as f64 / requests as f64 } else { 0.0 },
        "rps": requests as f64 / metrics.duration.max(1) as f64,
        "latency_ms": latency,
        "by_route": by_route,
        "cache_seen_by_client": {"hit": hits, "miss": misses},
        "longtask": longtask_summary(),
        "relogins": crate::scenarios::RELOGINS.load(std::sync::atomic::Ordering::SeqCst),
        "server": {
            "samples": server.len(),
            "requests_by_backend": delta_by_backend(server),
            "cache": gateway_cache(server),
            "gateway_cpu": gateway_cpu(server),
            "host_cpu_busy": host_cpu_busy(server),
        },
        "stack": stack,
        "calibration": calibration,
        "generator": {
            "cpu_seconds": generator_cpu_seconds,
            "cpu_per_request_us": cpu_per_request_us,
            "share_of_machine": busy,
            "saturated": busy > 0.8,
        },
        "sla": {
            "p95_ms": options.sla_p95_ms,
            "error_pct": options.sla_error_pct,
            "met": sla_failed.is_empty(),
            "failed_rules": sla_failed,
        },
        "host": host(),
        "versions": {
            "scalelab": env!("CARGO_PKG_VERSION"),
            "goose": "0.19",
            "git_commit": git_commit(),
            "kernel": tool_version("uname", "-r"),
        },
    });
    std::fs::write(dir.join("run.json"), serde_json::to_string_pretty(&run)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates_are_right() {
        assert_eq!(super::civil(0), (1970, 1, 1, 0, 0, 0));
        // 2026-11-22T19:30:05Z
        assert_eq!(super::civil(1_795_375_805), (2026, 11, 22, 19, 30, 5));
        // A leap day.
        assert_eq!(super::civil(951_782_400), (2000, 2, 29, 0, 0, 0));
    }

    #[test]
    fn gateway_cpu_is_the_delta_over_the_run_per_request() {
        use serde_json::json;
        let samples = [
            json!({"t": 0.0, "gateways": {"a": {"cpu_seconds": 1.0, "requests": 100.0},
                                          "b": {"error": "refused"}}}),
            json!({"t": 1.0, "error": "lb unreachable"}),
            json!({"t": 2.0, "gateways": {"a": {"cpu_seconds": 1.5, "requests": 600.0},
                                          "b": {"cpu_seconds": 9.0, "requests": 9.0}}}),
        ];
        // b has no first sample to subtract from, so only a counts: 0.5 s over 500 requests.
        let cpu = super::gateway_cpu(&samples);
        assert_eq!(cpu["seconds"], json!(0.5));
        assert_eq!(cpu["requests"], json!(500.0));
        assert_eq!(cpu["per_request_ms"], json!(1.0));
        assert_eq!(super::gateway_cpu(&samples[1..2]), serde_json::Value::Null);
    }

    #[test]
    fn host_cpu_busy_is_the_mean_and_max_of_the_samples() {
        use serde_json::json;
        let samples = [
            json!({"t": 0.0}),
            json!({"t": 1.0, "host_cpu_busy": 0.5}),
            json!({"t": 2.0, "host_cpu_busy": 1.0}),
        ];
        let busy = super::host_cpu_busy(&samples);
        assert_eq!(busy, json!({"mean": 0.75, "max": 1.0, "samples": 2}));
        assert_eq!(super::host_cpu_busy(&samples[..1]), serde_json::Value::Null);
    }
}
