//! The client runtime: dials never block the caller or the poller; host names resolve
//! off the pollers; a connect that hangs is cut off by the connect timeout while the
//! runtime's other connections keep working; a delayed dial can be cancelled before it
//! starts; a `Dialer` outlives its `ServerHandle` and then refuses; a shutdown fails the
//! dials still connecting. Loopback only: a listener whose accept queue is full drops
//! SYNs, which makes a connect hang without leaving the machine.

mod common;

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use netloop::{Conn, ConnHandle, Handler, Server};

/// Sends "hello" on connect, reports the echo and how it ended.
struct Client {
    events: mpsc::Sender<String>,
}

impl Handler for Client {
    type State = ();
    fn on_connect(&self, conn: &mut Conn) {
        conn.output().write(b"hello");
    }
    fn on_request(&self, _: &mut (), conn: &mut Conn) {
        if conn.input().len() < 5 {
            return conn.input().want(5);
        }
        let got = conn.input().next(5);
        let _ = self.events.send(String::from_utf8_lossy(&got).into_owned());
    }
    fn on_connect_failed(&self, _: &ConnHandle, error: &io::Error) {
        let _ = self.events.send(format!("failed: {:?}", error.kind()));
    }
}

/// A listener that accepts nothing, with its accept queue full: further SYNs are
/// dropped, so a connect to it hangs until its timeout. Returns the listener and the
/// connections that fill its queue (keep both alive).
fn black_hole() -> (socket2::Socket, SocketAddr, Vec<TcpStream>) {
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fill = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fill.push(s),
            Err(_) => return (listener, addr, fill), // the queue is full now
        }
    }
    panic!("the accept queue of a listen(0) socket never filled");
}

#[test]
fn a_host_name_is_resolved_and_each_address_tried() {
    for mode in modes() {
        let server = serve(mode, 1, echo());
        let port = addr(&server).port();
        let client = Server::builder().pollers(1).dispatch(mode).start().unwrap();
        let (tx, rx) = mpsc::channel();
        // "localhost" may resolve to ::1 first, where nothing listens: the next address
        // is tried within the same dial.
        let handle = client
            .dialer()
            .dial(format!("localhost:{port}"), Client { events: tx })
            .unwrap();
        handle.wait_open(PATIENCE).unwrap();
        assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), "hello", "{mode:?}");
        assert_eq!(
            handle
                .peer_addr()
                .and_then(|a| a.as_tcp())
                .map(|a| a.port()),
            Some(port)
        );
        assert!(handle.local_addr().is_some());
        client.shutdown(PATIENCE);
        server.shutdown(PATIENCE);
    }
}

#[test]
fn a_hanging_connect_times_out_while_the_runtime_keeps_serving_its_other_connections() {
    let (_listener, hole, _fill) = black_hole();
    for mode in modes() {
        let server = serve(mode, 1, echo());
        let client = Server::builder().pollers(1).dispatch(mode).start().unwrap();
        let (tx, rx) = mpsc::channel();
        let dialer = client.dialer().connect_timeout(Duration::from_millis(300));
        let hanging = dialer.dial(hole, Client { events: tx.clone() }).unwrap();
        // The dial returned at once: it is still connecting.
        assert!(!hanging.is_closed());
        // Meanwhile, on the same poller, another connection works.
        let working = dialer.dial(addr(&server), Client { events: tx }).unwrap();
        working.wait_open(PATIENCE).unwrap();
        let mut events = vec![
            rx.recv_timeout(PATIENCE).unwrap(),
            rx.recv_timeout(PATIENCE).unwrap(),
        ];
        events.sort();
        assert_eq!(events, ["failed: TimedOut", "hello"], "{mode:?}");
        let err = hanging.wait_open(PATIENCE).unwrap_err();
        assert!(
            matches!(&err, netloop::Error::Io(e) if e.kind() == io::ErrorKind::TimedOut),
            "{err:?}"
        );
        assert_eq!(client.stats().connect_failed, 1);
        client.shutdown(PATIENCE);
        server.shutdown(PATIENCE);
    }
}

#[test]
fn a_delayed_dial_closed_before_it_starts_never_connects() {
    let server = serve(netloop::Dispatch::Inline, 1, echo());
    let client = Server::builder().pollers(1).start().unwrap();
    let (tx, rx) = mpsc::channel();
    let later = client
        .dialer()
        .delay(Duration::from_secs(60))
        .dial(addr(&server), Client { events: tx.clone() })
        .unwrap();
    later.close().unwrap();
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap(),
        "failed: ConnectionAborted"
    );
    assert!(later.is_closed());
    // A short delay connects as usual.
    let soon = client
        .dialer()
        .delay(Duration::from_millis(20))
        .dial(addr(&server), Client { events: tx })
        .unwrap();
    soon.wait_open(PATIENCE).unwrap();
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), "hello");
    assert_eq!(
        server.stats().accepted,
        1,
        "the cancelled dial never reached the server"
    );
    client.shutdown(PATIENCE);
    server.shutdown(PATIENCE);
}

#[test]
fn a_dialer_outlives_its_runtime_and_a_shutdown_fails_the_dials_still_connecting() {
    let (_listener, hole, _fill) = black_hole();
    let client = Server::builder().pollers(2).start().unwrap();
    let dialer = client.dialer().connect_timeout(Duration::from_secs(60));
    let (tx, rx) = mpsc::channel();
    let pending: Vec<_> = (0..4)
        .map(|_| dialer.dial(hole, Client { events: tx.clone() }).unwrap())
        .collect();
    let report = client.shutdown(PATIENCE);
    assert_eq!(report.idle_closed, 4, "{report:?}");
    for _ in 0..4 {
        assert_eq!(
            rx.recv_timeout(PATIENCE).unwrap(),
            "failed: ConnectionAborted"
        );
    }
    assert!(pending.iter().all(|h| h.is_closed()));
    drop(client);
    let err = dialer.dial(hole, Client { events: tx }).unwrap_err();
    assert!(matches!(err, netloop::Error::ShuttingDown), "{err:?}");
    assert!(dialer.dial("not an address", echo()).is_err());
}
