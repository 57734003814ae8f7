//! The I/O driver a poller runs on, and what every backend must provide.
//!
//! A poller owns one [`Driver`]: one of the backends, chosen at start-up. The contract is
//! written in terms of sockets and buffers, not raw readiness, so that a completion
//! backend (io_uring, which performs the I/O itself and reports the result) fits behind
//! the same calls as a readiness backend (epoll, which reports that the poller may now
//! perform it). Each backend is one file (`epoll.rs`, `uring/`) with the same methods;
//! this file forwards to them and is the only place the poller sees.
//!
//! # What every backend provides
//!
//! | call | what it does | epoll | io_uring |
//! |---|---|---|---|
//! | [`start`](Driver::start) | get ready on the poller thread, before the first wait | nothing | enables the ring on this thread, arms the waker |
//! | [`register`](Driver::register) / [`reregister`](Driver::reregister) / [`deregister`](Driver::deregister) | start, change, stop watching a socket for an [`Interest`] | `epoll_ctl` | arms or cancels the socket's operations |
//! | [`close`](Driver::close) | stop watching and close once nothing in the kernel uses the socket | at once | after every operation's final completion |
//! | [`wait`](Driver::wait) + [`next_event`](Driver::next_event) | one turn: block until something happens, then yield [`Event`]s | `epoll_wait` | submit and wait in one `io_uring_enter` |
//! | [`receive`](Driver::receive) | for a readable connection, append its new bytes to a buffer | one `recv` | copies the bytes the completion delivered |
//! | [`accept`](Driver::accept) | for a readable listener, the next pending connection | `accept4` | the descriptor the completion delivered |
//! | [`connect`](Driver::connect) / [`connect_result`](Driver::connect_result) | start a non-blocking connect; for its writable (or error) event, its outcome | `connect` + `EINPROGRESS`, then `SO_ERROR` | a connect operation and its result |
//! | [`take_error`](Driver::take_error) | for an error event, the socket's error | `SO_ERROR` | the failed operation's error |
//! | [`send`](Driver::send) | put the front of an output queue on the wire | one gathered `sendmsg`, now | a submitted send (inline dispatch) or `sendmsg` now |
//!
//! Rules every backend keeps:
//!
//! * **Level-triggered**: a socket with unread input is reported again on the next turn,
//!   so one [`receive`](Driver::receive) per event (a per-turn budget) never loses data
//!   and never needs a read that only returns `EAGAIN`. Epoll is used level-triggered
//!   (mio only offers edge-triggered registration); io_uring re-arms every operation that
//!   ends while it is still wanted.
//! * **A readable event is always collected**: the poller calls `receive` (connections)
//!   or `accept` (listeners) for it, even if it stopped wanting input since; a completion
//!   backend has already taken the bytes out of the socket.
//! * **An operation that ended in an error stays disarmed** until the poller re-registers
//!   the socket: a listener that ran out of descriptors is paused by the poller, not
//!   retried by the backend behind its back.
//! * **At most one send in flight per socket**: while a submitted send is in flight,
//!   [`send`](Driver::send) returns [`Sent::InFlight`] and touches nothing; its
//!   completion comes back as an event with [`Event::sent`] set.
//! * **No memory the kernel may still use is freed**: a closed socket's pending
//!   operations are cancelled and it is closed after their final completions.
//!
//! Optional, with a documented default where a backend has nothing to do:
//! [`pace_reads`](Driver::pace_reads) (a hint: how much more a connection should take
//! before its input mark; epoll reads once per event anyway) and
//! [`closing`](Driver::closing) (sockets waiting for their operations; always 0 on
//! epoll). Everything else a backend reports is private to it: the descriptor an accept
//! delivered, the bytes a receive delivered, the error of a failed operation are collected
//! through the calls above, never read off the event.

#[cfg(test)]
mod contract;
mod epoll;
mod uring;
mod waker;

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::time::Duration;

use bytes::BytesMut;

use crate::conn::Output;
use crate::Addr;

pub(crate) use epoll::Epoll;
pub(crate) use uring::{probe as probe_io_uring, Uring};
pub(crate) use waker::Waker;

/// A poller's driver: one of the backends, chosen at start-up.
pub(crate) enum Driver {
    Epoll(Epoll),
    Uring(Box<Uring>),
}

/// Forwards a call to whichever backend is in use.
macro_rules! forward {
    ($self:ident, $d:ident => $call:expr) => {
        match $self {
            Driver::Epoll($d) => $call,
            Driver::Uring($d) => $call,
        }
    };
}

