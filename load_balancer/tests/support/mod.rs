//! What the load balancer's tests share: stand-in gateways (real HTTP servers, axum like the
//! real gateway), the load balancer started in-process (Pingora's server on a thread of its
//! own, on a port chosen by the system), and raw-socket helpers.
#![allow(dead_code)]

use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::time::Duration;

/// What an upstream received: method, target and headers (names lower-case).
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// An upstream (a stand-in gateway: axum, like the real one) on its own runtime thread: `kill()` drops the runtime, so the listener and
/// every open connection vanish as if the process died.
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    /// Requests to `/slow` it received.
    pub slow_hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Every request it received (health checks aside), in order.
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    pub fn start(name: &str) -> Self {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap())
    }

    pub fn start_on(name: &str, addr: SocketAddr) -> Self {
        let listener = StdListener::bind(addr).expect("bind upstream");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let owned = name.to_string();
        let slow_hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let hits = slow_hits.clone();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
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
                // Answers at once, without reading the body it was sent.
                .route(
                    "/early",
                    axum::routing::post(|| async {
                        (axum::http::StatusCode::UNAUTHORIZED, "no body wanted")
                    }),
                )
                // The gateway's body limit: 64 KiB, past it a 413.
                .route(
                    "/limited",
                    axum::routing::post(
                        |body: axum::body::Bytes| async move { body.len().to_string() },
                    )
                    .layer(axum::extract::DefaultBodyLimit::max(64 * 1024)),
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
            let app = app.layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let record = record.clone();
                    async move {
                        if req.uri().path() != "/health" {
                            record.lock().unwrap().push(Seen {
                                method: req.method().to_string(),
                                target: req.uri().to_string(),
                                headers: req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| {
                                        (
                                            k.to_string(),
                                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                        )
                                    })
                                    .collect(),
                            });
                        }
                        next.run(req).await
                    }
                },
            ));
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
            seen,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn kill(&mut self) {
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

#[allow(unused_imports)]
pub use common::testing::free_port;

/// The load balancer, in this process on its own runtime thread, every port chosen by the
/// system. Dropping it stops it the way SIGTERM does.
pub struct Lb {
    pub base: String,
    pub metrics: String,
    pub admin: String,
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Lb {
    /// Stops it as SIGTERM would and waits for `run_until` to return.
    pub fn stop(&mut self) -> Duration {
        let started = std::time::Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        started.elapsed()
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Health checks every 500 ms (generous timeout: a loaded CI machine must not fail a check by
/// slowness alone); `tweak` changes any setting.
pub fn start_lb(backends: &[String], tweak: impl FnOnce(&mut load_balancer::Config)) -> Lb {
    let mut config = load_balancer::Config::for_tests(backends.to_vec());
    config.health_interval_ms = 500;
    config.health_timeout_ms = 3000;
    config.discovery_interval_ms = 500;
    tweak(&mut config);
    let lb = load_balancer::build(config).expect("the load balancer builds");
    let (port, metrics, admin) = (lb.port(), lb.metrics_port(), lb.admin_port());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        lb.run_until(async move {
            let _ = stop_rx.await;
        })
        .expect("the load balancer runs");
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the load balancer listens"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Lb {
        base: format!("http://127.0.0.1:{port}"),
        metrics: format!("http://127.0.0.1:{metrics}"),
        admin: format!("http://127.0.0.1:{admin}"),
        addr,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

pub async fn healthy_backends(lb: &Lb) -> Vec<String> {
    let Ok(resp) = reqwest::get(format!("{}/backends", lb.metrics)).await else {
        return Vec::new();
    };
    let Ok(body) = resp.json::<records::wire::Backends>().await else {
        return Vec::new();
    };
    body.backends
        .into_iter()
        .filter(|b| b.healthy)
        .map(|b| b.addr)
        .collect()
}

pub async fn wait_healthy(lb: &Lb, n: usize) {
    let ok = common::testing::wait_until(Duration::from_secs(10), || async {
        healthy_backends(lb).await.len() == n
    })
    .await;
    if !ok {
        let have = healthy_backends(lb).await;
        panic!("expected {n} healthy backends, have {have:?}");
    }
}

/// One upstream named NAME and a load balancer in front of it, once it is in rotation.
pub async fn over_one_backend(name: &str) -> (Upstream, Lb) {
    over_one_backend_with(name, |_| {}).await
}

pub async fn over_one_backend_with(
    name: &str,
    tweak: impl FnOnce(&mut load_balancer::Config),
) -> (Upstream, Lb) {
    let up = Upstream::start(name);
    let lb = start_lb(&[up.addr.to_string()], tweak);
    wait_healthy(&lb, 1).await;
    (up, lb)
}

/// Sends raw bytes to the load balancer and returns everything it answered until it closed
/// the connection (or 5 s passed).
pub fn raw_exchange(lb: &Lb, request: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(lb.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status codes of every answer in a raw exchange, in order.
pub fn statuses(answer: &str) -> Vec<u16> {
    answer
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| answer.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

/// The JSON body of the first answer of a raw exchange.
pub fn first_json(answer: &str) -> Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    // The first JSON value; a pipelined answer may follow it.
    serde_json::Deserializer::from_str(body)
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or(json!(null))
}
