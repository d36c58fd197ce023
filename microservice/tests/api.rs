//! The microservice against a real Postgres (a fresh database per test).

use records::names::MetricName;

mod support;

use common::testing::{self, TcpRelay, TestDb};
use microservice::Config;
use std::time::{Duration, Instant};
use support::{get, spawn};

fn config(db_url: &str) -> Config {
    Config {
        seed_rows: 5_000,
        ..Config::for_tests("ms-test", testing::db_config(db_url))
    }
}

#[tokio::test]
async fn data_scans_the_seeded_table_and_holds_the_connection_for_the_delay() {
    let db = TestDb::create().await;
    let app = spawn(Config {
        db_delay_ms: 100,
        ..config(&db.url)
    })
    .await;
    let started = Instant::now();
    let (status, body, _) = get(&format!("{}/data/hot", app.base)).await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(100));
    let result = &body["result"];
    assert_eq!(result["key"], "hot");
    // 5000 rows in 1000 buckets: every bucket holds 5.
    assert_eq!(result["rows"], 5);
    assert!(result["db_ms"].as_f64().unwrap() >= 100.0);
    assert_eq!(body["served_by"], "ms-test");

    let (status, body, _) = get(&format!("{}/process/hot", app.base)).await;
    assert_eq!(status, 200);
    assert_eq!(body["route"], "process");
    assert!(body["checksum"].as_u64().is_some());
    assert_eq!(body["result"]["rows"], 5);
}

#[tokio::test]
async fn invalid_keys_are_400_json() {
    let db = TestDb::create().await;
    let app = spawn(config(&db.url)).await;
    let long = "k".repeat(65);
    for key in ["bad%20key", long.as_str(), "semi;colon"] {
        let (status, body, _) = get(&format!("{}/data/{key}", app.base)).await;
        assert_eq!(status, 400, "{key}: {body}");
        assert!(body["error"].as_str().unwrap().contains("key"));
    }
    let (status, body, _) = get(&format!("{}/nope", app.base)).await;
    assert_eq!(status, 404);
    assert_eq!(body["status"], 404);
}

#[tokio::test]
async fn an_exhausted_pool_answers_503_with_retry_after() {
    let db = TestDb::create().await;
    let mut cfg = config(&db.url);
    cfg.db.db_pool_size = 1;
    cfg.db.db_pool_timeout_ms = 50;
    cfg.db_delay_ms = 500;
    let app = spawn(cfg).await;
    let url = format!("{}/data/k", app.base);
    let results = futures::future::join_all([get(&url), get(&url), get(&url)]).await;
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let busy: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert_eq!(ok, 1, "one request holds the only connection");
    assert_eq!(busy.len(), 2);
    for (_, body, headers) in busy {
        assert!(
            body["error"].as_str().unwrap().contains("pool exhausted"),
            "{body}"
        );
        assert_eq!(headers["retry-after"], "1");
    }
}

#[tokio::test]
async fn postgres_down_means_not_ready_and_fast_503s_then_recovery_without_restart() {
    let db = TestDb::create().await;
    let relay = TcpRelay::start(testing::socket_of(&db.url).await).await;
    let app = spawn(config(&relay.rewrite_url(&db.url))).await;
    assert_eq!(get(&format!("{}/data/a", app.base)).await.0, 200);

    relay.cut();
    let started = Instant::now();
    let (status, body, _) = get(&format!("{}/data/a", app.base)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("database"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "503 must come quickly"
    );
    let (status, ready, _) = get(&format!("{}/ready", app.base)).await;
    assert_eq!(status, 503);
    assert_eq!(ready["ready"], false);
    // Liveness is not readiness: the process is fine.
    assert_eq!(get(&format!("{}/health", app.base)).await.0, 200);

    relay.restore();
    let base = app.base.clone();
    let back = testing::wait_until(Duration::from_secs(10), || {
        let url = format!("{base}/data/a");
        async move { get(&url).await.0 == 200 }
    })
    .await;
    assert!(back, "the microservice reconnects by itself");
    assert_eq!(get(&format!("{}/ready", app.base)).await.0, 200);
}

#[tokio::test]
async fn seeding_is_deterministic_and_idempotent() {
    let db = TestDb::create().await;
    let first = spawn(config(&db.url)).await;
    let (_, a, _) = get(&format!("{}/data/same", first.base)).await;
    // A second instance on the same database (a replica, or a restart) adds nothing.
    let second = spawn(config(&db.url)).await;
    let (_, b, _) = get(&format!("{}/data/same", second.base)).await;
    assert_eq!(a["result"]["total"], b["result"]["total"]);
    // A sum of money-like values reads as one: at most two decimals, no float noise.
    let total = a["result"]["total"].to_string();
    assert!(
        total.split('.').nth(1).is_none_or(|d| d.len() <= 2),
        "total {total}"
    );
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let n: i64 = client
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 5_000);
}

#[tokio::test]
async fn metrics_show_pool_and_query_latency() {
    let db = TestDb::create().await;
    let app = spawn(config(&db.url)).await;
    get(&format!("{}/data/m", app.base)).await;
    let samples =
        common::metrics::scrape(&reqwest::Client::new(), &format!("{}/metrics", app.base))
            .await
            .unwrap();
    let ours = [("service", "microservice"), ("instance", "ms-test")];
    assert_eq!(
        common::metrics::sum(&samples, MetricName::DbPoolMaxSize, &ours),
        5.0
    );
    for name in [
        MetricName::DbPoolAvailable,
        MetricName::DbPoolWaiting,
        MetricName::DbPoolConnections,
    ] {
        assert!(
            samples.iter().any(|s| name.whole().is(&s.name)),
            "missing {name}"
        );
    }
    assert_eq!(
        common::metrics::sum(&samples, MetricName::DbQueryDurationSeconds.count(), &ours),
        1.0
    );
    assert_eq!(
        common::metrics::sum(
            &samples,
            MetricName::HttpRequestsTotal,
            &[("route", "/data/{key}"), ("status", "200")]
        ),
        1.0
    );
    let (status, cfg, _) = get(&format!("{}/config", app.base)).await;
    assert_eq!(status, 200);
    assert_eq!(cfg["config"]["db_pool_size"], 5);
    assert!(
        cfg["config"].get("database_url").is_none(),
        "no secrets in /config"
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let db = TestDb::create().await;
    let mut app = spawn(Config {
        db_delay_ms: 600,
        ..config(&db.url)
    })
    .await;
    let url = format!("{}/data/slow", app.base);
    let in_flight = tokio::spawn(async move { get(&url).await.0 });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let asked = Instant::now();
    app.stop.take().unwrap().send(()).unwrap();
    assert_eq!(
        in_flight.await.unwrap(),
        200,
        "the in-flight request completes"
    );
    tokio::time::timeout(Duration::from_secs(3), &mut app.task)
        .await
        .expect("the server exits within the grace period")
        .unwrap()
        .unwrap();
    assert!(asked.elapsed() < Duration::from_secs(3));
}
