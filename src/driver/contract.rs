//! The driver contract (see the module docs of `driver`), checked against every backend
//! this machine can run: the same calls, the same outcomes. io_uring is skipped, with
//! the probe's reason printed, where it is not usable.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::*;

/// A driver of each usable backend, with its waker (which must outlive it).
fn drivers() -> Vec<(&'static str, Driver, Waker)> {
    let mut all = Vec::new();
    let waker = Waker::new().unwrap();
    let mut epoll = Driver::Epoll(Epoll::new(&waker).unwrap());
    epoll.start().unwrap();
    all.push(("epoll", epoll, waker));
    for submit_sends in [true, false] {
        match probe_io_uring() {
            Ok(()) => {
                let waker = Waker::new().unwrap();
                let mut uring =
                    Driver::Uring(Box::new(Uring::new(&waker, submit_sends, None).unwrap()));
                uring.start().unwrap();
                let name = if submit_sends {
                    "io_uring"
                } else {
                    "io_uring (direct sends)"
                };
                all.push((name, uring, waker));
            }
            Err(why) => eprintln!("io_uring skipped: {why}"),
        }
    }
    all
}

/// Waits (bounded) until an event for `token` satisfies `want`; returns it.
fn event_for(d: &mut Driver, token: Token, want: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        d.wait(Some(Duration::from_millis(50)), false).unwrap();
        while let Some(e) = d.next_event() {
            if e.token == token && want(&e) {
                return e;
            }
        }
    }
    panic!("no such event for {token:?} within 10 s");
}

fn conn_token(i: usize) -> Token {
    Token::conn(i, 1)
}

#[test]
fn a_readable_socket_delivers_its_bytes_then_its_end() {
    for (name, mut d, _waker) in drivers() {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let t = conn_token(1);
        d.register(a.as_raw_fd(), t, Interest::READ).unwrap();
        b.write_all(b"abc").unwrap();
        event_for(&mut d, t, |e| e.readable);
        let mut buf = BytesMut::with_capacity(4096);
        assert_eq!(
            d.receive(a.as_raw_fd(), &mut buf, usize::MAX).unwrap(),
            3,
            "{name}"
        );
        assert_eq!(&buf[..], b"abc");
        drop(b);
        event_for(&mut d, t, |e| e.readable || e.hangup);
        assert_eq!(
            d.receive(a.as_raw_fd(), &mut buf, usize::MAX).unwrap(),
            0,
            "{name}: end-of-file"
        );
        d.close(OwnedFd::from(a), t);
    }
}

#[test]
fn a_send_goes_out_now_or_completes_later_and_is_consumed_either_way() {
    for (name, mut d, _waker) in drivers() {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let t = conn_token(2);
        d.register(a.as_raw_fd(), t, Interest::NONE).unwrap();
        let mut queue = Output::new();
        queue.write(b"head ");
        queue.write_bytes(Bytes::from_static(b"body"));
        match d.send(a.as_raw_fd(), t, &mut queue).unwrap() {
            Sent::Now(n) => {
                assert!(!d.submits_sends(), "{name}");
                assert_eq!(n, 9);
                assert!(queue.is_empty());
            }
            Sent::InFlight => {
                assert!(d.submits_sends(), "{name}");
                // One in flight: a second call touches nothing.
                assert_eq!(
                    d.send(a.as_raw_fd(), t, &mut queue).unwrap(),
                    Sent::InFlight
                );
                let e = event_for(&mut d, t, |e| e.sent.is_some());
                let n = e.sent.unwrap().unwrap();
                assert_eq!(n, 9, "{name}");
                queue.advance(n);
            }
        }
        let mut got = [0u8; 9];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"head body", "{name}");
        d.close(OwnedFd::from(a), t);
    }
}

#[test]
fn a_listener_hands_over_its_pending_connections() {
    for (name, mut d, _waker) in drivers() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let t = Token::listener(0);
        d.register(listener.as_raw_fd(), t, Interest::READ).unwrap();
        let _client = TcpStream::connect(addr).unwrap();
        event_for(&mut d, t, |e| e.readable);
        let (fd, _peer) = d
            .accept(listener.as_raw_fd())
            .unwrap()
            .expect("a pending connection");
        assert!(fd.as_raw_fd() >= 0, "{name}");
        assert!(
            d.accept(listener.as_raw_fd()).unwrap().is_none(),
            "{name}: no more"
        );
        d.close(OwnedFd::from(listener), t);
    }
}

#[test]
fn a_connect_reports_its_outcome_success_or_refusal() {
    for (name, mut d, _waker) in drivers() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = crate::Addr::Tcp(listener.local_addr().unwrap());
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            crate::Addr::Tcp(l.local_addr().unwrap())
        };
        for (i, (target, ok)) in [(open, true), (closed, false)].into_iter().enumerate() {
            let (fd, sockaddr) = crate::sys::socket_for(&target).unwrap();
            let t = conn_token(10 + i);
            d.register(fd.as_raw_fd(), t, Interest::NONE).unwrap();
            d.connect(fd.as_raw_fd(), t, &sockaddr).unwrap();
            event_for(&mut d, t, |e| e.writable || e.error || e.hangup);
            let result = d.connect_result(fd.as_raw_fd());
            assert_eq!(result.is_ok(), ok, "{name}: {target} {result:?}");
            if !ok {
                assert_eq!(
                    result.unwrap_err().kind(),
                    std::io::ErrorKind::ConnectionRefused
                );
            }
            d.close(fd, t);
        }
    }
}

#[test]
fn closing_a_socket_with_an_operation_pending_waits_for_its_end() {
    for (name, mut d, _waker) in drivers() {
        let (a, _b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let t = conn_token(3);
        // An armed receive that nothing will complete.
        d.register(a.as_raw_fd(), t, Interest::READ).unwrap();
        d.wait(Some(Duration::ZERO), false).unwrap();
        while d.next_event().is_some() {}
        d.close(OwnedFd::from(a), t);
        // Epoll closes at once; io_uring once the cancelled receive's completion came.
        let completion_backend = matches!(d, Driver::Uring(_));
        assert_eq!(d.closing() > 0, completion_backend, "{name}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while d.closing() > 0 && Instant::now() < deadline {
            d.wait(Some(Duration::from_millis(10)), false).unwrap();
            while let Some(e) = d.next_event() {
                assert_ne!(e.token, t, "{name}: no event for a closed socket");
            }
        }
        assert_eq!(d.closing(), 0, "{name}");
    }
}
