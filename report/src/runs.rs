//! Reading run folders (`tests/results/<run-id>/`): `run.json` is required, `goose.json`
//! adds the per-second series and the percentile curve. Anything missing or corrupt is a
//! warning naming the file, never a crash.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One load-test run, as the report needs it.
#[derive(Debug, Clone, PartialEq)]
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
    pub sla_p95_ms: Option<f64>,
    pub generator_saturated: bool,
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
    /// Service time measured one request at a time before the load (`calibration.p50_ms`).
    pub calibrated_ms: Option<f64>,
    /// Successful requests per second of the scenario's routes (logins left out): the
    /// throughput comparisons and predictions are about.
    pub goodput: f64,
    /// Users started per second (the profile's rate).
    pub rate: f64,
    /// Mean share of the whole machine's CPU that was busy during the run (0..=1).
    pub host_cpu_busy: Option<f64>,
    /// The gateways' CPU per request served (ms), from their process CPU counters.
    pub gateway_cpu_ms: Option<f64>,
    /// Worker samples over time, where the run sampled the worker (long tasks).
    pub queue: Vec<QueueSample>,
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
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// Every readable run under `dir`, sorted by start time, and a warning per skipped folder.
pub fn load_runs(dir: &Path) -> (Vec<Run>, Vec<String>) {
    let mut runs = Vec::new();
    let mut warnings = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (runs, vec![format!("{} cannot be read", dir.display())]);
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for d in dirs {
        let file = d.join("run.json");
        if !file.exists() {
            // Breakpoint summaries and other folders without a run record.
            if !d.join("breakpoint.json").exists() {
                warnings.push(format!("skipped {}: no run.json", d.display()));
            }
            continue;
        }
        match load_run(&d) {
            Ok(run) => runs.push(run),
            Err(err) => warnings.push(format!("skipped {}: {err}", file.display())),
        }
    }
    runs.sort_by(|a, b| a.started.cmp(&b.started).then(a.id.cmp(&b.id)));
    (runs, warnings)
}

