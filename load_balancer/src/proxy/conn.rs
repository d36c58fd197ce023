//! The two connections of a request: the client's socket and a gateway's stream, each with
//! what has been read from it and not used yet, and timeouts that cost no timer when the
//! socket is ready.

use super::{Failure, Try};
use bytes::BytesMut;
use pingora::protocols::Stream;
use std::io;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// After a refusal, how long (and how many bytes) the rest of what the client sends is read and
/// dropped before the connection closes, so that the client reads the answer instead of a reset.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 8 * 1024 * 1024;

/// A client's connection: its socket and what has been read from it but not used yet.
pub(super) struct Client {
    pub(super) tcp: TcpStream,
    pub(super) buf: BytesMut,
    pub(super) timeout: Duration,
}

impl Client {
    /// Reads more of what the client sends, waiting at most `wait`: `Ok(0)` when it closed.
    pub(super) async fn read_more(&mut self, wait: Duration) -> io::Result<usize> {
        within(wait, read_more(&mut self.tcp, &mut self.buf)).await
    }

    pub(super) async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        within(self.timeout, self.tcp.write_all(bytes)).await
    }

    /// Ends the connection after a refusal: no more answers, and what the client is still
    /// sending is read and dropped for a moment, so that it gets the answer, not a reset.
    pub(super) async fn linger(mut self) {
        let _ = self.tcp.shutdown().await;
        let until = Instant::now() + LINGER;
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            self.buf.clear();
            match self
                .read_more(until.saturating_duration_since(Instant::now()))
                .await
            {
                Ok(n) if n > 0 => dropped += n,
                _ => return,
            }
        }
    }
}

/// A connection to a gateway: Pingora's stream and what has been read from it.
pub(super) struct Upstream {
    pub(super) io: Stream,
    pub(super) buf: BytesMut,
    /// Taken from the idle list, not opened for this request.
    pub(super) reused: bool,
    /// Some byte of an answer has come back.
    pub(super) received: bool,
}

impl Upstream {
    pub(super) async fn read_more(&mut self, wait: Duration) -> io::Result<usize> {
        within(wait, self.read_any()).await
    }

    /// Reads what the backend sends, however long that takes.
    pub(super) async fn read_any(&mut self) -> io::Result<usize> {
        let n = read_more(&mut self.io, &mut self.buf).await?;
        self.received |= n > 0;
        Ok(n)
    }

    pub(super) async fn write(&mut self, bytes: &[u8], wait: Duration) -> io::Result<()> {
        within(wait, async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        })
        .await
    }

    /// A failure on the way to the backend: on a kept-alive connection, before any byte of an
    /// answer, it means the backend had closed that connection.
    pub(super) fn failed(&self, e: &io::Error) -> Try {
        if self.reused && !self.received && e.kind() != io::ErrorKind::TimedOut {
            Try::Stale(upstream_failure(e))
        } else {
            Try::FailedAfterSending(upstream_failure(e))
        }
    }
}

/// `fut`, failing with `TimedOut` past `wait` (no timer is set when it is ready at once).
async fn within<T>(
    wait: Duration,
    fut: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match tokio::time::timeout(wait, fut).await {
        Ok(result) => result,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Reads what is there into `buf`, making a little room first: `Ok(0)` at the end.
async fn read_more<S: tokio::io::AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(8 * 1024);
    }
    io.read_buf(buf).await
}

pub(super) fn upstream_failure(e: &io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::TimedOut => Failure::new(504, "backend timed out"),
        kind => Failure::new(502, format!("backend failed: {kind}")),
    }
}
