//! scalelab's load balancer: its own HTTP/1.1 (`h1`) on Pingora's connector, round robin over
//! the gateways, with discovery, active and passive health checks, bounded safe retries, and
//! Prometheus metrics on a separate port.
//!
//! Like the other services: [`build`] binds every port (port 0 in tests) and returns a
//! [`LoadBalancer`]; [`LoadBalancer::run`] serves until SIGTERM/SIGINT.

pub mod edge;
pub mod h1;
pub mod idle;
mod peer;
pub mod pool;
pub mod proxy;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use common::config::ServiceConfig;
use common::{ApiError, Server as HttpServer};
use pool::{HealthPolicy, Pool, PoolMetrics};
use records::wire;
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Parser, Serialize)]
#[command(
    version,
    name = "load_balancer",
    about = "scalelab's round-robin load balancer (Pingora)"
)]
pub struct Config {
    /// Where clients connect.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen_addr: String,
    /// Prometheus metrics, /health, /ready and GET /backends.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9100")]
    pub metrics_addr: String,
    /// Admin API (PUT /backends, PUT /drain). Keep it on loopback.
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9101")]
    pub admin_addr: String,
    /// Every change through the admin API carries `Authorization: Bearer <ADMIN_TOKEN>`;
    /// without one set, every change is refused. Never shown in /config.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    #[serde(skip)]
    pub admin_token: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub service: ServiceConfig,
    /// Gateways as comma-separated `host:port`; names are re-resolved every
    /// DISCOVERY_INTERVAL_MS (so compose replicas of one name are all found).
    #[arg(
        long,
        env = "BACKENDS",
        default_value = "127.0.0.1:8000",
        value_delimiter = ','
    )]
    pub backends: Vec<String>,
    #[arg(long, env = "DISCOVERY_INTERVAL_MS", default_value_t = 1000)]
    pub discovery_interval_ms: u64,
    #[arg(long, env = "HEALTH_INTERVAL_MS", default_value_t = 1000)]
    pub health_interval_ms: u64,
    #[arg(long, env = "HEALTH_TIMEOUT_MS", default_value_t = 1000)]
    pub health_timeout_ms: u64,
    #[arg(long, env = "HEALTH_PATH", default_value = "/health")]
    pub health_path: String,
    /// Passing checks in a row before a backend (re-)enters the rotation.
    #[arg(long, env = "HEALTHY_THRESHOLD", default_value_t = 1)]
    pub healthy_threshold: u32,
    /// Failing checks in a row before it leaves (a refused connection counts at once).
    #[arg(long, env = "UNHEALTHY_THRESHOLD", default_value_t = 2)]
    pub unhealthy_threshold: u32,
    #[arg(long, env = "UPSTREAM_CONNECT_TIMEOUT_MS", default_value_t = 500)]
    pub upstream_connect_timeout_ms: u64,
    /// Longest wait for a backend's response; past it the client gets a 504.
    #[arg(long, env = "UPSTREAM_READ_TIMEOUT_MS", default_value_t = 30_000)]
    pub upstream_read_timeout_ms: u64,
    /// Backends tried per request at most (the first try included).
    #[arg(long, env = "MAX_TRIES", default_value_t = 3)]
    pub max_tries: usize,
    /// Longest wait for the next piece of a client's request (its header, then each read of
    /// its body) and for a client to take the next piece of an answer: a header past it closes
    /// the connection, a body past it gets a 408.
    #[arg(long, env = "CLIENT_TIMEOUT_MS", default_value_t = 10_000)]
    pub client_timeout_ms: u64,
    /// How long an idle kept-alive client connection is kept open between requests.
    #[arg(long, env = "CLIENT_KEEPALIVE_SECS", default_value_t = 60)]
    pub client_keepalive_secs: u64,
    /// Worker threads of the load balancer's runtime (0 = one per core).
    #[arg(long, env = "THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Idle keep-alive connections kept to each backend.
    #[arg(long, env = "KEEPALIVE_POOL_SIZE", default_value_t = 512)]
    pub keepalive_pool_size: usize,
}

/// The admin token of `Config::for_tests`.
pub const TEST_ADMIN_TOKEN: &str = "a-test-admin-token-of-enough-length";

impl Config {
    /// Every port on loopback and chosen by the system, one gateway: for tests.
    pub fn for_tests(backends: Vec<String>) -> Self {
        Self {
            listen_addr: "127.0.0.1:0".into(),
            metrics_addr: "127.0.0.1:0".into(),
            admin_addr: "127.0.0.1:0".into(),
            admin_token: Some(TEST_ADMIN_TOKEN.into()),
            service: ServiceConfig::named("lb-test"),
            backends,
            discovery_interval_ms: 200,
            health_interval_ms: 200,
            health_timeout_ms: 500,
            health_path: "/health".into(),
            healthy_threshold: 1,
            unhealthy_threshold: 2,
            upstream_connect_timeout_ms: 500,
            upstream_read_timeout_ms: 5_000,
            max_tries: 3,
            client_timeout_ms: 2_000,
            client_keepalive_secs: 60,
            threads: 0,
            keepalive_pool_size: 64,
        }
    }

