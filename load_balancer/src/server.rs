//! The load balancer's Pingora `Server`: three services, started by Pingora in order of their
//! dependencies. The health check (Pingora's `LoadBalancer` as a background service: discovery
//! every `DISCOVERY_INTERVAL_MS`, checks every `HEALTH_INTERVAL_MS`); the proxy (the edge in
//! front of Pingora's `HttpProxy` around `balancer.rs`), which starts once the first
//! discovery is done; and the ops ports. Stopping is Pingora's graceful shutdown: listeners
//! close, each connection finishes the request it is on, for at most `SHUTDOWN_GRACE_SECS`
//! (Pingora's `grace_period_seconds`); the load balancer returns as soon as no client
//! connection is left.

use crate::balancer::{Balancer, Settings};
use crate::edge::{Connections, Edge, Timeouts};
use crate::gateways::{Check, Discovery, Gateways, HealthPolicy, Metrics};
use crate::ops::{self, Ops};
use crate::{Algorithm, Config};
use pingora::lb::selection::{BackendIter, BackendSelection, Consistent, Random, RoundRobin};
use pingora::lb::{Backends, LoadBalancer as Upstreams};
use pingora::server::configuration::ServerConf;
use pingora::server::{ExecutionPhase, RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

/// A load balancer with its settings checked and its ops ports bound, not yet serving.
pub struct LoadBalancer {
    server: Server,
    addr: SocketAddr,
    metrics_port: u16,
    admin_port: u16,
    connections: Arc<Connections>,
    grace: Duration,
    backends: Vec<String>,
}

/// Checks the settings and binds the ports: a port in use is one clear error here, before
/// anything runs. A listen port of 0 is chosen now (Pingora binds the address it is given).
pub fn build(config: Config) -> anyhow::Result<LoadBalancer> {
    config.validate()?;
    let bind = |addr: &str| {
        TcpListener::bind(addr).map_err(|e| {
            anyhow::anyhow!("cannot listen on {addr}: {e} (is another process using the port?)")
        })
    };
    // Bound and let go: Pingora binds it again (with SO_REUSEADDR) when the proxy starts.
    let addr = bind(&config.listen_addr)?.local_addr()?;
    let metrics_listener = bind(&config.metrics_addr)?;
    let admin_listener = bind(&config.admin_addr)?;
    let (metrics_port, admin_port) = (
        metrics_listener.local_addr()?.port(),
        admin_listener.local_addr()?.port(),
    );

    let instance = config.service.instance_id("load_balancer");
    let metrics = common::metrics::Metrics::new("load_balancer", &instance);
    let gateways = Gateways::new(config.backends.clone(), Metrics::new(&metrics));
    let grace = config.service.shutdown_grace();
    let conf = ServerConf {
        threads: config.worker_threads(),
        grace_period_seconds: Some(grace.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: config.keepalive_pool_size,
        max_retries: config.max_tries,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    let connections = Arc::new(Connections::default());
    let parts = (&config, gateways.clone(), connections.clone(), addr);
    let rotation = match config.lb_algorithm {
        Algorithm::RoundRobin => assemble::<RoundRobin>(&mut server, parts),
        Algorithm::Random => assemble::<Random>(&mut server, parts),
        Algorithm::Consistent => assemble::<Consistent>(&mut server, parts),
    };
    let config_json = serde_json::to_value(&config).unwrap_or_default();
    let metrics_router = ops::metrics_router(gateways.clone(), &instance, &metrics, config_json);
    let admin_router = ops::admin_router(gateways, rotation, config.admin_token.as_deref());
    let ports = vec![
        (metrics_listener, metrics_router),
        (admin_listener, admin_router),
    ];
    server.add_service(background_service("ops", Ops::new(ports)));
    Ok(LoadBalancer {
        server,
        addr,
        metrics_port,
        admin_port,
        connections,
        grace,
        backends: config.backends,
    })
}

/// Adds the health check and the proxy over Pingora's `LoadBalancer<S>` to the server.
fn assemble<S>(
    server: &mut Server,
    (config, gateways, connections, addr): (&Config, Arc<Gateways>, Arc<Connections>, SocketAddr),
) -> Arc<dyn ops::Rotation>
where
    S: BackendSelection + Send + Sync + 'static,
    S::Iter: BackendIter,
{
    let mut backends = Backends::new(Box::new(Discovery(gateways.clone())));
    let policy = HealthPolicy {
        path: config.health_path.clone(),
        timeout: Duration::from_millis(config.health_timeout_ms),
        healthy_threshold: config.healthy_threshold as usize,
        unhealthy_threshold: config.unhealthy_threshold as usize,
    };
    backends.set_health_check(Box::new(Check::new(&policy, gateways.clone())));
    let mut upstreams = Upstreams::<S>::from_backends(backends);
    upstreams.update_frequency = Some(Duration::from_millis(config.discovery_interval_ms));
    upstreams.health_check_frequency = Some(Duration::from_millis(config.health_interval_ms));
    upstreams.parallel_health_check = true;
    let health_check = background_service("health check", upstreams);
    let upstreams = health_check.task();
    let health_handle = server.add_service(health_check);

    let client_timeout = Duration::from_millis(config.client_timeout_ms);
    let settings = Settings {
        max_tries: config.max_tries,
        connect_timeout: Duration::from_millis(config.upstream_connect_timeout_ms),
        read_timeout: Duration::from_millis(config.upstream_read_timeout_ms),
        client_timeout,
    };
    let refused = gateways.metrics.refused.clone();
    let balancer = Balancer::new(upstreams.clone(), gateways, settings);
    let edge = Edge {
        proxy: Arc::new(pingora::proxy::http_proxy(&server.configuration, balancer)),
        timeouts: Timeouts {
            client: client_timeout,
            keepalive: Duration::from_secs(config.client_keepalive_secs),
        },
        refused,
        connections,
    };
    let mut service = Service::new("load balancer".to_string(), edge);
    service.add_tcp(&addr.to_string());
    server.add_service(service).add_dependency(&health_handle);
    upstreams
}

/// A stop signal for Pingora's server: any future, taken as SIGTERM (graceful).
struct StopWhen {
    stop: Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

#[async_trait::async_trait]
impl ShutdownSignalWatch for StopWhen {
    async fn recv(&self) -> ShutdownSignal {
        let stop = self.stop.lock().expect("not poisoned").take();
        if let Some(stop) = stop {
            stop.await;
        }
        ShutdownSignal::GracefulTerminate
    }
}

impl LoadBalancer {
    /// Where clients connect.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// Serves until SIGTERM or SIGINT.
    pub fn run(self) -> anyhow::Result<()> {
        self.run_until(common::shutdown::signal())
    }

    /// Serves until `stop` resolves, then stops as Pingora does: no new connection, each open
    /// one finishes the request it is on. Returns once no client connection is left, or after
    /// `SHUTDOWN_GRACE_SECS` and Pingora's second of runtime shutdown.
    pub fn run_until(self, stop: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self {
            server,
            addr,
            connections,
            grace,
            backends,
            ..
        } = self;
        let signal = StopWhen {
            stop: Mutex::new(Some(Box::pin(stop))),
        };
        // Pingora says when its services have been told to stop (listeners close then).
        let mut phases = server.watch_execution_phase();
        let pingora = std::thread::Builder::new()
            .name("pingora".into())
            .spawn(move || {
                server.run(RunArgs {
                    shutdown_signal: Box::new(signal),
                })
            })?;
        let started = Instant::now();
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if pingora.is_finished() || started.elapsed() > Duration::from_secs(10) {
                anyhow::bail!("the load balancer could not listen on {addr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::info!(%addr, ?backends, "load balancer listening");
        loop {
            match phases.blocking_recv() {
                Ok(ExecutionPhase::GracefulTerminate) => break,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => {
                    let why = match pingora.join() {
                        Err(panic) => format!("{panic:?}"),
                        Ok(()) => "no reason given".into(),
                    };
                    anyhow::bail!("the load balancer's server stopped by itself: {why}");
                }
            }
        }
        // A connection accepted just before the listener closed is counted once its task runs.
        std::thread::sleep(Duration::from_millis(50));
        let deadline = Instant::now() + grace + Duration::from_secs(1);
        while connections.open() > 0 && Instant::now() < deadline && !pingora.is_finished() {
            std::thread::sleep(Duration::from_millis(20));
        }
        if connections.open() > 0 {
            tracing::warn!(
                grace_secs = grace.as_secs_f64(),
                "grace period over, closing remaining connections"
            );
        }
        Ok(())
    }
}
