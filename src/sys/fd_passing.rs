//! Passing descriptors between processes: `SCM_RIGHTS` over a Unix `SOCK_SEQPACKET`
//! socket pair, one message (bytes and descriptors together) per `sendmsg`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// The most descriptors one message carries. The kernel's limit is 253 (`SCM_MAX_FD`);
/// senders split longer lists.
pub(crate) const MAX_FDS_PER_MESSAGE: usize = 64;

/// A connected pair of close-on-exec Unix `SOCK_SEQPACKET` sockets: message boundaries
/// are kept, so each message's descriptors arrive with its bytes.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid out-array of two ints.
    let ret = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair returned two new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Room for `n` descriptors in a control buffer, aligned for `cmsghdr`.
fn control_buffer(n: usize) -> Vec<u64> {
    // SAFETY: CMSG_SPACE is a pure size computation.
    let bytes = unsafe { libc::CMSG_SPACE((n * std::mem::size_of::<RawFd>()) as u32) } as usize;
    vec![0u64; bytes.div_ceil(8)]
}

/// Sends `data` with `fds` attached, as one message. The descriptors stay open here; the
/// receiver gets its own.
pub(crate) fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    assert!(fds.len() <= MAX_FDS_PER_MESSAGE, "split longer lists");
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut control = control_buffer(fds.len());
    // SAFETY: an all-zero msghdr is valid; the fields set below point at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: a pure size computation.
        msg.msg_controllen =
            unsafe { libc::CMSG_SPACE(std::mem::size_of_val(fds) as u32) } as usize;
        // SAFETY: the control buffer has room for one header and `fds`; CMSG_FIRSTHDR
        // of a msghdr with a non-empty control buffer is non-null.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as usize;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                std::mem::size_of_val(fds),
            );
        }
    }
    loop {
        // SAFETY: msg and everything it points at outlive the call.
        let ret = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if ret >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives one message into `buf`: its length and the descriptors it carried (made
/// close-on-exec as they arrive). `Ok((0, []))` is the peer's end of the connection.
/// Waits until `deadline` at most (`TimedOut` after it).
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Instant,
) -> io::Result<(usize, Vec<OwnedFd>)> {
    wait_readable(sock, deadline)?;
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = control_buffer(MAX_FDS_PER_MESSAGE);
    // SAFETY: an all-zero msghdr is valid; the fields set below point at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() * 8;
    let n = loop {
        // SAFETY: msg and everything it points at outlive the call.
        let ret = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if ret >= 0 {
            break ret as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    // Take ownership of every descriptor first, so none leaks if the message is refused.
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control with msg_controllen bytes of well-formed
    // cmsg headers; CMSG_FIRSTHDR/NXTHDR stay inside them.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let len = (*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize;
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a message carried more than {MAX_FDS_PER_MESSAGE} descriptors; some were lost"
            ),
        ));
    }
    if msg.msg_flags & libc::MSG_TRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a message was longer than {} bytes", buf.len()),
        ));
    }
    Ok((n, fds))
}

/// Blocks until `sock` is readable (or hung up), or fails with `TimedOut` at `deadline`.
fn wait_readable(sock: BorrowedFd<'_>, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as libc::c_int;
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is one valid pollfd.
        let ret = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ret > 0 {
            return Ok(());
        }
        if ret == 0 {
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no message before the deadline",
                ));
            }
            continue;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[test]
    fn descriptors_and_bytes_arrive_together() {
        let (a, b) = seqpacket_pair().unwrap();
        let (p, q) = seqpacket_pair().unwrap();
        send_with_fds(a.as_fd(), b"two", &[p.as_raw_fd(), q.as_raw_fd()]).unwrap();
        send_with_fds(a.as_fd(), b"none", &[]).unwrap();
        let mut buf = [0u8; 16];
        let (n, fds) = recv_with_fds(b.as_fd(), &mut buf, soon()).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"two"[..], 2));
        // The received descriptors are new numbers for the same sockets: what is written
        // into the first arrives at the second's peer.
        assert_ne!(fds[0].as_raw_fd(), p.as_raw_fd());
        send_with_fds(fds[0].as_fd(), b"through", &[]).unwrap();
        let (n2, _) = recv_with_fds(q.as_fd(), &mut buf, soon()).unwrap();
        assert_eq!(&buf[..n2], b"through");
        let (n, fds) = recv_with_fds(b.as_fd(), &mut buf, soon()).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"none"[..], 0));
        drop(a);
        let (n, fds) = recv_with_fds(b.as_fd(), &mut buf, soon()).unwrap();
        assert_eq!((n, fds.len()), (0, 0), "end of the connection");
    }

    #[test]
    fn a_silent_peer_times_out() {
        let (_a, b) = seqpacket_pair().unwrap();
        let err = recv_with_fds(b.as_fd(), &mut [0u8; 4], Instant::now()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
