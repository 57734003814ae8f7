//! The client's side of the opening handshake (RFC 6455 §4.1), with no I/O: the
//! upgrade request, and the checks on the server's answer (status, `Upgrade`,
//! `Connection`, `Sec-WebSocket-Accept`, the subprotocol and permessage-deflate).
//! The engine uses it; it is public for clients of other kinds and for fuzzing.

use std::fmt;

use base64::Engine;

use super::url::WsUrl;
use crate::ws::deflate::{DeflateConfig, DeflateParams};
use crate::ws::handshake::accept_key;

/// The largest response head accepted; a server that sends more fails the handshake.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Why the server's answer does not open a WebSocket connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The server answered with another status than 101 (a 403 or a 404, say).
    Status {
        /// The status code.
        code: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// The answer is not a valid HTTP response, or breaks RFC 6455: what was wrong.
    Invalid(String),
    /// The answer's head was longer than 16 KiB.
    TooLong,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Status { code, reason } => {
                write!(f, "the server answered {code} {reason} instead of 101")
            }
            HandshakeError::Invalid(why) => write!(f, "bad handshake answer: {why}"),
            HandshakeError::TooLong => f.write_str("the handshake answer's head is too long"),
        }
    }
}

impl std::error::Error for HandshakeError {}

fn invalid(why: impl Into<String>) -> HandshakeError {
    HandshakeError::Invalid(why.into())
}

/// What the upgrade request asks for: subprotocols (in order of preference),
/// permessage-deflate, extra headers.
#[derive(Clone, Debug, Default)]
pub struct Offer {
    pub(crate) subprotocols: Vec<String>,
    pub(crate) deflate: Option<DeflateConfig>,
    pub(crate) headers: Vec<(String, String)>,
}

impl Offer {
    /// Asks for nothing beyond WebSocket itself.
    pub fn new() -> Offer {
        Offer::default()
    }

    /// Offers a subprotocol (after those offered before).
    pub fn subprotocol(mut self, protocol: &str) -> Offer {
        self.subprotocols.push(protocol.to_string());
        self
    }

    /// Offers permessage-deflate (see [`deflate_offer`]).
    pub fn deflate(mut self, config: DeflateConfig) -> Offer {
        self.deflate = Some(config);
        self
    }

