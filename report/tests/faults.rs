//! The Faults section and its checks on hand-built fault runs: 30 seconds, the fault at 8 s,
//! the repair at 18 s, on the per-second series' clock.

use serde_json::json;
use std::path::{Path, PathBuf};

const T0: f64 = 1_800_000_000.0;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("report-faults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fault run: `statuses` per second (30 s), gateways in rotation per second, failures.
fn fault_run(
    root: &Path,
    name: &str,
    statuses: serde_json::Value,
    rotation: &[f64],
    failures: u64,
    p95: Vec<f64>,
) -> PathBuf {
    let id = format!("20261123-150000-fault-{name}");
    let dir = root.join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let write =
        |file: &str, v: serde_json::Value| std::fs::write(dir.join(file), v.to_string()).unwrap();
    write(
        "run.json",
        json!({
            "schema_version": 2, "run_id": id, "scenario": "hit", "profile": "classic",
            "load": {"users": 100, "rate": 100.0, "duration_secs": 30}, "gateways": 3,
            "experiment": {"name": name, "side": "fault", "settings": {}},
            "started": "2026-11-23T15:00:00Z", "duration_secs": 30.0,
            "requests": 3000, "failures": failures, "error_pct": 0.0, "rps": 100.0,
            "latency_ms": {"avg": 2.0, "p50": 1.0, "p95": 3.0, "p99": 5.0, "max": 9.0},
        }),
    );
    let mut classes = serde_json::Map::new();
    for (code, per_second) in statuses.as_object().unwrap() {
        let class = if code == "0" {
            "none".to_string()
        } else {
            format!("{}xx", &code[..1])
        };
        classes.insert(class, per_second.clone());
    }
    write(
        "latency_per_second.json",
        json!({
            "started_at": T0, "requests": vec![100; 30], "failures": vec![0; 30],
            "p50_ms": p95.clone(), "p95_ms": p95.clone(), "p99_ms": p95,
            "status_classes": classes, "statuses": statuses,
        }),
    );
    // The server samples start a second before the attack.
    let server: Vec<String> = rotation
        .iter()
        .enumerate()
        .map(|(t, n)| {
            json!({"t": t as f64, "at": T0 - 1.0 + t as f64, "backends_healthy": n, "gateways": {}})
                .to_string()
        })
        .collect();
    std::fs::write(dir.join("server.jsonl"), server.join("\n")).unwrap();
    write(
        "fault.json",
        json!({
            "name": name, "promise": "the promise", "health_interval_ms": 1000.0,
            "events": [
                {"at": T0 + 8.0, "kind": "fault", "action": "the fault"},
                {"at": T0 + 18.0, "kind": "repair", "action": "the repair"},
            ]
        }),
    );
    dir
}

/// Rewrites one JSON file of a run folder.
fn patch(dir: &Path, file: &str, change: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
    change(&mut v);
    std::fs::write(dir.join(file), v.to_string()).unwrap();
}

/// Replaces `server.jsonl` with 31 samples (server second t = series second t - 1).
fn server_samples(dir: &Path, sample: impl Fn(usize) -> serde_json::Value) {
    let lines: Vec<String> = (0..31)
        .map(|t| {
            let mut v = sample(t);
            v["t"] = json!(t as f64);
            v["at"] = json!(T0 - 1.0 + t as f64);
            v.to_string()
        })
        .collect();
    std::fs::write(dir.join("server.jsonl"), lines.join("\n")).unwrap();
}

fn load(dir: &Path) -> report::runs::Run {
    report::runs::load_run(dir).unwrap()
}

fn verdicts(dir: &Path) -> Vec<(String, bool)> {
    report::faults::checks(&load(dir))
        .into_iter()
        .map(|c| (c.promise, c.passed))
        .collect()
}

#[test]
fn a_killed_gateway_is_checked_on_failures_and_the_rotation() {
    let root = temp("kill");
    // On the server clock (one second ahead): 3 gateways, 2 from second 10 (9 s into the
    // series: 1 s after the kill), 3 again from second 21 (2 s after the repair).
    let rotation: Vec<f64> = (0..31)
        .map(|t| if (10..21).contains(&t) { 2.0 } else { 3.0 })
        .collect();
    let ok = json!({"200": vec![100; 30]});
    let dir = fault_run(
        &root,
        "kill-gateway",
        ok.clone(),
        &rotation,
        0,
        vec![1.0; 30],
    );
    let w = report::faults::window(&load(&dir)).unwrap();
    assert_eq!((w.down, w.up), (8.0, 18.0));
    assert!(
        verdicts(&dir).iter().all(|(_, passed)| *passed),
        "{:?}",
        verdicts(&dir)
    );
    let checks = report::faults::checks(&load(&dir));
    assert_eq!(
        checks[1].observed,
        "1.0 s after the kill (interval 1.0 s, sampled each second)"
    );
    assert_eq!(checks[2].observed, "2.0 s after the restart");

    // One failed request, and a gateway that never left the rotation: two FAILs.
    let root2 = temp("kill-broken");
    let dir = fault_run(&root2, "kill-gateway", ok, &[3.0; 31], 1, vec![1.0; 30]);
    let v = verdicts(&dir);
    assert_eq!(v.iter().filter(|(_, p)| !p).count(), 2, "{v:?}");

    let outcome = report::generate(&root, &root.join("out")).unwrap();
    let md = std::fs::read_to_string(outcome.summary).unwrap();
    assert!(md.contains("## Faults"), "{md}");
    assert!(
        md.contains("The lab: the fault at 8 s, then the repair at 18 s."),
        "{md}"
    );
    assert!(
        md.contains("| 0 failed requests | 0 failed of 3000 | **PASS** |"),
        "{md}"
    );
    assert!(
        md.contains("| none | 1 s (out of rotation) | 2 s (back in rotation) | – |"),
        "{md}"
    );
    assert!(root
        .join("out/graphs/fault-mechanism-20261123-150000-fault-kill-gateway.png")
        .exists());
    assert!(root
        .join("out/graphs/fault-20261123-150000-fault-kill-gateway.png")
        .exists());
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&root2);
}

