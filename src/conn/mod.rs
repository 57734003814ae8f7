//! A connection as its handler sees it: input, output, identity, timers, requests to the
//! poller, and a handle other threads can use.

pub(crate) mod group;
mod handle;
mod input;
mod link;
mod output;

pub use group::{ConnGroup, GroupStats, Overflow};
pub use handle::ConnHandle;
pub(crate) use handle::{ConnShared, Offer};
pub use input::Input;
pub(crate) use input::DEFAULT_WANT_LIMIT;
pub(crate) use link::Link;
pub use output::Output;
pub(crate) use output::MAX_IOVECS;

use std::cell::Cell;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{Clock, Nanos};
use crate::session::{PendingSwitch, Switch};
use crate::{Addr, Handler};

/// Names one of a connection's timers: a connection can have several armed at once (a
/// protocol's ping interval, its pong deadline, an application timer), each re-armed or
/// cancelled on its own, and [`Handler::on_timer`](crate::Handler::on_timer) is told
/// which one fired. Protocol layers keep to their own range of keys and leave the rest
/// to their users (each layer documents its range).
///
/// ```
/// use std::time::Duration;
/// use netloop::{Conn, Handler, TimerKey};
///
/// const PING: TimerKey = TimerKey(0);
/// const GIVE_UP: TimerKey = TimerKey(1);
///
/// /// Pings every second; closes if nothing came back for five.
/// struct Heartbeat;
///
/// impl Handler for Heartbeat {
///     type State = ();
///     fn on_connect(&self, conn: &mut Conn) {
///         conn.set_timer(PING, Duration::from_secs(1));
///         conn.set_timer(GIVE_UP, Duration::from_secs(5));
///     }
///     fn on_request(&self, _: &mut (), conn: &mut Conn) {
///         let n = conn.input().len();
///         conn.input().skip(n);
///         conn.set_timer(GIVE_UP, Duration::from_secs(5)); // the peer is alive
///     }
///     fn on_timer(&self, _: &mut (), conn: &mut Conn, key: TimerKey) {
///         match key {
///             PING => {
///                 conn.output().write(b"ping\n");
///                 conn.set_timer(PING, Duration::from_secs(1));
///             }
///             _ => conn.close(),
///         }
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerKey(pub u16);

/// One connection, lent to the handler for the duration of a callback.
///
/// It is owned by one thread at a time: the poller that owns the socket, or (in
/// [`Dispatch::Pool`](crate::Dispatch::Pool) mode) the worker running the handler. Other
/// threads reach it through a [`ConnHandle`].
#[derive(Debug)]
pub struct Conn {
    pub(crate) input: Input,
    pub(crate) output: Output,
    pub(crate) link: Link,
    pub(crate) shared: Arc<ConnShared>,
    /// What the handler asked the poller to do once the callback returns.
    pub(crate) requests: Requests,
    /// on_request calls since the poller last collected the count.
    pub(crate) calls: u64,
    pub(crate) span: tracing::Span,
    pub(crate) timeouts: Timeouts,
    /// The poller's clock when the callback was started (see [`Conn::now`]).
    now: Nanos,
    /// Turns `now` into an `Instant`.
    clock: Clock,
    /// `now` as an `Instant`, once a callback has asked for it.
    now_instant: Cell<Option<Instant>>,
}

/// What a handler asked of the poller during a callback; the poller carries it out when
/// the callback has returned. Written by the handler only, taken by the poller.
#[derive(Default)]
pub(crate) struct Requests {
    /// Shut the write side down once the output has drained.
    pub(crate) shutdown_write: bool,
    /// Timers to arm (`Some(after)`, from when the poller takes the request) or cancel
    /// (`None`), in the order asked; the vector keeps its capacity.
    pub(crate) timers: Vec<(TimerKey, Option<Duration>)>,
    /// A timeout was overridden: the poller re-arms.
    pub(crate) timeouts_changed: bool,
    /// Switch to another handler when the callback returns.
    pub(crate) switch: Option<Box<dyn Switch>>,
}

impl std::fmt::Debug for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requests")
            .field("shutdown_write", &self.shutdown_write)
            .field("timers", &self.timers)
            .field("timeouts_changed", &self.timeouts_changed)
            .field("switch", &self.switch.is_some())
            .finish()
    }
}

impl Requests {
    pub(crate) fn is_empty(&self) -> bool {
        !self.shutdown_write
            && self.timers.is_empty()
            && !self.timeouts_changed
            && self.switch.is_none()
    }
}

/// A connection's read, write and idle timeouts (see
/// [`Builder::read_timeout`](crate::Builder::read_timeout) and its siblings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub(crate) read: Option<Duration>,
    pub(crate) write: Option<Duration>,
    pub(crate) idle: Option<Duration>,
}

/// What `peer_addr`/`local_addr` say before an address is known (never, for a connection
/// a handler sees: both are known once it is connected).
static UNKNOWN: Addr = Addr::Tcp(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)));

