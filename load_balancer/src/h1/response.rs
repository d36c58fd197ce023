//! A gateway's answer head: parsed, framed as RFC 9112 §6.3 says, and written for the client.

use super::{
    elements, merge_content_length, name_of, push_decimal, push_forwarded, push_framing, range_in,
};
use super::{ConnectionOptions, Field, Framing, Name};
use bytes::{Bytes, BytesMut};
use std::ops::Range;

/// The most header fields and bytes accepted in a gateway's answer head.
const MAX_RESPONSE_FIELDS: usize = 100;
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// A gateway's answer head.
pub struct Response {
    head: Bytes,
    pub status: u16,
    reason: Range<usize>,
    fields: Vec<Field>,
    pub framing: Framing,
    /// The gateway's connection may take another request once this answer is read.
    pub keep_alive: bool,
    /// The first `Content-Length` field, passed on as it is when the answer has no body (the
    /// answer to a HEAD, a 304).
    content_length: Option<Range<usize>>,
}

/// Reads an answer head from the front of `buf` (`head_request`: it answers a HEAD, so it has
/// no body whatever its fields say): `Ok(None)` while incomplete, or what is wrong with it.
pub fn parse_response(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<Response>, &'static str> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_RESPONSE_FIELDS];
    let mut resp = httparse::Response::new(&mut slots);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
            return Err("answer head too large")
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("malformed answer head"),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err("malformed answer head");
    };
    let head: &[u8] = buf;
    let reason = range_in(head, resp.reason.unwrap_or("").as_bytes());
    let mut fields = Vec::with_capacity(resp.headers.len());
    let mut connection = ConnectionOptions::default();
    let mut content_length = None;
    let mut content_length_field = None;
    let mut coding_last = None;
    for header in resp.headers.iter() {
        let value = range_in(head, header.value);
        let mut forward = true;
        match name_of(header.name.as_bytes()) {
            Name::Connection => {
                forward = false;
                connection.read(head, value.clone());
            }
            Name::ContentLength => {
                forward = false;
                content_length_field.get_or_insert(value.clone());
                content_length = Some(
                    merge_content_length(header.value, content_length)
                        .ok_or("invalid Content-Length in the answer")?,
                );
            }
            Name::TransferEncoding => {
                forward = false;
                if let Some(last) = elements(header.value).last() {
                    coding_last = Some(last.eq_ignore_ascii_case(b"chunked"));
                }
            }
            Name::HopByHop => forward = false,
            _ => {}
        }
        fields.push(Field {
            name: range_in(head, header.name.as_bytes()),
            value,
            forward,
        });
    }
    connection.drop_named(head, &mut fields);
    let mut keep_alive = connection.persistent(version == 0);
    // RFC 9112 §6.3, in its order.
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304
    {
        Framing::None
    } else if let Some(chunked) = coding_last {
        if content_length.is_some() {
            // Both: the coding wins, and the connection is not trusted afterwards.
            keep_alive = false;
        }
        if chunked {
            Framing::Chunked
        } else {
            keep_alive = false;
            Framing::UntilClose
        }
    } else {
        match content_length {
            Some(n) => Framing::Length(n),
            None => {
                keep_alive = false;
                Framing::UntilClose
            }
        }
    };
    let head = buf.split_to(len).freeze();
    Ok(Some(Response {
        head,
        status,
        reason,
        fields,
        framing,
        keep_alive,
        content_length: content_length_field,
    }))
}

/// How an answer's body is written to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outgoing {
    None,
    /// As it comes (a known length, or until the connection closes).
    Raw,
    /// In the chunked coding.
    Chunked,
}

impl Response {
    /// Informational (1xx): another head follows.
    pub fn informational(&self) -> bool {
        (100..200).contains(&self.status)
    }

    /// Whether the client's connection can take another request after this answer, given
    /// that the client wants it (`keep_alive`) and speaks HTTP/1.0 or 1.1.
    pub fn client_keep_alive(&self, keep_alive: bool, http10: bool) -> bool {
        keep_alive
            && match self.framing {
                Framing::None | Framing::Length(_) => true,
                // An HTTP/1.0 client cannot read chunks: the body ends when the connection does.
                Framing::Chunked => !http10,
                Framing::UntilClose => false,
            }
    }

    /// Writes the answer's head for the client (HTTP/1.1, hop-by-hop fields left out, the
    /// framing this load balancer sends) and says how the body must be written.
    pub fn write_client_head(&self, keep_alive: bool, http10: bool, out: &mut Vec<u8>) -> Outgoing {
        out.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(out, u64::from(self.status));
        out.push(b' ');
        let reason = &self.head[self.reason.clone()];
        if reason.is_empty() {
            out.extend_from_slice(reason_phrase(self.status).as_bytes());
        } else {
            out.extend_from_slice(reason);
        }
        out.extend_from_slice(b"\r\n");
        push_forwarded(&self.head, &self.fields, out);
        let keep_alive = self.client_keep_alive(keep_alive, http10);
        // What the client reads: the same length, chunks again, or (an HTTP/1.0 client, an
        // answer without length) the bytes until the close.
        let (outgoing, sent_as) = match self.framing {
            Framing::None => (Outgoing::None, Framing::None),
            Framing::Length(n) => (Outgoing::Raw, Framing::Length(n)),
            Framing::Chunked if !http10 => (Outgoing::Chunked, Framing::Chunked),
            Framing::Chunked | Framing::UntilClose => (Outgoing::Raw, Framing::UntilClose),
        };
        push_framing(out, sent_as);
        if let (Framing::None, Some(length)) = (self.framing, &self.content_length) {
            // No body, but the length of the one it stands for (a HEAD, a 304).
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(&self.head[length.clone()]);
            out.extend_from_slice(b"\r\n");
        }
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if http10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        outgoing
    }
}

/// The standard reason phrase of a status code (empty for an unknown code).
pub fn reason_phrase(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(text: &[u8], head_request: bool) -> Response {
        parse_response(&mut BytesMut::from(text), head_request)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn an_answer_is_framed_as_rfc_9112_says() {
        let r = response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false);
        assert_eq!((r.framing, r.keep_alive), (Framing::Length(3), true));
        let r = response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true);
        assert_eq!(r.framing, Framing::None);
        let mut out = Vec::new();
        r.write_client_head(true, false, &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("Content-Length: 3\r\n"),
            "a HEAD answer keeps its length"
        );
        let r = response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        );
        assert_eq!(r.framing, Framing::Chunked);
        let r = response(b"HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!((r.framing, r.keep_alive), (Framing::UntilClose, false));
        let r = response(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false);
        assert!(!r.keep_alive);
        let r = response(b"HTTP/1.1 204 No Content\r\n\r\n", false);
        assert_eq!((r.framing, r.keep_alive), (Framing::None, true));
        assert!(parse_response(
            &mut BytesMut::from(
                &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..]
            ),
            false
        )
        .is_err());
    }

    #[test]
    fn the_client_head_says_how_the_body_comes_and_whether_the_connection_stays() {
        let r = response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\nX-A: 1\r\n\r\n",
            false,
        );
        let mut out = Vec::new();
        assert_eq!(
            r.write_client_head(true, false, &mut out),
            Outgoing::Chunked
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let mut out = Vec::new();
        assert_eq!(r.write_client_head(true, true, &mut out), Outgoing::Raw);
        assert!(String::from_utf8(out)
            .unwrap()
            .ends_with("X-A: 1\r\nConnection: close\r\n\r\n"));
    }
}
