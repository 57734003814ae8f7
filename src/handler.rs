//! The [`Handler`] trait every server or dialed connection is driven by, and the closure
//! adapter [`handler_fn`] for the common case of a handler that only answers requests.

use std::io;
use std::sync::Arc;

use crate::{Addr, CloseReason, Conn, ConnHandle, TimerKey};

/// What is known about a connection before it is admitted: passed to
/// [`Handler::on_prepare`] and to a [`TransportFactory`](crate::transport::TransportFactory).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnInfo {
    /// The remote end.
    pub peer_addr: Addr,
    /// The local end (the listener's address for accepted connections).
    pub local_addr: Addr,
    /// Index of the listener that accepted it, in the order the builder was given them;
    /// `None` for a dialed connection.
    pub listener: Option<usize>,
}

/// The callbacks that drive one kind of connection.
///
/// One `Handler` value serves every connection of a server (it is shared behind an `Arc`);
/// the per-connection state is the [`State`](Handler::State) that
/// [`on_connect`](Handler::on_connect) returns. See the crate documentation for the
/// callback-order table.
///
/// ```
/// use netloop::{CloseReason, Conn, Handler};
///
/// /// Counts the bytes each connection sent and echoes them back.
/// struct CountingEcho;
///
/// impl Handler for CountingEcho {
///     type State = u64;
///
///     fn on_connect(&self, _conn: &mut Conn) -> u64 {
///         0
///     }
///
///     fn on_request(&self, total: &mut u64, conn: &mut Conn) {
///         let n = conn.input().len();
///         *total += n as u64;
///         let data = conn.input().next(n);
///         conn.output().write_bytes(data);
///     }
///
///     fn on_close(&self, total: u64, reason: CloseReason) {
///         println!("connection sent {total} bytes, closed: {reason}");
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Per-connection state, created by [`on_connect`](Handler::on_connect) and handed
    /// back to [`on_close`](Handler::on_close).
    type State: Send + 'static;

    /// Decides whether to admit a new connection, before it is registered with a poller.
    /// Return `false` to reject it (it is closed at once and counted in
    /// [`Stats::rejected`](crate::Stats::rejected); no other callback runs for it).
    ///
    /// Runs on the accepting poller thread: keep it short (a connection limiter, an
    /// address filter).
    fn on_prepare(&self, info: &ConnInfo) -> bool {
        let _ = info;
        true
    }

    /// Creates the per-connection state once the connection is registered. It may write
    /// (a greeting) or close the connection. No [`on_request`](Handler::on_request) runs
    /// before it returns.
    fn on_connect(&self, conn: &mut Conn) -> Self::State;

    /// Called when input is buffered: reads from [`Conn::input`], writes to
    /// [`Conn::output`]. At most one call per connection runs at any instant, in arrival
    /// order. Output is flushed when it returns (or earlier with [`Conn::flush`]).
    ///
    /// If it returns without consuming any input (an incomplete frame), it is not called
    /// again until more bytes arrive, or until the amount declared with
    /// [`Input::want`](crate::Input::want) is buffered. If it consumed some but not all
    /// input, it is called again at once (pipelined requests).
    fn on_request(&self, state: &mut Self::State, conn: &mut Conn);

    /// The timer `key` armed with [`Conn::set_timer`] expired. Runs like `on_request`
    /// (never at the same time as another callback of this connection), so it may read
    /// and write. Protocols use it for pings, retries and waits.
    fn on_timer(&self, state: &mut Self::State, conn: &mut Conn, key: TimerKey) {
        let _ = (state, conn, key);
    }

    /// [`ConnHandle::wake`] was called: runs on the connection's own turn, like
    /// `on_request`. A worker thread that finished a job for this connection wakes it,
    /// and this callback frames and writes the result.
    fn on_wake(&self, state: &mut Self::State, conn: &mut Conn) {
        let _ = (state, conn);
    }

    /// The connection's output had reached the output high-water mark (or a
    /// [`ConnHandle::send`] was refused with [`Error::Full`](crate::Error::Full)) and is
    /// now below half of it: there is room to send again. The non-blocking counterpart of
    /// [`ConnHandle::wait_writable`]; runs like `on_request`.
    ///
    /// ```
    /// use netloop::{Bytes, Conn, Handler};
    ///
    /// /// Streams a large file in chunks, never more than the output mark at once.
    /// struct Stream {
    ///     chunks: Vec<Bytes>,
    /// }
    ///
    /// impl Handler for Stream {
    ///     type State = usize; // the next chunk
    ///     fn on_connect(&self, conn: &mut Conn) -> usize {
    ///         let mut next = 0;
    ///         self.on_drain(&mut next, conn);
    ///         next
    ///     }
    ///     fn on_request(&self, _: &mut usize, conn: &mut Conn) {
    ///         let n = conn.input().len();
    ///         conn.input().skip(n);
    ///     }
    ///     fn on_drain(&self, next: &mut usize, conn: &mut Conn) {
    ///         // Queue chunks until the output reaches its mark; on_drain comes back
    ///         // once it has fallen to half of it.
    ///         while *next < self.chunks.len() && conn.output().len() < 4 << 20 {
    ///             conn.output().write_bytes(self.chunks[*next].clone());
    ///             *next += 1;
    ///         }
    ///     }
    /// }
    /// ```
    fn on_drain(&self, state: &mut Self::State, conn: &mut Conn) {
        let _ = (state, conn);
    }

    /// A dialed connection could not be established (refused, unreachable, the name did
    /// not resolve, the connect timed out, or the runtime shut down first). Runs on a
    /// poller; it is the only callback such a connection gets (no `on_connect`, no
    /// `on_close`). `conn` is the handle [`Dialer::dial`](crate::Dialer::dial) returned.
    fn on_connect_failed(&self, conn: &ConnHandle, error: &io::Error) {
        let _ = (conn, error);
        tracing::debug!(id = conn.id(), %error, "connect failed");
    }

    /// The peer hung up (end-of-file or reset) while the connection was still open.
    /// In [`Dispatch::Pool`](crate::Dispatch::Pool) mode it may run while
    /// [`on_request`](Handler::on_request) is running for the same connection, so it gets
    /// the connection's [`ConnHandle`] rather than its state: a running request can see
    /// [`Conn::is_active`] turn `false`. [`on_close`](Handler::on_close) follows.
    fn on_disconnect(&self, conn: &ConnHandle) {
        let _ = conn;
    }

    /// Called exactly once, last, with the state and the reason. The socket is already
    /// closed.
    fn on_close(&self, state: Self::State, reason: CloseReason) {
        let _ = (state, reason);
    }
}

