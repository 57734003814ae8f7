//! A small HTTP/1.1 server layer, written against netloop's public core API only.
//!
//! [`Http`] turns a [`Service`] (a function from [`Request`] to [`Response`]) into a
//! [`Handler`]:
//!
//! * request heads are parsed with `httparse`; the head and body reach the service as
//!   zero-copy [`Bytes`](crate::Bytes) slices of the input;
//! * keep-alive by default for HTTP/1.1 (HTTP/1.0 only with `Connection: keep-alive`),
//!   `Connection: close` honoured;
//! * pipelining: every complete request in the input is answered in order, and all the
//!   responses leave with one write when the handler returns;
//! * `Content-Length` bodies (the handler waits for the whole body with
//!   [`Input::want`](crate::Input::want)); a chunked request body is refused with
//!   `501 Not Implemented`;
//! * limits: more headers than [`Http::max_headers`] or a head larger than
//!   [`Http::max_head_bytes`] get `431`, a body over [`Http::max_body_bytes`] gets `413`,
//!   a malformed request `400`; each closes the connection after the answer;
//! * a `Date` header formatted once a second per thread.
//!
//! ```no_run
//! use netloop::{http::Http, Server};
//!
//! let server = Server::builder()
//!     .listen("127.0.0.1:8080")
//!     .serve(Http::new(|_req: &netloop::http::Request, res: &mut netloop::http::Response<'_>| {
//!         res.header("Content-Type", "text/plain").body(b"Hello, World!");
//!     }))
//!     .unwrap();
//! server.wait();
//! ```
//!
//! Not supported (yet): chunked request bodies, `Expect: 100-continue` (the body is
//! simply awaited), HTTP/2, upgrades (the WebSocket layer will add them).

mod date;
mod header;
mod request;
mod response;

pub use header::{has_token, parse_content_length};
pub use request::Request;
pub use response::Response;

use crate::{Conn, Handler};

/// Answers HTTP requests: implemented for every `Fn(&Request, &mut Response)`.
pub trait Service: Send + Sync + 'static {
    /// Writes the response to `req` into `res`.
    fn call(&self, req: &Request, res: &mut Response<'_>);
}

impl<F> Service for F
where
    F: Fn(&Request, &mut Response<'_>) + Send + Sync + 'static,
{
    fn call(&self, req: &Request, res: &mut Response<'_>) {
        self(req, res)
    }
}

/// Most headers a request may carry at [`Http::max_headers`]' largest setting.
const HEADER_SLOTS: usize = 128;

/// The HTTP/1.1 layer: a [`Handler`] that parses requests and calls a [`Service`].
pub struct Http<S> {
    service: S,
    max_headers: usize,
    max_head_bytes: usize,
    max_body_bytes: usize,
}

/// Per-connection state of the HTTP layer.
#[derive(Debug, Default)]
pub struct HttpConn {
    request: Request,
    /// A response said `Connection: close`: ignore anything after it.
    closing: bool,
}

impl<S: Service> Http<S> {
    /// The layer around `service`, with the default limits: 64 headers, 8 KiB heads,
    /// 1 MiB bodies.
    pub fn new(service: S) -> Http<S> {
        Http {
            service,
            max_headers: 64,
            max_head_bytes: 8 * 1024,
            max_body_bytes: 1 << 20,
        }
    }

    /// Most headers per request (at most 128); more get `431`.
    ///
    /// # Panics
    /// If `n` is 0 or above 128.
    pub fn max_headers(mut self, n: usize) -> Http<S> {
        assert!(
            (1..=HEADER_SLOTS).contains(&n),
            "max_headers({n}) must be 1..=128"
        );
        self.max_headers = n;
        self
    }

    /// Largest request head in bytes; larger ones get `431`.
    pub fn max_head_bytes(mut self, n: usize) -> Http<S> {
        self.max_head_bytes = n;
        self
    }

    /// Largest request body in bytes; larger ones get `413`.
    pub fn max_body_bytes(mut self, n: usize) -> Http<S> {
        self.max_body_bytes = n;
        self
    }
}

/// What the head said about the request.
struct Head {
    len: usize,
    body_len: usize,
    keep_alive: bool,
    head_only: bool,
}

/// Why a request cannot be served; each answer closes the connection.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    BadRequest,
    TooLarge,
    HeadersTooLarge,
    ChunkedBody,
}

