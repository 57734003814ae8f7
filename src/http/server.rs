//! One HTTP/1.1 connection as a state machine: the [`Handler`] that [`Http`] is.
//!
//! | Phase | On | Does | Next |
//! |---|---|---|---|
//! | `Idle` | the first byte of a request | starts the head deadline | `Head` |
//! | `Idle` | its deadline (keep-alive, or the head timeout on a new connection) | closes, answers nothing | `Closing` |
//! | `Head` | a complete head, body buffered | serves the request | `Idle`, or `Closing` if it closes |
//! | `Head` | a complete head, body not yet | sends `100 Continue` if asked, starts the body deadline | `Body` |
//! | `Head` | the head deadline | `408` | `Closing` |
//! | `Body` | the rest of the body | serves the request | `Idle`, or `Closing` |
//! | `Body` | the body deadline (grace plus minimum rate) | `408` | `Closing` |
//! | `Head`, `Body` | a malformed request, a limit exceeded | `400`, `413`, `414`, `417`, `431` or `501` | `Closing` |
//! | `Head`, `Body` | an upgrade the hook switched | stops its timer | (the new handler) |
//! | `Closing` | input | drops it | `Closing` |
//! | `Closing` | the linger deadline (2 s), or the peer's close | closes | |
//!
//! Pipelined requests go round `Head` → `Idle` → `Head` within one call, until the
//! output reaches its mark ([`Conn::output_over_mark`]). A head or body
//! completed on first sight never arms a timer: deadlines are armed lazily (see
//! [`deadline`](super::deadline)).

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use super::chunked::{Chunked, ChunkedDecoder};
use super::deadline::{DeadlineTimer, DEADLINE};
use super::metrics::HttpEvent;
use super::parse::{self, Head, ParseError};
use super::{Http, Request, Response, Service, Upgrade};
use crate::{CloseReason, Conn, Handler, TimerKey};

/// Per-connection state of the HTTP layer.
#[derive(Debug)]
pub struct HttpConn {
    phase: Phase,
    request: Request,
    timer: DeadlineTimer,
    /// Kept across requests once a connection has sent a chunked body (its range list
    /// keeps its capacity).
    chunked: Option<Box<ChunkedDecoder>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request.
    Idle,
    /// A request head has begun.
    Head { since: Instant },
    /// The head is parsed (`st.request` holds its ranges, relative to the input); its
    /// body is on its way.
    Body {
        head: Head,
        since: Instant,
        continued: bool,
    },
    /// The connection is closing: nothing more is read.
    Closing,
}

/// A complete request: how many input bytes it spans, and its body's place.
struct Complete {
    /// Input bytes the request takes, head, body and framing.
    total: usize,
    body: BodyAt,
}

enum BodyAt {
    /// `len` bytes, `offset` bytes after the head: a `Content-Length` body, or a chunked
    /// body in one chunk (after its size line). Taken as a zero-copy slice.
    Slice { offset: usize, len: usize },
    /// The chunks [`ChunkedDecoder::data`] lists: copied into one buffer.
    Chunks,
}

impl<S: Service> Handler for Http<S> {
    type State = HttpConn;

    fn on_connect(&self, conn: &mut Conn) -> HttpConn {
        // The head and body deadlines replace the server's read timeout (which would
        // cut off a large body arriving slowly but steadily).
        conn.set_read_timeout(None);
        if let Some(write) = self.deadlines.write {
            conn.set_write_timeout(Some(write));
        }
        let mut st = HttpConn {
            phase: Phase::Idle,
            request: Request::default(),
            timer: DeadlineTimer::default(),
            chunked: None,
        };
        // A new connection is opened to send a request: wait for it no longer than for
        // a head.
        let first_by = conn.now() + self.deadlines.head;
        st.timer.expect_by(conn, first_by);
        st
    }

