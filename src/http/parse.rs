//! Request-head parsing as a pure function over buffered bytes: what [`Http`](super::Http)
//! runs on its input, public so other layers (and benchmarks) can reuse it.

use std::fmt;
use std::mem::MaybeUninit;

use bytes::Bytes;

use super::header::{has_token, parse_content_length};
use super::Request;

/// Most headers a request may carry at [`Limits::max_headers`]' largest setting.
const HEADER_SLOTS: usize = 128;

/// The limits a request head is checked against.
///
/// The default is 64 headers, 8 KiB heads and 1 MiB bodies, as for [`Http`](super::Http).
///
/// ```
/// use netloop::http::Limits;
/// let limits = Limits::default().max_headers(16).max_body_bytes(64 * 1024);
/// # let _ = limits;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    max_headers: usize,
    max_head_bytes: usize,
    max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_headers: 64,
            max_head_bytes: 8 * 1024,
            max_body_bytes: 1 << 20,
        }
    }
}

impl Limits {
    /// Most headers per request (at most 128); more are
    /// [`ParseError::HeadersTooLarge`].
    ///
    /// # Panics
    /// If `n` is 0 or above 128.
    pub fn max_headers(mut self, n: usize) -> Limits {
        assert!(
            (1..=HEADER_SLOTS).contains(&n),
            "max_headers({n}) must be 1..=128"
        );
        self.max_headers = n;
        self
    }

    /// Largest request head in bytes, request line to the blank line included; larger
    /// ones (complete or not) are [`ParseError::HeadersTooLarge`].
    pub fn max_head_bytes(mut self, n: usize) -> Limits {
        self.max_head_bytes = n;
        self
    }

    /// Largest `Content-Length` accepted; larger ones are [`ParseError::BodyTooLarge`].
    pub fn max_body_bytes(mut self, n: usize) -> Limits {
        self.max_body_bytes = n;
        self
    }
}

/// What a complete request head said about the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    head_len: usize,
    body_len: usize,
    keep_alive: bool,
    head_only: bool,
    upgrade: bool,
}

impl Head {
    /// Length of the head in bytes, request line to the blank line included: the body
    /// (or the next request) starts at this offset.
    pub fn head_len(&self) -> usize {
        self.head_len
    }

    /// Length of the body that follows the head (its `Content-Length`; 0 without one).
    pub fn body_len(&self) -> usize {
        self.body_len
    }

    /// Whether the connection stays open after the response: by default for HTTP/1.1,
    /// only with `Connection: keep-alive` for HTTP/1.0, never with `Connection: close`.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Whether the request is a `HEAD`: the response carries headers but no body.
    pub fn head_only(&self) -> bool {
        self.head_only
    }

    /// Whether the request asks to switch protocols: an `Upgrade` header and the
    /// `upgrade` token in `Connection` (RFC 9110 §7.8).
    pub fn upgrade(&self) -> bool {
        self.upgrade
    }
}

/// Why a request head cannot be served.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The head is malformed, or has an invalid or conflicting `Content-Length` (`400`).
    BadRequest,
    /// The `Content-Length` is over [`Limits::max_body_bytes`] (`413`).
    BodyTooLarge,
    /// More headers than [`Limits::max_headers`], or a head longer than
    /// [`Limits::max_head_bytes`] (`431`).
    HeadersTooLarge,
    /// The request has a `Transfer-Encoding` (chunked bodies are not supported, `501`).
    ChunkedBody,
}

impl ParseError {
    /// The status code and reason phrase that answer this error.
    ///
    /// ```
    /// use netloop::http::ParseError;
    /// assert_eq!(ParseError::BodyTooLarge.status(), (413, "Payload Too Large"));
    /// ```
    pub fn status(self) -> (u16, &'static str) {
        match self {
            ParseError::BadRequest => (400, "Bad Request"),
            ParseError::BodyTooLarge => (413, "Payload Too Large"),
            ParseError::HeadersTooLarge => (431, "Request Header Fields Too Large"),
            ParseError::ChunkedBody => (501, "Not Implemented"),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::BadRequest => "malformed request head",
            ParseError::BodyTooLarge => "request body over the size limit",
            ParseError::HeadersTooLarge => "request head over the header count or size limit",
            ParseError::ChunkedBody => "request body with a transfer encoding (not supported)",
        })
    }
}

