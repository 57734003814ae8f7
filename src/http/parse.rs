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
    max_chunk_framing: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_headers: 64,
            max_head_bytes: 8 * 1024,
            max_body_bytes: 1 << 20,
            max_chunk_framing: 64 * 1024,
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

    /// Largest body accepted: a larger `Content-Length`, or chunks adding up to more, are
    /// [`ParseError::BodyTooLarge`].
    pub fn max_body_bytes(mut self, n: usize) -> Limits {
        self.max_body_bytes = n;
        self
    }

    /// Most bytes of chunked framing (size lines, extensions, the CRLFs after data,
    /// trailers) one body may carry beyond its data; more are
    /// [`ParseError::BodyTooLarge`]. Without it, a body of one-byte chunks would make the
    /// server buffer six times the body limit. Default 64 KiB: a 1 MiB body in 16-byte
    /// chunks fits.
    pub fn max_chunk_framing(mut self, n: usize) -> Limits {
        self.max_chunk_framing = n;
        self
    }

    /// The largest body accepted ([`max_body_bytes`](Limits::max_body_bytes)).
    pub fn body_limit(&self) -> usize {
        self.max_body_bytes
    }

    /// The chunked framing allowance ([`max_chunk_framing`](Limits::max_chunk_framing)).
    pub fn chunk_framing_limit(&self) -> usize {
        self.max_chunk_framing
    }
}

/// What a complete request head said about the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    head_len: usize,
    body_len: usize,
    chunked: bool,
    expect_continue: bool,
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

    /// Length of the body that follows the head: its `Content-Length`, 0 without one
    /// and for a chunked body (whose length is known once it is decoded, see
    /// [`chunked`](Head::chunked)).
    pub fn body_len(&self) -> usize {
        self.body_len
    }

    /// Whether the body is sent with the `chunked` transfer coding: decode it with a
    /// [`ChunkedDecoder`](super::ChunkedDecoder) from [`head_len`](Head::head_len) on.
    pub fn chunked(&self) -> bool {
        self.chunked
    }

    /// Whether the client sent `Expect: 100-continue` (HTTP/1.1, with a body): it may
    /// wait for an interim `100 Continue` before sending the body.
    pub fn expect_continue(&self) -> bool {
        self.expect_continue
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

/// Why a request cannot be served.
///
/// The framing rules that stop request smuggling (RFC 9112 §6) are
/// [`BadRequest`](ParseError::BadRequest)s: `Content-Length` together with
/// `Transfer-Encoding`, a `Transfer-Encoding` in an HTTP/1.0 request, `chunked` that is
/// not the final coding or appears twice, an invalid or conflicting `Content-Length`,
/// and (RFC 9112 §3.2) an HTTP/1.1 request without exactly one `Host`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The request is malformed or its framing is ambiguous (`400`).
    BadRequest,
    /// The body is over [`Limits::max_body_bytes`] (`413`): its `Content-Length`, or the
    /// chunks decoded so far, or a chunked framing over
    /// [`Limits::max_chunk_framing`].
    BodyTooLarge,
    /// More headers than [`Limits::max_headers`], or a head longer than
    /// [`Limits::max_head_bytes`] (`431`).
    HeadersTooLarge,
    /// The request line alone is longer than [`Limits::max_head_bytes`]: a request
    /// target too long to serve (`414`).
    UriTooLong,
    /// A transfer coding other than `chunked` (say `gzip, chunked`): the layer decodes
    /// only `chunked` (`501`).
    UnsupportedTransferCoding,
    /// An `Expect` other than `100-continue` (`417`).
    ExpectationFailed,
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
            ParseError::UriTooLong => (414, "URI Too Long"),
            ParseError::UnsupportedTransferCoding => (501, "Not Implemented"),
            ParseError::ExpectationFailed => (417, "Expectation Failed"),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::BadRequest => "malformed request or ambiguous framing",
            ParseError::BodyTooLarge => "request body over the size limit",
            ParseError::HeadersTooLarge => "request head over the header count or size limit",
            ParseError::UriTooLong => "request line over the head size limit",
            ParseError::UnsupportedTransferCoding => "transfer coding other than chunked",
            ParseError::ExpectationFailed => "expectation other than 100-continue",
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
            return Err(over_limit(buf, limits))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::HeadersTooLarge),
        Err(_) => return Err(ParseError::BadRequest),
    };
    if len > limits.max_head_bytes {
        return Err(over_limit(buf, limits));
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
    let mut framing = Framing::default();
    let mut keep_alive = r.minor_version >= 1;
    let (mut upgrade_header, mut upgrade_token) = (false, false);
    let (mut hosts, mut expect_continue) = (0, false);
    for h in req.headers.iter() {
        r.headers.push((range(h.name.as_bytes()), range(h.value)));
        let name = h.name.as_bytes();
        if name_is(name, b"content-length") {
            framing.content_length(h.value)?;
        } else if name_is(name, b"transfer-encoding") {
            framing.transfer_encoding(h.value)?;
        } else if name_is(name, b"host") {
            hosts += 1;
        } else if name_is(name, b"connection") {
            if has_token(h.value, b"close") {
                keep_alive = false;
            } else if has_token(h.value, b"keep-alive") {
                keep_alive = true;
            }
            upgrade_token |= has_token(h.value, b"upgrade");
        } else if name_is(name, b"upgrade") {
            upgrade_header = true;
        } else if name_is(name, b"expect") {
            if !h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
                return Err(ParseError::ExpectationFailed);
            }
            expect_continue = true;
        }
    }
    // RFC 9112 §3.2: exactly one Host in HTTP/1.1, never two in any version.
    if hosts > 1 || (hosts == 0 && r.minor_version >= 1) {
        return Err(ParseError::BadRequest);
    }
    let (body_len, chunked) = framing.finish(r.minor_version)?;
    if body_len > limits.max_body_bytes {
        return Err(ParseError::BodyTooLarge);
    }
    let head_only = req.method == Some("HEAD");
    Ok(Some(Head {
        head_len: len,
        body_len,
        chunked,
        // RFC 9110 §10.1.1: ignored in HTTP/1.0, and meaningless without a body.
        expect_continue: expect_continue && r.minor_version >= 1 && (chunked || body_len > 0),
        keep_alive,
        head_only,
        upgrade: upgrade_header && upgrade_token,
    }))
}

