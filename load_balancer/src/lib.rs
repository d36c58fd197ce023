//! scalelab's load balancer: Pingora, round robin over the gateways, with discovery, active and
//! passive health checks, bounded safe retries, and Prometheus metrics on a separate port.

pub mod pool;
pub mod proxy;

use async_trait::async_trait;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use common::config::ServiceConfig;
use common::wire;
use common::{ApiError, Server as HttpServer};
use pingora::connectors::ConnectorOptions;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use pool::{HealthPolicy, Pool, PoolMetrics};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Parser, Serialize)]
#[command(
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
    /// Admin API (PUT /backends). Keep it on loopback.
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9101")]
    pub admin_addr: String,
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
    #[arg(long, env = "DISCOVERY_INTERVAL_MS", default_value_t = 2000)]
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
    /// Proxy worker threads (0 = one per core).
    #[arg(long, env = "THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Let idle proxy threads steal work from busy ones (Tokio multi-thread runtime) instead
    /// of one single-threaded runtime per thread.
    #[arg(long, env = "WORK_STEALING", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub work_stealing: bool,
    /// Idle keep-alive connections kept to the backends.
    #[arg(long, env = "KEEPALIVE_POOL_SIZE", default_value_t = 512)]
    pub keepalive_pool_size: usize,
}

impl Config {
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

/// Discovery, health checks, and the metrics and admin ports, in Pingora's background runtime.
struct Ops {
    pool: Arc<Pool>,
    config: Config,
    metrics: common::metrics::Metrics,
    instance: String,
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

#[async_trait]
impl BackgroundService for Ops {
    async fn start(&self, shutdown: ShutdownWatch) {
        let pool = self.pool.clone();
        let added = pool.discover().await;
        pool.check(&added).await;

        let discovery = {
            let (pool, every) = (
                pool.clone(),
                Duration::from_millis(self.config.discovery_interval_ms),
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
            let (pool, every) = (
                pool.clone(),
                Duration::from_millis(self.config.health_interval_ms),
            );
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    pool.check(&pool.members()).await;
                }
            })
        };

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
            &self.instance,
            &self.metrics,
            vec![("backends", ready)],
            serde_json::to_value(&self.config).unwrap_or(Value::Null),
        );
        let admin_router = Router::new()
            .route("/backends", get(list_backends).put(set_backends))
            .route("/drain", axum::routing::put(set_draining))
            .with_state(pool.clone());
        let grace = Duration::from_secs(1);
        let servers = async {
            let metrics = HttpServer::bind(&self.config.metrics_addr, metrics_router, grace).await;
            let admin = HttpServer::bind(&self.config.admin_addr, admin_router, grace).await;
            match (metrics, admin) {
                (Ok(metrics), Ok(admin)) => {
                    let stop = |mut s: ShutdownWatch| async move {
                        let _ = s.wait_for(|down| *down).await;
                    };
                    let _ = tokio::join!(
                        metrics.run_until(stop(shutdown.clone())),
                        admin.run_until(stop(shutdown.clone()))
                    );
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %format!("{e:#}"), "load balancer ops port failed");
                    eprintln!("load_balancer: {e:#}");
                    std::process::exit(1);
                }
            }
        };
        servers.await;
        discovery.abort();
        health.abort();
    }
}

/// Builds the Pingora server and runs it until SIGTERM (graceful, bounded by
/// SHUTDOWN_GRACE_SECS) or SIGINT (at once). Does not return.
pub fn run(config: Config) -> anyhow::Result<()> {
    config.validate()?;
    // Fail with one clear line when a port is taken, before Pingora's own start-up.
    for addr in [
        &config.listen_addr,
        &config.metrics_addr,
        &config.admin_addr,
    ] {
        std::net::TcpListener::bind(addr.as_str()).map_err(|e| {
            anyhow::anyhow!("cannot listen on {addr}: {e} (is another process using the port?)")
        })?;
    }
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

    let threads = match config.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let conf = ServerConf {
        threads,
        work_stealing: config.work_stealing,
        upstream_keepalive_pool_size: config.keepalive_pool_size,
        // Pingora's own default grace is minutes; a lab must stop in seconds.
        grace_period_seconds: Some(config.service.shutdown_grace_secs.saturating_sub(1).max(1)),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Option::<Opt>::None, conf);
    server.bootstrap();

    let proxy = proxy::Proxy::new(
        pool.clone(),
        proxy::Settings {
            max_tries: config.max_tries,
            connect_timeout: Duration::from_millis(config.upstream_connect_timeout_ms),
            read_timeout: Duration::from_millis(config.upstream_read_timeout_ms),
        },
        ConnectorOptions::from_server_conf(&server.configuration),
    );
    let mut service = Service::new("load balancer".to_string(), proxy);
    service.add_tcp(&config.listen_addr);
    tracing::info!(listen = %config.listen_addr, metrics = %config.metrics_addr, admin = %config.admin_addr,
        backends = ?config.backends, threads, "load balancer starting");
    let ops = background_service(
        "ops",
        Ops {
            pool,
            config: config.clone(),
            metrics,
            instance,
        },
    );
    server.add_service(service);
    server.add_service(ops);
    server.run_forever()
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