#[test]
fn a_postgres_outage_may_shed_with_503_only_and_must_recover_in_5_s() {
    let root = temp("pg");
    let mut ok = vec![100u64; 30];
    let mut shed = vec![0u64; 30];
    for s in 8..18 {
        ok[s] = 0;
        shed[s] = 100;
    }
    // Serving again 2 s after Postgres returned.
    ok[18] = 0;
    shed[18] = 100;
    ok[19] = 50;
    shed[19] = 50;
    let dir = fault_run(
        &root,
        "postgres-restart",
        json!({"200": ok.clone(), "503": shed.clone()}),
        &[1.0; 31],
        1100,
        vec![50.0; 30],
    );
    patch(&dir, "run.json", |v| {
        v["shed"] = json!({"answers_503": 1150, "without_retry_after": 0});
    });
    // The microservice's pool: requests wait for a connection while Postgres is away.
    server_samples(&dir, |t| {
        let waiting = if (9..19).contains(&t) { 4.0 } else { 0.0 };
        json!({"backends_healthy": 1.0, "gateways": {},
               "microservice": {"requests": 100.0 * t as f64, "pool_open": 4.0 - waiting,
                                "pool_waiting": waiting, "started_at": T0 - 60.0}})
    });
    let checks = report::faults::checks(&load(&dir));
    assert!(checks.iter().all(|c| c.passed), "{checks:?}");
    assert_eq!(checks[3].observed, "2 s after Postgres returned");
    assert_eq!(
        report::faults::outcome(&load(&dir)).unwrap(),
        [
            "503 × 1150".to_string(),
            "0 s (first failed answer)".into(),
            "2 s (90 % answered 2xx again)".into(),
            "–".into()
        ]
    );
    // 503s without Retry-After break the promise.
    patch(&dir, "run.json", |v| {
        v["shed"] = json!({"answers_503": 1150, "without_retry_after": 3});
    });
    let checks = report::faults::checks(&load(&dir));
    assert!(!checks[2].passed, "{checks:?}");
    assert_eq!(checks[2].observed, "3 of 1150 503s without Retry-After");
    // A single 500 breaks the promise.
    let mut bug = vec![0u64; 30];
    bug[12] = 1;
    let root2 = temp("pg-500");
    let dir = fault_run(
        &root2,
        "postgres-restart",
        json!({"200": ok, "503": shed, "500": bug}),
        &[1.0; 31],
        1101,
        vec![50.0; 30],
    );
    let checks = report::faults::checks(&load(&dir));
    assert!(!checks[0].passed, "{checks:?}");
    assert_eq!(checks[0].observed, "1150 503s, 1 other 5xx or unanswered");
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&root2);
}

