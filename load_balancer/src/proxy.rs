//! The data path: read a client's request, pick the next healthy gateway, forward the request
//! over a kept-alive upstream connection, stream the answer back, and count it.
//!
//! It is built on Pingora's HTTP/1 sessions, connection pool and server (`pingora-core`)
//! rather than on the generic `ProxyHttp` framework: that framework runs every request through
//! its cache, module and sub-request machinery and two task channels, which cost this proxy
//! about half of its instructions per request (BENCHMARKS.md). What a load balancer needs is
//! here, in one function a reader can follow: retries, timeouts, forwarding headers, metrics
//! and JSON errors.

use crate::pool::{Member, Pool};
use async_trait::async_trait;
use bytes::Bytes;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::client::HttpSession as UpstreamSession;
use pingora::protocols::http::v1::client::HttpSession as UpstreamH1;
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::socket::SocketAddr as PeerAddr;
use pingora::server::ShutdownWatch;
use pingora::upstreams::peer::{Peer, PeerOptions};
use pingora::{Error, ErrorType};
use std::fmt;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tries per request are capped here (and by `MAX_TRIES`), so the per-request record of
/// tried backends is a fixed array, not a heap allocation.
pub const TRIES_CAP: usize = 8;

/// Request bodies up to this size are kept while they are sent, so an idempotent request can
/// be sent again to another backend; a longer body is never re-sent.
pub const RETRY_BODY_LIMIT: usize = 64 * 1024;

/// How long an idle upstream connection stays in the pool.
const UPSTREAM_IDLE: Duration = Duration::from_secs(60);

pub struct Settings {
    pub max_tries: usize,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

pub struct Proxy {
    pool: Arc<Pool>,
    settings: Settings,
    /// The connect timeout, shared by every `Gateway` peer.
    peer_options: Arc<PeerOptions>,
    connector: Connector,
    request_ids: AtomicU64,
    id_prefix: u32,
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
}

/// What happened to one try on one backend.
enum Try {
    /// The backend's answer was forwarded (or the client went away while it was); `reuse`
    /// says whether the client's connection can take another request.
    Answered { reuse: bool },
    /// Nothing reached the backend: any method may go elsewhere.
    NotConnected(Failure),
    /// The request (or part of it) reached the backend, which failed before answering.
    FailedAfterSending(Failure),
    /// The client's side broke (it left, or sent a malformed body): stop, answer if useful.
    Client(Failure),
}

/// The request body as read so far, kept for a retry while it fits `RETRY_BODY_LIMIT`.
#[derive(Default)]
struct Body {
    chunks: Vec<Bytes>,
    kept_len: usize,
    /// Some of what was read has been dropped from `chunks`: the body cannot be sent again.
    overflowed: bool,
    /// Everything the client sent has been read.
    done: bool,
}

impl Body {
    fn replayable(&self) -> bool {
        !self.overflowed
    }