/// Whether the header name `name` is `lower` (lowercase letters and `-`), compared
/// without regard to case, eight bytes at a time. Setting bit 5 of a byte lowercases
/// an uppercase letter and leaves a lowercase one and `-` as they are; of the other
/// bytes only CR would become a letter or `-` that way, and httparse admits only token
/// characters in a name. This runs for every header of every request, where the byte
/// by byte comparison cost more than the rest of the loop.
#[inline(always)]
fn name_is(name: &[u8], lower: &[u8]) -> bool {
    const CASE: u8 = 0x20;
    if name.len() != lower.len() {
        return false;
    }
    if name.len() < 8 {
        return name.iter().zip(lower).all(|(&n, &l)| n | CASE == l);
    }
    let word = |b: &[u8], at: usize| {
        u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"))
            | u64::from_le_bytes([CASE; 8])
    };
    let mut at = 0;
    while at + 8 < name.len() {
        if word(name, at) != word(lower, at) {
            return false;
        }
        at += 8;
    }
    // The last eight bytes, overlapping the word before them.
    word(name, name.len() - 8) == word(lower, lower.len() - 8)
}

/// A head over [`Limits::max_head_bytes`]: `414` if the request line alone is (the
/// target is what is long), `431` otherwise.
fn over_limit(buf: &[u8], limits: &Limits) -> ParseError {
    let line = &buf[..buf.len().min(limits.max_head_bytes + 1)];
    if line.contains(&b'\n') {
        ParseError::HeadersTooLarge
    } else {
        ParseError::UriTooLong
    }
}

/// How the body is delimited, gathered over the head's `Content-Length` and
/// `Transfer-Encoding` fields (RFC 9112 §6).
#[derive(Default)]
struct Framing {
    content_length: Option<usize>,
    /// A `Transfer-Encoding` field was present.
    transfer_encoding: bool,
    /// The last transfer coding listed so far is `chunked`.
    chunked_last: bool,
    /// `chunked` was listed (anywhere).
    chunked_seen: bool,
    /// A coding other than `chunked` was listed.
    other_coding: bool,
}

impl Framing {
    fn content_length(&mut self, value: &[u8]) -> Result<(), ParseError> {
        let n = parse_content_length(value).ok_or(ParseError::BadRequest)?;
        if self.content_length.is_some_and(|prev| prev != n) {
            return Err(ParseError::BadRequest); // conflicting lengths: smuggling risk
        }
        self.content_length = Some(n);
        Ok(())
    }

