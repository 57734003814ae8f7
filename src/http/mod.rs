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
//! * a `Date` header formatted once a second per thread;
//! * protocol upgrades: a hook set with [`Http::on_upgrade`] sees each request that asks
//!   for one (with the connection), and may answer `101 Switching Protocols`
//!   ([`switching_protocols`]) and hand the connection to another handler in place
//!   ([`Conn::switch_to`]), keeping whatever the peer sent after the request.
//!
//! The head parser is public too: [`parse_head`] checks a buffered head against
//! [`Limits`] and fills a [`Request`], for layers that parse requests themselves.
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
//! simply awaited), HTTP/2.

mod date;
mod header;
mod parse;
mod request;
mod response;

pub use header::{has_token, parse_content_length};
pub use parse::{parse_head, Head, Limits, ParseError};
pub use request::Request;
pub use response::{switching_protocols, Response};

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

/// The HTTP/1.1 layer: a [`Handler`] that parses requests and calls a [`Service`].
pub struct Http<S> {
    service: S,
    limits: Limits,
    upgrade: Option<Box<UpgradeHook>>,
}

/// The hook [`Http::on_upgrade`] installs.
type UpgradeHook = dyn Fn(&Request, &mut Conn) -> Upgrade + Send + Sync + 'static;

/// What an upgrade hook ([`Http::on_upgrade`]) did with a request that asks to switch
/// protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Upgrade {
    /// The hook wrote its `101 Switching Protocols` answer ([`switching_protocols`]) and
    /// called [`Conn::switch_to`]: the HTTP layer answers nothing and reads nothing more;
    /// bytes after the request go to the new handler.
    Switched,
    /// Not an upgrade this hook serves: the service answers the request as usual.
    Declined,
    /// A bad upgrade request: the layer answers with this status, reason and headers
    /// and closes the connection (WebSocket's `400` for a missing key, `426` with
    /// `Sec-WebSocket-Version: 13` for a wrong version).
    Refused {
        /// The status code.
        status: u16,
        /// The reason phrase, also sent as the body.
        reason: &'static str,
        /// Headers to add to the answer.
        headers: &'static [(&'static str, &'static str)],
    },
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
            limits: Limits::default(),
            upgrade: None,
        }
    }

    /// Sets the hook that sees every request asking to switch protocols (an `Upgrade`
    /// header and `Connection: upgrade`), after its head and body have been read, with
    /// the connection. It answers and switches ([`Upgrade::Switched`]), passes the
    /// request on to the service ([`Upgrade::Declined`]), or refuses it. Without a hook,
    /// such requests go to the service like any other.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use netloop::http::{switching_protocols, Http, Request, Response, Upgrade};
    /// use netloop::{handler_fn, Server};
    ///
    /// // After the upgrade, the connection is a raw echo.
    /// let echo = Arc::new(handler_fn(|conn| {
    ///     let n = conn.input().len();
    ///     let data = conn.input().next(n);
    ///     conn.output().write_bytes(data);
    /// }));
    /// let http = Http::new(|_: &Request, res: &mut Response<'_>| res.body(b"hello"))
    ///     .on_upgrade(move |req, conn| {
    ///         if req.header("upgrade") != Some(&b"echo"[..]) {
    ///             return Upgrade::Declined;
    ///         }
    ///         switching_protocols(conn.output(), &[("Upgrade", "echo"), ("Connection", "Upgrade")]);
    ///         conn.switch_to(echo.clone(), ());
    ///         Upgrade::Switched
    ///     });
    /// let server = Server::builder().listen("127.0.0.1:8080").serve(http)?;
    /// # Ok::<(), netloop::Error>(())
    /// ```
    pub fn on_upgrade<F>(mut self, hook: F) -> Http<S>
    where
        F: Fn(&Request, &mut Conn) -> Upgrade + Send + Sync + 'static,
    {
        self.upgrade = Some(Box::new(hook));
        self
    }

    /// Most headers per request (at most 128); more get `431`.
    ///
    /// # Panics
    /// If `n` is 0 or above 128.
    pub fn max_headers(mut self, n: usize) -> Http<S> {
        self.limits = self.limits.max_headers(n);
        self
    }

    /// Largest request head in bytes; larger ones get `431`.
    pub fn max_head_bytes(mut self, n: usize) -> Http<S> {
        self.limits = self.limits.max_head_bytes(n);
        self
    }

    /// Largest request body in bytes; larger ones get `413`.
    pub fn max_body_bytes(mut self, n: usize) -> Http<S> {
        self.limits = self.limits.max_body_bytes(n);
        self
    }
}

impl<S: Service> Handler for Http<S> {
    type State = HttpConn;

    fn on_connect(&self, _conn: &mut Conn) -> HttpConn {
        HttpConn::default()
    }

    fn on_request(&self, st: &mut HttpConn, conn: &mut Conn) {
        while !st.closing && !conn.input().is_empty() {
            let input = conn.input();
            // Fills the request's ranges; its head and body are taken below.
            let head = match parse::parse_into(input.as_slice(), &self.limits, &mut st.request) {
                Ok(Some(head)) => head,
                Ok(None) => return, // incomplete: called again when more arrives
                Err(error) => return self.refuse(st, conn, error),
            };
            let total = head.head_len() + head.body_len();
            if input.len() < total {
                input.want(total);
                return;
            }
            st.request.head = input.next(head.head_len());
            st.request.body = match head.body_len() {
                0 => crate::Bytes::new(),
                n => input.next(n),
            };
            if let (true, Some(hook)) = (head.upgrade(), self.upgrade.as_ref()) {
                let outcome = hook(&st.request, conn);
                if outcome != Upgrade::Declined {
                    st.request.head = crate::Bytes::new();
                    st.request.body = crate::Bytes::new();
                }
                match outcome {
                    Upgrade::Declined => {}
                    Upgrade::Switched if conn.is_switching() => return,
                    Upgrade::Switched => {
                        tracing::warn!(
                            "upgrade hook said Switched without Conn::switch_to; closing"
                        );
                        st.closing = true;
                        conn.close();
                        return;
                    }
                    Upgrade::Refused {
                        status,
                        reason,
                        headers,
                    } => {
                        return answer_error(st, conn, status, reason, headers);
                    }
                }
            }
            let close = !head.keep_alive();
            let mut res = Response::new(conn.output(), head.head_only(), close);
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
    fn refuse(&self, st: &mut HttpConn, conn: &mut Conn, error: ParseError) {
        let (code, reason) = error.status();
        answer_error(st, conn, code, reason, &[]);
    }
}

/// Answers with an error status and closes; whatever else is buffered is dropped.
fn answer_error(
    st: &mut HttpConn,
    conn: &mut Conn,
    code: u16,
    reason: &str,
    headers: &[(&str, &str)],
) {
    tracing::debug!(code, "refusing request");
    let n = conn.input().len();
    conn.input().skip(n);
    let mut res = Response::new(conn.output(), false, true);
    res.status(code, reason)
        .header("Content-Type", "text/plain");
    for (name, value) in headers {
        res.header(name, value);
    }
    res.body(reason.as_bytes());
    st.closing = true;
    conn.close();
}
