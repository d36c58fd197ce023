//! The gateway against real Postgres, real Redis and a real microservice (and a real worker
//! for the task lifecycle). Each test gets its own database and Redis key prefix.

use records::names::MetricName;

mod support;

use base64::Engine as _;
use common::testing::{self, TcpRelay, TestDb};
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::*;

const SECRET: &str = gateway::TEST_JWT_SECRET;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn login_issues_a_bearer_token_that_opens_protected_routes() {
    let s = stack().await;
    let reply = s.login("user2", "scalelab").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 600);
    let token = reply.body["token"].as_str().unwrap();
    let data = s.get("/data?key=hello", token).await;
    assert_eq!(data.status, 200, "{}", data.body);
    assert_eq!(data.body["data"]["result"]["key"], "hello");
    assert_eq!(data.headers["x-served-by"], "gw-test");
}

#[tokio::test]
async fn login_rejects_wrong_password_unknown_user_and_bad_bodies() {
    let s = stack().await;
    for (user, password) in [
        ("user1", "wrong"),
        ("nobody", "scalelab"),
        ("user9", "scalelab"),
    ] {
        let reply = s.login(user, password).await;
        assert_eq!(reply.status, 401, "{user}");
        assert_eq!(reply.body["error"], "invalid username or password");
    }
    let url = format!("{}/login", s.gw);
    let malformed = s
        .send(
            s.http
                .post(&url)
                .header("content-type", "application/json")
                .body("{\"username\": \"user1\", "),
        )
        .await;
    assert_eq!(malformed.status, 400);
    assert!(malformed.body["error"].is_string());
    let missing_field = s
        .send(s.http.post(&url).json(&json!({"username": "user1"})))
        .await;
    assert_eq!(missing_field.status, 422);
    assert!(missing_field.body["error"]
        .as_str()
        .unwrap()
        .contains("password"));
    let not_json = s.send(s.http.post(&url).body("username=user1")).await;
    assert_eq!(not_json.status, 415);
    let empty = s.login("", "x").await;
    assert_eq!(empty.status, 400);
    // Postgres refuses a NUL byte: it must never get there (it was a 500).
    for name in ["user\u{0}1", "user1\n", "\u{7f}"] {
        let reply = s.login(name, "scalelab").await;
        assert_eq!(reply.status, 400, "{name:?}: {}", reply.body);
        assert!(reply.body["error"]
            .as_str()
            .unwrap()
            .contains("control characters"));
    }
    // A known path with the wrong method: a JSON 405 that still says what is allowed.
    let wrong_method = s.send(s.http.get(&url)).await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.body["status"], 405, "{}", wrong_method.body);
    assert_eq!(wrong_method.headers["allow"], "POST");
    let samples = s.metrics().await;
    assert_eq!(
        common::metrics::sum(
            &samples,
            MetricName::LoginsTotal,
            &[("outcome", "rejected")]
        ),
        3.0
    );
}