    /// Adds a header to the request.
    pub fn header(mut self, name: &str, value: &str) -> Offer {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// What an accepted handshake settled.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Opened {
    /// The subprotocol the server chose.
    pub subprotocol: Option<String>,
    /// permessage-deflate's parameters, if the server took the offer.
    pub deflate: Option<DeflateParams>,
    /// Bytes of the answer's head (frames may follow it at once).
    pub head_len: usize,
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes in base64.
pub fn new_key() -> String {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&fastrand::u64(..).to_ne_bytes());
    raw[8..].copy_from_slice(&fastrand::u64(..).to_ne_bytes());
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The upgrade request for `url` with `key`.
pub fn request(url: &WsUrl, key: &str, offer: &Offer) -> Vec<u8> {
    let mut r = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
        url.resource, url.host_header
    );
    if !offer.subprotocols.is_empty() {
        r.push_str("Sec-WebSocket-Protocol: ");
        r.push_str(&offer.subprotocols.join(", "));
        r.push_str("\r\n");
    }
    if let Some(d) = &offer.deflate {
        r.push_str("Sec-WebSocket-Extensions: ");
        r.push_str(&deflate_offer(d));
        r.push_str("\r\n");
    }
    for (name, value) in &offer.headers {
        r.push_str(name);
        r.push_str(": ");
        r.push_str(value);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// The permessage-deflate offer a client configuration makes. The `server_*` settings
/// are what it asks of the server; it always says it can take a `client_max_window_bits`
/// limit (it compresses with any window from 9 to 15 bits).
pub fn deflate_offer(d: &DeflateConfig) -> String {
    let mut o = String::from("permessage-deflate");
    if d.server_no_context_takeover {
        o.push_str("; server_no_context_takeover");
    }
    if d.client_no_context_takeover {
        o.push_str("; client_no_context_takeover");
    }
    if d.server_max_window_bits < 15 {
        o.push_str(&format!(
            "; server_max_window_bits={}",
            d.server_max_window_bits
        ));
    }
    if d.client_max_window_bits < 15 {
        o.push_str(&format!(
            "; client_max_window_bits={}",
            d.client_max_window_bits
        ));
    } else {
        o.push_str("; client_max_window_bits");
    }
    o
}

/// Checks the server's answer in `buf` to a request made with `key` and `offer`:
/// `Ok(None)` if its head is not all there yet.
///
/// ```
/// use netloop::ws::client::handshake::{check_response, new_key, Offer};
/// use netloop::ws::handshake::accept_key;
///
/// let key = new_key();
/// let answer = format!(
///     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
///      Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
///     accept_key(key.as_bytes())
/// );
/// let opened = check_response(answer.as_bytes(), &key, &Offer::new()).unwrap().unwrap();
/// assert_eq!(opened.head_len, answer.len());
/// assert_eq!(check_response(&answer.as_bytes()[..10], &key, &Offer::new()), Ok(None));
/// ```
///
/// # Errors
/// A status other than 101, a malformed head or one longer than
/// [`MAX_RESPONSE_HEAD`], a wrong `Sec-WebSocket-Accept`, missing `Upgrade` or
/// `Connection` tokens, a subprotocol or extension that was not offered.
pub fn check_response(
    buf: &[u8],
    key: &str,
    offer: &Offer,
) -> Result<Option<Opened>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
            return Err(HandshakeError::TooLong)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(invalid("more than 32 header fields")),
        Err(e) => return Err(invalid(e.to_string())),
    };
    if head_len > MAX_RESPONSE_HEAD {
        return Err(HandshakeError::TooLong);
    }
    let code = res.code.unwrap_or(0);
    if code != 101 {
        return Err(HandshakeError::Status {
            code,
            reason: res.reason.unwrap_or("").to_string(),
        });
    }
    let fields: Vec<(&str, &str)> = res
        .headers
        .iter()
        .map(|h| (h.name, std::str::from_utf8(h.value).unwrap_or("")))
        .collect();
    let values = |name: &'static str| {
        fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    let has_token = |name: &'static str, token: &str| {
        values(name).any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token("upgrade", "websocket") {
        return Err(invalid("no \"Upgrade: websocket\""));
    }
    if !has_token("connection", "upgrade") {
        return Err(invalid("no \"Connection: Upgrade\""));
    }
    let expected = accept_key(key.as_bytes());
    let accepts: Vec<&str> = values("sec-websocket-accept").collect();
    if accepts.len() != 1 || accepts[0].trim() != expected {
        return Err(invalid(
            "Sec-WebSocket-Accept does not match the key (not a WebSocket server, or a cache in between)",
        ));
    }
    let protocols: Vec<&str> = values("sec-websocket-protocol").collect();
    let subprotocol = match protocols.as_slice() {
        [] => None,
        [p] if offer.subprotocols.iter().any(|o| o == p.trim()) => Some(p.trim().to_string()),
        _ => {
            return Err(invalid(
                "the server chose a subprotocol that was not offered",
            ))
        }
    };
    let extensions: Vec<&str> = values("sec-websocket-extensions")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let deflate = match (extensions.as_slice(), &offer.deflate) {
        ([], _) => None,
        ([answer], Some(config)) => Some(deflate_answer(answer, config)?),
        ([_], None) => {
            return Err(invalid(
                "the server chose an extension that was not offered",
            ))
        }
        _ => return Err(invalid("the server chose more than one extension")),
    };
    Ok(Some(Opened {
        subprotocol,
        deflate,
        head_len,
    }))
}

/// The parameters a server's permessage-deflate answer settles, checked against what
/// this client offered (RFC 7692 §7.1).
///
/// # Errors
/// Unknown, repeated or malformed parameters, windows above what was offered,
/// `client_max_window_bits=8` (zlib compresses with 9 bits at least), or a refused
/// `server_no_context_takeover`.
pub fn deflate_answer(
    answer: &str,
    offered: &DeflateConfig,
) -> Result<DeflateParams, HandshakeError> {
    let mut parts = answer.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|n| n.eq_ignore_ascii_case("permessage-deflate"))
    {
        return Err(invalid(format!(
            "unknown extension in the answer: {answer:?}"
        )));
    }
    let mut server_nct = false;
    let mut client_nct = false;
    let mut server_bits = None;
    let mut client_bits = None;
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        let bits = |v: Option<&str>| -> Result<u8, HandshakeError> {
            v.filter(|v| (1..=2).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse().ok())
                .filter(|b| (8..=15).contains(b))
                .ok_or_else(|| invalid(format!("bad permessage-deflate parameter {param:?}")))
        };
        let dup = || invalid(format!("permessage-deflate parameter {name:?} twice"));
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if value.is_none() => {
                if std::mem::replace(&mut server_nct, true) {
                    return Err(dup());
                }
            }
            "client_no_context_takeover" if value.is_none() => {
                if std::mem::replace(&mut client_nct, true) {
                    return Err(dup());
                }
            }
            "server_max_window_bits" => {
                if server_bits.replace(bits(value)?).is_some() {
                    return Err(dup());
                }
            }
            "client_max_window_bits" => {
                if client_bits.replace(bits(value)?).is_some() {
                    return Err(dup());
                }
            }
            _ => {
                return Err(invalid(format!(
                    "unknown permessage-deflate parameter {param:?}"
                )))
            }
        }
    }
    if offered.server_no_context_takeover && !server_nct {
        return Err(invalid(
            "the server did not accept server_no_context_takeover",
        ));
    }
    let server_bits = server_bits.unwrap_or(15);
    if server_bits > offered.server_max_window_bits {
        return Err(invalid("server_max_window_bits above what was offered"));
    }
    let client_bits = client_bits.unwrap_or(15);
    if client_bits > offered.client_max_window_bits {
        return Err(invalid("client_max_window_bits above what was offered"));
    }
    if client_bits == 8 {
        // zlib's raw deflate has no 8-bit window (it uses 9, which the server could not
        // inflate): refusing is all RFC 7692 leaves a client that cannot comply.
        return Err(invalid(
            "client_max_window_bits=8 asked for; zlib compresses with 9 bits at least",
        ));
    }
    Ok(DeflateParams {
        server_no_context_takeover: server_nct,
        client_no_context_takeover: client_nct || offered.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
        threshold: offered.threshold,
        level: offered.level,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> WsUrl {
        WsUrl::parse("ws://example.com:8080/chat?room=1").unwrap()
    }

    fn answer(key: &str, extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
            accept_key(key.as_bytes())
        )
        .into_bytes()
    }

    #[test]
    fn the_request_carries_key_version_protocols_extensions_and_headers() {
        let offer = Offer {
            subprotocols: vec!["chat".into(), "superchat".into()],
            deflate: Some(DeflateConfig::default()),
            headers: vec![("Origin".into(), "http://example.com".into())],
        };
        let r = String::from_utf8(request(&url(), "a2V5", &offer)).unwrap();
        assert!(r.starts_with("GET /chat?room=1 HTTP/1.1\r\nHost: example.com:8080\r\n"));
        for line in [
            "Sec-WebSocket-Key: a2V5\r\n",
            "Sec-WebSocket-Version: 13\r\n",
            "Sec-WebSocket-Protocol: chat, superchat\r\n",
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits\r\n",
            "Origin: http://example.com\r\n",
        ] {
            assert!(r.contains(line), "{line:?} in {r:?}");
        }
        assert!(r.ends_with("\r\n\r\n"));
        assert_eq!(new_key().len(), 24);
        assert_ne!(new_key(), new_key());
    }

    #[test]
    fn a_good_answer_opens_and_frames_behind_it_are_left() {
        let key = new_key();
        let mut buf = answer(&key, "Sec-WebSocket-Protocol: chat\r\n");
        let head = buf.len();
        buf.extend_from_slice(&[0x81, 0x00]);
        let offer = Offer {
            subprotocols: vec!["chat".into()],
            ..Offer::default()
        };
        let opened = check_response(&buf, &key, &offer).unwrap().unwrap();
        assert_eq!(opened.head_len, head);
        assert_eq!(opened.subprotocol.as_deref(), Some("chat"));
        assert_eq!(check_response(&buf[..head - 1], &key, &offer), Ok(None));
    }

    #[test]
    fn bad_answers_are_refused_with_what_was_wrong() {
        let key = new_key();
        let none = Offer::default();
        let err = check_response(b"HTTP/1.1 403 Forbidden\r\n\r\n", &key, &none).unwrap_err();
        assert_eq!(
            err,
            HandshakeError::Status {
                code: 403,
                reason: "Forbidden".into()
            }
        );
        let wrong_key = answer("c29tZSBvdGhlciBrZXk=", "");
        assert!(matches!(
            check_response(&wrong_key, &key, &none),
            Err(HandshakeError::Invalid(_))
        ));
        for extra in [
            "Sec-WebSocket-Protocol: chat\r\n",
            "Sec-WebSocket-Extensions: permessage-deflate\r\n",
        ] {
            assert!(
                check_response(&answer(&key, extra), &key, &none).is_err(),
                "{extra}"
            );
        }
        let no_upgrade = String::from_utf8(answer(&key, ""))
            .unwrap()
            .replace("Upgrade: websocket\r\n", "");
        assert!(check_response(no_upgrade.as_bytes(), &key, &none).is_err());
        assert!(check_response(b"garbage\r\n\r\n", &key, &none).is_err());
        let long = [
            b"HTTP/1.1 101 OK\r\nX: ".as_slice(),
            &vec![b'a'; MAX_RESPONSE_HEAD],
        ]
        .concat();
        assert_eq!(
            check_response(&long, &key, &none),
            Err(HandshakeError::TooLong)
        );
    }

    #[test]
    fn deflate_answers_settle_the_parameters_or_fail() {
        let offered = DeflateConfig::default().server_context_takeover(true);
        let p = deflate_answer(
            "permessage-deflate; client_max_window_bits=10; server_max_window_bits=12",
            &offered,
        )
        .unwrap();
        assert_eq!(
            (
                p.server_no_context_takeover,
                p.client_no_context_takeover,
                p.server_max_window_bits,
                p.client_max_window_bits
            ),
            (false, true, 12, 10)
        );
        for bad in [
            "permessage-deflate; client_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; mystery",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "x-webkit-deflate-frame",
        ] {
            assert!(deflate_answer(bad, &offered).is_err(), "{bad}");
        }
        // Asked for server_no_context_takeover (the default config) and not given it.
        assert!(deflate_answer("permessage-deflate", &DeflateConfig::default()).is_err());
    }
}
