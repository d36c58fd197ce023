//! The load balancer's two small HTTP ports (axum, like the other services), run as a Pingora
//! background service: metrics, /health, /ready and `GET /backends` on one; the admin API
//! (`PUT /backends`, `PUT /drain`), which only the lab drives, on the other.

use crate::gateways::{backend, Gateways};
use crate::validate_entry;
use async_trait::async_trait;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use common::ApiError;
use futures::future::BoxFuture;
use pingora::lb::selection::{BackendIter, BackendSelection};
use pingora::lb::LoadBalancer;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use records::wire;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the admin API asks of Pingora's `LoadBalancer`, whatever its selection algorithm.
pub trait Rotation: Send + Sync {
    /// Discovery now, then a health check of every gateway.
    fn refresh(&self) -> BoxFuture<'_, ()>;
    /// Pingora's enable flag: a disabled gateway gets no new request.
    fn set_enabled(&self, addr: SocketAddr, enabled: bool);
}

impl<S> Rotation for LoadBalancer<S>
where
    S: BackendSelection + Send + Sync + 'static,
    S::Iter: BackendIter,
{
    fn refresh(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.update().await {
                tracing::warn!(error = %e, "discovery failed");
            }
            self.backends().run_health_check(true).await;
        })
    }

    fn set_enabled(&self, addr: SocketAddr, enabled: bool) {
        self.backends().set_enable(&backend(addr), enabled);
    }
}

#[derive(Clone)]
struct Admin {
    gateways: Arc<Gateways>,
    rotation: Arc<dyn Rotation>,
    /// One change through the admin port at a time.
    change: Arc<tokio::sync::Mutex<()>>,
}

async fn list_backends(State(gateways): State<Arc<Gateways>>) -> Json<wire::Backends> {
    Json(gateways.describe())
}

async fn admin_list(State(admin): State<Admin>) -> Json<wire::Backends> {
    Json(admin.gateways.describe())
}

async fn set_backends(
    State(admin): State<Admin>,
    body: Result<Json<wire::SetBackends>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<wire::Backends>, ApiError> {
    let Json(req) = body?;
    for entry in &req.backends {
        validate_entry(entry).map_err(ApiError::bad_request)?;
    }
    let _one = admin.change.lock().await;
    tracing::info!(backends = ?req.backends, "backend list set through the admin port");
    admin.gateways.set_entries(req.backends);
    admin.rotation.refresh().await;
    Ok(Json(admin.gateways.describe()))
}

/// Takes exactly the listed gateways (`ip:port`) out of rotation before they are stopped; an
/// address no gateway has is a 404, so a typo cannot pass for a drained gateway.
async fn set_draining(
    State(admin): State<Admin>,
    body: Result<Json<wire::Drain>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<wire::Backends>, ApiError> {
    let Json(req) = body?;
    let mut addrs = BTreeSet::new();
    for entry in &req.backends {
        let addr: SocketAddr = entry
            .parse()
            .map_err(|_| ApiError::bad_request(format!("{entry:?} is not an ip:port address")))?;
        addrs.insert(addr);
    }
    let _one = admin.change.lock().await;
    let unknown = admin.gateways.set_draining(&addrs);
    if !unknown.is_empty() {
        let unknown: Vec<String> = unknown.iter().map(|a| a.to_string()).collect();
        return Err(ApiError::not_found(format!(
            "no gateway at {}",
            unknown.join(", ")
        )));
    }
    for gateway in admin.gateways.all() {
        admin
            .rotation
            .set_enabled(gateway.addr, !admin.gateways.is_draining(&gateway.addr));
    }
    Ok(Json(admin.gateways.describe()))
}

/// The metrics port's router.
pub fn metrics_router(
    gateways: Arc<Gateways>,
    instance: &str,
    metrics: &common::metrics::Metrics,
    config: serde_json::Value,
) -> Router {
    let ready_gateways = gateways.clone();
    let ready: common::http::ReadyCheck = Arc::new(move || {
        let gateways = ready_gateways.clone();
        Box::pin(async move {
            if gateways.all().iter().any(|g| g.in_rotation()) {
                Ok(())
            } else {
                Err("no healthy backend".to_string())
            }
        })
    });
    let routes = Router::new()
        .route("/backends", get(list_backends))
        .with_state(gateways);
    common::http::with_ops(
        routes,
        "load_balancer",
        instance,
        metrics,
        vec![("backends", ready)],
        config,
    )
}

/// The admin port's router: every change carries the admin token, and a request must name the
/// port by address or by its name on the stack's network (a web page that rebinds its own
/// domain to 127.0.0.1 cannot).
pub fn admin_router(
    gateways: Arc<Gateways>,
    rotation: Arc<dyn Rotation>,
    token: Option<&str>,
) -> Router {
    let admin = Admin {
        gateways,
        rotation,
        change: Arc::default(),
    };
    Router::new()
        .route("/backends", get(admin_list).put(set_backends))
        .route("/drain", axum::routing::put(set_draining))
        .with_state(admin)
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::middleware::from_fn_with_state(
            common::guard::Token(token.map(Into::into)),
            common::guard::token_required,
        ))
        .layer(axum::middleware::from_fn_with_state(
            common::guard::Names(&["load_balancer"]),
            common::guard::local_host_only,
        ))
}

/// Both ports, bound before the server starts (their ports are known to the caller), served
/// from Pingora's background service until it shuts down.
pub struct Ops {
    ports: Mutex<Vec<(std::net::TcpListener, Router)>>,
}

impl Ops {
    pub fn new(ports: Vec<(std::net::TcpListener, Router)>) -> Self {
        Self {
            ports: Mutex::new(ports),
        }
    }
}

#[async_trait]
impl BackgroundService for Ops {
    async fn start(&self, shutdown: ShutdownWatch) {
        let ports = std::mem::take(&mut *self.ports.lock().expect("not poisoned"));
        let serving = ports.into_iter().filter_map(|(listener, router)| {
            let listener = listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(listener))
                .map_err(|e| tracing::error!(error = %e, "an ops port cannot be served"))
                .ok()?;
            let stop = common::shutdown::fired(shutdown.clone());
            Some(common::shutdown::serve(
                listener,
                router,
                stop,
                Duration::from_secs(1),
                None,
            ))
        });
        futures::future::join_all(serving).await;
    }
}