#[tokio::test]
async fn every_bad_token_is_a_401_with_a_bearer_challenge() {
    let s = stack().await;
    let good = s.token().await;
    let t = now();
    let expired = sign(
        json!({"sub": "user1", "iat": t - 7200, "exp": t - 3600}),
        SECRET,
    );
    let wrong_key = sign(
        json!({"sub": "user1", "iat": t, "exp": t + 600}),
        "another-secret-entirely",
    );
    let no_sub = sign(json!({"iat": t, "exp": t + 600}), SECRET);
    let parts: Vec<&str> = good.split('.').collect();
    let forged_claims = b64(&json!({"sub": "admin", "iat": t, "exp": t + 600}));
    let tampered = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&json!({"sub": "user1", "iat": t, "exp": t + 600}))
    );
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &json!({"sub": "user1", "iat": t, "exp": t + 600}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("wrong scheme", Some(format!("Basic {good}"))),
        ("no token", Some("Bearer".into())),
        ("garbage", Some("Bearer not.a.jwt".into())),
        ("expired", Some(format!("Bearer {expired}"))),
        ("wrong key", Some(format!("Bearer {wrong_key}"))),
        ("tampered", Some(format!("Bearer {tampered}"))),
        ("alg none", Some(format!("Bearer {alg_none}"))),
        ("other alg", Some(format!("Bearer {hs512}"))),
        ("no sub", Some(format!("Bearer {no_sub}"))),
    ];
    for (name, header) in cases {
        for path in [
            "/data?key=k",
            "/process?key=k",
            "/tasks/00000000-0000-0000-0000-000000000000",
        ] {
            let mut req = s.http.get(format!("{}{path}", s.gw));
            if let Some(h) = &header {
                req = req.header("authorization", h);
            }
            let reply = s.send(req).await;
            assert_eq!(reply.status, 401, "{name} on {path}: {}", reply.body);
            assert!(reply.body["error"].is_string(), "{name}: JSON error body");
            assert!(
                reply.headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{name}"
            );
        }
    }
    // And the genuine token still works, case-insensitive scheme included.
    let ok = s
        .send(
            s.http
                .get(format!("{}/data?key=k", s.gw))
                .header("authorization", format!("bearer {good}")),
        )
        .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn cache_misses_then_hits_then_expires_after_its_ttl() {
    let s = stack_with(0, false, |c| c.cache.cache_ttl_secs = 1).await;
    let token = s.token().await;
    for route in ["/data", "/process"] {
        let path = format!("{route}?key=ttl-key");
        let first = s.get(&path, &token).await;
        assert_eq!(first.status, 200);
        assert_eq!(first.headers["x-cache"], "MISS");
        assert_eq!(first.body["cached"], false);
        let second = s.get(&path, &token).await;
        assert_eq!(second.headers["x-cache"], "HIT", "{route}");
        assert_eq!(second.body["cached"], true);
        assert_eq!(
            second.body["data"], first.body["data"],
            "a hit returns what the miss stored"
        );
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let third = s.get(&path, &token).await;
        assert_eq!(
            third.headers["x-cache"], "MISS",
            "{route}: expired after the TTL"
        );
    }
    let samples = s.metrics().await;
    assert_eq!(
        common::metrics::sum(
            &samples,
            MetricName::CacheRequestsTotal,
            &[("result", "hit")]
        ),
        2.0
    );
    assert_eq!(
        common::metrics::sum(
            &samples,
            MetricName::CacheRequestsTotal,
            &[("result", "miss")]
        ),
        4.0
    );
}

#[tokio::test]
async fn a_disabled_cache_always_goes_to_the_microservice() {
    let s = stack_with(0, false, |c| c.cache.cache_enabled = false).await;
    let token = s.token().await;
    for _ in 0..2 {
        let reply = s.get("/data?key=same", &token).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.headers["x-cache"], "MISS");
    }
}

#[tokio::test]
async fn keys_are_validated() {
    let s = stack().await;
    let token = s.token().await;
    let long = format!("/data?key={}", "x".repeat(65));
    for path in [
        "/data",
        "/data?key=",
        "/data?key=a%20b",
        "/process?key=%2F..%2F",
        long.as_str(),
    ] {
        let reply = s.get(path, &token).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        assert!(
            reply.body["error"].as_str().unwrap().contains("key"),
            "{path}"
        );
    }
    // Authentication is checked before the input.
    let anonymous = s.send(s.http.get(format!("{}/data?key=a%20b", s.gw))).await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn with_redis_down_requests_still_succeed_and_count_cache_errors() {
    let db_probe = testing::redis_config();
    let relay = TcpRelay::start(testing::socket_of(&db_probe.redis_url).await).await;
    let redis_url = relay.rewrite_url(&db_probe.redis_url);
    let s = stack_with(0, false, move |c| c.redis.redis_url = redis_url).await;
    let token = s.token().await;
    s.get("/data?key=r", &token).await;
    assert_eq!(s.get("/data?key=r", &token).await.headers["x-cache"], "HIT");

    relay.cut();
    for _ in 0..5 {
        let started = Instant::now();
        let reply = s.get("/data?key=r", &token).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.headers["x-cache"], "MISS");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a dead cache costs little"
        );
    }
    let ready = s.send(s.http.get(format!("{}/ready", s.gw))).await;
    assert_eq!(ready.status, 503);
    assert_ne!(ready.body["checks"]["redis"], "ok");
    let samples = s.metrics().await;
    assert!(
        common::metrics::sum(
            &samples,
            MetricName::CacheRequestsTotal,
            &[("result", "error")]
        ) >= 5.0
    );
    assert_eq!(
        common::metrics::sum(
            &samples,
            MetricName::HttpRequestsTotal,
            &[("route", "/data"), ("status", "200")]
        ),
        7.0
    );

    relay.restore();
    let back = testing::wait_until(Duration::from_secs(10), || async {
        s.get("/data?key=r", &token).await.headers["x-cache"] == "HIT"
    })
    .await;
    assert!(back, "the gateway reconnects to Redis by itself");
}

