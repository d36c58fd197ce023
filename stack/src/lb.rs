//! The lab's side of the load balancer: which gateways it sees (metrics port), and the admin
//! port that sets its backend list and takes gateways out of rotation before they stop.

use crate::settings::Name;
use anyhow::{bail, Context};
use records::wire;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LoadBalancerClient {
    /// `http://127.0.0.1:9100`
    pub metrics: String,
    /// `http://127.0.0.1:9101`
    pub admin: String,
    client: reqwest::Client,
    /// ADMIN_TOKEN, which every change through the admin port carries.
    token: String,
}

impl LoadBalancerClient {
    /// On the host's loopback, at the settings' ports, with their ADMIN_TOKEN.
    pub fn new(settings: &crate::settings::Settings) -> Self {
        Self::at(
            &format!("http://127.0.0.1:{}", settings.port(Name::LbMetricsPort)),
            &format!("http://127.0.0.1:{}", settings.port(Name::LbAdminPort)),
            settings.get(Name::AdminToken),
        )
    }

    /// At these base URLs (`http://load_balancer:9100` from inside the stack's network).
    pub fn at(metrics: &str, admin: &str, token: &str) -> Self {
        Self {
            metrics: metrics.to_string(),
            admin: admin.to_string(),
            client: common::http::client(Duration::from_secs(5)),
            token: token.to_string(),
        }
    }

    pub async fn backends(&self) -> anyhow::Result<wire::Backends> {
        let resp = self
            .client
            .get(format!("{}/backends", self.metrics))
            .send()
            .await
            .context("the load balancer's metrics port does not answer")?;
        if !resp.status().is_success() {
            bail!("GET /backends answered {}", resp.status());
        }
        resp.json()
            .await
            .context("GET /backends: not the expected JSON")
    }

    /// Gateways in rotation now (0 when the load balancer does not answer).
    pub async fn in_rotation(&self) -> usize {
        self.backends()
            .await
            .map(|b| b.in_rotation().count())
            .unwrap_or(0)
    }

    pub async fn set_backends(&self, entries: Vec<String>) -> anyhow::Result<wire::Backends> {
        self.put("/backends", &wire::SetBackends { backends: entries })
            .await
    }

    pub async fn drain(&self, addrs: Vec<String>) -> anyhow::Result<wire::Backends> {
        self.put("/drain", &wire::Drain { backends: addrs }).await
    }

    async fn put<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> anyhow::Result<wire::Backends> {
        let resp = self
            .client
            .put(format!("{}{path}", self.admin))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .with_context(|| {
                format!(
                    "the load balancer's admin port ({}) does not answer",
                    self.admin
                )
            })?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            bail!("PUT {path} answered {status}: {text}");
        }
        resp.json()
            .await
            .with_context(|| format!("PUT {path}: not the expected JSON"))
    }

    /// Waits until exactly `want` gateways are in rotation.
    pub async fn wait_in_rotation(&self, want: usize, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let now = self.in_rotation().await;
            if now == want {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the load balancer has {now} gateway(s) in rotation after {}s, not {want}",
                    limit.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Drains `addrs`: out of rotation now, then waits until the load balancer has no request
    /// in flight to any of them (or `limit` passes: the caller's stop then lets the gateway
    /// finish what it has within its own grace period).
    pub async fn drain_and_wait(&self, addrs: &[String], limit: Duration) -> anyhow::Result<()> {
        if addrs.is_empty() {
            return Ok(());
        }
        self.drain(addrs.to_vec()).await?;
        let deadline = Instant::now() + limit;
        loop {
            let view = self.backends().await?;
            let busy: usize = view
                .backends
                .iter()
                .filter(|b| addrs.contains(&b.addr))
                .map(|b| b.in_flight)
                .sum();
            if busy == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                eprintln!("lab: {busy} request(s) still in flight to the draining gateways after {}s; stopping them gracefully", limit.as_secs());
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