    fn keep(&mut self, chunk: &Bytes) {
        if self.overflowed {
            return;
        }
        if self.kept_len + chunk.len() > RETRY_BODY_LIMIT {
            self.overflowed = true;
            self.chunks = Vec::new();
        } else {
            self.kept_len += chunk.len();
            self.chunks.push(chunk.clone());
        }
    }
}

fn json_error(code: u16, message: &str) -> (ResponseHeader, Bytes) {
    let body = Bytes::from(serde_json::json!({"error": message, "status": code}).to_string());
    let mut header = ResponseHeader::build(code, Some(4)).expect("valid status");
    let _ = header.insert_header("Content-Type", "application/json");
    let _ = header.insert_header("Content-Length", body.len().to_string());
    if code == 503 {
        let _ = header.insert_header("Retry-After", "1");
    }
    (header, body)
}

const KEEP_ALIVE: http::HeaderName = http::HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: http::HeaderName = http::HeaderName::from_static("proxy-connection");

/// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, not the message, so
/// they are not forwarded. `Expect` is answered here too.
fn is_hop_by_hop(name: &http::HeaderName) -> bool {
    use http::header::*;
    name == CONNECTION
        || name == TE
        || name == TRAILER
        || name == UPGRADE
        || name == PROXY_AUTHENTICATE
        || name == EXPECT
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// The hop-by-hop headers present, and any header the `Connection` header names. One pass
/// over the (few) names, so that a message without any costs no hash lookup.
fn hop_by_hop(headers: &http::HeaderMap) -> Vec<http::HeaderName> {
    let mut found: Vec<http::HeaderName> = Vec::new();
    for name in headers.keys() {
        if is_hop_by_hop(name) {
            found.push(name.clone());
        }
    }
    if !found.contains(&http::header::CONNECTION) {
        return found;
    }
    for value in headers.get_all(http::header::CONNECTION) {
        for token in value.to_str().unwrap_or("").split(',') {
            if let Ok(name) = http::HeaderName::from_bytes(token.trim().as_bytes()) {
                if !found.contains(&name) && headers.contains_key(&name) {
                    found.push(name);
                }
            }
        }
    }
    found
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

/// The headers this load balancer adds to every request it forwards, made once per request
/// (a retry sends the same ones).
struct Forwarding {
    request_id: Option<http::HeaderValue>,
    forwarded_for: Option<http::HeaderValue>,
}

/// A gateway as Pingora's connector and connection pool see it. Pingora's general `HttpPeer`
/// carries TLS, proxy and ALPN settings and hashes all of them into its pool key on every
/// request; a plain-HTTP gateway is just an address.
#[derive(Clone)]
struct Gateway {
    addr: PeerAddr,
    key: u64,
    options: Arc<PeerOptions>,
}

impl Gateway {
    fn new(addr: SocketAddr, options: Arc<PeerOptions>) -> Self {
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
    /// The connection pool's key: one pool per gateway address.
    fn reuse_hash(&self) -> u64 {
        self.key
    }
    fn get_peer_options(&self) -> Option<&PeerOptions> {
        Some(&self.options)
    }
    /// Pingora checks with `getpeername` (a system call per request) that a pooled connection
    /// still leads to this address. The pool is keyed by the address and owns its sockets, so
    /// a pooled connection cannot lead elsewhere.
    fn matches_fd<V: AsRawFd>(&self, _fd: V) -> bool {
        true
    }
}

impl Proxy {
    pub fn new(pool: Arc<Pool>, settings: Settings, connector: ConnectorOptions) -> Self {
        let id_prefix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0)
            ^ std::process::id();
        let mut peer_options = PeerOptions::new();
        // The connector reads only the connect timeout from a peer; read timeouts are set on
        // each session and the idle time on each release.
        peer_options.connection_timeout = Some(settings.connect_timeout);
        Self {
            pool,
            peer_options: Arc::new(peer_options),
            settings: Settings {
                max_tries: settings.max_tries.clamp(1, TRIES_CAP),
                ..settings
            },
            connector: Connector::new(Some(connector)),
            request_ids: AtomicU64::new(0),
            id_prefix,
        }
    }

    /// `X-Request-Id` (a new one unless the client sent one) and `X-Forwarded-For` (the
    /// client's address appended to what the client sent).
    fn forwarding(&self, session: &ServerSession) -> Forwarding {
        let headers = &session.req_header().headers;
        let request_id = (!headers.contains_key("x-request-id")).then(|| {
            let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
            http::HeaderValue::try_from(format!("{:08x}-{n:x}", self.id_prefix))
                .expect("hex digits are a valid header value")
        });
        let forwarded_for = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .and_then(|client| {
                let ip = ip_text(client.ip());
                let text = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                    Some(earlier) => format!("{earlier}, {ip}"),
                    None => ip,
                };
                http::HeaderValue::try_from(text).ok()
            });
        Forwarding {
            request_id,
            forwarded_for,
        }
    }

    /// The request as the backend gets it: HTTP/1.1, no hop-by-hop headers, the forwarding
    /// headers added.
    fn upstream_request(
        &self,
        session: &ServerSession,
        forwarding: &Forwarding,
    ) -> pingora::Result<Box<RequestHeader>> {
        let mut req = Box::new(session.req_header().clone());
        req.set_version(http::Version::HTTP_11);
        for name in hop_by_hop(&req.headers) {
            req.remove_header(&name);
        }
        if let Some(id) = &forwarding.request_id {
            req.insert_header("X-Request-Id", id.clone())?;
        }
        if let Some(chain) = &forwarding.forwarded_for {
            req.insert_header("X-Forwarded-For", chain.clone())?;
        }
        Ok(req)
    }

    /// Forwards one request, retrying on other backends while that is safe, and counts its
    /// answer. Returns whether the client's connection may be reused.
    async fn forward(&self, session: &mut ServerSession) -> bool {
        let forwarding = self.forwarding(session);
        let idempotent = session.req_header().method.is_idempotent();
        let expects_continue = session
            .req_header()
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let mut body = Body {
            done: session.is_body_empty(),
            ..Body::default()
        };
        // Backends tried so far: `tried[..attempt]`.
        let mut tried = [SocketAddr::from(([0, 0, 0, 0], 0)); TRIES_CAP];
        let mut last: Option<Arc<Member>> = None;
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
                self.fail(session, last.as_deref(), failure).await;
                return false;
            };
            tried[attempt] = member.addr;
            last = Some(member.clone());
            let last_try = attempt + 1 == self.settings.max_tries;
            let outcome = self
                .try_once(session, &member, &forwarding, &mut body, expects_continue)
                .await;
            match outcome {
                Try::Answered { reuse } => return reuse,
                Try::NotConnected(failure) => {
                    self.pool.connect_failed(&member);
                    if last_try {
                        self.fail(session, last.as_deref(), failure).await;
                        return false;
                    }
                }
                Try::FailedAfterSending(failure) => {
                    // Bytes may have reached the backend: only idempotent requests whose
                    // whole body can be sent again go elsewhere.
                    if last_try || !idempotent || !body.replayable() || failure.status == 504 {
                        self.fail(session, last.as_deref(), failure).await;
                        return false;
                    }
                }
                Try::Client(failure) => {
                    self.fail(session, last.as_deref(), failure).await;
                    return false;
                }
            }
        }
        unreachable!("the last try returns")
    }

