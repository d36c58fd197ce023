//! Settings every service reads from the environment (clap `env`), with documented defaults.
//! A service's own config struct flattens these, so a name means the same thing everywhere.

use clap::Args;
use serde::Serialize;
use std::time::Duration;

/// Identity, logging and shutdown: the same for every service.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ServiceConfig {
    /// Name reported in `X-Served-By`, logs and metric labels. Defaults to the host name,
    /// which differs per container replica.
    #[arg(long, env = "INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// `pretty` for people, `json` for machines.
    #[arg(long, env = "LOG_FORMAT", default_value = "pretty", value_parser = ["pretty", "json"])]
    pub log_format: String,
    /// Longest time in-flight requests get to finish after SIGTERM/SIGINT.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 5)]
    pub shutdown_grace_secs: u64,
}

impl ServiceConfig {
    /// A named instance with default logging and a short grace period (tests, experiments).
    pub fn named(instance: &str) -> Self {
        Self {
            instance_id: Some(instance.to_string()),
            log_format: "pretty".into(),
            shutdown_grace_secs: 2,
        }
    }

    pub fn instance_id(&self, service: &str) -> String {
        if let Some(id) = self.instance_id.as_deref().filter(|s| !s.is_empty()) {
            return id.to_string();
        }
        let host = hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        if host.is_empty() {
            format!(
                "{service}-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            )
        } else {
            format!("{service}@{host}")
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// Postgres connection pool.
#[derive(Debug, Clone, Args, Serialize)]
pub struct DbConfig {
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/scalelab"
    )]
    #[serde(skip)]
    pub database_url: String,
    /// Connections in this instance's pool: its share of database concurrency.
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 10)]
    pub db_pool_size: usize,
    /// How long a request waits for a free pooled connection before it gets a 503.
    #[arg(long, env = "DB_POOL_TIMEOUT_MS", default_value_t = 1000)]
    pub db_pool_timeout_ms: u64,
    /// Connect timeout for a new connection; bounds how long requests wait while Postgres is down.
    #[arg(long, env = "DB_CONNECT_TIMEOUT_MS", default_value_t = 1000)]
    pub db_connect_timeout_ms: u64,
    /// How long a service waits at start for Postgres to accept its migrations.
    #[arg(long, env = "DB_STARTUP_TIMEOUT_SECS", default_value_t = 30)]
    pub db_startup_timeout_secs: u64,
}

/// Redis connection, shared by the cache, the job queue and the worker.
#[derive(Debug, Clone, Args, Serialize)]
pub struct RedisConfig {
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    #[serde(skip)]
    pub redis_url: String,
    /// Prefix of every key this lab writes (cache entries, task status, the job stream).
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "scalelab:")]
    pub redis_key_prefix: String,
    /// Per-command timeout: a slow or absent Redis costs at most this much per request.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 200)]
    pub redis_timeout_ms: u64,
}

impl RedisConfig {
    pub fn stream_key(&self) -> String {
        format!("{}tasks", self.redis_key_prefix)
    }
    pub fn task_status_key(&self, id: &str) -> String {
        format!("{}task:{id}", self.redis_key_prefix)
    }
}

/// The lab's users (one definition with the load plan's, in `records`).
pub use records::plan::LabUsers;