impl std::error::Error for ParseError {}

/// Parses the request head at the front of `buf` into `request`.
///
/// * `Ok(Some(head))`: the head is complete. `request` holds it (a zero-copy slice of
///   `buf`, so [`Request::method`], [`Request::path`], [`Request::header`] and
///   [`Request::head`] read it); its [`body`](Request::body) is empty: the body is the
///   [`body_len`](Head::body_len) bytes of `buf` after [`head_len`](Head::head_len),
///   which may not all be buffered yet.
/// * `Ok(None)`: the head is incomplete (and within the limits); call again with more
///   bytes.
/// * `Err(e)`: the request cannot be served; answer with [`ParseError::status`].
///
/// Unless it returns `Ok(Some(_))`, `request` is left empty. Its header list keeps its
/// capacity, so a `Request` reused across calls does not allocate once warmed up.
///
/// ```
/// use netloop::http::{parse_head, Limits, Request};
/// use netloop::Bytes;
///
/// let buf = Bytes::from_static(
///     b"POST /submit HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello",
/// );
/// let mut req = Request::default();
/// let head = parse_head(&buf, &Limits::default(), &mut req)?.expect("a complete head");
/// assert_eq!((req.method(), req.path()), ("POST", "/submit"));
/// assert_eq!(req.header("host"), Some(&b"example.com"[..]));
/// assert_eq!(head.head_len(), buf.len() - 5);
/// assert_eq!(&buf[head.head_len()..][..head.body_len()], b"hello");
/// assert!(head.keep_alive());
///
/// // Incomplete: more bytes needed.
/// assert_eq!(parse_head(&buf.slice(..20), &Limits::default(), &mut req), Ok(None));
/// assert_eq!(req.method(), "");
/// # Ok::<(), netloop::http::ParseError>(())
/// ```
pub fn parse_head(
    buf: &Bytes,
    limits: &Limits,
    request: &mut Request,
) -> Result<Option<Head>, ParseError> {
    request.body = Bytes::new();
    match parse_into(buf, limits, request) {
        Ok(Some(head)) => {
            request.head = buf.slice(..head.head_len);
            Ok(Some(head))
        }
        other => {
            request.head = Bytes::new();
            request.method = 0..0;
            request.path = 0..0;
            request.minor_version = 1;
            request.headers.clear();
            other
        }
    }
}

