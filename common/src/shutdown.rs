//! Graceful shutdown: on SIGTERM or SIGINT stop accepting, let in-flight requests finish, and
//! exit after at most the grace period even if a client holds a connection open.

use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;

/// Resolves on the first SIGTERM or SIGINT.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        _ = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Serves `router` until `shutdown` resolves, then drains for at most `grace`; each accepted
/// connection adds one to `connections` when given.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    connections: Option<prometheus::IntCounter>,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let (fired_tx, mut fired_rx) = tokio::sync::watch::channel(false);
    let listener = listener.tap_io(move |_| {
        if let Some(c) = &connections {
            c.inc();
        }
    });
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let _ = fired_tx.send(true);
    });
    let deadline = async move {
        let _ = fired_rx.wait_for(|fired| *fired).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result,
        _ = deadline => {
            tracing::warn!(grace_secs = grace.as_secs_f64(), "grace period over, closing remaining connections");
            Ok(())
        }
    }
}

/// A bound, not yet running HTTP service: tests build it on port 0, read `port()`, then run it.
pub struct Server {
    listener: TcpListener,
    router: axum::Router,
    grace: Duration,
    /// How long it goes on serving after the shutdown signal before it stops accepting.
    delay: Duration,
    connections: Option<prometheus::IntCounter>,
}

impl Server {
    pub async fn bind(addr: &str, router: axum::Router, grace: Duration) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {addr}: {e} (is another process using the port?)")
        })?;
        Ok(Self {
            listener,
            router,
            grace,
            delay: Duration::ZERO,
            connections: None,
        })
    }

    /// Goes on serving for `delay` after the shutdown signal, then stops accepting: where an
    /// orchestrator, not the lab, picks which instance leaves (Swarm), this is the time a load
    /// balancer gets to take it out of rotation before it refuses connections.
    pub fn leaving_after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Counts the connections it accepts (`http_connections_accepted_total`).
    pub fn counting(mut self, metrics: &crate::metrics::Metrics) -> Self {
        self.connections = Some(metrics.connections.clone());
        self
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Runs until SIGTERM/SIGINT.
    pub async fn run(self) -> std::io::Result<()> {
        self.run_until(signal()).await
    }

    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        if let Ok(addr) = self.listener.local_addr() {
            tracing::info!(%addr, "listening");
        }
        let delay = self.delay;
        let shutdown = async move {
            shutdown.await;
            if !delay.is_zero() {
                tracing::info!(
                    delay_ms = delay.as_millis() as u64,
                    "still serving before leaving (SHUTDOWN_DELAY_MS)"
                );
                tokio::time::sleep(delay).await;
            }
        };
        serve(
            self.listener,
            self.router,
            shutdown,
            self.grace,
            self.connections,
        )
        .await
    }
}

/// Turns one shutdown future into a signal many tasks can watch: the receiver reads `true`
/// from the moment `shutdown` resolves.
pub fn watch(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> tokio::sync::watch::Receiver<bool> {
    let (fired, watched) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = fired.send(true);
    });
    watched
}

/// Resolves once the watched shutdown has fired.
pub async fn fired(mut watched: tokio::sync::watch::Receiver<bool>) {
    let _ = watched.wait_for(|down| *down).await;
}
