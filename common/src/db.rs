//! Postgres: a deadpool pool built from `DbConfig`, the lab's embedded migrations, and the
//! mapping of pool and connection failures to JSON 503s.

use records::names::MetricName;

use crate::config::DbConfig;
use crate::http::ReadyCheck;
use crate::ApiError;
use anyhow::Context;
use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, Timeouts,
};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::IntGauge;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

/// Ordered, append-only. Applied once per database under an advisory lock, so several
/// replicas starting together do not race.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (
        2,
        "dead_letter",
        include_str!("../migrations/0002_dead_letter.sql"),
    ),
];
const MIGRATION_LOCK: i64 = 0x5ca1_ab00;

/// `postgres://postgres:<password>@<host:port>/<database>`, the password percent-encoded: any
/// password a user sets in `.env` (`@`, `/`, `:` included) makes a URL that parses back to it.
pub fn local_url(password: &str, host_port: &str, database: &str) -> String {
    let mut encoded = String::new();
    for b in password.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("postgres://postgres:{encoded}@{host_port}/{database}")
}

/// Builds the pool. No connection is opened here: they are made on demand, so a service can
/// start (and report not-ready) while Postgres is down, and recovers when it returns.
pub fn pool(config: &DbConfig) -> anyhow::Result<Pool> {
    let mut pg: tokio_postgres::Config = config
        .database_url
        .parse()
        .context("DATABASE_URL is not a valid postgres:// URL")?;
    pg.connect_timeout(Duration::from_millis(config.db_connect_timeout_ms));
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let connect = Duration::from_millis(config.db_connect_timeout_ms);
    Pool::builder(manager)
        .max_size(config.db_pool_size.max(1))
        .timeouts(Timeouts {
            wait: Some(Duration::from_millis(config.db_pool_timeout_ms)),
            create: Some(connect),
            recycle: Some(connect),
        })
        .runtime(Runtime::Tokio1)
        .build()
        .context("building the Postgres pool")
}

/// `host:port/db` of a URL, for messages (never the password).
pub fn describe(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(c) => {
            let host = c
                .get_hosts()
                .first()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(s) => s.clone(),
                    #[cfg(unix)]
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_default();
            let port = c.get_ports().first().copied().unwrap_or(5432);
            format!("{host}:{port}/{}", c.get_dbname().unwrap_or(""))
        }
        Err(_) => "<invalid DATABASE_URL>".into(),
    }
}

/// Applies pending migrations, retrying while Postgres is not yet reachable (containers start
/// in any order), and fails with a clear message after `db_startup_timeout_secs`.
pub async fn migrate(pool: &Pool, config: &DbConfig) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(config.db_startup_timeout_secs);
    loop {
        match try_migrate(pool).await {
            Ok(applied) => {
                if applied > 0 {
                    tracing::info!(applied, "database migrations applied");
                }
                return Ok(());
            }
            Err(err) if Instant::now() < deadline => {
                tracing::warn!(error = %format!("{err:#}"), "Postgres not ready, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => {
                return Err(err.context(format!(
                    "Postgres at {} did not accept the migrations within {} s",
                    describe(&config.database_url),
                    config.db_startup_timeout_secs
                )))
            }
        }
    }
}

async fn try_migrate(pool: &Pool) -> anyhow::Result<usize> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // Quiet: "relation already exists, skipping" is every start but the first, not news.
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         CREATE TABLE IF NOT EXISTS scalelab_migrations (
             version integer PRIMARY KEY, name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let mut applied = 0;
    for (version, name, sql) in MIGRATIONS {
        let done = tx
            .query_opt(
                "SELECT 1 FROM scalelab_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some();
        if !done {
            tx.batch_execute(sql)
                .await
                .with_context(|| format!("migration {version} ({name})"))?;
            tx.execute(
                "INSERT INTO scalelab_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await?;
            applied += 1;
        }
    }
    tx.commit().await?;
    Ok(applied)
}

/// A pool that cannot hand out a connection in time is overload (or Postgres is down):
/// either way the client gets a 503 it may retry, never a 500.
pub fn pool_error(err: PoolError) -> ApiError {
    match err {
        PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
            ApiError::unavailable("database pool exhausted: no free connection in time")
        }
        other => ApiError::unavailable(format!("database unavailable: {other}")),
    }
}

/// A query that failed because the connection or server went away is a 503; a real SQL
/// error is a bug and a 500.
pub fn query_error(err: tokio_postgres::Error) -> ApiError {
    let server_gone = err.is_closed()
        || err.as_db_error().is_none()
        || err
            .code()
            .map(|c| c.code().starts_with("57") || c.code().starts_with("08"))
            .unwrap_or(false);
    if server_gone {
        ApiError::unavailable(format!("database unavailable: {err}"))
    } else {
        ApiError::internal(format!("database error: {err}"))
    }
}

pub fn ready_check(pool: &Pool) -> ReadyCheck {
    let pool = pool.clone();
    Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move {
            let client = pool.get().await.map_err(|e| format!("postgres: {e}"))?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| format!("postgres: {e}"))?;
            Ok(())
        })
    })
}

/// Pool gauges read at scrape time: size, available (idle) and waiting requests.
pub struct PoolCollector {
    pool: Pool,
    size: IntGauge,
    max: IntGauge,
    available: IntGauge,
    waiting: IntGauge,
}

impl PoolCollector {
    pub fn new(pool: &Pool) -> Self {
        Self {
            pool: pool.clone(),
            size: crate::metrics::gauge(
                MetricName::DbPoolConnections,
                "Open connections in the pool",
            ),
            max: crate::metrics::gauge(MetricName::DbPoolMaxSize, "Configured pool size"),
            available: crate::metrics::gauge(
                MetricName::DbPoolAvailable,
                "Idle connections ready to hand out",
            ),
            waiting: crate::metrics::gauge(
                MetricName::DbPoolWaiting,
                "Requests waiting for a pooled connection",
            ),
        }
    }
}

impl Collector for PoolCollector {
    fn desc(&self) -> Vec<&Desc> {
        [&self.size, &self.max, &self.available, &self.waiting]
            .into_iter()
            .flat_map(|g| g.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let status = self.pool.status();
        self.size.set(status.size as i64);
        self.max.set(status.max_size as i64);
        self.available.set(status.available as i64);
        self.waiting.set(status.waiting as i64);
        [&self.size, &self.max, &self.available, &self.waiting]
            .into_iter()
            .flat_map(|g| g.collect())
            .collect()
    }
}

/// Whether Postgres can store this JSON as `jsonb`: it refuses the NUL character (`\u0000`)
/// anywhere in a string or a key, and a whole batch of rows with it.
pub fn jsonb_storable(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => !s.contains('\0'),
        Value::Array(items) => items.iter().all(jsonb_storable),
        Value::Object(map) => map
            .iter()
            .all(|(k, v)| !k.contains('\0') && jsonb_storable(v)),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn any_password_parses_back_from_the_local_url() {
        for password in ["postgres", "p@ss/w:rd?#%", "späť ' \" \\", "0f3a"] {
            let url = super::local_url(password, "127.0.0.1:5432", "scalelab");
            let config: tokio_postgres::Config = url.parse().unwrap();
            assert_eq!(config.get_password(), Some(password.as_bytes()), "{url}");
            assert_eq!(config.get_dbname(), Some("scalelab"));
        }
    }
}
