//! The microservice's tactic switches against a real Postgres: the index on the filtered
//! column (`ITEMS_INDEX`), a connection per request instead of the pool (`DB_POOL_MODE`),
//! and the slow listing.

use records::names::MetricName;

mod support;

use common::testing::{self, TestDb};
use microservice::{Config, PoolMode};
use serde_json::Value;
use std::time::{Duration, Instant};
use support::{spawn, Running};

/// Status and JSON body.
async fn get(url: &str) -> (u16, Value) {
    let (status, body, _) = support::get(url).await;
    (status, body)
}

async fn metric(base: &str, name: impl Into<records::names::Series>) -> f64 {
    let samples = common::metrics::scrape(&reqwest::Client::new(), &format!("{base}/metrics"))
        .await
        .expect("metrics");
    common::metrics::sum(&samples, name, &[])
}

#[tokio::test]
async fn the_index_turns_the_full_scan_into_an_index_scan_and_back() {
    let db = TestDb::create().await;
    let config = |index| Config {
        seed_rows: 20_000,
        items_index: index,
        ..Config::for_tests("ms-index", db.config())
    };
    let plan = |app: &Running| {
        let url = format!("{}/explain/hot", app.base);
        async move {
            let (status, body) = get(&url).await;
            assert_eq!(status, 200, "{body}");
            serde_json::from_value::<records::wire::QueryPlan>(body).expect("a QueryPlan")
        }
    };

    let scan = plan(&spawn(config(false)).await).await;
    assert!(!scan.indexed);
    assert!(scan.scan.ends_with("Seq Scan"), "{scan:?}");
    assert!(scan.plan.iter().any(|l| l.contains("Execution Time")));

    // A restart with the setting flipped creates the index; the same query uses it.
    let app = spawn(config(true)).await;
    let indexed = plan(&app).await;
    assert!(indexed.indexed);
    assert!(
        indexed.scan.contains("Index") || indexed.scan == "Bitmap Heap Scan",
        "{indexed:?}"
    );
    let (status, body) = get(&format!("{}/data/hot", app.base)).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["rows"], 20);

    // And flipped back, it is gone again.
    let back = plan(&spawn(config(false)).await).await;
    assert!(!back.indexed && back.scan.ends_with("Seq Scan"), "{back:?}");

    let (status, body) = get(&format!("{}/explain/bad%20key", app.base)).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_connection_per_request_opens_one_for_every_request_and_closes_it() {
    let db = TestDb::create().await;
    let app = spawn(Config {
        db_pool_mode: PoolMode::PerRequest,
        ..Config::for_tests("ms-per-request", db.config())
    })
    .await;
    for i in 0..5 {
        let (status, body) = get(&format!("{}/data/k{i}", app.base)).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        metric(&app.base, MetricName::DbConnectionsOpenedTotal).await,
        5.0
    );
    assert_eq!(
        metric(&app.base, MetricName::DbConnectDurationSeconds.count()).await,
        5.0
    );
    // Each is closed once its request is answered.
    let closed = testing::wait_until(Duration::from_secs(5), || async {
        metric(&app.base, MetricName::DbRequestConnectionsOpen).await == 0.0
    })
    .await;
    assert!(closed, "per-request connections stayed open");

    let pooled = spawn(Config::for_tests("ms-pooled", db.config())).await;
    for i in 0..5 {
        get(&format!("{}/data/k{i}", pooled.base)).await;
    }
    assert_eq!(
        metric(&pooled.base, MetricName::DbConnectionsOpenedTotal).await,
        0.0
    );
    let (_, cfg) = get(&format!("{}/config", app.base)).await;
    assert_eq!(cfg["config"]["db_pool_mode"], "per-request");
}

