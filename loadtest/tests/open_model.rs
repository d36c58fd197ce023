//! The open model against a real stack whose load balancer is frozen (SIGSTOP) for five
//! seconds mid-run: the arrivals meant for the freeze are sent late and timed from when they
//! should have gone, or dropped and counted, never skipped; the share of requests slower than
//! a second is what the freeze implies; the run offers exactly its schedule.
#![cfg(unix)]

mod support;

use common::testing::{self, TestDb};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::*;

const RATE: u64 = 100;
const SECS: u64 = 15;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One open run at 100 requests/s for 15 s with the load balancer (`lb_pid`) frozen from 5 s
/// after its start for 5 s: its record, its request log's lines and the freeze's window,
/// in seconds on the run's clock.
async fn frozen_run(
    results: &std::path::Path,
    id: &str,
    target: &str,
    lb_metrics: &str,
    lb_pid: i32,
    extra: &[(&str, &str)],
) -> (records::record::RunRecord, Vec<Value>, [f64; 2]) {
    let mut settings = vec![
        ("PROFILE", "open"),
        ("ARRIVAL_RATE", "100"),
        ("DURATION_SECS", "15"),
        ("GATEWAYS", "1"),
        ("CALIBRATION_REQUESTS", "0"),
        ("KEEP_REQUEST_LOG", "true"),
    ];
    settings.extend_from_slice(extra);
    let settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (dir, t, m, run) = (
        results.to_path_buf(),
        target.to_string(),
        lb_metrics.to_string(),
        id.to_string(),
    );
    let load = tokio::task::spawn_blocking(move || {
        let extra: Vec<(&str, &str)> = settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        loadtest_with(&dir, &run, "hit", &t, &m, &extra)
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    // SAFETY: signals to the load balancer this test started.
    let stopped = unix_now();
    assert_eq!(unsafe { libc::kill(lb_pid, libc::SIGSTOP) }, 0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let resumed = unix_now();
    assert_eq!(unsafe { libc::kill(lb_pid, libc::SIGCONT) }, 0);
    load.await.unwrap();
    let folder = results.join(id);
    let record = records::record::RunRecord::read(&folder).unwrap();
    let series: records::record::LatencyPerSecond = serde_json::from_str(
        &std::fs::read_to_string(folder.join("latency_per_second.json")).unwrap(),
    )
    .unwrap();
    let origin = series.started_at.expect("the run clock's start");
    let lines = std::fs::read_to_string(folder.join("requests.json"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (record, lines, [stopped - origin, resumed - origin])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_load_balancer_shows_in_the_open_models_latency_and_nothing_goes_unsent() {
    common::telemetry::init_for_tests();
    let db = TestDb::create().await;
    let ms_url = microservice(&db, "ms-open", 5).await;
    let config =
        gateway::Config::for_tests("gw-open", db.config(), testing::redis_config(), ms_url);
    let gw = gateway::build(config).await.unwrap();
    let backend = format!("127.0.0.1:{}", gw.port());
    spawn(gw.run_until(std::future::pending())).await;
    let (lb, port, lb_metrics) = load_balancer(&[backend]).await;
    let lb_pid = lb.0.id() as i32;
    let results = tempdir().join("open");
    let target = format!("http://127.0.0.1:{port}");

    // Slots for every arrival of the freeze (the default, ten seconds of arrivals).
    let (run, lines, [a, b]) =
        frozen_run(&results, "generous", &target, &lb_metrics, lb_pid, &[]).await;
    assert!(
        a > 0.5 && b < SECS as f64 - 1.0,
        "the freeze {a:.2}–{b:.2} s inside the run"
    );
    let arrivals = run.arrivals.clone().expect("an open run's arrivals");
    // The run offered its schedule, every arrival of it sent (none dropped).
    assert_eq!(arrivals.scheduled, RATE * SECS);
    assert_eq!(arrivals.sent + arrivals.dropped, arrivals.scheduled);
    assert_eq!(arrivals.dropped, 0, "{arrivals:?}");
    let sent: Vec<&Value> = lines.iter().filter(|l| l["dropped"] != true).collect();
    assert_eq!(sent.len() as u64, arrivals.sent);
    assert_eq!(run.requests, arrivals.sent);
    // Each arrival meant for the freeze was timed from its intended send: it waited at
    // least until the load balancer came back.
    let mut during = 0;
    for l in &sent {
        let intended = l["intended_us"].as_f64().unwrap() / 1e6;
        let latency = l["latency_us"].as_f64().unwrap() / 1e6;
        let service = l["response_time"].as_f64().unwrap() / 1e3;
        assert!(latency + 1e-3 >= service, "{l}");
        if intended > a + 0.05 && intended < b - 0.05 {
            during += 1;
            assert!(
                intended + latency >= b - 0.05,
                "meant for {intended:.3} s, answered at {:.3} s, before the freeze ended at {b:.3} s: {l}",
                intended + latency
            );
        }
    }
    let freeze = b - a;
    assert!(
        (during as f64 - freeze * RATE as f64).abs() <= 0.05 * freeze * RATE as f64 + 10.0,
        "{during} arrivals meant for a {freeze:.2}-s freeze"
    );
    // Slower than a second: every arrival of the freeze's first (F − 1) s, (F − 1)/D of the
    // run. A few more just after it: the connections users opened to the frozen listener
    // overflowed its backlog and are retried by TCP a second or more later. None elsewhere.
    let slow: Vec<f64> = sent
        .iter()
        .filter(|l| l["latency_us"].as_u64().unwrap() > 1_000_000)
        .map(|l| l["intended_us"].as_f64().unwrap() / 1e6)
        .collect();
    let share = |n: usize| n as f64 / sent.len() as f64;
    let direct = share(slow.iter().filter(|t| **t >= a && **t <= b - 1.0).count());
    let implied = (freeze - 1.0) / SECS as f64;
    assert!(
        (direct - implied).abs() < 0.02,
        "{:.1} % slower than 1 s in the freeze's first {:.2} s; it implies {:.1} %",
        direct * 100.0,
        freeze - 1.0,
        implied * 100.0
    );
    let recovery = share(slow.iter().filter(|t| **t > b - 1.0).count());
    assert!(
        recovery < 0.1,
        "{:.1} % slow after the freeze",
        recovery * 100.0
    );
    assert!(
        slow.iter().all(|t| *t >= a - 0.05 && *t <= b + 2.0),
        "slow requests far from the freeze {a:.2}–{b:.2} s: {slow:?}"
    );
    // The record says so: a p95 of seconds, a median of milliseconds, and the sends on
    // schedule (free slots: each arrival went on time, into the frozen listener).
    assert!(run.latency_ms.p95.unwrap() > 1000.0, "{:?}", run.latency_ms);
    assert!(run.latency_ms.p50.unwrap() < 100.0, "{:?}", run.latency_ms);
    assert!(arrivals.send_lag_ms.p99.unwrap() < 100.0, "{arrivals:?}");
    assert_eq!(run.model.kind, "open");
    assert_eq!(run.model.latency_from.as_deref(), Some("intended send"));

    // Fifty slots: the arrivals beyond them during the freeze are dropped, and counted.
    let (run, lines, [a, b]) = frozen_run(
        &results,
        "fifty",
        &target,
        &lb_metrics,
        lb_pid,
        &[("MAX_IN_FLIGHT", "50")],
    )
    .await;
    let arrivals = run.arrivals.clone().unwrap();
    assert_eq!(arrivals.scheduled, RATE * SECS);
    assert_eq!(
        arrivals.sent + arrivals.dropped,
        arrivals.scheduled,
        "{arrivals:?}"
    );
    let expected = (b - a) * RATE as f64 - 50.0;
    assert!(
        (arrivals.dropped as f64 - expected).abs() < 0.1 * expected,
        "{} dropped; a {:.2}-s freeze with 50 slots drops about {expected:.0}",
        arrivals.dropped,
        b - a
    );
    let dropped: Vec<&Value> = lines.iter().filter(|l| l["dropped"] == true).collect();
    assert_eq!(dropped.len() as u64, arrivals.dropped);
    assert!(dropped.iter().all(|l| {
        let t = l["intended_us"].as_f64().unwrap() / 1e6;
        t > a - 0.1 && t < b + 0.1
    }));
    let series: records::record::LatencyPerSecond = serde_json::from_str(
        &std::fs::read_to_string(results.join("fifty/latency_per_second.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(series.dropped.iter().sum::<u64>(), arrivals.dropped);
    assert_eq!(series.service_p99_ms.len(), series.p99_ms.len());
    let _ = std::fs::remove_dir_all(&results);
}