/// Cache counters of one gateway per server second: 90 hits a second, errors instead while
/// Redis is away (series seconds 8..18), hits again after it unless `stays_cold`.
fn cache_samples(dir: &Path, stays_cold: bool, restart_at: Option<usize>) {
    server_samples(dir, |t| {
        let (mut hit, mut miss, mut error) = (0.0, 0.0, 0.0);
        for s in 1..=t {
            let series_second = s as f64 - 1.0;
            if (8.0..18.0).contains(&series_second) {
                error += 90.0;
            } else if stays_cold && series_second >= 18.0 {
                miss += 90.0;
            } else {
                hit += 90.0;
            }
        }
        let started = if restart_at.is_some_and(|r| t >= r) {
            2.0
        } else {
            1.0
        };
        json!({"backends_healthy": 3.0, "gateways": {"g1": {
            "requests": hit + miss + error, "cache_hit": hit, "cache_miss": miss,
            "cache_error": error, "started_at": T0 - started}}})
    });
}

#[test]
fn a_redis_outage_passes_without_5xx_when_latency_and_hits_come_back() {
    let root = temp("redis");
    let mut p95 = vec![2.0; 30];
    for s in p95.iter_mut().take(18).skip(8) {
        *s = 60.0;
    }
    let dir = fault_run(
        &root,
        "redis-outage",
        json!({"200": vec![100; 30]}),
        &[3.0; 31],
        0,
        p95.clone(),
    );
    cache_samples(&dir, false, None);
    let checks = report::faults::checks(&load(&dir));
    assert!(checks.iter().all(|c| c.passed), "{checks:?}");
    assert_eq!(checks[0].observed, "900 cache errors in the window");
    assert_eq!(
        checks[3].observed,
        "1.000 in the 5 s before the outage, 1.000 in the last 5 s"
    );
    let [failed, detect, recover, _] = report::faults::outcome(&load(&dir)).unwrap();
    assert_eq!(failed, "none");
    assert_eq!(detect, "0 s (first cache errors)");
    assert_eq!(recover, "0 s (hit ratio back to 90 % of before)");

    // Latency that stays high, hits that never come back, a gateway that restarted, and an
    // outage nobody felt: each breaks its promise.
    let root2 = temp("redis-slow");
    for s in p95.iter_mut().skip(18) {
        *s = 60.0;
    }
    let dir = fault_run(
        &root2,
        "redis-outage",
        json!({"200": vec![100; 30]}),
        &[3.0; 31],
        0,
        p95,
    );
    cache_samples(&dir, true, Some(20));
    let v = verdicts(&dir);
    assert_eq!(
        v,
        vec![
            (
                "the outage was felt (cache errors while Redis was away)".to_string(),
                true
            ),
            ("0 5xx".to_string(), true),
            ("latency back by itself".to_string(), false),
            ("hit ratio back by itself".to_string(), false),
            ("no restart".to_string(), false),
        ]
    );
    assert_eq!(
        report::faults::checks(&load(&dir))[4].observed,
        "gateway g1 restarted 1 time(s)"
    );
    server_samples(&dir, |_| json!({"backends_healthy": 3.0, "gateways": {}}));
    let v = verdicts(&dir);
    assert!(!v[0].1 && !v[3].1 && !v[4].1, "{v:?}");
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&root2);
}

