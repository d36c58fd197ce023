//! `/data` and `/process`: cache-aside in Redis with a TTL, falling back to the microservice.
//! Redis is an accelerator, not a dependency: when it fails the request is served from the
//! microservice and counted as a cache error, never answered with a 5xx because of the cache.

use crate::auth::User;
use crate::upstream::ClientMode;
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

#[derive(Debug, Clone, Args, Serialize)]
pub struct CacheConfig {
    /// Cache-aside on or off (`false` sends every request to the microservice).
    #[arg(long, env = "CACHE_ENABLED", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub cache_enabled: bool,
    /// Seconds a cached answer lives.
    #[arg(long, env = "CACHE_TTL_SECS", default_value_t = 30)]
    pub cache_ttl_secs: u64,
    /// Base URL of the microservice that answers cache misses; several comma-separated.
    /// Each name is resolved again every 2 s and requests go round robin over every address
    /// found (every replica of a scaled microservice).
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
    /// `shared`: one HTTP client whose keep-alive connections every request reuses;
    /// `per-request`: a client built for each request, so each opens a new connection.
    #[arg(
        long,
        env = "MICROSERVICE_CLIENT",
        value_enum,
        default_value = "shared"
    )]
    pub microservice_client: ClientMode,
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
    match redis_get(&state, &cache_key).await {
        Cached::Hit(text) => match serde_json::from_str::<Value>(&text) {
            Ok(data) => {
                counted(CacheResult::Hit);
                return Ok(respond(true, data));
            }
            Err(_) => failed = true,
        },
        Cached::Miss => {}
        Cached::Failed => failed = true,
    }

    let data = state.upstream.fetch(route, &key).await?;
    if !failed {
        failed = !redis_set(&state, &cache_key, data.to_string(), config.cache_ttl_secs).await;
    }
    counted(if failed {
        CacheResult::Error
    } else {
        CacheResult::Miss
    });
    Ok(respond(false, data))
}

/// What Redis held for a key.
pub enum Cached {
    Hit(String),
    Miss,
    /// Redis could not be asked: the request goes on without the cache.
    Failed,
}

pub async fn redis_get(state: &crate::AppState, key: &str) -> Cached {
    match state
        .redis
        .query::<Option<String>>(redis::cmd("GET").arg(key))
        .await
    {
        Ok(Some(text)) => Cached::Hit(text),
        Ok(None) => Cached::Miss,
        Err(err) => {
            tracing::debug!(%err, "cache read failed");
            Cached::Failed
        }
    }
}

/// Stores `value` for `ttl_secs` (at least 1); false when Redis could not.
pub async fn redis_set(state: &crate::AppState, key: &str, value: String, ttl_secs: u64) -> bool {
    let stored = state
        .redis
        .query::<()>(
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("EX")
                .arg(ttl_secs.max(1)),
        )
        .await;
    if let Err(err) = &stored {
        tracing::debug!(%err, "cache write failed");
    }
    stored.is_ok()
}

fn respond(cached: bool, data: Value) -> Response {
    let mut response = Json(json!({"cached": cached, "data": data})).into_response();
    response.headers_mut().insert(
        "x-cache",
        HeaderValue::from_static(if cached { "HIT" } else { "MISS" }),
    );
    response
}
