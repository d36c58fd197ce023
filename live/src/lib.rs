//! The live page (`http://127.0.0.1:${LIVE_PORT:-8089}/`): what the stack does, second by
//! second, while a lab command drives load, and after it (the board stays until the command
//! ends; `lab watch` serves it on its own against a running stack). The lab samples the load
//! balancer (answers by status, its latency histogram, its view of the gateways), every
//! gateway (slots, queue, turned away, cache), the microservice's pool and the worker's
//! queue once a second, with the machine's CPU and the load generators' share of it. The
//! protocols say what they are doing on the board they are handed (`LiveBoard`: `step`,
//! `fault`, `note`); the page draws it all on one
//! time axis as SVG in the page's DOM (`page.rs`), refreshed by a few lines of script.

mod page;
mod sample;

use serde::Serialize;
use stack::runtime::Endpoints;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use sample::LiveSampler;

/// The port the page listens on inside the lab's container (compose publishes it on the
/// host as `LIVE_PORT`).
pub const CONTAINER_PORT: u16 = 8089;

/// Seconds of history the board keeps (and draws).
const KEEP: usize = 1800;

/// One second of the stack.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Point {
    /// Seconds since the board started.
    pub t: f64,
    /// Answers per second through the load balancer, by status class (`2xx`, `4xx`, `5xx`).
    pub answers: BTreeMap<String, f64>,
    /// Latency percentiles of the last second at the load balancer (ms, from its histogram).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Each gateway by its address.
    pub gateways: BTreeMap<String, Gateway>,
    /// Cache hits / (hits + misses) of the last second, every gateway together.
    pub hit_ratio: Option<f64>,
    /// The microservice's pool: connections in use, requests waiting for one.
    pub pool_in_use: Option<f64>,
    pub pool_waiting: Option<f64>,
    /// The job queue: jobs not yet delivered, delivered and not acknowledged, done per second.
    pub queue_waiting: Option<f64>,
    pub queue_unacked: Option<f64>,
    pub jobs_done: Option<f64>,
    /// Jobs dead-lettered since the worker started (delivered more than MAX_ATTEMPTS times).
    pub jobs_dead: Option<f64>,
    /// Share of the machine's CPU busy, and the load generators' share (0..=1).
    pub cpu_busy: Option<f64>,
    pub generator_cpu: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Gateway {
    /// `in rotation`, `draining`, `out of rotation`, `starting`, `gone`.
    pub state: String,
    /// None for a second whose rate could not be taken (the first, or after a missed read).
    pub rps: Option<f64>,
    pub in_flight: Option<f64>,
    pub queued: Option<f64>,
    /// Requests turned away (503) in the last second.
    pub turned_away: Option<f64>,
}

/// A stretch of the time axis: a protocol's step, a fault's window.
#[derive(Debug, Clone, Serialize)]
pub struct Band {
    pub kind: &'static str,
    pub label: String,
    pub from: f64,
    pub to: Option<f64>,
}

/// What the page shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Board {
    pub points: Vec<Point>,
    pub bands: Vec<Band>,
    /// Moments worth a word: an autoscaler's decision, a repair.
    pub notes: Vec<(f64, String)>,
    /// The protocol's step now: `[2/4] 3 gateways, hit, classic (300 users)`.
    pub step: Option<String>,
    /// The load generators running now (their pids, for their CPU).
    #[serde(skip)]
    pub generators: Vec<u32>,
}

/// The board's handle: one per command, cloned into the protocols, the load generators'
/// launcher and the autoscaler that write to it, and the page and sampler that read it.
#[derive(Clone)]
pub struct LiveBoard(Arc<Live>);

struct Live {
    started: Instant,
    board: Mutex<Board>,
    /// Whether the page is served (the board is saved at the end only then).
    serving: AtomicBool,
}

impl Default for LiveBoard {
    fn default() -> Self {
        Self(Arc::new(Live {
            started: Instant::now(),
            board: Mutex::new(Board::default()),
            serving: AtomicBool::new(false),
        }))
    }
}

