//! Listening, accepting and connecting sockets.

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::Addr;

/// Converts a kernel socket address into an [`Addr`].
fn to_addr(sa: &SockAddr) -> Addr {
    if let Some(tcp) = sa.as_socket() {
        return Addr::Tcp(tcp);
    }
    Addr::Unix(
        sa.as_pathname()
            .map(|p| p.to_path_buf())
            .unwrap_or_default(),
    )
}

/// An address in the kernel's form.
pub(crate) fn to_sockaddr(addr: &Addr) -> io::Result<SockAddr> {
    match addr {
        Addr::Tcp(a) => Ok(SockAddr::from(*a)),
        Addr::Unix(p) => SockAddr::unix(p),
    }
}

fn domain_of(addr: &Addr) -> Domain {
    match addr {
        Addr::Tcp(a) if a.is_ipv4() => Domain::IPV4,
        Addr::Tcp(_) => Domain::IPV6,
        Addr::Unix(_) => Domain::UNIX,
    }
}

/// A non-blocking, close-on-exec listening socket.
pub(crate) fn listen(addr: &Addr, reuse_port: bool, backlog: i32) -> io::Result<OwnedFd> {
    let socket = Socket::new(domain_of(addr), Type::STREAM.nonblocking().cloexec(), None)?;
    if let Addr::Tcp(a) = addr {
        socket.set_reuse_address(true)?;
        if reuse_port {
            socket.set_reuse_port(true)?;
        }
        if a.is_ipv6() {
            // An IPv6 listener serves IPv6 only; listen on an IPv4 address too if wanted.
            socket.set_only_v6(true)?;
        }
    }
    socket.bind(&to_sockaddr(addr)?)?;
    socket.listen(backlog)?;
    Ok(OwnedFd::from(socket))
}

/// The address a socket is bound to.
pub(crate) fn local_addr(fd: RawFd) -> io::Result<Addr> {
    // SAFETY: the fd is borrowed for the duration of the call only; ManuallyDrop keeps
    // socket2 from closing it.
    let socket = std::mem::ManuallyDrop::new(unsafe { Socket::from_raw_fd(fd) });
    Ok(to_addr(&socket.local_addr()?))
}

/// Accepts one connection: non-blocking and close-on-exec in the same system call.
pub(crate) fn accept(listener: RawFd) -> io::Result<(OwnedFd, Addr)> {
    // SAFETY: try_init hands a zeroed sockaddr_storage and its length to accept4, which
    // writes at most that many bytes.
    let (fd, peer) = unsafe {
        SockAddr::try_init(|storage, len| {
            let fd = libc::accept4(
                listener,
                storage.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            );
            if fd < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(fd)
            }
        })?
    };
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    Ok((unsafe { OwnedFd::from_raw_fd(fd) }, to_addr(&peer)))
}

/// Disables Nagle's algorithm on a TCP socket.
pub(crate) fn set_nodelay(fd: RawFd) -> io::Result<()> {
    // SAFETY: borrowed for the call only, see local_addr.
    let socket = std::mem::ManuallyDrop::new(unsafe { Socket::from_raw_fd(fd) });
    socket.set_tcp_nodelay(true)
}

/// Turns on TCP keepalive probes after `idle` without traffic.
pub(crate) fn set_keepalive(fd: RawFd, idle: Duration) -> io::Result<()> {
    // SAFETY: borrowed for the call only, see local_addr.
    let socket = std::mem::ManuallyDrop::new(unsafe { Socket::from_raw_fd(fd) });
    socket.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle))
}

/// The peer address of a connected socket (for connections accepted by io_uring, which
/// does not report it).
pub(crate) fn peer_addr(fd: &impl std::os::fd::AsFd) -> io::Result<Addr> {
    Ok(to_addr(&socket2::SockRef::from(fd).peer_addr()?))
}

/// `shutdown(2)` of the write side: the peer reads end-of-file, this side keeps reading.
pub(crate) fn shutdown_write(fd: RawFd) {
    // SAFETY: plain system call on a descriptor we own.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

/// `shutdown(2)` both directions: the peer sees the connection end while the descriptor
/// stays open (used to cut off a connection whose handler is still running).
pub(crate) fn shutdown(fd: RawFd) {
    // SAFETY: plain system call on a descriptor we own; errors (already closed) are moot.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// A new non-blocking, close-on-exec stream socket for connecting to `addr`, and the
/// address in the kernel's form.
pub(crate) fn socket_for(addr: &Addr) -> io::Result<(OwnedFd, SockAddr)> {
    let socket = Socket::new(domain_of(addr), Type::STREAM.nonblocking().cloexec(), None)?;
    let target = to_sockaddr(addr)?;
    // SAFETY: into_raw_fd gives up socket2's ownership of the descriptor.
    Ok((
        unsafe { OwnedFd::from_raw_fd(socket.into_raw_fd()) },
        target,
    ))
}

/// Starts a non-blocking connect. `Ok` if it completed or is in progress (the socket
/// turns writable when it ends); the error if it failed at once.
pub(crate) fn connect_nonblocking(fd: RawFd, addr: &SockAddr) -> io::Result<()> {
    // SAFETY: addr holds a valid socket address of the length it reports.
    let ret = unsafe { libc::connect(fd, addr.as_ptr().cast(), addr.len()) };
    if ret == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINPROGRESS | libc::EAGAIN | libc::EINTR) => Ok(()),
        _ => Err(e),
    }
}

/// The pending error of a socket (`SO_ERROR`), `Ok` if there is none: how a
/// non-blocking connect ended.
pub(crate) fn socket_error(fd: RawFd) -> io::Result<()> {
    // SAFETY: borrowed for the call only, see local_addr.
    let socket = std::mem::ManuallyDrop::new(unsafe { Socket::from_raw_fd(fd) });
    match socket.take_error()? {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// What an accept error means for the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AcceptError {
    /// One pending connection went wrong (it was aborted, or a signal came): try the
    /// next.
    Transient,
    /// The process or the system ran out of descriptors or memory: pause accepting for
    /// a while and keep serving the connections there are.
    Exhausted,
    /// Anything else: reported, and accepting continues next turn.
    Other,
}

impl AcceptError {
    /// The one place accept errors are classified, for every backend.
    pub(crate) fn classify(e: &io::Error) -> AcceptError {
        match e.raw_os_error() {
            Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => AcceptError::Transient,
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                AcceptError::Exhausted
            }
            _ => AcceptError::Other,
        }
    }
}

/// Whether the kernel accepts the `tls` upper-layer protocol on an established TCP
/// socket (a loopback pair made for the probe).
#[cfg(feature = "tls")]
pub(crate) fn probe_tls_ulp() -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let client = std::net::TcpStream::connect(listener.local_addr()?)?;
    let _server = listener.accept()?;
    let name = b"tls";
    // SAFETY: the option value is a valid buffer of the given length, the socket is
    // open for the call.
    let rc = unsafe {
        libc::setsockopt(
            client.as_raw_fd(),
            libc::SOL_TCP,
            libc::TCP_ULP,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
