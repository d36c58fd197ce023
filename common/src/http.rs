//! The endpoints every service has: `/health` (the process is alive), `/ready` (its
//! dependencies answer), `/metrics` (Prometheus text) and `/config` (the knobs in force,
//! secrets left out, and the host's cores and container CPU limit), plus the metrics middleware.

use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::sync::Arc;

/// A readiness probe: `Ok` when the dependency answers, else a short reason.
pub type ReadyCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

#[derive(Clone)]
struct Ops {
    service: &'static str,
    instance: String,
    metrics: Metrics,
    ready: Vec<(&'static str, ReadyCheck)>,
    config: Arc<Value>,
    live: LiveConfig,
}

/// What a service adds to its `/config` at each reading (what it found since it started).
pub type LiveConfig = Arc<dyn Fn(&mut Value) + Send + Sync>;

/// Wraps a service's routes with the shared endpoints and request metrics.
pub fn with_ops(
    app: Router,
    service: &'static str,
    instance: &str,
    metrics: &Metrics,
    ready: Vec<(&'static str, ReadyCheck)>,
    config: Value,
) -> Router {
    with_live_config(
        app,
        service,
        instance,
        metrics,
        ready,
        config,
        Arc::new(|_| {}),
    )
}

/// [`with_ops`], with `/config` completed by `live` at each reading.
pub fn with_live_config(
    app: Router,
    service: &'static str,
    instance: &str,
    metrics: &Metrics,
    ready: Vec<(&'static str, ReadyCheck)>,
    config: Value,
    live: LiveConfig,
) -> Router {
    let ops = Ops {
        service,
        instance: instance.to_string(),
        metrics: metrics.clone(),
        ready,
        config: Arc::new(config),
        live,
    };
    let ops_routes = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready_handler))
        .route("/metrics", get(metrics_handler))
        .route("/config", get(config_handler))
        .with_state(ops);
    app.merge(ops_routes)
        .fallback(|| async { crate::ApiError::not_found("no such route") })
        .layer(axum::middleware::map_response(json_method_not_allowed))
        .layer(axum::middleware::from_fn_with_state(
            metrics.clone(),
            crate::metrics::track,
        ))
}

/// axum answers a known path with the wrong method by an empty 405; every error of ours is
/// JSON, so the body becomes the same error JSON (the `Allow` header is kept).
async fn json_method_not_allowed(response: axum::response::Response) -> axum::response::Response {
    if response.status() != axum::http::StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let error = crate::ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this path",
    )
    .into_response();
    let (error_parts, body) = error.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(error_parts.headers);
    axum::response::Response::from_parts(parts, body)
}

async fn health(State(ops): State<Ops>) -> Json<Value> {
    Json(json!({"status": "ok", "service": ops.service, "instance": ops.instance}))
}

async fn ready_handler(State(ops): State<Ops>) -> Response {
    let mut checks = serde_json::Map::new();
    let mut ready = true;
    for (name, check) in &ops.ready {
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(2), check()).await;
        let value = match outcome {
            Ok(Ok(())) => json!("ok"),
            Ok(Err(reason)) => {
                ready = false;
                json!(reason)
            }
            Err(_) => {
                ready = false;
                json!("timed out")
            }
        };
        checks.insert((*name).to_string(), value);
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body =
        json!({"ready": ready, "service": ops.service, "instance": ops.instance, "checks": checks});
    (status, Json(body)).into_response()
}

async fn metrics_handler(State(ops): State<Ops>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ops.metrics.render(),
    )
        .into_response()
}

pub use records::wire::ConfigView;

async fn config_handler(State(ops): State<Ops>) -> Json<ConfigView> {
    let mut config = (*ops.config).clone();
    (ops.live)(&mut config);
    Json(ConfigView {
        service: ops.service.to_string(),
        instance: ops.instance.to_string(),
        config,
        host: crate::host::facts(),
    })
}

pub use probe::client::{client, log_in};
