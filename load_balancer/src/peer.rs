//! A gateway as Pingora's connector and the idle list see it.

use pingora::protocols::l4::socket::SocketAddr as PeerAddr;
use pingora::upstreams::peer::{Peer, PeerOptions};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// A gateway as Pingora's connector sees it. Pingora's general `HttpPeer` carries TLS, proxy
/// and ALPN settings and hashes all of them into its key on every request; a plain-HTTP
/// gateway is just an address.
#[derive(Clone)]
pub struct Gateway {
    addr: PeerAddr,
    key: u64,
    options: Arc<PeerOptions>,
}

impl Gateway {
    pub fn new(addr: SocketAddr, options: Arc<PeerOptions>) -> Self {
        let key = match addr {
            SocketAddr::V4(v4) => (u64::from(v4.ip().to_bits()) << 16) | u64::from(v4.port()),
            SocketAddr::V6(v6) => {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                v6.hash(&mut h);
                h.finish() | (1 << 63)
            }
        };
        Self {
            addr: PeerAddr::Inet(addr),
            key,
            options,
        }
    }
}

impl fmt::Display for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)
    }
}

impl Peer for Gateway {
    fn address(&self) -> &PeerAddr {
        &self.addr
    }
    fn tls(&self) -> bool {
        false
    }
    fn sni(&self) -> &str {
        ""
    }
    /// The idle connections' key (`idle.rs`): one list per gateway address.
    fn reuse_hash(&self) -> u64 {
        self.key
    }
    fn get_peer_options(&self) -> Option<&PeerOptions> {
        Some(&self.options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_gateway_address_has_its_own_pool_key() {
        let options = Arc::new(PeerOptions::new());
        let key = |a: &str| Gateway::new(a.parse().unwrap(), options.clone()).reuse_hash();
        let keys = [
            key("127.0.0.1:8000"),
            key("127.0.0.1:8001"),
            key("127.0.0.2:8000"),
            key("[::1]:8000"),
            key("[::1]:8001"),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(key("10.0.0.1:80"), key("10.0.0.1:80"));
    }
}
