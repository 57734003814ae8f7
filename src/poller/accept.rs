//! Listeners and the balancer that spreads accepted connections over pollers.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Adopt, Command, Poller, Remote};
use crate::driver::{Interest, Token};
use crate::session::Factory;
use crate::stats::bump;
use crate::{sys, Addr, ConnInfo};

/// Interest for a listening socket.
pub(super) const LISTEN: Interest = Interest {
    read: true,
    write: false,
};

/// Connections accepted per readiness event; level triggering reports the rest next turn.
const ACCEPT_BATCH: usize = 64;

/// How long accepting pauses after the process ran out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How accepted connections are spread over pollers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Balance {
    /// One listening socket; each accepted connection goes to the next poller in turn.
    #[default]
    RoundRobin,
    /// One listening socket; each accepted connection goes to the poller with the
    /// fewest open connections.
    LeastConnections,
    /// One `SO_REUSEPORT` listening socket per poller; the kernel spreads connections
    /// and each poller accepts its own (no hand-off between threads). Unix domain
    /// sockets cannot share a path this way and fall back to round robin.
    ReusePort,
}

/// Picks the poller for each new connection.
pub(crate) struct Balancer {
    policy: Balance,
    remotes: Vec<Arc<Remote>>,
    next: AtomicUsize,
}

impl Balancer {
    pub(crate) fn new(policy: Balance, remotes: Vec<Arc<Remote>>) -> Balancer {
        Balancer {
            policy,
            remotes,
            next: AtomicUsize::new(0),
        }
    }

    /// Connections open or being handed over, on every poller.
    pub(crate) fn open_connections(&self) -> usize {
        self.remotes
            .iter()
            .map(|r| r.assigned.load(Ordering::Relaxed))
            .sum()
    }

    /// The poller a connection accepted on poller `here` should go to; counts it as
    /// assigned there.
    pub(crate) fn choose(&self, here: Option<usize>, shared_listener: bool) -> &Arc<Remote> {
        let index = match (self.policy, here) {
            (Balance::ReusePort, Some(here)) if !shared_listener => here,
            (Balance::LeastConnections, _) => self
                .remotes
                .iter()
                .enumerate()
                .min_by_key(|(i, r)| (r.assigned.load(Ordering::Relaxed), *i))
                .map_or(0, |(i, _)| i),
            _ => self.next.fetch_add(1, Ordering::Relaxed) % self.remotes.len(),
        };
        let remote = &self.remotes[index];
        remote.assigned.fetch_add(1, Ordering::Relaxed);
        remote
    }
}

/// A listening socket owned by one poller.
pub(crate) struct Listener {
    fd: OwnedFd,
    /// Index in the builder's list of listeners.
    index: usize,
    addr: Addr,
    factory: Arc<dyn Factory>,
    nodelay: bool,
    /// `true` if this socket is the only one for its address (connections are handed to
    /// other pollers); `false` for one of a set of `SO_REUSEPORT` sockets.
    shared: bool,
    pub(super) paused_until: Option<Instant>,
}

impl Listener {
    pub(crate) fn new(
        fd: OwnedFd,
        index: usize,
        addr: Addr,
        factory: Arc<dyn Factory>,
        nodelay: bool,
        shared: bool,
    ) -> Listener {
        Listener {
            fd,
            index,
            addr,
            factory,
            nodelay,
            shared,
            paused_until: None,
        }
    }