/// Past Postgres's connection limit a new connection is refused: the request gets a 503
/// that says so, never a 500, and the requests within the limit are served.
#[tokio::test]
async fn past_the_connection_limit_requests_get_a_503_naming_it() {
    let db = TestDb::create().await;
    let role = format!("{}_limited", db.name);
    let (admin, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    tokio::spawn(conn);
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'limited' CONNECTION LIMIT 3;
             GRANT ALL ON SCHEMA public TO {role};"
        ))
        .await
        .expect("role");
    let (scheme, rest) = db.url.split_once("://").expect("a URL");
    let (_, server) = rest.rsplit_once('@').expect("the test URL names its user");
    let url = format!("{scheme}://{role}:limited@{server}");
    let app = spawn(Config {
        db_pool_mode: PoolMode::PerRequest,
        db_delay_ms: 400,
        ..Config::for_tests("ms-limited", testing::db_config(&url))
    })
    .await;
    let started = Instant::now();
    let requests: Vec<_> = (0..6)
        .map(|i| tokio::spawn(get_owned(format!("{}/data/c{i}", app.base))))
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for r in requests {
        let (status, body) = r.await.unwrap();
        match status {
            200 => ok += 1,
            503 => {
                refused += 1;
                let msg = body["error"].as_str().unwrap_or_default();
                assert!(msg.contains("too many"), "{body}");
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(ok >= 1 && refused >= 1, "ok {ok}, refused {refused}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(app);
    drop(admin);
    drop(db);
    let (admin, conn) =
        tokio_postgres::connect(&testing::admin_database_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    let _ = admin
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
        .await;
}

async fn get_owned(url: String) -> (u16, Value) {
    get(&url).await
}

#[tokio::test]
async fn the_listing_is_slow_stamped_and_validated() {
    let db = TestDb::create().await;
    let app = spawn(Config {
        listing_delay_ms: 200,
        ..Config::for_tests("ms-listing", db.config())
    })
    .await;
    let started = Instant::now();
    let (status, body) = get(&format!("{}/listing/photos", app.base)).await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    let listing: records::wire::Listing = serde_json::from_value(body).unwrap();
    assert_eq!(listing.prefix, "photos");
    assert_eq!(listing.objects.len(), 20);
    assert!(listing.objects[0].starts_with("photos/"));
    let age_ms = records::time::now_unix() * 1000.0 - listing.listed_at_ms as f64;
    assert!((0.0..5_000.0).contains(&age_ms), "{age_ms}");
    assert_eq!(metric(&app.base, MetricName::ListingsTotal).await, 1.0);
    let (status, body) = get(&format!("{}/listing/no%20spaces", app.base)).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_smaller_seed_rows_leaves_exactly_that_many_rows() {
    let db = TestDb::create().await;
    let rows = |n| Config {
        seed_rows: n,
        ..Config::for_tests("ms-seed", db.config())
    };
    let big = spawn(rows(8_000)).await;
    let (_, body) = get(&format!("{}/data/same", big.base)).await;
    assert_eq!(body["result"]["rows"], 8);
    let small = spawn(rows(3_000)).await;
    let (_, body) = get(&format!("{}/data/same", small.base)).await;
    assert_eq!(body["result"]["rows"], 3, "{body}");
}

#[tokio::test]
async fn put_delay_slows_every_request_from_then_on_and_refuses_bad_bodies() {
    let db = TestDb::create().await;
    let app = spawn(Config::for_tests("ms-delay", db.config())).await;
    let http = reqwest::Client::new();
    let put = |body: String| {
        http.put(format!("{}/delay", app.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = put(r#"{"db_delay_ms": 300}"#.into()).await.unwrap();
    assert_eq!(r.status(), 200);
    let started = Instant::now();
    let (status, body) = get(&format!("{}/data/slow", app.base)).await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(body["result"]["db_ms"].as_f64().unwrap() >= 300.0);
    for (bad, want) in [
        (r#"{"db_delay_ms": 60001}"#, 400),
        (r#"{"db_delay_ms": -1}"#, 422),
        (r#"{"db_delay_ms": "10"}"#, 422),
        (r#"{"delay": 10}"#, 422),
        (r#"[10]"#, 422),
        ("{not json", 400),
        ("not json", 422),
    ] {
        let r = put(bad.into()).await.unwrap();
        assert_eq!(r.status().as_u16(), want, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
    put(r#"{"db_delay_ms": 0}"#.into()).await.unwrap();
    let started = Instant::now();
    get(&format!("{}/data/fast", app.base)).await;
    assert!(started.elapsed() < Duration::from_millis(300));
}
