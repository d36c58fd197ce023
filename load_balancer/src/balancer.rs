//! The load balancer as a Pingora application: open this file beside Pingora's
//! `examples/load_balancer.rs`. `upstream_peer` asks Pingora's `LoadBalancer` (round robin,
//! random or consistent hashing, `LB_ALGORITHM`) for the next gateway in rotation; the other
//! hooks add what the lab needs: the forwarding headers, bounded retries of what is safe to
//! send twice, a JSON error for every failure the load balancer answers itself, and the
//! metrics by gateway.

use crate::gateways::{inet, Gateway, Gateways, InFlight};
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::selection::{BackendIter, BackendSelection};
use pingora::lb::LoadBalancer;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::H1UpgradePolicy;
use pingora::{Error, ErrorSource, ErrorType, RetryType};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tries per request are capped here and by `MAX_TRIES`.
pub const TRIES_CAP: usize = 8;

pub struct Settings {
    pub max_tries: usize,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Longest wait for the next piece of a client's body, or for a client to take an answer.
    pub client_timeout: Duration,
}

/// The `ProxyHttp` of the load balancer, over Pingora's `LoadBalancer<S>`.
pub struct Balancer<S: BackendSelection> {
    pub upstreams: Arc<LoadBalancer<S>>,
    pub gateways: Arc<Gateways>,
    pub settings: Settings,
    request_ids: AtomicU64,
    id_prefix: u32,
}

/// What one request carries from hook to hook.
#[derive(Default)]
pub struct Ctx {
    /// The gateways tried so far, in order.
    tried: Vec<SocketAddr>,
    /// The gateway of the current try, counted in flight while it has the request.
    current: Option<InFlight>,
    /// When the current gateway was chosen.
    chosen_at: Option<Instant>,
    /// The next try goes to the same gateway on a new connection: the kept-alive one had been
    /// closed before it saw the request.
    same_again: bool,
    /// A request is sent again that way once at most.
    stale_retried: bool,
    /// Its answer has been counted.
    counted: bool,
}

impl<S> Balancer<S>
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    pub fn new(
        upstreams: Arc<LoadBalancer<S>>,
        gateways: Arc<Gateways>,
        settings: Settings,
    ) -> Self {
        let id_prefix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0)
            ^ std::process::id();
        Self {
            upstreams,
            gateways,
            settings: Settings {
                max_tries: settings.max_tries.clamp(1, TRIES_CAP),
                ..settings
            },
            request_ids: AtomicU64::new(0),
            id_prefix,
        }
    }

    /// The gateway for this try: the next in rotation this request has not tried.
    fn select(&self, key: &[u8], tried: &[SocketAddr]) -> Option<Arc<Gateway>> {
        let backend = self.upstreams.select_with(key, 256, |backend, ready| {
            ready
                && inet(backend).is_some_and(|addr| {
                    !tried.contains(&addr)
                        && self.gateways.get(&addr).is_some_and(|g| g.in_rotation())
                })
        })?;
        self.gateways.get(&inet(&backend)?)
    }

    /// Counts a request's answer by gateway (`none`: answered before one was chosen).
    fn count(&self, ctx: &Ctx, status: u16) {
        match &ctx.current {
            Some(gateway) => gateway.0.count(status),
            None => self
                .gateways
                .metrics
                .requests
                .with_label_values(&["none", &status.to_string()])
                .inc(),
        }
    }
}

/// The key consistent hashing maps to a gateway: the `key` query parameter, else the path
/// and query (`/listing?prefix=P`: one gateway per prefix; `/items/K`: one per key).
fn request_key(req: &RequestHeader) -> &[u8] {
    let query = req.uri.query().unwrap_or("");
    match query.split('&').find_map(|pair| pair.strip_prefix("key=")) {
        Some(key) => key.as_bytes(),
        None => req
            .uri
            .path_and_query()
            .map_or(b"/", |pq| pq.as_str().as_bytes()),
    }
}

/// Fields a `Connection` header may not take off the request.
const PROTECTED: &str = "host content-length transfer-encoding x-forwarded-for x-forwarded-host \
                         x-forwarded-proto";

