//! The I/O driver a poller runs on.
//!
//! Every backend provides the same small set of operations, in terms of connections and
//! their buffers rather than raw readiness, so a completion-based backend (io_uring) fits
//! behind the same calls as a readiness-based one (epoll):
//!
//! * [`add`](Epoll::add) / [`modify`](Epoll::modify) / [`delete`](Epoll::delete): start,
//!   change and stop watching a socket for the given [`Interest`];
//! * [`wait`](Epoll::wait) then [`next_event`](Epoll::next_event): one turn of the loop,
//!   yielding [`Event`]s;
//! * [`receive`](Epoll::receive): "append this connection's newly arrived bytes to its
//!   input buffer" (epoll performs one `read`; a completion backend copies what the
//!   kernel already delivered).
//!
//! Two backends implement them: [`Epoll`] and [`Uring`] (io_uring), wrapped in
//! [`Driver`]. Output is sent with a gathered `sendmsg` by whichever thread holds the connection
//! (see [`Output::flush`](crate::Output::flush)); a backend only has to report when a
//! socket with queued output becomes writable.
//!
//! The epoll backend is level-triggered: a connection with unread data is reported again
//! on the next turn without a new edge, so reading once per event (a per-turn budget)
//! never loses data and never needs a read that only returns `EAGAIN`.

mod epoll;
mod uring;
mod waker;

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::time::Duration;

use bytes::BytesMut;

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

impl Driver {
    /// Makes the driver ready on the poller thread (io_uring binds the ring to it).
    pub(crate) fn start(&mut self) -> io::Result<()> {
        match self {
            Driver::Epoll(_) => Ok(()),
            Driver::Uring(u) => u.start(),
        }
    }

    /// Starts watching `fd` for `interest`.
    pub(crate) fn add(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        forward!(self, d => d.add(fd, token, interest))
    }

    /// Changes what `fd` is watched for.
    pub(crate) fn modify(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        forward!(self, d => d.modify(fd, token, interest))
    }

    /// Limits reading `token`'s socket to one buffer per turn (`true`) or lets it read
    /// all that arrives (`false`). The poller limits connections that already hold
    /// input, so a completion backend, which receives without being asked each turn,
    /// keeps them near the input high-water mark; epoll reads once per turn anyway.
    pub(crate) fn limit_reads(&mut self, token: Token, limited: bool) {
        if let Driver::Uring(u) = self {
            u.limit_reads(token, limited);
        }
    }

    /// Stops watching `fd`; it stays open.
    pub(crate) fn delete(&mut self, fd: RawFd, token: Token) -> io::Result<()> {
        forward!(self, d => d.delete(fd, token))
    }

    /// Stops watching `fd` and closes it as soon as no pending operation uses it.
    pub(crate) fn close(&mut self, fd: OwnedFd, token: Token) {
        forward!(self, d => d.close(fd, token))
    }

    /// Blocks until something happens or `timeout` passes (`None`: no time limit).
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        forward!(self, d => d.wait(timeout))
    }

    /// The next event of this turn.
    pub(crate) fn next_event(&mut self) -> Option<Event> {
        forward!(self, d => d.next_event())
    }

    /// Whether this driver sends output itself ([`send`](Driver::send)) instead of the
    /// poller writing to the socket.
    pub(crate) fn sends_output(&self) -> bool {
        matches!(self, Driver::Uring(_))
    }

    /// Submits the front of `out` as one gathered send, unless one is in flight for
    /// `token` already (the kernel would interleave them). Its completion comes back as
    /// an event with `sent` set; until then `out` is not written by anyone else.
    pub(crate) fn send(&mut self, token: Token, out: &mut crate::Output) {
        if let Driver::Uring(u) = self {
            u.send(token, out);
        }
    }

    /// Sockets closed by the poller whose kernel operations have not all finished (they
    /// are closed when the last one completes; always 0 on epoll).
    pub(crate) fn closing(&self) -> usize {
        match self {
            Driver::Epoll(_) => 0,
            Driver::Uring(u) => u.closing(),
        }
    }

    /// Whether the event being handled carries bytes (or an end-of-file) already taken
    /// from the socket, which [`receive`](Driver::receive) must collect.
    pub(crate) fn received(&self) -> bool {
        match self {
            Driver::Epoll(_) => false,
            Driver::Uring(u) => u.received(),
        }
    }

    /// Appends newly arrived bytes of a readable connection to `buf`: `Ok(0)` at
    /// end-of-file.
    pub(crate) fn receive(&mut self, fd: RawFd, buf: &mut BytesMut) -> io::Result<usize> {
        forward!(self, d => d.receive(fd, buf))
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
    /// Input is wanted (also reports the peer's end-of-file).
    pub(crate) read: bool,
    /// Output is queued and waits for room in the socket buffer.
    pub(crate) write: bool,
}

/// One thing that happened, as reported by [`Epoll::next_event`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    pub(crate) token: Token,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// The socket was hung up in both directions.
    pub(crate) hangup: bool,
    /// The socket has an error: `os_error` if the backend knows it (a failed
    /// completion), otherwise read it with `SO_ERROR`.
    pub(crate) error: bool,
    pub(crate) os_error: i32,
    /// A listener's newly accepted connection (completion backends; -1 for none).
    pub(crate) accepted: RawFd,
    /// A send submitted with [`Driver::send`] finished: bytes sent, or `-errno`.
    pub(crate) sent: Option<i32>,
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
            os_error: 0,
            accepted: -1,
            sent: None,
        }
    }

    /// Input (or end-of-file) is ready for [`Driver::receive`].
    pub(crate) fn readable(token: Token) -> Event {
        Event {
            readable: true,
            ..Event::new(token)
        }
    }

    /// An operation on the socket failed with `errno`.
    pub(crate) fn failed(token: Token, errno: i32) -> Event {
        Event {
            error: true,
            os_error: errno,
            ..Event::new(token)
        }
    }

    /// Listener `token` accepted `fd`.
    pub(crate) fn accepted(token: Token, fd: RawFd) -> Event {
        Event {
            accepted: fd,
            ..Event::new(token)
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