pub fn load_run(dir: &Path) -> Result<Run, String> {
    let text = std::fs::read_to_string(dir.join("run.json")).map_err(|e| e.to_string())?;
    let r: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let need = |k: &str| -> Result<&Value, String> {
        r.get(k)
            .filter(|v| !v.is_null())
            .ok_or_else(|| format!("no `{k}` (a partial run?)"))
    };
    let latency = need("latency_ms")?;
    let stack = &r["stack"];
    let gateway_cfg = stack["gateways"]
        .as_object()
        .and_then(|m| m.values().next())
        .cloned()
        .unwrap_or(Value::Null);
    let think = r["think_time_ms"].as_array();
    let think_ms = match think {
        Some(t) if t.len() == 2 => (f(&t[0]) + f(&t[1])) / 2.0,
        _ => 0.0,
    };
    let mut run = Run {
        id: r["run_id"].as_str().map(str::to_string).unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        }),
        scenario: need("scenario")?.as_str().unwrap_or("?").to_string(),
        profile: r["profile"].as_str().unwrap_or("?").to_string(),
        runtime: r["runtime"].as_str().unwrap_or("?").to_string(),
        gateways: r["gateways"].as_u64().unwrap_or(0) as u32,
        users: r["load"]["users"].as_u64().unwrap_or(0) as u32,
        started: r["started"].as_str().unwrap_or("").to_string(),
        duration_secs: f(&r["duration_secs"]),
        requests: need("requests")?.as_u64().unwrap_or(0),
        failures: r["failures"].as_u64().unwrap_or(0),
        rps: f(need("rps")?),
        error_pct: f(&r["error_pct"]),
        latency: Latency {
            avg: f(&latency["avg"]),
            p50: f(&latency["p50"]),
            p95: f(&latency["p95"]),
            p99: f(&latency["p99"]),
            max: f(&latency["max"]),
        },
        hit_ratio: r["server"]["cache"]["hit_ratio"].as_f64(),
        sla_met: r["sla"]["met"].as_bool(),
        sla_p95_ms: r["sla"]["p95_ms"].as_f64(),
        generator_saturated: r["generator"]["saturated"].as_bool().unwrap_or(false),
        commit: r["versions"]["git_commit"]
            .as_str()
            .unwrap_or("unknown")
            .to_string(),
        host: format!(
            "{} ({} cores)",
            r["host"]["cpu"].as_str().unwrap_or("?"),
            r["host"]["cores"].as_u64().unwrap_or(0)
        ),
        think_ms,
        by_backend: r["server"]["requests_by_backend"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), f(v))).collect())
            .unwrap_or_default(),
        knobs: Knobs {
            max_in_flight: gateway_cfg["max_in_flight"].as_u64().unwrap_or(0) as u32,
            cache_enabled: gateway_cfg["cache_enabled"].as_bool().unwrap_or(true),
            microservice_pool: stack["microservice"]["db_pool_size"]
                .as_u64()
                .map(|v| v as u32),
            gateway_cpu_limit: gateway_cfg["host"]["cpu_limit"].as_f64(),
            gateway_host_cores: gateway_cfg["host"]["cores"].as_u64().map(|v| v as u32),
            max_queue: gateway_cfg["max_queue"].as_u64().map(|v| v as u32),
            cache_ttl_secs: gateway_cfg["cache_ttl_secs"].as_u64().map(|v| v as u32),
            db_delay_ms: stack["microservice"]["db_delay_ms"]
                .as_u64()
                .map(|v| v as u32),
        },
        series: Series::default(),
        percentiles: Vec::new(),
        route_p50_ms: ["GET /data", "GET /process"]
            .iter()
            .filter_map(|k| r["by_route"][k]["latency_ms"]["p50"].as_f64())
            .reduce(f64::min),
        ok_latency: None,
        calibrated_ms: r["calibration"]["p50_ms"].as_f64().filter(|v| *v > 0.0),
        goodput: 0.0,
        rate: f(&r["load"]["rate"]),
        gateway_cpu_ms: r["server"]["gateway_cpu"]["per_request_ms"].as_f64(),
        host_cpu_busy: r["server"]["host_cpu_busy"]["mean"].as_f64(),
        queue: Vec::new(),
    };
    let (mut ok, mut any_route) = (0.0, false);
    for (name, route) in r["by_route"].as_object().into_iter().flatten() {
        if !name.contains("/login") {
            any_route = true;
            ok += f(&route["requests"]) - f(&route["failures"]);
        }
    }
    // Without a per-route breakdown, every successful request counts.
    if !any_route {
        ok = (run.requests - run.failures.min(run.requests)) as f64;
    }
    run.goodput = if run.duration_secs > 0.0 {
        ok / run.duration_secs
    } else {
        0.0
    };
    // goose.json is optional: without it the run has no time series or percentile curve.
    if let Ok(text) = std::fs::read_to_string(dir.join("goose.json")) {
        if let Ok(g) = serde_json::from_str::<Value>(&text) {
            read_goose(&g, &mut run);
        }
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("latency_per_second.json")) {
        if let Ok(l) = serde_json::from_str::<Value>(&text) {
            let opt = |k: &str| -> Vec<Option<f64>> {
                l[k].as_array()
                    .map(|a| a.iter().map(Value::as_f64).collect())
                    .unwrap_or_default()
            };
            run.series.p50_ms = opt("p50_ms");
            run.series.p95_ms = opt("p95_ms");
            run.series.p99_ms = opt("p99_ms");
            let ok = &l["ok"];
            if let (Some(a), Some(b), Some(c)) = (
                ok["p50_ms"].as_f64(),
                ok["p95_ms"].as_f64(),
                ok["p99_ms"].as_f64(),
            ) {
                run.ok_latency = Some((a, b, c));
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("server.jsonl")) {
        run.queue = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|s| s["worker"].is_object() && s["worker"].get("error").is_none())
            .map(|s| QueueSample {
                t: f(&s["t"]),
                waiting: f(&s["worker"]["queue_lag"]),
                pending: f(&s["worker"]["queue_pending"]),
                in_progress: f(&s["worker"]["jobs_in_progress"]),
            })
            .collect();
    }
    Ok(run)
}