impl LiveBoard {
    fn now(&self) -> f64 {
        self.0.started.elapsed().as_secs_f64()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Board) -> T) -> T {
        let mut board = self.0.board.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut board)
    }

    /// A copy of the board as it is now.
    pub fn board(&self) -> Board {
        self.with(|b| b.clone())
    }

    /// Step `k` (0-based) of `n` of a protocol begins: the previous step's band ends.
    pub fn step(&self, k: usize, n: usize, what: &str) {
        let t = self.now();
        self.with(|b| {
            close(b, "step", t);
            let label = format!("[{}/{n}] {what}", k + 1);
            b.step = Some(label.clone());
            b.bands.push(Band {
                kind: "step",
                label,
                from: t,
                to: None,
            });
        });
    }

    /// A fault's window opens (`kind` = "fault") or closes (`None`).
    pub fn fault(&self, what: Option<&str>) {
        let t = self.now();
        self.with(|b| {
            close(b, "fault", t);
            if let Some(what) = what {
                b.bands.push(Band {
                    kind: "fault",
                    label: what.to_string(),
                    from: t,
                    to: None,
                });
            }
        });
    }

    /// A moment worth a word on the time axis.
    pub fn note(&self, what: impl Into<String>) {
        let t = self.now();
        self.with(|b| b.notes.push((t, what.into())));
    }

    /// The load generators running now (empty when a run ends).
    pub fn generators(&self, pids: Vec<u32>) {
        self.with(|b| b.generators = pids);
    }

    /// The protocol ended: its last step's band closes, the board stays.
    pub fn finished(&self, what: &str) {
        let t = self.now();
        self.with(|b| {
            close(b, "step", t);
            close(b, "fault", t);
            b.step = Some(what.to_string());
        });
    }

    fn push(&self, point: Point) {
        self.with(|b| {
            b.points.push(point);
            if b.points.len() > KEEP {
                let extra = b.points.len() - KEEP;
                b.points.drain(..extra);
            }
        });
    }

    /// Writes the board as it is now to `<dir>/live.html` (no script), for after the run.
    pub fn save(&self, dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("live.html");
        std::fs::write(&path, page::snapshot(&self.board()))?;
        Ok(path)
    }

    /// Whether the page is being served (the board is saved at the end only then).
    pub fn serving(&self) -> bool {
        self.0.serving.load(Ordering::SeqCst)
    }

    /// Starts the page and the sampler in the background. A taken port is one line, and
    /// the lab goes on without the page.
    pub async fn start(
        &self,
        address: std::net::SocketAddr,
        endpoints: &Endpoints,
    ) -> Option<String> {
        let port = address.port();
        let listener = match tokio::net::TcpListener::bind(address).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "lab: the live page cannot listen on port {port} ({e}); set LIVE_PORT in \
                     .env for another port (the lab goes on without it)"
                );
                return None;
            }
        };
        let url = format!("http://127.0.0.1:{}/", listener.local_addr().ok()?.port());
        self.0.serving.store(true, Ordering::SeqCst);
        let router = page::router(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let mut sampler = LiveSampler::new(endpoints);
        let board = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let pids = board.with(|b| b.generators.clone());
                let point = sampler.next(board.now(), &pids).await;
                board.push(point);
            }
        });
        Some(url)
    }
}

fn close(b: &mut Board, kind: &str, t: f64) {
    for band in b
        .bands
        .iter_mut()
        .filter(|x| x.kind == kind && x.to.is_none())
    {
        band.to = Some(t);
    }
}

/// Where the page listens: loopback, or every interface inside the lab's container (whose
/// port compose publishes on the host's loopback only).
pub fn address(port: u16, place: stack::container::Place) -> std::net::SocketAddr {
    let ip = if place.inside() {
        std::net::Ipv4Addr::UNSPECIFIED
    } else {
        std::net::Ipv4Addr::LOCALHOST
    };
    (ip, port).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port something else holds: no page (the lab says so in one line and goes on).
    #[tokio::test]
    async fn a_taken_port_gives_no_page_and_no_error() {
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        let endpoints = Endpoints {
            target: "http://127.0.0.1:1".into(),
            lb_metrics: "http://127.0.0.1:1/metrics".into(),
            microservice: "http://127.0.0.1:1".into(),
            worker_metrics: "http://127.0.0.1:1/metrics".into(),
        };
        assert_eq!(
            LiveBoard::default()
                .start(address(port, stack::container::Place::Host), &endpoints)
                .await,
            None
        );
    }

    /// Only a request naming the page by address reads it: not a page of another domain
    /// that rebinds its name to 127.0.0.1 (DNS rebinding), and never across origins.
    #[tokio::test]
    async fn the_page_answers_its_own_address_only() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(
            async move { axum::serve(listener, page::router(LiveBoard::default())).await },
        );
        let client = reqwest::Client::new();
        let get = |host: &'static str| {
            client
                .get(format!("http://127.0.0.1:{port}/board.json"))
                .header("host", host)
                .header("origin", "http://evil.example")
                .send()
        };
        let own = get("127.0.0.1").await.unwrap();
        assert_eq!(own.status(), 200);
        assert!(own.headers().get("access-control-allow-origin").is_none());
        for foreign in ["evil.example:8089", "localhost.evil.example", "pwn:8089"] {
            let answer = get(foreign).await.unwrap();
            assert_eq!(answer.status(), 403, "{foreign}");
            let body: serde_json::Value = answer.json().await.unwrap();
            assert!(
                body["error"].as_str().unwrap().contains("refused"),
                "{body}"
            );
        }
    }

    #[test]
    fn the_saved_board_has_no_script_and_the_steps_so_far() {
        let live = LiveBoard::default();
        live.step(0, 2, "up 1");
        live.fault(Some("kill-gateway: gateway-2 killed"));
        live.note("autoscaler: 1 → 3 gateways (utilization above its target)");
        let dir = std::env::temp_dir().join(format!("live-save-{}", std::process::id()));
        let path = live.save(&dir).unwrap();
        let html = std::fs::read_to_string(&path).unwrap();
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("up 1") && html.contains("autoscaler: 1 → 3 gateways"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
