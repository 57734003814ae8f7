//! A small HTTP/1.1 server layer, written against netloop's public core API only.
//!
//! [`Http`] turns a [`Service`] (a function from [`Request`] to [`Response`]) into a
//! [`Handler`](crate::Handler):
//!
//! * request heads are parsed with `httparse`; the head and body reach the service as
//!   zero-copy [`Bytes`](crate::Bytes) slices of the input;
//! * keep-alive by default for HTTP/1.1 (HTTP/1.0 only with `Connection: keep-alive`),
//!   `Connection: close` honoured;
//! * pipelining: every complete request in the input is answered in order, and all the
//!   responses leave with one write when the handler returns;
//! * bodies framed by `Content-Length` or the `chunked` transfer coding (decoded, its
//!   extensions and trailers skipped); a client that sent `Expect: 100-continue` gets
//!   `100 Continue` before its body is awaited;
//! * strict framing (RFC 9112 §6, what stops request smuggling): `Content-Length` with
//!   `Transfer-Encoding`, `chunked` not last or twice, a transfer coding in HTTP/1.0, and
//!   invalid or conflicting lengths get `400`; so does an HTTP/1.1 request without
//!   exactly one `Host` (§3.2). Other transfer codings get `501`;
//! * limits: more headers than [`Http::max_headers`] or a head larger than
//!   [`Http::max_head_bytes`] get `431` (`414` if the request line alone is that long),
//!   a body over [`Http::max_body_bytes`] `413`; each closes the connection after the
//!   answer;
//! * deadlines, on by default, so that a server with no options set cannot be held by
//!   slow or silent peers:
//!
//!   | Deadline | Default | Bounds | Then |
//!   |---|---|---|---|
//!   | [`head_timeout`](Http::head_timeout) | 10 s | a request head, first byte to last (and a new connection's silence) | `408`, close |
//!   | [`body_timeout`](Http::body_timeout) + [`body_min_rate`](Http::body_min_rate) | 20 s + 1 s per KiB | a request body | `408`, close |
//!   | [`keep_alive_timeout`](Http::keep_alive_timeout) | 60 s | the wait for the next request | close |
//!   | [`write_timeout`](Http::write_timeout) | 30 s | responses not read by the peer | close |
//!
//!   Each is counted in [`HttpMetrics`], with the refusals; the layer's deadlines
//!   replace the server's [read timeout](crate::Builder::read_timeout) on its
//!   connections;
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
//! Not supported (yet): transfer codings other than `chunked`, chunked responses
//! (responses carry a `Content-Length`), HTTP/2.

mod chunked;
mod date;
mod deadline;
mod exporter;
mod header;
mod metrics;
mod parse;
mod request;
mod response;
mod server;

pub use chunked::{Chunked, ChunkedDecoder};
pub use exporter::Exporter;
pub use header::{has_token, parse_content_length};
pub use metrics::{HttpEvent, HttpMetrics, HttpStats};
pub use parse::{parse_head, Head, Limits, ParseError};
pub use request::Request;
pub use response::{switching_protocols, Response};
pub use server::HttpConn;

use std::time::Duration;

use crate::Conn;
use deadline::Deadlines;

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

/// The HTTP/1.1 layer: a [`Handler`](crate::Handler) that parses requests and calls a [`Service`].
pub struct Http<S> {
    service: S,
    limits: Limits,
    deadlines: Deadlines,
    metrics: HttpMetrics,
    upgrade: Option<Box<UpgradeHook>>,
    /// `GET` requests for this path are answered with the exporter's text.
    metrics_at: Option<(String, Exporter)>,
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

impl<S: Service> Http<S> {
    /// The layer around `service`, with the default limits (64 headers, 8 KiB heads,
    /// 1 MiB bodies, 64 KiB of chunk framing) and deadlines (10 s per head, 20 s plus
    /// 1 KiB/s per body, 60 s keep-alive, 30 s write). Each is changed with its own
    /// method below, which says why its default is what it is.
    pub fn new(service: S) -> Http<S> {
        Http {
            service,
            limits: Limits::default(),
            deadlines: Deadlines::default(),
            metrics: HttpMetrics::default(),
            upgrade: None,
            metrics_at: None,
        }
    }