    /// Adds one `Transfer-Encoding` field's list of codings (several fields form one
    /// list, in order).
    fn transfer_encoding(&mut self, value: &[u8]) -> Result<(), ParseError> {
        self.transfer_encoding = true;
        for element in value.split(|&b| b == b',') {
            let coding = element.trim_ascii();
            if coding.is_empty() {
                continue; // RFC 9110 §5.6.1: empty list elements are ignored
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                if self.chunked_seen {
                    return Err(ParseError::BadRequest); // chunked applied twice
                }
                self.chunked_seen = true;
                self.chunked_last = true;
            } else if is_coding(coding) {
                self.other_coding = true;
                self.chunked_last = false;
            } else {
                return Err(ParseError::BadRequest);
            }
        }
        Ok(())
    }

    /// The body's `Content-Length` (0 if chunked or absent) and whether it is chunked.
    fn finish(self, minor_version: u8) -> Result<(usize, bool), ParseError> {
        if !self.transfer_encoding {
            return Ok((self.content_length.unwrap_or(0), false));
        }
        // Both length fields: one of two parsers in a chain may believe the other one.
        // A Transfer-Encoding in HTTP/1.0, which has none, is as ambiguous (§6.1).
        if self.content_length.is_some() || minor_version == 0 {
            return Err(ParseError::BadRequest);
        }
        // chunked not last (or absent): the body's length cannot be known (§6.3).
        if !self.chunked_last {
            return Err(ParseError::BadRequest);
        }
        if self.other_coding {
            return Err(ParseError::UnsupportedTransferCoding);
        }
        Ok((0, true))
    }
}

/// A transfer coding: a token, optionally with `;`-separated parameters.
fn is_coding(coding: &[u8]) -> bool {
    let name = coding.split(|&b| b == b';').next().unwrap_or_default();
    let name = name.trim_ascii();
    !name.is_empty() && name.iter().all(|&b| is_tchar(b))
}

