//! HTTP/1.1 messages as the load balancer reads and writes them: a request head parsed once
//! (httparse) into offsets over the bytes the client sent, checked against the edge rules
//! (`edge.rs`), and written to the gateway as the same bytes minus the hop-by-hop fields plus
//! the forwarding ones; an answer's head parsed the same way and written to the client; and
//! the chunked coding, decoded on the way in and encoded again on the way out, so that every
//! body crosses the load balancer in one framing it has checked itself.
//!
//! No header map is built: a field is two ranges into the head's bytes, and the few fields
//! the load balancer acts on are recognised by name as the head is parsed.

mod chunked;
mod request;
mod response;

pub use chunked::{push_chunk, ChunkedDecoder, Piece, LAST_CHUNK};
pub use request::{parse_request, Request, RequestId, MAX_HEAD};
pub use response::{parse_response, reason_phrase, Outgoing, Response};

use std::ops::Range;

/// How a message's body is delimited (RFC 9112 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked coding.
    Chunked,
    /// Until the sender closes the connection (answers only).
    UntilClose,
}

/// One header field: where its name and value are in the head's bytes, and whether it goes on
/// to the next hop.
#[derive(Clone, Debug)]
struct Field {
    name: Range<usize>,
    value: Range<usize>,
    forward: bool,
}

/// The fields the load balancer acts on; every other field is passed on as it came.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Name {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    Expect,
    RequestId,
    ForwardedFor,
    /// Describes one connection (RFC 9110 §7.6.1), or is meant for a proxy: never forwarded.
    HopByHop,
    Other,
}

fn name_of(name: &[u8]) -> Name {
    let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
    match name.len() {
        4 if is("host") => Name::Host,
        14 if is("content-length") => Name::ContentLength,
        17 if is("transfer-encoding") => Name::TransferEncoding,
        10 if is("connection") => Name::Connection,
        10 if is("keep-alive") => Name::HopByHop,
        6 if is("expect") => Name::Expect,
        12 if is("x-request-id") => Name::RequestId,
        15 if is("x-forwarded-for") => Name::ForwardedFor,
        2 if is("te") => Name::HopByHop,
        7 if is("trailer") || is("upgrade") => Name::HopByHop,
        16 if is("proxy-connection") => Name::HopByHop,
        18 if is("proxy-authenticate") => Name::HopByHop,
        19 if is("proxy-authorization") => Name::HopByHop,
        _ => Name::Other,
    }
}

/// Where a slice handed out by httparse starts in the buffer it parsed.
fn range_in(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

/// The comma-separated elements of a field value, trimmed, empty ones left out.
fn elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|e| !e.is_empty())
}

/// A `Content-Length` value (a list of equal numbers counts as one, RFC 9110 §8.6), merged
/// with what an earlier field said: `None` when it is not a plain decimal or differs.
fn merge_content_length(value: &[u8], earlier: Option<u64>) -> Option<u64> {
    let mut length = earlier;
    // `split` yields at least one part, so an empty value is refused too.
    for part in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
        // 19 digits always fit in 64 bits; a longer number is refused, not wrapped.
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

/// What a `Connection` field says: `close`, `keep-alive`, and the other fields it names.
#[derive(Default)]
struct ConnectionOptions {
    close: bool,
    /// `keep-alive` was listed (what an HTTP/1.0 peer must say to keep the connection).
    keep_alive: bool,
    /// Ranges (in the head) of the other names listed.
    named: Vec<Range<usize>>,
}

impl ConnectionOptions {
    fn read(&mut self, head: &[u8], value: Range<usize>) {
        for token in elements(&head[value]) {
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else {
                self.named.push(range_in(head, token));
            }
        }
    }

    /// Whether the connection stays open after this message: HTTP/1.1 unless `close`,
    /// HTTP/1.0 only with `keep-alive` (RFC 9112 §9.3).
    fn persistent(&self, http10: bool) -> bool {
        !self.close && (self.keep_alive || !http10)
    }

    /// Marks the fields the `Connection` field named as staying on this hop. Framing and
    /// `Host` are never removed that way (RFC 9110 §7.6.1: a sender must not list them, and a
    /// proxy that obeyed would drop the body or the target).
    fn drop_named(&self, head: &[u8], fields: &mut [Field]) {
        for named in &self.named {
            let named = &head[named.clone()];
            if matches!(
                name_of(named),
                Name::Host | Name::ContentLength | Name::TransferEncoding
            ) {
                continue;
            }
            for field in fields.iter_mut() {
                if head[field.name.clone()].eq_ignore_ascii_case(named) {
                    field.forward = false;
                }
            }
        }
    }
}

/// The framing field for a body sent as `framing` (none for no body or one that runs until the
/// close).
fn push_framing(out: &mut Vec<u8>, framing: Framing) {
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::None | Framing::UntilClose => {}
    }
}

/// The fields that go on to the next hop, as they came.
fn push_forwarded(head: &[u8], fields: &[Field], out: &mut Vec<u8>) {
    for field in fields.iter().filter(|f| f.forward) {
        out.extend_from_slice(&head[field.name.clone()]);
        out.extend_from_slice(b": ");
        out.extend_from_slice(&head[field.value.clone()]);
        out.extend_from_slice(b"\r\n");
    }
}

pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// `n` in lower-case hex, padded with zeros to at least `width` digits (at most 16).
pub fn push_hex(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
        if n == 0 && digits.len() - i >= width {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_without_fmt() {
        let mut out = Vec::new();
        push_decimal(&mut out, 0);
        out.push(b' ');
        push_decimal(&mut out, u64::MAX);
        out.push(b' ');
        push_hex(&mut out, 0x1f0, 0);
        out.push(b' ');
        push_hex(&mut out, 0x2a, 8);
        assert_eq!(out, b"0 18446744073709551615 1f0 0000002a");
    }
}
