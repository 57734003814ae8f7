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

/// Turns a `-1` return into the thread's `errno`.
fn cvt(ret: isize) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

// The hot calls go through `syscall(2)` rather than libc's `recv`/`send`/`epoll_wait`:
// those are thread cancellation points, and each wraps the system call in a pair of
// atomic updates of the thread's cancellation state (about 60 instructions and two
// locked operations per call, more than the rest of the wrapper). netloop never cancels
// its threads with `pthread_cancel`, so the plain call does the same work.

/// `recv(2)` as a plain system call (see above).
///
/// # Safety
/// `buf` must be valid for writes of `len` bytes.
unsafe fn raw_recv(fd: RawFd, buf: *mut libc::c_void, len: usize, flags: libc::c_int) -> isize {
    // SAFETY: recvfrom with no address to fill in is recv; the caller vouches for `buf`.
    unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            libc::c_long::from(fd),
            buf,
            len,
            libc::c_long::from(flags),
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        ) as isize
    }
}

/// `send(2)` as a plain system call (see above).
///
/// # Safety
/// `buf` must be valid for reads of `len` bytes.
unsafe fn raw_send(fd: RawFd, buf: *const libc::c_void, len: usize, flags: libc::c_int) -> isize {
    // SAFETY: sendto with no address is send; the caller vouches for `buf`.
    unsafe {
        libc::syscall(
            libc::SYS_sendto,
            libc::c_long::from(fd),
            buf,
            len,
            libc::c_long::from(flags),
            std::ptr::null::<libc::c_void>(),
            0 as libc::c_long,
        ) as isize
    }
}

/// `epoll_wait(2)` as a plain system call (see above); `epoll_pwait` with no signal mask
/// is the same call and exists on every architecture.
///
/// # Safety
/// `events` must be valid for writes of `max` entries.
pub(crate) unsafe fn raw_epoll_wait(
    epfd: RawFd,
    events: *mut libc::epoll_event,
    max: libc::c_int,
    timeout_ms: libc::c_int,
) -> libc::c_int {
    // SAFETY: the caller vouches for `events`; a null mask leaves the signal mask alone.
    unsafe {
        libc::syscall(
            libc::SYS_epoll_pwait,
            libc::c_long::from(epfd),
            events,
            libc::c_long::from(max),
            libc::c_long::from(timeout_ms),
            std::ptr::null::<libc::sigset_t>(),
            0 as libc::c_long, // the mask's size: unused without a mask
        ) as libc::c_int
    }
}

/// One `recv(2)` into the spare capacity of `buf`; the bytes read are appended.
/// `Ok(0)` means end-of-file (or a buffer with no spare room, which callers avoid).
pub(crate) fn read_into(fd: RawFd, buf: &mut BytesMut) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: the pointer and length describe writable memory owned by `buf`; the kernel
    // writes at most `spare.len()` bytes into it.
    // recv rather than read: it goes straight to the socket layer, skipping the VFS
    // checks read(2) makes on every call (measurable at 1000 connections).
    let n = cvt(unsafe { raw_recv(fd, spare.as_mut_ptr().cast(), spare.len(), 0) })?;
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
        // SAFETY: the pointer and length describe a valid buffer that outlives the call.
        return cvt(unsafe { raw_send(fd, one.as_ptr().cast(), one.len(), libc::MSG_NOSIGNAL) });
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
