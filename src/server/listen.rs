//! Binding the builder's listeners and assigning them to pollers.

use std::path::PathBuf;
use std::sync::Arc;

use crate::poller::Listener;
use crate::session::Hooks;
use crate::{sys, Addr, Balance, Error};

use super::Builder;

/// The bound listeners, already split per poller.
pub(super) struct Bound {
    pub(super) per_poller: Vec<Vec<Listener>>,
    /// The real address of each listener, in the builder's order.
    pub(super) local_addrs: Vec<Addr>,
    /// Socket files this server created, removed at shutdown.
    pub(super) unix_paths: Vec<PathBuf>,
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
    };
    let Some(hooks) = hooks else {
        return Ok(bound);
    };
    let bind_err = |addr: &Addr, source| Error::Bind {
        addr: addr.clone(),
        source,
    };
    for (index, addr) in b.listeners.iter().enumerate() {
        let reuse_port = b.balance == Balance::ReusePort && matches!(addr, Addr::Tcp(_));
        let first = sys::listen(addr, reuse_port, b.backlog).map_err(|e| bind_err(addr, e))?;
        let real = sys::local_addr(std::os::fd::AsRawFd::as_raw_fd(&first))
            .map_err(|e| bind_err(addr, e))?;
        if let Addr::Unix(path) = addr {
            bound.unix_paths.push(path.clone());
        }
        let listener =
            |fd, shared| Listener::new(fd, index, real.clone(), hooks.clone(), b.nodelay, shared);
        if reuse_port {
            // One socket per poller on the same (now known) port; the kernel balances.
            bound.per_poller[0].push(listener(first, false));
            for p in 1..pollers {
                let fd = sys::listen(&real, true, b.backlog).map_err(|e| bind_err(&real, e))?;
                bound.per_poller[p].push(listener(fd, false));
            }
        } else {
            bound.per_poller[index % pollers].push(listener(first, true));
        }
        bound.local_addrs.push(real);
    }
    Ok(bound)
}
