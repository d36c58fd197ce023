//! The edge: each request head on a client connection is read here first, within nginx's
//! limits, and checked so that nothing in it can be read two ways (RFC 9112 §6; where the RFC
//! leaves a choice, what nginx does). A refused head gets its JSON error here and the
//! connection closes after a bounded linger (RFC 9112 §9.6); a checked one is handed, bytes
//! untouched, to Pingora's HTTP/1 session and the `ProxyHttp` hooks in `balancer.rs`.
//!
//! Why before Pingora and not in its `early_request_filter`: Pingora answers a head it cannot
//! parse with a bare 400 before any hook runs, takes `Content-Length` beside
//! `Transfer-Encoding` by dropping the first, and reads heads up to 1 MB. Here every refusal
//! is a JSON body with the status the rule names.

use crate::balancer::json_error;
use bytes::BytesMut;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest request line (method, target, version) accepted: longer is a 414.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// The longest header line (name and value) accepted: longer is a 431 (nginx's 8 KiB buffer).
pub const MAX_HEADER_LINE: usize = 8 * 1024;
/// The most header lines, and the most header bytes in all, accepted: more is a 431.
pub const MAX_HEADER_COUNT: usize = 100;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The most bytes a head may take while it is read: past this without its end, it is refused
/// (414 or 431, whichever limit it broke).
pub const MAX_HEAD: usize = MAX_REQUEST_LINE + MAX_HEADER_BYTES + 4;
/// After a refusal, what the client still sends is read and dropped for this long, up to this
/// many bytes, so that it can read the answer instead of a reset (RFC 9112 §9.6).
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// Why a request is refused before it is forwarded.
#[derive(Debug, PartialEq)]
pub struct Refusal {
    pub status: u16,
    /// The `reason` label of `lb_refused_requests_total`.
    pub reason: &'static str,
    pub message: &'static str,
}

pub const fn refuse(status: u16, reason: &'static str, message: &'static str) -> Refusal {
    Refusal {
        status,
        reason,
        message,
    }
}

const TARGET_TOO_LONG: Refusal = refuse(414, "uri_too_long", "request target longer than 8 KiB");
const FIELD_TOO_LONG: Refusal = refuse(431, "header_too_large", "a header field longer than 8 KiB");
const TOO_MANY_FIELDS: Refusal = refuse(431, "header_too_large", "more than 100 header fields");
const FIELDS_TOO_LONG: Refusal = refuse(
    431,
    "header_too_large",
    "header fields longer than 64 KiB in all",
);
const MALFORMED: Refusal = refuse(400, "malformed", "bad request");

/// How the body after a checked head is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    None,
    Length(u64),
    Chunked,
}

/// A checked request head: its length in bytes and its body's framing.
#[derive(Debug, PartialEq)]
pub struct Head {
    pub len: usize,
    pub body: Body,
}

/// `host[:port]` as RFC 3986 spells it (a name, an IPv4 or a bracketed IPv6 address), without
/// user information: what nginx accepts too.
pub fn is_host(value: &[u8]) -> bool {
    !value.is_empty()
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(b))
}

/// One `Content-Length` value (or a list of them) merged with what earlier fields said: every
/// number must be the same, 19 digits at most (RFC 9110 §8.6).
fn merge_content_length(value: &[u8], earlier: Option<u64>) -> Option<u64> {
    let mut length = earlier;
    for part in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if length.is_some_and(|seen| seen != n) {
            return None;
        }
        length = Some(n);
    }
    length
}