    pub(super) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Poller {
    /// Accepts what is pending on listener `i`.
    pub(super) fn accept_ready(&mut self, i: usize) {
        for _ in 0..ACCEPT_BATCH {
            let Some(listener) = self.listeners.get(i) else {
                return;
            };
            match sys::accept(listener.raw_fd()) {
                Ok((fd, peer)) => self.accepted(i, fd, peer),
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => continue,
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        self.pause_listener(i, &e);
                        return;
                    }
                    _ if e.kind() == io::ErrorKind::WouldBlock => return,
                    _ => {
                        tracing::warn!(error = %e, "accept failed");
                        return;
                    }
                },
            }
        }
    }

    fn accepted(&mut self, i: usize, fd: OwnedFd, peer: Addr) {
        let listener = &self.listeners[i];
        let counters = &self.remote.counters;
        bump(&counters.accepted, 1);
        let info = ConnInfo {
            peer_addr: peer,
            local_addr: listener.addr.clone(),
            listener: Some(listener.index),
        };
        if let Some(max) = self.config.max_connections {
            if self.balancer.open_connections() >= max {
                bump(&counters.over_limit, 1);
                tracing::debug!(peer = %info.peer_addr, max, "connection refused: limit reached");
                return;
            }
        }
        let factory = listener.factory.clone();
        let admitted = catch_unwind(AssertUnwindSafe(|| factory.prepare(&info)));
        if !matches!(admitted, Ok(true)) {
            if admitted.is_err() {
                bump(&counters.panics, 1);
            }
            bump(&counters.rejected, 1);
            tracing::debug!(peer = %info.peer_addr, "connection rejected by on_prepare");
            return;
        }
        if let Addr::Tcp(_) = info.peer_addr {
            if listener.nodelay {
                let _ = sys::set_nodelay(fd.as_raw_fd());
            }
            if let Some(idle) = self.config.tcp_keepalive {
                let _ = sys::set_keepalive(fd.as_raw_fd(), idle);
            }
        }
        let target = self
            .balancer
            .choose(Some(self.remote.index), listener.shared)
            .clone();
        let adopt = Adopt {
            fd,
            shared: crate::conn::ConnShared::create(
                &target,
                info.peer_addr,
                info.local_addr,
                self.config.output_high_water,
            ),
            factory,
        };
        if target.index == self.remote.index {
            self.adopt(adopt);
        } else {
            target.push(Command::Adopt(adopt));
        }
    }

    /// Out of file descriptors (or memory): stop watching the listener for a while so
    /// the loop does not spin on a pending connection it cannot accept, and keep serving
    /// the connections it has.
    fn pause_listener(&mut self, i: usize, e: &io::Error) {
        tracing::warn!(error = %e, "accept paused for {ACCEPT_BACKOFF:?}");
        let l = &mut self.listeners[i];
        let _ = self
            .driver
            .modify(l.raw_fd(), Token::listener(i), Interest::default());
        l.paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
    }

    /// Re-arms listeners whose pause is over. Returns `true` if any was.
    pub(super) fn resume_listeners(&mut self, now: Instant) -> bool {
        let mut resumed = false;
        for (i, l) in self.listeners.iter_mut().enumerate() {
            if l.paused_until.is_some_and(|t| now >= t) {
                l.paused_until = None;
                let _ = self.driver.modify(l.raw_fd(), Token::listener(i), LISTEN);
                resumed = true;
            }
        }
        resumed
    }

    /// Closes every listener of this poller.
    pub(super) fn stop_accepting(&mut self) {
        for (i, l) in self.listeners.drain(..).enumerate() {
            self.driver.close(l.fd, Token::listener(i));
        }
    }

    /// Readiness or a completion on listener `i`.
    pub(super) fn listener_event(&mut self, i: usize, event: crate::driver::Event) {
        if i >= self.listeners.len() {
            return;
        }
        if event.accepted >= 0 {
            // SAFETY: the driver hands over a descriptor the kernel just created.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(event.accepted) };
            // A peer that reset the connection before it was accepted has no address
            // any more; it is still accepted (and closes at its first read), as accept4
            // would have done, so the counters add up the same on both backends.
            let peer = sys::peer_addr(&fd).unwrap_or_else(|_| match &self.listeners[i].addr {
                Addr::Tcp(local) => {
                    Addr::Tcp(std::net::SocketAddr::new(unspecified(local.ip()), 0))
                }
                Addr::Unix(_) => Addr::Unix(Default::default()),
            });
            self.accepted(i, fd, peer);
        } else if event.error {
            let e = io::Error::from_raw_os_error(event.os_error);
            match event.os_error {
                libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => {
                    self.pause_listener(i, &e)
                }
                _ => tracing::warn!(error = %e, "accept failed"),
            }
        } else {
            self.accept_ready(i);
        }
    }
}

/// The unspecified address of `ip`'s family.
fn unspecified(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    }
}
