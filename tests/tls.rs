//! TLS through the transport seam: a server with `Builder::tls` against a blocking rustls
//! client, curl and `openssl s_client`; netloop's own TLS dials; peers that send garbage,
//! stop half-way, stall, or keep sending after `close_notify`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::tls::Pki;
use common::*;
use netloop::tls::rustls;
use netloop::{handler_fn, CloseReason, Conn, ConnHandle, Dispatch, Handler, Server, ServerHandle};

/// What a TLS echo server saw: each connection's negotiated session and how it closed.
#[derive(Default)]
struct Seen {
    sessions: Mutex<Vec<netloop::tls::TlsInfo>>,
    closed: Mutex<Vec<CloseReason>>,
}

/// Echoes plaintext, records the TLS session at `on_connect` and the close reason.
struct TlsEcho(Arc<Seen>);

impl Handler for TlsEcho {
    type State = ();
    fn on_connect(&self, conn: &mut Conn) {
        let info = conn
            .tls()
            .expect("a TLS connection has its session")
            .clone();
        self.0.sessions.lock().unwrap().push(info);
    }
    fn on_request(&self, _: &mut (), conn: &mut Conn) {
        let n = conn.input().len();
        let data = conn.input().next(n);
        conn.output().write_bytes(data);
    }
    fn on_close(&self, _: (), reason: CloseReason) {
        self.0.closed.lock().unwrap().push(reason);
    }
}

fn tls_server(
    pki: &Pki,
    dispatch: Dispatch,
    configure: impl FnOnce(&mut rustls::ServerConfig),
) -> (ServerHandle, Arc<Seen>) {
    let mut config = pki.server();
    configure(&mut config);
    let seen = Arc::new(Seen::default());
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .dispatch(dispatch)
        .handshake_timeout(Duration::from_secs(5))
        .tls(config)
        .serve(TlsEcho(seen.clone()))
        .unwrap();
    (server, seen)
}

/// A blocking rustls client (not netloop's): the server is checked against rustls'
/// own stream.
fn rustls_client(
    pki: &Pki,
    addr: SocketAddr,
    name: &str,
    alpn: &[&[u8]],
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut config = netloop::tls::client_config(netloop::tls::roots_from_pem(&pki.ca).unwrap());
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let session = rustls::ClientConnection::new(
        Arc::new(config),
        rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap(),
    )
    .unwrap();
    rustls::StreamOwned::new(session, connect(addr))
}

#[test]
fn echo_over_tls_with_a_rustls_client_shows_sni_alpn_and_version_to_the_handler() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    for mode in modes() {
        let (server, seen) = tls_server(&pki, mode, |c| {
            c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        });
        let mut client = rustls_client(&pki, addr(&server), "localhost", &[b"http/1.1"]);
        // Larger than a TLS record (16 KiB) and than one read: records split and join.
        let data = payload(300_000, 7);
        client.write_all(&data).unwrap();
        let mut got = vec![0u8; data.len()];
        client.read_exact(&mut got).unwrap();
        assert!(got == data, "the echo differs ({mode:?})");

        let sessions = seen.sessions.lock().unwrap().clone();
        assert_eq!(sessions.len(), 1);
        let info = &sessions[0];
        assert_eq!(info.server_name.as_deref(), Some("localhost"));
        assert_eq!(info.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(info.version, Some(rustls::ProtocolVersion::TLSv1_3));
        assert!(info.cipher_suite.is_some());
        assert!(
            info.peer_certificates.is_empty(),
            "no client certificate was asked for"
        );

        // A clean close: the client's close_notify is end-of-file to the server.
        client.conn.send_close_notify();
        client.flush().unwrap();
        let mut rest = Vec::new();
        let end = client.read_to_end(&mut rest);
        assert!(
            end.is_ok(),
            "the server answered with close_notify: {end:?}"
        );
        assert!(eventually(|| seen.closed.lock().unwrap().len() == 1));
        assert_eq!(seen.closed.lock().unwrap()[0], CloseReason::PeerClosed);
        server.shutdown(PATIENCE);
    }
}