#[async_trait]
impl<S> ProxyHttp for Balancer<S>
where
    S: BackendSelection + Send + Sync + 'static,
    S::Iter: BackendIter,
{
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        _ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        // Pingora drops the fields `Connection` names before it forwards a request, and refuses
        // one that names `Host`: naming the framing or Host is ignored here instead (a named
        // Content-Length must not make the body vanish), as nginx does.
        let connection = session.req_header().headers.get_all("connection");
        let tokens: Vec<String> = connection
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(|t| String::from_utf8_lossy(t.trim_ascii()).into_owned())
            .filter(|t| !t.is_empty())
            .collect();
        let kept: Vec<&str> = tokens
            .iter()
            .map(String::as_str)
            .filter(|t| {
                !PROTECTED
                    .split_whitespace()
                    .any(|p| t.eq_ignore_ascii_case(p))
            })
            .collect();
        if kept.len() != tokens.len() {
            let req = session.req_header_mut();
            req.remove_header("connection");
            if !kept.is_empty() {
                req.insert_header("Connection", kept.join(", "))?;
            }
        }
        let timeout = Some(self.settings.client_timeout);
        session.as_downstream_mut().set_read_timeout(timeout);
        session.as_downstream_mut().set_write_timeout(timeout);
        // The body is kept (up to 64 KiB) as it is sent, so a retry can send it again.
        session.as_downstream_mut().enable_retry_buffering();
        // A gateway that answers before the body is all here (a 401, a 413): what the client
        // still sends is read and dropped (for 2 s at most) so that it reads the answer
        // instead of a reset (RFC 9112 §9.6).
        session
            .as_downstream_mut()
            .set_close_on_response_before_downstream_finish(false);
        session
            .as_downstream_mut()
            .set_total_drain_timeout(Some(Duration::from_secs(2)));
        Ok(())
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let gateway = if std::mem::take(&mut ctx.same_again) {
            ctx.current.as_ref().map(|g| g.0.clone())
        } else {
            let key = request_key(session.req_header());
            let chosen = self.select(key, &ctx.tried);
            if chosen.is_some() && !ctx.tried.is_empty() {
                self.gateways.metrics.retries.inc();
            }
            chosen
        };
        let Some(gateway) = gateway else {
            let (status, why) = if ctx.tried.is_empty() {
                self.gateways.metrics.no_backend.inc();
                (503, "no healthy backend")
            } else {
                (502, "no other healthy backend to retry on")
            };
            return Error::e_explain(ErrorType::HTTPStatus(status), why);
        };
        if ctx.tried.last() != Some(&gateway.addr) {
            ctx.tried.push(gateway.addr);
        }
        ctx.current = Some(gateway.busy());
        ctx.chosen_at = Some(Instant::now());
        let mut peer = HttpPeer::new(gateway.addr, false, String::new());
        peer.options.connection_timeout = Some(self.settings.connect_timeout);
        peer.options.read_timeout = Some(self.settings.read_timeout);
        peer.options.write_timeout = Some(self.settings.read_timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        // The gateways speak plain HTTP/1.1: no request is upgraded to another protocol.
        peer.options.http_upstream_request_policy.h1_upgrade = H1UpgradePolicy::Deny;
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        _ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        // Pingora has taken off the hop-by-hop fields (RFC 9110 §7.6.1), those `Connection`
        // names, and the credentials meant for a proxy.
        if upstream.headers.get("x-request-id").is_none() {
            let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
            upstream.insert_header("X-Request-Id", format!("{:08x}-{n:x}", self.id_prefix))?;
        }
        let client = session.client_addr().and_then(|a| a.as_inet());
        let client = client.map_or("unknown".into(), |a| a.ip().to_string());
        // The chain so far, then this client; a chain that is not text is replaced.
        let earlier = upstream.headers.get_all("x-forwarded-for").iter();
        let earlier: Option<Vec<&str>> = earlier.map(|v| v.to_str().ok()).collect();
        let mut chain = earlier.unwrap_or_default();
        chain.push(&client);
        let chain = chain.join(", ");
        upstream.insert_header("X-Forwarded-For", chain)?;
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        // An HTTP/1.0 client cannot read chunks (RFC 9112 §7): without a length, the body runs
        // until the connection closes.
        if session.req_header().version == http::Version::HTTP_10
            && response.headers.contains_key("transfer-encoding")
        {
            response.remove_header("transfer-encoding");
            response.insert_header("Connection", "close")?;
            session.set_keepalive(None);
        }
        // Counted before the client can have the answer (a client that then reads the metrics
        // finds its request there), once: not a 100 Continue before it, not again as a failure
        // if the gateway breaks off the body.
        if response.status.is_informational() {
            return Ok(());
        }
        if let (Some(gateway), Some(at)) = (&ctx.current, ctx.chosen_at) {
            gateway.0.latency.observe(at.elapsed().as_secs_f64());
        }
        self.count(ctx, response.status.as_u16());
        ctx.counted = true;
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Nothing reached the gateway: it leaves the rotation now, and any request may go to
        // the next one.
        if let Some(gateway) = &ctx.current {
            self.gateways.connect_failed(&gateway.0);
        }
        e.set_retry(ctx.tried.len() < self.settings.max_tries);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("gateway {peer}"));
        // Nothing is sent again once part of an answer went to the client, or when the client
        // is what failed.
        let replayable = !session.as_ref().retry_buffer_truncated()
            && session.response_written().is_none()
            && e.esource() == &ErrorSource::Upstream;
        // A kept-alive connection that turned out closed before any answer: the gateway closed
        // it while idle and never saw this request, which goes once more on a new connection.
        let stale = client_reused && matches!(e.retry, RetryType::ReusedOnly) && !ctx.stale_retried;
        let timed_out = matches!(
            e.etype(),
            ErrorType::ReadTimedout | ErrorType::WriteTimedout
        );
        let retry = if stale && replayable {
            self.gateways.metrics.stale_retries.inc();
            ctx.same_again = true;
            ctx.stale_retried = true;
            true
        } else {
            // Bytes may have reached the gateway: only requests safe to send twice, with a
            // body that can be sent again whole, go elsewhere.
            replayable
                && !timed_out
                && session.req_header().method.is_idempotent()
                && ctx.tried.len() < self.settings.max_tries
        };
        e.set_retry(retry);
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let (status, message) = failure(e);
        if status > 0 && !ctx.counted {
            self.count(ctx, status);
            let (head, body) = json_answer(status, &message);
            if let Err(err) = session
                .as_downstream_mut()
                .write_error_response(head, body.into())
                .await
            {
                tracing::debug!(%err, "could not send the error response");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, _error: &Error) -> bool {
        // Each failure is answered, counted and, where it says something, logged by us.
        true
    }
}

/// The status and message the client gets for a failure (0: it is gone, answer nothing).
fn failure(e: &Error) -> (u16, String) {
    use ErrorType::*;
    match (e.esource(), e.etype()) {
        (_, HTTPStatus(code)) => (
            *code,
            e.context.as_ref().map_or("error".into(), |c| c.to_string()),
        ),
        (ErrorSource::Downstream, ReadTimedout) => {
            (408, "the request body did not arrive in time".into())
        }
        (ErrorSource::Downstream, WriteError | ReadError | ConnectionClosed | WriteTimedout) => {
            (0, String::new())
        }
        (ErrorSource::Downstream, InvalidHTTPHeader) => {
            (400, "a request this load balancer does not forward".into())
        }
        (ErrorSource::Downstream, _) => (400, "malformed request body".into()),
        (_, ConnectTimedout | ReadTimedout | WriteTimedout) => (504, "backend timed out".into()),
        (_, etype) => (502, format!("backend failed: {}", etype.as_str())),
    }
}

/// A JSON error answer: its head and body. 503 says when to come back.
pub fn json_answer(status: u16, message: &str) -> (ResponseHeader, Vec<u8>) {
    let body = records::wire::ErrorBody::new(status, message)
        .to_json()
        .into_bytes();
    let mut head = ResponseHeader::build(status, Some(4)).expect("a status");
    let _ = head.insert_header("Content-Type", "application/json");
    let _ = head.insert_header("Content-Length", body.len().to_string());
    if status == 503 {
        let _ = head.insert_header("Retry-After", "1");
    }
    let _ = head.insert_header("Connection", "close");
    (head, body)
}

/// The same answer as bytes on the wire, for the edge (before any Pingora session exists).
pub fn json_error(status: u16, message: &str) -> Vec<u8> {
    let (head, body) = json_answer(status, message);
    let reason = head.status.canonical_reason().unwrap_or("Error");
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in head.headers.iter() {
        out += &format!("{name}: {}\r\n", value.to_str().unwrap_or_default());
    }
    [out.as_bytes(), b"\r\n", &body].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_json_with_a_status() {
        let answer = String::from_utf8(json_error(503, "no healthy backend")).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase().contains("\r\nretry-after: 1"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "no healthy backend");
        assert_eq!(v["status"], 503);
    }

    #[test]
    fn the_key_is_the_key_parameter_or_the_path() {
        let req = |t: &str| RequestHeader::build("GET", t.as_bytes(), None).unwrap();
        assert_eq!(request_key(&req("/items?page=2&key=abc")), b"abc");
        assert_eq!(
            request_key(&req("/listing?prefix=ab")),
            b"/listing?prefix=ab"
        );
    }
}