    /// One try on one backend: connect (or reuse a pooled connection), send the request and
    /// its body, read the answer's header, then stream the answer to the client.
    async fn try_once(
        &self,
        session: &mut ServerSession,
        member: &Member,
        forwarding: &Forwarding,
        body: &mut Body,
        expects_continue: bool,
    ) -> Try {
        let request = match self.upstream_request(session, forwarding) {
            Ok(request) => request,
            Err(e) => return Try::Client(bad_request(&e)),
        };
        let _in_flight = member.busy();
        let peer = Gateway::new(member.addr, self.peer_options.clone());
        let started = Instant::now();
        let mut upstream = match self.connector.get_http_session(&peer).await {
            Ok((UpstreamSession::H1(h1), _reused)) => h1,
            Ok(_) => return Try::NotConnected(Failure::new(502, "backend is not HTTP/1")),
            Err(e) => return Try::NotConnected(upstream_failure(&e)),
        };
        upstream.read_timeout = Some(self.settings.read_timeout);
        if !body.done || !body.chunks.is_empty() {
            // Only a body can fill a socket buffer; a header alone never waits (and a
            // timeout costs a timer per write).
            upstream.write_timeout = Some(self.settings.read_timeout);
        }

        if let Err(e) = upstream.write_request_header(request).await {
            return Try::FailedAfterSending(upstream_failure(&e));
        }
        if let Some(outcome) = self
            .send_body(session, &mut upstream, body, expects_continue)
            .await
        {
            return outcome;
        }

        // The answer's header; informational answers (100 Continue, 103) are not forwarded.
        let mut response = loop {
            if let Err(e) = upstream.read_response().await {
                return Try::FailedAfterSending(upstream_failure(&e));
            }
            let Some(header) = upstream.resp_header() else {
                return Try::FailedAfterSending(Failure::new(502, "backend sent no header"));
            };
            match header.status.as_u16() {
                101 => {
                    return Try::FailedAfterSending(Failure::new(
                        502,
                        "backend switched protocols, which this load balancer does not proxy",
                    ))
                }
                100..=199 => continue,
                _ => break Box::new(header.clone()),
            }
        };
        member.latency.observe(started.elapsed().as_secs_f64());
        let status = response.status.as_u16();
        response.set_version(http::Version::HTTP_11);
        for name in hop_by_hop(&response.headers) {
            response.remove_header(&name);
        }
        // Counted before the client can have the answer (a client that then reads the
        // metrics finds its request there).
        member.count(status);
        if session.write_response_header(response).await.is_err() {
            return Try::Answered { reuse: false };
        }

        // From here the client has the header: a failure can only cut the answer short.
        loop {
            match upstream.read_body_bytes().await {
                Ok(Some(chunk)) => {
                    let end = upstream.is_body_done();
                    if session.write_response_body(chunk, end).await.is_err() {
                        return Try::Answered { reuse: false };
                    }
                    if end {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, backend = %member.label, "backend cut its answer short");
                    return Try::Answered { reuse: false };
                }
            }
        }
        self.connector
            .release_http_session(UpstreamSession::H1(upstream), &peer, Some(UPSTREAM_IDLE))
            .await;
        Try::Answered { reuse: true }
    }

