//! The data path: read a client's request, check that its framing is unambiguous, pick the next
//! healthy gateway, forward the request over a kept-alive upstream connection, stream the answer
//! back, and count it.
//!
//! New connections to the gateways come from Pingora's connector (`pingora-core`), idle ones
//! from the load balancer's own list (`idle.rs`); the HTTP/1.1 on both sides is `h1.rs`: one
//! parse of each head into offsets, no header maps. Pingora's `ProxyHttp` framework and then its
//! HTTP/1 sessions were the data path before; each step away from them cut the instructions per
//! request (BENCHMARKS.md). What a load balancer needs is here, in one function a reader can
//! follow: retries, timeouts, forwarding headers, metrics and JSON errors.

use records::names::MetricName;

use crate::edge::Refusal;
use crate::h1::{self, ChunkedDecoder, Framing, Outgoing, Piece, Request, RequestId};
use crate::idle::IdlePool;
use crate::peer::Gateway;
use crate::pool::{Member, Pool};
use body::Body;
use bytes::{Buf, BytesMut};
use conn::{Client, Upstream};
use pingora::connectors::TransportConnector;
use pingora::upstreams::peer::{Peer, PeerOptions};
use pingora::ErrorType;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Tries per request are capped here (and by `MAX_TRIES`), so the per-request record of
/// tried backends is a fixed array, not a heap allocation.
pub const TRIES_CAP: usize = 8;

mod body;
mod conn;

pub use body::RETRY_BODY_LIMIT;

/// How long an idle upstream connection stays in the pool.
const UPSTREAM_IDLE: Duration = Duration::from_secs(60);

pub struct Settings {
    pub max_tries: usize,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Longest wait for the next bytes of a client's request, or for a client to take an answer.
    pub client_timeout: Duration,
    /// How long an idle client connection stays open between requests.
    pub client_keepalive: Duration,
    /// Idle connections kept to each gateway.
    pub keepalive_pool_size: usize,
}

pub struct Proxy {
    pool: Arc<Pool>,
    settings: Settings,
    /// The connect timeout, shared by every `Gateway` peer.
    peer_options: Arc<PeerOptions>,
    /// Pingora's connector: new connections to the gateways.
    connector: TransportConnector,
    /// Kept-alive connections to the gateways between requests.
    idle: IdlePool,
    request_ids: AtomicU64,
    id_prefix: u32,
    /// Requests sent again on a new connection because a kept-alive one had been closed.
    stale_retries: prometheus::IntCounter,
    /// Requests refused before any gateway was chosen, by reason.
    refused: prometheus::IntCounterVec,
}

/// Why a request got no answer from a backend: the status and message the client gets.
struct Failure {
    status: u16,
    message: String,
}

impl Failure {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// The client is gone: nobody to answer.
    fn client_gone() -> Self {
        Self::new(0, "")
    }
}

/// What happened to one try on one backend.
enum Try {
    /// The backend's answer was forwarded (or the client went away while it was); `reuse`
    /// says whether the client's connection can take another request.
    Answered { reuse: bool },
    /// Nothing reached the backend: any method may go elsewhere.
    NotConnected(Failure),
    /// A kept-alive connection turned out closed before any byte of an answer came back: the
    /// backend closed it while idle (its keep-alive ran out, or it is stopping), so it never
    /// saw this request. It is sent once more on a new connection.
    Stale(Failure),
    /// The request (or part of it) reached the backend, which failed before answering.
    FailedAfterSending(Failure),
    /// The client's side broke (it left, or sent a malformed body): stop, answer if useful.
    Client(Failure),
}

fn json_error(code: u16, message: &str) -> Vec<u8> {
    let body = records::wire::ErrorBody::new(code, message).to_json();
    let reason = h1::reason_phrase(code);
    let mut out = Vec::with_capacity(160 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    h1::push_decimal(&mut out, u64::from(code));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: application/json\r\nContent-Length: ");
    h1::push_decimal(&mut out, body.len() as u64);
    if code == 503 {
        out.extend_from_slice(b"\r\nRetry-After: 1");
    }
    out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
    out
}

/// An IPv4 address as text without the formatting machinery (this runs once per request).
fn ip_text(ip: std::net::IpAddr) -> String {
    let std::net::IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push((b'0' + octet / 100) as char);
        }
        if octet >= 10 {
            text.push((b'0' + octet / 10 % 10) as char);
        }
        text.push((b'0' + octet % 10) as char);
    }
    text
}

