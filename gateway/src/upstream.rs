//! The gateway's HTTP client to the microservice: one shared keep-alive client, or a new one
//! per request (`MICROSERVICE_CLIENT`), sending each request to the next instance in turn.
//! `MICROSERVICE_URL` may list several base URLs, and each name is resolved again every
//! `DISCOVERY_EVERY`, so every replica of a scaled microservice gets its share (client-side
//! round robin: the same in every runtime, unlike DNS round robin over kept-alive
//! connections).

use crate::cache::CacheConfig;
use common::ApiError;
use serde::Serialize;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

const DISCOVERY_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientMode {
    Shared,
    PerRequest,
}

pub struct Upstream {
    /// Set when shared.
    client: Option<reqwest::Client>,
    /// What MICROSERVICE_URL lists.
    configured: Vec<reqwest::Url>,
    /// Every instance those resolve to now (`http://10.0.0.5:8001`), in a stable order.
    targets: RwLock<Vec<String>>,
    next: AtomicUsize,
    timeout: Duration,
    connect_timeout: Duration,
}

/// The base URLs of a comma-separated MICROSERVICE_URL, each checked.
pub fn parse_urls(text: &str) -> anyhow::Result<Vec<reqwest::Url>> {
    let urls: Vec<reqwest::Url> = text
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            let url = reqwest::Url::parse(u.trim_end_matches('/'))
                .map_err(|e| anyhow::anyhow!("MICROSERVICE_URL {u:?} is not a URL: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                anyhow::bail!("MICROSERVICE_URL {u:?} must be http://host[:port]");
            }
            Ok(url)
        })
        .collect::<anyhow::Result<_>>()?;
    if urls.is_empty() {
        anyhow::bail!("MICROSERVICE_URL is empty: give the microservice's base URL");
    }
    Ok(urls)
}

fn base(url: &reqwest::Url) -> String {
    url.as_str().trim_end_matches('/').to_string()
}

impl Upstream {
    /// Starts with the URLs as given; [`Upstream::discover`] replaces them with addresses.
    pub fn new(config: &CacheConfig) -> anyhow::Result<Arc<Self>> {
        let configured = parse_urls(&config.microservice_url)?;
        let targets = configured.iter().map(base).collect();
        let mut upstream = Self {
            client: None,
            configured,
            targets: RwLock::new(targets),
            next: AtomicUsize::new(0),
            timeout: Duration::from_millis(config.microservice_timeout_ms),
            connect_timeout: Duration::from_millis(config.microservice_connect_timeout_ms),
        };
        if config.microservice_client == ClientMode::Shared {
            upstream.client = Some(upstream.build_client()?);
        }
        Ok(Arc::new(upstream))
    }