    fn on_request(&self, st: &mut HttpConn, conn: &mut Conn) {
        loop {
            match st.phase {
                Phase::Closing => {
                    let n = conn.input().len();
                    conn.input().skip(n);
                    return;
                }
                Phase::Idle if conn.input().is_empty() => return,
                // Pipelined requests wait while the responses already queued are over
                // the output mark: a peer that never reads cannot make the server queue
                // without bound (the core calls again once it has read half).
                Phase::Idle if conn.output_over_mark() => return,
                Phase::Idle => {
                    st.phase = Phase::Head { since: conn.now() };
                }
                Phase::Head { since } => {
                    let input = conn.input();
                    let parsed = parse::parse_into(input.as_slice(), &self.limits, &mut st.request);
                    match parsed {
                        // The common case: the whole request is here (no body, or a
                        // Content-Length body already buffered).
                        Ok(Some(head))
                            if !head.chunked()
                                && input.len() >= head.head_len() + head.body_len() =>
                        {
                            let complete = Complete {
                                total: head.head_len() + head.body_len(),
                                body: BodyAt::Slice {
                                    offset: 0,
                                    len: head.body_len(),
                                },
                            };
                            if !self.serve(st, conn, head, complete) {
                                return;
                            }
                        }
                        Ok(Some(head)) => {
                            st.phase = Phase::Body {
                                head,
                                since: conn.now(),
                                continued: false,
                            };
                            if head.chunked() {
                                let limits = &self.limits;
                                match &mut st.chunked {
                                    Some(d) => d.reset(limits),
                                    None => {
                                        st.chunked = Some(Box::new(ChunkedDecoder::new(limits)))
                                    }
                                }
                            }
                        }
                        Ok(None) => {
                            st.timer.expect_by(conn, since + self.deadlines.head);
                            return;
                        }
                        Err(e) => return self.refuse(st, conn, e),
                    }
                }
                Phase::Body {
                    head,
                    since,
                    continued,
                } => {
                    let complete = match self.body_progress(st, conn, head) {
                        Ok(Some(complete)) => complete,
                        Ok(None) => {
                            if head.expect_continue() && !continued {
                                conn.output().write(b"HTTP/1.1 100 Continue\r\n\r\n");
                                self.metrics.count(HttpEvent::Continue);
                                st.phase = Phase::Body {
                                    head,
                                    since,
                                    continued: true,
                                };
                            }
                            let received = conn.input().len() - head.head_len();
                            let by = self.deadlines.body_deadline(since, received);
                            st.timer.expect_by(conn, by);
                            return;
                        }
                        Err(e) => return self.refuse(st, conn, e),
                    };
                    if !self.serve(st, conn, head, complete) {
                        return;
                    }
                }
            }
        }
    }

    fn on_timer(&self, st: &mut HttpConn, conn: &mut Conn, key: TimerKey) {
        if key != DEADLINE || !st.timer.fired(conn) {
            return;
        }
        match st.phase {
            Phase::Idle => {
                tracing::debug!("no request within the idle deadline; closing");
                self.metrics.count(HttpEvent::IdleTimeout);
                st.phase = Phase::Closing;
                st.timer.clear();
                conn.close();
            }
            Phase::Head { .. } => {
                tracing::debug!("request head deadline passed");
                self.metrics.count(HttpEvent::HeadTimeout);
                answer_error(st, conn, 408, "Request Timeout", &[]);
            }
            Phase::Body { head, since, .. } => {
                // The deadline moves with the bytes that arrived since it was set.
                let received = conn.input().len().saturating_sub(head.head_len());
                let by = self.deadlines.body_deadline(since, received);
                if by > conn.now() {
                    st.timer.expect_by(conn, by);
                    return;
                }
                tracing::debug!(received, "request body deadline passed");
                self.metrics.count(HttpEvent::BodyTimeout);
                answer_error(st, conn, 408, "Request Timeout", &[]);
            }
            Phase::Closing => conn.close(),
        }
    }

    fn on_close(&self, _st: HttpConn, reason: CloseReason) {
        if reason == CloseReason::WriteTimeout {
            self.metrics.count(HttpEvent::WriteTimeout);
        }
    }
}

impl<S: Service> Http<S> {
    /// Whether the body of the request whose head is `head` is all buffered.
    fn body_progress(
        &self,
        st: &mut HttpConn,
        conn: &mut Conn,
        head: Head,
    ) -> Result<Option<Complete>, ParseError> {
        let input = conn.input();
        if !head.chunked() {
            let total = head.head_len() + head.body_len();
            if input.len() < total {
                input.want(total);
                return Ok(None);
            }
            return Ok(Some(Complete {
                total,
                body: BodyAt::Slice {
                    offset: 0,
                    len: head.body_len(),
                },
            }));
        }
        let decoder = st.chunked.as_mut().expect("a chunked body has a decoder");
        match decoder.decode(&input.as_slice()[head.head_len()..])? {
            Chunked::Done { end } => {
                let body = match decoder.data() {
                    // One chunk (or none): a zero-copy slice like a Content-Length body.
                    [] => BodyAt::Slice { offset: 0, len: 0 },
                    [only] => BodyAt::Slice {
                        offset: only.start,
                        len: only.len(),
                    },
                    _ => BodyAt::Chunks,
                };
                Ok(Some(Complete {
                    total: head.head_len() + end,
                    body,
                }))
            }
            Chunked::More { need } => {
                input.want(head.head_len().saturating_add(need));
                Ok(None)
            }
        }
    }

