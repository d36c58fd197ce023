//! Short `hit` and `miss` runs of the real `loadtest` binary against a real stack: the load
//! balancer binary in front of two gateways, a microservice, Postgres and Redis. Each run's
//! folder must be complete and its numbers consistent.

mod support;

use common::testing::{self, free_port, TestDb};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_and_miss_runs_leave_complete_consistent_records() {
    common::telemetry::init_for_tests();
    let db = TestDb::create().await;
    let redis = testing::redis_config();
    let ms_url = microservice(&db, "ms", 5).await;

    let worker = worker::build(worker::Config {
        worker_concurrency: 8,
        work: common::tasks::TaskWork {
            task_duration_ms: 100,
            max_task_duration_ms: 5_000,
        },
        visibility_timeout_ms: 30_000,
        ..worker::Config::for_tests("wk", db.config(), redis.clone())
    })
    .await
    .unwrap();
    let worker_metrics = format!("http://127.0.0.1:{}/metrics", worker.port());
    tokio::spawn(async move {
        let _ = worker.run_until(std::future::pending()).await;
    });

    let mut gateways = Vec::new();
    for name in ["gw-a", "gw-b"] {
        let mut config =
            gateway::Config::for_tests(name, db.config(), redis.clone(), ms_url.clone());
        config.cache.cache_ttl_secs = 60;
        config.cache.microservice_timeout_ms = 5000;
        let gw = gateway::build(config).await.unwrap();
        gateways.push(format!("127.0.0.1:{}", gw.port()));
        spawn(gw.run_until(std::future::pending())).await;
    }

    let (_lb, port, lb_metrics) = load_balancer(&gateways).await;

    let results = tempdir();
    let target = format!("http://127.0.0.1:{port}");
    let (t, m) = (target.clone(), lb_metrics.clone());
    let dir = results.clone();
    let hit = tokio::task::spawn_blocking(move || loadtest(&dir, "hit-run", "hit", &t, &m))
        .await
        .unwrap();
    let (t, m, dir) = (target.clone(), lb_metrics.clone(), results.clone());
    let miss = tokio::task::spawn_blocking(move || loadtest(&dir, "miss-run", "miss", &t, &m))
        .await
        .unwrap();

    // The record round-trips: what the load generator wrote, the shared type and the report
    // read back with the same figures.
    for (id, run) in [("hit-run", &hit), ("miss-run", &miss)] {
        let typed = records::record::RunRecord::read(&results.join(id)).expect("typed record");
        assert_eq!(typed.schema_version, records::record::SCHEMA_VERSION);
        assert_eq!(
            serde_json::to_value(&typed).unwrap(),
            *run,
            "{id}: nothing lost"
        );
        let read = report::runs::load_run(&results.join(id)).expect("the report reads it");
        assert_eq!(read.requests, typed.requests, "{id}");
        assert_eq!(read.scenario, typed.scenario, "{id}");
        assert_eq!(read.gateways, 2, "{id}");
        assert_eq!(read.knobs.cache_ttl_secs, Some(60), "{id}");
        assert_eq!(read.knobs.db_delay_ms, Some(5), "{id}");
        assert!(read.goodput > 0.0 && read.calibrated_ms.is_some(), "{id}");
        assert_eq!(read.by_backend.len(), 2, "{id}");
    }

    for (name, run) in [("hit", &hit), ("miss", &miss)] {
        let requests = run["requests"].as_u64().unwrap();
        assert!(requests > 20, "{name}: {requests} requests");
        assert_eq!(run["failures"], 0, "{name}: {run}");
        assert_eq!(run["scenario"], name);
        assert_eq!(run["gateways"], 2);
        assert!(
            run["by_route"].get("GET /data").is_some()
                && run["by_route"].get("GET /process").is_some(),
            "{name}: requests named by route"
        );
        // The users logged in before the load: no login in the run.
        assert!(
            run["by_route"].get("POST /login").is_none(),
            "{name}: {}",
            run["by_route"]
        );
        // Everything the generator sent went through the load balancer, to both gateways.
        let by_backend = run["server"]["requests_by_backend"]
            .as_object()
            .expect("server counters");
        let total: f64 = by_backend.values().map(|v| v.as_f64().unwrap()).sum();
        assert_eq!(
            total as u64, requests,
            "{name}: load balancer counted {by_backend:?}"
        );
        for gw in &gateways {
            assert!(
                by_backend[gw].as_f64().unwrap() > 0.0,
                "{name}: {gw} got traffic"
            );
        }
        assert!(run["generator"]["cpu_seconds"].as_f64().unwrap() > 0.0);
        assert!(run["sla"]["met"].is_boolean());
        assert!(run["host"]["cores"].as_u64().unwrap() >= 1);
    }
    // The service time measured one request at a time before the load: a miss waits for the
    // microservice's 5 ms database delay, a hit does not.
    let calibrated = |run: &Value| run["calibration"]["p50_ms"].as_f64().unwrap();
    assert_eq!(hit["calibration"]["requests"], 20, "{}", hit["calibration"]);
    assert!(
        calibrated(&miss) > 5.0 && calibrated(&miss) > calibrated(&hit),
        "miss {} vs hit {}",
        miss["calibration"],
        hit["calibration"]
    );
    // The microservice and every gateway sampled each second, with their processes' start.
    let samples = std::fs::read_to_string(results.join("miss-run").join("server.jsonl")).unwrap();
    let last: Value = serde_json::from_str(samples.lines().last().unwrap()).unwrap();
    assert!(
        last["microservice"]["requests"].as_f64().unwrap() > 0.0,
        "{last}"
    );
    assert!(last["microservice"]["pool_open"].as_f64().unwrap() >= 1.0);
    assert!(last["microservice"]["started_at"].as_f64().unwrap() > 1.7e9);
    for (_, g) in last["gateways"].as_object().unwrap() {
        assert!(g["started_at"].as_f64().unwrap() > 1.7e9, "{g}");
    }
    // Latency percentiles per second, from the request log, cover the same requests.
    for (id, run) in [("hit-run", &hit), ("miss-run", &miss)] {
        let folder = results.join(id);
        let series: Value = serde_json::from_str(
            &std::fs::read_to_string(folder.join("latency_per_second.json")).unwrap(),
        )
        .unwrap();
        let logged: u64 = series["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum();
        let routed: u64 = ["GET /data", "GET /process"]
            .iter()
            .map(|r| run["by_route"][r]["requests"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(logged, routed, "{id}: {series}");
        // No request failed, so the successful requests' percentiles cover all of them.
        assert_eq!(series["ok"]["requests"].as_u64(), Some(routed), "{id}");
        assert!(series["p95_ms"]
            .as_array()
            .unwrap()
            .iter()
            .any(Value::is_f64));
        assert!(
            !folder.join("requests.json").exists(),
            "the raw request log is removed unless KEEP_REQUEST_LOG"
        );
        let busy = run["server"]["host_cpu_busy"]["mean"].as_f64().unwrap();
        assert!(
            (0.0..=1.0).contains(&busy) && busy > 0.0,
            "{}",
            run["server"]
        );
        // The gateways' CPU per request, for the report's CPU bound.
        let cpu = run["server"]["gateway_cpu"]["per_request_ms"].as_f64();
        assert!(cpu.is_some_and(|ms| ms > 0.0), "{}", run["server"]);
        for gw in &gateways {
            assert!(
                run["stack"]["gateways"][gw]["host"]["cores"]
                    .as_u64()
                    .unwrap()
                    >= 1
            );
        }
    }
    // The gateways' own counters agree with what the client saw, and the knobs are recorded.
    let server_ratio = hit["server"]["cache"]["hit_ratio"]
        .as_f64()
        .expect("server-side cache ratio");
    assert!(
        server_ratio > 0.9,
        "gateways counted a hit ratio of {server_ratio}"
    );
    assert_eq!(miss["server"]["cache"]["hit"], 0.0);
    assert_eq!(hit["stack"]["microservice"]["db_delay_ms"], 5);
    for gw in &gateways {
        assert_eq!(
            hit["stack"]["gateways"][gw]["cache_ttl_secs"], 60,
            "{}",
            hit["stack"]
        );
    }
    assert_eq!(hit["stack"]["load_balancer"]["max_tries"], 3);
    let seen = |run: &Value, k: &str| run["cache_seen_by_client"][k].as_f64().unwrap();
    let hit_ratio = seen(&hit, "hit") / (seen(&hit, "hit") + seen(&hit, "miss"));
    assert!(
        hit_ratio > 0.9,
        "hit run: {hit_ratio} of answers were X-Cache: HIT"
    );
    assert_eq!(seen(&miss, "hit"), 0.0, "miss run: no hit at all");
    assert!(seen(&miss, "miss") > 0.0);
    for run in [&hit, &miss] {
        assert!(run["rps"].as_f64().unwrap() > 0.0);
        // The whole run's percentiles, from its histograms: never above the slowest.
        let p95 = run["latency_ms"]["p95"].as_f64().expect("a p95");
        assert!(
            p95 <= run["latency_ms"]["max"].as_f64().unwrap(),
            "{}",
            run["latency_ms"]
        );
    }
    // Misses wait for the microservice's 5 ms database delay; hits do not.
    assert!(
        miss["latency_ms"]["p50"].as_f64().unwrap() > hit["latency_ms"]["p50"].as_f64().unwrap()
    );

    // Breakpoint search: an SLA no miss can meet breaks at the first step...
    let (t, m, dir) = (target.clone(), lb_metrics.clone(), results.clone());
    tokio::task::spawn_blocking(move || {
        let strict = [
            ("PROFILE", "breakpoint"),
            ("START_USERS", "2"),
            ("STEP_USERS", "2"),
            ("STEP_SECS", "2"),
            ("MAX_STEPS", "3"),
            ("SLA_P95_MS", "1"),
        ];
        loadtest_with(&dir, "strict", "miss", &t, &m, &strict);
        let lenient = [
            ("PROFILE", "breakpoint"),
            ("START_USERS", "2"),
            ("STEP_USERS", "2"),
            ("STEP_SECS", "2"),
            ("MAX_STEPS", "2"),
            ("SLA_P95_MS", "10000"),
        ];
        loadtest_with(&dir, "lenient", "hit", &t, &m, &lenient);
        // The profiles made of a Goose test plan run to the end too.
        for profile in ["stages", "wave"] {
            let plan = [
                ("PROFILE", profile),
                ("USERS", "4"),
                ("LOW_USERS", "1"),
                ("DURATION_SECS", "10"),
            ];
            loadtest_with(&dir, profile, "hit", &t, &m, &plan);
        }
    })
    .await
    .unwrap();
    for profile in ["stages", "wave"] {
        let run = records::record::RunRecord::read(&results.join(profile)).expect(profile);
        assert_eq!(run.profile, profile);
        assert!(run.requests > 0 && run.failures == 0, "{profile}: {run:?}");
        // Every request the load balancer counted over the run is one Goose counted.
        let counted: f64 = run.server.requests_by_backend.unwrap().values().sum();
        assert_eq!(counted as u64, run.requests, "{profile}");
    }
    let read = |name: &str| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(results.join(name).join("breakpoint.json")).unwrap(),
        )
        .unwrap()
    };
    let strict = read("strict-breakpoint");
    assert_eq!(strict["broke"], true, "{strict}");
    assert_eq!(
        strict["steps"].as_array().unwrap().len(),
        1,
        "stops at the first broken step"
    );
    assert_eq!(strict["highest_passing"], Value::Null);
    assert_eq!(strict["first_failing"]["users"], 2);
    assert!(
        results.join("strict-step01-2u").join("run.json").exists(),
        "each step is a run of its own"
    );
    // ...and one every step meets runs them all and names the highest.
    let lenient = read("lenient-breakpoint");
    assert_eq!(lenient["broke"], false, "{lenient}");
    assert_eq!(lenient["steps"].as_array().unwrap().len(), 2);
    assert_eq!(lenient["highest_passing"]["users"], 4);
    assert!(lenient["highest_passing"]["rps"].as_f64().unwrap() > 0.0);
    // Each step places its own second 0 on the wall clock: the second step's is its own first
    // login, after the first step's load (not the first step's again).
    let started_at = |step: &str| -> f64 {
        let series: Value = serde_json::from_str(
            &std::fs::read_to_string(results.join(step).join("latency_per_second.json")).unwrap(),
        )
        .unwrap();
        series["started_at"].as_f64().expect("started_at")
    };
    let (first, second) = (
        started_at("lenient-step01-2u"),
        started_at("lenient-step02-4u"),
    );
    assert!(second - first >= 1.0, "steps start at {first} and {second}");

    // Long tasks: submitted, polled to the end, timed end to end; the queue sampled.
    let (t, m, dir, wm) = (
        target.clone(),
        lb_metrics.clone(),
        results.clone(),
        worker_metrics.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let env = [
            ("LONGTASK_MS", "200"),
            ("POLL_MS", "50"),
            ("WORKER_METRICS_URL", wm.as_str()),
        ];
        loadtest_with(&dir, "jobs", "longtask", &t, &m, &env);
    })
    .await
    .unwrap();
    let jobs: Value = run_json(&results, "jobs");
    let lt = &jobs["longtask"];
    assert!(lt["done"].as_u64().unwrap() >= 4, "{lt}");
    assert_eq!(lt["failed"], 0);
    let p50 = lt["end_to_end_ms"]["p50"].as_f64().unwrap();
    assert!(
        p50 >= 200.0,
        "a job takes at least its 200 ms of work end to end ({p50})"
    );
    assert!(
        jobs["by_route"].get("GET /tasks/{id}").is_some(),
        "{}",
        jobs["by_route"]
    );
    let samples = std::fs::read_to_string(results.join("jobs").join("server.jsonl")).unwrap();
    let last: Value = serde_json::from_str(samples.lines().last().unwrap()).unwrap();
    assert!(
        last["worker"]["jobs_processed"].as_f64().unwrap() >= lt["done"].as_f64().unwrap(),
        "{last}"
    );
    // A wrong password: the users log in before the load, so the run is refused in one line
    // naming the user and the answer, before any scenario request (and without the two
    // minutes a full gateway's refusals would be retried for).
    let (t, m, dir) = (target.clone(), lb_metrics.clone(), results.clone());
    let (status, took, err) = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let env = [("LAB_PASSWORD", "not-the-password")];
        let out = loadtest_command(&dir, "refused", "hit", &t, &m, &env)
            .output()
            .expect("run loadtest");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status, started.elapsed(), err)
    })
    .await
    .unwrap();
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("user1 cannot log in: login as user1 answered 401"),
        "{err}"
    );
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
    assert!(!results.join("refused").join("run.json").exists());
    let (t, m, dir) = (target.clone(), lb_metrics.clone(), results.clone());
    tokio::task::spawn_blocking(move || two_generators(&dir, &t, &m))
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&results);
}

