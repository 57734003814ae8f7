//! The wire protocols the generator speaks: how one request is encoded and how the
//! responses coming back are cut apart and checked.
//!
//! Every request a run sends is the same byte string, so it is encoded once
//! ([`RequestSpec::encode`]) and each connection queues a cheap clone of it. Responses are
//! decoded incrementally by a per-connection [`Decoder`]: it is handed whatever is
//! buffered and says how much of it belongs to a complete response, or how much it could
//! check and discard while the rest is still on its way, so large responses never have to
//! be buffered whole.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use netloop::http::{has_token, parse_content_length};

/// The protocol of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Raw bytes: a request is `size` bytes, the reply is the same bytes.
    Echo,
    /// A 4-byte big-endian length followed by that many payload bytes; the reply is the
    /// identical frame.
    Framed,
    /// HTTP/1.1 `GET` with keep-alive; replies are parsed with `httparse` and delimited by
    /// `Content-Length`.
    Http,
    /// WebSocket: an upgrade handshake first, then each request is one masked binary
    /// message of `size` bytes and the reply is the same message back (an echo server).
    Ws,
}

impl Protocol {
    /// The protocol's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Echo => "echo",
            Protocol::Framed => "framed",
            Protocol::Http => "http",
            Protocol::Ws => "ws",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Largest response head the HTTP decoder waits for before calling the response bad: a
/// server that never ends its head must not make the generator buffer without bound.
pub const MAX_HTTP_HEAD: usize = 64 * 1024;

/// Most headers an HTTP response may carry.
const MAX_HTTP_HEADERS: usize = 64;

/// How many bytes a decoder asks to have buffered before it is called again, at most. A
/// response larger than this is checked and discarded in pieces instead of being
/// buffered whole (netloop raises a connection's input mark to honour a larger `want`).
pub const MAX_NEED: usize = 1 << 20;

/// Everything needed to build the one request a run sends and to check its replies.
#[derive(Clone, Debug)]
pub struct RequestSpec {
    /// Which protocol.
    pub protocol: Protocol,
    /// Payload bytes of an echo or framed request (ignored for HTTP).
    pub size: usize,
    /// HTTP request target, such as `/` or `/plaintext`.
    pub path: String,
    /// HTTP `Host` header value, such as `127.0.0.1:8080`.
    pub host: String,
}

impl RequestSpec {
    /// Encodes one request.
    ///
    /// Echo and framed payloads are a repeating `a..z` pattern rather than zeros, so a
    /// reply that is shifted or truncated does not compare equal by accident.
    pub fn encode(&self) -> Bytes {
        match self.protocol {
            Protocol::Echo => pattern(self.size),
            Protocol::Framed => {
                let mut frame = BytesMut::with_capacity(4 + self.size);
                frame.put_u32(self.size as u32);
                frame.put_slice(&pattern(self.size));
                frame.freeze()
            }
            Protocol::Http => Bytes::from(format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
                self.path, self.host
            )),
            Protocol::Ws => ws_frame(&pattern(self.size), Some(WS_MASK)),
        }
    }

