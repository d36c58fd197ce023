//! The API gateway: JWT login and guard, a Redis TTL cache in front of the slow microservice,
//! an optional per-instance concurrency limit, and the long-task queue's front end.

use records::names::MetricName;

mod auth;
pub use auth::ARGON2_DEFAULTS;
mod cache;
mod limit;
mod listing;
mod tasks;
mod upstream;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use common::config::{DbConfig, RedisConfig, ServiceConfig};
use common::metrics::Metrics;
use common::redis_conn::Redis;
use common::Server;
use serde::Serialize;
use std::sync::Arc;

#[derive(Debug, Clone, Parser, Serialize)]
#[command(name = "gateway", version, about = "scalelab's API gateway")]
pub struct Config {
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8000")]
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
    #[command(flatten)]
    #[serde(flatten)]
    pub auth: auth::AuthConfig,
    #[command(flatten)]
    #[serde(flatten)]
    pub cache: cache::CacheConfig,
    #[command(flatten)]
    #[serde(flatten)]
    pub limit: limit::LimitConfig,
    #[command(flatten)]
    #[serde(flatten)]
    pub listing: listing::ListingConfig,
    /// Threads of the gateway's runtime, and password checks at once by default (0 = one
    /// per CPU core): 1 is a single event loop, as one Node.js process.
    #[arg(long, env = "GATEWAY_THREADS", default_value_t = 0)]
    pub gateway_threads: usize,
    /// Where `POST /longtask` runs the task: queued for the worker (202 at once) or inline,
    /// inside the request (200 with the result once done).
    #[arg(long, env = "LONGTASK_MODE", value_enum, default_value = "queued")]
    pub longtask_mode: tasks::LongtaskMode,
    /// How long an inline task's simulated work takes (the worker's own, for queued ones).
    #[command(flatten)]
    #[serde(flatten)]
    pub work: common::tasks::TaskWork,
    /// How long a task's queued/running status is kept in Redis.
    #[arg(long, env = "TASK_STATUS_TTL_SECS", default_value_t = 86_400)]
    pub task_status_ttl_secs: u64,
    /// After SIGTERM, go on serving this long before refusing connections: the load
    /// balancer's time to take this gateway out of rotation when the orchestrator picks
    /// which gateway leaves (Swarm). 0 where the lab drains first (native, compose).
    #[arg(long, env = "SHUTDOWN_DELAY_MS", default_value_t = 0)]
    pub shutdown_delay_ms: u64,
}

/// The JWT secret of `Config::for_tests`, for tests that sign their own tokens.
pub const TEST_JWT_SECRET: &str = "a-test-secret-of-enough-length";

impl Config {
    /// Small, fast settings for tests: port 0, a cheap argon2, 3 lab users, cache on (30 s),
    /// no concurrency limit.
    pub fn for_tests(
        instance: &str,
        db: DbConfig,
        redis: RedisConfig,
        microservice_url: String,
    ) -> Self {
        Self {
            listen_addr: "127.0.0.1:0".into(),
            service: ServiceConfig::named(instance),
            db,
            redis,
            auth: AuthConfig {
                jwt_secret: Some(TEST_JWT_SECRET.into()),
                jwt_ttl_secs: 600,
                argon2_memory_kib: 1024,
                argon2_iterations: 1,
                argon2_parallelism: 1,
                login_concurrency: 0,
                lab: common::config::LabUsers {
                    lab_users: 3,
                    lab_password: "scalelab".into(),
                },
            },
            cache: CacheConfig {
                cache_enabled: true,
                cache_ttl_secs: 30,
                microservice_url,
                microservice_timeout_ms: 2000,
                microservice_connect_timeout_ms: 500,
                microservice_client: ClientMode::Shared,
            },
            limit: LimitConfig {
                max_in_flight: 0,
                max_queue: 100,
                queue_timeout_ms: 5000,
            },
            listing: ListingConfig {
                listing_cache: ListingCache::Local,
                listing_ttl_secs: 10,
            },
            gateway_threads: 0,
            longtask_mode: tasks::LongtaskMode::Queued,
            work: common::tasks::TaskWork {
                task_duration_ms: 50,
                max_task_duration_ms: 5_000,
            },
            task_status_ttl_secs: 600,
            shutdown_delay_ms: 0,
        }
    }

    /// The runtime's threads: `GATEWAY_THREADS`, or the CPU cores when 0.
    pub fn threads(&self) -> usize {
        match self.gateway_threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }
}

pub use auth::AuthConfig;
pub use cache::CacheConfig;
pub use limit::LimitConfig;
pub use listing::{ListingCache, ListingConfig};
pub use tasks::LongtaskMode;
pub use upstream::{parse_urls, ClientMode};