    /// Worker threads for the runtime `main` builds.
    pub fn worker_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        for entry in &self.backends {
            validate_entry(entry).map_err(|e| anyhow::anyhow!("BACKENDS: {e}"))?;
        }
        if self.health_interval_ms == 0 || self.discovery_interval_ms == 0 {
            anyhow::bail!("HEALTH_INTERVAL_MS and DISCOVERY_INTERVAL_MS must be above 0");
        }
        if self.max_tries == 0 || self.max_tries > proxy::TRIES_CAP {
            anyhow::bail!("MAX_TRIES must be between 1 and {}", proxy::TRIES_CAP);
        }
        if self.client_timeout_ms == 0 || self.client_keepalive_secs == 0 {
            anyhow::bail!("CLIENT_TIMEOUT_MS and CLIENT_KEEPALIVE_SECS must be above 0");
        }
        Ok(())
    }
}

/// `host:port`, with a port number and a non-empty host.
pub fn validate_entry(entry: &str) -> Result<(), String> {
    let (host, port) = entry
        .rsplit_once(':')
        .ok_or_else(|| format!("{entry:?} is not host:port"))?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("{entry:?} is not host:port"));
    }
    Ok(())
}

fn describe(pool: &Pool) -> wire::Backends {
    wire::Backends {
        entries: pool.discovery.entries(),
        backends: pool
            .members()
            .iter()
            .map(|m| wire::Backend {
                addr: m.label.clone(),
                healthy: m.is_healthy(),
                draining: m.is_draining(),
                in_flight: m.in_flight(),
            })
            .collect(),
    }
}

async fn list_backends(State(pool): State<Arc<Pool>>) -> Json<wire::Backends> {
    Json(describe(&pool))
}

