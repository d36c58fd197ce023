//! The load balancer in front of real HTTP upstreams started by the test: balancing, health,
//! failover, retries, forwarding headers, bodies, shutdown.

use records::names::MetricName;

mod support;

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

async fn served_by(client: &reqwest::Client, lb: &Lb) -> (u16, String) {
    match client.get(format!("{}/echo", lb.base)).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let who = r
                .headers()
                .get("x-served-by")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            (status, who)
        }
        Err(e) => (0, e.to_string()),
    }
}

#[tokio::test]
async fn round_robin_gives_each_of_three_backends_a_third() {
    let ups: Vec<Upstream> = ["a", "b", "c"].iter().map(|n| Upstream::start(n)).collect();
    let lb = start_lb(
        &ups.iter().map(|u| u.addr.to_string()).collect::<Vec<_>>(),
        |_| {},
    );
    wait_healthy(&lb, 3).await;
    let client = reqwest::Client::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..300 {
        let (status, who) = served_by(&client, &lb).await;
        assert_eq!(status, 200, "{who}");
        *counts.entry(who).or_default() += 1;
    }
    for u in &ups {
        let n = counts.get(&u.name).copied().unwrap_or(0);
        assert!(
            (99..=101).contains(&n),
            "{} got {n} of 300: {counts:?}",
            u.name
        );
    }
    // The load balancer's own counters say the same.
    let samples =
        common::metrics::scrape(&reqwest::Client::new(), &format!("{}/metrics", lb.metrics))
            .await
            .unwrap();
    for u in &ups {
        let n = common::metrics::sum(
            &samples,
            MetricName::LbRequestsTotal,
            &[("backend", &u.addr.to_string()), ("status", "200")],
        );
        assert!((99.0..=101.0).contains(&n), "{}: {n}", u.addr);
    }
    assert_eq!(
        common::metrics::sum(&samples, MetricName::LbBackendsHealthy, &[]),
        3.0
    );
}

#[tokio::test]
async fn a_killed_backend_fails_no_request_leaves_rotation_and_returns_after_restart() {
    let mut ups: Vec<Upstream> = ["a", "b", "c"].iter().map(|n| Upstream::start(n)).collect();
    let lb = start_lb(
        &ups.iter().map(|u| u.addr.to_string()).collect::<Vec<_>>(),
        |_| {},
    );
    wait_healthy(&lb, 3).await;
    let client = reqwest::Client::new();
    let victim = ups[1].addr;

    let mut failures = Vec::new();
    for _ in 0..60 {
        let (status, who) = served_by(&client, &lb).await;
        if status != 200 {
            failures.push(who);
        }
    }
    ups[1].kill();
    let killed_at = Instant::now();
    // Traffic continues straight through the kill: connect failures are retried elsewhere.
    for _ in 0..120 {
        let (status, who) = served_by(&client, &lb).await;
        if status != 200 {
            failures.push(format!("{status} {who}"));
        }
    }
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    let out = common::testing::wait_until(Duration::from_millis(600), || async {
        !healthy_backends(&lb).await.contains(&victim.to_string())
    })
    .await;
    assert!(out, "out of rotation within one health interval");
    assert!(killed_at.elapsed() < Duration::from_secs(3));

    ups[1] = Upstream::start_on("b", victim);
    let restarted = Instant::now();
    let back = common::testing::wait_until(Duration::from_millis(1100), || async {
        healthy_backends(&lb).await.contains(&victim.to_string())
    })
    .await;
    assert!(back, "back in rotation within two health intervals");
    assert!(restarted.elapsed() < Duration::from_millis(1500));
    let mut saw_b = false;
    for _ in 0..6 {
        saw_b |= served_by(&client, &lb).await.1 == "b";
    }
    assert!(saw_b, "the restarted backend gets traffic again");
}