#[test]
fn tls12_is_served_too() {
    let pki = Pki::new(&["localhost"]);
    let (server, seen) = tls_server(&pki, Dispatch::Inline, |_| {});
    let config = rustls::ClientConfig::builder_with_provider(netloop::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(netloop::tls::roots_from_pem(&pki.ca).unwrap())
        .with_no_client_auth();
    let session = rustls::ClientConnection::new(
        Arc::new(config),
        rustls::pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut client = rustls::StreamOwned::new(session, connect(addr(&server)));
    client.write_all(b"over 1.2").unwrap();
    let mut got = [0u8; 8];
    client.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"over 1.2");
    assert_eq!(
        seen.sessions.lock().unwrap()[0].version,
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    server.shutdown(PATIENCE);
}

#[test]
fn a_local_close_sends_close_notify() {
    let pki = Pki::new(&["localhost"]);
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .tls(pki.server())
        .serve(handler_fn(|conn| {
            let n = conn.input().len();
            conn.input().skip(n);
            conn.output().write(b"bye");
            conn.close();
        }))
        .unwrap();
    let mut client = rustls_client(&pki, addr(&server), "localhost", &[]);
    client.write_all(b"x").unwrap();
    let mut got = Vec::new();
    // rustls reports a close without close_notify as UnexpectedEof.
    client
        .read_to_end(&mut got)
        .expect("closed with close_notify");
    assert_eq!(got, b"bye");
    server.shutdown(PATIENCE);
}

#[test]
fn plain_and_tls_listeners_on_one_server() {
    let pki = Pki::new(&["localhost"]);
    let seen = Arc::new(Seen::default());
    struct Either(TlsEcho);
    impl Handler for Either {
        type State = ();
        fn on_connect(&self, conn: &mut Conn) {
            if conn.tls().is_some() {
                self.0.on_connect(conn);
            }
        }
        fn on_request(&self, s: &mut (), conn: &mut Conn) {
            self.0.on_request(s, conn)
        }
    }
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .listen_tls("127.0.0.1:0", pki.server())
        .pollers(1)
        .serve(Either(TlsEcho(seen.clone())))
        .unwrap();
    let plain = server.local_addrs()[0].as_tcp().unwrap();
    let tls = server.local_addrs()[1].as_tcp().unwrap();
    assert_eq!(round_trip(&mut connect(plain), b"plain"), b"plain");
    let mut client = rustls_client(&pki, tls, "localhost", &[]);
    client.write_all(b"secret").unwrap();
    let mut got = [0u8; 6];
    client.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"secret");
    assert_eq!(seen.sessions.lock().unwrap().len(), 1);
    server.shutdown(PATIENCE);
}

#[test]
fn tls_and_a_custom_transport_together_are_a_config_error() {
    let pki = Pki::new(&["localhost"]);
    let err = Server::builder()
        .listen("127.0.0.1:0")
        .tls(pki.server())
        .transport(|_| Err(std::io::Error::other("unused")))
        .serve(echo())
        .unwrap_err();
    assert!(matches!(err, netloop::Error::Config(_)), "{err:?}");
}

/// What a dialing client saw.
struct Dialed {
    events: mpsc::Sender<String>,
}

impl Handler for Dialed {
    type State = ();
    fn on_connect(&self, conn: &mut Conn) {
        let version = conn.tls().and_then(|t| t.version);
        let _ = self.events.send(format!("open:{version:?}"));
        conn.output().write(b"hello over tls");
    }
    fn on_request(&self, _: &mut (), conn: &mut Conn) {
        let input = conn.input();
        if input.len() < 14 {
            input.want(14);
            return;
        }
        let got = input.next(14);
        let _ = self.events.send(String::from_utf8_lossy(&got).into_owned());
        conn.close();
    }
    fn on_close(&self, _: (), reason: CloseReason) {
        let _ = self.events.send(format!("closed:{reason:?}"));
    }
    fn on_connect_failed(&self, _: &ConnHandle, error: &std::io::Error) {
        let _ = self.events.send(format!("failed:{:?}", error.kind()));
    }
}

#[test]
fn a_tls_dial_echoes_and_closes_cleanly() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    for mode in modes() {
        let (server, seen) = tls_server(&pki, mode, |_| {});
        let runtime = Server::builder().pollers(1).dispatch(mode).start().unwrap();
        for name in ["localhost", "127.0.0.1"] {
            let (tx, rx) = mpsc::channel();
            let handle = runtime
                .dialer()
                .tls(pki.client(), name)
                .dial(addr(&server), Dialed { events: tx })
                .unwrap();
            assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), "open:Some(TLSv1_3)");
            assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), "hello over tls");
            assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), "closed:Local");
            assert!(eventually(|| handle.is_closed()));
            assert_eq!(handle.transport_error(), None);
        }
        // The client's close_notify reached the server as end-of-file.
        assert!(eventually(|| seen.closed.lock().unwrap().len() == 2));
        assert!(seen
            .closed
            .lock()
            .unwrap()
            .iter()
            .all(|r| *r == CloseReason::PeerClosed));
        runtime.shutdown(PATIENCE);
        server.shutdown(PATIENCE);
    }
}