/// RFC 9110 §5.6.2 token characters.
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_name_matches_in_any_case_and_no_other_token_does() {
        let token_chars: Vec<u8> = (0u8..128)
            .filter(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(c))
            .collect();
        for target in [
            &b"host"[..],
            b"expect",
            b"upgrade",
            b"connection",
            b"content-length",
            b"transfer-encoding",
        ] {
            assert!(name_is(target, target));
            assert!(name_is(&target.to_ascii_uppercase(), target));
            // Every single-character change to a token character: a match exactly when
            // it is the same letter in the other case.
            for at in 0..target.len() {
                for &c in &token_chars {
                    let mut name = target.to_vec();
                    name[at] = c;
                    assert_eq!(
                        name_is(&name, target),
                        c.eq_ignore_ascii_case(&target[at]),
                        "{:?} against {:?}",
                        String::from_utf8_lossy(&name),
                        String::from_utf8_lossy(target)
                    );
                }
            }
            assert!(!name_is(&target[1..], target));
            assert!(!name_is(&[target, b"x"].concat(), target));
        }
    }

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
        let data = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nab";
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
                &Bytes::from_static(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"),
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
        let limits = Limits::default().max_headers(3);
        let (res, _) = parse_with(
            b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n",
            &limits,
        );
        assert!(matches!(res, Ok(Some(_))));
        let (res, req) = parse_with(
            b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
            &limits,
        );
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
        let same = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\ncontent-length: 4\r\n\r\n";
        assert_eq!(head(same).0.body_len(), 4);
        let conflict =
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(parse(conflict).0, Err(ParseError::BadRequest));
        let (res, req) = parse(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(res, Err(ParseError::BadRequest));
        assert_eq!((req.method(), req.headers().count()), ("", 0));
    }

    #[test]
    fn a_body_over_the_limit_is_refused() {
        let limits = Limits::default().max_body_bytes(10);
        let ok = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(parse_with(ok, &limits).0.unwrap().unwrap().body_len(), 10);
        let big = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n";
        assert_eq!(parse_with(big, &limits).0, Err(ParseError::BodyTooLarge));
    }

    #[test]
    fn a_final_chunked_coding_is_a_chunked_body() {
        for te in ["chunked", "Chunked", " chunked ", "chunked,", ", chunked"] {
            let data = format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n");
            let mut req = Request::default();
            let h = parse_head(&Bytes::from(data), &Limits::default(), &mut req)
                .unwrap()
                .unwrap();
            assert!(h.chunked(), "{te:?}");
            assert_eq!(h.body_len(), 0);
        }
    }

    fn status_of(data: &str) -> Result<Option<Head>, ParseError> {
        let mut req = Request::default();
        parse_head(&Bytes::from(data.to_owned()), &Limits::default(), &mut req)
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let bad = [
            // Both length fields (RFC 9112 §6.1, the classic CL.TE / TE.CL smuggling).
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            // chunked not final, or twice, or in two fields twice.
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
            // Not a coding at all, or empty.
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked x\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n",
            // HTTP/1.0 has no transfer codings.
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            // Lengths: a list, a sign, hex, two that disagree.
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x4\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\n",
        ];
        for data in bad {
            assert_eq!(status_of(data), Err(ParseError::BadRequest), "{data:?}");
        }
    }

    #[test]
    fn other_transfer_codings_are_not_implemented() {
        let data = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(status_of(data), Err(ParseError::UnsupportedTransferCoding));
        let split = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(status_of(split), Err(ParseError::UnsupportedTransferCoding));
    }

    #[test]
    fn http_1_1_needs_exactly_one_host() {
        assert_eq!(
            status_of("GET / HTTP/1.1\r\n\r\n"),
            Err(ParseError::BadRequest)
        );
        assert_eq!(
            status_of("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
            Err(ParseError::BadRequest)
        );
        assert_eq!(
            status_of("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"),
            Err(ParseError::BadRequest)
        );
        assert!(matches!(status_of("GET / HTTP/1.0\r\n\r\n"), Ok(Some(_))));
        // An empty Host is valid (a target without an authority).
        assert!(matches!(
            status_of("GET / HTTP/1.1\r\nHost:\r\n\r\n"),
            Ok(Some(_))
        ));
    }

    #[test]
    fn a_long_request_line_is_uri_too_long_and_long_headers_are_431() {
        let limits = Limits::default().max_head_bytes(64);
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100));
        let mut req = Request::default();
        for cut in [65, 80, long_target.len()] {
            let buf = Bytes::from(long_target[..cut].to_owned());
            assert_eq!(
                parse_head(&buf, &limits, &mut req),
                Err(ParseError::UriTooLong),
                "cut at {cut}"
            );
        }
        let long_header = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", "a".repeat(100));
        let buf = Bytes::from(long_header);
        assert_eq!(
            parse_head(&buf, &limits, &mut req),
            Err(ParseError::HeadersTooLarge)
        );
    }

    #[test]
    fn expect_continue_is_seen_and_other_expectations_fail() {
        let h = status_of(
            "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(h.expect_continue());
        let chunked = status_of("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(chunked.expect_continue());
        // Nothing to continue to without a body; HTTP/1.0 ignores it (RFC 9110 §10.1.1).
        let no_body = status_of("GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n");
        assert!(!no_body.unwrap().unwrap().expect_continue());
        let old = status_of("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
        assert!(!old.unwrap().unwrap().expect_continue());
        assert_eq!(
            status_of("POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 3\r\n\r\n"),
            Err(ParseError::ExpectationFailed)
        );
    }

    #[test]
    fn malformed_heads_are_bad_requests() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n").0,
            Err(ParseError::BadRequest)
        );
        assert_eq!(
            parse(b"\x01\x02 / HTTP/1.1\r\n\r\n").0,
            Err(ParseError::BadRequest)
        );
    }

    #[test]
    fn connection_header_decides_keep_alive() {
        assert!(
            !head(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .0
                .keep_alive()
        );
        assert!(
            !head(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, Close\r\n\r\n")
                .0
                .keep_alive()
        );
        assert!(
            head(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
                .0
                .keep_alive()
        );
        assert!(
            head(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\r\n")
                .0
                .keep_alive()
        );
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
        let (h, req) = head(b"HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(h.head_only());
        assert_eq!(req.method(), "HEAD");
        assert!(!head(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n").0.head_only());
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
        assert_eq!(ParseError::UriTooLong.status().0, 414);
        assert_eq!(ParseError::UnsupportedTransferCoding.status().0, 501);
        assert_eq!(ParseError::ExpectationFailed.status().0, 417);
        assert_eq!(
            ParseError::BadRequest.to_string(),
            "malformed request or ambiguous framing"
        );
    }
}
