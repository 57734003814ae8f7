//! The opening handshake (RFC 6455 §4): checking a client's upgrade request, computing
//! `Sec-WebSocket-Accept`, and choosing the subprotocol and extensions. No I/O: the
//! result is the 101's headers, or the status to refuse with.

use base64::Engine;
use sha1::{Digest, Sha1};

use super::deflate::{DeflateConfig, DeflateParams};
use crate::http::Request;

/// The GUID RFC 6455 §1.3 appends to the client's key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
///
/// ```
/// // The example of RFC 6455 §1.3.
/// assert_eq!(
///     netloop::ws::handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Why an upgrade request is refused: the status, reason and headers to answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: &'static str,
    /// Headers the answer carries.
    pub headers: &'static [(&'static str, &'static str)],
}

const fn refuse(status: u16, reason: &'static str) -> Refusal {
    Refusal {
        status,
        reason,
        headers: &[],
    }
}

/// What an accepted handshake settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// `Sec-WebSocket-Accept`.
    pub accept: String,
    /// The subprotocol chosen, if any.
    pub subprotocol: Option<String>,
    /// permessage-deflate's parameters and response header value, if negotiated.
    pub deflate: Option<(DeflateParams, String)>,
}

/// Whether a request asks for WebSocket at all (`Upgrade: websocket`).
pub fn is_websocket(req: &Request) -> bool {
    req.headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case("upgrade"))
        .any(|(_, v)| crate::http::has_token(v, b"websocket"))
}

/// Checks a client's upgrade request (RFC 6455 §4.2.1) and negotiates: the first of
/// `subprotocols` (in this server's order of preference) the client offered, and
/// permessage-deflate if `deflate` is set and the client offered something it accepts.
/// `origin_ok` sees the `Origin` header (browsers send it; other clients may not).
///
/// # Errors
/// `400` for a request that is not a valid WebSocket handshake (not a GET, not
/// HTTP/1.1, no `Host`, a key that is not 16 bytes of base64), `426` with
/// `Sec-WebSocket-Version: 13` for another protocol version, `403` for an origin
/// `origin_ok` refuses.
pub fn accept(
    req: &Request,
    subprotocols: &[String],
    deflate: Option<&DeflateConfig>,
    origin_ok: impl FnOnce(Option<&[u8]>) -> bool,
) -> Result<Accepted, Refusal> {
    if req.method() != "GET" || req.minor_version() < 1 {
        return Err(refuse(400, "Bad Request"));
    }
    if req.header("host").is_none() {
        return Err(refuse(400, "Bad Request"));
    }
    if req.header("sec-websocket-version").map(|v| v.trim_ascii()) != Some(b"13") {
        return Err(Refusal {
            status: 426,
            reason: "Upgrade Required",
            headers: &[("Sec-WebSocket-Version", "13")],
        });
    }
    let key = req
        .header("sec-websocket-key")
        .map(|k| k.trim_ascii())
        .ok_or(refuse(400, "Bad Request"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| refuse(400, "Bad Request"))?;
    if decoded.len() != 16 {
        return Err(refuse(400, "Bad Request"));
    }
    if !origin_ok(req.header("origin")) {
        return Err(refuse(403, "Forbidden"));
    }
    let offered: Vec<&[u8]> = req
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(|p| p.trim_ascii())
        .filter(|p| !p.is_empty())
        .collect();
    let subprotocol = subprotocols
        .iter()
        .find(|ours| offered.iter().any(|o| o == &ours.as_bytes()))
        .cloned();
    let deflate = deflate.and_then(|cfg| {
        cfg.negotiate(
            req.headers()
                .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
                .map(|(_, v)| v),
        )
    });
    Ok(Accepted {
        accept: accept_key(key),
        subprotocol,
        deflate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_head, Limits};
    use bytes::Bytes;

    fn request(text: &str) -> Request {
        let mut req = Request::default();
        let buf = Bytes::from(text.replace('\n', "\r\n"));
        parse_head(&buf, &Limits::default(), &mut req)
            .unwrap()
            .expect("a complete head");
        req
    }

    const GOOD: &str = "GET /chat HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n";

    #[test]
    fn a_valid_request_is_accepted_with_its_subprotocol_and_extension() {
        let req = request(&format!(
            "{GOOD}Sec-WebSocket-Protocol: mqtt, chat\nSec-WebSocket-Extensions: permessage-deflate\n\n"
        ));
        let ours = ["chat".to_string(), "mqtt".to_string()];
        let a = accept(&req, &ours, Some(&DeflateConfig::default()), |_| true).unwrap();
        assert_eq!(a.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(
            a.subprotocol.as_deref(),
            Some("chat"),
            "the server's preference"
        );
        assert!(a.deflate.is_some());
        let plain = accept(&request(&format!("{GOOD}\n")), &[], None, |_| true).unwrap();
        assert_eq!((plain.subprotocol, plain.deflate), (None, None));
    }

    #[test]
    fn bad_requests_get_the_status_rfc_6455_asks_for() {
        let cases = [
            (GOOD.replace("GET", "POST"), 400),
            (GOOD.replace("HTTP/1.1", "HTTP/1.0"), 400),
            (GOOD.replace("Version: 13", "Version: 8"), 426),
            (GOOD.replace("Sec-WebSocket-Version: 13\n", ""), 426),
            (GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="), 400),
            (GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "not base64!"), 400),
            (
                GOOD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\n", ""),
                400,
            ),
        ];
        for (text, status) in cases {
            let err = accept(&request(&format!("{text}\n")), &[], None, |_| true).unwrap_err();
            assert_eq!(err.status, status, "{text}");
        }
        let err = accept(
            &request(&format!("{GOOD}Origin: http://evil\n\n")),
            &[],
            None,
            |o| o == Some(&b"http://good"[..]),
        )
        .unwrap_err();
        assert_eq!(err.status, 403);
        // Without a Host the HTTP layer refuses it before the handshake sees it.
        let no_host = Bytes::from(GOOD.replace("Host: x\n", "").replace('\n', "\r\n") + "\r\n");
        assert_eq!(
            parse_head(&no_host, &Limits::default(), &mut Request::default()),
            Err(crate::http::ParseError::BadRequest)
        );
    }
}