/// Every request's latency in a request log, µs (dropped arrivals left out).
fn raw_latencies(log: &Path) -> Vec<u64> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["dropped"] != true)
        .map(|l| l["latency_us"].as_u64().expect("both clocks in each line"))
        .collect()
}

/// Two cooperating generators, started as the lab starts them, then merged: the run is the
/// sum of its parts, the load balancer counted every request of both, and the merged
/// percentiles are those of one histogram of both raw logs together (and the nearest-rank
/// ones to its precision).
fn two_generators(results: &Path, target: &str, lb_metrics: &str) {
    let start_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 4_000;
    let parts: Vec<_> = (0..2)
        .map(|i| {
            let (dir, t, m) = (
                results.to_path_buf(),
                target.to_string(),
                lb_metrics.to_string(),
            );
            std::thread::spawn(move || {
                let (index, start) = (i.to_string(), start_at.to_string());
                loadtest_with(
                    &dir,
                    &format!("two/generators/{i}"),
                    "hit",
                    &t,
                    &m,
                    &[
                        ("GENERATORS", "2"),
                        ("GENERATOR_INDEX", &index),
                        ("START_AT_MS", &start),
                        ("KEEP_REQUEST_LOG", "true"),
                    ],
                )
            })
        })
        .collect();
    for p in parts {
        p.join().unwrap();
    }
    let run = results.join("two");
    let status = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("merge")
        .arg(&run)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "loadtest merge exited {status}");
    let read = |dir: &Path| records::record::RunRecord::read(dir).expect("a record");
    let (a, b, merged) = (
        read(&run.join("generators/0")),
        read(&run.join("generators/1")),
        read(&run),
    );
    // Each took half the users; the first alone sampled the stack and calibrated.
    assert_eq!((a.load.users, b.load.users, merged.load.users), (2, 2, 4));
    assert!(a.calibration.is_some() && b.calibration.is_none());
    assert!(a.server.samples > 0 && b.server.samples == 0);
    assert!(a.requests > 0 && b.requests > 0, "both sent load");
    assert_eq!(merged.requests, a.requests + b.requests);
    assert_eq!(merged.failures, a.failures + b.failures);
    for (route, r) in &merged.by_route {
        let part = |x: &records::record::RunRecord| x.by_route.get(route).map_or(0, |r| r.requests);
        assert_eq!(r.requests, part(&a) + part(&b), "{route}");
    }
    // The load balancer saw exactly the requests of both, while the first one sampled.
    let counted: f64 = merged
        .server
        .requests_by_backend
        .as_ref()
        .expect("the load balancer's counts")
        .values()
        .sum();
    assert_eq!(counted as u64, merged.requests, "{:?}", merged.server);
    // Percentiles of the merged histograms, never an average of the parts': those of one
    // histogram holding every request of both logs.
    let mut all = raw_latencies(&run.join("generators/0/requests.json"));
    all.extend(raw_latencies(&run.join("generators/1/requests.json")));
    assert_eq!(all.len() as u64, merged.requests);
    let mut one = loadtest::tally::Times::fine();
    for us in &all {
        one.record(*us);
    }
    let (want, got) = (one.summary(), &merged.latency_ms);
    assert_eq!((got.p50, got.p95, got.p99), (want.p50, want.p95, want.p99));
    assert_eq!(got.max, want.max);
    assert!(
        (got.avg - want.avg).abs() < 1e-9,
        "{got:?} against {want:?}"
    );
    // And the nearest-rank ones of the raw values, to the histogram's three figures.
    all.sort_unstable();
    let rank = |p: f64| all[((p * all.len() as f64).ceil() as usize).clamp(1, all.len()) - 1];
    for (p, got) in [(0.50, got.p50), (0.95, got.p95)] {
        let exact = rank(p) as f64 / 1000.0;
        let got = got.unwrap();
        assert!(
            got >= exact && got - exact <= exact * 0.001 + 0.001,
            "p{p}: {got} against {exact}"
        );
    }
    let series: records::record::LatencyPerSecond = serde_json::from_str(
        &std::fs::read_to_string(run.join("latency_per_second.json")).unwrap(),
    )
    .unwrap();
    let per_second: u64 = series.requests.iter().sum();
    let routed: u64 = ["GET /data", "GET /process"]
        .iter()
        .map(|r| merged.by_route.get(*r).map_or(0, |r| r.requests))
        .sum();
    assert_eq!(
        per_second, routed,
        "every scenario request in the merged seconds"
    );
    assert_eq!(merged.generators.len(), 2);
    assert_eq!(
        merged.generators.iter().map(|g| g.requests).sum::<u64>(),
        merged.requests
    );
    assert!(merged.generators.iter().all(|g| g.cpu_seconds > 0.0));
    // Both started together: within a second of each other.
    assert!(
        merged.generators[1].start_offset_ms < 1000.0,
        "{:?}",
        merged.generators
    );
    assert_eq!(merged.model.kind, "closed");
}

