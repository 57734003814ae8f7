//! Unix domain socket and IPv6 listeners, several listeners on one server, and dialing
//! out to a local server on the same loop.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use netloop::{handler_fn, Addr, CloseReason, Conn, Handler, Server};

#[test]
fn one_server_listens_on_ipv4_ipv6_and_a_unix_socket() {
    let dir = std::env::temp_dir().join(format!("netloop-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .listen("[::1]:0")
        .listen(Addr::unix(&path))
        .pollers(2)
        .serve(echo())
        .unwrap();
    let addrs = server.local_addrs().to_vec();
    assert_eq!(addrs.len(), 3);
    let v4 = addrs[0].as_tcp().unwrap();
    let v6 = addrs[1].as_tcp().unwrap();
    assert!(
        v4.port() != 0 && v6.port() != 0,
        "port 0 resolved: {addrs:?}"
    );
    assert!(v6.is_ipv6());
    assert_eq!(addrs[2], Addr::unix(&path));

    for a in [v4, v6] {
        let mut s = connect(a);
        assert_eq!(round_trip(&mut s, b"over tcp"), b"over tcp");
    }
    let mut u = UnixStream::connect(&path).unwrap();
    u.set_read_timeout(Some(PATIENCE)).unwrap();
    u.write_all(b"over unix").unwrap();
    let mut got = [0u8; 9];
    u.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"over unix");
    drop(u);
    server.shutdown(PATIENCE);
    assert!(!path.exists(), "the socket file is removed at shutdown");
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn binding_a_busy_address_is_a_clear_error() {
    let first = serve(netloop::Dispatch::Inline, 1, echo());
    let taken = addr(&first);
    let err = Server::builder().listen(taken).serve(echo()).unwrap_err();
    assert!(matches!(err, netloop::Error::Bind { .. }), "{err:?}");
    assert!(err.to_string().contains(&taken.to_string()), "{err}");
    let err = Server::builder()
        .listen("nonsense")
        .serve(echo())
        .unwrap_err();
    assert!(err.to_string().contains("nonsense"), "{err}");
    let err = Server::builder().serve(echo()).unwrap_err();
    assert!(err.to_string().contains("no listener"), "{err}");
    first.shutdown(PATIENCE);
}

/// A client handler: sends a greeting on connect, reports what comes back and how the
/// connection ended.
struct Client {
    events: mpsc::Sender<String>,
}

impl Handler for Client {
    type State = ();
    fn on_connect(&self, conn: &mut Conn) {
        conn.output().write(b"ping from dialer");
    }
    fn on_request(&self, _: &mut (), conn: &mut Conn) {
        let input = conn.input();
        if input.len() < 16 {
            input.want(16);
            return;
        }
        let got = input.next(16);
        let _ = self.events.send(String::from_utf8_lossy(&got).into_owned());
        conn.close();
    }
    fn on_close(&self, _: (), reason: CloseReason) {
        let _ = self.events.send(format!("closed:{reason:?}"));
    }
    fn on_connect_failed(&self, _: &netloop::ConnHandle, error: &std::io::Error) {
        let _ = self.events.send(format!("failed:{:?}", error.kind()));
    }
}

#[test]
fn dial_connects_to_a_local_server_with_the_same_handler_api() {
    for mode in modes() {
        let server = serve(mode, 1, echo());
        let target = addr(&server);
        let client_loop = Server::builder().pollers(1).dispatch(mode).start().unwrap();
        let (tx, rx) = mpsc::channel();
        let handle = client_loop
            .dial(target, Duration::from_secs(5), Client { events: tx })
            .unwrap();
        assert_eq!(handle.peer_addr(), Some(&Addr::Tcp(target)));
        assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), "ping from dialer");
        assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), "closed:Local");
        assert!(eventually(|| handle.is_closed()));
        client_loop.shutdown(PATIENCE);
        server.shutdown(PATIENCE);
    }
}

#[test]
fn dial_to_a_closed_port_fails_and_dial_after_shutdown_is_refused() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = probe.local_addr().unwrap();
    drop(probe);
    let client_loop = Server::builder().pollers(1).start().unwrap();
    let (tx, rx) = mpsc::channel();
    // The dial itself never blocks: the refusal reaches the handler and the handle.
    let handle = client_loop
        .dial(dead, Duration::from_secs(5), Client { events: tx.clone() })
        .unwrap();
    let err = handle.wait_open(PATIENCE).unwrap_err();
    assert!(
        matches!(&err, netloop::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{err:?}"
    );
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap(),
        "failed:ConnectionRefused"
    );
    assert!(handle.is_closed());
    assert_eq!(client_loop.stats().connect_failed, 1);
    client_loop.shutdown(Duration::ZERO);
    let err = client_loop
        .dial(dead, Duration::from_secs(5), Client { events: tx })
        .unwrap_err();
    assert!(matches!(err, netloop::Error::ShuttingDown), "{err:?}");
    let _ = handler_fn(|_| {});
}