impl Refusal {
    fn status(self) -> (u16, &'static str) {
        match self {
            Refusal::BadRequest => (400, "Bad Request"),
            Refusal::TooLarge => (413, "Payload Too Large"),
            Refusal::HeadersTooLarge => (431, "Request Header Fields Too Large"),
            Refusal::ChunkedBody => (501, "Not Implemented"),
        }
    }
}

impl<S: Service> Handler for Http<S> {
    type State = HttpConn;

    fn on_connect(&self, _conn: &mut Conn) -> HttpConn {
        HttpConn::default()
    }

    fn on_request(&self, st: &mut HttpConn, conn: &mut Conn) {
        while !st.closing && !conn.input().is_empty() {
            let head = match self.parse_head(st, conn) {
                Ok(Some(head)) => head,
                Ok(None) => return, // incomplete: called again when more arrives
                Err(refusal) => return self.refuse(st, conn, refusal),
            };
            let input = conn.input();
            if input.len() < head.len + head.body_len {
                input.want(head.len + head.body_len);
                return;
            }
            st.request.head = input.next(head.len);
            st.request.body = match head.body_len {
                0 => crate::Bytes::new(),
                n => input.next(n),
            };
            let close = !head.keep_alive;
            let mut res = Response::new(conn.output(), head.head_only, close);
            self.service.call(&st.request, &mut res);
            res.finish();
            // The request is lent to the service for the call only. Dropping its bytes
            // now lets the input buffer go back to the pool instead of being replaced.
            st.request.head = crate::Bytes::new();
            st.request.body = crate::Bytes::new();
            if res.closes() {
                st.closing = true;
                conn.close();
            }
        }
        if st.closing {
            // Pipelined requests after a `Connection: close` are not answered.
            let n = conn.input().len();
            conn.input().skip(n);
        }
    }
}

impl<S: Service> Http<S> {
    /// Parses the head at the front of the input into `st.request`'s ranges.
    fn parse_head(&self, st: &mut HttpConn, conn: &mut Conn) -> Result<Option<Head>, Refusal> {
        let buffered = conn.input().as_slice();
        let mut slots = [httparse::EMPTY_HEADER; HEADER_SLOTS];
        let mut req = httparse::Request::new(&mut slots[..self.max_headers]);
        let len = match req.parse(buffered) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buffered.len() > self.max_head_bytes => {
                return Err(Refusal::HeadersTooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(Refusal::HeadersTooLarge),
            Err(_) => return Err(Refusal::BadRequest),
        };
        if len > self.max_head_bytes {
            return Err(Refusal::HeadersTooLarge);
        }
        let base = buffered.as_ptr() as usize;
        let range = |s: &[u8]| {
            let start = s.as_ptr() as usize - base;
            start..start + s.len()
        };
        let r = &mut st.request;
        r.method = range(req.method.unwrap_or_default().as_bytes());
        r.path = range(req.path.unwrap_or_default().as_bytes());
        r.minor_version = req.version.unwrap_or(1);
        r.headers.clear();
        let mut body_len: Option<usize> = None;
        let mut keep_alive = r.minor_version >= 1;
        for h in req.headers.iter() {
            r.headers.push((range(h.name.as_bytes()), range(h.value)));
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = parse_content_length(h.value).ok_or(Refusal::BadRequest)?;
                if body_len.is_some_and(|prev| prev != n) {
                    return Err(Refusal::BadRequest); // conflicting lengths: smuggling risk
                }
                body_len = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(Refusal::ChunkedBody);
            } else if h.name.eq_ignore_ascii_case("connection") {
                if has_token(h.value, b"close") {
                    keep_alive = false;
                } else if has_token(h.value, b"keep-alive") {
                    keep_alive = true;
                }
            }
        }
        let body_len = body_len.unwrap_or(0);
        if body_len > self.max_body_bytes {
            return Err(Refusal::TooLarge);
        }
        let head_only = req.method == Some("HEAD");
        Ok(Some(Head {
            len,
            body_len,
            keep_alive,
            head_only,
        }))
    }

    fn refuse(&self, st: &mut HttpConn, conn: &mut Conn, refusal: Refusal) {
        let (code, reason) = refusal.status();
        tracing::debug!(code, "refusing request");
        let n = conn.input().len();
        conn.input().skip(n);
        let mut res = Response::new(conn.output(), false, true);
        res.status(code, reason)
            .header("Content-Type", "text/plain")
            .body(reason.as_bytes());
        st.closing = true;
        conn.close();
    }
}
