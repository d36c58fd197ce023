//! The Experiments section on hand-built run folders (`run.json` + `experiment.json`) whose
//! figures are computed by hand.

use records::names::{MetricName, Series};

use catalogue::record::{CounterDelta, ExperimentRecord};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn temp(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("report-experiments-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn counter(
    service: &str,
    name: impl Into<Series>,
    labels: &[(&str, &str)],
    value: f64,
) -> CounterDelta {
    CounterDelta {
        service: service.into(),
        instance: format!("{service}-1"),
        name: name.into().name(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value,
    }
}

/// A side: 20 s, 300 users thinking 1.5 s (not at all in a login storm), `ok` successful
/// requests, p50 `p50` ms.
fn side(
    root: &Path,
    batch: &str,
    record: ExperimentRecord,
    scenario: &str,
    ok: u64,
    p50: f64,
) -> PathBuf {
    let id = format!("{batch}-{}-{}", record.name, record.side);
    let dir = root.join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let run = json!({
        "schema_version": 2, "run_id": id, "scenario": scenario, "profile": "classic",
        "load": {"users": 300, "rate": 100.0, "duration_secs": 20},
        "think_time_ms": if scenario == "login" { json!(null) } else { json!([1000, 2000]) },
        "gateways": 1,
        "experiment": {"name": record.name, "side": record.side, "settings": record.settings},
        "started": format!("2026-11-23T12:00:0{}Z", record.side.len()), "duration_secs": 20.0,
        "requests": ok, "failures": 0, "error_pct": 0.0, "rps": ok as f64 / 20.0,
        "latency_ms": {"avg": p50, "p50": p50, "p95": p50 * 2.0, "p99": p50 * 3.0, "max": p50 * 4.0},
        "stack": {
            "microservice": {"db_pool_size": 10},
            "gateways": {"10.0.0.2:8000": {"max_in_flight": 4, "host": {"cores": 2}}}
        },
    });
    std::fs::write(dir.join("run.json"), run.to_string()).unwrap();
    std::fs::write(
        dir.join(ExperimentRecord::FILE),
        serde_json::to_string(&record).unwrap(),
    )
    .unwrap();
    dir
}

fn record(name: &str, side: &str, flipped: &str, value: &str) -> ExperimentRecord {
    ExperimentRecord {
        name: name.parse().unwrap(),
        question: format!("What does {flipped} do?"),
        side: side.into(),
        flipped: flipped.into(),
        value: value.into(),
        settings: BTreeMap::from([(flipped.to_string(), value.to_string())]),
        seconds: 20.0,
        ..Default::default()
    }
}

fn summary(root: &Path) -> String {
    let out = root.join("out");
    let outcome = report::generate(root, &out).unwrap();
    std::fs::read_to_string(outcome.summary).unwrap()
}

#[test]
fn the_index_section_shows_db_time_the_plans_and_littles_law() {
    let root = temp("index");
    let db = |ms: f64| {
        vec![
            counter(
                "microservice",
                MetricName::DbQueryDurationSeconds.sum(),
                &[],
                ms / 1000.0 * 100.0,
            ),
            counter(
                "microservice",
                MetricName::DbQueryDurationSeconds.count(),
                &[],
                100.0,
            ),
        ]
    };
    let plan = |scan: &str, indexed| records::wire::QueryPlan {
        key: "hot".into(),
        scan: scan.into(),
        indexed,
        plan: vec![
            format!("->  {scan} on items"),
            "Execution Time: 1.5 ms".into(),
        ],
        execution_ms: 1.5,
    };
    let mut a = record("index", "A", "ITEMS_INDEX", "false");
    a.counters = db(80.0);
    a.query_plan = Some(plan("Parallel Seq Scan", false));
    a.settings.insert("SEED_ROWS".into(), "1000000".into());
    let mut b = record("index", "B", "ITEMS_INDEX", "true");
    b.counters = db(2.0);
    b.query_plan = Some(plan("Bitmap Heap Scan", true));
    // A: 4 at once / 0.08 s = 50 req/s (the users offer 300 / (1.5 + 0.08) = 190).
    side(&root, "20261123-120000", a, "miss", 1000, 80.0);
    side(&root, "20261123-120000", b, "miss", 3600, 4.0);
    // An older batch of the same experiment is not the one shown.
    side(
        &root,
        "20261122-090000",
        record("index", "A", "ITEMS_INDEX", "false"),
        "miss",
        10,
        1.0,
    );
    let md = summary(&root);
    assert!(md.contains("## Experiments"), "{md}");
    assert!(
        md.contains("### `index`: What does ITEMS_INDEX do?"),
        "{md}"
    );
    assert!(
        md.contains("| | A: ITEMS_INDEX=false | B: ITEMS_INDEX=true | B / A |"),
        "{md}"
    );
    assert!(md.contains("| ok req/s | 50.0 | 180.0 | 3.60× |"), "{md}");
    assert!(
        md.contains("| DB time per query (ms) | 80.00 | 2.00 | 40× lower |"),
        "{md}"
    );
    assert!(
        md.contains("| predicted ok req/s (utilisation law, capped by the offered load) | 50.0 |"),
        "{md}"
    );
    assert!(md.contains("ran `Parallel Seq Scan` on side A"), "{md}");
    assert!(md.contains("(40.0× less)"), "{md}");
    assert!(md.contains("measured 50.0, predicted 50.0 (+0 %)"), "{md}");
    assert!(
        md.contains("Side B plan (indexed, 1.50 ms in Postgres)"),
        "{md}"
    );
    let section = &md[md.find("## Experiments").unwrap()..];
    let section = &section[..section.find("## Each run").unwrap_or(section.len())];
    assert!(!section.contains("20261122-090000"), "{section}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn pool_batch_cache_and_cpu_sections_compute_their_mechanisms() {
    let root = temp("mechanisms");
    let batch = "20261123-130000";
    let requests = |n: f64| {
        counter(
            "microservice",
            MetricName::HttpRequestsTotal,
            &[("route", "/data/{key}")],
            n,
        )
    };

    let db = |ms: f64| {
        [
            counter(
                "microservice",
                MetricName::DbQueryDurationSeconds.sum(),
                &[],
                ms / 1000.0 * 400.0,
            ),
            counter(
                "microservice",
                MetricName::DbQueryDurationSeconds.count(),
                &[],
                400.0,
            ),
        ]
    };
    let mut a = record("db-pool", "A", "DB_POOL_MODE", "pooled");
    a.counters = vec![requests(400.0)];
    a.counters.extend(db(50.0));
    let mut b = record("db-pool", "B", "DB_POOL_MODE", "per-request");
    b.counters = vec![
        requests(400.0),
        counter(
            "microservice",
            MetricName::DbConnectionsOpenedTotal,
            &[],
            400.0,
        ),
        counter(
            "microservice",
            MetricName::DbConnectDurationSeconds.sum(),
            &[],
            400.0 * 0.006,
        ),
        counter(
            "microservice",
            MetricName::DbConnectDurationSeconds.count(),
            &[],
            400.0,
        ),
    ];
    b.counters.extend(db(60.0));
    b.peaks = vec![counter(
        "microservice",
        MetricName::DbRequestConnectionsOpen,
        &[],
        4.0,
    )];
    side(&root, batch, a, "miss", 400, 60.0);
    side(&root, batch, b, "miss", 400, 66.5);

    let worker = |jobs: f64, commits: f64, flush_ms: f64| {
        vec![
            counter(
                "worker",
                MetricName::JobsProcessedTotal,
                &[("status", "done")],
                jobs,
            ),
            counter("worker", MetricName::BatchSize.sum(), &[], jobs),
            counter("worker", MetricName::BatchSize.count(), &[], commits),
            counter(
                "worker",
                MetricName::BatchFlushDurationSeconds.sum(),
                &[],
                commits * flush_ms / 1000.0,
            ),
            counter(
                "worker",
                MetricName::BatchFlushDurationSeconds.count(),
                &[],
                commits,
            ),
        ]
    };
    let mut a = record("batch", "A", "BATCH_SIZE", "1");
    a.counters = worker(2000.0, 2000.0, 5.0);
    let mut b = record("batch", "B", "BATCH_SIZE", "20");
    b.counters = worker(4000.0, 400.0, 8.0);
    side(&root, batch, a, "longtask", 2000, 300.0);
    side(&root, batch, b, "longtask", 4000, 250.0);

    let listing = |gw: &str, hit: f64, miss: f64| {
        [("hit", hit), ("miss", miss)].map(|(result, v)| CounterDelta {
            instance: gw.into(),
            ..counter(
                "gateway",
                MetricName::CacheRequestsTotal,
                &[("route", "listing"), ("result", result)],
                v,
            )
        })
    };
    for (i, (mode, made)) in [("none", 3000.0), ("redis", 20.0), ("local", 60.0)]
        .into_iter()
        .enumerate()
    {
        let mut r = record("local-cache", ["A", "B", "C"][i], "LISTING_CACHE", mode);
        r.settings.insert("LISTING_TTL_SECS".into(), "10".into());
        r.counters = vec![counter(
            "microservice",
            MetricName::ListingsTotal,
            &[],
            made,
        )];
        if mode != "none" {
            r.counters.extend(listing("gw-1", 990.0, 10.0));
            r.counters.extend(listing("gw-2", 980.0, 20.0));
        }
        side(&root, batch, r, "listing", 3000, 10.0);
    }

    let cpu = |seconds: f64, logins: f64| {
        vec![
            counter("gateway", MetricName::ProcessCpuSecondsTotal, &[], seconds),
            counter(
                "gateway",
                MetricName::LoginsTotal,
                &[("outcome", "ok")],
                logins,
            ),
        ]
    };
    let mut a = record("worker-threads", "A", "GATEWAY_THREADS", "1");
    a.counters = cpu(18.0, 3600.0);
    let mut b = record("worker-threads", "B", "GATEWAY_THREADS", "0");
    b.counters = cpu(30.0, 6000.0);
    side(&root, batch, a, "login", 3600, 50.0);
    side(&root, batch, b, "login", 6000, 30.0);

    let md = summary(&root);
    // db-pool: one connection per request at 6 ms, so p50 60 + 6 = 66 predicted.
    assert!(
        md.contains("| Postgres connections opened per request | 0.00 | 1.00 | – |"),
        "{md}"
    );
    assert!(
        md.contains("| connect time, mean (ms) | – | 6.00 | – |"),
        "{md}"
    );
    assert!(
        md.contains("60.0 ms + 6.0 ms = 66.0 ms; measured p50 66.5, predicted 66.0 (+1 %)"),
        "{md}"
    );
    assert!(
        md.contains("(4 open at once at the peak, against DB_POOL_SIZE=10 pooled)"),
        "{md}"
    );
    assert!(
        md.contains("The queries themselves also took longer on side B (50.0 ms → 60.0 ms)"),
        "{md}"
    );
    // batch: A 2000 commits in 20 s of 5 ms → bound 200 jobs/s; B 10 per commit / 8 ms → 1250.
    assert!(
        md.contains("| jobs done per second | 100.0 | 200.0 | 2.00× |"),
        "{md}"
    );
    assert!(
        md.contains("| jobs per commit, mean | 1.0 | 10.0 | 10.00× |"),
        "{md}"
    );
    assert!(
        md.contains("| bound: jobs per commit / commit time (jobs/s) | 200 | 1250 | 6.25× |"),
        "{md}"
    );
    // local-cache: three sides, per-gateway hit ratios, predictions 10 × 2 and × 1 gateway.
    assert!(md.contains("| | A: LISTING_CACHE=none | B: LISTING_CACHE=redis | C: LISTING_CACHE=local | B / A | C / A |"), "{md}");
    assert!(md.contains("| hit ratio | – | 0.985 | 0.985 |"), "{md}");
    assert!(
        md.contains("| predicted: one fill per prefix per TTL per cache | – | 20 | 20 |"),
        "{md}"
    );
    // No LISTING_DELAY_MS recorded: no refill window, so no stampede either.
    assert!(
        md.contains("| predicted: with every miss during a refill asking too | – | 20 | 20 |"),
        "{md}"
    );
    assert!(md.contains("B (redis): gw-1 0.990, gw-2 0.980"), "{md}");
    // worker-threads: 5 ms per login; 1 core → 200/s, 2 cores → 400/s.
    assert!(
        md.contains("| gateway CPU per login (ms) | 5.00 | 5.00 | 1.00× |"),
        "{md}"
    );
    assert!(
        md.contains("| predicted logins/s (cores / CPU per login) | 200.0 | 400.0 | 2.00× |"),
        "{md}"
    );
    assert!(
        md.contains("Side A: measured 180.0, predicted 200.0 (-10 %)"),
        "{md}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn scaling_sections_give_capacity_bounds_and_the_split_per_instance() {
    let root = temp("scaling");
    let batch = "20261123-140000";
    let jobs = |instances: &[(&str, f64)]| -> Vec<CounterDelta> {
        instances
            .iter()
            .map(|(i, v)| CounterDelta {
                instance: i.to_string(),
                ..counter(
                    "worker",
                    MetricName::JobsProcessedTotal,
                    &[("status", "done")],
                    *v,
                )
            })
            .collect()
    };
    for (side, workers, done) in [
        ("A", "1", vec![("worker", 160.0)]),
        (
            "B",
            "3",
            vec![("worker", 150.0), ("worker-2", 160.0), ("worker-3", 170.0)],
        ),
    ] {
        let mut r = record("scale-workers", side, "WORKERS", workers);
        r.settings.insert("WORKER_CONCURRENCY".into(), "4".into());
        r.load.insert("LONGTASK_MS".into(), "500".into());
        r.counters = jobs(&done);
        // Every worker reports the same queue: its lag is the highest, not the sum.
        r.peaks = done
            .iter()
            .map(|(i, _)| CounterDelta {
                instance: i.to_string(),
                ..counter("worker", MetricName::QueueLag, &[], 250.0)
            })
            .collect();
        side_run(&root, batch, r, "longtask");
    }
    for (side, n, split) in [
        ("A", "1", vec![("microservice", 1000.0)]),
        (
            "B",
            "2",
            vec![("microservice", 900.0), ("microservice-2", 880.0)],
        ),
    ] {
        let mut r = record("scale-microservice", side, "MICROSERVICES", n);
        r.settings.insert("DB_POOL_SIZE".into(), "5".into());
        for (i, v) in split {
            r.counters.push(CounterDelta {
                instance: i.into(),
                ..counter(
                    "microservice",
                    MetricName::HttpRequestsTotal,
                    &[("route", "/data/{key}")],
                    v,
                )
            });
        }
        // 50 ms per query on both sides.
        r.counters.push(counter(
            "microservice",
            MetricName::DbQueryDurationSeconds.sum(),
            &[],
            5.0,
        ));
        r.counters.push(counter(
            "microservice",
            MetricName::DbQueryDurationSeconds.count(),
            &[],
            100.0,
        ));
        let dir = self::side(&root, batch, r, "miss", 1000, 50.0);
        // What the run recorded of the stack: the gateways list every microservice instance,
        // each with a pool of 5; a calibration gives the service time (50 ms).
        let mut run: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
        let urls = if n == "2" {
            "http://127.0.0.1:8001,http://127.0.0.1:8101"
        } else {
            "http://127.0.0.1:8001"
        };
        run["gateways"] = json!(3);
        run["load"]["users"] = json!(1000);
        run["stack"] = json!({
            "microservice": {"db_pool_size": 5},
            "gateways": {"10.0.0.2:8000": {"max_in_flight": 4, "microservice_url": urls}}
        });
        run["calibration"] = json!({"requests": 20, "failed": 0, "p50_ms": 50.0});
        std::fs::write(dir.join("run.json"), run.to_string()).unwrap();
    }
    let md = summary(&root);
    // Predicted vs measured knows both instances: 2 × 5 / 0.05 = 200/s, not one pool's 100.
    assert!(
        md.contains(
            "every miss holds one of the 10 database connections of 2 microservices (5 each) for 50 ms, so they complete at most 200.0 misses per second"
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "every miss holds one of the microservice's 5 database connections for 50 ms, so it completes at most 100.0 misses per second"
        ),
        "{md}"
    );
    // 1 × 4 / 0.5 s = 8 jobs/s; 3 workers 24.
    assert!(
        md.contains(
            "| capacity: workers × WORKER_CONCURRENCY / task time (jobs/s) | 8.0 | 24.0 | 3.00× |"
        ),
        "{md}"
    );
    assert!(
        md.contains("| jobs done per second | 8.0 | 24.0 | 3.00× |"),
        "{md}"
    );
    assert!(
        md.contains("Jobs per worker: A: worker 160; B: worker 150, worker-2 160, worker-3 170."),
        "{md}"
    );
    // Gateways: 3 × 4 / 0.05 = 240; microservices 5 / 0.05 = 100 then 200; users 1000 / 1.55.
    assert!(
        md.contains("| bound: gateways × MAX_IN_FLIGHT / DB time | 240.0 | 240.0 | 1.00× |"),
        "{md}"
    );
    assert!(
        md.contains("| bound: microservices × DB_POOL_SIZE / DB time | 100.0 | 200.0 | 2.00× |"),
        "{md}"
    );
    assert!(
        md.contains("On side A the smallest bound was the microservices' pools (100.0 req/s), then the gateways' slots (240.0 req/s)"),
        "{md}"
    );
    assert!(md.contains("(requests per instance: A: microservice 1000; B: microservice 900, microservice-2 880)"), "{md}");
    let _ = std::fs::remove_dir_all(&root);
}

/// A side of 20 s, p50 50 ms: as many ok requests as jobs done, or 1000 misses.
fn side_run(root: &Path, batch: &str, r: ExperimentRecord, scenario: &str) {
    let ok = match scenario {
        "longtask" => r.delta("worker", MetricName::JobsProcessedTotal, &[]) as u64,
        _ => 1000,
    };
    side(root, batch, r, scenario, ok, 50.0);
}

#[test]
fn the_offload_section_puts_the_wait_in_the_request_or_in_the_queue() {
    let root = temp("offload");
    let batch = "20261202-120000";
    let side_with =
        |side: &str, mode: &str, counters: Vec<CounterDelta>, peaks: Vec<CounterDelta>| {
            let mut r = record("offload", side, "LONGTASK_MODE", mode);
            r.settings.insert("MAX_IN_FLIGHT".into(), "4".into());
            r.settings.insert("WORKER_CONCURRENCY".into(), "4".into());
            r.load = BTreeMap::from([("LONGTASK_MS".to_string(), "500".to_string())]);
            r.counters = counters;
            r.peaks = peaks;
            r
        };
    // 20 s at 8 tasks/s: 160 tasks either way; inline they are the gateway's, queued the
    // worker's.
    let a = side_with(
        "A",
        "inline",
        vec![counter("gateway", MetricName::TasksInlineTotal, &[], 160.0)],
        vec![counter("gateway", MetricName::LimiterWaiting, &[], 290.0)],
    );
    let b = side_with(
        "B",
        "queued",
        vec![
            counter("gateway", MetricName::TasksEnqueuedTotal, &[], 160.0),
            counter("worker", MetricName::JobsProcessedTotal, &[], 160.0),
        ],
        vec![counter("worker", MetricName::QueueLag, &[], 250.0)],
    );
    for (rec, post_p50) in [(a, 35_000.0), (b, 3.0)] {
        let dir = side(&root, batch, rec, "longtask", 160, post_p50);
        let path = dir.join("run.json");
        let mut run: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        run["by_route"] = json!({"POST /longtask": {"requests": 160, "failures": 0,
            "status_codes": {"200": 160},
            "latency_ms": {"avg": post_p50, "p50": post_p50, "p95": post_p50 * 1.2, "p99": post_p50 * 1.3, "max": post_p50 * 2.0}}});
        std::fs::write(&path, run.to_string()).unwrap();
    }
    let md = summary(&root);
    let section = md
        .split("### `offload`")
        .nth(1)
        .expect("an offload section");
    let section = section.split("\n## ").next().unwrap();
    // 4 slots / 0.5 s on both sides; 160 tasks over 20 s.
    assert!(
        section.contains("| capacity: 4 at a time / task time (tasks/s) | 8.0 | 8.0 |"),
        "{section}"
    );
    assert!(
        section.contains("| tasks done per second | 8.0 | 8.0 |"),
        "{section}"
    );
    assert!(
        section.contains("| POST /longtask p50 (ms) | 35000.0 | 3.0 |"),
        "{section}"
    );
    // Little's law for the closed loop: 300 users / 8 per s − 1.5 s think = 36 s.
    assert!(
        section.contains(
            "| predicted time in the system: users / capacity − think (ms) | 36000 | 36000 |"
        ),
        "{section}"
    );
    assert!(section.contains("peak lag 250 jobs"), "{section}");
    assert!(section.contains("peak 290 waiting"), "{section}");
}