#[tokio::test]
async fn a_backend_added_at_run_time_gets_traffic_without_a_restart() {
    let first = Upstream::start("first");
    let second = Upstream::start("second");
    let lb = start_lb(&[first.addr.to_string()], |_| {});
    wait_healthy(&lb, 1).await;
    let client = reqwest::Client::new();
    assert_eq!(served_by(&client, &lb).await.1, "first");

    let set = client
        .put(format!("{}/backends", lb.admin))
        .bearer_auth(load_balancer::TEST_ADMIN_TOKEN)
        .json(&json!({"backends": [first.addr.to_string(), second.addr.to_string()]}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    wait_healthy(&lb, 2).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..10 {
        *seen.entry(served_by(&client, &lb).await.1).or_default() += 1;
    }
    assert_eq!(seen.get("second"), Some(&5), "{seen:?}");

    // Removing it drains it from rotation.
    client
        .put(format!("{}/backends", lb.admin))
        .bearer_auth(load_balancer::TEST_ADMIN_TOKEN)
        .json(&json!({"backends": [first.addr.to_string()]}))
        .send()
        .await
        .unwrap();
    for _ in 0..6 {
        assert_eq!(served_by(&client, &lb).await.1, "first");
    }

    let bad = client
        .put(format!("{}/backends", lb.admin))
        .bearer_auth(load_balancer::TEST_ADMIN_TOKEN)
        .json(&json!({"backends": ["no-port"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("host:port"));
}

#[tokio::test]
async fn a_backend_gets_no_traffic_before_it_passes_a_health_check() {
    let up = Upstream::start("only");
    // Checks every 60 s: only the check made at discovery can admit it.
    let lb = start_lb(&[up.addr.to_string()], |c| c.health_interval_ms = 60_000);
    wait_healthy(&lb, 1).await;
    // An address with nothing listening is discovered but never admitted.
    let dead = format!("127.0.0.1:{}", free_port());
    reqwest::Client::new()
        .put(format!("{}/backends", lb.admin))
        .bearer_auth(load_balancer::TEST_ADMIN_TOKEN)
        .json(&json!({"backends": [up.addr.to_string(), dead]}))
        .send()
        .await
        .unwrap();
    let client = reqwest::Client::new();
    for _ in 0..20 {
        assert_eq!(served_by(&client, &lb).await, (200, "only".to_string()));
    }
}

#[tokio::test]
async fn with_no_healthy_backend_the_answer_is_a_503_json() {
    let lb = start_lb(&[format!("127.0.0.1:{}", free_port())], |_| {});
    let ready = common::testing::wait_until(Duration::from_secs(10), || async {
        reqwest::get(format!("{}/ready", lb.metrics))
            .await
            .map(|r| r.status().as_u16())
            .ok()
            == Some(503)
    })
    .await;
    assert!(ready, "the metrics port answers and reports not ready");
    let resp = reqwest::get(format!("{}/echo", lb.base)).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "no healthy backend");
}

#[tokio::test]
async fn forwarding_headers_are_added_and_request_ids_kept() {
    let (_up, lb) = over_one_backend("h").await;
    let fresh: Value = get_json(&lb, "/echo", &[]).await;
    assert!(fresh["x_request_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    assert_eq!(fresh["x_forwarded_for"], "127.0.0.1");
    let kept: Value = get_json(
        &lb,
        "/echo",
        &[("x-request-id", "abc-123"), ("x-forwarded-for", "10.1.2.3")],
    )
    .await;
    assert_eq!(kept["x_request_id"], "abc-123");
    assert_eq!(kept["x_forwarded_for"], "10.1.2.3, 127.0.0.1");
    assert_eq!(kept["served_by"], "h");
}

/// GET PATH through the load balancer with extra HEADERS; the JSON answer.
async fn get_json<T: serde::de::DeserializeOwned>(
    lb: &Lb,
    path: &str,
    headers: &[(&str, &str)],
) -> T {
    let mut req = reqwest::Client::new().get(format!("{}{path}", lb.base));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap().json().await.unwrap()
}

/// Sends METHOD PATH with BODY through the load balancer; returns the status and the body
/// that came back.
async fn exchange(
    client: &reqwest::Client,
    lb: &Lb,
    method: reqwest::Method,
    path: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let resp = client
        .request(method, format!("{}{path}", lb.base))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

/// A backend that passes health checks but drops every other request after reading it:
/// the request's bytes reached it, and it died before answering.
fn start_dropper() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = dropped.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                if head.starts_with("GET /health") {
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    );
                } else {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    (addr, dropped)
}

#[tokio::test]
async fn only_idempotent_requests_are_retried_after_reaching_a_backend() {
    let good = Upstream::start("good");
    let (dropper, dropped) = start_dropper();
    // Long health interval: the dropper stays in rotation for the whole test.
    let lb = start_lb(&[good.addr.to_string(), dropper.to_string()], |c| {
        c.health_interval_ms = 60_000
    });
    wait_healthy(&lb, 2).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for _ in 0..6 {
        let resp = client
            .get(format!("{}/echo", lb.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            200,
            "a GET that hit the dropper is retried on the good backend"
        );
    }
    // An idempotent request with a body: the body is sent again, whole, to the good backend.
    for i in 0..6 {
        let sent = format!("put number {i} ").repeat(100).into_bytes();
        let (status, got) =
            exchange(&client, &lb, reqwest::Method::PUT, "/body", sent.clone()).await;
        assert_eq!(status, 200);
        assert_eq!(got, sent);
    }
    let before = dropped.load(std::sync::atomic::Ordering::SeqCst);
    assert!(before >= 2, "the dropper was tried");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let resp = client
            .post(format!("{}/echo", lb.base))
            .body("x")
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    let failed = statuses.iter().filter(|s| **s == 502).count();
    let posted_to_dropper = dropped.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert!(failed >= 1, "{statuses:?}");
    assert_eq!(
        failed, posted_to_dropper,
        "each POST the dropper swallowed failed once, never re-sent"
    );
}

#[tokio::test]
async fn stopping_finishes_the_request_in_flight_then_returns_within_the_grace_period() {
    let (_up, mut lb) = over_one_backend("s").await;
    let base = lb.base.clone();
    // 1.5 s of work on the backend, under way when the stop comes.
    let slow = tokio::spawn(async move { reqwest::get(format!("{base}/slow")).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let took = tokio::task::spawn_blocking(move || {
        let took = lb.stop();
        (took, lb)
    })
    .await
    .unwrap()
    .0;
    let answer = slow
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "slow");
    assert!(took < Duration::from_secs(3), "stopped after {took:?}");
}

/// The binary: SIGTERM stops it within the grace period (Pingora's server, which it no longer
/// uses, waited 5 minutes by default).
#[tokio::test]
async fn the_binary_stops_on_sigterm_within_five_seconds() {
    let up = Upstream::start("s");
    let mut child = Command::new(env!("CARGO_BIN_EXE_load_balancer"))
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("ADMIN_ADDR", "127.0.0.1:0")
        .env("BACKENDS", up.addr.to_string())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the load balancer");
    let mut out = child.stdout.take().unwrap();
    let listening = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
            if String::from_utf8_lossy(&seen).contains("load balancer listening") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(listening, "it logs that it listens");
    let sent = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn bodies_pass_through_whole_both_ways() {
    let (_up, lb) = over_one_backend("b").await;
    let client = reqwest::Client::new();

    // Larger than the retry buffer, and not valid UTF-8.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (status, got) = exchange(&client, &lb, reqwest::Method::POST, "/body", big.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(got, big);

    // A chunked request body (no Content-Length).
    let answer = raw_exchange(
        &lb,
        b"PUT /body HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          6\r\nchunk \r\n2\r\n1;\r\n8\r\nchunk 2;\r\n0\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("chunk 1;chunk 2;"), "{answer}");

    // A chunked answer.
    let (status, got) = exchange(&client, &lb, reqwest::Method::GET, "/stream", vec![]).await;
    assert_eq!(status, 200);
    let expected: String = (0..20).map(|i| format!("part {i}\n")).collect();
    assert_eq!(String::from_utf8(got).unwrap(), expected);

    // HEAD: a header, no body, and the connection goes on serving.
    let (status, got) = exchange(&client, &lb, reqwest::Method::HEAD, "/echo", vec![]).await;
    assert_eq!(status, 200);
    assert!(got.is_empty());
    assert_eq!(served_by(&client, &lb).await, (200, "b".to_string()));
}

#[tokio::test]
async fn hop_by_hop_headers_stay_on_their_hop_and_bad_requests_get_a_400() {
    let (_up, lb) = over_one_backend("h").await;
    let names: Vec<String> = get_json(
        &lb,
        "/headers",
        &[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "for this hop only"),
            ("x-kept", "1"),
        ],
    )
    .await;
    for gone in ["connection", "keep-alive", "x-secret"] {
        assert!(
            !names.contains(&gone.to_string()),
            "{gone} forwarded: {names:?}"
        );
    }
    for kept in ["x-kept", "x-request-id", "x-forwarded-for", "host"] {
        assert!(
            names.contains(&kept.to_string()),
            "{kept} missing: {names:?}"
        );
    }

    // Expect: 100-continue is answered by the load balancer, then the body goes through.
    let answer = raw_exchange(
        &lb,
        b"POST /body HTTP/1.1\r\nHost: lb\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nhello",
    );
    assert!(answer.starts_with("HTTP/1.1 100"), "{answer}");
    assert!(answer.contains("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");

    let answer = raw_exchange(&lb, b"NOT HTTP AT ALL\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let body: Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(body["error"], "bad request");
}

#[tokio::test]
async fn a_backend_slower_than_the_read_timeout_gets_a_504_and_no_retry() {
    let ups: Vec<Upstream> = ["s1", "s2"].iter().map(|n| Upstream::start(n)).collect();
    let lb = start_lb(
        &ups.iter().map(|u| u.addr.to_string()).collect::<Vec<_>>(),
        |c| c.upstream_read_timeout_ms = 300,
    );
    wait_healthy(&lb, 2).await;
    let started = Instant::now();
    let resp = reqwest::get(format!("{}/slow", lb.base)).await.unwrap();
    assert_eq!(resp.status(), 504);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "backend timed out");
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    let hits: usize = ups
        .iter()
        .map(|u| u.slow_hits.load(std::sync::atomic::Ordering::SeqCst))
        .sum();
    assert_eq!(
        hits, 1,
        "a timed-out request is not sent to a second backend"
    );
    // Timeouts do not take a backend out of rotation: it is slow, not dead.
    assert_eq!(healthy_backends(&lb).await.len(), 2);
}

#[tokio::test]
async fn only_the_lab_can_drive_the_admin_api() {
    let up = Upstream::start("only");
    let lb = start_lb(&[up.addr.to_string()], |_| {});
    wait_healthy(&lb, 1).await;
    let client = reqwest::Client::new();
    let evil = format!("127.0.0.1:{}", free_port());
    let put = |token: Option<&str>, host: Option<&str>| {
        let mut req = client
            .put(format!("{}/backends", lb.admin))
            .json(&json!({"backends": [evil.clone()]}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(h) = host {
            req = req.header("host", h);
        }
        req.send()
    };
    // No token, a wrong one, one a byte short: 401 JSON, and nothing changed.
    for token in [
        None,
        Some("wrong"),
        Some(&load_balancer::TEST_ADMIN_TOKEN[1..]),
    ] {
        let answer = put(token, None).await.unwrap();
        assert_eq!(answer.status(), 401, "{token:?}");
        assert!(answer
            .headers()
            .get("access-control-allow-origin")
            .is_none());
        let body: Value = answer.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("ADMIN_TOKEN"),
            "{body}"
        );
    }
    // A DNS-rebinding page names the port by its own domain: refused even with the token
    // (it cannot have it, but the Host alone must stop it), and for reads too.
    let answer = put(
        Some(load_balancer::TEST_ADMIN_TOKEN),
        Some("evil.example:9101"),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 403);
    let read = client
        .get(format!("{}/backends", lb.admin))
        .header("host", "rebind.evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 403);
    let body: Value = read.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("Host"), "{body}");
    for _ in 0..4 {
        assert_eq!(served_by(&client, &lb).await, (200, "only".to_string()));
    }
    // A load balancer started without a token refuses every change.
    let locked = start_lb(&[up.addr.to_string()], |c| c.admin_token = None);
    let answer = client
        .put(format!("{}/backends", locked.admin))
        .bearer_auth("anything")
        .json(&json!({"backends": [evil.clone()]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    // The lab's own call: the token, by address.
    let answer = put(Some(load_balancer::TEST_ADMIN_TOKEN), None)
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}