#[test]
fn a_slow_microservice_must_turn_into_504s_and_503s_without_retries() {
    let root = temp("slow");
    let mut ok = vec![60u64; 30];
    let mut timeouts = vec![0u64; 30];
    let mut shed = vec![0u64; 30];
    for s in 8..18 {
        ok[s] = 0;
        timeouts[s] = 4;
        shed[s] = 50;
    }
    let dir = fault_run(
        &root,
        "slow-microservice",
        json!({"200": ok, "503": shed, "504": timeouts}),
        &[1.0; 31],
        540,
        vec![900.0; 30],
    );
    // The lab's record of the timeouts in force, and the load balancer's retry counter.
    let mut fault: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("fault.json")).unwrap()).unwrap();
    fault["settings"] = json!({"QUEUE_TIMEOUT_MS": 5000.0, "MICROSERVICE_TIMEOUT_MS": 1000.0});
    std::fs::write(dir.join("fault.json"), fault.to_string()).unwrap();
    let server: Vec<String> = (0..31)
        .map(|t| {
            json!({"t": t as f64, "at": T0 - 1.0 + t as f64, "backends_healthy": 1.0,
                   "retries": 7.0, "gateways": {}})
            .to_string()
        })
        .collect();
    std::fs::write(dir.join("server.jsonl"), server.join("\n")).unwrap();
    let checks = report::faults::checks(&load(&dir));
    assert!(checks.iter().all(|c| c.passed), "{checks:?}");
    assert_eq!(
        checks[0].observed,
        "40 504s and 500 503s in the window, 0 other 5xx or unanswered"
    );
    assert_eq!(checks[2].observed, "0 requests sent to a second gateway");
    // Retries during the run break the promise.
    let server: Vec<String> = (0..31)
        .map(|t| {
            json!({"t": t as f64, "at": T0 - 1.0 + t as f64, "backends_healthy": 1.0,
                   "retries": 7.0 + t as f64, "gateways": {}})
            .to_string()
        })
        .collect();
    std::fs::write(dir.join("server.jsonl"), server.join("\n")).unwrap();
    let checks = report::faults::checks(&load(&dir));
    assert!(!checks[2].passed, "{checks:?}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_worker_crash_loses_no_job_or_fails_the_check() {
    let root = temp("worker");
    let dir = fault_run(
        &root,
        "worker-crash",
        json!({"200": vec![20; 30]}),
        &[1.0; 31],
        0,
        vec![5.0; 30],
    );
    let write_jobs = |jobs: serde_json::Value| {
        let mut fault: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("fault.json")).unwrap())
                .unwrap();
        fault["jobs"] = jobs;
        std::fs::write(dir.join("fault.json"), fault.to_string()).unwrap();
    };
    write_jobs(
        json!({"queued": 1000, "accepted": 1000, "done": 1000, "failed": 0, "unfinished": 0, "taken_over": 4}),
    );
    let checks = report::faults::checks(&load(&dir));
    assert!(checks.iter().all(|c| c.passed), "{checks:?}");
    assert_eq!(
        checks[0].observed,
        "1000 queued, 1000 accepted, 1000 done, 0 failed, 0 unfinished; 4 taken over from the killed worker"
    );
    // The worker killed at second 8 (its samples fail), restarted at 18 with new counters.
    server_samples(&dir, |t| {
        if (9..19).contains(&t) {
            return json!({"backends_healthy": 1.0, "gateways": {}, "worker": {"error": "refused"}});
        }
        let reclaimed = if t >= 22 { 4.0 } else { 0.0 };
        let absorbed = if t >= 23 { 1.0 } else { 0.0 };
        let waiting = if t < 25 { 500.0 } else { 0.0 };
        json!({"backends_healthy": 1.0, "gateways": {}, "worker": {
            "queue_lag": waiting, "queue_pending": 0.0, "jobs_reclaimed": reclaimed,
            "duplicates_absorbed": absorbed, "started_at": if t < 9 { 1.0 } else { 2.0 }}})
    });
    let [_, detect, recover, jobs] = report::faults::outcome(&load(&dir)).unwrap();
    assert_eq!(detect, "13 s (first job taken over)");
    assert_eq!(recover, "6 s (queue empty)");
    // When the lab followed the jobs past the run's end, their last finish is the recovery.
    patch(&dir, "fault.json", |v| {
        v["jobs"]["all_finished_at"] = json!(T0 + 18.0 + 41.0);
    });
    let [_, _, recover, _] = report::faults::outcome(&load(&dir)).unwrap();
    assert_eq!(recover, "41 s (every queued job finished)");
    assert_eq!(
        jobs,
        "0 lost; 4 ran again after the crash, 1 replays found their result already stored and stored nothing"
    );
    write_jobs(
        json!({"queued": 1000, "accepted": 1000, "done": 997, "failed": 0, "unfinished": 3, "taken_over": 0}),
    );
    assert!(!report::faults::checks(&load(&dir))[0].passed);
    write_jobs(json!(null));
    assert!(!report::faults::checks(&load(&dir))[0].passed);
    let _ = std::fs::remove_dir_all(&root);
}