#[tokio::test]
async fn an_unreachable_microservice_is_a_502_and_a_slow_one_a_504() {
    let unreachable = stack_with(0, false, |c| {
        c.cache.microservice_url = "http://127.0.0.1:9".into();
    })
    .await;
    let token = unreachable.token().await;
    let reply = unreachable.get("/data?key=x", &token).await;
    assert_eq!(reply.status, 502);
    assert!(reply.body["error"]
        .as_str()
        .unwrap()
        .contains("unreachable"));

    let slow = stack_with(1500, false, |c| c.cache.microservice_timeout_ms = 200).await;
    let token = slow.token().await;
    let started = Instant::now();
    let reply = slow.get("/process?key=x", &token).await;
    assert_eq!(reply.status, 504, "{}", reply.body);
    assert!(reply.body["error"].as_str().unwrap().contains("200 ms"));
    assert!(started.elapsed() < Duration::from_millis(1200));
}

#[tokio::test]
async fn the_concurrency_limit_answers_503_with_retry_after() {
    let s = stack_with(400, false, |c| {
        c.cache.cache_enabled = false;
        c.limit.max_in_flight = 1;
        c.limit.max_queue = 0;
    })
    .await;
    let token = s.token().await;
    let replies = futures::future::join_all((0..3).map(|i| {
        let (s, token) = (&s, &token);
        async move { s.get(&format!("/data?key=c{i}"), token).await }
    }))
    .await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let refused: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert_eq!(ok, 1);
    assert_eq!(refused.len(), 2);
    for r in refused {
        assert_eq!(r.headers["retry-after"], "1");
        assert!(r.body["error"]
            .as_str()
            .unwrap()
            .contains("concurrency limit"));
    }
    // Health checks are never limited.
    assert_eq!(
        s.send(s.http.get(format!("{}/health", s.gw))).await.status,
        200
    );
    let samples = s.metrics().await;
    assert_eq!(
        common::metrics::sum(&samples, MetricName::LimiterRejectedTotal, &[]),
        2.0
    );
}

#[tokio::test]
async fn the_limit_queues_requests_up_to_max_queue() {
    let s = stack_with(200, false, |c| {
        c.cache.cache_enabled = false;
        c.limit.max_in_flight = 1;
        c.limit.max_queue = 4;
    })
    .await;
    let token = s.token().await;
    let started = Instant::now();
    let requests = futures::future::join_all((0..3).map(|i| {
        let (s, token) = (&s, &token);
        async move {
            let sent = Instant::now();
            let reply = s.get(&format!("/data?key=q{i}"), token).await;
            (reply, sent.elapsed())
        }
    }));
    // Mid-way, one request holds the slot and two wait: what the autoscaler reads.
    let watch = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let samples = s.metrics().await;
        let g = |name| common::metrics::sum(&samples, name, &[]);
        (
            g(MetricName::LimiterInService),
            g(MetricName::LimiterWaiting),
        )
    };
    let (replies, (in_service, waiting)) = tokio::join!(requests, watch);
    assert!(replies.iter().all(|(r, _)| r.status == 200));
    let waited_and_served: f64 = replies.iter().map(|(_, t)| t.as_secs_f64()).sum();
    assert_eq!((in_service, waiting), (1.0, 2.0));
    // One at a time: three requests of 200 ms take at least 600 ms.
    assert!(started.elapsed() >= Duration::from_millis(600));
    let samples = s.metrics().await;
    assert_eq!(
        common::metrics::sum(&samples, MetricName::LimiterInService, &[]),
        0.0
    );
    // How long each held its slot: the microservice's 200 ms at least, the queueing not
    // included (the second waited one request, the third two: the clients' total is longer
    // by those waits). The login before them held a slot too.
    let holds = common::metrics::sum(&samples, MetricName::LimiterSlotSeconds.count(), &[]);
    let held = common::metrics::sum(&samples, MetricName::LimiterSlotSeconds.sum(), &[]);
    assert_eq!(holds, 4.0, "the login and the three requests");
    assert!(held >= 0.6, "{held} s held in all");
    assert!(
        held < waited_and_served,
        "{held} s held vs {waited_and_served} s waited and served"
    );
}