/// Checks the request head at the front of `buf`: `Ok(None)` while it is incomplete.
pub fn screen(buf: &[u8]) -> Result<Option<Head>, Refusal> {
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADER_COUNT];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(too_long(buf)),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(TOO_MANY_FIELDS),
        Err(_) => return Err(MALFORMED),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(MALFORMED);
    };
    if method.len() + target.len() + " HTTP/1.1 ".len() > MAX_REQUEST_LINE {
        return Err(TARGET_TOO_LONG);
    }
    let http10 = version == 0;
    let (mut total, mut hosts, mut codings, mut chunked) = (0, 0, 0, false);
    let mut content_length = None;
    for header in req.headers.iter() {
        let line = header.name.len() + header.value.len() + 2;
        if line > MAX_HEADER_LINE {
            return Err(FIELD_TOO_LONG);
        }
        total += line;
        let is = |name: &str| header.name.eq_ignore_ascii_case(name);
        if is("host") {
            hosts += 1;
            if !is_host(header.value) {
                return Err(refuse(400, "host", "a Host header that is not host[:port]"));
            }
        } else if is("content-length") {
            content_length = Some(
                merge_content_length(header.value, content_length).ok_or(refuse(
                    400,
                    "content_length",
                    "an invalid Content-Length",
                ))?,
            );
        } else if is("transfer-encoding") {
            // Only a single plain `chunked` is taken: another coding, or `chunked` twice, is
            // read one way here and maybe another way by the gateway (nginx answers 501; a 4xx
            // says it is the request's fault).
            codings += 1;
            chunked = header.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
        }
    }
    if total > MAX_HEADER_BYTES {
        return Err(FIELDS_TOO_LONG);
    }
    match hosts {
        0 if !http10 => {
            return Err(refuse(
                400,
                "host",
                "an HTTP/1.1 request needs a Host header",
            ))
        }
        0 | 1 => {}
        _ => return Err(refuse(400, "host", "more than one Host header")),
    }
    let body = if codings > 0 {
        if codings > 1 || !chunked {
            return Err(refuse(
                400,
                "transfer_encoding",
                "Transfer-Encoding other than a single chunked",
            ));
        }
        if content_length.is_some() {
            return Err(refuse(
                400,
                "content_length_and_chunked",
                "both Content-Length and Transfer-Encoding",
            ));
        }
        if http10 {
            // RFC 9112 §6.1: chunked in HTTP/1.0 is faulty framing.
            return Err(refuse(
                400,
                "transfer_encoding",
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        Body::Chunked
    } else {
        content_length.map_or(Body::None, Body::Length)
    };
    if method == "CONNECT" {
        return Err(refuse(405, "method", "CONNECT is not proxied"));
    }
    // Origin-form (a path), or `*` for OPTIONS: an absolute URI would name a host other than
    // the one in `Host`, which the gateways would read two ways.
    if !(target.starts_with('/') || target == "*" && method == "OPTIONS") {
        return Err(refuse(400, "target", "a request target that is not a path"));
    }
    if body == Body::Chunked {
        // What of the body came with its head is checked before any of it goes on.
        check_chunks(&buf[len..])?;
    }
    Ok(Some(Head { len, body }))
}

/// Checks the chunked framing of what of a body is at hand (RFC 9112 §7.1): sizes in hex,
/// 16 digits at most, each chunk's data followed by CRLF. What is incomplete is not refused.
fn check_chunks(mut rest: &[u8]) -> Result<(), Refusal> {
    const BAD_CHUNK: Refusal = refuse(400, "chunked", "a malformed chunked body");
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(());
        };
        let line = &rest[..line_end];
        let digits = line.split(|b| *b == b';').next().unwrap_or(&[]);
        if digits.is_empty() || digits.len() > 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(BAD_CHUNK);
        }
        let size = digits.iter().fold(0u64, |n, d| {
            n << 4 | u64::from((*d as char).to_digit(16).unwrap_or(0))
        });
        if size == 0 {
            return Ok(());
        }
        rest = &rest[line_end + 2..];
        let data = usize::try_from(size).unwrap_or(usize::MAX);
        if rest.len() < data.saturating_add(2) {
            return Ok(());
        }
        if &rest[data..data + 2] != b"\r\n" {
            return Err(BAD_CHUNK);
        }
        rest = &rest[data + 2..];
    }
}

/// A head past `MAX_HEAD` without its end: a request line too long (414) or header fields.
fn too_long(buf: &[u8]) -> Refusal {
    match buf.iter().position(|b| *b == b'\n') {
        Some(end) if end <= MAX_REQUEST_LINE => FIELDS_TOO_LONG,
        _ => TARGET_TOO_LONG,
    }
}

