//! Zero-downtime restart: serving on sockets bound elsewhere, systemd socket
//! activation, and handing a running server's listeners to a new process.
//!
//! A listening socket is a kernel object; any number of processes may hold descriptors
//! of it and accept from its one queue. A restart therefore never closes it: the old
//! process passes its listeners to the new one, both accept for a moment, then the old
//! one stops accepting and drains with the usual graceful
//! [`shutdown`](crate::ServerHandle::shutdown) while the new one takes every new
//! connection. Nobody is refused, because the socket never stops listening.
//!
//! | job | old process | new process |
//! |---|---|---|
//! | start the successor, send the sockets | [`spawn_successor`] | |
//! | take them, serve on them | | [`inherited_listeners`], [`Builder::listen_handover`](crate::Builder::listen_handover) |
//! | report it serves | | [`Handover::ready`] |
//! | stop accepting, drain, exit | [`ServerHandle::shutdown`](crate::ServerHandle::shutdown) | |
//!
//! [`Builder::listen_fd`](crate::Builder::listen_fd) serves on any listening socket, so
//! the same pieces take sockets from systemd ([`systemd_listeners`]) or from another
//! supervisor; [`ServerHandle::listener_fds`](crate::ServerHandle::listener_fds) gives
//! a running server's sockets to pass on some other way.
//!
//! # The sharp edges
//!
//! * **Idle keep-alive connections are closed by the draining process.** A client that
//!   sends its next request on one just as it closes sees the connection end before any
//!   byte of a response; HTTP clients (browsers, curl, Go, hyper) retry an idempotent
//!   request on a new connection then, as RFC 9112 §9.3.1 allows, and the new
//!   connection reaches the new process. A protocol without such a retry needs its own
//!   way to move clients (a close message, say). Connections accepted but not sent a
//!   byte yet are not closed: after a handover the drain serves their first request
//!   (see [`ServerHandle::shutdown`](crate::ServerHandle::shutdown)).
//! * **Both processes accept for a moment.** A connection goes to whichever accepts
//!   it; until the old one drains, either may serve a new client.
//! * **Socket options belong to the socket.** The backlog, `SO_REUSEPORT` and the
//!   address are the old process's; a new version that wants a different address binds
//!   it itself ([`Handover::take_listeners`] lets it drop what it no longer serves).
//! * **Unix socket files stay.** A server that handed its listeners over leaves the
//!   socket files in place; the successor removes them at its own shutdown.
//!
//! # The handover protocol
//!
//! The channel is one end of a Unix `SOCK_SEQPACKET` socket pair, inherited by the new
//! process at the descriptor number in the `NETLOOP_HANDOVER_FD` environment variable
//! (every other descriptor netloop opens is close-on-exec). Every message is one
//! packet: `"NLHO"`, a version byte (1), a kind byte, a body; integers little-endian.
//!
//! | kind | from | body | descriptors (`SCM_RIGHTS`) |
//! |---|---|---|---|
//! | `L` listeners | old | count (u16), then per descriptor: listener index (u32), flags (u8; bit 0: the old server created the Unix socket file) | `count` of them, in entry order, at most 64 |
//! | `E` end | old | the number of descriptors sent (u32) | none |
//! | `R` ready | new | its pid (u32) | none |
//!
//! The old process sends `L` messages (several when there are more than 64 sockets:
//! `Balance::ReusePort` has one per poller and address) and `E` right after the new
//! one starts, then waits for `R`. The new process groups descriptors by listener index
//! (several are one `SO_REUSEPORT` set) in index order, which is the old builder's, and
//! reads each one's address from the socket. A channel that closes before `R` means the
//! new process failed: the old one kills it and keeps serving.
//!
//! Why a socket pair and not inherited listeners: descriptors passed with `SCM_RIGHTS`
//! need no agreement on numbers, arrive with what they are, and the same channel
//! carries the answer the old process must wait for.

mod handover;
mod listener_fds;
mod successor;
mod systemd;
mod wire;

pub use handover::{inherited_listeners, Handover};
pub use listener_fds::ListenerFds;
pub use successor::spawn_successor;
pub use systemd::systemd_listeners;

/// The environment variable naming the handover channel's descriptor in a successor
/// started by [`spawn_successor`].
pub const HANDOVER_ENV: &str = "NETLOOP_HANDOVER_FD";

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::sys::fd_passing::seqpacket_pair;

    fn listening(addr: &str) -> OwnedFd {
        OwnedFd::from(std::net::TcpListener::bind(addr).unwrap())
    }

    #[test]
    fn listeners_cross_the_channel_grouped_and_in_order() {
        // 70 sockets for one listener: more than one message's worth.
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        let mut many = vec![OwnedFd::from(first)];
        for _ in 1..70 {
            many.push(many[0].try_clone().unwrap());
        }
        let sent = vec![
            ListenerFds {
                addr: crate::Addr::Tcp(([127, 0, 0, 1], port).into()),
                fds: many,
                owns_path: false,
            },
            ListenerFds {
                addr: "unix:/x".parse().unwrap(),
                fds: vec![listening("127.0.0.1:0")],
                owns_path: true,
            },
        ];
        let (old, new) = seqpacket_pair().unwrap();
        successor::send_listeners(old.as_fd(), &sent).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let got = handover::receive(new.as_fd(), deadline).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].fds.len(), 70);
        assert_eq!(got[0].addr.as_tcp().unwrap().port(), port);
        assert!(!got[0].owns_path && got[1].owns_path);
        // The address comes from the socket, not from what the sender claimed.
        assert_eq!(
            got[1].addr,
            crate::sys::local_addr(sent[1].fds[0].as_raw_fd()).unwrap()
        );
    }

    #[test]
    fn a_sender_that_hangs_up_early_is_an_error() {
        let (old, new) = seqpacket_pair().unwrap();
        drop(old);
        let err =
            handover::receive(new.as_fd(), Instant::now() + Duration::from_secs(10)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