/// What [`Driver::send`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// This many bytes from the front of the queue went out now and were consumed from
    /// it (0: the socket buffer is full).
    Now(usize),
    /// A send of the front of the queue is in flight (submitted now or earlier); its
    /// completion reports how much went out, and the poller consumes that much. Until
    /// then nobody else writes the socket and the queue's front is not touched.
    InFlight,
}

impl Driver {
    /// Gets ready on the poller thread (io_uring binds the ring to it).
    pub(crate) fn start(&mut self) -> io::Result<()> {
        forward!(self, d => d.start())
    }

    /// Starts watching `fd` for `interest`.
    pub(crate) fn register(
        &mut self,
        fd: RawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        forward!(self, d => d.register(fd, token, interest))
    }

    /// Changes what `fd` is watched for; re-arms operations that ended in an error.
    pub(crate) fn reregister(
        &mut self,
        fd: RawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        forward!(self, d => d.reregister(fd, token, interest))
    }

    /// Stops watching `fd`; it stays open.
    pub(crate) fn deregister(&mut self, fd: RawFd, token: Token) -> io::Result<()> {
        forward!(self, d => d.deregister(fd, token))
    }

    /// Stops watching `fd` and closes it as soon as no pending operation uses it.
    pub(crate) fn close(&mut self, fd: OwnedFd, token: Token) {
        forward!(self, d => d.close(fd, token))
    }

    /// Blocks until something happens or `timeout` passes (`None`: no time limit).
    ///
    /// `gather`: the poller's work multiplies with its input (a fan-out ran last turn),
    /// so a backend that delivers completions in batches delivers all that is pending
    /// instead, and the next turn's fan-outs carry more messages each.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>, gather: bool) -> io::Result<()> {
        forward!(self, d => d.wait(timeout, gather))
    }

    /// The next event of this turn.
    pub(crate) fn next_event(&mut self) -> Option<Event> {
        forward!(self, d => d.next_event())
    }

    /// For a readable connection: appends its newly arrived bytes to `buf` (which has
    /// spare room), at most `max` (non-zero) if the backend reads into `buf` itself.
    /// `Ok(0)` is end-of-file; `WouldBlock` means nothing was there.
    pub(crate) fn receive(
        &mut self,
        fd: RawFd,
        buf: &mut BytesMut,
        max: usize,
    ) -> io::Result<usize> {
        forward!(self, d => d.receive(fd, buf, max))
    }

    /// For a readable listener: the next pending connection (`None`: no more this turn),
    /// with the peer's address if the backend learnt it. Errors are classified by the
    /// poller ([`crate::sys::AcceptError`]).
    pub(crate) fn accept(&mut self, fd: RawFd) -> io::Result<Option<(OwnedFd, Option<Addr>)>> {
        forward!(self, d => d.accept(fd))
    }

    /// Starts connecting `fd` (registered, with [`Interest::NONE`]) to `addr`. Its end is
    /// reported as a writable or error event on `token`; collect it with
    /// [`connect_result`](Driver::connect_result), then re-register for what the
    /// connection wants next.
    pub(crate) fn connect(
        &mut self,
        fd: RawFd,
        token: Token,
        addr: &socket2::SockAddr,
    ) -> io::Result<()> {
        forward!(self, d => d.connect(fd, token, addr))
    }

    /// For the event that ended a connect: whether it succeeded.
    pub(crate) fn connect_result(&mut self, fd: RawFd) -> io::Result<()> {
        forward!(self, d => d.connect_result(fd))
    }

    /// For an error event: the socket's error.
    pub(crate) fn take_error(&mut self, fd: RawFd) -> io::Error {
        forward!(self, d => d.take_error(fd))
    }

    /// Puts the front of `queue` on the wire (see [`Sent`]).
    ///
    /// # Errors
    /// The socket is broken; the connection closes with the error.
    pub(crate) fn send(&mut self, fd: RawFd, token: Token, queue: &mut Output) -> io::Result<Sent> {
        forward!(self, d => d.send(fd, token, queue))
    }

    /// For the event of a finished send ([`Event::sent`]): the tail buffer the send was
    /// lent, if it was ([`Output::lend_tail`]), to give back with [`Output::take_back`];
    /// empty otherwise.
    pub(crate) fn take_lent(&mut self) -> bytes::BytesMut {
        match self {
            Driver::Epoll(_) => bytes::BytesMut::new(),
            Driver::Uring(u) => u.take_lent(),
        }
    }

    /// Whether sends complete later ([`Sent::InFlight`]) rather than at once: the poller
    /// then needs no writability reports, and handlers' [`flush`](crate::Conn::flush)
    /// leaves the output for it.
    pub(crate) fn submits_sends(&self) -> bool {
        match self {
            Driver::Epoll(_) => false,
            Driver::Uring(u) => u.submits_sends(),
        }
    }

    /// Optional hint: `token`'s connection should take about `room` more bytes before it
    /// reaches its input high-water mark, so a backend that receives without being
    /// asked each turn (io_uring's multishot receive) can keep it there rather than
    /// deliver a whole burst past it. Epoll reads once per event into a buffer the poller
    /// sized, and ignores it.
    pub(crate) fn pace_reads(&mut self, token: Token, room: usize) {
        if let Driver::Uring(u) = self {
            u.pace_reads(token, room);
        }
    }

    /// Sockets closed by the poller whose kernel operations have not all finished (they
    /// are closed when the last one completes). Always 0 on epoll, which closes at once.
    pub(crate) fn closing(&self) -> usize {
        match self {
            Driver::Epoll(_) => 0,
            Driver::Uring(u) => u.closing(),
        }
    }
}

