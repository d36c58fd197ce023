//! Idle kept-alive connections to the gateways, ready for the next request.
//!
//! Pingora's connection pool watches every idle connection with a task of its own (spawned on
//! each release, with a timer and two channels), which cost this load balancer about 8 % of its
//! instructions per request (BENCHMARKS.md). Here an idle connection is a socket in a list:
//! whether it is still open is checked when it is taken (a read that must find nothing, which
//! tokio answers from its readiness state without a system call when nothing arrived), and the
//! health ticker drops the ones idle too long. A connection the gateway closes between that check
//! and the request is the data path's stale-connection case: the request goes once more on a
//! new connection (`proxy/mod.rs`).

use futures::FutureExt;
use pingora::protocols::Stream;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

pub struct IdlePool {
    /// Per gateway (the peer's key), the most recently released last.
    idle: Mutex<HashMap<u64, Vec<(Stream, Instant)>>>,
    per_gateway: usize,
    max_idle: Duration,
}

impl IdlePool {
    /// At most `per_gateway` idle connections to each gateway (`KEEPALIVE_POOL_SIZE`), each
    /// kept at most `max_idle`.
    pub fn new(per_gateway: usize, max_idle: Duration) -> Self {
        Self {
            idle: Mutex::new(HashMap::new()),
            per_gateway,
            max_idle,
        }
    }

    /// The most recently released connection to the gateway `key` that is still open, if any.
    pub fn take(&self, key: u64) -> Option<Stream> {
        loop {
            let (mut stream, since) = self.lock().get_mut(&key)?.pop()?;
            if since.elapsed() <= self.max_idle && still_open(&mut stream) {
                return Some(stream);
            }
        }
    }

    /// Keeps a connection whose last answer was read in full for the next request to `key`;
    /// past `per_gateway`, the connection idle longest is closed.
    pub fn put(&self, key: u64, stream: Stream) {
        if self.per_gateway == 0 {
            return;
        }
        let mut idle = self.lock();
        let list = idle.entry(key).or_default();
        if list.len() >= self.per_gateway {
            list.remove(0);
        }
        list.push((stream, Instant::now()));
    }

    /// Closes the connections idle longer than `max_idle` (a gateway that left, a quiet time).
    pub fn sweep(&self) {
        self.lock().retain(|_, list| {
            list.retain(|(_, since)| since.elapsed() <= self.max_idle);
            !list.is_empty()
        });
    }

    /// The lists stay consistent whatever panicked while holding them (a list is only ever
    /// pushed to, popped from or filtered), so a poisoned lock does not turn pooling off.
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Vec<(Stream, Instant)>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Idle connections kept, over every gateway.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }
}

/// An idle connection is reusable while reading it would wait: the gateway neither closed it
/// (a read of 0 bytes) nor sent anything unasked (which would be read as the next answer).
fn still_open(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    tokio::task::unconstrained(stream.read(&mut byte))
        .now_or_never()
        .is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn pair() -> (Stream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(
            client.unwrap(),
        ));
        (stream, accepted.unwrap().0)
    }

    #[tokio::test]
    async fn an_open_connection_comes_back_most_recent_first_and_a_closed_one_never() {
        let pool = IdlePool::new(4, Duration::from_secs(60));
        let (first, _server_first) = pair().await;
        let (second, server_second) = pair().await;
        let second_id = second.id();
        pool.put(7, first);
        pool.put(7, second);
        assert_eq!(pool.len(), 2);
        assert!(pool.take(8).is_none(), "another gateway's connection");
        assert_eq!(pool.take(7).map(|s| s.id()), Some(second_id));

        // The gateway closes an idle connection: it is dropped when taken.
        let (closed, server) = pair().await;
        pool.put(9, closed);
        drop(server);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take(9).is_none());
        assert!(pool.take(9).is_none());
        drop(server_second);
    }

    #[tokio::test]
    async fn unasked_bytes_make_a_connection_unusable() {
        let pool = IdlePool::new(4, Duration::from_secs(60));
        let (stream, mut server) = pair().await;
        pool.put(1, stream);
        server.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take(1).is_none());
    }

    #[tokio::test]
    async fn the_pool_keeps_at_most_its_size_and_drops_what_idled_too_long() {
        let pool = IdlePool::new(2, Duration::from_millis(100));
        let mut servers = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let (s, server) = pair().await;
            ids.push(s.id());
            servers.push(server);
            pool.put(1, s);
        }
        assert_eq!(pool.len(), 2, "the oldest was closed");
        tokio::time::sleep(Duration::from_millis(150)).await;
        pool.sweep();
        assert_eq!(pool.len(), 0);
        let (s, _server) = pair().await;
        pool.put(1, s);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(pool.take(1).is_none(), "idle too long");
        let none = IdlePool::new(0, Duration::from_secs(1));
        let (s, _server) = pair().await;
        none.put(1, s);
        assert_eq!(none.len(), 0);
        drop(servers);
        assert_eq!(ids.len(), 3);
    }
}
