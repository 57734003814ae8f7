//! The epoll backend: raw `epoll` through `libc`, level-triggered for sockets.
//!
//! mio only offers edge-triggered registration; netloop wants level-triggered reads so
//! a connection that still has unread data (because it used its one read of the turn,
//! or because backpressure paused it) is reported again without extra bookkeeping.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use bytes::BytesMut;

use super::{Event, Interest, Token, Waker};
use crate::sys;

/// Events fetched per `epoll_wait`.
const EVENTS_PER_TURN: usize = 1024;

/// One epoll instance and its event array, owned by one poller thread.
pub(crate) struct Epoll {
    epfd: OwnedFd,
    events: Vec<libc::epoll_event>,
    ready: usize,
    cursor: usize,
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn flags(interest: Interest) -> u32 {
    let mut f = 0;
    if interest.read {
        // RDHUP is level-triggered too, so it is only asked for while reading.
        f |= libc::EPOLLIN | libc::EPOLLRDHUP;
    }
    if interest.write {
        f |= libc::EPOLLOUT;
    }
    f as u32
}

impl Epoll {
    pub(crate) fn new(waker: &Waker) -> io::Result<Epoll> {
        // SAFETY: plain system call; the result is checked.
        let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: epoll_create1 returned a new descriptor nobody else owns.
        let epfd = unsafe { OwnedFd::from_raw_fd(epfd) };
        let epoll = Epoll {
            epfd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_TURN],
            ready: 0,
            cursor: 0,
        };
        epoll.ctl(
            libc::EPOLL_CTL_ADD,
            waker.raw_fd(),
            (libc::EPOLLIN | libc::EPOLLET) as u32,
            Token::WAKE,
        )?;
        Ok(epoll)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: Token) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events,
            u64: token.0,
        };
        // SAFETY: ev is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) }).map(drop)
    }

    /// Starts watching `fd`.
    pub(crate) fn add(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, flags(interest), token)
    }

    /// Changes what `fd` is watched for.
    pub(crate) fn modify(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, flags(interest), token)
    }

    /// Stops watching `fd`.
    pub(crate) fn delete(&mut self, fd: RawFd, _token: Token) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, Token(0))
    }

    /// Stops watching `fd` and closes it (closing also removes it from the epoll set,
    /// unless the descriptor was duplicated, hence the explicit delete).
    pub(crate) fn close(&mut self, fd: OwnedFd, token: Token) {
        let _ = self.delete(fd.as_raw_fd(), token);
        drop(fd);
    }

    /// Blocks until something happens or `timeout` passes (`None`: no time limit).
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let ms = match timeout {
            None => -1,
            // Round up so a short timeout does not become a busy zero-timeout loop.
            Some(t) => t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int,
        };
        // SAFETY: the events buffer has EVENTS_PER_TURN valid entries.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                ms,
            )
        };
        self.cursor = 0;
        self.ready = 0;
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        self.ready = n as usize;
        Ok(())
    }

    /// The next event of this turn.
    pub(crate) fn next_event(&mut self) -> Option<Event> {
        if self.cursor == self.ready {
            return None;
        }
        let ev = self.events[self.cursor];
        self.cursor += 1;
        let bits = ev.events as libc::c_int;
        Some(Event {
            readable: bits & (libc::EPOLLIN | libc::EPOLLRDHUP) != 0,
            writable: bits & libc::EPOLLOUT != 0,
            hangup: bits & libc::EPOLLHUP != 0,
            error: bits & libc::EPOLLERR != 0,
            ..Event::new(Token(ev.u64))
        })
    }

    /// Appends newly arrived bytes of `fd` to `buf`: one `read`, as many bytes as the
    /// buffer's spare room takes. `Ok(0)` is end-of-file.
    pub(crate) fn receive(&mut self, fd: RawFd, buf: &mut BytesMut) -> io::Result<usize> {
        sys::read_into(fd, buf)
    }
}
