//! Thin, safe wrappers over the Linux system calls the loop makes on its hot path, and
//! socket setup through `socket2`.

mod affinity;
mod fd_flags;
pub(crate) mod fd_passing;
mod socket;

pub(crate) use affinity::{allowed_cpus, pin_current_thread};
pub(crate) use fd_flags::{check_listener, set_cloexec, set_nonblocking, socket_kind};
#[cfg(feature = "tls")]
pub(crate) use socket::probe_tls_ulp;
pub(crate) use socket::{
    accept, connect_nonblocking, listen, local_addr, peer_addr, set_keepalive, set_nodelay,
    shutdown, shutdown_write, socket_error, socket_for, to_sockaddr as sockaddr, AcceptError,
};

use std::io::{self, IoSlice};
use std::os::fd::RawFd;

use bytes::BytesMut;
use rustix::event::epoll::{self, Event};
use rustix::event::Timespec;
use rustix::fd::BorrowedFd;
use rustix::net::{RecvFlags, SendFlags};

/// Turns a `-1` return into the thread's `errno`.
fn cvt(ret: isize) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

// The hot calls (`recv`, `send`, `epoll_pwait`) go through rustix, which makes them as
// inline `syscall` instructions. libc's `recv`/`send`/`epoll_wait` are thread
// cancellation points, each wrapping the system call in a pair of atomic updates of the
// thread's cancellation state (about 60 instructions and two locked operations per call),
// and even `syscall(2)` costs a variadic call and a register shuffle; netloop never
// cancels its threads, so the bare instruction does the same work. The rare calls stay
// on libc.

/// A descriptor the caller owns, borrowed for one call.
///
/// # Safety
/// `fd` must stay open for the lifetime the result is used for (one system call here).
#[inline]
unsafe fn borrowed<'a>(fd: RawFd) -> BorrowedFd<'a> {
    // SAFETY: the caller keeps `fd` open while the borrow is used.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// `epoll_pwait(2)` with no signal mask into `events`: how many entries it filled.
/// `None` waits without a limit; a timeout is rounded up to whole milliseconds.
pub(crate) fn epoll_wait(
    epfd: RawFd,
    events: &mut [Event],
    timeout: Option<std::time::Duration>,
) -> io::Result<usize> {
    let timeout = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: t.subsec_nanos().into(),
    });
    // SAFETY: the poller owns its epoll descriptor and keeps it open while it waits.
    let epfd = unsafe { borrowed(epfd) };
    Ok(epoll::wait(epfd, events, timeout.as_ref())?)
}

/// One `recv(2)` of at most `max` bytes into the spare capacity of `buf`; the bytes
/// read are appended. `Ok(0)` means end-of-file (or no room to read into: a buffer
/// with no spare room or a `max` of 0, which callers avoid).
// recv rather than read: it goes straight to the socket layer, skipping the VFS checks
// read(2) makes on every call (measurable at 1000 connections).
#[inline]
pub(crate) fn read_into(fd: RawFd, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    // SAFETY: the connection owns `fd` and keeps it open for the call.
    let sock = unsafe { borrowed(fd) };
    let spare = buf.spare_capacity_mut();
    let room = spare.len().min(max);
    let ((filled, _), _) = rustix::net::recv(sock, &mut spare[..room], RecvFlags::empty())?;
    let n = filled.len();
    // SAFETY: the kernel initialised exactly `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Sends as much of `queue` as the socket takes now: one gathered write of up to 64
/// segments, another only if all of them went and more are queued. The bytes sent are
/// consumed from the queue and returned (0 if the socket buffer is full).
pub(crate) fn send_queue(fd: RawFd, queue: &mut crate::conn::Output) -> io::Result<usize> {
    let mut sent = 0;
    while !queue.is_empty() {
        let result = match queue.only_slice() {
            // One segment (the common reply): no iovec array to build.
            Some(one) => send_vectored(fd, &[IoSlice::new(one)]).map(|n| (n, one.len())),
            None => send_gathered(fd, queue),
        };
        let (n, total) = match result {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        queue.advance(n);
        sent += n;
        if n < total {
            // The socket buffer is full: another write now would only return EAGAIN.
            break;
        }
    }
    Ok(sent)
}

/// One gathered write of the front of `queue`: the bytes sent and the bytes offered.
// Out of line: its iovec array would otherwise be set up in the single-segment path's
// frame too.
#[inline(never)]
fn send_gathered(fd: RawFd, queue: &crate::conn::Output) -> io::Result<(usize, usize)> {
    let mut slices = [IoSlice::new(&[]); crate::conn::MAX_IOVECS];
    let (count, total) = queue.io_slices(&mut slices);
    send_vectored(fd, &slices[..count]).map(|n| (n, total))
}

/// One gathered `sendmsg(2)` (`send(2)` for a single segment) with `MSG_NOSIGNAL`, so a peer that has gone raises
/// `EPIPE` instead of killing the process with `SIGPIPE`.
pub(crate) fn send_vectored(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    if let [one] = bufs {
        // One segment (the common reply): send(2) spares the kernel copying in and
        // checking a msghdr and an iovec array.
        // SAFETY: the connection owns `fd` and keeps it open for the call.
        let sock = unsafe { borrowed(fd) };
        return Ok(rustix::net::send(sock, one, SendFlags::NOSIGNAL)?);
    }
    // SAFETY: an all-zero msghdr is valid; only the iovec fields are set.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is guaranteed ABI-compatible with iovec on Unix.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len() as _;
    // SAFETY: msg points at `bufs.len()` valid iovecs that outlive the call.
    cvt(unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) })
}

/// `getsockopt(SO_ERROR)`: the pending error of a socket that reported `EPOLLERR`.
pub(crate) fn take_socket_error(fd: RawFd) -> io::Error {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: err and len are valid out-pointers of the sizes given.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if ret < 0 {
        io::Error::last_os_error()
    } else if err == 0 {
        io::Error::from(io::ErrorKind::ConnectionReset)
    } else {
        io::Error::from_raw_os_error(err)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    use bytes::BytesMut;

    #[test]
    fn a_read_takes_at_most_max_bytes_and_leaves_the_rest_in_the_socket() {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"0123456789").unwrap();
        let mut buf = BytesMut::with_capacity(4096);
        assert_eq!(super::read_into(a.as_raw_fd(), &mut buf, 4).unwrap(), 4);
        assert_eq!(&buf[..], b"0123");
        assert_eq!(
            super::read_into(a.as_raw_fd(), &mut buf, usize::MAX).unwrap(),
            6
        );
        assert_eq!(&buf[..], b"0123456789");
    }
}