/// What the edge waits for on a client connection.
#[derive(Clone, Copy)]
pub struct Timeouts {
    /// The longest wait for the next piece of a head (and of a body, in `balancer.rs`).
    pub client: Duration,
    /// How long an idle kept-alive connection waits for its next request.
    pub keepalive: Duration,
}

/// Client connections open now (the load balancer stops once none is left, or its grace
/// period is over).
#[derive(Default)]
pub struct Connections(AtomicUsize);

impl Connections {
    pub fn open(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

struct Open<'a>(&'a Connections);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Pingora's server application for client connections: the edge in front of an HTTP proxy
/// (Pingora's `HttpProxy` around the `ProxyHttp` in `balancer.rs`).
pub struct Edge<P> {
    pub proxy: Arc<P>,
    pub timeouts: Timeouts,
    pub refused: prometheus::IntCounterVec,
    pub connections: Arc<Connections>,
}

/// What came of waiting for the next head.
enum Next {
    Head(Head),
    Refused(Refusal),
    /// Closed, quiet past the timeout, or the load balancer is stopping.
    Done,
}

#[async_trait::async_trait]
impl<P: HttpServerApp + Send + Sync + 'static> ServerApp for Edge<P> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.connections.0.fetch_add(1, Ordering::SeqCst);
        let _open = Open(&self.connections);
        let mut shutdown = shutdown.clone();
        let mut buf = BytesMut::with_capacity(8 * 1024);
        let mut settings: Option<HttpPersistentSettings> = None;
        let mut first = true;
        loop {
            let head = match self
                .next_head(&mut stream, &mut buf, first, &mut shutdown)
                .await
            {
                Next::Head(head) => head,
                Next::Refused(refusal) => {
                    self.refused.with_label_values(&[refusal.reason]).inc();
                    let answer = json_error(refusal.status, refusal.message);
                    if stream.write_all(&answer).await.is_ok() && stream.flush().await.is_ok() {
                        linger(&mut stream).await;
                    }
                    return None;
                }
                Next::Done => return None,
            };
            first = false;
            // Pingora reads the head again, with the body bytes of this request already here
            // (all of them for a chunked body): what follows stays here for the next head.
            let extent = match head.body {
                Body::None => head.len,
                Body::Length(n) => {
                    head.len
                        + usize::try_from(n)
                            .unwrap_or(usize::MAX)
                            .min(buf.len() - head.len)
                }
                Body::Chunked => buf.len(),
            };
            let taken = buf.split_to(extent);
            stream = rewound(stream, &taken)?;
            let mut session = ServerSession::new_http1(stream);
            match settings.take() {
                Some(settings) => settings.apply_to_session(&mut session),
                None => session.set_keepalive(Some(self.timeouts.keepalive.as_secs().max(1))),
            }
            if *shutdown.borrow() {
                session.set_keepalive(None);
            }
            let reused = self.proxy.process_new_http(session, &shutdown).await?;
            let (next, kept) = reused.consume();
            stream = next;
            settings = kept;
        }
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

impl<P> Edge<P> {
    /// The next head: within the client timeout from its first byte, whole (a head sent a
    /// byte at a time cannot hold a connection longer); checked again only when a line may
    /// have ended, so a slow head costs one parse per line, not one per byte.
    async fn next_head(
        &self,
        stream: &mut Stream,
        buf: &mut BytesMut,
        first: bool,
        shutdown: &mut ShutdownWatch,
    ) -> Next {
        let mut deadline = (!buf.is_empty()).then(|| Instant::now() + self.timeouts.client);
        let mut check = !buf.is_empty();
        loop {
            if check || buf.len() > MAX_HEAD {
                match screen(buf) {
                    Ok(Some(head)) => return Next::Head(head),
                    Ok(None) => {}
                    Err(refusal) => return Next::Refused(refusal),
                }
            }
            // Between requests, idle time is bounded by the keep-alive (a new connection's
            // first request by the client timeout); within a head, by its deadline.
            let wait = match deadline {
                Some(at) => at.saturating_duration_since(Instant::now()),
                None if first => self.timeouts.client,
                None => self.timeouts.keepalive,
            };
            // A kept-alive connection waiting for its next request closes when the load balancer
            // stops; a new one is served its first request, which may be on its way.
            let idle = buf.is_empty() && !first;
            let before = buf.len();
            buf.reserve(16 * 1024);
            let read = tokio::time::timeout(wait, stream.read_buf(buf));
            let read = if idle {
                tokio::select! {
                    read = read => read,
                    _ = shutdown.wait_for(|down| *down) => return Next::Done,
                }
            } else {
                read.await
            };
            match read {
                Ok(Ok(n)) if n > 0 => {}
                _ => return Next::Done,
            }
            deadline.get_or_insert_with(|| Instant::now() + self.timeouts.client);
            check = buf[before.saturating_sub(1)..].contains(&b'\n');
        }
    }
}

/// The stream with `bytes` put back in front of what is still to be read from it.
fn rewound(stream: Stream, bytes: &[u8]) -> Option<Stream> {
    match stream
        .into_any()
        .downcast::<pingora::protocols::l4::stream::Stream>()
    {
        Ok(mut l4) => {
            l4.rewind(bytes);
            Some(l4)
        }
        Err(_) => {
            tracing::warn!("a client connection of another kind than TCP; closed");
            None
        }
    }
}

/// After an answer that closes the connection: stop sending, and read (and drop) what the
/// client still sends for a moment, so that its unread bytes do not make the kernel reset the
/// connection before the client has read the answer.
pub async fn linger(stream: &mut Stream) {
    let _ = stream.shutdown().await;
    let until = Instant::now() + LINGER;
    let mut dropped = 0;
    let mut scrap = vec![0u8; 16 * 1024];
    while dropped < LINGER_BYTES {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut scrap)).await {
            Ok(Ok(n)) if n > 0 => dropped += n,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(text: &[u8]) -> Option<u16> {
        screen(text).err().map(|r| r.status)
    }

    #[test]
    fn a_host_is_a_name_or_address_with_an_optional_port() {
        for ok in [
            "lb",
            "lb:8080",
            "10.0.0.1:80",
            "[::1]:8000",
            "a-b.example.org",
        ] {
            assert!(is_host(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "user@lb", "lb/evil", "a b", "lb\u{ff}"] {
            assert!(!is_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn a_head_is_incomplete_until_its_empty_line_and_says_its_framing() {
        assert_eq!(screen(b"GET / HTTP/1.1\r\nHost: lb\r\n"), Ok(None));
        let text = b"POST /a HTTP/1.1\r\nHost: lb\r\nContent-Length: 5, 5\r\n\r\nhelloGET /b";
        let head = screen(text).unwrap().unwrap();
        assert_eq!(
            head,
            Head {
                len: text.len() - 11,
                body: Body::Length(5)
            }
        );
        let chunked = screen(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(chunked.unwrap().unwrap().body, Body::Chunked);
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for bad in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12345678901234567890\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",
            b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(status(bad), Some(400), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            status(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"),
            Some(405)
        );
        let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        for (body, refused) in [
            (&b"5\r\nhello\r\n0\r\n\r\n"[..], false),
            (b"5;ext=1\r\nhel", false),
            (b"zz\r\nabc\r\n", true),
            (b"-3\r\nabc\r\n", true),
            (b"fffffffffffffffff\r\nabc\r\n", true),
            (b"3\r\nabcGET / HTTP/1.1\r\n", true),
        ] {
            let text = [&chunked[..], body].concat();
            assert_eq!(
                status(&text).is_some(),
                refused,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_endless_head_is_refused_by_which_limit_it_broke() {
        let mut line = b"GET /".to_vec();
        line.extend_from_slice(&vec![b'a'; MAX_HEAD]);
        assert_eq!(status(&line), Some(414));
        let mut fields = b"GET / HTTP/1.1\r\nX: ".to_vec();
        fields.extend_from_slice(&vec![b'v'; MAX_HEAD]);
        assert_eq!(status(&fields), Some(431));
    }
}
