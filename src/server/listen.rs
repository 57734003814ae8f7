//! Binding the builder's listeners (or adopting sockets bound elsewhere) and assigning
//! them to pollers.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use crate::poller::Listener;
use crate::restart::ListenerFds;
use crate::session::Hooks;
use crate::{sys, Addr, Balance, Error};

use super::Builder;

/// One listener as the builder was told about it.
#[derive(Clone, Debug)]
pub(crate) enum ListenSpec {
    /// Bind and listen on this address.
    Bind(Addr),
    /// Serve on sockets that are already listening (one, or a `SO_REUSEPORT` set for
    /// one address). Shared so the builder stays `Clone`; the server serves on
    /// duplicates, and the builder's copies close when it is dropped.
    Adopt {
        fds: Arc<Vec<OwnedFd>>,
        /// A predecessor created the Unix socket file and handed its removal over.
        owns_path: bool,
    },
}

/// The bound listeners, already split per poller.
pub(super) struct Bound {
    pub(super) per_poller: Vec<Vec<Listener>>,
    /// The real address of each listener, in the builder's order.
    pub(super) local_addrs: Vec<Addr>,
    /// Socket files this server created (or was handed), removed at shutdown.
    pub(super) unix_paths: Vec<PathBuf>,
    /// A duplicate of every listening socket, per listener in the builder's order, for
    /// handing them to a successor.
    pub(super) handover: Vec<ListenerFds>,
}

pub(super) fn bind(
    b: &Builder,
    pollers: usize,
    hooks: Option<&Arc<dyn Hooks>>,
) -> Result<Bound, Error> {
    let mut bound = Bound {
        per_poller: (0..pollers).map(|_| Vec::new()).collect(),
        local_addrs: Vec::new(),
        unix_paths: Vec::new(),
        handover: Vec::new(),
    };
    let Some(hooks) = hooks else {
        return Ok(bound);
    };
    for (index, spec) in b.listeners.iter().enumerate() {
        let (real, sockets, owns_path) = match spec {
            ListenSpec::Bind(addr) => bind_one(b, addr, pollers)?,
            ListenSpec::Adopt { fds, owns_path } => (adopted_addr(fds)?, dup_all(fds)?, *owns_path),
        };
        if owns_path {
            if let Addr::Unix(path) = &real {
                bound.unix_paths.push(path.clone());
            }
        }
        // The pollers own the sockets; the handover list keeps duplicates.
        let dups = sockets
            .iter()
            .map(|fd| fd.try_clone())
            .collect::<std::io::Result<Vec<_>>>()?;
        bound.handover.push(ListenerFds {
            addr: real.clone(),
            fds: dups,
            owns_path,
        });
        let listener =
            |fd, shared| Listener::new(fd, index, real.clone(), hooks.clone(), b.nodelay, shared);
        if b.balance == Balance::ReusePort && sockets.len() == pollers && pollers > 1 {
            // One SO_REUSEPORT socket per poller, each accepting its own connections.
            for (p, fd) in sockets.into_iter().enumerate() {
                bound.per_poller[p].push(listener(fd, false));
            }
        } else {
            // One socket (or a set this server cannot match one to one with its pollers,
            // say a predecessor's with more pollers): each is shared, its connections
            // spread by the balancer.
            for (k, fd) in sockets.into_iter().enumerate() {
                bound.per_poller[(index + k) % pollers].push(listener(fd, true));
            }
        }
        bound.local_addrs.push(real);
    }
    Ok(bound)
}

/// Binds one address: its real address (port 0 resolved), its sockets (one per poller
/// with `Balance::ReusePort` on TCP), and whether it created a socket file.
fn bind_one(b: &Builder, addr: &Addr, pollers: usize) -> Result<(Addr, Vec<OwnedFd>, bool), Error> {
    let bind_err = |addr: &Addr, source| Error::Bind {
        addr: addr.clone(),
        source,
    };
    let reuse_port = b.balance == Balance::ReusePort && matches!(addr, Addr::Tcp(_));
    let first = sys::listen(addr, reuse_port, b.backlog).map_err(|e| bind_err(addr, e))?;
    let real = sys::local_addr(first.as_raw_fd()).map_err(|e| bind_err(addr, e))?;
    let mut sockets = vec![first];
    if reuse_port {
        // One socket per poller on the same (now known) port; the kernel balances.
        for _ in 1..pollers {
            sockets.push(sys::listen(&real, true, b.backlog).map_err(|e| bind_err(&real, e))?);
        }
    }
    Ok((real, sockets, matches!(addr, Addr::Unix(_))))
}

/// The address adopted sockets listen on, after checking each is a listening stream
/// socket and all share one address.
fn adopted_addr(fds: &[OwnedFd]) -> Result<Addr, Error> {
    let Some(first) = fds.first() else {
        return Err(Error::Config(
            "listen_fds: no descriptor given; a listener needs at least one socket".into(),
        ));
    };
    let mut addr = None;
    for fd in fds {
        let raw = fd.as_raw_fd();
        sys::check_listener(raw).map_err(|e| Error::Config(format!("listen_fd: {e}")))?;
        let here = sys::local_addr(raw)?;
        match &addr {
            None => addr = Some(here),
            Some(a) if *a != here => {
                return Err(Error::Config(format!(
                    "listen_fds: descriptors {} ({a}) and {raw} ({here}) are bound to different \
                     addresses; give each address its own listen_fds call",
                    first.as_raw_fd()
                )))
            }
            Some(_) => {}
        }
    }
    Ok(addr.expect("at least one descriptor"))
}

/// Duplicates of adopted sockets for the pollers, non-blocking.
fn dup_all(fds: &[OwnedFd]) -> Result<Vec<OwnedFd>, Error> {
    fds.iter()
        .map(|fd| {
            let own = fd.try_clone()?;
            sys::set_nonblocking(own.as_raw_fd())?;
            Ok(own)
        })
        .collect()
}
