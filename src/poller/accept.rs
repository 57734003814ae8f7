//! Listeners and the balancer that spreads accepted connections over pollers.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Nanos;

use super::{Adopt, Command, Poller, Remote};
use crate::driver::{Interest, Token};
use crate::session::Hooks;
use crate::stats::bump;
use crate::sys::AcceptError;
use crate::{sys, Addr, ConnInfo};

/// Interest for a listening socket.
pub(super) const LISTEN: Interest = Interest::READ;

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
    /// `None` once closed: the rest stays for connections accepted before the close
    /// whose completions arrive after it (io_uring).
    fd: Option<OwnedFd>,
    /// Index in the builder's list of listeners.
    index: usize,
    addr: Addr,
    hooks: Arc<dyn Hooks>,
    nodelay: bool,
    /// `true` if this socket is the only one for its address (connections are handed to
    /// other pollers); `false` for one of a set of `SO_REUSEPORT` sockets.
    shared: bool,
    pub(super) paused_until: Option<Nanos>,
}

impl Listener {
    pub(crate) fn new(
        fd: OwnedFd,
        index: usize,
        addr: Addr,
        hooks: Arc<dyn Hooks>,
        nodelay: bool,
        shared: bool,
    ) -> Listener {
        Listener {
            fd: Some(fd),
            index,
            addr,
            hooks,
            nodelay,
            shared,
            paused_until: None,
        }
    }

    pub(super) fn raw_fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }
}

impl Poller {
    /// Readiness or a completion on listener `i`: accepts what is pending.
    pub(super) fn listener_event(&mut self, i: usize, event: crate::driver::Event) {
        if !event.readable && !event.error {
            return;
        }
        for _ in 0..ACCEPT_BATCH {
            let Some(listener) = self.listeners.get(i) else {
                return;
            };
            match self.driver.accept(listener.raw_fd()) {
                Ok(Some((fd, peer))) => {
                    // A peer that reset the connection before it was accepted has no
                    // address any more; it is still accepted (and closes at its first
                    // read), as accept4 would have done, so the counters add up the same
                    // on both backends.
                    let peer = peer
                        .or_else(|| sys::peer_addr(&fd).ok())
                        .unwrap_or_else(|| unspecified_like(&listener.addr));
                    self.accepted(i, fd, peer)
                }
                Ok(None) => return,
                Err(e) => match AcceptError::classify(&e) {
                    AcceptError::Transient => self.rearm_listener(i),
                    AcceptError::Exhausted => return self.pause_listener(i, &e),
                    AcceptError::Other => {
                        tracing::warn!(error = %e, "accept failed");
                        return self.rearm_listener(i);
                    }
                },
            }
        }
    }

    /// Watches a listener again after an accept error (a backend leaves an operation that
    /// ended in an error disarmed until then).
    fn rearm_listener(&mut self, i: usize) {
        if let Some(l) = self.listeners.get(i) {
            if l.paused_until.is_none() && l.fd.is_some() {
                let _ = self
                    .driver
                    .reregister(l.raw_fd(), Token::listener(i), LISTEN);
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
        let hooks = listener.hooks.clone();
        let admitted = catch_unwind(AssertUnwindSafe(|| hooks.prepare(&info)));
        if !matches!(admitted, Ok(true)) {
            if admitted.is_err() {
                bump(&counters.panics, 1);
            }
            bump(&counters.rejected, 1);
            tracing::debug!(peer = %info.peer_addr, "connection rejected by on_prepare");
            return;
        }
        let transport = match &self.config.transport {
            None => None,
            Some(make) => match make(&info) {
                Ok(t) => t,
                Err(e) => {
                    bump(&counters.rejected, 1);
                    tracing::debug!(peer = %info.peer_addr, error = %e, "connection rejected: no transport");
                    return;
                }
            },
        };
        if let Addr::Tcp(_) = info.peer_addr {
            if listener.nodelay {
                let _ = sys::set_nodelay(fd.as_raw_fd());
            }
            if let Some(idle) = self.config.tcp_keepalive {
                let _ = sys::set_keepalive(fd.as_raw_fd(), idle);
            }
        }
        let target = if listener.fd.is_none() {
            // Accepted as the listener closed (the drain has begun or is about to): kept
            // here, where it is served; another poller may have finished its drain.
            self.remote.assigned.fetch_add(1, Ordering::Relaxed);
            self.remote.clone()
        } else {
            self.balancer
                .choose(Some(self.remote.index), listener.shared)
                .clone()
        };
        let adopt = Adopt {
            fd,
            shared: crate::conn::ConnShared::create(
                &target,
                Some(info.peer_addr),
                Some(info.local_addr),
                self.config.output_high_water,
            ),
            hooks,
            transport,
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
        let l = &mut self.listeners[i];
        if l.fd.is_none() {
            return;
        }
        tracing::warn!(error = %e, "accept paused for {ACCEPT_BACKOFF:?}");
        let _ = self
            .driver
            .reregister(l.raw_fd(), Token::listener(i), Interest::NONE);
        if l.paused_until.is_none() {
            self.paused_listeners += 1;
        }
        l.paused_until = Some(Nanos::now().after(ACCEPT_BACKOFF));
    }

    /// Re-arms listeners whose pause is over. Returns `true` if any was.
    pub(super) fn resume_listeners(&mut self, now: Nanos) -> bool {
        let mut resumed = false;
        for (i, l) in self.listeners.iter_mut().enumerate() {
            if l.paused_until.is_some_and(|t| now >= t) {
                l.paused_until = None;
                self.paused_listeners -= 1;
                let _ = self
                    .driver
                    .reregister(l.raw_fd(), Token::listener(i), LISTEN);
                resumed = true;
            }
        }
        resumed
    }

    /// Closes every listener of this poller. A connection the kernel accepted for one
    /// before the close took effect (an io_uring completion already on its way) is
    /// still served: it is a client the service accepted.
    pub(super) fn stop_accepting(&mut self) {
        self.paused_listeners = 0;
        for (i, l) in self.listeners.iter_mut().enumerate() {
            l.paused_until = None;
            if let Some(fd) = l.fd.take() {
                self.driver.close(fd, Token::listener(i));
            }
        }
    }
}

/// An unspecified address of the same kind as a listener's.
fn unspecified_like(addr: &Addr) -> Addr {
    match addr {
        Addr::Tcp(local) => {
            let ip: std::net::IpAddr = match local.ip() {
                std::net::IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                std::net::IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
            };
            Addr::Tcp(std::net::SocketAddr::new(ip, 0))
        }
        Addr::Unix(_) => Addr::Unix(Default::default()),
    }
}