impl<H: Handler> Handler for Arc<H> {
    type State = H::State;

    fn on_prepare(&self, info: &ConnInfo) -> bool {
        (**self).on_prepare(info)
    }
    fn on_connect(&self, conn: &mut Conn) -> H::State {
        (**self).on_connect(conn)
    }
    fn on_request(&self, state: &mut H::State, conn: &mut Conn) {
        (**self).on_request(state, conn)
    }
    fn on_timer(&self, state: &mut H::State, conn: &mut Conn, key: TimerKey) {
        (**self).on_timer(state, conn, key)
    }
    fn on_wake(&self, state: &mut H::State, conn: &mut Conn) {
        (**self).on_wake(state, conn)
    }
    fn on_drain(&self, state: &mut H::State, conn: &mut Conn) {
        (**self).on_drain(state, conn)
    }
    fn on_disconnect(&self, conn: &ConnHandle) {
        (**self).on_disconnect(conn)
    }
    fn on_connect_failed(&self, conn: &ConnHandle, error: &io::Error) {
        (**self).on_connect_failed(conn, error)
    }
    fn on_close(&self, state: H::State, reason: CloseReason) {
        (**self).on_close(state, reason)
    }
}

/// A [`Handler`] made from a closure that answers requests; see [`handler_fn`].
#[derive(Clone)]
pub struct FnHandler<F>(F);

/// Adapts a closure into a [`Handler`] with no per-connection state.
///
/// ```
/// // An echo handler: every byte read is written back, without copying.
/// let echo = netloop::handler_fn(|conn| {
///     let n = conn.input().len();
///     let data = conn.input().next(n);
///     conn.output().write_bytes(data);
/// });
/// # let _ = echo;
/// ```
pub fn handler_fn<F>(f: F) -> FnHandler<F>
where
    F: Fn(&mut Conn) + Send + Sync + 'static,
{
    FnHandler(f)
}

impl<F> Handler for FnHandler<F>
where
    F: Fn(&mut Conn) + Send + Sync + 'static,
{
    type State = ();

    fn on_connect(&self, _conn: &mut Conn) {}

    fn on_request(&self, _state: &mut (), conn: &mut Conn) {
        (self.0)(conn)
    }
}