#[test]
fn an_untrusted_certificate_or_a_wrong_name_is_a_clear_error() {
    let pki = Pki::new(&["localhost"]);
    let other_ca = Pki::new(&["localhost"]);
    let (server, seen) = tls_server(&pki, Dispatch::Inline, |_| {});
    let runtime = Server::builder().pollers(1).start().unwrap();
    let cases = [
        (other_ca.client(), "localhost", "UnknownIssuer"),
        (pki.client(), "example.com", "not valid for name"),
    ];
    for (config, name, expected) in cases {
        let (tx, rx) = mpsc::channel();
        let handle = runtime
            .dialer()
            .tls(config, name)
            .dial(addr(&server), Dialed { events: tx })
            .unwrap();
        // The dial never opened: on_connect_failed, with rustls' words for why.
        assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), "failed:InvalidData");
        let why = handle.transport_error().expect("the reason is published");
        assert!(why.contains(expected), "{name}: {why}");
    }
    // The server got the client's alert: both handshakes failed (counted; no handler
    // callback runs for a connection that never opened).
    assert!(eventually(|| server.stats().closed.error == 2));
    assert!(seen.sessions.lock().unwrap().is_empty());
    assert!(seen.closed.lock().unwrap().is_empty());
    // A server name that is no name at all fails the dial itself.
    let (tx, rx) = mpsc::channel();
    runtime
        .dialer()
        .tls(pki.client(), "not a host name!")
        .dial(addr(&server), Dialed { events: tx })
        .unwrap();
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), "failed:InvalidInput");
    // A handshake the server never answers times out as a failed dial.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let quick = Server::builder()
        .pollers(1)
        .handshake_timeout(Duration::from_millis(200))
        .start()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    quick
        .dialer()
        .tls(pki.client(), "localhost")
        .dial(silent.local_addr().unwrap(), Dialed { events: tx })
        .unwrap();
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), "failed:TimedOut");
    quick.shutdown(PATIENCE);
    runtime.shutdown(PATIENCE);
    server.shutdown(PATIENCE);
}

#[test]
fn garbage_instead_of_a_client_hello_gets_an_alert_and_a_close() {
    let pki = Pki::new(&["localhost"]);
    let (server, seen) = tls_server(&pki, Dispatch::Inline, |_| {});
    let mut s = connect(addr(&server));
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let got = read_to_close(&mut s);
    // A TLS alert record (content type 21), and then the close.
    assert_eq!(got.first(), Some(&21), "{got:?}");
    assert!(eventually(|| server.stats().closed.error == 1));
    assert!(seen.sessions.lock().unwrap().is_empty());
    assert!(
        seen.closed.lock().unwrap().is_empty(),
        "no handler callback ran"
    );
    server.shutdown(PATIENCE);
}

/// The first bytes a rustls client sends: its ClientHello record.
fn client_hello(pki: &Pki) -> Vec<u8> {
    let mut session = rustls::ClientConnection::new(
        pki.client(),
        rustls::pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut hello = Vec::new();
    session.write_tls(&mut hello).unwrap();
    hello
}

#[test]
fn a_truncated_handshake_then_a_hang_up_never_reaches_the_handler() {
    let pki = Pki::new(&["localhost"]);
    let (server, seen) = tls_server(&pki, Dispatch::Inline, |_| {});
    let hello = client_hello(&pki);
    let mut s = connect(addr(&server));
    s.write_all(&hello[..hello.len() / 2]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut s), b"", "no answer to half a hello");
    assert!(eventually(|| server.stats().closed.peer_closed == 1));
    assert!(seen.sessions.lock().unwrap().is_empty());
    assert!(
        seen.closed.lock().unwrap().is_empty(),
        "no handler callback ran"
    );
    server.shutdown(PATIENCE);
}

