//! The whole proxy policy: pick the next healthy gateway, retry safely on another one, add the
//! forwarding headers, count by backend and status, and answer errors in JSON.

use crate::pool::{Member, Pool};
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tries per request are capped here (and by `MAX_TRIES`), so the per-request record of
/// tried backends is a fixed array, not a heap allocation.
pub const TRIES_CAP: usize = 8;

pub struct Proxy {
    pub pool: Arc<Pool>,
    pub max_tries: usize,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    request_ids: AtomicU64,
    id_prefix: u32,
}

impl Proxy {
    pub fn new(
        pool: Arc<Pool>,
        max_tries: usize,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Self {
        let id_prefix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0)
            ^ std::process::id();
        Self {
            pool,
            max_tries: max_tries.clamp(1, TRIES_CAP),
            connect_timeout,
            read_timeout,
            request_ids: AtomicU64::new(0),
            id_prefix,
        }
    }
}

pub struct Ctx {
    tried: [Option<SocketAddr>; TRIES_CAP],
    tries: usize,
    member: Option<Arc<Member>>,
    started: Option<Instant>,
}

impl Ctx {
    fn tried(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.tried[..self.tries].iter().flatten().copied()
    }
}

fn json_error(code: u16, message: &str) -> (ResponseHeader, Bytes) {
    let body = Bytes::from(serde_json::json!({"error": message, "status": code}).to_string());
    let mut header = ResponseHeader::build(code, Some(4)).expect("valid status");
    let _ = header.insert_header("content-type", "application/json");
    let _ = header.insert_header("content-length", body.len().to_string());
    if code == 503 {
        let _ = header.insert_header("retry-after", "1");
    }
    (header, body)
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            tried: [None; TRIES_CAP],
            tries: 0,
            member: None,
            started: None,
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        if ctx.tries >= self.max_tries {
            return Err(Error::explain(
                ErrorType::HTTPStatus(502),
                "every try failed",
            ));
        }
        let tried: Vec<SocketAddr>;
        let member = if ctx.tries == 0 {
            self.pool.select(&[])
        } else {
            tried = ctx.tried().collect();
            self.pool.retries_inc();
            self.pool.select(&tried)
        };
        let Some(member) = member else {
            if ctx.tries == 0 {
                self.pool.metrics.no_backend.inc();
                return Err(Error::explain(
                    ErrorType::HTTPStatus(503),
                    "no healthy backend",
                ));
            }
            return Err(Error::explain(
                ErrorType::HTTPStatus(502),
                "no other healthy backend to retry on",
            ));
        };
        ctx.tried[ctx.tries] = Some(member.addr);
        ctx.tries += 1;
        let mut peer = HttpPeer::new(member.addr, false, String::new());
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.read_timeout = Some(self.read_timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        ctx.member = Some(member);
        ctx.started = Some(Instant::now());
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        if !upstream.headers.contains_key("x-request-id") {
            let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
            upstream.insert_header("x-request-id", format!("{:08x}-{n:x}", self.id_prefix))?;
        }
        if let Some(client) = session.client_addr().and_then(|a| a.as_inet()) {
            let ip = client.ip().to_string();
            let forwarded = match upstream
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(existing) => format!("{existing}, {ip}"),
                None => ip,
            };
            upstream.insert_header("x-forwarded-for", forwarded)?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let (Some(member), Some(started)) = (&ctx.member, ctx.started) {
            member.latency.observe(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Nothing reached the backend, so any method may go elsewhere.
        if let Some(member) = &ctx.member {
            self.pool.connect_failed(member);
        }
        e.set_retry(ctx.tries < self.max_tries);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        _client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("backend {peer}"));
        // Bytes may have reached the backend: only idempotent requests are tried again.
        if ctx.tries >= self.max_tries
            || !session.req_header().method.is_idempotent()
            || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            // Idempotent: safe to send again, whether or not the connection was reused.
            e.set_retry(true);
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, _ctx: &mut Ctx) -> FailToProxy {
        let (code, message) = match e.etype() {
            ErrorType::HTTPStatus(code) => (
                *code,
                e.context
                    .as_ref()
                    .map(|c| c.as_str())
                    .unwrap_or("error")
                    .to_string(),
            ),
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if e.esource() == &ErrorSource::Upstream =>
            {
                (504, "backend timed out".to_string())
            }
            _ => match e.esource() {
                ErrorSource::Upstream => (502, format!("backend failed: {}", e.etype().as_str())),
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                        (0, String::new())
                    }
                    _ => (400, "bad request".to_string()),
                },
                _ => (500, "load balancer error".to_string()),
            },
        };
        if code > 0 {
            let (header, body) = json_error(code, &message);
            if let Err(err) = session.write_error_response(header, body).await {
                tracing::debug!(%err, "could not send the error response");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        match &ctx.member {
            Some(member) => member.count(status),
            None => self
                .pool
                .metrics
                .requests
                .with_label_values(&["none", &status.to_string()])
                .inc(),
        }
    }
}
