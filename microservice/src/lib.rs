//! The deliberately slow, Postgres-backed microservice behind the gateway's cache misses.
//!
//! Its slowness is real database time: each request holds one pooled connection for a full
//! scan of the seeded `items` table plus an optional `pg_sleep`, so its capacity is
//! `DB_POOL_SIZE / service time` per instance (Little's law), which the report predicts.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use common::config::{DbConfig, ServiceConfig};
use common::db::{pool_error, query_error};
use common::metrics::{histogram, Metrics, LATENCY_BUCKETS};
use common::{ApiError, Server};
use deadpool_postgres::Pool;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// Buckets the key hashes into; each holds `SEED_ROWS / BUCKETS` rows.
const BUCKETS: u64 = 1000;

#[derive(Debug, Clone, Parser, Serialize)]
#[command(
    name = "microservice",
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
        }
    }
}

#[derive(Clone)]
struct AppState {
    pool: Pool,
    instance: Arc<str>,
    db_delay_secs: f64,
    cpu_iterations: u64,
    query_latency: prometheus::Histogram,
}

pub async fn build(config: Config) -> anyhow::Result<Server> {
    let instance = config.service.instance_id("microservice");
    let pool = common::db::pool(&config.db)?;
    common::db::migrate(&pool, &config.db).await?;
    seed(&pool, config.seed_rows).await?;

    let metrics = Metrics::new("microservice", &instance);
    metrics.register(Box::new(common::db::PoolCollector::new(&pool)));
    let query_latency = histogram(
        "db_query_duration_seconds",
        "Time a request held its pooled connection (scan + delay)",
        LATENCY_BUCKETS,
    );
    metrics.register(Box::new(query_latency.clone()));

    let state = AppState {
        pool: pool.clone(),
        instance: instance.clone().into(),
        db_delay_secs: config.db_delay_ms as f64 / 1000.0,
        cpu_iterations: config.process_cpu_iterations,
        query_latency,
    };
    let routes = Router::new()
        .route("/data/{key}", get(data))
        .route("/process/{key}", get(process))
        .with_state(state);
    let router = common::http::with_ops(
        routes,
        "microservice",
        &instance,
        &metrics,
        vec![("postgres", common::db::ready_check(&pool))],
        serde_json::to_value(&config)?,
    );
    Server::bind(&config.listen_addr, router, config.service.shutdown_grace()).await
}

/// Fills `items` up to `rows` deterministically (the same ids, buckets and values on every
/// machine). Idempotent and safe for replicas starting together.
async fn seed(pool: &Pool, rows: i64) -> anyhow::Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&0x5ca1_ab01_i64])
        .await?;
    let have: i64 = tx
        .query_one("SELECT coalesce(max(id), 0) FROM items", &[])
        .await?
        .get(0);
    if have < rows {
        let started = Instant::now();
        tx.execute(
            "INSERT INTO items (id, bucket, name, value)
             SELECT g, ((g * 7919) % $3)::int, 'item-' || g, ((g * 104729) % 100000) / 100.0
             FROM generate_series($1::bigint, $2::bigint) AS g
             ON CONFLICT (id) DO NOTHING",
            &[&(have + 1), &rows, &(BUCKETS as i64)],
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
    tx.commit().await?;
    Ok(())
}

fn bucket_of(key: &str) -> i32 {
    // FNV-1a: stable across runs and machines, unlike std's randomised hasher.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    (hash % BUCKETS) as i32
}

#[derive(Serialize)]
struct Lookup {
    key: String,
    bucket: i32,
    rows: i64,
    total: f64,
    db_ms: f64,
}

/// The slow read: one pooled connection held for the optional delay and a full scan.
async fn lookup(state: &AppState, key: String) -> Result<Lookup, ApiError> {
    common::keys::validate(&key)?;
    let bucket = bucket_of(&key);
    let client = state.pool.get().await.map_err(pool_error)?;
    let started = Instant::now();
    if state.db_delay_secs > 0.0 {
        client
            .execute("SELECT pg_sleep($1)", &[&state.db_delay_secs])
            .await
            .map_err(query_error)?;
    }
    let row = client
        .query_one(
            // Rounded to cents in Postgres: a float8 sum would print as 50120.99999999993.
            "SELECT count(*), round(coalesce(sum(value), 0)::numeric, 2)::float8 FROM items WHERE bucket = $1",
            &[&bucket],
        )
        .await
        .map_err(query_error)?;
    let held = started.elapsed();
    state.query_latency.observe(held.as_secs_f64());
    Ok(Lookup {
        key,
        bucket,
        rows: row.get(0),
        total: row.get(1),
        db_ms: held.as_secs_f64() * 1000.0,
    })
}

async fn data(
    State(state): State<AppState>,
    key: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(key) = key?;
    let found = lookup(&state, key).await?;
    Ok(Json(
        json!({"route": "data", "served_by": &*state.instance, "result": found}),
    ))
}

async fn process(
    State(state): State<AppState>,
    key: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(key) = key?;
    let found = lookup(&state, key).await?;
    let iterations = state.cpu_iterations;
    let seed = found.bucket as u64;
    let started = Instant::now();
    let checksum = tokio::task::spawn_blocking(move || cpu_work(seed, iterations))
        .await
        .map_err(|e| ApiError::internal(format!("cpu work failed: {e}")))?;
    let cpu_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Json(json!({
        "route": "process", "served_by": &*state.instance, "result": found,
        "checksum": checksum, "cpu_ms": cpu_ms,
    })))
}

/// Deterministic CPU work (splitmix64 rounds) that the optimiser cannot remove.
fn cpu_work(seed: u64, iterations: u64) -> u64 {
    let mut x = seed;
    for _ in 0..iterations {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x = std::hint::black_box(z ^ (z >> 31));
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_in_range() {
        assert_eq!(bucket_of("hot"), bucket_of("hot"));
        assert!((0..BUCKETS as i32).contains(&bucket_of("anything")));
        assert_ne!(bucket_of("a"), bucket_of("b"));
    }

    #[test]
    fn cpu_work_is_deterministic() {
        assert_eq!(cpu_work(1, 1000), cpu_work(1, 1000));
        assert_ne!(cpu_work(1, 1000), cpu_work(2, 1000));
    }
}
