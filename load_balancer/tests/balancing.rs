//! The load balancer binary in front of real HTTP upstreams started by the test.

use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An upstream on its own runtime thread: `kill()` drops the runtime, so the listener and
/// every open connection vanish as if the process died.
struct Upstream {
    addr: SocketAddr,
    name: String,
    /// Requests to `/slow` it received.
    slow_hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    fn start(name: &str) -> Self {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap())
    }

    fn start_on(name: &str, addr: SocketAddr) -> Self {
        let listener = StdListener::bind(addr).expect("bind upstream");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let owned = name.to_string();
        let slow_hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let hits = slow_hits.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let name = owned.clone();
            let app = Router::new()
                .route("/health", get(|| async { "ok" }))
                .route(
                    "/echo",
                    get(move |headers: HeaderMap| {
                        let name = name.clone();
                        async move {
                            let h = |k: &str| {
                                headers
                                    .get(k)
                                    .and_then(|v| v.to_str().ok())
                                    .map(String::from)
                            };
                            (
                                [("x-served-by", name.clone())],
                                axum::Json(json!({
                                    "served_by": name,
                                    "x_request_id": h("x-request-id"),
                                    "x_forwarded_for": h("x-forwarded-for"),
                                })),
                            )
                        }
                    })
                    .post(|| async { "posted" }),
                )
                // The body it got, byte for byte.
                .route(
                    "/body",
                    axum::routing::post(|body: axum::body::Bytes| async move { body })
                        .put(|body: axum::body::Bytes| async move { body }),
                )
                // The names of the headers it got.
                .route(
                    "/headers",
                    get(|headers: HeaderMap| async move {
                        let names: Vec<String> = headers.keys().map(|k| k.to_string()).collect();
                        axum::Json(names)
                    }),
                )
                // An answer in 20 chunks, sent as they are made.
                .route(
                    "/stream",
                    get(|| async {
                        let parts = futures::stream::iter(
                            (0..20).map(|i| Ok::<_, std::io::Error>(format!("part {i}\n"))),
                        );
                        axum::body::Body::from_stream(parts)
                    }),
                )
                .route(
                    "/slow",
                    get(move || {
                        hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        async {
                            tokio::time::sleep(Duration::from_millis(1500)).await;
                            "slow"
                        }
                    }),
                );
            rt.spawn(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
            rt.block_on(async {
                let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
            });
            rt.shutdown_background();
        });
        Self {
            addr,
            name: name.to_string(),
            slow_hits,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn kill(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Lb {
    child: Child,
    base: String,
    metrics: String,
    admin: String,
    /// Its stderr (shown by `TEST_LOG=1`, and on a failed wait).
    log: std::path::PathBuf,
}

impl Lb {
    /// What went wrong, for a failed assertion: whether it still runs, and its last log lines.
    fn state(&mut self) -> String {
        let running = match self.child.try_wait() {
            Ok(None) => "running".to_string(),
            Ok(Some(status)) => format!("exited: {status}"),
            Err(e) => format!("unknown: {e}"),
        };
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("load balancer {running}; log:\n{}", tail.join("\n"))
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("TEST_LOG").is_some() {
            eprintln!("{}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Starts the load balancer on free ports. A port found free can be taken by another test
/// before the load balancer binds it; it then exits at once with "cannot listen", and is
/// started again on other ports.
fn start_lb(backends: &[String], extra: &[(&str, &str)]) -> Lb {
    for _ in 0..5 {
        let mut lb = spawn_lb(backends, extra);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = lb.child.try_wait() {
                break;
            }
            let metrics = lb.metrics.trim_start_matches("http://");
            if std::net::TcpStream::connect(metrics).is_ok() {
                return lb;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let state = lb.state();
        if !state.contains("cannot listen") {
            panic!("the load balancer did not start: {state}");
        }
    }
    panic!("no free ports for the load balancer after 5 tries");
}

fn spawn_lb(backends: &[String], extra: &[(&str, &str)]) -> Lb {
    let (port, metrics, admin) = (free_port(), free_port(), free_port());
    let log = std::env::temp_dir().join(format!(
        "scalelab-lb-test-{}-{port}.log",
        std::process::id()
    ));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_load_balancer"));
    cmd.env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("METRICS_ADDR", format!("127.0.0.1:{metrics}"))
        .env("ADMIN_ADDR", format!("127.0.0.1:{admin}"))
        .env("BACKENDS", backends.join(","))
        .env("HEALTH_INTERVAL_MS", "500")
        // Generous: a loaded CI machine must not fail a check by slowness alone.
        .env("HEALTH_TIMEOUT_MS", "3000")
        .env("DISCOVERY_INTERVAL_MS", "500")
        .env("THREADS", "2")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    for (k, v) in extra {
        cmd.env(k, v);
    }
    Lb {
        child: cmd.spawn().expect("start the load balancer"),
        base: format!("http://127.0.0.1:{port}"),
        metrics: format!("http://127.0.0.1:{metrics}"),
        admin: format!("http://127.0.0.1:{admin}"),
        log,
    }
}

/// One upstream named NAME and a load balancer in front of it, once it is in rotation.
async fn over_one_backend(name: &str) -> (Upstream, Lb) {
    let up = Upstream::start(name);
    let mut lb = start_lb(&[up.addr.to_string()], &[]);
    wait_healthy(&mut lb, 1).await;
    (up, lb)
}

async fn healthy_backends(lb: &Lb) -> Vec<String> {
    let Ok(resp) = reqwest::get(format!("{}/backends", lb.metrics)).await else {
        return Vec::new();
    };
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    body["backends"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|b| b["healthy"] == true)
                .map(|b| b["addr"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_healthy(lb: &mut Lb, n: usize) {
    let ok = common::testing::wait_until(Duration::from_secs(10), || async {
        healthy_backends(lb).await.len() == n
    })
    .await;
    if !ok {
        let have = healthy_backends(lb).await;
        panic!(
            "expected {n} healthy backends, have {have:?}; {}",
            lb.state()
        );
    }
}

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
    let mut lb = start_lb(
        &ups.iter().map(|u| u.addr.to_string()).collect::<Vec<_>>(),
        &[],
    );
    wait_healthy(&mut lb, 3).await;
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
            "lb_requests_total",
            &[("backend", &u.addr.to_string()), ("status", "200")],
        );
        assert!((99.0..=101.0).contains(&n), "{}: {n}", u.addr);
    }
    assert_eq!(
        common::metrics::sum(&samples, "lb_backends_healthy", &[]),
        3.0
    );
}

#[tokio::test]
async fn a_killed_backend_fails_no_request_leaves_rotation_and_returns_after_restart() {
    let mut ups: Vec<Upstream> = ["a", "b", "c"].iter().map(|n| Upstream::start(n)).collect();
    let mut lb = start_lb(
        &ups.iter().map(|u| u.addr.to_string()).collect::<Vec<_>>(),
        &[],
    );
    wait_healthy(&mut lb, 3).await;
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
    let mut lb = start_lb(&[first.addr.to_string()], &[]);
    wait_healthy(&mut lb, 1).await;
    let client = reqwest::Client::new();
    assert_eq!(served_by(&client, &lb).await.1, "first");

    let set = client
        .put(format!("{}/backends", lb.admin))
        .json(&json!({"backends": [first.addr.to_string(), second.addr.to_string()]}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    wait_healthy(&mut lb, 2).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..10 {
        *seen.entry(served_by(&client, &lb).await.1).or_default() += 1;
    }
    assert_eq!(seen.get("second"), Some(&5), "{seen:?}");

    // Removing it drains it from rotation.
    client
        .put(format!("{}/backends", lb.admin))
        .json(&json!({"backends": [first.addr.to_string()]}))
        .send()
        .await
        .unwrap();
    for _ in 0..6 {
        assert_eq!(served_by(&client, &lb).await.1, "first");
    }

    let bad = client
        .put(format!("{}/backends", lb.admin))
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
    let mut lb = start_lb(&[up.addr.to_string()], &[("HEALTH_INTERVAL_MS", "60000")]);
    wait_healthy(&mut lb, 1).await;
    // An address with nothing listening is discovered but never admitted.
    let dead = format!("127.0.0.1:{}", free_port());
    reqwest::Client::new()
        .put(format!("{}/backends", lb.admin))
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
    let lb = start_lb(&[format!("127.0.0.1:{}", free_port())], &[]);
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
    let mut lb = start_lb(
        &[good.addr.to_string(), dropper.to_string()],
        &[("HEALTH_INTERVAL_MS", "60000")],
    );
    wait_healthy(&mut lb, 2).await;
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
async fn sigterm_stops_it_within_five_seconds() {
    let (_up, mut lb) = over_one_backend("s").await;
    let pid = lb.child.id().to_string();
    let sent = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    loop {
        if let Some(status) = lb.child.try_wait().unwrap() {
            assert!(status.success() || status.code().is_some(), "{status:?}");
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

/// Sends raw bytes to the load balancer and returns what it answered before closing.
fn raw_exchange(lb: &Lb, request: &[u8]) -> String {
    let addr = lb.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
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
    let mut lb = start_lb(
        &ups.iter().map(|u| u.addr.to_string()).collect::<Vec<_>>(),
        &[("UPSTREAM_READ_TIMEOUT_MS", "300")],
    );
    wait_healthy(&mut lb, 2).await;
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
