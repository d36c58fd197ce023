//! HTTP/1.1 at the edge: which requests the load balancer refuses before forwarding a byte
//! (framing that could be read two ways, size limits, `Host`), and which headers stay on their
//! hop. RFC 9112 §6 and, where it leaves a choice, what nginx does guide each rule.

use bytes::Bytes;
use pingora::http::RequestHeader;

/// The longest request line (method, target, version) accepted: longer is a 414.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// The longest header line (name and value) accepted: longer is a 431 (nginx's 8 KiB buffer).
pub const MAX_HEADER_LINE: usize = 8 * 1024;
/// The most header lines, and the most header bytes in all, accepted: more is a 431.
pub const MAX_HEADER_COUNT: usize = 100;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

const KEEP_ALIVE: http::HeaderName = http::HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: http::HeaderName = http::HeaderName::from_static("proxy-connection");

/// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, not the message, so
/// they are not forwarded. `Expect` is answered here; `Proxy-Authorization` is meant for a
/// proxy (this one takes none), never for the gateway.
fn is_hop_by_hop(name: &http::HeaderName) -> bool {
    use http::header::*;
    name == CONNECTION
        || name == TE
        || name == TRAILER
        || name == UPGRADE
        || name == PROXY_AUTHENTICATE
        || name == PROXY_AUTHORIZATION
        || name == EXPECT
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// Headers a `Connection` header may not remove: the message's framing and its target. A
/// client naming them there would otherwise make the load balancer drop its body (RFC 9110
/// §7.6.1: a sender must not list them).
fn is_end_to_end(name: &http::HeaderName) -> bool {
    use http::header::*;
    name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == HOST
}

/// The hop-by-hop headers present, and any header the `Connection` header names (framing and
/// `Host` excepted). One pass over the (few) names, so that a message without any costs no hash
/// lookup.
pub fn hop_by_hop(headers: &http::HeaderMap) -> Vec<http::HeaderName> {
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
                if !is_end_to_end(&name) && !found.contains(&name) && headers.contains_key(&name) {
                    found.push(name);
                }
            }
        }
    }
    found
}

/// Why a request is refused before it is forwarded: its framing or size could be read in
/// more than one way, or is beyond the limits. RFC 9112 §6 and what nginx does guide each case.
#[derive(Debug, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
    pub message: &'static str,
}

const fn refuse(status: u16, reason: &'static str, message: &'static str) -> Refusal {
    Refusal {
        status,
        reason,
        message,
    }
}

/// The checks Pingora's parser leaves to the proxy. (It already refuses malformed lines,
/// NUL/CR/LF in values, whitespace before a colon, obs-fold, differing `Content-Length`s, a
/// `Transfer-Encoding` whose last coding is not `chunked`, and HTTP/1.0 with one.)
/// `raw` gives the header as the client sent it: Pingora drops `Content-Length` when
/// `Transfer-Encoding` is present, and that combination must be seen to be refused (asked for
/// only then: most requests have no `Transfer-Encoding`).
pub fn check_request(req: &RequestHeader, raw: impl FnOnce() -> Bytes) -> Result<(), Refusal> {
    use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
    let line = req.method.as_str().len() + req.raw_path().len() + " HTTP/1.1".len() + 1;
    if line > MAX_REQUEST_LINE {
        return Err(refuse(
            414,
            "uri_too_long",
            "request target longer than 8 KiB",
        ));
    }
    let headers = &req.headers;
    if headers.len() > MAX_HEADER_COUNT {
        return Err(refuse(
            431,
            "header_too_large",
            "more than 100 header fields",
        ));
    }
    let mut total = 0;
    for (name, value) in headers {
        let len = name.as_str().len() + value.len() + 2;
        if len > MAX_HEADER_LINE {
            return Err(refuse(
                431,
                "header_too_large",
                "a header field longer than 8 KiB",
            ));
        }
        total += len;
    }
    if total > MAX_HEADER_BYTES {
        return Err(refuse(
            431,
            "header_too_large",
            "header fields longer than 64 KiB in all",
        ));
    }
    let mut hosts = headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version == http::Version::HTTP_11 => {
            return Err(refuse(
                400,
                "host",
                "an HTTP/1.1 request needs a Host header",
            ));
        }
        (Some(_), Some(_)) => return Err(refuse(400, "host", "more than one Host header")),
        (Some(host), None) if !is_host(host.as_bytes()) => {
            return Err(refuse(400, "host", "a Host header that is not host[:port]"))
        }
        _ => {}
    }
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter();
    if let Some(first) = codings.next() {
        // Only plain `chunked` is forwarded: another coding, or `chunked` twice, is read one
        // way here and maybe another way by the gateway (nginx answers 501; a 4xx says it is
        // the request's fault).
        let plain = first
            .as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"chunked");
        if !plain || codings.next().is_some() {
            return Err(refuse(
                400,
                "transfer_encoding",
                "Transfer-Encoding other than a single chunked",
            ));
        }
        if has_header_named(&raw(), CONTENT_LENGTH.as_str()) {
            return Err(refuse(
                400,
                "content_length_and_chunked",
                "both Content-Length and Transfer-Encoding",
            ));
        }
    }
    if req.method == http::Method::CONNECT {
        return Err(refuse(405, "method", "CONNECT is not proxied"));
    }
    Ok(())
}

/// `host[:port]` as RFC 3986 spells it (a name, an IPv4 or a bracketed IPv6 address), without
/// user information: what nginx accepts too.
fn is_host(value: &[u8]) -> bool {
    !value.is_empty()
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(b))
}

/// Whether a raw header section has a field of this (lower-case) name.
fn has_header_named(raw: &[u8], name: &str) -> bool {
    raw.split(|b| *b == b'\n').skip(1).any(|line| {
        line.iter()
            .position(|b| *b == b':')
            .is_some_and(|colon| line[..colon].eq_ignore_ascii_case(name.as_bytes()))
    })
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
}
