//! A loopback TCP relay that can be cut: how the lab makes Postgres or Redis unreachable for
//! its own stack (fault experiments) without touching a server others may share, and how tests
//! do the same.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A loopback TCP relay in front of a real server. `cut()` drops every relayed connection and
/// refuses new ones (the server looks dead to the client); `restore()` brings it back.
pub struct TcpRelay {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    kill: watch::Sender<u64>,
    accepted: Arc<AtomicU64>,
    delay_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpRelay {
    /// A relay for tests: panics when no loopback port is free.
    pub async fn start(target: SocketAddr) -> Self {
        Self::bind(target)
            .await
            .expect("a loopback port for the relay")
    }

    /// Listens on a free loopback port and relays every connection to `target`.
    pub async fn bind(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let up = Arc::new(AtomicBool::new(true));
        let (kill, _) = watch::channel(0u64);
        let accepted = Arc::new(AtomicU64::new(0));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (up2, kill2, accepted2) = (up.clone(), kill.clone(), accepted.clone());
        let delay2 = delay_ms.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                accepted2.fetch_add(1, Ordering::SeqCst);
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut killed = kill2.subscribe();
                let delay = Duration::from_millis(delay2.load(Ordering::SeqCst));
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = killed.changed() => {}
                    }
                });
            }
        });
        Ok(Self {
            addr,
            up,
            kill,
            accepted,
            delay_ms,
            task,
        })
    }

    /// Makes every new connection wait `delay` before its first byte is relayed: a slow
    /// network or a peer still starting.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// How many connections the relay has accepted so far (including refused ones).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The relay's address in a URL of the same scheme: `redis://127.0.0.1:PORT/...`.
    pub fn rewrite_url(&self, url: &str) -> String {
        let scheme_end = url.find("://").map(|i| i + 3).unwrap_or(0);
        let rest = &url[scheme_end..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let creds = authority.rfind('@').map(|i| &authority[..=i]).unwrap_or("");
        format!(
            "{}{}{}{}",
            &url[..scheme_end],
            creds,
            self.addr,
            &rest[authority_end..]
        )
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.kill.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// The `host:port` a `postgres://` or `redis://` URL points at (their default ports when
/// none is given), resolved.
pub async fn socket_of(url: &str) -> std::io::Result<SocketAddr> {
    let scheme_end = url.find("://").map(|i| i + 3).unwrap_or(0);
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host_port = if host_port.contains(':') {
        host_port.to_string()
    } else if url.starts_with("redis") {
        format!("{host_port}:6379")
    } else {
        format!("{host_port}:5432")
    };
    let found = tokio::net::lookup_host(host_port.as_str()).await?.next();
    found.ok_or_else(|| std::io::Error::other(format!("{host_port} has no address")))
}
