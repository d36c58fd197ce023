//! Reading run folders (`tests/results/<run-id>/`): `run.json` is required, `goose.json`
//! adds the per-second series and the percentile curve. Anything missing or corrupt is a
//! warning naming the file, never a crash.

use records::record::{
    read_json, read_server_samples, BreakpointRecord, LatencyPerSecond, RunRecord,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use catalogue::run::{Knobs, Latency, Percentiles, QueueSample, Run, Series};

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// Every readable run under `dir`, sorted by start time, and a warning per skipped folder.
pub fn load_runs(dir: &Path) -> (Vec<Run>, Vec<String>) {
    let mut runs = Vec::new();
    let mut warnings = Vec::new();
    let dirs = match folders(dir) {
        Ok(dirs) => dirs,
        Err(e) => return (runs, vec![e]),
    };
    for d in dirs {
        let file = d.join("run.json");
        if !file.exists() {
            // Breakpoint summaries and other folders without a run record.
            if !d.join("breakpoint.json").exists() {
                warnings.push(format!("skipped {}: no run.json", d.display()));
            }
            continue;
        }
        match read_run(&d, &mut warnings) {
            Ok(run) => runs.push(run),
            Err(err) => warnings.push(format!("skipped {}: {err}", file.display())),
        }
    }
    runs.sort_by(|a, b| a.started.cmp(&b.started).then(a.id.cmp(&b.id)));
    (runs, warnings)
}

/// The folders directly in `dir`, sorted by name. A symbolic link is never followed: a
/// results folder from someone else (a hand-in) could point it anywhere on this disk.
pub fn folders(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("{} cannot be read: {e}", dir.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The run folders in `dir` (those with a `run.json`), sorted by name.
pub fn run_folders(dir: &Path) -> Result<Vec<PathBuf>, String> {
    Ok(folders(dir)?
        .into_iter()
        .filter(|d| d.join("run.json").is_file())
        .collect())
}

/// A record beside `run.json` that does not read is left out with a warning (the run itself
/// still shows, as a plain run).
fn readable<T>(
    dir: &Path,
    read: Result<Option<T>, String>,
    warnings: &mut Vec<String>,
) -> Option<T> {
    read.unwrap_or_else(|e| {
        warnings.push(format!("{}: {e}: shown as a plain run", dir.display()));
        None
    })
}

/// One run folder, its warnings on standard error.
pub fn load_run(dir: &Path) -> Result<Run, String> {
    let mut warnings = Vec::new();
    let run = read_run(dir, &mut warnings);
    for w in warnings {
        eprintln!("report: warning: {w}");
    }
    run
}

fn read_run(dir: &Path, warnings: &mut Vec<String>) -> Result<Run, String> {
    let r = RunRecord::read(dir)?;
    let gateway = r.stack.gateway().cloned().unwrap_or_default();
    let microservice = r.stack.microservice.clone().unwrap_or_default();
    let think_ms = r
        .think_time_ms
        .map_or(0.0, |[min, max]| (min as f64 + max as f64) / 2.0);
    let mut run = Run {
        id: run_id(r.run_id.as_deref(), dir),
        scenario: r.scenario.clone(),
        profile: or_unknown(&r.profile),
        runtime: or_unknown(&r.runtime),
        gateways: r.gateways,
        users: r.load.users as u32,
        started: r.started.clone(),
        duration_secs: r.duration_secs,
        requests: r.requests,
        failures: r.failures,
        rps: r.rps,
        error_pct: r.error_pct,
        latency: Latency {
            avg: r.latency_ms.avg,
            p50: r.latency_ms.p50.unwrap_or(0.0),
            p95: r.latency_ms.p95.unwrap_or(0.0),
            p99: r.latency_ms.p99.unwrap_or(0.0),
            max: r.latency_ms.max,
        },
        hit_ratio: r
            .server
            .cache
            .as_ref()
            .and_then(|c| c.ok())
            .and_then(|c| c.hit_ratio),
        sla_met: r.sla.met,
        sla_rules: r.sla.rules.clone(),
        sla_p95_ms: r.sla.p95_ms,
        generator_saturated: r.generator.saturated,
        load_model: load_model(&r.model, &r.generators, r.generator_pinning.as_deref()),
        commit: r
            .versions
            .git_commit
            .clone()
            .unwrap_or_else(|| "unknown".into()),
        machine_cores: r.host.cores,
        host: format!(
            "{} ({} cores)",
            r.host.cpu.as_deref().unwrap_or("?"),
            r.host.cores.unwrap_or(0)
        ),
        think_ms,
        by_backend: r.server.requests_by_backend.clone().unwrap_or_default(),
        knobs: Knobs {
            max_in_flight: gateway.max_in_flight.unwrap_or(0),
            cache_enabled: gateway.cache_enabled.unwrap_or(true),
            microservice_pool: microservice.db_pool_size,
            microservices: microservices(&gateway),
            gateway_cpu_limit: gateway.host.as_ref().and_then(|h| h.cpu_limit),
            gateway_host_cores: gateway.host.as_ref().and_then(|h| h.cores),
            max_queue: gateway.max_queue,
            cache_ttl_secs: gateway.cache_ttl_secs,
            db_delay_ms: microservice.db_delay_ms,
        },
        series: Series::default(),
        percentiles: Vec::new(),
        route_p50_ms: ["GET /data", "GET /process"]
            .iter()
            .filter_map(|k| r.by_route.get(*k)?.latency_ms.p50)
            .reduce(f64::min),
        ok_latency: None,
        ok_percentiles: Vec::new(),
        calibrated_ms: r
            .calibration
            .as_ref()
            .and_then(|c| c.p50_ms)
            .filter(|v| *v > 0.0),
        goodput: r.goodput(),
        rate: r.load.rate,
        gateway_cpu_ms: r.server.gateway_cpu.as_ref().map(|c| c.per_request_ms),
        host_cpu_busy: r.server.host_cpu_busy.as_ref().map(|b| b.mean),
        queue: Vec::new(),
        experiment: None,
        in_rotation: Vec::new(),
        autoscaler: Vec::new(),
        measured: readable(
            dir,
            catalogue::record::ExperimentRecord::read(dir),
            warnings,
        ),
        longtask: r.longtask.clone(),
        fault: readable(dir, catalogue::record::FaultRecord::read(dir), warnings),
        at0: None,
        lb_retries: None,
        series_t0: None,
        status_classes: BTreeMap::new(),
        statuses: BTreeMap::new(),
        server: Vec::new(),
        shed: r.shed,
        routes: r.by_route.clone(),
        arrivals: r.arrivals.clone(),
        slot_hold_ms: None,
        slot_share: None,
    };
    // goose.json (Goose's own format) is optional: without it the run has no time series or
    // percentile curve.
    if let Ok(text) = std::fs::read_to_string(dir.join("goose.json")) {
        if let Ok(g) = serde_json::from_str::<Value>(&text) {
            read_goose(&g, &mut run);
        }
    }
    if let Ok(l) = read_json::<LatencyPerSecond>(&dir.join("latency_per_second.json")) {
        run.series.p50_ms = l.p50_ms;
        run.series.p95_ms = l.p95_ms;
        run.series.p99_ms = l.p99_ms;
        run.series.service_p99_ms = l.service_p99_ms;
        run.series.dropped = l.dropped.iter().map(|n| *n as f64).collect();
        run.series.sent = l.sent.iter().map(|n| *n as f64).collect();
        if let (Some(a), Some(b), Some(c)) = (l.ok.p50_ms, l.ok.p95_ms, l.ok.p99_ms) {
            run.ok_latency = Some((a, b, c));
        }
        run.ok_percentiles = l.ok.curve;
        run.status_classes = l.status_classes;
        run.series_t0 = l.started_at;
        run.statuses = l.statuses;
    }
    let server = read_server_samples(dir);
    let at0 = server.iter().find_map(|s| s.at);
    run.at0 = at0;
    let retries: Vec<f64> = server.iter().filter_map(|s| s.retries).collect();
    if let (Some(first), Some(last)) = (retries.first(), retries.last()) {
        run.lb_retries = Some(last - first);
    }
    run.in_rotation = server
        .iter()
        .filter_map(|s| Some((s.t, s.backends_healthy?)))
        .collect();
    run.autoscaler = records::record::read_autoscaler(dir)
        .into_iter()
        .map(|mut a| {
            // On the run's clock: the first server sample is second 0.
            if let Some(at0) = at0 {
                a.t = a.at - at0;
            }
            a
        })
        .collect();
    run.experiment = r
        .experiment
        .as_ref()
        .map(|e| (e.name.clone(), e.side.clone()));
    run.queue = server
        .iter()
        .filter_map(|s| {
            let w = s.worker.as_ref()?.ok()?;
            Some(QueueSample {
                t: s.t,
                waiting: w.queue_lag,
                pending: w.queue_pending,
                in_progress: w.jobs_in_progress,
            })
        })
        .collect();
    run.server = server;
    let held = crate::signals::gateway_total(&run, |g| g.slot_seconds);
    let holds = crate::signals::gateway_total(&run, |g| g.slot_holds);
    if holds > 0.0 && held > 0.0 {
        run.slot_hold_ms = Some(1000.0 * held / holds);
        run.slot_share = Some((run.goodput * run.duration_secs / holds).min(1.0));
    }
    Ok(run)
}

fn or_unknown(s: &str) -> String {
    if s.is_empty() {
        "?".into()
    } else {
        s.to_string()
    }
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
        let b = match read_json::<BreakpointRecord>(&file) {
            Ok(b) => b,
            Err(e) => {
                warnings.push(format!("skipped {}: {e}", file.display()));
                continue;
            }
        };
        let steps = b
            .steps
            .iter()
            .map(|s| Step {
                users: s.users as f64,
                rps: s.rps,
                p95_ms: s.p95_ms.unwrap_or(0.0),
                error_pct: s.error_pct,
                sla_met: s.sla_met,
            })
            .collect();
        found.push(Breakpoint {
            id: file
                .parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            scenario: or_unknown(&b.scenario),
            sla_p95_ms: b.sla.p95_ms.unwrap_or(0.0),
            sla_error_pct: b.sla.error_pct.unwrap_or(0.0),
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

/// `closed`, or `open, 100 req/s constant, timed from the intended send` (`100→400 req/s`
/// for a ramp), with `; 2 generators (not pinned: …)` when several generators made the run.
pub fn load_model(
    model: &records::record::LoadModel,
    generators: &[records::record::GeneratorPart],
    pinning: Option<&str>,
) -> String {
    let mut words = match model.kind.as_str() {
        "open" => format!(
            "open, {}{} req/s{}{}",
            model
                .arrival_rate
                .map_or_else(|| "?".to_string(), |a| format!("{a:.0}")),
            model
                .target_arrival_rate
                .map(|t| format!("→{t:.0}"))
                .unwrap_or_default(),
            model
                .spacing
                .as_deref()
                .map(|s| format!(" {s}"))
                .unwrap_or_default(),
            model
                .latency_from
                .as_deref()
                .map(|f| format!(", timed from the {f}"))
                .unwrap_or_default()
        ),
        // Records older than the field were all closed-model runs.
        _ => "closed".to_string(),
    };
    if generators.len() > 1 {
        words.push_str(&format!("; {} generators", generators.len()));
        if let Some(p) = pinning {
            words.push_str(&format!(" ({p})"));
        }
    }
    words
}

#[cfg(test)]
mod load_model_tests {
    use super::load_model;
    use records::record::{GeneratorPart, LoadModel};

    #[test]
    fn the_model_and_the_generators_are_said() {
        assert_eq!(load_model(&LoadModel::default(), &[], None), "closed");
        let open = LoadModel {
            kind: "open".into(),
            arrival_rate: Some(150.0),
            spacing: Some("poisson".into()),
            latency_from: Some("intended send".into()),
            ..LoadModel::default()
        };
        let two = vec![GeneratorPart::default(), GeneratorPart::default()];
        assert_eq!(
            load_model(&open, &two, Some("not pinned: 2 cores")),
            "open, 150 req/s poisson, timed from the intended send; 2 generators (not pinned: 2 cores)"
        );
        let ramp = LoadModel {
            target_arrival_rate: Some(400.0),
            ..open
        };
        assert!(load_model(&ramp, &[], None).starts_with("open, 150→400 req/s"));
    }
}

/// A run's id, which names its charts and CSV files: the record's `run_id` where it is a
/// plain name (letters, digits, `.`, `_`, `-`; not starting with a dot), else the folder's
/// name made plain. A run folder from someone else cannot choose where the report writes.
fn run_id(recorded: Option<&str>, dir: &Path) -> String {
    let plain = |s: &str| {
        !s.is_empty()
            && s.len() <= 200
            && !s.starts_with('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    if let Some(id) = recorded.filter(|id| plain(id)) {
        return id.to_string();
    }
    let folder: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    match folder.trim_start_matches('.') {
        "" => "run".to_string(),
        rest => rest.to_string(),
    }
}

/// The microservice instances a gateway spreads its misses over: those its MICROSERVICE_URL
/// resolved to (a scaled compose service is one name for them all), else the URLs it lists
/// (the native runtime's), at least 1.
fn microservices(gateway: &records::record::ServiceConfig) -> u32 {
    let count = match gateway.microservice_instances.as_deref() {
        Some(found) if !found.is_empty() => found.len(),
        _ => gateway
            .microservice_url
            .as_deref()
            .map_or(1, |u| u.split(',').filter(|p| !p.trim().is_empty()).count()),
    };
    count.max(1) as u32
}

#[cfg(test)]
mod microservice_count {
    use super::{microservices, run_id};

    #[test]
    fn a_run_id_never_leaves_the_report_folder() {
        let dir = std::path::Path::new("/results/20261207-1gw-hit");
        assert_eq!(run_id(Some("20261207-1gw-hit"), dir), "20261207-1gw-hit");
        for hostile in [
            "../../etc/cron.d/x",
            "..",
            "a/b",
            "<script>",
            "",
            "é",
            ".hidden",
        ] {
            assert_eq!(
                run_id(Some(hostile), dir),
                "20261207-1gw-hit",
                "{hostile:?}"
            );
        }
        assert_eq!(
            run_id(None, std::path::Path::new("/r/a\"$(x)\"b")),
            "a___x__b"
        );
        assert_eq!(run_id(None, std::path::Path::new("/r/..")), "run");
    }

    #[test]
    fn the_instances_found_count_before_the_urls_listed() {
        let config = |json: serde_json::Value| serde_json::from_value(json).unwrap();
        // Native: every instance listed.
        let listed = config(serde_json::json!({
            "microservice_url": "http://127.0.0.1:8001,http://127.0.0.1:8101"
        }));
        assert_eq!(microservices(&listed), 2);
        // Compose: one name that resolved to three replicas.
        let resolved = config(serde_json::json!({
            "microservice_url": "http://microservice:8001",
            "microservice_instances": ["http://10.0.0.5:8001", "http://10.0.0.6:8001", "http://10.0.0.7:8001"]
        }));
        assert_eq!(microservices(&resolved), 3);
        // An older record, or none at all: the URL, or one.
        assert_eq!(
            microservices(&config(
                serde_json::json!({"microservice_url": "http://microservice:8001"})
            )),
            1
        );
        assert_eq!(microservices(&config(serde_json::json!({}))), 1);
    }
}
