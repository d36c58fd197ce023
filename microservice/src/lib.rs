//! The deliberately slow, Postgres-backed microservice behind the gateway's cache misses.
//!
//! Its slowness is real database time: each request holds one pooled connection for a full
//! scan of the seeded `items` table plus an optional `pg_sleep`, so its capacity is
//! `DB_POOL_SIZE / service time` per instance (Little's law), which the report predicts.

use records::names::MetricName;

mod connections;
mod routes;

use axum::routing::get;
use axum::Router;
use clap::Parser;
use common::config::{DbConfig, ServiceConfig};
use common::metrics::{histogram, Metrics, LATENCY_BUCKETS};
use common::Server;
use connections::{ConnectionMetrics, Connections};
use deadpool_postgres::Pool;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

pub use connections::PoolMode;

/// The index `ITEMS_INDEX` creates on the filtered column.
pub const INDEX: &str = "items_bucket_idx";

#[derive(Debug, Clone, Parser, Serialize)]
#[command(
    name = "microservice",
    version,
    about = "scalelab's slow Postgres-backed microservice"
)]
pub struct Config {
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8001")]
    pub listen_addr: String,
    #[command(flatten)]
    #[serde(flatten)]
    pub service: ServiceConfig,
    #[command(flatten)]
    #[serde(flatten)]
    pub db: DbConfig,
    /// Rows seeded into `items`; every request scans them all (unindexed filter).
    #[arg(long, env = "SEED_ROWS", default_value_t = 100_000)]
    pub seed_rows: i64,
    /// Extra time each request holds its connection in `pg_sleep` (0 = none).
    #[arg(long, env = "DB_DELAY_MS", default_value_t = 50)]
    pub db_delay_ms: u64,
    /// Rounds of hashing `/process` does after its query (about 1 ns each).
    #[arg(long, env = "PROCESS_CPU_ITERATIONS", default_value_t = 2_000_000)]
    pub process_cpu_iterations: u64,
    /// An index on the filtered column (`items.bucket`): created at start when true, dropped
    /// when false, so the same query is an index scan or a full scan.
    #[arg(long, env = "ITEMS_INDEX", default_value = "false",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub items_index: bool,
    /// `pooled`: requests borrow one of DB_POOL_SIZE open connections; `per-request`: each
    /// request opens its own connection and closes it.
    #[arg(long, env = "DB_POOL_MODE", value_enum, default_value = "pooled")]
    pub db_pool_mode: PoolMode,
    /// How long `/listing` takes (an object-store listing stand-in).
    #[arg(long, env = "LISTING_DELAY_MS", default_value_t = 300)]
    pub listing_delay_ms: u64,
}

impl Config {
    /// Small, fast settings for tests: port 0, 2,000 seeded rows, no delay, little CPU work.
    pub fn for_tests(instance: &str, db: DbConfig) -> Self {
        Self {
            listen_addr: "127.0.0.1:0".into(),
            service: ServiceConfig::named(instance),
            db,
            seed_rows: 2_000,
            db_delay_ms: 0,
            process_cpu_iterations: 10_000,
            items_index: false,
            db_pool_mode: PoolMode::Pooled,
            listing_delay_ms: 50,
        }
    }
}

#[derive(Clone)]
struct AppState {
    connections: Connections,
    instance: Arc<str>,
    /// `DB_DELAY_MS` at start, changed by `PUT /delay`.
    db_delay_ms: Arc<std::sync::atomic::AtomicU64>,
    cpu_iterations: u64,
    query_latency: prometheus::Histogram,
    listing_delay_ms: u64,
    listings: prometheus::IntCounter,
}

