//! Descriptor flags and socket facts for descriptors netloop did not open itself: adopted
//! listeners (a successor's, systemd's) and the handover channel.

use std::io;
use std::os::fd::RawFd;

/// Turns a `-1` return into the thread's `errno`.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Sets or clears `FD_CLOEXEC`: whether the descriptor is closed across `exec`.
pub(crate) fn set_cloexec(fd: RawFd, cloexec: bool) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor number; an invalid one returns EBADF.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    let wanted = if cloexec {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    if wanted != flags {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, wanted) })?;
    }
    Ok(())
}

/// Sets `O_NONBLOCK`. The flag belongs to the open file description, so every process
/// sharing the socket sees it; listeners are accepted from without blocking everywhere.
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor number; an invalid one returns EBADF.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    }
    Ok(())
}

/// An `int` socket option.
fn int_option(fd: RawFd, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are valid out-pointers of the sizes given.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// The socket's type (`SOCK_STREAM`, `SOCK_SEQPACKET`, ...) and address family.
pub(crate) fn socket_kind(fd: RawFd) -> io::Result<(libc::c_int, libc::c_int)> {
    Ok((
        int_option(fd, libc::SO_TYPE)?,
        int_option(fd, libc::SO_DOMAIN)?,
    ))
}

/// Checks that `fd` is a TCP or Unix stream socket on which `listen(2)` was called;
/// otherwise an `InvalidInput` error that says which of these it is not.
pub(crate) fn check_listener(fd: RawFd) -> io::Result<()> {
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
    let (kind, family) = match socket_kind(fd) {
        Ok(k) => k,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => {
            return Err(invalid(format!("descriptor {fd} is not a socket")))
        }
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => {
            return Err(invalid(format!("descriptor {fd} is not open")))
        }
        Err(e) => return Err(e),
    };
    if kind != libc::SOCK_STREAM {
        return Err(invalid(format!(
            "descriptor {fd} is not a stream socket (SO_TYPE {kind})"
        )));
    }
    if !matches!(family, libc::AF_INET | libc::AF_INET6 | libc::AF_UNIX) {
        return Err(invalid(format!(
            "descriptor {fd} is neither a TCP nor a Unix socket (address family {family})"
        )));
    }
    if int_option(fd, libc::SO_ACCEPTCONN)? == 0 {
        return Err(invalid(format!(
            "descriptor {fd} is not a listening socket (SO_ACCEPTCONN is off: bind(2) and listen(2) it first)"
        )));
    }
    Ok(())
}
