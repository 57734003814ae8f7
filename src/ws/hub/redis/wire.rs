//! What the bridge puts in a Redis message, with no I/O: a header naming the bridge it
//! came from and the message's kind, then the message's bytes.
//!
//! ```text
//! byte 0      format version (1)
//! byte 1      'T' text, 'B' binary
//! bytes 2..18 the origin: the sending bridge's 128-bit id
//! bytes 18..  the message
//! ```

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use bytes::Bytes;

use crate::ws::message::{Message, Text};

const VERSION: u8 = 1;
const HEADER: usize = 18;

/// The id of one bridge instance: how a server recognises its own messages coming back
/// from Redis (it delivered them locally already).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Origin([u8; 16]);

impl Origin {
    /// A new id: 128 bits from the kernel's random source, or — if `getrandom(2)` is
    /// unavailable — from hashers with per-process random keys over the time, the
    /// process id and a counter. Two bridges sharing an id would drop each other's
    /// messages, so the id is never derived from the configuration.
    pub(crate) fn new() -> Origin {
        let mut id = [0u8; 16];
        // SAFETY: writes at most `id.len()` bytes into `id`.
        let n = unsafe { libc::getrandom(id.as_mut_ptr().cast(), id.len(), 0) };
        if n == id.len() as isize {
            return Origin(id);
        }
        Origin::fallback()
    }

    /// 64 bits of the id, to seed the backoffs' jitter.
    pub(crate) fn seed(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(b)
    }

    fn fallback() -> Origin {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut id = [0u8; 16];
        for half in id.chunks_mut(8) {
            let mut h = RandomState::new().build_hasher();
            h.write_u128(now);
            h.write_u32(std::process::id());
            h.write_u64(count);
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
        Origin(id)
    }
}

/// The Redis payload of `msg` sent by `origin`.
pub(crate) fn encode(origin: Origin, msg: &Message) -> Vec<u8> {
    let (kind, body) = match msg {
        Message::Text(t) => (b'T', t.as_bytes()),
        Message::Binary(b) => (b'B', b),
    };
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&origin.0);
    out.extend_from_slice(body);
    out
}

/// A Redis payload read back: who sent it and the message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) origin: Origin,
    pub(crate) msg: Message,
}

/// Reads a payload; `None` for one this format does not describe (another version,
/// another publisher on the same channels, a text message that is not UTF-8).
pub(crate) fn decode(payload: &[u8]) -> Option<Decoded> {
    if payload.len() < HEADER || payload[0] != VERSION {
        return None;
    }
    let mut origin = [0u8; 16];
    origin.copy_from_slice(&payload[2..HEADER]);
    let body = Bytes::copy_from_slice(&payload[HEADER..]);
    let msg = match payload[1] {
        b'T' => Message::Text(Text::from_utf8(body).ok()?),
        b'B' => Message::Binary(body),
        _ => return None,
    };
    Some(Decoded {
        origin: Origin(origin),
        msg,
    })
}

/// `prefix` as a `PSUBSCRIBE` pattern matching exactly the channels that start with it:
/// its glob characters escaped, then `*`.
pub(crate) fn pattern(prefix: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('*');
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_kinds_with_the_origin() {
        let o = Origin::new();
        for msg in [
            Message::from("héllo"),
            Message::from(vec![0u8, 255, 1]),
            Message::from(""),
        ] {
            let d = decode(&encode(o, &msg)).expect("decodes");
            assert_eq!(d, Decoded { origin: o, msg });
        }
    }

    #[test]
    fn rejects_what_it_did_not_write() {
        assert_eq!(decode(b"hello"), None);
        let mut p = encode(Origin::new(), &Message::from("x"));
        p[0] = 2;
        assert_eq!(decode(&p), None);
        let mut p = encode(Origin::new(), &Message::from("x"));
        p[1] = b'Z';
        assert_eq!(decode(&p), None);
        let mut p = encode(Origin::new(), &Message::from("x"));
        p.push(0xff);
        assert_eq!(decode(&p), None, "text that is not UTF-8");
    }

    #[test]
    fn origins_differ() {
        assert_ne!(Origin::new(), Origin::new());
        assert_ne!(Origin::fallback(), Origin::fallback());
    }

    #[test]
    fn patterns_escape_glob_characters() {
        assert_eq!(pattern("netloop:hub:"), "netloop:hub:*");
        assert_eq!(pattern("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\*");
    }
}
