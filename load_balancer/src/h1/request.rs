//! A client's request head: parsed, checked against the edge rules, and written for the gateway.

use super::{merge_content_length, name_of, push_forwarded, push_framing, push_hex, range_in};
use super::{ConnectionOptions, Field, Framing, Name};
use crate::edge::{
    self, is_host, refuse, Refusal, MAX_HEADER_BYTES, MAX_HEADER_LINE, MAX_REQUEST_LINE,
};
use bytes::{Bytes, BytesMut};
use std::mem::MaybeUninit;
use std::ops::Range;

/// The most bytes a request head may take while it is read: past this without its end, it is
/// refused (414 or 431, whichever limit it broke).
pub const MAX_HEAD: usize = MAX_REQUEST_LINE + MAX_HEADER_BYTES + 4;

/// A request id the load balancer gives: `<prefix>-<n>` in hex, the prefix fixed per process.
#[derive(Clone, Copy)]
pub struct RequestId {
    pub prefix: u32,
    pub n: u64,
}

/// A client's request head, checked: nothing in it can be read two ways.
pub struct Request {
    head: Bytes,
    method: Range<usize>,
    target: Range<usize>,
    pub http10: bool,
    fields: Vec<Field>,
    pub framing: Framing,
    /// The client's connection may take another request after this one.
    pub keep_alive: bool,
    pub expects_continue: bool,
    /// The client sent its own `X-Request-Id` (forwarded as it is).
    pub has_request_id: bool,
    /// The `X-Forwarded-For` values the client sent, in order.
    forwarded_for: Vec<Range<usize>>,
}

/// A request could not be parsed at all: the answer is a plain 400.
fn malformed() -> Refusal {
    refuse(400, "malformed", "bad request")
}

/// Reads a request head from the front of `buf`: `Ok(None)` while it is incomplete, the request
/// (its head split off `buf`, any body or next request left there) once complete, or why it
/// is refused.
pub fn parse_request(buf: &mut BytesMut) -> Result<Option<Request>, Refusal> {
    let mut slots = [const { MaybeUninit::<httparse::Header>::uninit() }; edge::MAX_HEADER_COUNT];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(too_long(buf)),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(edge::TOO_MANY_FIELDS),
        Err(_) => return Err(malformed()),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(malformed());
    };
    let head: &[u8] = buf;
    let method = range_in(head, method.as_bytes());
    let target = range_in(head, target.as_bytes());
    if target.end + " HTTP/1.1".len() > MAX_REQUEST_LINE {
        return Err(edge::TARGET_TOO_LONG);
    }
    let http10 = version == 0;
    let mut fields = Vec::with_capacity(req.headers.len());
    let mut total = 0;
    let mut hosts = 0;
    let mut content_length = None;
    let mut codings = 0;
    let mut chunked = false;
    let mut connection = ConnectionOptions::default();
    let mut expects_continue = false;
    let mut has_request_id = false;
    let mut forwarded_for = Vec::new();
    for header in req.headers.iter() {
        let line = header.name.len() + header.value.len() + 2;
        if line > MAX_HEADER_LINE {
            return Err(edge::FIELD_TOO_LONG);
        }
        total += line;
        let value = range_in(head, header.value);
        let mut forward = true;
        match name_of(header.name.as_bytes()) {
            Name::Host => {
                hosts += 1;
                if !is_host(header.value) {
                    return Err(refuse(400, "host", "a Host header that is not host[:port]"));
                }
            }
            Name::ContentLength => {
                forward = false;
                content_length = Some(
                    merge_content_length(header.value, content_length).ok_or(refuse(
                        400,
                        "content_length",
                        "an invalid Content-Length",
                    ))?,
                );
            }
            Name::TransferEncoding => {
                codings += 1;
                forward = false;
                // Only a single plain `chunked` is forwarded: another coding, or `chunked`
                // twice, is read one way here and maybe another way by the gateway (nginx
                // answers 501; a 4xx says it is the request's fault).
                chunked = header.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
            }
            Name::Connection => {
                forward = false;
                connection.read(head, value.clone());
            }
            Name::Expect => {
                forward = false;
                expects_continue = header.value.eq_ignore_ascii_case(b"100-continue");
            }
            Name::RequestId => has_request_id = true,
            Name::ForwardedFor => {
                forward = false;
                forwarded_for.push(value.clone());
            }
            Name::HopByHop => forward = false,
            Name::Other => {}
        }
        fields.push(Field {
            name: range_in(head, header.name.as_bytes()),
            value,
            forward,
        });
    }
    if total > MAX_HEADER_BYTES {
        return Err(edge::FIELDS_TOO_LONG);
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
    let framing = if codings > 0 {
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
        Framing::Chunked
    } else {
        match content_length {
            // An explicit `Content-Length: 0` is passed on as such.
            Some(n) => Framing::Length(n),
            None => Framing::None,
        }
    };
    if head[method.clone()] == *b"CONNECT" {
        return Err(refuse(405, "method", "CONNECT is not proxied"));
    }
    // Origin-form (a path), or `*` for OPTIONS: an absolute URI would name a host other than
    // the one in `Host`, which the gateways would read two ways.
    let target_bytes = &head[target.clone()];
    if !(target_bytes.starts_with(b"/")
        || target_bytes == b"*" && head[method.clone()] == *b"OPTIONS")
    {
        return Err(refuse(400, "target", "a request target that is not a path"));
    }
    connection.drop_named(head, &mut fields);
    let keep_alive = connection.persistent(http10);
    let head = buf.split_to(len).freeze();
    Ok(Some(Request {
        head,
        method,
        target,
        http10,
        fields,
        framing,
        keep_alive,
        expects_continue,
        has_request_id,
        forwarded_for,
    }))
}

