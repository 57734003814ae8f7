//! [`ListenerFds`]: the sockets of one listener, as they travel between processes.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::Addr;

/// The listening sockets of one of a server's listeners: one socket, or with
/// [`Balance::ReusePort`](crate::Balance::ReusePort) one `SO_REUSEPORT` socket per
/// poller, all bound to the same address.
///
/// [`ServerHandle::listener_fds`](crate::ServerHandle::listener_fds) returns these (each
/// descriptor a duplicate: the same kernel socket, a new number);
/// [`Handover::take_listeners`](super::Handover::take_listeners) gives the ones a
/// predecessor sent; [`Builder::listen_fds`](crate::Builder::listen_fds) serves on them.
#[derive(Debug)]
pub struct ListenerFds {
    pub(crate) addr: Addr,
    pub(crate) fds: Vec<OwnedFd>,
    /// The socket file (Unix listeners) was created by the server these came from, and
    /// whoever serves on them last removes it.
    pub(crate) owns_path: bool,
}

impl ListenerFds {
    /// The address every socket of this listener is bound to.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// The sockets.
    pub fn fds(&self) -> &[OwnedFd] {
        &self.fds
    }

    /// The sockets, to adopt or pass on.
    pub fn into_fds(self) -> Vec<OwnedFd> {
        self.fds
    }

    /// Duplicates of the same sockets (new descriptors, close-on-exec).
    pub(crate) fn try_clone(&self) -> std::io::Result<ListenerFds> {
        Ok(ListenerFds {
            addr: self.addr.clone(),
            fds: self
                .fds
                .iter()
                .map(|fd| fd.try_clone())
                .collect::<std::io::Result<_>>()?,
            owns_path: self.owns_path,
        })
    }

    /// The descriptor numbers, for messages about them.
    pub(crate) fn raw_fds(&self) -> impl Iterator<Item = std::os::fd::RawFd> + '_ {
        self.fds.iter().map(|fd| fd.as_raw_fd())
    }
}