    /// Serves a complete request; returns whether to go on with the next one.
    fn serve(&self, st: &mut HttpConn, conn: &mut Conn, head: Head, complete: Complete) -> bool {
        st.timer.clear();
        let input = conn.input();
        st.request.head = input.next(head.head_len());
        // The rest of the request: its body, and any chunk framing and trailers.
        let mut rest = complete.total - head.head_len();
        st.request.body = match complete.body {
            BodyAt::Slice { len: 0, .. } => Bytes::new(),
            BodyAt::Slice { offset, len } => {
                input.skip(offset);
                rest -= offset + len;
                input.next(len)
            }
            BodyAt::Chunks => {
                let decoder = st.chunked.as_ref().expect("a chunked body has a decoder");
                let raw = &input.as_slice()[..rest];
                let mut body = BytesMut::with_capacity(decoder.body_len());
                for range in decoder.data() {
                    body.put_slice(&raw[range.clone()]);
                }
                body.freeze()
            }
        };
        if rest > 0 {
            input.skip(rest);
        }

        st.phase = Phase::Idle;
        if let (true, Some(hook)) = (head.upgrade(), self.upgrade.as_ref()) {
            let outcome = hook(&st.request, conn);
            if outcome != Upgrade::Declined {
                st.request.head = Bytes::new();
                st.request.body = Bytes::new();
            }
            match outcome {
                Upgrade::Declined => {}
                Upgrade::Switched if conn.is_switching() => {
                    self.metrics.count(HttpEvent::Upgraded);
                    st.timer.cancel(conn);
                    return false;
                }
                Upgrade::Switched => {
                    tracing::warn!("upgrade hook said Switched without Conn::switch_to; closing");
                    st.phase = Phase::Closing;
                    conn.close();
                    return false;
                }
                Upgrade::Refused {
                    status,
                    reason,
                    headers,
                } => {
                    answer_error(st, conn, status, reason, headers);
                    return false;
                }
            }
        }
        let close = !head.keep_alive();
        let now = conn.now();
        let mut res = Response::new(conn.output(), head.head_only(), close, now);
        match &self.metrics_at {
            Some((path, exporter)) if st.request.is_get(path) => exporter.respond(&mut res),
            _ => self.service.call(&st.request, &mut res),
        }
        res.finish();
        // The request is lent to the service for the call only. Dropping its bytes now
        // lets the input buffer go back to the pool instead of being replaced.
        st.request.head = Bytes::new();
        st.request.body = Bytes::new();
        if res.closes() {
            linger(st, conn);
            return true; // drops what follows
        }
        if conn.input().is_empty() {
            let by = conn.now() + self.deadlines.keep_alive;
            st.timer.expect_by(conn, by);
        }
        true
    }

    fn refuse(&self, st: &mut HttpConn, conn: &mut Conn, error: ParseError) {
        self.metrics.count(match error {
            ParseError::BodyTooLarge => HttpEvent::BodyTooLarge,
            ParseError::HeadersTooLarge => HttpEvent::HeadersTooLarge,
            ParseError::UriTooLong => HttpEvent::UriTooLong,
            ParseError::UnsupportedTransferCoding => HttpEvent::NotImplemented,
            ParseError::ExpectationFailed => HttpEvent::ExpectationFailed,
            _ => HttpEvent::BadRequest,
        });
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
    st.timer.clear();
    st.request.head = Bytes::new();
    st.request.body = Bytes::new();
    let n = conn.input().len();
    conn.input().skip(n);
    let now = conn.now();
    let mut res = Response::new(conn.output(), false, true, now);
    res.status(code, reason)
        .header("Content-Type", "text/plain");
    for (name, value) in headers {
        res.header(name, value);
    }
    res.body(reason.as_bytes());
    linger(st, conn);
}

/// How long a closing connection keeps reading (and dropping) what its peer still sends.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Closes after the last response the way nginx's lingering close does: send it and a
/// FIN, then read and drop what the peer still sends until it closes or [`LINGER`]
/// passes. Closing at once with unread input would send a reset, and a reset can
/// destroy the response in the peer's receive buffer before the peer reads it (a peer
/// still sending a body that was refused with `413`, or pipelining past a
/// `Connection: close`).
fn linger(st: &mut HttpConn, conn: &mut Conn) {
    st.phase = Phase::Closing;
    conn.shutdown_write();
    let until = conn.now() + LINGER;
    st.timer.expect_by(conn, until);
}
