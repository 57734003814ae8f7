//! Serving on sockets bound elsewhere: an adopted listening socket serves and is
//! reported in builder order; a socket that is not listening is refused with a reason;
//! a Unix socket file the server did not create stays at shutdown; and after a handover
//! the drain serves a just-accepted connection instead of closing it as idle.

mod common;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::thread;
use std::time::Duration;

use common::*;
use netloop::{Addr, Error, Server};

#[test]
fn an_adopted_listener_serves_and_is_listed_in_builder_order() {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let adopted = socket.local_addr().unwrap();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .listen_fd(OwnedFd::from(socket))
        .pollers(2)
        .serve(echo())
        .unwrap();
    assert_eq!(server.local_addrs()[1], Addr::Tcp(adopted));
    let mut c = connect(adopted);
    assert_eq!(round_trip(&mut c, b"adopted"), b"adopted");
    let fds = server.listener_fds().unwrap();
    assert_eq!(fds.len(), 2);
    assert_eq!(fds[1].addr(), &Addr::Tcp(adopted));
}

#[test]
fn a_socket_that_is_not_listening_is_refused_with_the_reason() {
    let bound_only =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    bound_only
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    let cases: [(OwnedFd, &str); 3] = [
        (OwnedFd::from(bound_only), "not a listening socket"),
        (OwnedFd::from(udp), "not a stream socket"),
        (OwnedFd::from(file), "not a socket"),
    ];
    for (fd, why) in cases {
        let err = Server::builder().listen_fd(fd).serve(echo()).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
        assert!(err.to_string().contains(why), "{err} (expected: {why})");
    }
    let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = Server::builder()
        .listen_fds(vec![a.into(), b.into()])
        .serve(echo())
        .unwrap_err();
    assert!(err.to_string().contains("different addresses"), "{err}");
}

#[test]
fn a_unix_socket_file_the_server_did_not_create_stays() {
    let path = std::env::temp_dir().join(format!("netloop-adopted-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let server = Server::builder()
        .listen_fd(OwnedFd::from(listener))
        .serve(echo())
        .unwrap();
    assert_eq!(server.local_addrs()[0], Addr::unix(&path));
    let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
    c.write_all(b"unix").unwrap();
    let mut got = [0u8; 4];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"unix");
    server.shutdown(Duration::from_secs(1));
    assert!(path.exists(), "the file belongs to whoever bound it");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn after_a_handover_the_drain_serves_a_connection_not_yet_sent_anything() {
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .serve(echo())
        .unwrap();
    let a = addr(&server);
    // One connection that has been served (idle: closed at once when the drain
    // begins, which is how the test sees that it has begun) and one just accepted.
    let mut served = connect(a);
    assert_eq!(round_trip(&mut served, b"x"), b"x");
    let mut fresh = connect(a);
    assert!(eventually(|| server.stats().active == 2));
    // What a successor would get; dropped at once here, so the sockets close with the
    // server's own.
    drop(server.listener_fds().unwrap());
    let shutdown = thread::spawn(move || server.shutdown(PATIENCE));
    assert!(
        read_to_close(&mut served).is_empty(),
        "the idle one is closed"
    );
    assert_eq!(round_trip(&mut fresh, b"first request"), b"first request");
    let report = shutdown.join().unwrap();
    assert_eq!(
        (report.idle_closed, report.drained, report.forced),
        (1, 1, 0),
        "{report:?}"
    );
}