    /// Answers `GET path` (say `/metrics`) with `exporter`'s counters in the Prometheus
    /// text format instead of calling the service, and adds this layer's counters to the
    /// exporter. Add the server's with [`Exporter::add_server`] once it is started.
    pub fn metrics_at(mut self, path: &str, exporter: Exporter) -> Http<S> {
        exporter.add_http(self.metrics.clone());
        self.metrics_at = Some((path.to_owned(), exporter));
        self
    }

    /// The layer's counters (timeouts, refusals), shared with this value: keep the
    /// clone, serve the layer, read it any time with [`HttpMetrics::snapshot`].
    pub fn metrics(&self) -> HttpMetrics {
        self.metrics.clone()
    }

    /// How long a request head may take, from its first byte to its blank line (the
    /// whole head, not the gap between reads: trickling a byte at a time buys nothing).
    /// Past it the request is answered `408 Request Timeout` and the connection closed
    /// ([`HttpEvent::HeadTimeout`]). It also bounds how long a new connection may stay
    /// silent before its first request ([`HttpEvent::IdleTimeout`]).
    ///
    /// Default 10 s: a head is a few hundred bytes, which any client sends within
    /// milliseconds, a slow mobile link within a second or two; nginx waits 60 s and
    /// Apache 20–40 s, at the price of a slot per slow-loris peer for that long.
    ///
    /// # Panics
    /// If `timeout` is zero.
    pub fn head_timeout(mut self, timeout: Duration) -> Http<S> {
        assert!(!timeout.is_zero(), "Http::head_timeout must not be zero");
        self.deadlines.head = timeout;
        self
    }

    /// How long a request body may take beyond its rate allowance: a body must be
    /// complete within this long of its head, plus one second for every
    /// [`body_min_rate`](Http::body_min_rate) bytes that have arrived. Past it: `408`
    /// and a close ([`HttpEvent::BodyTimeout`]).
    ///
    /// Default 20 s, as Apache's `RequestReadTimeout body=20`: with the rate allowance a
    /// 1 MiB upload may take 20 s + 1024 s if it keeps coming at 1 KiB/s, while a peer
    /// that declares a body and sends nothing is gone in 20 s.
    ///
    /// # Panics
    /// If `timeout` is zero.
    pub fn body_timeout(mut self, timeout: Duration) -> Http<S> {
        assert!(!timeout.is_zero(), "Http::body_timeout must not be zero");
        self.deadlines.body = timeout;
        self
    }

    /// The transfer rate, in bytes per second, that extends a body's deadline (see
    /// [`body_timeout`](Http::body_timeout)). Default 1024 (1 KiB/s); 0 is taken as 1.
    pub fn body_min_rate(mut self, bytes_per_second: u32) -> Http<S> {
        self.deadlines.body_min_rate = bytes_per_second;
        self
    }

    /// How long a connection may wait for its next request after a response; past it,
    /// it is closed without an answer ([`HttpEvent::IdleTimeout`]).
    ///
    /// Default 60 s: longer than browsers keep idle connections open themselves, so
    /// their reuse works, and short enough that idle peers do not pile up (nginx: 75 s).
    ///
    /// # Panics
    /// If `timeout` is zero.
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Http<S> {
        assert!(
            !timeout.is_zero(),
            "Http::keep_alive_timeout must not be zero"
        );
        self.deadlines.keep_alive = timeout;
        self
    }

    /// How long responses may stay queued without any byte of them being sent (the peer
    /// stopped reading) before the connection is closed ([`HttpEvent::WriteTimeout`],
    /// [`CloseReason::WriteTimeout`](crate::CloseReason::WriteTimeout)); `None` keeps the
    /// server's [write timeout](crate::Builder::write_timeout).
    ///
    /// Default 30 s (nginx's `send_timeout` is 60 s). A peer that reads, however
    /// slowly, is not cut off; what it can make the server hold is bounded by the
    /// output mark ([`Builder::output_high_water`](crate::Builder::output_high_water)),
    /// above which its requests wait unread.
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Http<S> {
        self.deadlines.write = timeout;
        self
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

    /// Largest request body in bytes; larger ones get `413`. A larger limit than the
    /// server's [`max_want`](crate::Builder::max_want) is held to that.
    pub fn max_body_bytes(mut self, n: usize) -> Http<S> {
        self.limits = self.limits.max_body_bytes(n);
        self
    }

    /// Most bytes of chunked framing per body ([`Limits::max_chunk_framing`]); more get
    /// `413`.
    pub fn max_chunk_framing(mut self, n: usize) -> Http<S> {
        self.limits = self.limits.max_chunk_framing(n);
        self
    }
}
