//! The queue worker: consumes long tasks from a durable Redis Stream through a consumer
//! group, does the (simulated) work, writes results to Postgres in batches with an idempotent
//! insert keyed by job id, and acknowledges only after the batch committed.
//!
//! The guarantee: at least once, results stored once. A job leaves the stream's pending list
//! only after its result row is committed. A worker killed at any point loses nothing: its
//! unacknowledged jobs are reclaimed by a live worker once they have been pending longer
//! than `VISIBILITY_TIMEOUT_MS`, and a replay of an already committed job inserts nothing
//! (`ON CONFLICT (id) DO NOTHING`). A job still running is not reclaimed, however long it
//! takes: its worker renews the lease of every job it holds, running or waiting for its
//! commit (every third of the timeout). A job delivered again after `MAX_ATTEMPTS` runs
//! without completing (a poison job: its worker dies each time) is dead-lettered: its result
//! row says `dead` (a later completed run replaces it), one copy goes to the `:dead` stream,
//! and it is acknowledged. A batch Postgres will not take is retried for half the timeout, then
//! released, never blocking the worker: its jobs come back after the timeout and count an
//! attempt.

mod engine;
mod metrics;

use clap::Parser;
use common::config::{DbConfig, RedisConfig, ServiceConfig};
use common::redis_conn::Redis;
use common::Server;
use serde::Serialize;
use std::future::Future;

#[derive(Debug, Clone, Parser, Serialize)]
#[command(
    name = "worker",
    version,
    about = "scalelab's queue worker for long tasks"
)]
pub struct Config {
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8002")]
    pub listen_addr: String,
    #[command(flatten)]
    #[serde(flatten)]
    pub service: ServiceConfig,
    #[command(flatten)]
    #[serde(flatten)]
    pub db: DbConfig,
    #[command(flatten)]
    #[serde(flatten)]
    pub redis: RedisConfig,
    /// Jobs processed at once by this worker.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 4)]
    pub worker_concurrency: usize,
    /// How long a job's simulated work takes.
    #[command(flatten)]
    #[serde(flatten)]
    pub work: common::tasks::TaskWork,
    /// Results written per transaction at most.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 20)]
    pub batch_size: usize,
    /// A partial batch is written after this long.
    #[arg(long, env = "FLUSH_INTERVAL_MS", default_value_t = 200)]
    pub flush_interval_ms: u64,
    /// A job pending (read, not acknowledged) longer than this is taken over by another worker.
    #[arg(long, env = "VISIBILITY_TIMEOUT_MS", default_value_t = 30_000)]
    pub visibility_timeout_ms: u64,
    /// Consumer group shared by all workers.
    #[arg(long, env = "CONSUMER_GROUP", default_value = "workers")]
    pub consumer_group: String,
    /// Runs of a job at most: one delivered again after that many runs without completing
    /// is dead-lettered instead of run again.
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
}

impl Config {
    /// Small, fast settings for tests: port 0, short jobs, small batches, a 1 s visibility
    /// timeout.
    pub fn for_tests(instance: &str, db: DbConfig, redis: RedisConfig) -> Self {
        Self {
            listen_addr: "127.0.0.1:0".into(),
            service: ServiceConfig::named(instance),
            db,
            redis,
            worker_concurrency: 4,
            work: common::tasks::TaskWork {
                task_duration_ms: 50,
                max_task_duration_ms: 5_000,
            },
            batch_size: 4,
            flush_interval_ms: 100,
            visibility_timeout_ms: 1_000,
            consumer_group: "workers".into(),
            max_attempts: 5,
        }
    }
}

/// A built worker: its HTTP side (health, readiness, metrics) and its consumer.
pub struct Worker {
    server: Server,
    engine: engine::Engine,
}

pub async fn build(config: Config) -> anyhow::Result<Worker> {
    if config.worker_concurrency == 0 || config.batch_size == 0 || config.max_attempts == 0 {
        anyhow::bail!("WORKER_CONCURRENCY, BATCH_SIZE and MAX_ATTEMPTS must be at least 1");
    }
    if config.visibility_timeout_ms < 300 {
        anyhow::bail!(
            "VISIBILITY_TIMEOUT_MS must be at least 300 (the lease is renewed every third of it)"
        );
    }
    let instance = config.service.instance_id("worker");
    let pool = common::db::pool(&config.db)?;
    common::db::migrate(&pool, &config.db).await?;
    let redis = Redis::new(&config.redis)?;
    let metrics = common::metrics::Metrics::new("worker", &instance);
    let worker_metrics = metrics::WorkerMetrics::new(&metrics);
    metrics.register(Box::new(common::db::PoolCollector::new(&pool)));

    let router = common::http::with_ops(
        axum::Router::new(),
        "worker",
        &instance,
        &metrics,
        vec![
            ("postgres", common::db::ready_check(&pool)),
            ("redis", redis.ready_check()),
        ],
        serde_json::to_value(&config)?,
    );
    let server = Server::bind(&config.listen_addr, router, config.service.shutdown_grace()).await?;
    let engine = engine::Engine::new(config, instance, pool, redis, worker_metrics)?;
    Ok(Worker { server, engine })
}

impl Worker {
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Runs until SIGTERM/SIGINT.
    pub async fn run(self) -> anyhow::Result<()> {
        self.run_until(common::shutdown::signal()).await
    }

    /// Consumes and serves until `shutdown`; then stops reading, lets jobs in progress finish
    /// (within the grace period), writes and acknowledges their results, and returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop_rx = common::shutdown::watch(shutdown);
        let server = tokio::spawn(
            self.server
                .run_until(common::shutdown::fired(stop_rx.clone())),
        );
        let consumed = self.engine.run(stop_rx).await;
        server.await??;
        consumed
    }
}
