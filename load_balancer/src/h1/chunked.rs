//! The chunked coding (RFC 9112 §7.1): decoded strictly on the way in, encoded on the way out.

use super::push_hex;
use bytes::{Bytes, BytesMut};

/// The longest chunk-size line (with extensions) and trailer section accepted.
const MAX_CHUNK_LINE: usize = 1024;
const MAX_TRAILERS: usize = 16 * 1024;

/// One step of reading a chunked body.
#[derive(Debug, PartialEq)]
pub enum Piece {
    /// Body bytes.
    Data(Bytes),
    /// More input is needed.
    NeedMore,
    /// The last chunk and the trailer section have been read (trailers are dropped: RFC 9110
    /// §6.5.1 lets a proxy do that).
    Done,
}

#[derive(Clone, Copy, Debug, Default)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers(usize),
    Done,
}

/// Decodes the chunked coding (RFC 9112 §7.1) strictly: hex sizes of at most 16 digits, CRLF
/// line ends, chunk data followed by CRLF; anything else is an error, never a guess.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

impl ChunkedDecoder {
    /// Takes the next piece from the front of `buf`.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Piece, &'static str> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(line) = take_line(buf, MAX_CHUNK_LINE)? else {
                        return Ok(Piece::NeedMore);
                    };
                    let size = parse_chunk_size(&line)?;
                    self.state = if size == 0 {
                        ChunkState::Trailers(0)
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Piece::NeedMore);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let rest = left - take as u64;
                    self.state = if rest == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(rest)
                    };
                    return Ok(Piece::Data(buf.split_to(take).freeze()));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        if buf.first().is_some_and(|b| *b != b'\r') {
                            return Err("chunk longer than its size");
                        }
                        return Ok(Piece::NeedMore);
                    }
                    if buf[..2] != *b"\r\n" {
                        return Err("chunk longer than its size");
                    }
                    let _ = buf.split_to(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers(seen) => {
                    let Some(line) = take_line(buf, MAX_TRAILERS - seen)? else {
                        return Ok(Piece::NeedMore);
                    };
                    self.state = if line.len() == 2 {
                        ChunkState::Done
                    } else {
                        ChunkState::Trailers(seen + line.len())
                    };
                }
                ChunkState::Done => return Ok(Piece::Done),
            }
        }
    }
}

/// Takes one CRLF-terminated line (with its CRLF) off the front of `buf`, if it is there; a
/// line longer than `max`, or ending in a bare LF, is an error.
fn take_line(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, &'static str> {
    match buf.iter().take(max).position(|b| *b == b'\n') {
        Some(end) if end == 0 || buf[end - 1] != b'\r' => Err("a chunk line without CRLF"),
        Some(end) => Ok(Some(buf.split_to(end + 1))),
        None if buf.len() >= max => Err("a chunk line too long"),
        None => Ok(None),
    }
}

/// `1*HEXDIG [ BWS ";" extensions ] CRLF`: the size, at most 16 hex digits after any zeros.
fn parse_chunk_size(line: &[u8]) -> Result<u64, &'static str> {
    let line = &line[..line.len() - 2];
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    // Leading zeros are allowed (nginx takes them too); what is left must fit in 64 bits.
    let zeros = line[..digits].iter().take_while(|b| **b == b'0').count();
    if digits == 0 || digits - zeros > 16 {
        return Err("a chunk size that is not 1 to 16 hex digits");
    }
    let rest = line[digits..].trim_ascii_start();
    if !(rest.is_empty() || rest[0] == b';')
        || rest.iter().any(|b| b.is_ascii_control() && *b != b'\t')
    {
        return Err("a malformed chunk size line");
    }
    Ok(line[..digits].iter().fold(0u64, |n, d| {
        (n << 4) | u64::from((*d as char).to_digit(16).unwrap_or(0))
    }))
}

/// Appends one chunk of the chunked coding.
pub fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    push_hex(out, data.len() as u64, 0);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk, with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8]) -> Result<(Vec<u8>, bool), &'static str> {
        let mut buf = BytesMut::from(input);
        let mut decoder = ChunkedDecoder::default();
        let mut body = Vec::new();
        loop {
            match decoder.next(&mut buf)? {
                Piece::Data(d) => body.extend_from_slice(&d),
                Piece::NeedMore => return Ok((body, false)),
                Piece::Done => return Ok((body, true)),
            }
        }
    }

    #[test]
    fn chunks_are_decoded_strictly() {
        assert_eq!(
            decode(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n").unwrap(),
            (b"hello world".to_vec(), true)
        );
        assert_eq!(decode(b"5\r\nhel").unwrap(), (b"hel".to_vec(), false));
        assert_eq!(
            decode(b"00000000000000003 ; x\r\nabc\r\n0\r\n\r\n").unwrap(),
            (b"abc".to_vec(), true)
        );
        for bad in [
            &b"zz\r\nabc\r\n"[..],
            b"-3\r\nabc\r\n",
            b"fffffffffffffffff\r\nabc\r\n",
            b"3\r\nabcdef\r\n",
            b"3\nabc\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"3 x\r\nabc\r\n",
        ] {
            assert!(decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
