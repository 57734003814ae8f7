//! Cross-thread wake-ups for a poller blocked in `epoll_wait`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An `eventfd` registered edge-triggered with the poller's epoll instance.
///
/// Each write makes the eventfd readable again, and with edge triggering every write
/// produces a new event, so the poller never has to read it back: one system call per
/// wake-up, on the waking side only. The counter is reset only if it ever saturates.
#[derive(Debug)]
pub(crate) struct Waker {
    fd: OwnedFd,
}

impl Waker {
    pub(crate) fn new() -> io::Result<Waker> {
        // SAFETY: plain system call; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: eventfd returned a new descriptor nobody else owns.
        Ok(Waker {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Wakes the poller.
    pub(crate) fn wake(&self) {
        let one: u64 = 1;
        loop {
            // SAFETY: writes 8 bytes from a valid u64.
            let ret = unsafe { libc::write(self.raw_fd(), (&one as *const u64).cast(), 8) };
            if ret >= 0 {
                return;
            }
            match io::Error::last_os_error().kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    // The counter is saturated: drain it and write again.
                    let mut sink: u64 = 0;
                    // SAFETY: reads 8 bytes into a valid u64.
                    unsafe { libc::read(self.raw_fd(), (&mut sink as *mut u64).cast(), 8) };
                }
                _ => return,
            }
        }
    }
}