#[test]
fn a_stalled_handshake_times_out() {
    let pki = Pki::new(&["localhost"]);
    let seen = Arc::new(Seen::default());
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .handshake_timeout(Duration::from_millis(200))
        .tls(pki.server())
        .serve(TlsEcho(seen.clone()))
        .unwrap();
    let hello = client_hello(&pki);
    for sent in [0, hello.len() / 2, hello.len()] {
        let mut s = connect(addr(&server));
        // Nothing, half a ClientHello, or all of it and then never the Finished.
        s.write_all(&hello[..sent]).unwrap();
        let _ = read_to_close(&mut s);
    }
    assert!(eventually(|| server.stats().closed.handshake_timeout == 3));
    assert!(seen.sessions.lock().unwrap().is_empty());
    assert!(
        seen.closed.lock().unwrap().is_empty(),
        "no handler callback ran"
    );
    server.shutdown(PATIENCE);
}

#[test]
fn records_after_close_notify_are_not_read() {
    let pki = Pki::new(&["localhost"]);
    let (server, seen) = tls_server(&pki, Dispatch::Inline, |_| {});
    let mut client = rustls_client(&pki, addr(&server), "localhost", &[]);
    client.write_all(b"before").unwrap();
    let mut got = [0u8; 6];
    client.read_exact(&mut got).unwrap();
    // close_notify, then more bytes on the same socket: application-data records of an
    // earlier connection's shape would do; garbage is the harsher case.
    client.conn.send_close_notify();
    client.flush().unwrap();
    // The server may have closed already (it answered close_notify): then the writes
    // fail, which is fine; what matters is that nothing of them is read.
    let _ = client.sock.write_all(&[23, 3, 3, 0, 5, 1, 2, 3, 4, 5]);
    let _ = client.sock.write_all(b"not TLS at all");
    let mut rest = Vec::new();
    assert!(
        client.read_to_end(&mut rest).is_ok(),
        "closed with close_notify"
    );
    assert!(
        rest.is_empty(),
        "nothing after close_notify was echoed: {rest:?}"
    );
    assert!(eventually(|| seen.closed.lock().unwrap().len() == 1));
    assert_eq!(seen.closed.lock().unwrap()[0], CloseReason::PeerClosed);
    server.shutdown(PATIENCE);
}

/// Runs a command with `input` on stdin; its stdout and whether it succeeded. Bounded
/// by the test's own timeouts (the server closes).
fn run(cmd: &mut Command, input: &[u8]) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (.ci/run installs curl and openssl)"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An HTTPS server: the HTTP layer over TLS, unchanged.
fn https_server(pki: &Pki) -> ServerHandle {
    let mut config = pki.server();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .tls(config)
        .serve(netloop::http::Http::new(
            |req: &netloop::http::Request, res: &mut netloop::http::Response<'_>| {
                let body = format!("{} {} over https\n", req.method(), req.path());
                res.header("content-type", "text/plain");
                res.body(body.as_bytes());
            },
        ))
        .unwrap()
}

#[test]
fn curl_gets_https_verifying_the_certificate() {
    let pki = Pki::new(&["localhost"]);
    let server = https_server(&pki);
    let port = addr(&server).port();
    let url = format!("https://localhost:{port}/hello");
    let (ok, out, err) = run(
        Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "20", "--cacert"])
            .arg(&pki.ca)
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .args([&url, &url]), // two requests, one kept-alive connection
        b"",
    );
    assert!(ok, "curl failed: {err}");
    assert_eq!(out, "GET /hello over https\nGET /hello over https\n");
    // Without the CA curl refuses the certificate.
    let (ok, _, err) = run(
        Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "20"])
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .arg(&url),
        b"",
    );
    assert!(!ok && err.contains("certificate"), "{err}");
    server.shutdown(PATIENCE);
}

/// Answers one line with itself and closes (with close_notify), so `s_client` ends.
struct LineOnce(Arc<Seen>);

impl Handler for LineOnce {
    type State = ();
    fn on_connect(&self, conn: &mut Conn) {
        TlsEcho(self.0.clone()).on_connect(conn);
    }
    fn on_request(&self, _: &mut (), conn: &mut Conn) {
        let Some(line) = conn.input().until(b"\n") else {
            return;
        };
        conn.output().write_bytes(line);
        conn.close();
    }
}

