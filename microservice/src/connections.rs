//! Where a request's Postgres connection comes from (`DB_POOL_MODE`): the pool, or a new
//! connection opened for the request and closed after it, as code without a pool does. The
//! second pays a TCP handshake, authentication and a new backend process on every request,
//! and opens as many connections as there are requests at once, until Postgres refuses.

use records::names::MetricName;

use common::ApiError;
use deadpool_postgres::Pool;
use prometheus::{Histogram, IntCounter, IntGauge};
use std::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolMode {
    /// Connections are kept open and lent to one request at a time.
    Pooled,
    /// Each request opens its own connection and closes it.
    PerRequest,
}

/// The counters that show the difference: opened connections, their connect time, and how
/// many are open now.
#[derive(Clone)]
pub struct ConnectionMetrics {
    pub opened: IntCounter,
    pub connect_seconds: Histogram,
    pub open: IntGauge,
}

impl ConnectionMetrics {
    pub fn new(metrics: &common::metrics::Metrics) -> Self {
        let m = Self {
            opened: common::metrics::counter(
                MetricName::DbConnectionsOpenedTotal,
                "Postgres connections opened for a single request (DB_POOL_MODE=per-request)",
            ),
            connect_seconds: common::metrics::histogram(
                MetricName::DbConnectDurationSeconds,
                "Time to open one Postgres connection (TCP, authentication, backend start)",
                common::metrics::LATENCY_BUCKETS,
            ),
            open: common::metrics::gauge(
                MetricName::DbRequestConnectionsOpen,
                "Per-request Postgres connections open now",
            ),
        };
        metrics.register(Box::new(m.opened.clone()));
        metrics.register(Box::new(m.connect_seconds.clone()));
        metrics.register(Box::new(m.open.clone()));
        m
    }
}

#[derive(Clone)]
pub enum Connections {
    Pooled(Pool),
    PerRequest {
        config: Box<tokio_postgres::Config>,
        metrics: ConnectionMetrics,
    },
}

/// A connection for one request; closed on drop when it was opened for it.
pub enum Conn {
    Pooled(deadpool_postgres::Object),
    Own(Client),
}

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        match self {
            Conn::Pooled(object) => object,
            Conn::Own(client) => client,
        }
    }
}

impl Connections {
    pub fn new(
        mode: PoolMode,
        pool: &Pool,
        db: &common::config::DbConfig,
        metrics: ConnectionMetrics,
    ) -> anyhow::Result<Self> {
        Ok(match mode {
            PoolMode::Pooled => Connections::Pooled(pool.clone()),
            PoolMode::PerRequest => {
                let mut config: tokio_postgres::Config = db.database_url.parse()?;
                config.connect_timeout(std::time::Duration::from_millis(db.db_connect_timeout_ms));
                Connections::PerRequest {
                    config: Box::new(config),
                    metrics,
                }
            }
        })
    }

    pub async fn get(&self) -> Result<Conn, ApiError> {
        match self {
            Connections::Pooled(pool) => pool
                .get()
                .await
                .map(Conn::Pooled)
                .map_err(common::db::pool_error),
            Connections::PerRequest { config, metrics } => {
                let started = Instant::now();
                let (client, connection) = config.connect(NoTls).await.map_err(connect_error)?;
                metrics
                    .connect_seconds
                    .observe(started.elapsed().as_secs_f64());
                metrics.opened.inc();
                metrics.open.inc();
                let open = metrics.open.clone();
                tokio::spawn(async move {
                    let _ = connection.await;
                    open.dec();
                });
                Ok(Conn::Own(client))
            }
        }
    }
}

/// A refused or failed connect is a 503 the client may retry; Postgres's own limit is named.
fn connect_error(err: tokio_postgres::Error) -> ApiError {
    if err.code() == Some(&SqlState::TOO_MANY_CONNECTIONS) {
        ApiError::unavailable(format!(
            "Postgres refused a new connection: too many clients already ({})",
            err.as_db_error()
                .map(|e| e.message())
                .unwrap_or("max_connections")
        ))
    } else {
        ApiError::unavailable(format!("cannot connect to Postgres: {err}"))
    }
}