pub async fn build(config: Config) -> anyhow::Result<Server> {
    let instance = config.service.instance_id("microservice");
    let pool = common::db::pool(&config.db)?;
    common::db::migrate(&pool, &config.db).await?;
    seed(&pool, config.seed_rows, config.items_index).await?;

    let metrics = Metrics::new("microservice", &instance);
    metrics.register(Box::new(common::db::PoolCollector::new(&pool)));
    let query_latency = histogram(
        MetricName::DbQueryDurationSeconds,
        "Time a request held its pooled connection (scan + delay)",
        LATENCY_BUCKETS,
    );
    metrics.register(Box::new(query_latency.clone()));
    let listings = common::metrics::counter(MetricName::ListingsTotal, "Slow listings produced");
    metrics.register(Box::new(listings.clone()));
    let connections = Connections::new(
        config.db_pool_mode,
        &pool,
        &config.db,
        ConnectionMetrics::new(&metrics),
    )?;

    let state = AppState {
        connections,
        instance: instance.clone().into(),
        db_delay_ms: Arc::new(config.db_delay_ms.into()),
        cpu_iterations: config.process_cpu_iterations,
        query_latency,
        listing_delay_ms: config.listing_delay_ms,
        listings,
    };
    let routes = Router::new()
        .route("/data/{key}", get(routes::data))
        .route("/process/{key}", get(routes::process))
        .route("/explain/{key}", get(routes::explain))
        .route("/listing/{prefix}", get(routes::listing))
        .route("/delay", axum::routing::put(routes::set_delay))
        .with_state(state);
    let router = common::http::with_ops(
        routes,
        "microservice",
        &instance,
        &metrics,
        vec![("postgres", common::db::ready_check(&pool))],
        serde_json::to_value(&config)?,
    );
    Ok(
        Server::bind(&config.listen_addr, router, config.service.shutdown_grace())
            .await?
            .counting(&metrics),
    )
}

/// Makes `items` exactly `rows` rows, deterministically (the same ids, buckets and values on every
/// machine), and creates or drops the index on `bucket`. Idempotent and safe for replicas
/// starting together.
async fn seed(pool: &Pool, rows: i64, index: bool) -> anyhow::Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&0x5ca1_ab01_i64])
        .await?;
    let mut have: i64 = tx
        .query_one("SELECT coalesce(max(id), 0) FROM items", &[])
        .await?
        .get(0);
    if have > rows {
        // Exactly SEED_ROWS: a table left bigger by an earlier run (the index experiment
        // seeds a million rows) would make every later scan slower than its settings say.
        tx.batch_execute("TRUNCATE items").await?;
        tracing::info!(had = have, rows, "items reseeded to SEED_ROWS");
        have = 0;
    }
    if have < rows {
        let started = Instant::now();
        tx.execute(
            "INSERT INTO items (id, bucket, name, value)
             SELECT g, ((g * 7919) % $3)::int, 'item-' || g, ((g * 104729) % 100000) / 100.0
             FROM generate_series($1::bigint, $2::bigint) AS g
             ON CONFLICT (id) DO NOTHING",
            &[&(have + 1), &rows, &(routes::BUCKETS as i64)],
        )
        .await?;
        tx.batch_execute("ANALYZE items").await?;
        tracing::info!(
            rows,
            added = rows - have,
            ms = started.elapsed().as_millis() as u64,
            "items seeded"
        );
    }
    let present = tx
        .query_opt(
            "SELECT 1 FROM pg_indexes WHERE tablename = 'items' AND indexname = $1",
            &[&INDEX],
        )
        .await?
        .is_some();
    if index && !present {
        let started = Instant::now();
        tx.batch_execute(&format!(
            "CREATE INDEX {INDEX} ON items (bucket); ANALYZE items"
        ))
        .await?;
        let ms = started.elapsed().as_millis() as u64;
        tracing::info!(index = INDEX, ms, "index created (ITEMS_INDEX=true)");
    } else if !index && present {
        tx.batch_execute(&format!("DROP INDEX {INDEX}")).await?;
        tracing::info!(index = INDEX, "index dropped (ITEMS_INDEX=false)");
    }
    tx.commit().await?;
    Ok(())
}
