//! The epoll backend: raw level-triggered `epoll` (set up through `libc`, waited on through
//! `rustix`, see `sys`).
//!
//! mio only offers edge-triggered registration; netloop wants level-triggered reads so
//! a connection that still has unread data (because it used its one read of the turn,
//! or because backpressure paused it) is reported again without extra bookkeeping.
//! Every I/O call here is a plain system call made at once: epoll reports readiness and
//! the poller acts on it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use bytes::BytesMut;

use rustix::event::epoll::{Event as EpollEvent, EventData, EventFlags};

use super::{Event, Interest, Sent, Token, Waker};
use crate::conn::Output;
use crate::{sys, Addr};

/// Events fetched per `epoll_wait`.
const EVENTS_PER_TURN: usize = 1024;

/// One epoll instance and its event array, owned by one poller thread.
pub(crate) struct Epoll {
    epfd: OwnedFd,
    waker_fd: RawFd,
    events: Events,
    ready: usize,
    cursor: usize,
}

/// The event array `epoll_wait` fills.
struct Events(Vec<EpollEvent>);

// SAFETY: an event's data may hold a pointer (rustix's `EventData` is a union with one,
// hence not `Send`), but netloop stores only integer tokens in it, never a pointer.
unsafe impl Send for Events {}

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
        Ok(Epoll {
            epfd,
            waker_fd: waker.raw_fd(),
            events: Events(vec![
                EpollEvent {
                    flags: EventFlags::empty(),
                    data: EventData::new_u64(0),
                };
                EVENTS_PER_TURN
            ]),
            ready: 0,
            cursor: 0,
        })
    }

    /// Registers the waker (edge-triggered: every wake-up write is a new event, so it
    /// never has to be read back).
    pub(crate) fn start(&mut self) -> io::Result<()> {
        self.ctl(
            libc::EPOLL_CTL_ADD,
            self.waker_fd,
            (libc::EPOLLIN | libc::EPOLLET) as u32,
            Token::WAKE,
        )
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: Token) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events,
            u64: token.0,
        };
        // SAFETY: ev is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) }).map(drop)
    }

    pub(crate) fn register(
        &mut self,
        fd: RawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, flags(interest), token)
    }

    pub(crate) fn reregister(
        &mut self,
        fd: RawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, flags(interest), token)
    }

    pub(crate) fn deregister(&mut self, fd: RawFd, _token: Token) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, Token(0))
    }

    /// Closing also removes a descriptor from the epoll set, unless it was duplicated,
    /// hence the explicit delete.
    pub(crate) fn close(&mut self, fd: OwnedFd, token: Token) {
        let _ = self.deregister(fd.as_raw_fd(), token);
        drop(fd);
    }

    /// One `epoll_wait`, which reports every ready socket (up to the event array) at
    /// once, so `_gather` asks nothing more of it.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>, _gather: bool) -> io::Result<()> {
        self.cursor = 0;
        self.ready = 0;
        match sys::epoll_wait(self.epfd.as_raw_fd(), &mut self.events.0, timeout) {
            Ok(n) => self.ready = n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    pub(crate) fn next_event(&mut self) -> Option<Event> {
        if self.cursor == self.ready {
            return None;
        }
        let ev = self.events.0[self.cursor];
        self.cursor += 1;
        let flags = ev.flags;
        let bits = flags.bits() as libc::c_int;
        Some(Event {
            readable: bits & (libc::EPOLLIN | libc::EPOLLRDHUP) != 0,
            writable: bits & libc::EPOLLOUT != 0,
            hangup: bits & libc::EPOLLHUP != 0,
            error: bits & libc::EPOLLERR != 0,
            ..Event::new(Token(ev.data.u64()))
        })
    }

    /// One `recv`, as many bytes as the buffer's spare room takes, at most `max`.
    pub(crate) fn receive(
        &mut self,
        fd: RawFd,
        buf: &mut BytesMut,
        max: usize,
    ) -> io::Result<usize> {
        sys::read_into(fd, buf, max)
    }

    /// One `accept4`.
    pub(crate) fn accept(&mut self, fd: RawFd) -> io::Result<Option<(OwnedFd, Option<Addr>)>> {
        match sys::accept(fd) {
            Ok((fd, peer)) => Ok(Some((fd, Some(peer)))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A non-blocking `connect`: `EINPROGRESS` is the usual answer, and the socket turns
    /// writable when the connect ends either way, so it is watched for that.
    pub(crate) fn connect(
        &mut self,
        fd: RawFd,
        token: Token,
        addr: &socket2::SockAddr,
    ) -> io::Result<()> {
        sys::connect_nonblocking(fd, addr)?;
        self.reregister(fd, token, Interest::WRITE)
    }

    /// The connect's outcome, from `SO_ERROR`.
    pub(crate) fn connect_result(&mut self, fd: RawFd) -> io::Result<()> {
        sys::socket_error(fd)
    }

    pub(crate) fn take_error(&mut self, fd: RawFd) -> io::Error {
        sys::take_socket_error(fd)
    }

    /// One gathered `sendmsg` now (more only past 64 segments).
    pub(crate) fn send(
        &mut self,
        fd: RawFd,
        _token: Token,
        queue: &mut Output,
    ) -> io::Result<Sent> {
        sys::send_queue(fd, queue).map(Sent::Now)
    }
}
