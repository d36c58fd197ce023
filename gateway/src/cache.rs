//! `/data` and `/process`: cache-aside in Redis with a TTL, falling back to the microservice.
//! Redis is an accelerator, not a dependency: when it fails the request is served from the
//! microservice and counted as a cache error, never answered with a 5xx because of the cache.

use crate::auth::User;
use crate::{CacheResult, St};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use clap::Args;
use common::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Clone, Args, Serialize)]
pub struct CacheConfig {
    /// Cache-aside on or off (`false` sends every request to the microservice).
    #[arg(long, env = "CACHE_ENABLED", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub cache_enabled: bool,
    /// Seconds a cached answer lives.
    #[arg(long, env = "CACHE_TTL_SECS", default_value_t = 30)]
    pub cache_ttl_secs: u64,
    /// Base URL of the microservice that answers cache misses.
    #[arg(
        long,
        env = "MICROSERVICE_URL",
        default_value = "http://127.0.0.1:8001"
    )]
    pub microservice_url: String,
    /// Whole-request timeout for the microservice; past it the client gets a 504.
    #[arg(long, env = "MICROSERVICE_TIMEOUT_MS", default_value_t = 5000)]
    pub microservice_timeout_ms: u64,
    #[arg(long, env = "MICROSERVICE_CONNECT_TIMEOUT_MS", default_value_t = 500)]
    pub microservice_connect_timeout_ms: u64,
}

/// Pooled keep-alive HTTP client to the microservice.
pub struct Upstream {
    client: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl Upstream {
    pub fn new(config: &CacheConfig) -> anyhow::Result<Self> {
        let base = config.microservice_url.trim_end_matches('/').to_string();
        reqwest::Url::parse(&base)
            .map_err(|e| anyhow::anyhow!("MICROSERVICE_URL {base:?} is not a URL: {e}"))?;
        let timeout = Duration::from_millis(config.microservice_timeout_ms);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_millis(
                config.microservice_connect_timeout_ms,
            ))
            .pool_max_idle_per_host(512)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            client,
            base,
            timeout,
        })
    }

    async fn fetch(&self, route: &str, key: &str) -> Result<Value, ApiError> {
        let url = format!("{}/{route}/{key}", self.base);
        let timed_out = || {
            ApiError::gateway_timeout(format!(
                "microservice did not answer within {} ms",
                self.timeout.as_millis()
            ))
        };
        let response = self.client.get(&url).send().await.map_err(|e| {
            if e.is_timeout() {
                timed_out()
            } else if e.is_connect() {
                ApiError::bad_gateway(format!("microservice unreachable at {}", self.base))
            } else {
                ApiError::bad_gateway(format!("microservice request failed: {e}"))
            }
        })?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| {
            if e.is_timeout() {
                timed_out()
            } else {
                ApiError::bad_gateway(format!("microservice sent an unreadable body ({status})"))
            }
        })?;
        if status.is_success() {
            return Ok(body);
        }
        let reason = body["error"].as_str().unwrap_or("no reason given");
        if status.as_u16() == 503 {
            // Overload downstream stays an overload signal (retryable), not a broken gateway.
            return Err(ApiError::unavailable(format!(
                "microservice unavailable: {reason}"
            )));
        }
        Err(ApiError::bad_gateway(format!(
            "microservice answered {}: {reason}",
            status.as_u16()
        )))
    }
}

#[derive(Deserialize)]
pub struct KeyQuery {
    key: Option<String>,
}

pub async fn data(
    state: St,
    _user: User,
    query: Result<Query<KeyQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    cache_aside(state, "data", query).await
}

pub async fn process(
    state: St,
    _user: User,
    query: Result<Query<KeyQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    cache_aside(state, "process", query).await
}

async fn cache_aside(
    State(state): St,
    route: &'static str,
    query: Result<Query<KeyQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(KeyQuery { key }) = query?;
    let key = key.ok_or_else(|| ApiError::bad_request("query parameter `key` is required"))?;
    common::keys::validate(&key)?;
    let config = &state.config.cache;
    let counted = |result: CacheResult| state.metrics.cache.get(route, result).inc();
    if !config.cache_enabled {
        counted(CacheResult::Bypass);
        return Ok(respond(false, state.upstream.fetch(route, &key).await?));
    }

    let cache_key = format!("{}cache:{route}:{key}", state.config.redis.redis_key_prefix);
    let mut failed = false;
    match state
        .redis
        .query::<Option<String>>(redis::cmd("GET").arg(&cache_key))
        .await
    {
        Ok(Some(cached)) => match serde_json::from_str::<Value>(&cached) {
            Ok(data) => {
                counted(CacheResult::Hit);
                return Ok(respond(true, data));
            }
            Err(_) => failed = true,
        },
        Ok(None) => {}
        Err(err) => {
            tracing::debug!(%err, "cache read failed");
            failed = true;
        }
    }

    let data = state.upstream.fetch(route, &key).await?;
    if !failed {
        let stored = state
            .redis
            .query::<()>(
                redis::cmd("SET")
                    .arg(&cache_key)
                    .arg(data.to_string())
                    .arg("EX")
                    .arg(config.cache_ttl_secs.max(1)),
            )
            .await;
        if let Err(err) = stored {
            tracing::debug!(%err, "cache write failed");
            failed = true;
        }
    }
    counted(if failed {
        CacheResult::Error
    } else {
        CacheResult::Miss
    });
    Ok(respond(false, data))
}

fn respond(cached: bool, data: Value) -> Response {
    let mut response = Json(json!({"cached": cached, "data": data})).into_response();
    response.headers_mut().insert(
        "x-cache",
        HeaderValue::from_static(if cached { "HIT" } else { "MISS" }),
    );
    response
}