#[test]
fn an_unreachable_target_is_a_clear_one_line_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .env(
            "LOADTEST_TARGET_URL",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .env("LOADTEST_READY_TIMEOUT_SECS", "1")
        .env("LOADTEST_RESULTS_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("did not answer") && err.contains("/health") && err.contains("make up"),
        "{err}"
    );
}

#[test]
fn a_target_the_users_cannot_speak_to_is_a_clear_one_line_error() {
    for (target, says) in [
        ("https://127.0.0.1:8443", "speaks plain HTTP, not https"),
        ("127.0.0.1:8080", "no scheme"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .env("LOADTEST_TARGET_URL", target)
            .env("LOADTEST_READY_TIMEOUT_SECS", "1")
            .env("LOADTEST_RESULTS_DIR", std::env::temp_dir())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{target}");
        // One line says it (others may warn of deprecated names in the caller's environment).
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| l.contains(says)).collect();
        assert_eq!(lines.len(), 1, "{target}: {err}");
        assert!(lines[0].starts_with("loadtest: "), "{target}: {err}");
    }
}

/// An overloaded run: one gateway with 2 slots in front of a microservice that takes 200 ms
/// a miss, 40 users asking every 0.1–0.2 s. The gateway's queue holds what its slots cannot
/// take, and the users stopped at the load's end still get those answers, after it. The
/// run's rate is over the window the answers came in, and stays under the slots' hard bound
/// (2 ÷ the mean hold); the same count over the load's own length would not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_runs_rate_stays_under_its_hard_bound() {
    common::telemetry::init_for_tests();
    let db = TestDb::create().await;
    let redis = testing::redis_config();
    let ms_url = microservice(&db, "ms-bound", 200).await;
    let mut config = gateway::Config::for_tests("gw-bound", db.config(), redis, ms_url);
    config.limit.max_in_flight = 2;
    config.limit.max_queue = 64;
    config.limit.queue_timeout_ms = 3000;
    config.cache.microservice_timeout_ms = 5000;
    let gw = gateway::build(config).await.unwrap();
    let backend = format!("127.0.0.1:{}", gw.port());
    spawn(gw.run_until(std::future::pending())).await;
    let (_lb, port, lb_metrics) = load_balancer(&[backend]).await;

    let results = tempdir();
    let (dir, target, m) = (
        results.clone(),
        format!("http://127.0.0.1:{port}"),
        lb_metrics.clone(),
    );
    tokio::task::spawn_blocking(move || {
        loadtest_with(
            &dir,
            "overloaded",
            "miss",
            &target,
            &m,
            &[
                ("USERS", "40"),
                ("DURATION_SECS", "5"),
                ("NO_THINK", "false"),
                ("THINK_MIN_MS", "100"),
                ("THINK_MAX_MS", "200"),
                ("GATEWAYS", "1"),
                ("CALIBRATION_REQUESTS", "0"),
            ],
        )
    })
    .await
    .unwrap();
    let record = records::record::RunRecord::read(&results.join("overloaded")).unwrap();
    let run = report::runs::load_run(&results.join("overloaded")).unwrap();
    // The queued answers came after the load's 5 s.
    assert_eq!(record.load.duration_secs, 5);
    assert!(
        record.duration_secs > 5.5,
        "window {} s for a 5-s load",
        record.duration_secs
    );
    let check = report::bounds::check(&run).expect("a bound to check");
    assert!(
        check.bound.name.starts_with("gateway slots"),
        "{}",
        check.line()
    );
    assert!(check.passed, "{}", check.line());
    // Over the load's own 5 s, as Goose counts it, the same answers break the bound.
    let mut by_goose = run.clone();
    let ok = (run.requests - run.failures) as f64;
    by_goose.duration_secs = 5.0;
    by_goose.goodput = run.goodput * run.duration_secs / 5.0;
    let wrong = report::bounds::check(&by_goose).unwrap();
    assert!(
        !wrong.passed,
        "{} ok answers over 5 s: {}",
        ok,
        wrong.line()
    );
}