/// Identifies what an event is about: a connection slot (with its generation), a
/// listener, or the poller's waker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token(pub(crate) u64);

const LISTENER_BIT: u64 = 1 << 63;

/// Bits of a connection token's generation. Bits 59..63 are left clear for the io_uring
/// backend, which tags each operation's user data with its kind there.
pub(crate) const GENERATION_BITS: u32 = 27;

impl Token {
    /// The poller's cross-thread waker.
    pub(crate) const WAKE: Token = Token(u64::MAX);

    /// A connection: slab index plus a generation, so an event or handle meant for a
    /// closed connection can never reach a new one that reused the slot.
    pub(crate) fn conn(index: usize, generation: u32) -> Token {
        debug_assert!(generation < (1 << GENERATION_BITS) && index < (1 << 32));
        Token(((generation as u64) << 32) | index as u64)
    }

    /// The poller's `index`-th listener.
    pub(crate) fn listener(index: usize) -> Token {
        Token(LISTENER_BIT | index as u64)
    }

    /// What this token names.
    pub(crate) fn kind(self) -> TokenKind {
        if self == Token::WAKE {
            TokenKind::Wake
        } else if self.0 & LISTENER_BIT != 0 {
            TokenKind::Listener((self.0 & !LISTENER_BIT) as usize)
        } else {
            TokenKind::Conn {
                index: (self.0 & 0xffff_ffff) as usize,
                generation: (self.0 >> 32) as u32,
            }
        }
    }
}

/// The decoded form of a [`Token`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Wake,
    Listener(usize),
    Conn { index: usize, generation: u32 },
}

/// Which readiness a socket is watched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Interest {
    /// Input is wanted (also reports the peer's end-of-file, and pending connections on
    /// a listener).
    pub(crate) read: bool,
    /// Room in the socket buffer is wanted (output waits).
    pub(crate) write: bool,
}

impl Interest {
    /// Watched for nothing (the socket stays registered).
    pub(crate) const NONE: Interest = Interest {
        read: false,
        write: false,
    };
    /// Input only.
    pub(crate) const READ: Interest = Interest {
        read: true,
        write: false,
    };
    /// Room to write only.
    pub(crate) const WRITE: Interest = Interest {
        read: false,
        write: true,
    };
}

/// How a submitted send ended: the bytes sent, or the error.
pub(crate) type SendResult = Result<usize, io::ErrorKind>;

/// One thing that happened to a socket, as reported by [`Driver::next_event`]. Anything
/// an event carries beyond these flags is collected with the matching driver call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    pub(crate) token: Token,
    /// Input or end-of-file (connections), a pending connection (listeners): collect it
    /// with [`Driver::receive`] or [`Driver::accept`].
    pub(crate) readable: bool,
    /// Room to write, or the end of a connect ([`Driver::connect_result`]).
    pub(crate) writable: bool,
    /// The socket was hung up in both directions.
    pub(crate) hangup: bool,
    /// The socket has an error: collect it with [`Driver::take_error`].
    pub(crate) error: bool,
    /// A send returned as [`Sent::InFlight`] finished (completion backends only).
    pub(crate) sent: Option<SendResult>,
}

impl Event {
    /// An event that reports nothing yet.
    pub(crate) fn new(token: Token) -> Event {
        Event {
            token,
            readable: false,
            writable: false,
            hangup: false,
            error: false,
            sent: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        assert_eq!(Token::WAKE.kind(), TokenKind::Wake);
        assert_eq!(Token::listener(3).kind(), TokenKind::Listener(3));
        assert_eq!(
            Token::conn(7, 12345).kind(),
            TokenKind::Conn {
                index: 7,
                generation: 12345
            }
        );
        assert_ne!(Token::conn(7, 1), Token::conn(7, 2));
    }
}