struct Inner {
    config: Config,
    pool: deadpool_postgres::Pool,
    redis: Arc<Redis>,
    keys: auth::Keys,
    login: auth::Login,
    upstream: Arc<upstream::Upstream>,
    local_listings: listing::LocalCache,
    metrics: GatewayMetrics,
    /// This gateway's instance name (`gateway-2`): who did an inline task.
    instance: String,
}

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
struct AppState(Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

#[derive(Clone)]
struct GatewayMetrics {
    cache: CacheCounters,
    logins: prometheus::IntCounterVec,
    tasks_enqueued: prometheus::IntCounter,
    /// Long tasks done inside the request (`LONGTASK_MODE=inline`).
    tasks_inline: prometheus::IntCounter,
    /// How old each `/listing` answer was: 0 from the source, up to the TTL from a cache.
    listing_age: prometheus::Histogram,
}

impl GatewayMetrics {
    fn new(metrics: &Metrics) -> Self {
        let cache = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                MetricName::CacheRequestsTotal.as_str(),
                "Cache lookups by route and result (hit, miss, error)",
            ),
            &["route", "result"],
        )
        .expect("valid metric");
        let logins = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                MetricName::LoginsTotal.as_str(),
                "Login attempts by outcome",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let tasks_enqueued =
            common::metrics::counter(MetricName::TasksEnqueuedTotal, "Long tasks queued");
        let tasks_inline = common::metrics::counter(
            MetricName::TasksInlineTotal,
            "Long tasks done inside the request (LONGTASK_MODE=inline)",
        );
        metrics.register(Box::new(tasks_inline.clone()));
        metrics.register(Box::new(cache.clone()));
        let cache = CacheCounters::new(&cache);
        metrics.register(Box::new(logins.clone()));
        metrics.register(Box::new(tasks_enqueued.clone()));
        let listing_age = common::metrics::histogram(
            MetricName::ListingAgeSeconds,
            "Age of each /listing answer (how stale the cache let it be)",
            &[0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0],
        );
        metrics.register(Box::new(listing_age.clone()));
        Self {
            cache,
            logins,
            tasks_enqueued,
            tasks_inline,
            listing_age,
        }
    }
}

/// What a cache lookup came to, as counted in `cache_requests_total{result}`.
#[derive(Clone, Copy)]
enum CacheResult {
    Hit,
    Miss,
    Error,
    Bypass,
}

/// `cache_requests_total` resolved once per route and result, so counting a request costs
/// an atomic add instead of a label hash and a lock.
#[derive(Clone)]
struct CacheCounters {
    data: [prometheus::IntCounter; 4],
    process: [prometheus::IntCounter; 4],
    listing: [prometheus::IntCounter; 4],
}

impl CacheCounters {
    fn new(vec: &prometheus::IntCounterVec) -> Self {
        let row = |route: &str| {
            ["hit", "miss", "error", "bypass"].map(|result| vec.with_label_values(&[route, result]))
        };
        Self {
            data: row("data"),
            process: row("process"),
            listing: row("listing"),
        }
    }

    fn get(&self, route: &str, result: CacheResult) -> &prometheus::IntCounter {
        let row = match route {
            "data" => &self.data,
            "listing" => &self.listing,
            _ => &self.process,
        };
        &row[result as usize]
    }
}

pub async fn build(config: Config) -> anyhow::Result<Server> {
    // Checked before anything else: without a secret there is nothing to sign tokens with.
    let keys = auth::Keys::from_config(&config.auth)?;
    let instance = config.service.instance_id("gateway");
    let pool = common::db::pool(&config.db)?;
    common::db::migrate(&pool, &config.db).await?;
    let login = auth::Login::new(&config.auth, config.threads())?;
    login.seed_lab_users(&pool).await?;
    let redis = Redis::new(&config.redis)?;
    redis.connect_in_background();
    let upstream = upstream::Upstream::new(&config.cache)?;
    upstream.discover();
    let instances = upstream.clone();

    let metrics = Metrics::new("gateway", &instance);
    let limiter = limit::Limiter::new(&config.limit, &metrics);
    let state = AppState(Arc::new(Inner {
        pool: pool.clone(),
        redis: redis.clone(),
        keys,
        login,
        upstream,
        local_listings: listing::LocalCache::default(),
        metrics: GatewayMetrics::new(&metrics),
        instance: instance.clone(),
        config: config.clone(),
    }));

    let routes = Router::new()
        .route("/login", post(auth::login))
        .route("/data", get(cache::data))
        .route("/process", get(cache::process))
        .route("/listing", get(listing::listing))
        .route("/longtask", post(tasks::enqueue))
        .route("/tasks/{id}", get(tasks::status))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            limiter,
            limit::enforce,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024));
    let served_by = HeaderValue::from_str(&instance)?;
    let router = common::http::with_live_config(
        routes,
        "gateway",
        &instance,
        &metrics,
        vec![
            ("postgres", common::db::ready_check(&pool)),
            ("redis", redis.ready_check()),
        ],
        serde_json::to_value(&config)?,
        // The microservices MICROSERVICE_URL resolves to now (several when it names a
        // scaled service): the report's count of them.
        Arc::new(move |config: &mut serde_json::Value| {
            config["microservice_instances"] = serde_json::json!(instances.instances());
        }),
    )
    .layer(axum::middleware::map_response(
        move |mut response: axum::response::Response| {
            let served_by = served_by.clone();
            async move {
                response.headers_mut().insert("x-served-by", served_by);
                response
            }
        },
    ));
    Ok(
        Server::bind(&config.listen_addr, router, config.service.shutdown_grace())
            .await?
            .counting(&metrics)
            .leaving_after(std::time::Duration::from_millis(config.shutdown_delay_ms)),
    )
}

/// Only for handlers that need the state type in signatures.
type St = State<AppState>;