/// The connection's socket, for socket options (`let fd = conn.as_fd();` then
/// `socket2::SockRef::from(&fd)`).
/// The descriptor stays open for as long as the borrow lasts. Reading, writing or closing
/// it directly would break the poller's bookkeeping (and bypass the transport): use
/// [`Conn::input`], [`Conn::output`] and [`Conn::close`] for that.
impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the poller closes the descriptor only after the session is back home
        // and no callback holds the `Conn`; the borrow cannot outlive this `&self`.
        unsafe { BorrowedFd::borrow_raw(self.link.fd()) }
    }
}

impl Conn {
    pub(crate) fn new(
        link: Link,
        shared: Arc<ConnShared>,
        span: tracing::Span,
        timeouts: Timeouts,
        want_limit: usize,
        clock: Clock,
    ) -> Conn {
        Conn {
            input: Input::with_limit(want_limit),
            output: Output::for_connection(),
            link,
            shared,
            requests: Requests::default(),
            calls: 0,
            span,
            timeouts,
            now: Nanos::now(),
            clock,
            now_instant: Cell::new(None),
        }
    }

    /// Sets the time the next callback starts at (the poller's reading of its turn).
    #[inline]
    pub(crate) fn set_now(&mut self, now: Nanos) {
        self.now = now;
        self.now_instant.set(None);
    }

    /// The buffered input.
    pub fn input(&mut self) -> &mut Input {
        &mut self.input
    }

    /// The output queue.
    pub fn output(&mut self) -> &mut Output {
        &mut self.output
    }

    /// Input and output at once, for handlers that read and write in the same
    /// expression.
    pub fn split(&mut self) -> (&mut Input, &mut Output) {
        (&mut self.input, &mut self.output)
    }

    /// Sends the queued output now, as far as the socket takes it, through the
    /// connection's transport; the rest is sent when the socket has room. Output still
    /// queued when the callback returns is sent then, so most handlers never call this.
    ///
    /// On the io_uring backend with inline dispatch the poller's ring sends the output:
    /// `flush` leaves it queued and it is submitted when the callback returns, in the same
    /// system call as everything else of that loop turn.
    ///
    /// # Errors
    /// The connection is broken; it is closed after the callback returns.
    pub fn flush(&mut self) -> io::Result<()> {
        self.link.flush(&mut self.output)
    }

    /// What the connection's [`Transport`](crate::transport::Transport) negotiated, if
    /// it reports a `T` ([`Transport::info`](crate::transport::Transport::info)); `None`
    /// for plain TCP.
    pub fn transport_info<T: std::any::Any>(&self) -> Option<&T> {
        self.link.info().and_then(|i| i.downcast_ref::<T>())
    }

    /// The TLS session of a connection served or dialed over TLS: protocol version,
    /// cipher suite, ALPN protocol, the server name the client asked for (SNI), the
    /// peer's certificates. `None` for plain TCP.
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&crate::tls::TlsInfo> {
        self.transport_info::<crate::tls::TlsInfo>()
    }

    /// The connection's id, unique within the process.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The remote end's address.
    pub fn peer_addr(&self) -> &Addr {
        self.shared.peer().unwrap_or(&UNKNOWN)
    }

    /// The local end's address.
    pub fn local_addr(&self) -> &Addr {
        self.shared.local().unwrap_or(&UNKNOWN)
    }

    /// Index of the poller thread that owns this connection.
    pub fn poller(&self) -> usize {
        self.shared.poller
    }

    /// `false` once the peer has hung up or the connection is closing. A long-running
    /// request can poll it to stop early.
    pub fn is_active(&self) -> bool {
        self.shared.is_active()
    }

    /// Closes the connection once the callback returns and the queued output has been
    /// sent. No further [`on_request`](crate::Handler::on_request) runs.
    pub fn close(&mut self) {
        self.shared.request_close();
    }

    /// Shuts the write side down (a TCP FIN, after the transport's closing message) once
    /// the queued output has been sent; the connection keeps reading, and stays open
    /// until the peer closes its side.
    pub fn shutdown_write(&mut self) {
        self.requests.shutdown_write = true;
    }

    /// Seals the output against other threads: what [`ConnHandle::send`] and
    /// [`ConnGroup`] messages queued so far moves into the output now, ahead of what
    /// this callback writes next; later sends are refused ([`Error::Closed`](crate::Error::Closed))
    /// and group messages skip the connection (it leaves its groups at their next
    /// send). For a protocol whose last message must be last: a WebSocket Close, after
    /// which nothing may follow.
    pub fn seal_output(&mut self) {
        self.shared.seal();
        self.take_outbox();
    }

