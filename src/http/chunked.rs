//! The `chunked` transfer coding (RFC 9112 §7.1) as a resumable decoder over buffered
//! bytes: no I/O, no copy. It records where the data of each chunk lies, so a body in one
//! chunk stays a zero-copy slice of the input and a body in several is copied once.
//!
//! Strict where lenient parsers have been used to smuggle requests: CRLF after every
//! size line and every chunk's data (a bare LF is an error), hex digits only in sizes,
//! whitespace only before a `;` extension, trailer field names that are tokens, and no
//! folded trailer lines. Extensions and trailers are skipped.

use std::ops::Range;

use super::parse::{is_tchar, Limits, ParseError};

/// Decodes one chunked body from the bytes after its request head.
///
/// Feed it the whole buffered body so far, from its first byte, each time more arrives
/// ([`decode`](ChunkedDecoder::decode) resumes where it stopped; the bytes it has seen
/// must not change). It reports [`Chunked::Done`] with the body's end once the last chunk
/// and the trailers are in.
///
/// ```
/// use netloop::http::{Chunked, ChunkedDecoder, Limits};
///
/// let mut decoder = ChunkedDecoder::new(&Limits::default());
/// let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
/// assert_eq!(decoder.decode(&body[..6])?, Chunked::More { need: 10 });
/// assert_eq!(decoder.decode(body)?, Chunked::Done { end: body.len() - 4 });
/// let data: Vec<u8> = decoder.data().iter().flat_map(|r| &body[r.clone()]).copied().collect();
/// assert_eq!(data, b"hello world");
/// assert_eq!(decoder.body_len(), 11);
/// # Ok::<(), netloop::http::ParseError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Bytes of the body examined so far.
    pos: usize,
    /// Where each chunk's data lies, relative to the body's first byte.
    data: Vec<Range<usize>>,
    body_len: usize,
    /// Bytes of framing seen so far (everything that is not data).
    framing: usize,
    max_body: usize,
    max_framing: usize,
}

/// What [`ChunkedDecoder::decode`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunked {
    /// The body is complete: it ends (trailers included) `end` bytes after its start;
    /// what follows is the next request.
    Done {
        /// Offset of the first byte after the body.
        end: usize,
    },
    /// More bytes are needed: at least `need` bytes of body in all (the end of the
    /// current chunk's data, or one more byte).
    More {
        /// The least total length worth calling again with.
        need: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a chunk-size line's hex digits (`digits` seen so far, value `size`).
    Size {
        size: u64,
        digits: u8,
    },
    /// Whitespace after the size: only a `;` extension may follow.
    SizeSpace {
        size: u64,
    },
    /// In an extension, skipped up to the CR.
    Extension {
        size: u64,
    },
    /// After the size line's CR.
    SizeLf {
        size: u64,
    },
    /// In a chunk's data, `left` bytes to go.
    Data {
        left: u64,
    },
    /// After a chunk's data: its CR, then its LF.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// In a trailer field's name.
    TrailerName,
    /// In a trailer field's value, skipped up to the CR.
    TrailerValue,
    /// After a trailer line's CR.
    TrailerLf,
    /// After the final empty line's CR.
    EndLf,
    /// The body is complete.
    Done,
}