#[test]
fn openssl_s_client_verifies_and_echoes() {
    let pki = Pki::new(&["localhost"]);
    let seen = Arc::new(Seen::default());
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .tls(pki.server())
        .serve(LineOnce(seen.clone()))
        .unwrap();
    let port = addr(&server).port();
    for version in ["-tls1_3", "-tls1_2"] {
        let (ok, out, err) = run(
            Command::new("openssl")
                .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
                .args(["-servername", "localhost", "-verify_return_error", "-quiet"])
                .args(["-verify_hostname", "localhost", version, "-CAfile"])
                .arg(&pki.ca),
            b"echo me\n",
        );
        assert!(ok, "openssl s_client {version} failed: {err}");
        assert_eq!(out, "echo me\n", "{version}: {err}");
    }
    assert!(eventually(|| seen.sessions.lock().unwrap().len() == 2));
    let versions: Vec<_> = seen
        .sessions
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.version)
        .collect();
    assert_eq!(
        versions,
        [
            Some(rustls::ProtocolVersion::TLSv1_3),
            Some(rustls::ProtocolVersion::TLSv1_2)
        ]
    );
    server.shutdown(PATIENCE);
}

#[test]
fn bad_pem_files_are_clear_errors() {
    let pki = Pki::new(&["localhost"]);
    let missing = pki.dir.join("missing.pem");
    let err = netloop::tls::server_config(&missing, &pki.key).unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
    // A key file given as the certificate: no CERTIFICATE block.
    let err = netloop::tls::server_config(&pki.key, &pki.key).unwrap_err();
    assert!(
        matches!(err, netloop::tls::TlsError::NoCertificates(_)),
        "{err}"
    );
    // A certificate file given as the key.
    let err = netloop::tls::server_config(&pki.cert, &pki.cert).unwrap_err();
    assert!(err.to_string().contains("cert.pem"), "{err}");
    // A key that is not the certificate's.
    let other = Pki::new(&["localhost"]);
    let err = netloop::tls::server_config(&pki.cert, &other.key).unwrap_err();
    assert!(matches!(err, netloop::tls::TlsError::Rustls(_)), "{err}");
}

#[test]
fn client_certificates_are_verified_and_shown_to_the_handler() {
    use netloop::tls::{load_certs, load_private_key, provider, roots_from_pem};
    let pki = Pki::new(&["localhost"]);
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots_from_pem(&pki.ca).unwrap()),
        provider(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            load_certs(&pki.cert).unwrap(),
            load_private_key(&pki.key).unwrap(),
        )
        .unwrap();
    let seen = Arc::new(Seen::default());
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .tls(config)
        .serve(TlsEcho(seen.clone()))
        .unwrap();
    let runtime = Server::builder().pollers(1).start().unwrap();

    // With the certificate: served, and the handler sees it.
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots_from_pem(&pki.ca).unwrap())
        .with_client_auth_cert(
            load_certs(&pki.client_cert).unwrap(),
            load_private_key(&pki.client_key).unwrap(),
        )
        .unwrap();
    let (tx, rx) = mpsc::channel();
    runtime
        .dialer()
        .tls(client, "localhost")
        .dial(addr(&server), Dialed { events: tx })
        .unwrap();
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), "open:Some(TLSv1_3)");
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), "hello over tls");
    let sessions = seen.sessions.lock().unwrap().clone();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions[0].peer_certificates,
        load_certs(&pki.client_cert).unwrap(),
        "the handler sees the client's certificate"
    );

    // Without one: the server refuses the handshake.
    let (tx, rx) = mpsc::channel();
    let handle = runtime
        .dialer()
        .tls(pki.client(), "localhost")
        .dial(addr(&server), Dialed { events: tx })
        .unwrap();
    // TLS 1.3 clients finish before the server checks, so the refusal arrives as an
    // alert after the client opened, or fails the dial. A client that opened may also
    // lose the race with the server's close: its write then fails first.
    let mut events = Vec::new();
    while let Ok(e) = rx.recv_timeout(PATIENCE) {
        let end = e.starts_with("closed:") || e.starts_with("failed:");
        events.push(e);
        if end {
            break;
        }
    }
    let last = events.last().cloned().unwrap_or_default();
    if last.contains("InvalidData") {
        let why = handle.transport_error().unwrap_or_default().to_owned();
        assert!(
            why.contains("CertificateRequired") || why.contains("certificate"),
            "{why}"
        );
    } else {
        assert!(
            last.contains("BrokenPipe") || last.contains("ConnectionReset"),
            "{events:?}"
        );
    }
    // The server refused it either way: its handshake failed, nothing was served.
    assert!(eventually(|| server.stats().closed.error == 1));
    assert_eq!(seen.sessions.lock().unwrap().len(), 1, "never served");
    runtime.shutdown(PATIENCE);
    server.shutdown(PATIENCE);
}