/// A head past `MAX_HEAD` without its end: a request line too long (414) or header fields.
fn too_long(buf: &[u8]) -> Refusal {
    match buf.iter().position(|b| *b == b'\n') {
        Some(end) if end <= MAX_REQUEST_LINE => edge::FIELDS_TOO_LONG,
        _ => edge::TARGET_TOO_LONG,
    }
}

impl Request {
    pub fn method(&self) -> &[u8] {
        &self.head[self.method.clone()]
    }

    pub fn is_head(&self) -> bool {
        self.method() == b"HEAD"
    }

    /// Safe to send twice (RFC 9110 §9.2.2).
    pub fn idempotent(&self) -> bool {
        matches!(
            self.method(),
            b"GET" | b"HEAD" | b"PUT" | b"DELETE" | b"OPTIONS" | b"TRACE"
        )
    }

    pub fn target(&self) -> &[u8] {
        &self.head[self.target.clone()]
    }

    /// The head as the gateway gets it: HTTP/1.1, the fields that go on (as the client wrote
    /// them), the body's framing as this load balancer sends it, `X-Request-Id` unless the
    /// client sent one, and `X-Forwarded-For` with the client's address appended.
    pub fn write_upstream_head(
        &self,
        request_id: Option<RequestId>,
        client_ip: &str,
        out: &mut Vec<u8>,
    ) {
        out.extend_from_slice(self.method());
        out.push(b' ');
        out.extend_from_slice(self.target());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        push_forwarded(&self.head, &self.fields, out);
        push_framing(out, self.framing);
        if let Some(id) = request_id {
            out.extend_from_slice(b"X-Request-Id: ");
            push_hex(out, u64::from(id.prefix), 8);
            out.push(b'-');
            push_hex(out, id.n, 0);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"X-Forwarded-For: ");
        // A chain that is not text is replaced, not extended.
        let text = |r: &Range<usize>| {
            self.head[r.clone()]
                .iter()
                .all(|b| (0x20..0x7f).contains(b) || *b == b'\t')
        };
        if self.forwarded_for.iter().all(text) {
            for earlier in &self.forwarded_for {
                out.extend_from_slice(&self.head[earlier.clone()]);
                out.extend_from_slice(b", ");
            }
        }
        out.extend_from_slice(client_ip.as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &[u8]) -> Result<Option<Request>, Refusal> {
        parse_request(&mut BytesMut::from(text))
    }

    fn upstream_head(text: &[u8]) -> String {
        let req = request(text).unwrap().unwrap();
        let mut out = Vec::new();
        req.write_upstream_head(Some(RequestId { prefix: 0xab, n: 1 }), "10.0.0.9", &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_head_is_incomplete_until_its_empty_line() {
        assert!(request(b"GET / HTTP/1.1\r\nHost: lb\r\n")
            .unwrap()
            .is_none());
        let mut buf = BytesMut::from(&b"GET /a HTTP/1.1\r\nHost: lb\r\n\r\nGET /b"[..]);
        let req = parse_request(&mut buf).unwrap().unwrap();
        assert_eq!(req.target(), b"/a");
        assert_eq!(&buf[..], b"GET /b", "the next request stays in the buffer");
    }

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_stay_on_their_hop() {
        let head = upstream_head(
            b"GET /x HTTP/1.1\r\nHost: lb\r\nConnection: keep-alive, X-Secret, content-length\r\n\
              Keep-Alive: timeout=5\r\nx-secret: 1\r\nUpgrade: websocket\r\nProxy-Authorization: Basic x\r\n\
              X-Kept: 2\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
        );
        assert_eq!(
            head,
            "GET /x HTTP/1.1\r\nHost: lb\r\nX-Kept: 2\r\nX-Request-Id: 000000ab-1\r\n\
             X-Forwarded-For: 1.2.3.4, 10.0.0.9\r\n\r\n"
        );
    }

    #[test]
    fn framing_is_written_by_the_load_balancer_once() {
        let head = upstream_head(
            b"POST /b HTTP/1.1\r\nHost: lb\r\nContent-Length: 5\r\ncontent-length: 5, 5\r\n\r\n",
        );
        assert!(head.contains("\r\nContent-Length: 5\r\n"), "{head}");
        assert_eq!(head.matches("ontent-").count(), 1, "{head}");
        let head =
            upstream_head(b"POST /b HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert!(
            head.contains("\r\nTransfer-Encoding: chunked\r\n"),
            "{head}"
        );
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection() {
        let ka = |t: &[u8]| request(t).unwrap().unwrap().keep_alive;
        assert!(ka(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n"
        ));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let status = |t: &[u8]| request(t).err().map(|r| r.status);
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
    }

    #[test]
    fn an_endless_head_is_refused_by_which_limit_it_broke() {
        let mut line = BytesMut::from(&b"GET /"[..]);
        line.extend_from_slice(&vec![b'a'; MAX_HEAD]);
        assert_eq!(parse_request(&mut line).err().unwrap().status, 414);
        let mut fields = BytesMut::from(&b"GET / HTTP/1.1\r\nX: "[..]);
        fields.extend_from_slice(&vec![b'v'; MAX_HEAD]);
        assert_eq!(parse_request(&mut fields).err().unwrap().status, 431);
    }
}