#[tokio::test]
async fn a_long_task_goes_from_queued_to_done() {
    let s = stack_with(0, true, |_| {}).await;
    let token = s.token().await;
    let reply = s
        .send(
            s.http
                .post(format!("{}/longtask", s.gw))
                .bearer_auth(&token)
                .json(&json!({"task": "report", "payload": {"duration_ms": 300, "n": 7}})),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_string();
    let status_url = reply.body["status_url"].as_str().unwrap().to_string();
    assert_eq!(status_url, format!("/tasks/{id}"));
    assert_eq!(reply.headers["location"], status_url.as_str());

    let early = s.get(&status_url, &token).await;
    assert_eq!(early.status, 200);
    let early_status = early.body["status"].as_str().unwrap().to_string();
    assert!(
        ["queued", "running"].contains(&early_status.as_str()),
        "{early_status}"
    );

    let last = std::sync::Mutex::new(Value::Null);
    let done = testing::wait_until(Duration::from_secs(10), || async {
        let r = s.get(&status_url, &token).await;
        let finished = r.body["status"] == "done";
        *last.lock().unwrap() = r.body;
        finished
    })
    .await;
    let last = last.into_inner().unwrap();
    assert!(done, "task finished: {last}");
    assert_eq!(last["result"]["echo"]["n"], 7);
    assert_eq!(last["attempts"], 1);
    assert_eq!(last["worker"], "worker-test");

    let failing = s
        .send(
            s.http
                .post(format!("{}/longtask", s.gw))
                .bearer_auth(&token)
                .json(&json!({"task": "fail"})),
        )
        .await;
    let url = failing.body["status_url"].as_str().unwrap().to_string();
    let failed = testing::wait_until(Duration::from_secs(10), || async {
        s.get(&url, &token).await.body["status"] == "failed"
    })
    .await;
    assert!(failed);
}

#[tokio::test]
async fn an_inline_long_task_is_done_inside_the_request_and_stored_as_the_worker_would() {
    // No worker at all: the gateway does the task itself.
    let s = stack_with(0, false, |c| {
        c.longtask_mode = gateway::LongtaskMode::Inline;
    })
    .await;
    let token = s.token().await;
    let started = std::time::Instant::now();
    let reply = s
        .send(
            s.http
                .post(format!("{}/longtask", s.gw))
                .bearer_auth(&token)
                .json(&json!({"task": "report", "payload": {"duration_ms": 300, "n": 7}})),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        took >= Duration::from_millis(300),
        "answered after {took:?}"
    );
    assert_eq!(reply.body["status"], "done");
    assert_eq!(reply.body["result"]["echo"]["n"], 7);
    assert_eq!(reply.body["worker"], "gw-test");
    let id = reply.body["id"].as_str().unwrap().to_string();
    let status_url = format!("/tasks/{id}");
    assert_eq!(reply.headers["location"], status_url.as_str());
    // The row is the worker's: the status reads it back from Postgres.
    let stored = s.get(&status_url, &token).await;
    assert_eq!(stored.status, 200);
    assert_eq!(stored.body["status"], "done");
    assert_eq!(stored.body["attempts"], 1);
    assert_eq!(stored.body["worker"], "gw-test");
    // The answer's finish time is the stored one, to the millisecond.
    assert_eq!(reply.body["finished_at"], stored.body["finished_at"]);
    // A failing task fails inside the request, with its reason, and is stored as failed.
    let failing = s
        .send(
            s.http
                .post(format!("{}/longtask", s.gw))
                .bearer_auth(&token)
                .json(&json!({"task": "fail", "payload": {"duration_ms": 10}})),
        )
        .await;
    assert_eq!(failing.status, 200, "{}", failing.body);
    assert_eq!(failing.body["status"], "failed");
    assert!(failing.body["result"]["error"].is_string());
    // Bad input is still a 400 before any work.
    let bad = s
        .send(
            s.http
                .post(format!("{}/longtask", s.gw))
                .bearer_auth(&token)
                .json(&json!({"task": "no spaces"})),
        )
        .await;
    assert_eq!(bad.status, 400);
    // Counted as inline work, none queued.
    let metrics = s
        .http
        .get(format!("{}/metrics", s.gw))
        .send()
        .await
        .unwrap();
    let samples = common::metrics::parse_text(&metrics.text().await.unwrap());
    assert_eq!(
        common::metrics::sum(&samples, MetricName::TasksInlineTotal, &[]),
        2.0
    );
    assert_eq!(
        common::metrics::sum(&samples, MetricName::TasksEnqueuedTotal, &[]),
        0.0
    );
}

#[tokio::test]
async fn task_requests_are_validated() {
    let s = stack().await;
    let token = s.token().await;
    let unknown = s
        .get("/tasks/5b0e4f5c-3c4a-4f8e-9a53-1f6f1d4f2e10", &token)
        .await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.body["error"].is_string());
    assert_eq!(s.get("/tasks/not-a-uuid", &token).await.status, 404);
    let url = format!("{}/longtask", s.gw);
    let bad_name = s
        .send(
            s.http
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({"task": "no spaces"})),
        )
        .await;
    assert_eq!(bad_name.status, 400);
    let no_task = s
        .send(
            s.http
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({"payload": 1})),
        )
        .await;
    assert_eq!(no_task.status, 422);
    let huge = s
        .send(
            s.http
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({"task": "t", "payload": "x".repeat(20_000)})),
        )
        .await;
    assert_eq!(huge.status, 413);
    let anonymous = s.send(s.http.post(&url).json(&json!({"task": "t"}))).await;
    assert_eq!(anonymous.status, 401);
}

