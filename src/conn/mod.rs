//! A connection as its handler sees it: input, output, identity, and a handle other
//! threads can use.

mod handle;
mod input;
mod output;

pub use handle::ConnHandle;
pub(crate) use handle::ConnShared;
pub use input::Input;
pub use output::Output;

use std::io;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::Addr;

/// One connection, lent to the handler for the duration of a callback.
///
/// It is owned by one thread at a time: the poller that owns the socket, or (in
/// [`Dispatch::Pool`](crate::Dispatch::Pool) mode) the worker running the handler. Other
/// threads reach it through a [`ConnHandle`].
#[derive(Debug)]
pub struct Conn {
    pub(crate) input: Input,
    pub(crate) output: Output,
    pub(crate) shared: Arc<ConnShared>,
    /// The handler asked to close; honoured once the output has drained.
    pub(crate) close_requested: bool,
    /// on_request calls since the poller last collected the count.
    pub(crate) calls: u64,
    pub(crate) span: tracing::Span,
    pub(crate) timeouts: Timeouts,
    /// A change to the user timer asked for by the handler: `Some(Some(d))` arms it `d`
    /// from now, `Some(None)` cancels it.
    pub(crate) timer_request: Option<Option<Duration>>,
    /// Shut the write side down once the output has drained.
    pub(crate) shutdown_write: bool,
    /// The handler changed a timeout; the poller must re-arm.
    pub(crate) timeouts_changed: bool,
}

/// A connection's read, write and idle timeouts (see
/// [`Builder::read_timeout`](crate::Builder::read_timeout) and its siblings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub(crate) read: Option<Duration>,
    pub(crate) write: Option<Duration>,
    pub(crate) idle: Option<Duration>,
}

/// The connection's socket, for socket options (`let fd = conn.as_fd();` then
/// `socket2::SockRef::from(&fd)`).
/// The descriptor stays open for as long as the borrow lasts. Reading, writing or closing
/// it directly would break the poller's bookkeeping: use [`Conn::input`],
/// [`Conn::output`] and [`Conn::close`] for that.
impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the poller closes the descriptor only after the session is back home
        // and no callback holds the `Conn`; the borrow cannot outlive this `&self`.
        unsafe { BorrowedFd::borrow_raw(self.output.fd()) }
    }
}

impl Conn {
    pub(crate) fn new(
        fd: RawFd,
        shared: Arc<ConnShared>,
        span: tracing::Span,
        timeouts: Timeouts,
    ) -> Conn {
        Conn {
            input: Input::default(),
            output: Output::new(fd),
            shared,
            close_requested: false,
            calls: 0,
            span,
            timeouts,
            timer_request: None,
            shutdown_write: false,
            timeouts_changed: false,
        }
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

    /// Sends the queued output now (see [`Output::flush`]).
    pub fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }

    /// The connection's id, unique within the process.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The remote end's address.
    pub fn peer_addr(&self) -> &Addr {
        &self.shared.peer
    }

    /// The local end's address.
    pub fn local_addr(&self) -> &Addr {
        &self.shared.local
    }

    /// Index of the poller thread that owns this connection.
    pub fn poller(&self) -> usize {
        self.shared.poller
    }

    /// `false` once the peer has hung up or the connection is closing. A long-running
    /// request can poll it to stop early.
    pub fn is_active(&self) -> bool {
        self.shared.active.load(Ordering::Acquire)
    }

    /// Closes the connection once the handler returns and the queued output has been
    /// sent. No further [`on_request`](crate::Handler::on_request) runs.
    pub fn close(&mut self) {
        self.close_requested = true;
        self.shared.active.store(false, Ordering::Release);
    }

    /// Shuts the write side down (a TCP FIN) once the queued output has been sent; the
    /// connection keeps reading, and stays open until the peer closes its side.
    pub fn shutdown_write(&mut self) {
        self.shutdown_write = true;
    }

    /// Arms this connection's timer: [`Handler::on_timer`](crate::Handler::on_timer) runs
    /// once, `after` from now (never earlier; at a 1 ms resolution). Arming it again replaces the
    /// previous deadline.
    pub fn set_timer(&mut self, after: Duration) {
        self.timer_request = Some(Some(after));
    }

    /// Disarms this connection's timer.
    pub fn cancel_timer(&mut self) {
        self.timer_request = Some(None);
    }

    /// Overrides the server's read timeout for this connection (`None`: none).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.timeouts.read = timeout;
        self.timeouts_changed = true;
    }

    /// Overrides the server's write timeout for this connection (`None`: none).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.timeouts.write = timeout;
        self.timeouts_changed = true;
    }

    /// Overrides the server's idle timeout for this connection (`None`: none).
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.timeouts.idle = timeout;
        self.timeouts_changed = true;
    }

    /// A handle that other threads can use to send to or close this connection.
    pub fn handle(&self) -> ConnHandle {
        ConnHandle::new(self.shared.clone())
    }

    /// Whether the poller must act on this connection as soon as its handler returns
    /// (rather than when it next has reason to look at it).
    pub(crate) fn needs_poller(&self) -> bool {
        self.close_requested
            || !self.output.is_empty()
            || self.output.error.is_some()
            || self.timer_request.is_some()
            || self.timeouts_changed
            || self.shutdown_write
    }

    /// Moves data sent through [`ConnHandle::send`] into the output queue.
    pub(crate) fn take_outbox(&mut self) {
        if self.shared.has_outbox() {
            self.shared.drain_outbox_into(&mut self.output);
        }
        if self.shared.close_requested.load(Ordering::Acquire) {
            self.close();
        }
    }
}