impl ChunkedDecoder {
    /// A decoder for one body, held to `limits`' body size and
    /// [chunk framing](Limits::max_chunk_framing) limits.
    pub fn new(limits: &Limits) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
            pos: 0,
            data: Vec::new(),
            body_len: 0,
            framing: 0,
            max_body: limits.body_limit(),
            max_framing: limits.chunk_framing_limit(),
        }
    }

    /// Starts over for a new body, keeping the data list's capacity.
    pub fn reset(&mut self, limits: &Limits) {
        let mut data = std::mem::take(&mut self.data);
        data.clear();
        *self = ChunkedDecoder {
            data,
            ..ChunkedDecoder::new(limits)
        };
    }

    /// Decodes what `body` (the bytes after the head, from the first) holds beyond what
    /// was decoded before.
    ///
    /// # Errors
    /// [`ParseError::BadRequest`] for malformed framing, [`ParseError::BodyTooLarge`] for
    /// data over the body limit or framing over its allowance. After an error the
    /// decoder must be [`reset`](ChunkedDecoder::reset) before reuse.
    ///
    /// # Panics
    /// If `body` is shorter than what was decoded before.
    pub fn decode(&mut self, body: &[u8]) -> Result<Chunked, ParseError> {
        assert!(
            body.len() >= self.pos,
            "ChunkedDecoder fed fewer bytes than before"
        );
        while self.pos < body.len() {
            if let State::Data { left } = self.state {
                let take = (body.len() - self.pos).min(usize::try_from(left).unwrap_or(usize::MAX));
                self.add_data(self.pos..self.pos + take);
                self.pos += take;
                let left = left - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data { left }
                };
                continue;
            }
            let b = body[self.pos];
            self.pos += 1;
            self.framing += 1;
            if self.framing > self.max_framing {
                return Err(ParseError::BodyTooLarge);
            }
            self.state = self.step(b)?;
            if self.state == State::Done {
                return Ok(Chunked::Done { end: self.pos });
            }
        }
        if self.state == State::Done {
            return Ok(Chunked::Done { end: self.pos });
        }
        let need = match self.state {
            // The rest of the chunk, and its CRLF at least.
            State::Data { left } => self
                .pos
                .saturating_add(usize::try_from(left).unwrap_or(usize::MAX))
                .saturating_add(2),
            _ => self.pos + 1,
        };
        Ok(Chunked::More { need })
    }

    /// Where the data of each chunk lies, relative to the body's first byte, in order
    /// (empty chunks are not listed).
    pub fn data(&self) -> &[Range<usize>] {
        &self.data
    }

    /// Bytes of data decoded so far.
    pub fn body_len(&self) -> usize {
        self.body_len
    }

    /// Bytes of the body examined so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn add_data(&mut self, range: Range<usize>) {
        if range.is_empty() {
            return;
        }
        self.body_len += range.len();
        match self.data.last_mut() {
            Some(last) if last.end == range.start => last.end = range.end,
            _ => self.data.push(range),
        }
    }

    /// One byte of framing.
    fn step(&self, b: u8) -> Result<State, ParseError> {
        let bad = Err(ParseError::BadRequest);
        Ok(match self.state {
            State::Size { size, digits } => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                    let size = size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(digit))
                        .ok_or(ParseError::BodyTooLarge)?;
                    if size > (self.max_body - self.body_len) as u64 {
                        return Err(ParseError::BodyTooLarge);
                    }
                    State::Size {
                        size,
                        digits: digits.saturating_add(1),
                    }
                }
                _ if digits == 0 => return bad,
                b';' => State::Extension { size },
                b' ' | b'\t' => State::SizeSpace { size },
                b'\r' => State::SizeLf { size },
                _ => return bad,
            },
            State::SizeSpace { size } => match b {
                b' ' | b'\t' => State::SizeSpace { size },
                b';' => State::Extension { size },
                _ => return bad,
            },
            State::Extension { size } => match b {
                b'\r' => State::SizeLf { size },
                b'\t' | b' '..=b'~' => State::Extension { size },
                _ => return bad,
            },
            State::SizeLf { size } => match (b, size) {
                (b'\n', 0) => State::TrailerStart,
                (b'\n', left) => State::Data { left },
                _ => return bad,
            },
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::Size { size: 0, digits: 0 },
            State::TrailerStart => match b {
                b'\r' => State::EndLf,
                b if is_tchar(b) => State::TrailerName,
                _ => return bad, // includes obs-fold (a line starting with whitespace)
            },
            State::TrailerName => match b {
                b':' => State::TrailerValue,
                b if is_tchar(b) => State::TrailerName,
                _ => return bad,
            },
            State::TrailerValue => match b {
                b'\r' => State::TrailerLf,
                b'\t' | b' '..=b'~' | 0x80..=0xff => State::TrailerValue,
                _ => return bad,
            },
            State::TrailerLf if b == b'\n' => State::TrailerStart,
            State::EndLf if b == b'\n' => State::Done,
            State::DataCr | State::DataLf | State::TrailerLf | State::EndLf => return bad,
            State::Data { .. } | State::Done => unreachable!("handled by decode"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(body: &[u8]) -> Result<(Chunked, Vec<u8>), ParseError> {
        decode_with(body, &Limits::default())
    }

    fn decode_with(body: &[u8], limits: &Limits) -> Result<(Chunked, Vec<u8>), ParseError> {
        let mut d = ChunkedDecoder::new(limits);
        let r = d.decode(body)?;
        let data = d
            .data()
            .iter()
            .flat_map(|r| &body[r.clone()])
            .copied()
            .collect();
        Ok((r, data))
    }

    #[test]
    fn chunks_extensions_and_trailers_decode() {
        let body = b"4\r\nWiki\r\n5;a=b;c=\"d e\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Sum: 1\r\nY: \r\n\r\n";
        let (r, data) = decode_all(body).unwrap();
        assert_eq!(r, Chunked::Done { end: body.len() });
        assert_eq!(data, b"Wikipedia in\r\n\r\nchunks.");
    }

    #[test]
    fn an_empty_body_is_one_zero_chunk() {
        let (r, data) = decode_all(b"0\r\n\r\nGET").unwrap();
        assert_eq!(r, Chunked::Done { end: 5 });
        assert!(data.is_empty());
    }

    #[test]
    fn any_split_gives_the_same_result() {
        let body = b"3\r\nabc\r\n10 ;x\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\n";
        let whole = decode_all(body).unwrap();
        for cut in 0..body.len() {
            let mut d = ChunkedDecoder::new(&Limits::default());
            let first = d.decode(&body[..cut]).unwrap();
            match first {
                Chunked::More { need } => assert!(need > cut && need <= body.len(), "cut {cut}"),
                Chunked::Done { .. } => panic!("done early at {cut}"),
            }
            let r = d.decode(body).unwrap();
            let data: Vec<u8> = d
                .data()
                .iter()
                .flat_map(|r| &body[r.clone()])
                .copied()
                .collect();
            assert_eq!((r, data), whole, "cut {cut}");
        }
    }

    #[test]
    fn a_data_chunk_asks_for_its_whole_length() {
        let mut d = ChunkedDecoder::new(&Limits::default());
        assert_eq!(
            d.decode(b"400\r\nab").unwrap(),
            Chunked::More { need: 5 + 1024 + 2 }
        );
    }

    #[test]
    fn malformed_framing_is_a_bad_request() {
        let bad: &[&[u8]] = &[
            b"\r\n",                    // no size
            b"x\r\n",                   // not hex
            b"-1\r\n",                  // sign
            b"5\nhello\r\n0\r\n\r\n",   // bare LF after the size
            b"5\r\nhello\n0\r\n\r\n",   // bare LF after data
            b"5\r\nhelloX\r\n",         // data longer than its size
            b"5 x\r\n",                 // whitespace not before an extension
            b"5;a\nb\r\n",              // LF inside an extension
            b"5;\x01\r\n",              // control character in an extension
            b"0\r\n bad: fold\r\n\r\n", // folded trailer
            b"0\r\nno colon\r\n\r\n",
            b"0\r\nT: v\n\r\n", // bare LF in trailers
            b"0\r\n\n",         // bare LF at the end
        ];
        for body in bad {
            assert_eq!(
                decode_all(body).map(|r| r.0),
                Err(ParseError::BadRequest),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn bodies_over_the_limit_are_refused_at_the_size_line() {
        let limits = Limits::default().max_body_bytes(10);
        assert!(decode_with(b"a\r\n0123456789\r\n0\r\n\r\n", &limits).is_ok());
        assert_eq!(
            decode_with(b"b\r\n", &limits).map(|r| r.0),
            Err(ParseError::BodyTooLarge)
        );
        // Two chunks that add up to more.
        assert_eq!(
            decode_with(b"6\r\n012345\r\n5\r\n", &limits).map(|r| r.0),
            Err(ParseError::BodyTooLarge)
        );
        // A size that overflows 64 bits.
        assert_eq!(
            decode_all(b"fffffffffffffffffffff\r\n").map(|r| r.0),
            Err(ParseError::BodyTooLarge)
        );
    }

    #[test]
    fn framing_is_bounded() {
        let limits = Limits::default().max_chunk_framing(64);
        let mut body = b"1\r\na\r\n".repeat(20);
        body.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(
            decode_with(&body, &limits).map(|r| r.0),
            Err(ParseError::BodyTooLarge)
        );
        let long_ext = format!("1;{}\r\n", "e".repeat(100));
        assert_eq!(
            decode_with(long_ext.as_bytes(), &limits).map(|r| r.0),
            Err(ParseError::BodyTooLarge)
        );
    }

    #[test]
    fn reset_starts_a_new_body() {
        let mut d = ChunkedDecoder::new(&Limits::default());
        assert!(matches!(
            d.decode(b"1\r\na\r\n0\r\n\r\n"),
            Ok(Chunked::Done { .. })
        ));
        d.reset(&Limits::default());
        assert_eq!((d.body_len(), d.data().len(), d.position()), (0, 0, 0));
        assert_eq!(d.decode(b"0\r\n\r\n"), Ok(Chunked::Done { end: 5 }));
    }
}