/// A 2 MB body on a route that takes 64 KiB, sent whole before the answer is read (as a naive
/// client does): the client reads the 413, 30 times of 30 (hyper reads and drops the rest of
/// a body its handler refused; a server that closed instead would reset the connection).
#[tokio::test]
async fn a_body_too_large_is_answered_with_a_413_the_client_can_read() {
    let s = stack().await;
    let token = s.token().await;
    let addr = common::testing::socket_of(&s.gw).await;
    common::testing::a_large_body_gets_a_413_the_client_reads(addr, &token).await;
}

#[tokio::test]
async fn the_gateway_refuses_to_start_without_a_proper_jwt_secret() {
    let db = TestDb::create().await;
    for (secret, expected) in [
        (None, "JWT_SECRET is not set"),
        (Some("short"), "too short"),
    ] {
        let mut config = gateway_config(&db, testing::redis_config(), "http://127.0.0.1:9".into());
        config.auth.jwt_secret = secret.map(String::from);
        let err = match gateway::build(config).await {
            Ok(_) => panic!("started without a usable secret"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(expected), "{err}");
    }
}

#[tokio::test]
async fn config_shows_knobs_but_no_secrets() {
    let s = stack().await;
    let reply = s.send(s.http.get(format!("{}/config", s.gw))).await;
    assert_eq!(reply.status, 200);
    let config = &reply.body["config"];
    assert_eq!(config["cache_ttl_secs"], 30);
    assert_eq!(config["max_in_flight"], 0);
    // What MICROSERVICE_URL resolves to now: the report counts the microservices by it.
    assert_eq!(config["microservice_instances"], serde_json::json!([s.ms]));
    let text = reply.body.to_string();
    assert!(!text.contains(SECRET));
    assert!(!text.contains("scalelab\""), "no lab password");
    assert!(config.get("database_url").is_none());
}

/// LAB_PASSWORD changed (or the argon2 settings): the next gateway to start hashes the lab
/// users again, so the new password logs in and the old one no longer does.
#[tokio::test]
async fn a_changed_lab_password_takes_effect_on_the_next_start() {
    let mut s = stack().await;
    assert_eq!(s.login("user1", "scalelab").await.status, 200);
    let second = s
        .add_gateway(|c| c.auth.lab.lab_password = "a-new-password".into())
        .await;
    let http = s.http.clone();
    let login = |base: String, password: &'static str| {
        let http = http.clone();
        async move {
            http.post(format!("{base}/login"))
                .json(&serde_json::json!({"username": "user2", "password": password}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(login(second.clone(), "a-new-password").await, 200);
    assert_eq!(login(second.clone(), "scalelab").await, 401);
    // Other argon2 settings alone: hashed again, the same password still logs in.
    let third = s
        .add_gateway(|c| {
            c.auth.lab.lab_password = "a-new-password".into();
            c.auth.argon2_iterations = 2;
        })
        .await;
    assert_eq!(login(third, "a-new-password").await, 200);
    let stored: String = tokio_postgres::connect(&s.db.url, tokio_postgres::NoTls)
        .await
        .map(|(client, conn)| {
            tokio::spawn(conn);
            client
        })
        .unwrap()
        .query_one(
            "SELECT password_hash FROM lab_users WHERE username = 'user3'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored.contains("t=2"), "{stored}");
}