/// The think time is the scenarios' own, one sleep that ends with the load: 4 users thinking
/// 20 s after each request, in a 3-s run, each log in and send one request, nothing is sent
/// after the 3 s, and the run ends then rather than when the thinking would (Goose waits for
/// every user to come back from its iteration before it stops).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_think_ends_with_the_load_and_nothing_is_sent_after_it() {
    common::telemetry::init_for_tests();
    let db = TestDb::create().await;
    let redis = testing::redis_config();
    let ms_url = microservice(&db, "ms-think", 5).await;
    let config = gateway::Config::for_tests("gw-think", db.config(), redis, ms_url);
    let gw = gateway::build(config).await.unwrap();
    let backend = format!("127.0.0.1:{}", gw.port());
    spawn(gw.run_until(std::future::pending())).await;
    let (_lb, port, lb_metrics) = load_balancer(&[backend]).await;

    let results = tempdir();
    let (dir, target) = (results.clone(), format!("http://127.0.0.1:{port}"));
    let took = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        loadtest_with(
            &dir,
            "think",
            "hit",
            &target,
            &lb_metrics,
            &[
                ("USERS", "4"),
                ("DURATION_SECS", "3"),
                ("NO_THINK", "false"),
                ("THINK_MIN_MS", "20000"),
                ("THINK_MAX_MS", "20000"),
                ("GATEWAYS", "1"),
                ("CALIBRATION_REQUESTS", "0"),
                ("KEEP_REQUEST_LOG", "true"),
            ],
        );
        started.elapsed()
    })
    .await
    .unwrap();
    let run = records::record::RunRecord::read(&results.join("think")).unwrap();
    assert_eq!(run.think_time_ms, Some([20000, 20000]));
    // One request per user (each logged in before the load, outside the run): the think
    // time was slept after it.
    assert_eq!(run.by_route.get("POST /login"), None, "{:?}", run.by_route);
    assert_eq!(run.requests, 4, "{:?}", run.by_route);
    assert_eq!(run.failures, 0);
    // Every request was sent within the load's 3 s (ms on the run's clock, from its start).
    let log = std::fs::read_to_string(results.join("think/requests.json")).unwrap();
    let sent: Vec<u64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["elapsed"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|&ms| ms < 3000), "sent at {sent:?} ms");
    // The run ended with its load, not 20 s of thinking later.
    assert!(took < Duration::from_secs(12), "the run took {took:?}");
}
