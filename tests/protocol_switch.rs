//! A connection changes the handler that drives it in place: the bytes already buffered
//! go to the new handler at once, the new handler gets every later callback (on_close
//! and on_disconnect included), the old one's on_close never runs. HTTP's upgrade hook
//! uses it: 101 and switch, decline to the service, or refuse with a status.

mod common;

use std::io::{Read, Write};
use std::sync::{mpsc, Arc};

use common::*;
#[cfg(feature = "http")]
use netloop::http::{switching_protocols, Http, Request, Response, Upgrade};
use netloop::{CloseReason, Conn, ConnHandle, Handler};

/// What the handlers saw, in order.
type Log = mpsc::Sender<String>;

/// After the switch: echoes, and logs how it ends.
struct Raw {
    log: Log,
}

impl Handler for Raw {
    type State = &'static str;
    fn on_connect(&self, _: &mut Conn) -> &'static str {
        unreachable!("a switched-to handler starts from the state it was given")
    }
    fn on_request(&self, tag: &mut &'static str, conn: &mut Conn) {
        let n = conn.input().len();
        let data = conn.input().next(n);
        conn.output().write(tag.as_bytes());
        conn.output().write_bytes(data);
    }
    fn on_disconnect(&self, _: &ConnHandle) {
        let _ = self.log.send("raw: disconnect".into());
    }
    fn on_close(&self, tag: &'static str, reason: CloseReason) {
        let _ = self.log.send(format!("raw {tag}: {reason:?}"));
    }
}

/// Before the switch: answers lines with "OK <line>" until "SWITCH".
struct Lines {
    raw: Arc<Raw>,
    log: Log,
}

impl Handler for Lines {
    type State = ();
    fn on_connect(&self, _: &mut Conn) {}
    fn on_request(&self, _: &mut (), conn: &mut Conn) {
        while let Some(line) = conn.input().until(b"\n") {
            if &line[..] == b"SWITCH\n" {
                conn.output().write(b"SWITCHING\n");
                conn.switch_to(self.raw.clone(), "raw:");
                assert!(conn.is_switching());
                return;
            }
            conn.output().write(b"OK ");
            conn.output().write_bytes(line);
        }
    }
    fn on_disconnect(&self, _: &ConnHandle) {
        let _ = self.log.send("lines: disconnect".into());
    }
    fn on_close(&self, _: (), reason: CloseReason) {
        let _ = self.log.send(format!("lines: {reason:?}"));
    }
}

#[test]
fn a_switch_keeps_the_buffered_bytes_and_hands_over_every_later_callback() {
    for mode in modes() {
        let (tx, log) = mpsc::channel();
        let raw = Arc::new(Raw { log: tx.clone() });
        let server = serve(mode, 1, Lines { raw, log: tx });
        let mut s = connect(addr(&server));
        // The line, the switch and raw bytes after it, all in one write: the raw bytes
        // are already buffered when the switch happens.
        s.write_all(b"a\nSWITCH\nraw bytes").unwrap();
        let want = b"OK a\nSWITCHING\nraw:raw bytes";
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, want, "{mode:?}");
        assert_eq!(round_trip_tagged(&mut s, b"more"), b"raw:more");
        drop(s);
        assert_eq!(log.recv_timeout(PATIENCE).unwrap(), "raw: disconnect");
        assert_eq!(log.recv_timeout(PATIENCE).unwrap(), "raw raw:: PeerClosed");
        server.shutdown(PATIENCE);
        assert!(
            log.try_recv().is_err(),
            "the old handler heard nothing more"
        );
    }
}

fn round_trip_tagged(s: &mut std::net::TcpStream, data: &[u8]) -> Vec<u8> {
    s.write_all(data).unwrap();
    let mut got = vec![0u8; data.len() + 4];
    s.read_exact(&mut got).unwrap();
    got
}

#[cfg(feature = "http")]
fn upgrading_http(log: Log) -> impl Handler {
    let raw = Arc::new(Raw { log });
    Http::new(|req: &Request, res: &mut Response<'_>| {
        res.body(format!("served {}", req.path()).as_bytes());
    })
    .on_upgrade(move |req, conn| match req.header("upgrade") {
        Some(b"raw") => {
            switching_protocols(
                conn.output(),
                &[("Upgrade", "raw"), ("Connection", "Upgrade")],
            );
            conn.switch_to(raw.clone(), "");
            Upgrade::Switched
        }
        Some(b"forbidden") => Upgrade::Refused {
            status: 426,
            reason: "Upgrade Required",
            headers: &[("Sec-WebSocket-Version", "13")],
        },
        _ => Upgrade::Declined,
    })
}

#[cfg(feature = "http")]
/// Reads one HTTP response whose body length is given by Content-Length.
fn read_response(s: &mut std::net::TcpStream) -> (String, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (head, body)
}

#[cfg(feature = "http")]
#[test]
fn http_upgrades_in_place_and_the_bytes_after_the_request_reach_the_new_protocol() {
    for mode in modes() {
        let (tx, log) = mpsc::channel();
        let server = serve(mode, 1, upgrading_http(tx));
        let mut s = connect(addr(&server));
        // A plain request first: the same connection is an ordinary HTTP one until then.
        s.write_all(b"GET /before HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (head, body) = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, b"served /before");
        s.write_all(
            b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: raw\r\n\r\nearly",
        )
        .unwrap();
        let want: &[u8] =
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\nearly";
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            "{mode:?}"
        );
        // What looks like HTTP now is just bytes to the new protocol.
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut echoed = vec![0u8; 18];
        s.read_exact(&mut echoed).unwrap();
        assert_eq!(echoed, b"GET / HTTP/1.1\r\n\r\n");
        drop(s);
        assert_eq!(log.recv_timeout(PATIENCE).unwrap(), "raw: disconnect");
        assert_eq!(log.recv_timeout(PATIENCE).unwrap(), "raw : PeerClosed");
        server.shutdown(PATIENCE);
    }
}

#[cfg(feature = "http")]
#[test]
fn a_declined_upgrade_is_served_and_a_refused_one_is_answered_and_closed() {
    for mode in modes() {
        let (tx, _log) = mpsc::channel();
        let server = serve(mode, 1, upgrading_http(tx));
        let mut s = connect(addr(&server));
        s.write_all(
            b"GET /plain HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
        )
        .unwrap();
        let (head, body) = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, b"served /plain", "{mode:?}");

        let mut s = connect(addr(&server));
        s.write_all(
            b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: forbidden\r\n\r\n",
        )
        .unwrap();
        let all = String::from_utf8(read_to_close(&mut s)).unwrap();
        assert!(
            all.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{all}"
        );
        assert!(all.contains("Connection: close"), "{all}");
        assert!(all.contains("Sec-WebSocket-Version: 13\r\n"), "{all}");
        server.shutdown(PATIENCE);
    }
}