    /// Whether the output queued on this connection (written, not yet sent) has reached
    /// the output mark ([`Builder::output_high_water`](crate::Builder::output_high_water)).
    /// Above it the poller calls [`on_request`](crate::Handler::on_request) no more until
    /// the peer has read half of it; a handler that answers many pipelined requests in
    /// one call should stop taking requests once this is true and return, so that a peer
    /// that never reads cannot make it queue without bound.
    pub fn output_over_mark(&self) -> bool {
        self.link.pending(&self.output) >= self.shared.high_water()
    }

    /// The time this callback started at, as the poller's clock read it at the start of
    /// its loop turn: the clock timers and timeouts count from, and cheaper than
    /// `Instant::now()` (no clock read). It can lag the real time by the length of the
    /// turn (or, on a worker, by how long the callback waited in the pool's queue).
    pub fn now(&self) -> Instant {
        // Made on the first call of a callback: the poller keeps its time as a plain
        // count of nanoseconds, which is cheaper to compare than an `Instant`.
        if let Some(now) = self.now_instant.get() {
            return now;
        }
        let now = self.clock.instant(self.now);
        self.now_instant.set(Some(now));
        now
    }

    /// Arms the timer `key`: [`Handler::on_timer`](crate::Handler::on_timer) runs once
    /// with that key, `after` from now (never earlier; at a 1 ms resolution). Arming a
    /// key again replaces its deadline; other keys are not affected. Re-arming does not
    /// allocate.
    pub fn set_timer(&mut self, key: TimerKey, after: Duration) {
        self.requests.timers.push((key, Some(after)));
    }

    /// Disarms the timer `key` (nothing happens if it is not armed). A timer that has
    /// expired but whose `on_timer` has not run yet does not run.
    pub fn cancel_timer(&mut self, key: TimerKey) {
        self.requests.timers.push((key, None));
    }

    /// Overrides the server's read timeout for this connection (`None`: none).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.timeouts.read = timeout;
        self.requests.timeouts_changed = true;
    }

    /// Overrides the server's write timeout for this connection (`None`: none).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.timeouts.write = timeout;
        self.requests.timeouts_changed = true;
    }

    /// Overrides the server's idle timeout for this connection (`None`: none).
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.timeouts.idle = timeout;
        self.requests.timeouts_changed = true;
    }

    /// A handle that other threads can use to send to, wake or close this connection.
    pub fn handle(&self) -> ConnHandle {
        ConnHandle::new(self.shared.clone())
    }

    /// Switches the connection to another protocol: once this callback returns,
    /// `handler` drives it with `state` as its per-connection state, as if its
    /// `on_connect` had returned `state`. The bytes already buffered stay in the input
    /// (the new handler's `on_request` runs at once if there are any), the output queued
    /// so far is sent first, and the connection keeps its socket, transport, timers and
    /// handles. The old handler's state is dropped without an `on_close`; the new
    /// handler gets every later callback, `on_close` included.
    ///
    /// This is how an HTTP server hands a connection to WebSocket after its
    /// `101 Switching Protocols` (see `http::Http::on_upgrade`, with the `http` feature).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use netloop::{Conn, Handler};
    ///
    /// /// After a line saying "BINARY", every byte is echoed back.
    /// struct Echo;
    /// impl Handler for Echo {
    ///     type State = ();
    ///     fn on_connect(&self, _: &mut Conn) {}
    ///     fn on_request(&self, _: &mut (), conn: &mut Conn) {
    ///         let n = conn.input().len();
    ///         let data = conn.input().next(n);
    ///         conn.output().write_bytes(data);
    ///     }
    /// }
    ///
    /// let lines = netloop::handler_fn(|conn| {
    ///     while let Some(line) = conn.input().until(b"\n") {
    ///         if &line[..] == b"BINARY\n" {
    ///             conn.output().write(b"OK\n");
    ///             conn.switch_to(Arc::new(Echo), ());
    ///             return;
    ///         }
    ///     }
    /// });
    /// # let _ = lines;
    /// ```
    pub fn switch_to<H: Handler>(&mut self, handler: Arc<H>, state: H::State) {
        self.requests.switch = Some(Box::new(PendingSwitch { handler, state }));
    }

    /// Whether [`switch_to`](Conn::switch_to) was called in this callback (the switch
    /// happens when it returns).
    pub fn is_switching(&self) -> bool {
        self.requests.switch.is_some()
    }

    /// Whether the poller must act on this connection as soon as its handler returns
    /// (rather than when it next has reason to look at it).
    pub(crate) fn needs_poller(&self) -> bool {
        self.shared.close_requested()
            || self.link.pending(&self.output) > 0
            || self.link.write_error.is_some()
            || self.link.decode_error.is_some()
            || self.input.over_limit
            || !self.requests.is_empty()
    }

    /// Moves data sent through [`ConnHandle::send`] into the output queue.
    // Inlined: the poller asks twice per request and the answer is nearly always "none".
    #[inline]
    pub(crate) fn take_outbox(&mut self) {
        if self.shared.has_outbox() {
            self.shared.drain_outbox_into(&mut self.output);
        }
    }
}