async fn set_backends(
    State(pool): State<Arc<Pool>>,
    body: Result<Json<wire::SetBackends>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<wire::Backends>, ApiError> {
    let Json(req) = body?;
    for entry in &req.backends {
        validate_entry(entry).map_err(ApiError::bad_request)?;
    }
    tracing::info!(backends = ?req.backends, "backend list set through the admin port");
    pool.discovery.set_entries(req.backends);
    let added = pool.discover().await;
    pool.check(&added).await;
    Ok(Json(describe(&pool)))
}

/// Takes exactly the listed gateways (`ip:port`) out of rotation before they are stopped;
/// an address no member has is a 404, so a typo cannot pass for a drained gateway.
async fn set_draining(
    State(pool): State<Arc<Pool>>,
    body: Result<Json<wire::Drain>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<wire::Backends>, ApiError> {
    let Json(req) = body?;
    let mut addrs = std::collections::BTreeSet::new();
    for entry in &req.backends {
        let addr: std::net::SocketAddr = entry
            .parse()
            .map_err(|_| ApiError::bad_request(format!("{entry:?} is not an ip:port address")))?;
        addrs.insert(addr);
    }
    let unknown = pool.set_draining(&addrs);
    if !unknown.is_empty() {
        return Err(ApiError::not_found(format!(
            "no gateway at {}",
            unknown
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(Json(describe(&pool)))
}

/// A load balancer with every port bound, not yet serving: tests build it on port 0 and read
/// the ports.
pub struct LoadBalancer {
    listener: TcpListener,
    metrics: HttpServer,
    admin: HttpServer,
    proxy: Arc<proxy::Proxy>,
    pool: Arc<Pool>,
    config: Config,
}

/// Checks the settings and binds the three ports: a port in use is one clear error here, before
/// anything runs.
pub async fn build(config: Config) -> anyhow::Result<LoadBalancer> {
    config.validate()?;
    let listener = TcpListener::bind(&config.listen_addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e} (is another process using the port?)",
            config.listen_addr
        )
    })?;
    let instance = config.service.instance_id("load_balancer");
    let metrics = common::metrics::Metrics::new("load_balancer", &instance);
    let pool = Arc::new(Pool::new(
        config.backends.clone(),
        HealthPolicy {
            path: config.health_path.clone(),
            timeout: Duration::from_millis(config.health_timeout_ms),
            healthy_threshold: config.healthy_threshold.max(1),
            unhealthy_threshold: config.unhealthy_threshold.max(1),
        },
        PoolMetrics::new(&metrics),
    ));
    let proxy = Arc::new(proxy::Proxy::new(
        pool.clone(),
        proxy::Settings {
            max_tries: config.max_tries,
            connect_timeout: Duration::from_millis(config.upstream_connect_timeout_ms),
            read_timeout: Duration::from_millis(config.upstream_read_timeout_ms),
            client_timeout: Duration::from_millis(config.client_timeout_ms),
            client_keepalive: Duration::from_secs(config.client_keepalive_secs),
            keepalive_pool_size: config.keepalive_pool_size,
        },
        &metrics,
    ));

    let ready_pool = pool.clone();
    let ready: common::http::ReadyCheck = Arc::new(move || {
        let pool = ready_pool.clone();
        Box::pin(async move {
            let healthy = pool.members().iter().filter(|m| m.is_healthy()).count();
            if healthy > 0 {
                Ok(())
            } else {
                Err("no healthy backend".to_string())
            }
        })
    });
    let metrics_routes = Router::new()
        .route("/backends", get(list_backends))
        .with_state(pool.clone());
    let metrics_router = common::http::with_ops(
        metrics_routes,
        "load_balancer",
        &instance,
        &metrics,
        vec![("backends", ready)],
        serde_json::to_value(&config).unwrap_or(Value::Null),
    );
    // Only the lab drives it: every change carries the admin token, and a request must name
    // the port by address (a web page that rebinds its own domain to 127.0.0.1 cannot).
    let token = common::guard::Token(config.admin_token.as_deref().map(Into::into));
    let admin_router = Router::new()
        .route("/backends", get(list_backends).put(set_backends))
        .route("/drain", axum::routing::put(set_draining))
        .with_state(pool.clone())
        .fallback(|| async { common::ApiError::not_found("no such route") })
        .layer(axum::middleware::from_fn_with_state(
            token,
            common::guard::token_required,
        ))
        // By address, or by its name on the stack's network (the lab container's calls).
        .layer(axum::middleware::from_fn_with_state(
            common::guard::Names(&["load_balancer"]),
            common::guard::local_host_only,
        ));
    let grace = Duration::from_secs(1);
    let metrics_server = HttpServer::bind(&config.metrics_addr, metrics_router, grace).await?;
    let admin = HttpServer::bind(&config.admin_addr, admin_router, grace).await?;
    Ok(LoadBalancer {
        listener,
        metrics: metrics_server,
        admin,
        proxy,
        pool,
        config,
    })
}

impl LoadBalancer {
    /// Where clients connect.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn metrics_port(&self) -> u16 {
        self.metrics.port()
    }

    pub fn admin_port(&self) -> u16 {
        self.admin.port()
    }

    /// Serves until SIGTERM/SIGINT.
    pub async fn run(self) -> anyhow::Result<()> {
        self.run_until(common::shutdown::signal()).await
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets each connection finish the
    /// request it is on (idle ones close at once), and returns within SHUTDOWN_GRACE_SECS.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            metrics,
            admin,
            proxy,
            pool,
            config,
        } = self;
        let stop = common::shutdown::watch(shutdown);

        // The first discovery and health check before the first client: a load balancer
        // that is up has its gateways in rotation.
        let added = pool.discover().await;
        pool.check(&added).await;
        let discovery = {
            let (pool, every) = (
                pool.clone(),
                Duration::from_millis(config.discovery_interval_ms),
            );
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let added = pool.discover().await;
                    pool.check(&added).await;
                }
            })
        };
        let health = {
            let (pool, proxy, every) = (
                pool.clone(),
                proxy.clone(),
                Duration::from_millis(config.health_interval_ms),
            );
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    pool.check(&pool.members()).await;
                    proxy.sweep_idle();
                }
            })
        };
        let ops = tokio::spawn(futures::future::join(
            metrics.run_until(common::shutdown::fired(stop.clone())),
            admin.run_until(common::shutdown::fired(stop.clone())),
        ));

        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, backends = ?config.backends, "load balancer listening");
        }
        // Every connection task holds a sender; when the last one is gone, all have finished.
        let (alive, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
        let stopping = common::shutdown::fired(stop.clone());
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                _ = &mut stopping => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, client)) => {
                        let (proxy, stop, alive) = (proxy.clone(), stop.clone(), alive.clone());
                        tokio::spawn(async move {
                            proxy.serve_connection(tcp, client, stop).await;
                            drop(alive);
                        });
                    }
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
        drop(alive);
        let grace = config.service.shutdown_grace();
        if tokio::time::timeout(grace, all_done.recv()).await.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs_f64(),
                "grace period over, closing remaining connections"
            );
        }
        discovery.abort();
        health.abort();
        let _ = tokio::time::timeout(Duration::from_secs(2), ops).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::validate_entry;

    #[test]
    fn backend_entries_must_be_host_and_port() {
        for ok in ["gateway:8000", "127.0.0.1:1", "[::1]:8000"] {
            assert!(validate_entry(ok).is_ok(), "{ok}");
        }
        for bad in [
            "gateway",
            ":8000",
            "gateway:",
            "gateway:0",
            "gateway:http",
            "gateway:70000",
        ] {
            assert!(validate_entry(bad).is_err(), "{bad}");
        }
    }
}