    /// Resolves the names now and every `DISCOVERY_EVERY` while the upstream lives.
    pub fn discover(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(upstream) = weak.upgrade() else {
                    return;
                };
                let found = upstream.resolve().await;
                *upstream.targets.write().expect("not poisoned") = found;
                drop(upstream);
                tokio::time::sleep(DISCOVERY_EVERY).await;
            }
        });
    }

    /// The instances requests go to now (`http://10.0.0.5:8001`, …).
    pub fn instances(&self) -> Vec<String> {
        self.targets.read().expect("not poisoned").clone()
    }

    /// Every address each URL's name has now; a name that does not resolve stays as given
    /// (its requests then fail as unreachable, with a 502 naming it).
    async fn resolve(&self) -> Vec<String> {
        let mut found = Vec::new();
        for url in &self.configured {
            let host = url.host_str().unwrap_or_default();
            let port = url.port_or_known_default().unwrap_or(80);
            if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
                found.push(base(url));
                continue;
            }
            let mut addrs: Vec<std::net::SocketAddr> =
                match tokio::net::lookup_host((host, port)).await {
                    Ok(a) => a.filter(|a| a.is_ipv4()).collect(),
                    Err(_) => Vec::new(),
                };
            addrs.sort();
            addrs.dedup();
            if addrs.is_empty() {
                found.push(base(url));
            }
            for a in addrs {
                found.push(format!("{}://{a}", url.scheme()));
            }
        }
        found
    }

    /// `{next instance}/{path}`: one allocation per request, under a read lock that only
    /// discovery (every 2 s) ever waits on.
    fn url(&self, path: &str) -> String {
        let targets = self.targets.read().expect("not poisoned");
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{}/{path}", targets[i % targets.len()])
    }

    fn build_client(&self) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .pool_max_idle_per_host(512)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
    }

    pub async fn fetch(&self, route: &str, key: &str) -> Result<Value, ApiError> {
        self.get_json(&format!("{route}/{key}")).await
    }

    /// `GET {MICROSERVICE_URL}/{path}` as `T`; a 503 stays a 503, anything else wrong is a
    /// 502 (or 504 past the timeout) naming the cause.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, ApiError> {
        let url = self.url(path);
        let base = &url[..url.len() - path.len() - 1];
        let own;
        let client = match &self.client {
            Some(shared) => shared,
            None => {
                own = self.build_client().map_err(|e| {
                    ApiError::bad_gateway(format!("cannot build an HTTP client: {e}"))
                })?;
                &own
            }
        };
        let timed_out = || {
            ApiError::gateway_timeout(format!(
                "microservice did not answer within {} ms",
                self.timeout.as_millis()
            ))
        };
        let response = client.get(&url).send().await.map_err(|e| {
            if e.is_timeout() {
                timed_out()
            } else if e.is_connect() {
                ApiError::bad_gateway(format!("microservice unreachable at {base}"))
            } else {
                ApiError::bad_gateway(format!("microservice request failed: {e}"))
            }
        })?;
        let status = response.status();
        let unreadable =
            || ApiError::bad_gateway(format!("microservice sent an unreadable body ({status})"));
        let bytes = response.bytes().await.map_err(|e| {
            if e.is_timeout() {
                timed_out()
            } else {
                unreadable()
            }
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|_| unreadable());
        }
        let body: Value = serde_json::from_slice(&bytes).map_err(|_| unreadable())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> CacheConfig {
        CacheConfig {
            cache_enabled: true,
            cache_ttl_secs: 30,
            microservice_url: url.into(),
            microservice_timeout_ms: 1000,
            microservice_connect_timeout_ms: 500,
            microservice_client: ClientMode::Shared,
        }
    }

    #[test]
    fn a_list_of_urls_is_checked_one_by_one() {
        let urls = parse_urls("http://127.0.0.1:8001, http://127.0.0.1:8101/").unwrap();
        assert_eq!(urls.len(), 2);
        assert_eq!(base(&urls[1]), "http://127.0.0.1:8101");
        for bad in ["", " , ", "127.0.0.1:8001", "ftp://x", "http://a, nope"] {
            let e = parse_urls(bad).unwrap_err().to_string();
            assert!(e.starts_with("MICROSERVICE_URL"), "{bad:?}: {e}");
        }
    }

    #[tokio::test]
    async fn requests_go_round_robin_over_every_address_a_name_has() {
        let upstream =
            Upstream::new(&config("http://localhost:8001,http://127.0.0.2:8101")).unwrap();
        let resolved = upstream.resolve().await;
        assert!(
            resolved.contains(&"http://127.0.0.1:8001".to_string()),
            "{resolved:?}"
        );
        assert_eq!(resolved.last().unwrap(), "http://127.0.0.2:8101");
        *upstream.targets.write().unwrap() = resolved.clone();
        let picks: Vec<String> = (0..resolved.len() * 2)
            .map(|_| upstream.url("x").trim_end_matches("/x").to_string())
            .collect();
        for target in &resolved {
            assert_eq!(
                picks.iter().filter(|p| *p == target).count(),
                2,
                "{picks:?}"
            );
        }
        // A name that does not resolve stays as given.
        let lost = Upstream::new(&config("http://no-such-host.invalid:8001")).unwrap();
        assert_eq!(
            lost.resolve().await,
            vec!["http://no-such-host.invalid:8001"]
        );
    }
}