    /// Sends the request body: first what an earlier try kept, then the rest as the client
    /// sends it. `None` when all of it reached the backend.
    async fn send_body(
        &self,
        session: &mut ServerSession,
        upstream: &mut UpstreamH1,
        body: &mut Body,
        expects_continue: bool,
    ) -> Option<Try> {
        for chunk in &body.chunks {
            if let Err(e) = upstream.write_body(chunk).await {
                return Some(Try::FailedAfterSending(upstream_failure(&e)));
            }
        }
        if !body.done && expects_continue && body.chunks.is_empty() && !body.overflowed {
            // `Expect` is not forwarded: the client may send its body now.
            if session.write_continue_response().await.is_err() {
                return Some(Try::Client(Failure::new(0, "")));
            }
        }
        while !body.done {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    body.keep(&chunk);
                    if let Err(e) = upstream.write_body(&chunk).await {
                        return Some(Try::FailedAfterSending(upstream_failure(&e)));
                    }
                }
                Ok(None) => body.done = true,
                Err(e) => return Some(Try::Client(client_failure(&e))),
            }
        }
        if let Err(e) = upstream.finish_body().await {
            return Some(Try::FailedAfterSending(upstream_failure(&e)));
        }
        None
    }

    /// Answers the client with a JSON error (status 0: the client is gone, answer nothing).
    /// Counts the failure against `member` (or as unassigned), then answers it: counted
    /// first, so that a client that has its answer sees it in the metrics.
    async fn fail(
        &self,
        session: &mut ServerSession,
        member: Option<&Member>,
        failure: Failure,
    ) -> u16 {
        if failure.status == 0 {
            return 0;
        }
        match member {
            Some(member) => member.count(failure.status),
            None => self.pool.count_unassigned(failure.status),
        }
        let (header, body) = json_error(failure.status, &failure.message);
        if let Err(err) = session.write_error_response(header, body).await {
            tracing::debug!(%err, "could not send the error response");
        }
        failure.status
    }
}

fn upstream_failure(e: &Error) -> Failure {
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            Failure::new(504, "backend timed out")
        }
        etype => Failure::new(502, format!("backend failed: {}", etype.as_str())),
    }
}

fn client_failure(e: &Error) -> Failure {
    match e.etype() {
        ErrorType::ReadError
        | ErrorType::WriteError
        | ErrorType::ConnectionClosed
        | ErrorType::ReadTimedout => Failure::new(0, ""),
        _ => bad_request(e),
    }
}

fn bad_request(e: &Error) -> Failure {
    tracing::debug!(error = %e, "bad request");
    Failure::new(400, "bad request")
}

#[async_trait]
impl HttpServerApp for Proxy {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match session.read_request().await {
            Ok(true) => {}
            // The client closed an idle kept-alive connection.
            Ok(false) => return None,
            Err(e) => {
                if matches!(e.etype(), ErrorType::InvalidHTTPHeader) {
                    self.fail(&mut session, None, bad_request(&e)).await;
                }
                return None;
            }
        }
        if *shutdown.borrow() {
            // Stopping: answer this request, then close the connection.
            session.set_keepalive(None);
        }
        // Counted inside, before the answer reaches the client.
        let reuse = self.forward(&mut session).await;
        if !reuse {
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&session);
        match session.finish().await {
            Ok(Some(stream)) => Some(ReusedHttpStream::from_reusable_stream(stream, settings)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut headers = http::HeaderMap::new();
        headers.insert("connection", "keep-alive, x-secret".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("x-secret", "1".parse().unwrap());
        headers.insert("upgrade", "websocket".parse().unwrap());
        headers.insert("host", "lb".parse().unwrap());
        headers.insert("content-length", "3".parse().unwrap());
        let mut dropped: Vec<String> = hop_by_hop(&headers).iter().map(|n| n.to_string()).collect();
        dropped.sort();
        assert_eq!(dropped, ["connection", "keep-alive", "upgrade", "x-secret"]);
    }

    #[test]
    fn ipv4_text_is_dotted_decimal() {
        for ip in ["127.0.0.1", "10.200.3.45", "0.0.0.0", "255.255.255.255"] {
            assert_eq!(ip_text(ip.parse().unwrap()), ip);
        }
        assert_eq!(ip_text("::1".parse().unwrap()), "::1");
    }

    #[test]
    fn a_body_is_kept_for_a_retry_only_while_it_fits() {
        let mut body = Body::default();
        body.keep(&Bytes::from(vec![0u8; RETRY_BODY_LIMIT - 1]));
        assert!(body.replayable());
        body.keep(&Bytes::from_static(b"x"));
        assert!(body.replayable());
        assert_eq!(body.kept_len, RETRY_BODY_LIMIT);
        body.keep(&Bytes::from_static(b"y"));
        assert!(!body.replayable());
        assert!(body.chunks.is_empty(), "nothing half-kept");
    }

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

    #[test]
    fn errors_are_json_with_a_status() {
        let (header, body) = json_error(503, "no healthy backend");
        assert_eq!(header.status.as_u16(), 503);
        assert_eq!(header.headers["retry-after"], "1");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "no healthy backend");
        assert_eq!(v["status"], 503);
    }
}
