//! scalelab's load balancer: a Pingora application. Pingora's HTTP proxy (`ProxyHttp`, in
//! `balancer.rs`) forwards each request to the gateway its `LoadBalancer` picks (round robin,
//! random or consistent hashing), with discovery and health checks as Pingora background
//! services (`gateways.rs`); the edge (`edge.rs`) checks each request head before Pingora reads
//! it; Prometheus metrics, /health, /ready and `GET /backends` are served on a port of their
//! own, the admin API on another (`ops.rs`).
//!
//! Like the other services: [`build`] checks the settings and binds the ports (port 0 in tests
//! for the metrics and admin ports; the proxy's port is bound by Pingora when it starts), and
//! [`LoadBalancer::run_until`] serves until its stop signal, then stops the way Pingora does.

pub mod balancer;
pub mod edge;
pub mod gateways;
mod ops;
mod server;

pub use server::{build, LoadBalancer};

use clap::Parser;
use common::config::ServiceConfig;
use serde::Serialize;
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
    /// Idle keep-alive connections kept to the gateways (Pingora's
    /// `upstream_keepalive_pool_size`).
    #[arg(long, env = "KEEPALIVE_POOL_SIZE", default_value_t = 512)]
    pub keepalive_pool_size: usize,
    /// How the next gateway is chosen: `round-robin`, `random`, or `consistent` (Ketama
    /// hashing on the `key` query parameter, else the path and query): all Pingora's.
    #[arg(long, env = "LB_ALGORITHM", value_enum, default_value_t = Algorithm::RoundRobin)]
    pub lb_algorithm: Algorithm,
}

/// The selection algorithms of `pingora-load-balancing` a student can switch between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    RoundRobin,
    Random,
    Consistent,
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
            lb_algorithm: Algorithm::RoundRobin,
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
        if self.max_tries == 0 || self.max_tries > balancer::TRIES_CAP {
            anyhow::bail!("MAX_TRIES must be between 1 and {}", balancer::TRIES_CAP);
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
