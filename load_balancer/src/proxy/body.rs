//! A request body on its way to a gateway: read from the client as its framing says, kept
//! while it is small enough to be sent again, and encoded for the gateway.

use super::conn::Client;
use super::Failure;
use crate::h1::{self, ChunkedDecoder, Framing, Piece};
use bytes::{Bytes, BytesMut};
use std::io;

/// Request bodies up to this size are kept while they are sent, so an idempotent request can
/// be sent again to another backend; a longer body is never re-sent.
pub const RETRY_BODY_LIMIT: usize = 64 * 1024;

/// The request body: how it is delimited, how much is left, and what has been read of it,
/// kept for a retry while it fits `RETRY_BODY_LIMIT`.
pub(super) struct Body {
    pub(super) framing: Framing,
    /// Bytes still to come (`Framing::Length`).
    pub(super) left: u64,
    pub(super) decoder: ChunkedDecoder,
    pub(super) chunks: Vec<Bytes>,
    pub(super) kept_len: usize,
    /// Some of what was read has been dropped from `chunks`: the body cannot be sent again.
    pub(super) overflowed: bool,
    /// Everything the client sent has been read.
    pub(super) done: bool,
}

impl Body {
    pub(super) fn new(framing: Framing) -> Self {
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        Self {
            framing,
            left,
            decoder: ChunkedDecoder::default(),
            chunks: Vec::new(),
            kept_len: 0,
            overflowed: false,
            done: matches!(framing, Framing::None | Framing::UntilClose)
                || left == 0 && framing != Framing::Chunked,
        }
    }

    pub(super) fn replayable(&self) -> bool {
        !self.overflowed
    }

    /// Nothing of the body has been read yet.
    pub(super) fn untouched(&self) -> bool {
        self.chunks.is_empty() && !self.overflowed
    }

    pub(super) fn keep(&mut self, chunk: &Bytes) {
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

    /// The next piece of the body that is already in `buf` (kept for a retry), or `None` when
    /// more must be read or the body is done (`done` says which).
    pub(super) fn buffered(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, &'static str> {
        if self.done || buf.is_empty() {
            return Ok(None);
        }
        let piece = match self.framing {
            Framing::Length(_) => {
                let take = usize::try_from(self.left)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                self.left -= take as u64;
                self.done = self.left == 0;
                buf.split_to(take).freeze()
            }
            Framing::Chunked => match self.decoder.next(buf)? {
                Piece::Data(data) => data,
                Piece::NeedMore => return Ok(None),
                Piece::Done => {
                    self.done = true;
                    return Ok(None);
                }
            },
            Framing::None | Framing::UntilClose => return Ok(None),
        };
        self.keep(&piece);
        Ok(Some(piece))
    }

    /// The next piece of the body, read from the client as needed; `None` once it is done.
    /// (Cancel-safe: a read that did not finish took nothing.)
    pub(super) async fn next(&mut self, client: &mut Client) -> Result<Option<Bytes>, Failure> {
        loop {
            match self.buffered(&mut client.buf) {
                Ok(Some(piece)) => return Ok(Some(piece)),
                Ok(None) if self.done => return Ok(None),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = e, "malformed request body");
                    return Err(Failure::new(400, "malformed request body"));
                }
            }
            match client.read_more(client.timeout).await {
                Ok(0) => return Err(Failure::client_gone()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(Failure::new(408, "request body timed out"))
                }
                Err(_) => return Err(Failure::client_gone()),
            }
        }
    }

    /// Appends a piece as the backend gets it (in the chunked coding if the body is chunked),
    /// and the last chunk once the body is done.
    pub(super) fn encode(&self, piece: &[u8], out: &mut Vec<u8>) {
        if self.framing == Framing::Chunked {
            h1::push_chunk(out, piece);
        } else {
            out.extend_from_slice(piece);
        }
    }

    pub(super) fn encode_end(&self, out: &mut Vec<u8>) {
        if self.done && self.framing == Framing::Chunked {
            out.extend_from_slice(h1::LAST_CHUNK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_kept_for_a_retry_only_while_it_fits() {
        let mut body = Body::new(Framing::Length(1));
        body.keep(&Bytes::from(vec![0u8; RETRY_BODY_LIMIT - 1]));
        assert!(body.replayable());
        body.keep(&Bytes::from_static(b"x"));
        assert!(body.replayable());
        assert_eq!(body.kept_len, RETRY_BODY_LIMIT);
        body.keep(&Bytes::from_static(b"y"));
        assert!(!body.replayable());
        assert!(body.chunks.is_empty(), "nothing half-kept");
    }
}
