//! `wss://`: netloop's WebSocket server behind `Builder::tls`, and its client engine
//! speaking TLS to it (echo with permessage-deflate, a server restart, certificates that
//! do not verify).

mod common;

use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::tls::Pki;
use netloop::ws::client::{Backoff, Client, EngineError};
use netloop::ws::{self, Closed, DeflateConfig, Message, WsConn, WsHandler};
use netloop::{Bytes, Server, ServerHandle};

const WAIT: Duration = Duration::from_secs(10);

/// Echoes every message; reports each close code.
struct Echo(mpsc::Sender<u16>);

impl WsHandler for Echo {
    type State = ();
    fn on_open(&self, ws: &mut WsConn<'_>, _req: &netloop::http::Request) {
        assert!(
            ws.deflate().is_some(),
            "the client offered permessage-deflate"
        );
    }
    fn on_message(&self, _: &mut (), ws: &mut WsConn<'_>, msg: Message) {
        ws.send(msg);
    }
    fn on_close(&self, _: (), closed: Closed) {
        let _ = self.0.send(closed.code);
    }
}

fn wss_server(pki: &Pki, addr: &str, closes: mpsc::Sender<u16>) -> ServerHandle {
    Server::builder()
        .listen(addr)
        .pollers(1)
        .tls(pki.server())
        .serve(ws::server(
            Echo(closes),
            ws::Config::default().deflate(DeflateConfig::default()),
        ))
        .unwrap()
}

#[test]
fn the_client_engine_echoes_over_wss_and_reconnects_after_a_server_restart() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let (closes_tx, closes) = mpsc::channel();
    let server = wss_server(&pki, "127.0.0.1:0", closes_tx.clone());
    let addr = server.local_addrs()[0].as_tcp().unwrap();
    let client = Client::start().unwrap();
    let (tx, rx) = mpsc::channel();
    let (opened_tx, opened) = mpsc::channel();
    let engine = client
        .engine(format!("wss://127.0.0.1:{}/echo", addr.port()))
        .tls(pki.client())
        .deflate(DeflateConfig::default())
        .backoff(
            Backoff::default()
                .min(Duration::from_millis(5))
                .max(Duration::from_millis(50)),
        )
        .on_open(move |_, restart| {
            let _ = opened_tx.send(restart);
        })
        .on_message(move |_, msg| {
            let _ = tx.send(msg);
        })
        .start(WAIT)
        .expect("the wss session opens");
    assert!(
        !opened.recv_timeout(WAIT).unwrap(),
        "the first open is not a restart"
    );

    // Small and large messages (the large one spans many TLS records), in order.
    let big: Bytes = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    for i in 0..50 {
        engine.handle().send_text(&format!("message {i}")).unwrap();
    }
    engine.handle().send_binary(big.clone()).unwrap();
    for i in 0..50 {
        match rx.recv_timeout(WAIT).unwrap() {
            Message::Text(t) => assert_eq!(t.as_str(), format!("message {i}")),
            other => panic!("{other:?}"),
        }
    }
    match rx.recv_timeout(WAIT).unwrap() {
        Message::Binary(b) => assert!(b == big, "the large message came back changed"),
        other => panic!("{other:?}"),
    }

    // The server goes away and comes back on the same port: the engine reopens, again
    // over TLS.
    server.shutdown(WAIT);
    let server = wss_server(&pki, &addr.to_string(), closes_tx);
    assert!(opened.recv_timeout(WAIT).unwrap(), "reopened as a restart");
    engine.handle().send_text("after the restart").unwrap();
    match rx.recv_timeout(WAIT).unwrap() {
        Message::Text(t) => assert_eq!(t.as_str(), "after the restart"),
        other => panic!("{other:?}"),
    }
    engine.stop(WAIT).unwrap();
    // The closing handshake ran over TLS: the server saw the default 1000.
    let mut codes = Vec::new();
    while let Ok(code) = closes.recv_timeout(WAIT) {
        codes.push(code);
        if codes.len() == 2 {
            break;
        }
    }
    assert_eq!(codes.last(), Some(&1000), "{codes:?}");
    server.shutdown(WAIT);
}

#[test]
fn a_certificate_the_engine_cannot_verify_fails_the_start_with_rustls_reason() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let stranger = Pki::new(&["localhost"]);
    let server = wss_server(&pki, "127.0.0.1:0", mpsc::channel().0);
    let port = server.local_addrs()[0].as_tcp().unwrap().port();
    // The same certificate on ::1, an address it is not valid for.
    let v6 = wss_server(&pki, "[::1]:0", mpsc::channel().0);
    let v6_port = v6.local_addrs()[0].as_tcp().unwrap().port();
    let client = Client::start().unwrap();
    let cases = [
        // Another CA's roots.
        (
            format!("wss://127.0.0.1:{port}/"),
            Some(stranger.client()),
            "UnknownIssuer",
        ),
        // The right CA, the wrong name.
        (
            format!("wss://[::1]:{v6_port}/"),
            Some(pki.client()),
            "not valid for name",
        ),
        // No roots given: the system's, which do not include the test CA.
        (format!("wss://127.0.0.1:{port}/"), None, "UnknownIssuer"),
    ];
    for (url, tls, expected) in cases {
        let mut builder = client.engine(&url).on_message(|_, _| {});
        if let Some(config) = tls {
            builder = builder.tls(config);
        }
        match builder.start(WAIT).unwrap_err() {
            EngineError::Connect(e) => assert!(e.to_string().contains(expected), "{url}: {e}"),
            // A machine without any system roots refuses before dialing, and says so.
            EngineError::Tls(why) if tls_is_none(&url, port) => {
                assert!(why.contains("system trust roots"), "{why}")
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    v6.shutdown(WAIT);
    server.shutdown(WAIT);
}

/// The third case (no roots given) is the only one that may fail before dialing.
fn tls_is_none(url: &str, port: u16) -> bool {
    url == format!("wss://127.0.0.1:{port}/")
}

#[test]
fn https_and_wss_share_one_tls_listener() {
    let pki = Pki::new(&["127.0.0.1"]);
    let (closes_tx, _closes) = mpsc::channel();
    let server = wss_server(&pki, "127.0.0.1:0", closes_tx);
    let port = server.local_addrs()[0].as_tcp().unwrap().port();
    // A plain HTTPS request to the WebSocket endpoint gets the layer's HTTP answer.
    let out = std::process::Command::new("curl")
        .args(["--silent", "--max-time", "20", "--cacert"])
        .arg(&pki.ca)
        .args(["--write-out", "%{http_code}", "--output", "/dev/null"])
        .arg(format!("https://127.0.0.1:{port}/"))
        .output()
        .expect("curl runs (.ci/run installs it)");
    let code = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(code.starts_with('4'), "not a WebSocket request: {code}");
    let client = Client::start().unwrap();
    let engine = client
        .engine(format!("wss://127.0.0.1:{port}/"))
        .tls(Arc::clone(&pki.client()))
        .deflate(DeflateConfig::default())
        .on_message(|_, _| {})
        .start(WAIT)
        .unwrap();
    engine.stop(WAIT).unwrap();
    server.shutdown(WAIT);
}
