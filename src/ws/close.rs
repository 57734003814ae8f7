//! Close frames (RFC 6455 §5.5.1, §7.4): status codes, and the payload's form.

use bytes::{BufMut, Bytes, BytesMut};

use super::utf8;

/// Normal closure: the purpose of the connection is fulfilled.
pub const NORMAL: u16 = 1000;
/// The endpoint is going away (a server shutting down, a page navigated away).
pub const GOING_AWAY: u16 = 1001;
/// A protocol error.
pub const PROTOCOL_ERROR: u16 = 1002;
/// A data type the endpoint does not accept.
pub const UNSUPPORTED_DATA: u16 = 1003;
/// No status code was in the close frame (never sent on the wire).
pub const NO_STATUS: u16 = 1005;
/// The connection ended without a close frame (never sent on the wire).
pub const ABNORMAL: u16 = 1006;
/// A text message that is not UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// A message that breaks the endpoint's policy.
pub const POLICY_VIOLATION: u16 = 1008;
/// A message too big to process.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// The client needed an extension the server did not negotiate.
pub const MANDATORY_EXTENSION: u16 = 1010;
/// The server met an unexpected condition.
pub const INTERNAL_ERROR: u16 = 1011;

/// Whether `code` may be sent in a close frame: the codes RFC 6455 and the IANA
/// registry define (1000–1003, 1007–1014), and the ranges for libraries, frameworks and
/// applications (3000–4999). 1004–1006 and 1015 never go on the wire.
///
/// ```
/// use netloop::ws::close::is_valid_code;
/// assert!(is_valid_code(1000) && is_valid_code(4999));
/// assert!(!is_valid_code(1005) && !is_valid_code(999) && !is_valid_code(2000));
/// ```
pub fn is_valid_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A close frame's payload was malformed: a 1-byte payload, an invalid code, or a
/// reason that is not UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadClose;

impl std::fmt::Display for BadClose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed close frame")
    }
}

impl std::error::Error for BadClose {}

/// Parses a close frame's (unmasked) payload: the code (`NO_STATUS` if there is none)
/// and the reason.
pub fn parse(payload: &Bytes) -> Result<(u16, Bytes), BadClose> {
    match payload.len() {
        0 => Ok((NO_STATUS, Bytes::new())),
        1 => Err(BadClose),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !is_valid_code(code) {
                return Err(BadClose);
            }
            let reason = payload.slice(2..);
            utf8::Validator::default()
                .feed(&reason, true)
                .map_err(|_| BadClose)?;
            Ok((code, reason))
        }
    }
}

/// Writes a close frame's payload: the code and as much of `reason` as fits in the 123
/// bytes a control frame leaves (cut at a character boundary). `NO_STATUS` writes an
/// empty payload.
pub fn payload(code: u16, reason: &str) -> Bytes {
    if code == NO_STATUS {
        return Bytes::new();
    }
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = BytesMut::with_capacity(2 + cut);
    out.put_u16(code);
    out.put_slice(&reason.as_bytes()[..cut]);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_bad_ones_are_refused() {
        assert_eq!(parse(&Bytes::new()), Ok((NO_STATUS, Bytes::new())));
        let p = payload(NORMAL, "bye");
        assert_eq!(parse(&p), Ok((NORMAL, Bytes::from_static(b"bye"))));
        assert_eq!(parse(&Bytes::from_static(&[0x03])), Err(BadClose));
        assert_eq!(
            parse(&Bytes::from_static(&[0x03, 0xed])),
            Err(BadClose),
            "1005"
        );
        assert_eq!(
            parse(&Bytes::from_static(&[0x03, 0xe8, 0xff])),
            Err(BadClose)
        );
        let long = "é".repeat(100);
        let p = payload(GOING_AWAY, &long);
        assert!(p.len() <= 125);
        assert!(parse(&p).is_ok(), "cut at a character boundary");
    }
}