impl Proxy {
    pub fn new(pool: Arc<Pool>, settings: Settings, metrics: &common::metrics::Metrics) -> Self {
        let id_prefix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0)
            ^ std::process::id();
        let mut peer_options = PeerOptions::new();
        // The connector reads only the connect timeout from a peer.
        peer_options.connection_timeout = Some(settings.connect_timeout);
        let stale_retries = common::metrics::counter(
            MetricName::LbStaleConnectionRetriesTotal,
            "Requests sent again on a new connection because a kept-alive one had been closed",
        );
        let refused = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                MetricName::LbRefusedRequestsTotal.as_str(),
                "Requests refused before forwarding (ambiguous framing, limits), by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        metrics.register(Box::new(stale_retries.clone()));
        metrics.register(Box::new(refused.clone()));
        let connector = TransportConnector::new(None);
        let idle = IdlePool::new(settings.keepalive_pool_size, UPSTREAM_IDLE);
        Self {
            pool,
            peer_options: Arc::new(peer_options),
            settings: Settings {
                max_tries: settings.max_tries.clamp(1, TRIES_CAP),
                ..settings
            },
            connector,
            idle,
            request_ids: AtomicU64::new(0),
            id_prefix,
            stale_retries,
            refused,
        }
    }

    /// Closes the upstream connections idle longer than they may be kept.
    pub fn sweep_idle(&self) {
        self.idle.sweep();
    }

    /// Serves one client connection: its requests one after another (pipelined ones too, in
    /// order) until it closes, idles past CLIENT_KEEPALIVE_SECS, breaks a rule, or the load
    /// balancer stops (then after the request in progress).
    pub async fn serve_connection(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        mut stop: watch::Receiver<bool>,
    ) {
        let _ = tcp.set_nodelay(true);
        let client_ip = ip_text(peer.ip());
        let mut client = Client {
            tcp,
            buf: BytesMut::with_capacity(8 * 1024),
            timeout: self.settings.client_timeout,
        };
        let mut first = true;
        loop {
            let request = match self.read_request(&mut client, first, &mut stop).await {
                Ok(Some(request)) => request,
                // Closed, idle past the keep-alive, too slow, or the load balancer is stopping.
                Ok(None) => return,
                Err(refusal) => {
                    self.refused.with_label_values(&[refusal.reason]).inc();
                    let failure = Failure::new(refusal.status, refusal.message);
                    self.fail(&mut client, None, failure).await;
                    client.linger().await;
                    return;
                }
            };
            first = false;
            // Stopping: this request is answered, then the connection closes.
            let keep_alive = request.keep_alive && !*stop.borrow();
            match self
                .forward(&mut client, &request, keep_alive, &client_ip)
                .await
            {
                Next::Request if keep_alive => {}
                Next::Request | Next::Close => return,
                Next::Linger => return client.linger().await,
            }
        }
    }

    /// The next request head on the connection: `Ok(None)` when the client closed or went quiet
    /// (idle past the keep-alive between requests, or past the client timeout within a head), or
    /// when the load balancer stops while the connection is idle.
    async fn read_request(
        &self,
        client: &mut Client,
        first: bool,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<Request>, Refusal> {
        loop {
            if !client.buf.is_empty() {
                if let Some(request) = h1::parse_request(&mut client.buf)? {
                    return Ok(Some(request));
                }
            }
            let read = if client.buf.is_empty() {
                // Between requests: idle time is bounded by the keep-alive, not the timeout.
                let wait = if first {
                    self.settings.client_timeout
                } else {
                    self.settings.client_keepalive
                };
                tokio::select! {
                    read = client.read_more(wait) => read,
                    _ = stop.wait_for(|down| *down) => return Ok(None),
                }
            } else {
                client.read_more(self.settings.client_timeout).await
            };
            match read {
                Ok(n) if n > 0 => {}
                _ => return Ok(None),
            }
        }
    }

    /// The request's id for the backend: a new one unless the client sent one.
    fn request_id(&self, request: &Request) -> Option<RequestId> {
        (!request.has_request_id).then(|| RequestId {
            prefix: self.id_prefix,
            n: self.request_ids.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Forwards one request, retrying on other backends while that is safe, and counts its
    /// answer. Says what becomes of the client's connection.
    async fn forward(
        &self,
        client: &mut Client,
        request: &Request,
        keep_alive: bool,
        client_ip: &str,
    ) -> Next {
        let mut head = Vec::with_capacity(512);
        let request_id = self.request_id(request);
        request.write_upstream_head(request_id, client_ip, &mut head);
        let mut body = Body::new(request.framing);
        // Backends tried so far: `tried[..attempt]`.
        let mut tried = [SocketAddr::from(([0, 0, 0, 0], 0)); TRIES_CAP];
        let mut last: Option<Arc<Member>> = None;
        let exchange = Exchange {
            request,
            head: &head,
            keep_alive,
        };
        for attempt in 0..self.settings.max_tries {
            if attempt > 0 {
                self.pool.retries_inc();
            }
            let Some(member) = self.pool.select(&tried[..attempt]) else {
                let failure = if attempt == 0 {
                    self.pool.metrics.no_backend.inc();
                    Failure::new(503, "no healthy backend")
                } else {
                    Failure::new(502, "no other healthy backend to retry on")
                };
                return self.fail(client, last.as_deref(), failure).await;
            };
            tried[attempt] = member.addr;
            last = Some(member.clone());
            let last_try = attempt + 1 == self.settings.max_tries;
            let mut outcome = self
                .try_once(client, &exchange, &member, &mut body, false)
                .await;
            if let Try::Stale(failure) = outcome {
                // Not a second try on another backend: the same one, on a new connection,
                // once, and only if the whole body can be sent again.
                outcome = if body.replayable() {
                    self.stale_retries.inc();
                    self.try_once(client, &exchange, &member, &mut body, true)
                        .await
                } else {
                    Try::FailedAfterSending(failure)
                };
            }
            match outcome {
                Try::Answered { reuse: true } => return Next::Request,
                Try::Answered { reuse: false } => return Next::Close,
                Try::NotConnected(failure) => {
                    self.pool.connect_failed(&member);
                    if last_try {
                        return self.fail(client, last.as_deref(), failure).await;
                    }
                }
                Try::FailedAfterSending(failure) | Try::Stale(failure) => {
                    // Bytes may have reached the backend: only idempotent requests whose
                    // whole body can be sent again go elsewhere.
                    if last_try
                        || !request.idempotent()
                        || !body.replayable()
                        || failure.status == 504
                    {
                        return self.fail(client, last.as_deref(), failure).await;
                    }
                }
                Try::Client(failure) => return self.fail(client, last.as_deref(), failure).await,
            }
        }
        unreachable!("the last try returns")
    }

    /// One try on one backend: connect (or reuse an idle connection; `fresh`: never), send the
    /// head with what of the body is at hand, then the rest as the client sends it while
    /// watching for an early answer, read the answer's head, then stream the answer to the
    /// client.
    async fn try_once(
        &self,
        client: &mut Client,
        exchange: &Exchange<'_>,
        member: &Member,
        body: &mut Body,
        fresh: bool,
    ) -> Try {
        let request = exchange.request;
        let _in_flight = member.busy();
        let peer = Gateway::new(member.addr, self.peer_options.clone());
        let started = Instant::now();
        let pooled = if fresh {
            None
        } else {
            self.idle.take(peer.reuse_hash())
        };
        let (io, reused) = match pooled {
            Some(stream) => (stream, true),
            None => match self.connector.new_stream(&peer).await {
                Ok(stream) => (stream, false),
                Err(e) => return Try::NotConnected(connect_failure(&e)),
            },
        };
        let mut upstream = Upstream {
            io,
            buf: BytesMut::new(),
            reused,
            received: false,
        };
        let read_timeout = self.settings.read_timeout;

        // The head, what an earlier try kept of the body, and what of it is already here: one
        // write for a request whose body came with its head.
        let mut out = Vec::with_capacity(exchange.head.len() + 256);
        out.extend_from_slice(exchange.head);
        for chunk in &body.chunks {
            body.encode(chunk, &mut out);
        }
        let continue_wanted = request.expects_continue && !body.done && body.untouched();
        loop {
            match body.buffered(&mut client.buf) {
                Ok(Some(piece)) => body.encode(&piece, &mut out),
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = e, "malformed request body");
                    return Try::Client(Failure::new(400, "malformed request body"));
                }
            }
        }
        body.encode_end(&mut out);
        if let Err(e) = upstream.write(&out, read_timeout).await {
            return upstream.failed(&e);
        }
        if continue_wanted {
            // `Expect` is not forwarded: the client may send its body now.
            if client
                .write(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
            {
                return Try::Client(Failure::client_gone());
            }
        }

        // The rest of the body, as the client sends it.
        let mut complete = true;
        let mut write_error = None;
        while !body.done {
            let piece = tokio::select! {
                biased;
                piece = body.next(client) => piece,
                // The backend answered before the body was complete (a 413, a 401): its answer
                // is read and forwarded. (Reads are cancel-safe: nothing is lost to the race.)
                read = upstream.read_any() => match read {
                    Ok(n) if n > 0 => {
                        complete = false;
                        break;
                    }
                    Ok(_) => return upstream.failed(&io::ErrorKind::UnexpectedEof.into()),
                    Err(e) => return upstream.failed(&e),
                },
            };
            out.clear();
            match piece {
                Ok(Some(piece)) => body.encode(&piece, &mut out),
                Ok(None) => {}
                Err(failure) => return Try::Client(failure),
            }
            body.encode_end(&mut out);
            if let Err(e) = upstream.write(&out, read_timeout).await {
                // The backend stopped taking the body: often because it answered and closed (a
                // 413 past its body limit). Its answer may be waiting; read it before calling
                // it a failure.
                write_error = Some(e);
                complete = false;
                break;
            }
        }

        // The answer's head; informational answers (100 Continue, 103) are not forwarded.
        let response = loop {
            match h1::parse_response(&mut upstream.buf, request.is_head()) {
                Ok(Some(response)) if response.status == 101 => {
                    return Try::FailedAfterSending(Failure::new(
                        502,
                        "backend switched protocols, which this load balancer does not proxy",
                    ))
                }
                Ok(Some(response)) if response.informational() => continue,
                Ok(Some(response)) => break response,
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = e, backend = %member.label, "bad answer head");
                    return Try::FailedAfterSending(Failure::new(
                        502,
                        format!("backend sent a bad answer: {e}"),
                    ));
                }
            }
            match upstream.read_more(read_timeout).await {
                Ok(n) if n > 0 => {}
                Ok(_) => {
                    let e = write_error
                        .take()
                        .unwrap_or_else(|| io::ErrorKind::UnexpectedEof.into());
                    return upstream.failed(&e);
                }
                Err(e) => return upstream.failed(&write_error.take().unwrap_or(e)),
            }
        };
        member.latency.observe(started.elapsed().as_secs_f64());
        // Counted before the client can have the answer (a client that then reads the
        // metrics finds its request there).
        member.count(response.status);

        out.clear();
        let outgoing = response.write_client_head(exchange.keep_alive, request.http10, &mut out);
        let reuse = response.client_keep_alive(exchange.keep_alive, request.http10);
        let mut left = match response.framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let mut decoder = ChunkedDecoder::default();
        loop {
            let finished = match response.framing {
                Framing::None => true,
                Framing::Length(_) => {
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(upstream.buf.len());
                    out.extend_from_slice(&upstream.buf[..take]);
                    upstream.buf.advance(take);
                    left -= take as u64;
                    left == 0
                }
                Framing::Chunked => loop {
                    match decoder.next(&mut upstream.buf) {
                        Ok(Piece::Data(data)) if outgoing == Outgoing::Chunked => {
                            h1::push_chunk(&mut out, &data)
                        }
                        Ok(Piece::Data(data)) => out.extend_from_slice(&data),
                        Ok(Piece::NeedMore) => break false,
                        Ok(Piece::Done) => {
                            if outgoing == Outgoing::Chunked {
                                out.extend_from_slice(h1::LAST_CHUNK);
                            }
                            break true;
                        }
                        Err(e) => {
                            tracing::debug!(error = e, backend = %member.label, "bad chunk in an answer");
                            let _ = client.write(&out).await;
                            return Try::Answered { reuse: false };
                        }
                    }
                },
                Framing::UntilClose => {
                    out.extend_from_slice(&upstream.buf);
                    upstream.buf.clear();
                    false
                }
            };
            if finished || !out.is_empty() {
                if client.write(&out).await.is_err() {
                    return Try::Answered { reuse: false };
                }
                out.clear();
            }
            if finished {
                break;
            }
            match upstream.read_more(read_timeout).await {
                Ok(n) if n > 0 => {}
                Ok(_) if response.framing == Framing::UntilClose => {
                    return Try::Answered { reuse: false }
                }
                result => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, backend = %member.label, "backend cut its answer short");
                    }
                    return Try::Answered { reuse: false };
                }
            }
        }
        if complete && response.keep_alive && upstream.buf.is_empty() {
            self.idle.put(peer.reuse_hash(), upstream.io);
        }
        if !complete && reuse {
            // An answer that came before the whole body: the rest of the body is read and
            // dropped after it, so the connection stays usable and the client is not reset
            // mid-send.
            loop {
                match body.next(client).await {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => return Try::Answered { reuse: false },
                }
            }
        }
        Try::Answered { reuse }
    }

    /// Answers the client with a JSON error (status 0: the client is gone, answer nothing) and
    /// closes the connection after it. Counts the failure against `member` (or as unassigned),
    /// then answers it: counted first, so that a client that has its answer sees it in the
    /// metrics.
    async fn fail(&self, client: &mut Client, member: Option<&Member>, failure: Failure) -> Next {
        if failure.status == 0 {
            return Next::Close;
        }
        match member {
            Some(member) => member.count(failure.status),
            None => self.pool.count_unassigned(failure.status),
        }
        if let Err(err) = client
            .write(&json_error(failure.status, &failure.message))
            .await
        {
            tracing::debug!(%err, "could not send the error response");
        }
        Next::Linger
    }
}

/// What one request sends, the same on every try.
struct Exchange<'a> {
    request: &'a Request,
    /// The head as the backend gets it.
    head: &'a [u8],
    /// The client's connection may take another request after this one.
    keep_alive: bool,
}

/// What becomes of a client's connection after a request.
enum Next {
    /// It may take the next request.
    Request,
    /// It closes now.
    Close,
    /// It closes after an error answer, reading what the client still sends for a moment.
    Linger,
}

fn connect_failure(e: &pingora::Error) -> Failure {
    match e.etype() {
        ErrorType::ConnectTimedout => Failure::new(504, "backend timed out"),
        etype => Failure::new(502, format!("backend failed: {}", etype.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_text_is_dotted_decimal() {
        for ip in ["127.0.0.1", "10.200.3.45", "0.0.0.0", "255.255.255.255"] {
            assert_eq!(ip_text(ip.parse().unwrap()), ip);
        }
        assert_eq!(ip_text("::1".parse().unwrap()), "::1");
    }

    #[test]
    fn errors_are_json_with_a_status() {
        let answer = String::from_utf8(json_error(503, "no healthy backend")).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nRetry-After: 1"), "{head}");
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "no healthy backend");
        assert_eq!(v["status"], 503);
    }
}