/// A step-load search (`<run-id>-breakpoint/breakpoint.json`): each step a run of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Breakpoint {
    pub id: String,
    pub scenario: String,
    pub sla_p95_ms: f64,
    pub sla_error_pct: f64,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub users: f64,
    pub rps: f64,
    pub p95_ms: f64,
    pub error_pct: f64,
    pub sla_met: bool,
}

impl Breakpoint {
    /// The highest step that met the SLA: the knee of the load curve.
    pub fn knee(&self) -> Option<&Step> {
        self.steps.iter().rev().find(|s| s.sla_met)
    }

    /// The first step that broke the SLA; none when the search ran out of steps first.
    pub fn broken(&self) -> Option<&Step> {
        self.steps.iter().find(|s| !s.sla_met)
    }
}

/// Every readable breakpoint search under `dir`, and a warning per unreadable one.
pub fn load_breakpoints(dir: &Path) -> (Vec<Breakpoint>, Vec<String>) {
    let (mut found, mut warnings) = (Vec::new(), Vec::new());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (found, warnings);
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path().join("breakpoint.json")))
        .filter(|p| p.exists())
        .collect();
    files.sort();
    for file in files {
        let parsed = std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| format!("not JSON: {e}")));
        let b = match parsed {
            Ok(b) if b["steps"].is_array() => b,
            Ok(_) => {
                warnings.push(format!("skipped {}: no `steps`", file.display()));
                continue;
            }
            Err(e) => {
                warnings.push(format!("skipped {}: {e}", file.display()));
                continue;
            }
        };
        let steps = b["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| Step {
                users: f(&s["users"]),
                rps: f(&s["rps"]),
                p95_ms: f(&s["p95_ms"]),
                error_pct: f(&s["error_pct"]),
                sla_met: s["sla_met"].as_bool().unwrap_or(false),
            })
            .collect();
        found.push(Breakpoint {
            id: file
                .parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            scenario: b["scenario"].as_str().unwrap_or("?").to_string(),
            sla_p95_ms: f(&b["sla"]["p95_ms"]),
            sla_error_pct: f(&b["sla"]["error_pct"]),
            steps,
        });
    }
    (found, warnings)
}

fn per_second(v: &Value) -> Vec<f64> {
    v["data"]
        .as_array()
        .map(|a| a.iter().map(f).collect())
        .unwrap_or_default()
}

/// Sums the routes' per-second series (login excluded: it is set-up, not the scenario).
fn sum_routes(graph: &Value, value: impl Fn(&Value) -> f64) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::new();
    if let Some(routes) = graph.as_object() {
        for (name, series) in routes {
            if name.contains("/login") {
                continue;
            }
            let origin = series["origin"].as_u64().unwrap_or(0) as usize;
            for (i, point) in series["data"].as_array().into_iter().flatten().enumerate() {
                let at = origin + i;
                if out.len() <= at {
                    out.resize(at + 1, 0.0);
                }
                out[at] += value(point);
            }
        }
    }
    out
}

fn read_goose(g: &Value, run: &mut Run) {
    let graphs = &g["graphs"];
    run.series.rps = sum_routes(&graphs["requests_per_second"], f);
    run.series.errors = sum_routes(&graphs["errors_per_second"], f);
    run.series.users = per_second(&graphs["users_per_second"]);
    // average_response_time points are [requests, average ms]: weight by requests.
    let weight = sum_routes(&graphs["average_response_time"], |p| f(&p[0]));
    let total = sum_routes(&graphs["average_response_time"], |p| f(&p[0]) * f(&p[1]));
    run.series.avg_ms = total
        .iter()
        .zip(&weight)
        .map(|(t, w)| if *w > 0.0 { t / w } else { 0.0 })
        .collect();
    if let Some(rows) = g["raw_response_metrics"].as_array() {
        // The scenario's route: Goose's aggregated row would mix in the logins.
        let row = rows
            .iter()
            .find(|r| r["name"] == "/data")
            .or_else(|| rows.iter().find(|r| r["name"] == "Aggregated"));
        if let Some(row) = row {
            for p in [50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 100.0] {
                let key = format!("percentile_{p}");
                if let Some(v) = row[&key].as_f64() {
                    run.percentiles.push((p, v));
                }
            }
        }
    }
}
