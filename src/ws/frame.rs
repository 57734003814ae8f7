//! Frame headers (RFC 6455 §5.2): parsing from buffered bytes and writing, with no I/O.
//!
//! [`parse`] looks at the front of a buffer and answers "need n bytes in all", a
//! complete [`Header`], or a [`FrameError`] naming the rule the bytes break. The
//! payload is not touched: the caller knows its length from the header and takes it
//! (unmasking it in place) once it is buffered.

use std::fmt;

/// A frame's opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpCode {
    /// The next fragment of a message.
    Continuation,
    /// The first (or only) frame of a text message.
    Text,
    /// The first (or only) frame of a binary message.
    Binary,
    /// A close frame.
    Close,
    /// A ping.
    Ping,
    /// A pong.
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Whether this is a control frame (close, ping, pong).
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The last frame of its message.
    pub fin: bool,
    /// RSV1: set on the first frame of a compressed message (permessage-deflate).
    pub rsv1: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key (every client-to-server frame has one).
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub len: u64,
    /// The header's own length in bytes (2 to 14).
    pub header_len: usize,
}

/// What [`parse`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The header is not all buffered: this many bytes (from the frame's start) are
    /// needed to parse it.
    Need(usize),
    /// A complete header.
    Header(Header),
}

/// A rule of RFC 6455 §5 that a frame header breaks; each fails the connection with
/// close code 1002 (protocol error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// RSV2 or RSV3 is set, or RSV1 without a negotiated extension that gives it a
    /// meaning.
    ReservedBits,
    /// An opcode RFC 6455 reserves (3–7, 0xB–0xF).
    ReservedOpcode,
    /// A control frame that is fragmented or longer than 125 bytes.
    BadControlFrame,
    /// A 64-bit length with its most significant bit set.
    LengthOverflow,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameError::ReservedBits => "reserved bits set",
            FrameError::ReservedOpcode => "reserved opcode",
            FrameError::BadControlFrame => "control frame fragmented or over 125 bytes",
            FrameError::LengthOverflow => "64-bit length with its top bit set",
        })
    }
}

impl std::error::Error for FrameError {}

/// The longest header: 2 bytes, an 8-byte length, a 4-byte mask.
pub const MAX_HEADER_LEN: usize = 14;

/// Parses the frame header at the front of `buf`. `rsv1_allowed` says whether RSV1 has
/// a meaning here (permessage-deflate was negotiated).
///
/// ```
/// use netloop::ws::frame::{parse, OpCode, Parsed};
/// // A masked "Hi" text frame: fin, text, mask bit + length 2, mask key, payload.
/// let frame = [0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2];
/// assert_eq!(parse(&frame[..1], false), Ok(Parsed::Need(2)));
/// let Parsed::Header(h) = parse(&frame, false).unwrap() else { unreachable!() };
/// assert_eq!((h.fin, h.opcode, h.len, h.header_len), (true, OpCode::Text, 2, 6));
/// assert_eq!(h.mask, Some([1, 2, 3, 4]));
/// ```
pub fn parse(buf: &[u8], rsv1_allowed: bool) -> Result<Parsed, FrameError> {
    if buf.len() < 2 {
        return Ok(Parsed::Need(2));
    }
    let (b0, b1) = (buf[0], buf[1]);
    let fin = b0 & 0x80 != 0;
    let rsv1 = b0 & 0x40 != 0;
    if b0 & 0x30 != 0 || (rsv1 && !rsv1_allowed) {
        return Err(FrameError::ReservedBits);
    }
    let opcode = OpCode::from_bits(b0 & 0x0F).ok_or(FrameError::ReservedOpcode)?;
    let masked = b1 & 0x80 != 0;
    let short = (b1 & 0x7F) as u64;
    if opcode.is_control() && (!fin || short > 125) {
        return Err(FrameError::BadControlFrame);
    }
    let len_bytes = match short {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let header_len = 2 + len_bytes + if masked { 4 } else { 0 };
    if buf.len() < header_len {
        return Ok(Parsed::Need(header_len));
    }
    let len = match len_bytes {
        2 => u16::from_be_bytes([buf[2], buf[3]]) as u64,
        8 => {
            let n = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
            if n >> 63 != 0 {
                return Err(FrameError::LengthOverflow);
            }
            n
        }
        _ => short,
    };
    let mask = masked.then(|| {
        let at = 2 + len_bytes;
        [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]
    });
    Ok(Parsed::Header(Header {
        fin,
        rsv1,
        opcode,
        mask,
        len,
        header_len,
    }))
}

/// Writes a frame header into `out`; returns its length. Servers send unmasked frames
/// (`mask: None`); clients mask every frame.
///
/// ```
/// use netloop::ws::frame::{write_header, OpCode};
/// let mut h = [0u8; 14];
/// let n = write_header(&mut h, true, false, OpCode::Binary, None, 300);
/// assert_eq!(&h[..n], &[0x82, 126, 0x01, 0x2c]);
/// ```
pub fn write_header(
    out: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: u64,
) -> usize {
    out[0] = (u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode.bits();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut n = 2;
    if len < 126 {
        out[1] = mask_bit | len as u8;
    } else if len <= u16::MAX as u64 {
        out[1] = mask_bit | 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        n = 4;
    } else {
        out[1] = mask_bit | 127;
        out[2..10].copy_from_slice(&len.to_be_bytes());
        n = 10;
    }
    if let Some(key) = mask {
        out[n..n + 4].copy_from_slice(&key);
        n += 4;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(buf: &[u8]) -> Header {
        match parse(buf, true).unwrap() {
            Parsed::Header(h) => h,
            Parsed::Need(n) => panic!("needs {n}"),
        }
    }

    #[test]
    fn every_length_form_round_trips_with_and_without_a_mask() {
        for len in [0u64, 1, 125, 126, 127, 65535, 65536, 1 << 32, (1 << 63) - 1] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let mut out = [0u8; MAX_HEADER_LEN];
                let n = write_header(&mut out, true, false, OpCode::Binary, mask, len);
                let h = header(&out[..n]);
                assert_eq!((h.len, h.mask, h.header_len, h.fin), (len, mask, n, true));
                // Every shorter prefix asks for more, never errs.
                for cut in 0..n {
                    assert!(matches!(parse(&out[..cut], true), Ok(Parsed::Need(k)) if k > cut));
                }
            }
        }
    }

    #[test]
    fn rule_breaking_headers_are_refused() {
        assert_eq!(
            parse(&[0xA1, 0x80], true),
            Err(FrameError::ReservedBits),
            "RSV2"
        );
        assert_eq!(
            parse(&[0x91, 0x80], true),
            Err(FrameError::ReservedBits),
            "RSV3"
        );
        assert_eq!(
            parse(&[0xC1, 0x80], false),
            Err(FrameError::ReservedBits),
            "RSV1 unnegotiated"
        );
        assert!(parse(&[0xC1, 0x80], true).is_ok(), "RSV1 with deflate");
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                parse(&[0x80 | op, 0x80], true),
                Err(FrameError::ReservedOpcode)
            );
        }
        assert_eq!(
            parse(&[0x09, 0x80], true),
            Err(FrameError::BadControlFrame),
            "fragmented ping"
        );
        assert_eq!(
            parse(&[0x88, 0xFE], true),
            Err(FrameError::BadControlFrame),
            "long close"
        );
        let mut huge = vec![0x82, 0x7F];
        huge.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(parse(&huge, true), Err(FrameError::LengthOverflow));
    }
}
