//! Driving a handler without a socket or a poller: for unit tests, and for fuzzing a
//! whole protocol layer over arbitrary byte streams split at arbitrary points.
//!
//! A [`Harness`] holds one connection's handler and state. [`feed`](Harness::feed)
//! appends bytes to its input and runs it as a poller would (`on_request` while it
//! makes progress, the one-in-flight and no-spin rules, protocol switches); the output
//! collects what it wrote, which [`take_output`](Harness::take_output) hands out.
//! Nothing touches the network.
//!
//! ```
//! use netloop::testing::Harness;
//!
//! let mut h = Harness::new(netloop::handler_fn(|conn| {
//!     while let Some(line) = conn.input().until(b"\n") {
//!         conn.output().write(&line.to_ascii_uppercase());
//!     }
//! }));
//! h.feed(b"hel").feed(b"lo\nwor");
//! assert_eq!(h.take_output(), b"HELLO\n");
//! h.feed(b"ld\n");
//! assert_eq!(h.take_output(), b"WORLD\n");
//! ```

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use crate::conn::{ConnShared, Link, Timeouts};
use crate::dispatch::{self, Call};
use crate::poller::Remote;
use crate::session::{self, Session};
use crate::{Addr, CloseReason, Conn, ConnHandle, Handler, TimerKey};

/// One connection's handler, run by hand (see the [module docs](self)).
pub struct Harness {
    session: Option<Box<Session>>,
    /// Timers the handler armed, as (key, after), in the order asked.
    timers: Vec<(TimerKey, Option<Duration>)>,
    panicked: bool,
    /// Keeps the connection's poller half alive (its handles need one).
    _remote: Arc<Remote>,
    /// A socket for `Conn::as_fd` to lend (never read or written by the harness).
    _socket: (UnixStream, UnixStream),
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("panicked", &self.panicked)
            .field("closed", &self.session.is_none())
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// A connection from 127.0.0.1 driven by `handler`; `on_connect` has run.
    ///
    /// # Panics
    /// If the eventfd or socket pair a connection needs cannot be created.
    pub fn new<H: Handler>(handler: H) -> Harness {
        let remote = Remote::new(0, 1).expect("an eventfd");
        let localhost = |port| Addr::Tcp(([127, 0, 0, 1], port).into());
        let shared = ConnShared::create(
            &remote,
            Some(localhost(40000)),
            Some(localhost(8080)),
            4 << 20,
        );
        shared.mark_open();
        let socket = UnixStream::pair().expect("a socket pair");
        let conn = Conn::new(
            // The link never writes (not direct): the output collects.
            Link::new(socket.0.as_raw_fd(), false, None),
            shared,
            tracing::Span::none(),
            Timeouts::default(),
            crate::conn::DEFAULT_WANT_LIMIT,
            crate::clock::Clock::new(),
        );
        let mut h = Harness {
            session: Some(session::hooks(handler).session(conn)),
            timers: Vec::new(),
            panicked: false,
            _remote: remote,
            _socket: socket,
        };
        h.run(Call::Connect);
        h
    }

    fn run(&mut self, call: Call) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        if self.panicked {
            return;
        }
        session.conn.set_now(crate::clock::Nanos::now());
        let outcome = dispatch::run(session, call, false);
        self.panicked |= outcome.panicked;
        let conn = &mut session.conn;
        conn.take_outbox();
        // What a poller publishes when the connection rests (handles read it).
        conn.shared.publish_output_pending(conn.output.len());
        self.timers.append(&mut conn.requests.timers);
    }

    /// Appends `bytes` to the input and runs the handler as a poller would. Does
    /// nothing once a callback panicked or the connection closed.
    pub fn feed(&mut self, bytes: &[u8]) -> &mut Harness {
        if let Some(session) = self.session.as_mut() {
            let input = &mut session.conn.input;
            input.buf.extend_from_slice(bytes);
            input.appended();
        }
        self.run(Call::Requests);
        self
    }

    /// Runs `on_timer` for `key` (whether or not the handler armed it).
    pub fn fire_timer(&mut self, key: TimerKey) -> &mut Harness {
        self.run(Call::Timer(key));
        self
    }

    /// Runs `on_wake`, as [`ConnHandle::wake`] would on the connection's turn.
    pub fn wake(&mut self) -> &mut Harness {
        self.run(Call::Wake);
        self
    }

    /// Everything the handler has written since the last call (and other threads sent
    /// through its handle).
    pub fn take_output(&mut self) -> Vec<u8> {
        let Some(session) = self.session.as_mut() else {
            return Vec::new();
        };
        let conn = &mut session.conn;
        conn.take_outbox();
        let mut out = Vec::with_capacity(conn.output.len());
        while let Some(segment) = conn.output.pop_front() {
            out.extend_from_slice(&segment);
        }
        conn.shared.publish_output_pending(0);
        out
    }

    /// The timers the handler armed (`Some(after)`) or cancelled (`None`) so far, in
    /// order.
    pub fn timers(&self) -> &[(TimerKey, Option<Duration>)] {
        &self.timers
    }

    /// Bytes buffered in the input and not consumed.
    pub fn buffered(&self) -> usize {
        self.session.as_ref().map_or(0, |s| s.conn.input.len())
    }

    /// Whether the handler asked to close the connection.
    pub fn close_requested(&self) -> bool {
        self.session
            .as_ref()
            .is_none_or(|s| s.conn.shared.close_requested() || s.conn.input.over_limit)
    }

    /// Whether a callback panicked (the connection would have been closed).
    pub fn panicked(&self) -> bool {
        self.panicked
    }

    /// The connection's handle, as other threads would use it.
    pub fn handle(&self) -> Option<ConnHandle> {
        self.session.as_ref().map(|s| s.conn.handle())
    }

    /// Closes the connection: runs `on_close` with `reason`.
    pub fn close(&mut self, reason: CloseReason) {
        if let Some(session) = self.session.take() {
            session.conn.shared.mark_closed(None);
            let _ = dispatch::close(session, reason);
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.close(CloseReason::Local);
        // Commands queued for the poller that never ran (a wake from a callback, say)
        // hold the connection, which holds the queue: drop them.
        self._remote.mark_exited();
    }
}