/// Parses the head at the front of `buf` into `request`'s ranges (relative to `buf`),
/// leaving `request.head` and `request.body` to the caller. On an error the ranges may
/// be partly filled.
pub(crate) fn parse_into(
    buf: &[u8],
    limits: &Limits,
    request: &mut Request,
) -> Result<Option<Head>, ParseError> {
    // Left uninitialised: zeroing 128 slots (4 KiB) cost more than parsing a small head.
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); HEADER_SLOTS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots[..limits.max_headers]) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head_bytes => {
            return Err(ParseError::HeadersTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::HeadersTooLarge),
        Err(_) => return Err(ParseError::BadRequest),
    };
    if len > limits.max_head_bytes {
        return Err(ParseError::HeadersTooLarge);
    }
    let base = buf.as_ptr() as usize;
    let range = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let r = request;
    r.method = range(req.method.unwrap_or_default().as_bytes());
    r.path = range(req.path.unwrap_or_default().as_bytes());
    r.minor_version = req.version.unwrap_or(1);
    r.headers.clear();
    let mut body_len: Option<usize> = None;
    let mut keep_alive = r.minor_version >= 1;
    let (mut upgrade_header, mut upgrade_token) = (false, false);
    for h in req.headers.iter() {
        r.headers.push((range(h.name.as_bytes()), range(h.value)));
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(h.value).ok_or(ParseError::BadRequest)?;
            if body_len.is_some_and(|prev| prev != n) {
                return Err(ParseError::BadRequest); // conflicting lengths: smuggling risk
            }
            body_len = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ParseError::ChunkedBody);
        } else if h.name.eq_ignore_ascii_case("connection") {
            if has_token(h.value, b"close") {
                keep_alive = false;
            } else if has_token(h.value, b"keep-alive") {
                keep_alive = true;
            }
            upgrade_token |= has_token(h.value, b"upgrade");
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade_header = true;
        }
    }
    let body_len = body_len.unwrap_or(0);
    if body_len > limits.max_body_bytes {
        return Err(ParseError::BodyTooLarge);
    }
    let head_only = req.method == Some("HEAD");
    Ok(Some(Head {
        head_len: len,
        body_len,
        keep_alive,
        head_only,
        upgrade: upgrade_header && upgrade_token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(data: &'static [u8]) -> (Result<Option<Head>, ParseError>, Request) {
        parse_with(data, &Limits::default())
    }

    fn parse_with(
        data: &'static [u8],
        limits: &Limits,
    ) -> (Result<Option<Head>, ParseError>, Request) {
        let mut req = Request::default();
        let res = parse_head(&Bytes::from_static(data), limits, &mut req);
        (res, req)
    }

    fn head(data: &'static [u8]) -> (Head, Request) {
        let (res, req) = parse(data);
        (res.unwrap().expect("complete head"), req)
    }

    #[test]
    fn a_complete_head_fills_the_request() {
        let data = b"GET /plaintext?x=1 HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\nNEXT";
        let (h, req) = head(data);
        assert_eq!(h.head_len(), data.len() - 4);
        assert_eq!(h.body_len(), 0);
        assert!(h.keep_alive());
        assert!(!h.head_only());
        assert_eq!(req.method(), "GET");
        assert_eq!(req.path(), "/plaintext?x=1");
        assert_eq!(req.minor_version(), 1);
        assert_eq!(req.header("HOST"), Some(&b"localhost"[..]));
        let all: Vec<_> = req.headers().collect();
        assert_eq!(all, [("Host", &b"localhost"[..]), ("Accept", &b"*/*"[..])]);
        assert_eq!(&req.head()[..], &data[..h.head_len()]);
        assert!(req.body().is_empty());
    }

    #[test]
    fn a_body_length_is_reported_not_taken() {
        let data = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab";
        let (h, req) = head(data);
        assert_eq!(h.head_len(), data.len() - 2);
        assert_eq!(h.body_len(), 3);
        assert!(req.body().is_empty());
    }

    #[test]
    fn a_partial_head_asks_for_more_and_leaves_the_request_empty() {
        for cut in [1, 5, 20, 34] {
            let data = &b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"[..cut];
            let mut req = Request::default();
            let full = parse_head(
                &Bytes::from_static(b"GET /a HTTP/1.1\r\n\r\n"),
                &Limits::default(),
                &mut req,
            );
            assert!(matches!(full, Ok(Some(_))));
            let res = parse_head(&Bytes::copy_from_slice(data), &Limits::default(), &mut req);
            assert_eq!(res, Ok(None), "cut at {cut}");
            assert_eq!(
                (req.method(), req.path(), req.headers().count()),
                ("", "", 0)
            );
            assert!(req.head().is_empty());
        }
    }

    #[test]
    fn too_many_headers_are_refused() {
        let limits = Limits::default().max_headers(2);
        let (res, _) = parse_with(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", &limits);
        assert!(matches!(res, Ok(Some(_))));
        let (res, req) = parse_with(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &limits);
        assert_eq!(res, Err(ParseError::HeadersTooLarge));
        assert_eq!(req.headers().count(), 0);
    }

    #[test]
    fn a_head_over_the_limit_is_refused_complete_or_not() {
        let limits = Limits::default().max_head_bytes(32);
        // Complete, 34 bytes.
        let complete = b"GET / HTTP/1.1\r\nHost: abcdefgh\r\n\r\n";
        assert_eq!(complete.len(), 34);
        assert_eq!(
            parse_with(complete, &limits).0,
            Err(ParseError::HeadersTooLarge)
        );
        // Exactly at the limit is accepted.
        let at_limit = b"GET / HTTP/1.1\r\nHost: abcdef\r\n\r\n";
        assert_eq!(at_limit.len(), 32);
        assert!(matches!(parse_with(at_limit, &limits).0, Ok(Some(_))));
        // Partial: at the limit it waits, past it it is refused.
        let partial = b"GET / HTTP/1.1\r\nHost: abcdefghijklmn";
        assert_eq!(parse_with(&partial[..32], &limits).0, Ok(None));
        assert_eq!(
            parse_with(&partial[..33], &limits).0,
            Err(ParseError::HeadersTooLarge)
        );
    }

    #[test]
    fn content_lengths_must_be_valid_and_agree() {
        let same = b"POST / HTTP/1.1\r\nContent-Length: 4\r\ncontent-length: 4\r\n\r\n";
        assert_eq!(head(same).0.body_len(), 4);
        let conflict = b"POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(parse(conflict).0, Err(ParseError::BadRequest));
        let (res, req) = parse(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(res, Err(ParseError::BadRequest));
        assert_eq!((req.method(), req.headers().count()), ("", 0));
    }

    #[test]
    fn a_body_over_the_limit_is_refused() {
        let limits = Limits::default().max_body_bytes(10);
        let ok = b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(parse_with(ok, &limits).0.unwrap().unwrap().body_len(), 10);
        let big = b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
        assert_eq!(parse_with(big, &limits).0, Err(ParseError::BodyTooLarge));
    }

    #[test]
    fn a_transfer_encoding_is_refused() {
        let data = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(parse(data).0, Err(ParseError::ChunkedBody));
    }

    #[test]
    fn malformed_heads_are_bad_requests() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n").0,
            Err(ParseError::BadRequest)
        );
        assert_eq!(
            parse(b"\x01\x02 / HTTP/1.1\r\n\r\n").0,
            Err(ParseError::BadRequest)
        );
    }

    #[test]
    fn connection_header_decides_keep_alive() {
        assert!(!head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .0
            .keep_alive());
        assert!(
            !head(b"GET / HTTP/1.1\r\nConnection: Upgrade, Close\r\n\r\n")
                .0
                .keep_alive()
        );
        assert!(head(b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n")
            .0
            .keep_alive());
        assert!(head(b"GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\n")
            .0
            .keep_alive());
    }

    #[test]
    fn http_1_0_closes_unless_asked_to_keep_alive() {
        let (h, req) = head(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(req.minor_version(), 0);
        assert!(!h.keep_alive());
        assert!(head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .0
            .keep_alive());
        assert!(!head(b"GET / HTTP/1.0\r\nConnection: close\r\n\r\n")
            .0
            .keep_alive());
    }

    #[test]
    fn head_requests_are_head_only() {
        let (h, req) = head(b"HEAD /x HTTP/1.1\r\n\r\n");
        assert!(h.head_only());
        assert_eq!(req.method(), "HEAD");
        assert!(!head(b"GET /x HTTP/1.1\r\n\r\n").0.head_only());
    }

    #[test]
    fn pipelined_heads_parse_one_after_another() {
        let one = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut rest = Bytes::from(one.repeat(3));
        let mut req = Request::default();
        let mut n = 0;
        while let Some(h) = parse_head(&rest, &Limits::default(), &mut req).unwrap() {
            assert_eq!((req.path(), h.head_len()), ("/a", one.len()));
            rest = rest.slice(h.head_len()..);
            n += 1;
        }
        assert_eq!(n, 3);
        assert!(rest.is_empty());
    }

    #[test]
    #[should_panic(expected = "max_headers(0) must be 1..=128")]
    fn max_headers_rejects_zero() {
        let _ = Limits::default().max_headers(0);
    }

    #[test]
    fn errors_map_to_statuses_and_messages() {
        assert_eq!(ParseError::BadRequest.status(), (400, "Bad Request"));
        assert_eq!(ParseError::BodyTooLarge.status().0, 413);
        assert_eq!(ParseError::HeadersTooLarge.status().0, 431);
        assert_eq!(ParseError::ChunkedBody.status().0, 501);
        assert_eq!(ParseError::BadRequest.to_string(), "malformed request head");
    }
}
