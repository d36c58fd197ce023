//! The data path: read a client's request, check that its framing is unambiguous, pick the next
//! healthy gateway, forward the request over a kept-alive upstream connection, stream the answer
//! back, and count it.
//!
//! It is built on Pingora's HTTP/1 sessions and connector (`pingora-core`), with its own list of
//! idle upstream connections (`idle.rs`), rather than on the generic `ProxyHttp` framework: that framework runs every request through
//! its cache, module and sub-request machinery and two task channels, which cost this proxy
//! about half of its instructions per request (BENCHMARKS.md). What a load balancer needs is
//! here, in one function a reader can follow: retries, timeouts, forwarding headers, metrics
//! and JSON errors.

use crate::edge::{check_request, hop_by_hop};
use crate::idle::IdlePool;
use crate::peer::Gateway;
use crate::pool::{Member, Pool};
use bytes::Bytes;
use pingora::connectors::TransportConnector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::v1::client::HttpSession as UpstreamH1;
use pingora::protocols::http::v1::server::HttpSession as ClientSession;
use pingora::protocols::Stream;
use pingora::upstreams::peer::{Peer, PeerOptions};
use pingora::{Error, ErrorType};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

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

/// How sending the request body ended.
enum Sent {
    /// All of it reached the backend.
    All,
    /// The backend answered before it had all of it (a 413, a 401): its answer is read.
    AnsweredEarly,
    /// It failed; the outcome to report.
    Failed(Try),
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
    let body = Bytes::from(common::wire::ErrorBody::new(code, message).to_json());
    let mut header = ResponseHeader::build(code, Some(4)).expect("valid status");
    let _ = header.insert_header("Content-Type", "application/json");
    let _ = header.insert_header("Content-Length", body.len().to_string());
    if code == 503 {
        let _ = header.insert_header("Retry-After", "1");
    }
    (header, body)
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

impl Proxy {
    pub fn new(pool: Arc<Pool>, settings: Settings, metrics: &common::metrics::Metrics) -> Self {
        let id_prefix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0)
            ^ std::process::id();
        let mut peer_options = PeerOptions::new();
        // The connector reads only the connect timeout from a peer; read timeouts are set on
        // each session and the idle time on each release.
        peer_options.connection_timeout = Some(settings.connect_timeout);
        let stale_retries = common::metrics::counter(
            "lb_stale_connection_retries_total",
            "Requests sent again on a new connection because a kept-alive one had been closed",
        );
        let refused = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "lb_refused_requests_total",
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
        tcp: tokio::net::TcpStream,
        client: SocketAddr,
        mut stop: watch::Receiver<bool>,
    ) {
        let _ = tcp.set_nodelay(true);
        let client_ip = ip_text(client.ip());
        let mut stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(tcp));
        let mut prefix = None;
        let mut first = true;
        loop {
            let mut session = ClientSession::new(stream);
            session.set_read_timeout(Some(self.settings.client_timeout));
            session.set_write_timeout(Some(self.settings.client_timeout));
            session.set_total_drain_timeout(Some(self.settings.client_timeout));
            session.set_pipelining_enabled(true);
            // An early answer (a 413, a 401) is followed by reading what is left of the body,
            // so the connection stays usable and the client is not reset before it reads it.
            session.set_close_on_response_before_downstream_finish(false);
            if let Some(prefix) = prefix.take() {
                session.set_pipelined_prefix(prefix);
            }
            if !first {
                // Between requests: idle time is bounded by the keep-alive, not the timeout.
                session.set_server_keepalive(Some(self.settings.client_keepalive.as_secs().max(1)));
            }
            first = false;
            let read = tokio::select! {
                read = session.read_request() => read,
                // Stopping: an idle connection closes now.
                _ = stop.wait_for(|down| *down) => return,
            };
            match read {
                Ok(Some(_)) => {}
                // The client closed an idle kept-alive connection, or idled past the keep-alive.
                Ok(None) => return,
                Err(e) => {
                    if matches!(e.etype(), ErrorType::InvalidHTTPHeader) {
                        self.refused.with_label_values(&["malformed"]).inc();
                        self.fail(&mut session, None, bad_request(&e)).await;
                    }
                    return;
                }
            }
            if let Err(refusal) =
                check_request(session.req_header(), || session.get_headers_raw_bytes())
            {
                self.refused.with_label_values(&[refusal.reason]).inc();
                self.fail(
                    &mut session,
                    None,
                    Failure::new(refusal.status, refusal.message),
                )
                .await;
                return;
            }
            if *stop.borrow() {
                // Stopping: answer this request, then close the connection.
                session.set_server_keepalive(None);
            }
            // Counted inside, before the answer reaches the client.
            if !self.forward(&mut session, &client_ip).await {
                return;
            }
            // Stopping: the answer is out, the connection closes.
            if session.finish_body().await.is_err() || *stop.borrow() {
                return;
            }
            match session.reuse().await {
                Ok(Some(reusable)) => {
                    let (next, overread) = reusable.into_parts();
                    stream = next;
                    prefix = overread;
                }
                _ => return,
            }
        }
    }

    /// `X-Request-Id` (a new one unless the client sent one) and `X-Forwarded-For` (the
    /// client's address appended to what the client sent).
    fn forwarding(&self, session: &ClientSession, client_ip: &str) -> Forwarding {
        let headers = &session.req_header().headers;
        let request_id = (!headers.contains_key("x-request-id")).then(|| {
            let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
            http::HeaderValue::try_from(format!("{:08x}-{n:x}", self.id_prefix))
                .expect("hex digits are a valid header value")
        });
        let forwarded_for = match headers.get("x-forwarded-for").map(|v| v.to_str()) {
            Some(Ok(earlier)) => {
                http::HeaderValue::try_from(format!("{earlier}, {client_ip}")).ok()
            }
            // A chain that is not text is replaced, not extended.
            Some(Err(_)) | None => http::HeaderValue::try_from(client_ip).ok(),
        };
        Forwarding {
            request_id,
            forwarded_for,
        }
    }

    /// The request as the backend gets it: HTTP/1.1, no hop-by-hop headers, the forwarding
    /// headers added.
    fn upstream_request(
        &self,
        session: &ClientSession,
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
    async fn forward(&self, session: &mut ClientSession, client_ip: &str) -> bool {
        let forwarding = self.forwarding(session, client_ip);
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
            let mut outcome = self
                .try_once(
                    session,
                    &member,
                    &forwarding,
                    &mut body,
                    expects_continue,
                    false,
                )
                .await;
            if let Try::Stale(failure) = outcome {
                // Not a second try on another backend: the same one, on a new connection,
                // once, and only if the whole body can be sent again.
                outcome = if body.replayable() {
                    self.stale_retries.inc();
                    self.try_once(
                        session,
                        &member,
                        &forwarding,
                        &mut body,
                        expects_continue,
                        true,
                    )
                    .await
                } else {
                    Try::FailedAfterSending(failure)
                };
            }
            match outcome {
                Try::Answered { reuse } => return reuse,
                Try::NotConnected(failure) => {
                    self.pool.connect_failed(&member);
                    if last_try {
                        self.fail(session, last.as_deref(), failure).await;
                        return false;
                    }
                }
                Try::FailedAfterSending(failure) | Try::Stale(failure) => {
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

    /// A failure on the way to the backend: on a kept-alive connection, before any byte of an
    /// answer, it means the backend had closed that connection.
    fn sending_failed(reused: bool, upstream: &UpstreamH1, e: &Error) -> Try {
        if reused
            && upstream.resp_header().is_none()
            && !matches!(
                e.etype(),
                ErrorType::ReadTimedout | ErrorType::WriteTimedout
            )
        {
            Try::Stale(upstream_failure(e))
        } else {
            Try::FailedAfterSending(upstream_failure(e))
        }
    }

    /// One try on one backend: connect (or reuse a pooled connection; `fresh`: never), send the
    /// request and its body while watching for an early answer, read the answer's header, then
    /// stream the answer to the client.
    async fn try_once(
        &self,
        session: &mut ClientSession,
        member: &Member,
        forwarding: &Forwarding,
        body: &mut Body,
        expects_continue: bool,
        fresh: bool,
    ) -> Try {
        let request = match self.upstream_request(session, forwarding) {
            Ok(request) => request,
            Err(e) => return Try::Client(bad_request(&e)),
        };
        let _in_flight = member.busy();
        let peer = Gateway::new(member.addr, self.peer_options.clone());
        let started = Instant::now();
        let pooled = if fresh {
            None
        } else {
            self.idle.take(peer.reuse_hash())
        };
        let connected = match pooled {
            Some(stream) => Ok((stream, true)),
            None => self.connector.new_stream(&peer).await.map(|s| (s, false)),
        };
        let (mut upstream, reused) = match connected {
            Ok((stream, reused)) => (UpstreamH1::new_with_options(stream, &peer), reused),
            Err(e) => return Try::NotConnected(upstream_failure(&e)),
        };
        upstream.read_timeout = Some(self.settings.read_timeout);
        if !body.done || !body.chunks.is_empty() {
            // Only a body can fill a socket buffer; a header alone never waits (and a
            // timeout costs a timer per write).
            upstream.write_timeout = Some(self.settings.read_timeout);
        }

        if let Err(e) = upstream.write_request_header(request).await {
            return Self::sending_failed(reused, &upstream, &e);
        }
        let mut complete = true;
        match self
            .send_body(session, &mut upstream, body, expects_continue, reused)
            .await
        {
            Sent::All => {}
            Sent::AnsweredEarly => complete = false,
            Sent::Failed(outcome) => return outcome,
        }

        // The answer's header; informational answers (100 Continue, 103) are not forwarded.
        let mut early = !complete;
        let mut response = loop {
            if !early {
                if let Err(e) = upstream.read_response().await {
                    return Self::sending_failed(reused, &upstream, &e);
                }
            }
            early = false;
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
                    if session.write_body(&chunk).await.is_err() {
                        return Try::Answered { reuse: false };
                    }
                    if upstream.is_body_done() {
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
        if complete {
            upstream.respect_keepalive();
            if let Some(stream) = upstream.reuse().await {
                self.idle.put(peer.reuse_hash(), stream);
            }
        }
        Try::Answered { reuse: true }
    }

    /// Sends the request body: first what an earlier try kept, then the rest as the client
    /// sends it, while watching for the backend answering before it has all of it.
    async fn send_body(
        &self,
        session: &mut ClientSession,
        upstream: &mut UpstreamH1,
        body: &mut Body,
        expects_continue: bool,
        reused: bool,
    ) -> Sent {
        let mut write_error = None;
        for chunk in &body.chunks {
            if let Err(e) = upstream.write_body(chunk).await {
                write_error = Some(e);
                break;
            }
        }
        if write_error.is_none()
            && !body.done
            && expects_continue
            && body.chunks.is_empty()
            && !body.overflowed
        {
            // `Expect` is not forwarded: the client may send its body now.
            if session.write_continue_response().await.is_err() {
                return Sent::Failed(Try::Client(Failure::new(0, "")));
            }
        }
        while write_error.is_none() && !body.done {
            let read = tokio::select! {
                biased;
                read = session.read_body_bytes() => read,
                // The backend answered before the body was complete (Pingora's header read
                // keeps what it has read when it is dropped, so polling it here loses nothing).
                answer = upstream.read_response() => return match answer {
                    Ok(_) => Sent::AnsweredEarly,
                    Err(e) => Sent::Failed(Self::sending_failed(reused, upstream, &e)),
                },
            };
            match read {
                Ok(Some(chunk)) => {
                    body.keep(&chunk);
                    if let Err(e) = upstream.write_body(&chunk).await {
                        write_error = Some(e);
                    }
                }
                Ok(None) => body.done = true,
                Err(e) => return Sent::Failed(Try::Client(client_failure(&e))),
            }
        }
        let write_error = match write_error {
            Some(e) => e,
            None => match upstream.finish_body().await {
                Ok(_) => return Sent::All,
                Err(e) => e,
            },
        };
        // The backend stopped taking the body: often because it answered and closed (a 413
        // past its body limit). Its answer may be waiting; read it before calling it a failure.
        match upstream.read_response().await {
            Ok(_) if upstream.resp_header().is_some() => Sent::AnsweredEarly,
            _ => Sent::Failed(Self::sending_failed(reused, upstream, &write_error)),
        }
    }

    /// Answers the client with a JSON error (status 0: the client is gone, answer nothing) and
    /// closes the connection after it. Counts the failure against `member` (or as unassigned),
    /// then answers it: counted first, so that a client that has its answer sees it in the
    /// metrics.
    async fn fail(
        &self,
        session: &mut ClientSession,
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
        session.set_server_keepalive(None);
        if session
            .response_written()
            .is_some_and(|r| !r.status.is_informational())
        {
            return failure.status;
        }
        let (header, body) = json_error(failure.status, &failure.message);
        let written = async {
            session.write_response_header(Box::new(header)).await?;
            session.write_body(&body).await?;
            session.finish_body().await
        };
        if let Err(err) = written.await {
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

/// A failure reading the client's body: gone (nobody to answer), too slow (408), or a body
/// that breaks the framing rules (400).
fn client_failure(e: &Error) -> Failure {
    match e.etype() {
        ErrorType::ReadTimedout => Failure::new(408, "request body timed out"),
        ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => {
            Failure::new(0, "")
        }
        // Pingora's body module, which names this type, is private to it.
        etype if etype.as_str() == "PrematureBodyEnd" => Failure::new(0, ""),
        _ => {
            tracing::debug!(error = %e, "malformed request body");
            Failure::new(400, "malformed request body")
        }
    }
}

fn bad_request(e: &Error) -> Failure {
    tracing::debug!(error = %e, "bad request");
    Failure::new(400, "bad request")
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
    fn errors_are_json_with_a_status() {
        let (header, body) = json_error(503, "no healthy backend");
        assert_eq!(header.status.as_u16(), 503);
        assert_eq!(header.headers["retry-after"], "1");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "no healthy backend");
        assert_eq!(v["status"], 503);
    }
}