    /// What a connection sends first, before any request, and waits to be answered:
    /// the WebSocket upgrade request.
    pub fn handshake(&self) -> Option<Bytes> {
        match self.protocol {
            Protocol::Ws => Some(Bytes::from(format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
                self.path, self.host
            ))),
            _ => None,
        }
    }

    /// Checks the settings before a run: payload sizes a frame can carry, a request line
    /// and `Host` header that cannot inject or break lines.
    ///
    /// # Errors
    /// A message saying which setting is wrong.
    pub fn validate(&self) -> Result<(), String> {
        match self.protocol {
            Protocol::Echo if self.size == 0 => {
                // A zero-byte echo request has no reply to wait for.
                Err("--size must be at least 1 for the echo protocol".into())
            }
            Protocol::Framed if self.size > u32::MAX as usize => Err(format!(
                "--size {} does not fit a 4-byte frame length",
                self.size
            )),
            Protocol::Http => {
                let bad = |s: &str| s.is_empty() || s.bytes().any(|b| b <= b' ' || b == 0x7f);
                if bad(&self.path) || !self.path.starts_with('/') {
                    return Err(format!(
                        "--path {:?} must start with '/' and contain no spaces or control characters",
                        self.path
                    ));
                }
                if bad(&self.host) {
                    return Err(format!(
                        "host {:?} must be non-empty, without spaces or control characters",
                        self.host
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A decoder for the replies to [`encode`](RequestSpec::encode)'s request.
    pub fn decoder(&self) -> Decoder {
        match self.protocol {
            Protocol::Echo => Decoder::Echo(Match::new(self.encode())),
            Protocol::Framed => Decoder::Framed {
                header_read: false,
                body: Match::new(pattern(self.size)),
            },
            Protocol::Http => Decoder::Http(HttpDecoder::default()),
            Protocol::Ws => Decoder::Ws {
                upgraded: false,
                // The echo comes back unmasked.
                reply: Match::new(ws_frame(&pattern(self.size), None)),
            },
        }
    }
}

/// The key of every upgrade request (any 16 bytes in base64 will do for a load test)
/// and the accept value an RFC 6455 server answers it with.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WS_ACCEPT: &[u8] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The masking key of every request frame. RFC 6455 wants keys a proxy cannot predict;
/// a load generator talking to a server on loopback, encoding its one request once, does
/// not need that (the server unmasks whatever the key).
const WS_MASK: [u8; 4] = [0x3a, 0x91, 0x5c, 0xe7];

/// A single-frame binary WebSocket message, masked with `mask` if given.
fn ws_frame(payload: &[u8], mask: Option<[u8; 4]>) -> Bytes {
    let mut f = BytesMut::with_capacity(payload.len() + 14);
    f.put_u8(0x82);
    let bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.put_u8(bit | n as u8),
        n if n <= 0xffff => {
            f.put_u8(bit | 126);
            f.put_u16(n as u16);
        }
        n => {
            f.put_u8(bit | 127);
            f.put_u64(n as u64);
        }
    }
    match mask {
        Some(key) => {
            f.put_slice(&key);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => f.put_slice(payload),
    }
    f.freeze()
}

/// `n` bytes of `abc...xyzabc...`.
fn pattern(n: usize) -> Bytes {
    (0..n)
        .map(|i| b'a' + (i % 26) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// What one call to [`Decoder::decode`] found at the front of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole response ends `consumed` bytes into the buffer: drop those bytes and
    /// decode again if more are buffered.
    Complete {
        /// Bytes of the buffer that belong to this response.
        consumed: usize,
        /// The response is a success: always for echo and framed, status 2xx or 3xx for
        /// HTTP.
        ok: bool,
        /// The server said it closes the connection after this response (HTTP
        /// `Connection: close`).
        closes: bool,
    },
    /// No whole response yet. The first `consumed` bytes were checked and may be
    /// dropped; call again once `need` bytes are buffered (after dropping them).
    Partial {
        /// Bytes already checked that the caller should discard.
        consumed: usize,
        /// Buffered bytes needed before another call can make progress.
        need: usize,
    },
    /// The handshake's answer (WebSocket's 101) ends `consumed` bytes into the buffer:
    /// requests may be sent from now on.
    Upgraded {
        /// Bytes of the buffer that belong to the answer.
        consumed: usize,
    },
}

/// Why a response is not what the request called for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// An echo or framed reply differs from the request at this byte of the response.
    Mismatch {
        /// Offset into the response (frame header included for framed).
        at: usize,
    },
    /// A framed reply announced a different payload length.
    FrameLength {
        /// The length the request carried.
        expected: usize,
        /// The length the reply announced.
        got: usize,
    },
    /// The HTTP response head does not parse.
    Http(httparse::Error),
    /// The HTTP response head is larger than [`MAX_HTTP_HEAD`].
    HeadTooLarge,
    /// The HTTP response body is not `Content-Length` delimited (chunked, or delimited by
    /// the connection closing), or its length is malformed or given twice differently.
    BodyLength(&'static str),
    /// An interim (`1xx`) HTTP response: nothing this generator sends asks for one.
    Informational(u16),
    /// The server did not accept the WebSocket upgrade (no 101 with the right accept).
    Upgrade,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Mismatch { at } => {
                write!(f, "reply differs from the request at byte {at}")
            }
            DecodeError::FrameLength { expected, got } => {
                write!(f, "frame length {got}, expected {expected}")
            }
            DecodeError::Http(e) => write!(f, "malformed HTTP response: {e}"),
            DecodeError::HeadTooLarge => {
                write!(f, "HTTP response head larger than {MAX_HTTP_HEAD} bytes")
            }
            DecodeError::BodyLength(why) => write!(f, "unsupported HTTP body: {why}"),
            DecodeError::Informational(code) => write!(f, "unexpected interim response {code}"),
            DecodeError::Upgrade => f.write_str("the WebSocket upgrade was refused"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes the responses of one connection, in order.
#[derive(Clone, Debug)]
pub enum Decoder {
    /// Echo: the reply must equal the request.
    Echo(Match),
    /// Framed: a length header that must announce the request's payload length, then
    /// the payload, which must equal the request's.
    Framed {
        /// The current reply's header has been read and checked.
        header_read: bool,
        /// The payload being compared.
        body: Match,
    },
    /// HTTP/1.1 responses.
    Http(HttpDecoder),
    /// WebSocket: the 101 first, then each reply must equal the expected frame.
    Ws {
        /// The 101 has been read.
        upgraded: bool,
        /// The reply frame being compared.
        reply: Match,
    },
}

impl Decoder {
    /// Looks at the buffered bytes `buf` (starting where the previous call's `consumed`
    /// left off) and reports what they hold.
    ///
    /// # Errors
    /// The response is malformed or differs from what the request calls for; the
    /// connection's stream can no longer be trusted.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Decoded, DecodeError> {
        match self {
            Decoder::Echo(m) => m.feed(buf, 0),
            Decoder::Framed { header_read, body } => {
                let mut used = 0;
                if !*header_read {
                    if buf.len() < 4 {
                        return Ok(Decoded::Partial {
                            consumed: 0,
                            need: 4,
                        });
                    }
                    let got = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                    let expected = body.expect.len();
                    if got != expected {
                        return Err(DecodeError::FrameLength { expected, got });
                    }
                    *header_read = true;
                    used = 4;
                }
                match body.feed(&buf[used..], 4)? {
                    Decoded::Complete { consumed, .. } => {
                        *header_read = false;
                        Ok(Decoded::Complete {
                            consumed: used + consumed,
                            ok: true,
                            closes: false,
                        })
                    }
                    Decoded::Partial { consumed, need } => Ok(Decoded::Partial {
                        consumed: used + consumed,
                        need,
                    }),
                    Decoded::Upgraded { .. } => unreachable!("a match never upgrades"),
                }
            }
            Decoder::Http(h) => h.decode(buf),
            Decoder::Ws { upgraded, reply } => {
                if *upgraded {
                    return reply.feed(buf, 0);
                }
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    if buf.len() >= MAX_HTTP_HEAD {
                        return Err(DecodeError::HeadTooLarge);
                    }
                    return Ok(Decoded::Partial {
                        consumed: 0,
                        need: buf.len() + 1,
                    });
                };
                let head = &buf[..end + 4];
                let accepted = head.starts_with(b"HTTP/1.1 101 ")
                    && head.windows(WS_ACCEPT.len()).any(|w| w == WS_ACCEPT);
                if !accepted {
                    return Err(DecodeError::Upgrade);
                }
                *upgraded = true;
                Ok(Decoded::Upgraded { consumed: end + 4 })
            }
        }
    }
}

/// Compares a reply against the expected bytes as they arrive, discarding what matched.
#[derive(Clone, Debug)]
pub struct Match {
    expect: Bytes,
    /// How much of `expect` has already been matched.
    pos: usize,
}

impl Match {
    fn new(expect: Bytes) -> Match {
        Match { expect, pos: 0 }
    }

    /// `base` is where the compared bytes start within the response, for error offsets.
    fn feed(&mut self, buf: &[u8], base: usize) -> Result<Decoded, DecodeError> {
        let left = &self.expect[self.pos..];
        let n = left.len().min(buf.len());
        if buf[..n] != left[..n] {
            let at = (0..n).find(|&i| buf[i] != left[i]).unwrap_or(0);
            return Err(DecodeError::Mismatch {
                at: base + self.pos + at,
            });
        }
        if n == left.len() {
            self.pos = 0;
            return Ok(Decoded::Complete {
                consumed: n,
                ok: true,
                closes: false,
            });
        }
        self.pos += n;
        Ok(Decoded::Partial {
            consumed: n,
            need: (left.len() - n).min(MAX_NEED),
        })
    }
}

/// Where the HTTP decoder is within the current response.
#[derive(Clone, Copy, Debug, Default)]
enum HttpState {
    /// Waiting for a complete head.
    #[default]
    Head,
    /// The head said `Content-Length`; this much body is still to come.
    Body {
        remaining: usize,
        ok: bool,
        closes: bool,
    },
}

/// Decodes HTTP/1.1 responses: `httparse` for the head, `Content-Length` for the body.
#[derive(Clone, Debug, Default)]
pub struct HttpDecoder {
    state: HttpState,
}

impl HttpDecoder {
    fn decode(&mut self, buf: &[u8]) -> Result<Decoded, DecodeError> {
        if let HttpState::Body {
            remaining,
            ok,
            closes,
        } = self.state
        {
            return Ok(self.body(buf.len(), 0, remaining, ok, closes));
        }
        let mut slots = [httparse::EMPTY_HEADER; MAX_HTTP_HEADERS];
        let mut res = httparse::Response::new(&mut slots);
        let len = match res.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HTTP_HEAD => {
                return Err(DecodeError::HeadTooLarge)
            }
            Ok(httparse::Status::Partial) => {
                // httparse re-parses from the start, so nothing is consumed; it only needs
                // at least one more byte.
                return Ok(Decoded::Partial {
                    consumed: 0,
                    need: buf.len() + 1,
                });
            }
            Err(e) => return Err(DecodeError::Http(e)),
        };
        let code = res.code.unwrap_or(0);
        if (100..200).contains(&code) {
            return Err(DecodeError::Informational(code));
        }
        let mut length: Option<usize> = None;
        let mut closes = res.version == Some(0);
        for h in res.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = parse_content_length(h.value)
                    .ok_or(DecodeError::BodyLength("bad Content-Length"))?;
                if length.is_some_and(|prev| prev != n) {
                    return Err(DecodeError::BodyLength(
                        "conflicting Content-Length headers",
                    ));
                }
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(DecodeError::BodyLength(
                    "Transfer-Encoding (chunked) is not supported",
                ));
            } else if h.name.eq_ignore_ascii_case("connection") {
                if has_token(h.value, b"close") {
                    closes = true;
                } else if has_token(h.value, b"keep-alive") {
                    closes = false;
                }
            }
        }
        // 204 and 304 never have a body; every other final response to a GET needs a
        // length, or its end would only be known when the connection closes.
        let body_len = match (length, code) {
            (_, 204 | 304) => 0,
            (Some(n), _) => n,
            (None, _) => {
                return Err(DecodeError::BodyLength(
                    "no Content-Length (body delimited by close)",
                ))
            }
        };
        let ok = (200..400).contains(&code);
        Ok(self.body(buf.len(), len, body_len, ok, closes))
    }

    /// The body part: `buffered` bytes are available, the body starts at `start` and is
    /// `remaining` long.
    fn body(
        &mut self,
        buffered: usize,
        start: usize,
        remaining: usize,
        ok: bool,
        closes: bool,
    ) -> Decoded {
        let available = buffered - start;
        if available >= remaining {
            self.state = HttpState::Head;
            Decoded::Complete {
                consumed: start + remaining,
                ok,
                closes,
            }
        } else {
            // Discard what is here rather than buffer a large body whole.
            let remaining = remaining - available;
            self.state = HttpState::Body {
                remaining,
                ok,
                closes,
            };
            Decoded::Partial {
                consumed: buffered,
                need: remaining.min(MAX_NEED),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_waits_for_the_upgrade_then_matches_unmasked_echoes() {
        let spec = spec(Protocol::Ws, 300);
        let request = spec.encode();
        assert_eq!(
            (request[0], request[1] & 0x80),
            (0x82, 0x80),
            "a masked binary frame"
        );
        assert!(spec
            .handshake()
            .unwrap()
            .starts_with(b"GET /plaintext HTTP/1.1\r\n"));
        let mut d = spec.decoder();
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            std::str::from_utf8(WS_ACCEPT).unwrap()
        );
        let mut stream = answer.clone().into_bytes();
        stream.extend_from_slice(&ws_frame(&pattern(300), None));
        assert_eq!(
            d.decode(&stream[..10]),
            Ok(Decoded::Partial {
                consumed: 0,
                need: 11
            })
        );
        assert_eq!(
            d.decode(&stream),
            Ok(Decoded::Upgraded {
                consumed: answer.len()
            })
        );
        assert_eq!(d.decode(&stream[answer.len()..]), Ok(complete(304)));
        let mut refused = spec.decoder();
        assert_eq!(
            refused.decode(b"HTTP/1.1 426 Upgrade Required\r\n\r\n"),
            Err(DecodeError::Upgrade)
        );
    }

    fn spec(protocol: Protocol, size: usize) -> RequestSpec {
        RequestSpec {
            protocol,
            size,
            path: "/plaintext".into(),
            host: "127.0.0.1:8080".into(),
        }
    }

    fn complete(consumed: usize) -> Decoded {
        Decoded::Complete {
            consumed,
            ok: true,
            closes: false,
        }
    }

    /// Feeds `stream` to `d` split at every position in `cuts`, as a connection's input
    /// would arrive, and returns the responses' lengths.
    fn decode_all(d: &mut Decoder, stream: &[u8], cuts: &[usize]) -> Vec<usize> {
        let mut buffered: Vec<u8> = Vec::new();
        let mut done = Vec::new();
        let mut current = 0;
        let mut from = 0;
        for &to in cuts.iter().chain(std::iter::once(&stream.len())) {
            buffered.extend_from_slice(&stream[from..to]);
            from = to;
            while !buffered.is_empty() {
                match d.decode(&buffered).unwrap() {
                    Decoded::Complete { consumed, .. } => {
                        buffered.drain(..consumed);
                        done.push(current + consumed);
                        current = 0;
                    }
                    Decoded::Partial { consumed, need } => {
                        buffered.drain(..consumed);
                        current += consumed;
                        assert!(
                            need > buffered.len(),
                            "need {need} with {} buffered",
                            buffered.len()
                        );
                        break;
                    }
                    Decoded::Upgraded { consumed } => {
                        buffered.drain(..consumed);
                    }
                }
            }
        }
        assert!(buffered.is_empty());
        done
    }

    #[test]
    fn requests_are_encoded_per_protocol() {
        assert_eq!(&spec(Protocol::Echo, 5).encode()[..], b"abcde");
        assert_eq!(
            &spec(Protocol::Framed, 3).encode()[..],
            b"\x00\x00\x00\x03abc"
        );
        assert_eq!(
            &spec(Protocol::Http, 0).encode()[..],
            b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
        );
        assert_eq!(spec(Protocol::Echo, 30).encode()[26], b'a');
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        assert!(spec(Protocol::Echo, 0).validate().is_err());
        assert!(spec(Protocol::Framed, 0).validate().is_ok());
        let mut s = spec(Protocol::Http, 0);
        s.path = "/a b".into();
        assert!(s.validate().is_err());
        s.path = "noslash".into();
        assert!(s.validate().is_err());
        s.path = "/".into();
        s.host = "evil\r\nX: 1".into();
        assert!(s.validate().is_err());
    }

    #[test]
    fn echo_replies_complete_whole_or_in_pieces() {
        let s = spec(Protocol::Echo, 10);
        let mut d = s.decoder();
        let req = s.encode();
        assert_eq!(d.decode(&req).unwrap(), complete(10));
        // Two pipelined replies in one read: one at a time.
        let two = [&req[..], &req[..]].concat();
        assert_eq!(d.decode(&two).unwrap(), complete(10));
        // In pieces: what arrived is checked and discarded, the rest is asked for.
        assert_eq!(
            d.decode(&req[..4]).unwrap(),
            Decoded::Partial {
                consumed: 4,
                need: 6
            }
        );
        assert_eq!(d.decode(&req[4..]).unwrap(), complete(6));
        assert_eq!(decode_all(&mut d, &two, &[1, 9, 10, 11, 19]), [10, 10]);
    }

    #[test]
    fn an_echo_reply_that_differs_is_an_error() {
        let s = spec(Protocol::Echo, 10);
        let mut d = s.decoder();
        assert_eq!(
            d.decode(b"abc").unwrap(),
            Decoded::Partial {
                consumed: 3,
                need: 7
            }
        );
        assert_eq!(d.decode(b"dXf"), Err(DecodeError::Mismatch { at: 4 }));
    }

    #[test]
    fn framed_replies_check_length_and_payload() {
        let s = spec(Protocol::Framed, 6);
        let frame = s.encode();
        let mut d = s.decoder();
        assert_eq!(d.decode(&frame).unwrap(), complete(10));
        assert_eq!(
            d.decode(&frame[..3]).unwrap(),
            Decoded::Partial {
                consumed: 0,
                need: 4
            }
        );
        let three = [&frame[..], &frame[..], &frame[..]].concat();
        assert_eq!(
            decode_all(&mut d, &three, &[2, 4, 5, 13, 20, 21]),
            [10, 10, 10]
        );
        let mut d = s.decoder();
        assert_eq!(
            d.decode(b"\x00\x00\x00\x05abcde"),
            Err(DecodeError::FrameLength {
                expected: 6,
                got: 5
            })
        );
        let mut d = s.decoder();
        assert_eq!(
            d.decode(b"\x00\x00\x00\x06abcdeX"),
            Err(DecodeError::Mismatch { at: 9 })
        );
        // An empty payload is a frame too.
        let mut d = spec(Protocol::Framed, 0).decoder();
        assert_eq!(d.decode(b"\x00\x00\x00\x00").unwrap(), complete(4));
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nServer: netloop\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nDate: Sat, 21 Nov 2026 10:00:00 GMT\r\n\r\nHello, World!";

    #[test]
    fn http_responses_are_delimited_by_content_length() {
        let mut d = spec(Protocol::Http, 0).decoder();
        assert_eq!(d.decode(OK).unwrap(), complete(OK.len()));
        // Pipelined: several responses in one read, and split anywhere.
        let three = [OK, OK, OK].concat();
        let n = OK.len();
        assert_eq!(
            decode_all(&mut d, &three, &[5, 30, n - 3, n + 1, 2 * n + 120]),
            [n, n, n]
        );
        for cut in 0..three.len() {
            assert_eq!(
                decode_all(&mut d, &three, &[cut]),
                [n, n, n],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn http_head_partial_asks_for_more_without_consuming() {
        let mut d = spec(Protocol::Http, 0).decoder();
        assert_eq!(
            d.decode(&OK[..20]).unwrap(),
            Decoded::Partial {
                consumed: 0,
                need: 21
            }
        );
        // The head complete, the body half there: the head and the half are consumed.
        let head = OK.len() - 13;
        assert_eq!(
            d.decode(&OK[..head + 5]).unwrap(),
            Decoded::Partial {
                consumed: head + 5,
                need: 8
            }
        );
        assert_eq!(
            d.decode(b"World!").unwrap(),
            Decoded::Partial {
                consumed: 6,
                need: 2
            }
        );
        assert_eq!(d.decode(b"!!HTTP").unwrap(), complete(2));
    }

    #[test]
    fn http_status_and_connection_close_are_reported() {
        let mut d = spec(Protocol::Http, 0).decoder();
        let res =
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        assert_eq!(
            d.decode(res).unwrap(),
            Decoded::Complete {
                consumed: res.len(),
                ok: false,
                closes: true
            }
        );
        let res = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(d.decode(res).unwrap(), complete(res.len()));
        let res = b"HTTP/1.1 301 Moved\r\nLocation: /x\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(d.decode(res).unwrap(), complete(res.len()));
        // HTTP/1.0 closes unless it says keep-alive.
        let res = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            d.decode(res).unwrap(),
            Decoded::Complete {
                consumed: res.len(),
                ok: true,
                closes: true
            }
        );
        let res = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(d.decode(res).unwrap(), complete(res.len()));
    }

    #[test]
    fn http_responses_it_cannot_delimit_are_errors() {
        let decode = |res: &[u8]| spec(Protocol::Http, 0).decoder().decode(res);
        assert!(matches!(
            decode(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(DecodeError::BodyLength(_))
        ));
        assert!(matches!(
            decode(b"HTTP/1.1 200 OK\r\n\r\nbody until close"),
            Err(DecodeError::BodyLength(_))
        ));
        assert!(matches!(
            decode(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(DecodeError::BodyLength(_))
        ));
        assert!(matches!(
            decode(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
            Err(DecodeError::BodyLength(_))
        ));
        assert!(matches!(
            decode(b"HTTP/1.1 100 Continue\r\n\r\n"),
            Err(DecodeError::Informational(100))
        ));
        assert!(matches!(
            decode(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(DecodeError::Http(_))
        ));
        let endless = [
            &b"HTTP/1.1 200 OK\r\nX: "[..],
            &vec![b'a'; MAX_HTTP_HEAD][..],
        ]
        .concat();
        assert_eq!(decode(&endless), Err(DecodeError::HeadTooLarge));
    }

    #[test]
    fn large_bodies_are_discarded_in_pieces() {
        let mut d = spec(Protocol::Http, 0).decoder();
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n";
        assert_eq!(
            d.decode(head).unwrap(),
            Decoded::Partial {
                consumed: head.len(),
                need: MAX_NEED
            }
        );
        let chunk = vec![0u8; 1_000_000];
        assert_eq!(
            d.decode(&chunk).unwrap(),
            Decoded::Partial {
                consumed: 1_000_000,
                need: 2_000_000.min(MAX_NEED)
            }
        );
        assert_eq!(
            d.decode(&chunk).unwrap(),
            Decoded::Partial {
                consumed: 1_000_000,
                need: 1_000_000
            }
        );
        assert_eq!(d.decode(&chunk).unwrap(), complete(1_000_000));
    }
}
