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
//! Output is sent with a gathered `sendmsg` by whichever thread holds the connection
//! (see [`Output::flush`](crate::Output::flush)); a backend only has to report when a
//! socket with queued output becomes writable.
//!
//! The epoll backend is level-triggered: a connection with unread data is reported again
//! on the next turn without a new edge, so reading once per event (a per-turn budget)
//! never loses data and never needs a read that only returns `EAGAIN`.

mod epoll;
mod waker;

pub(crate) use epoll::Epoll;
pub(crate) use waker::Waker;

/// Identifies what an event is about: a connection slot (with its generation), a
/// listener, or the poller's waker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token(pub(crate) u64);

const LISTENER_BIT: u64 = 1 << 63;

impl Token {
    /// The poller's cross-thread waker.
    pub(crate) const WAKE: Token = Token(u64::MAX);

    /// A connection: slab index plus a generation, so an event or handle meant for a
    /// closed connection can never reach a new one that reused the slot.
    pub(crate) fn conn(index: usize, generation: u32) -> Token {
        debug_assert!(generation < (1 << 31) && index < (1 << 32));
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
    /// The socket has an error or was hung up in both directions.
    pub(crate) hangup: bool,
    pub(crate) error: bool,
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
