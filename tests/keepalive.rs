//! `tcp_keepalive` turns on TCP keepalive probes (with the given idle time) on accepted
//! connections; without it they stay off. (It is separate from the idle timeout, which
//! closes connections; keepalive only lets the kernel notice a vanished peer.)

mod common;

use std::os::fd::AsFd;
use std::time::Duration;

use common::*;
use netloop::{handler_fn, Server};

/// A server that answers each request with its socket's keepalive settings.
fn reporting(keepalive: Option<Duration>) -> netloop::ServerHandle {
    let mut b = Server::builder().listen("127.0.0.1:0").pollers(1);
    if let Some(idle) = keepalive {
        b = b.tcp_keepalive(idle);
    }
    b.serve(handler_fn(|conn| {
        let n = conn.input().len();
        conn.input().skip(n);
        let fd = conn.as_fd();
        let sock = socket2::SockRef::from(&fd);
        let on = sock.keepalive().unwrap();
        let idle = sock.tcp_keepalive_time().unwrap().as_secs();
        conn.output()
            .write(format!("{}:{idle:05}", on as u8).as_bytes());
    }))
    .unwrap()
}

#[test]
fn tcp_keepalive_is_set_on_accepted_connections_only_when_asked() {
    let with = reporting(Some(Duration::from_secs(42)));
    let mut s = connect(addr(&with));
    assert_eq!(round_trip(&mut s, b"?......"), b"1:00042");
    with.shutdown(PATIENCE);

    let without = reporting(None);
    let mut s = connect(addr(&without));
    assert_eq!(&round_trip(&mut s, b"?......")[..2], b"0:");
    without.shutdown(PATIENCE);
}
