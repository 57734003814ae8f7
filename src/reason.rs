//! Why a connection closed.

use std::fmt;
use std::io;

/// The reason passed to [`Handler::on_close`](crate::Handler::on_close) and counted in
/// [`Stats::closed`](crate::Stats::closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed its end (read returned end-of-file) and every reply was flushed.
    PeerClosed,
    /// This side closed it: [`Conn::close`](crate::Conn::close) or
    /// [`ConnHandle::close`](crate::ConnHandle::close).
    Local,
    /// Graceful shutdown closed it: idle at shutdown, or busy and finished before the deadline.
    Shutdown,
    /// Graceful shutdown's deadline passed while it was still busy; it was cut off.
    ShutdownForced,
    /// A handler callback panicked; only this connection was closed.
    Panic,
    /// A socket error (for example a reset by the peer); the kind says which.
    Error(io::ErrorKind),
    /// A request was started (bytes buffered) but not completed within the read
    /// timeout: the handler consumed nothing for that long.
    ReadTimeout,
    /// Output stayed queued without any of it being sent for the write timeout: the
    /// peer is not reading.
    WriteTimeout,
    /// No traffic in either direction for the idle timeout.
    IdleTimeout,
    /// The handler asked to buffer more input than
    /// [`Builder::max_want`](crate::Builder::max_want) allows
    /// ([`Input::want`](crate::Input::want)): a declared length the server refuses to wait for.
    InputLimit,
    /// The transport's handshake did not finish within
    /// [`Builder::handshake_timeout`](crate::Builder::handshake_timeout).
    HandshakeTimeout,
    /// The connection was over its output mark when a [`ConnGroup`](crate::ConnGroup)
    /// with the [`Overflow::Close`](crate::Overflow::Close) policy sent to it.
    Backpressure,
}

impl CloseReason {
    /// Index into the per-reason counters.
    pub(crate) fn slot(self) -> usize {
        match self {
            CloseReason::PeerClosed => 0,
            CloseReason::Local => 1,
            CloseReason::Shutdown => 2,
            CloseReason::ShutdownForced => 3,
            CloseReason::Panic => 4,
            CloseReason::Error(_) => 5,
            CloseReason::ReadTimeout => 6,
            CloseReason::WriteTimeout => 7,
            CloseReason::IdleTimeout => 8,
            CloseReason::InputLimit => 9,
            CloseReason::HandshakeTimeout => 10,
            CloseReason::Backpressure => 11,
        }
    }

    /// Number of counter slots (see [`CloseReason::slot`]).
    pub(crate) const SLOTS: usize = 12;
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed"),
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::Shutdown => f.write_str("server shutdown"),
            CloseReason::ShutdownForced => f.write_str("server shutdown deadline"),
            CloseReason::Panic => f.write_str("handler panicked"),
            CloseReason::Error(kind) => write!(f, "socket error: {kind}"),
            CloseReason::ReadTimeout => f.write_str("read timeout"),
            CloseReason::WriteTimeout => f.write_str("write timeout"),
            CloseReason::IdleTimeout => f.write_str("idle timeout"),
            CloseReason::InputLimit => f.write_str("input over the limit"),
            CloseReason::HandshakeTimeout => f.write_str("handshake timeout"),
            CloseReason::Backpressure => f.write_str("over the output mark"),
        }
    }
}
