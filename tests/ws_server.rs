//! The WebSocket server as a client sees it: echo of whole and fragmented messages with
//! control frames between, the closing handshake both ways and on its timeout, pings
//! with a pong deadline (a peer that stops answering, and one behind a black-holing
//! proxy), limits checked before buffering, sends from many threads that never
//! interleave, and a never-reading peer held to `max_backpressure` under each policy.
//! Both dispatch modes, both backends (via NETLOOP_BACKEND).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::ws::*;
use common::*;
use netloop::http::Request;
use netloop::ws::{
    self, Backpressure, Cause, Closed, Message, SendError, WsConn, WsHandle, WsHandler,
};
use netloop::{Bytes, Dispatch, Server};

/// Echoes, except: "close" makes the server close with 4000; "handle" publishes a
/// handle. Reports drops and how the connection ended.
struct Probe {
    closed: mpsc::Sender<Closed>,
    handles: Mutex<mpsc::Sender<WsHandle>>,
    dropped: Arc<AtomicU64>,
}

impl WsHandler for Probe {
    type State = ();
    fn on_open(&self, _ws: &mut WsConn<'_>, req: &Request) {
        assert_eq!(req.path(), "/echo");
    }
    fn on_message(&self, _: &mut (), ws: &mut WsConn<'_>, msg: Message) {
        match msg.as_bytes().as_ref() {
            b"close" => ws.close(4000, "asked to"),
            b"handle" => {
                let h = ws.handle();
                let _ = self.handles.lock().unwrap().send(h);
            }
            _ => {
                ws.send(msg);
            }
        }
    }
    fn on_dropped(&self, _: &mut (), _ws: &mut WsConn<'_>, count: u64) {
        self.dropped.fetch_add(count, Ordering::SeqCst);
    }
    fn on_close(&self, _: (), closed: Closed) {
        let _ = self.closed.send(closed);
    }
}

struct Fixture {
    server: netloop::ServerHandle,
    closed: mpsc::Receiver<Closed>,
    handles: mpsc::Receiver<WsHandle>,
    dropped: Arc<AtomicU64>,
}

fn serve_ws(mode: Dispatch, config: ws::Config) -> Fixture {
    serve_ws_with(mode, config, |b| b)
}

fn serve_ws_with(
    mode: Dispatch,
    config: ws::Config,
    builder: impl FnOnce(netloop::Builder) -> netloop::Builder,
) -> Fixture {
    let (closed_tx, closed) = mpsc::channel();
    let (handles_tx, handles) = mpsc::channel();
    let dropped = Arc::new(AtomicU64::new(0));
    let probe = Probe {
        closed: closed_tx,
        handles: Mutex::new(handles_tx),
        dropped: dropped.clone(),
    };
    let server = builder(
        Server::builder()
            .listen("127.0.0.1:0")
            .pollers(2)
            .dispatch(mode),
    )
    .serve(ws::server(probe, config))
    .unwrap();
    Fixture {
        server,
        closed,
        handles,
        dropped,
    }
}

#[test]
fn messages_whole_and_fragmented_echo_with_control_frames_between() {
    for mode in modes() {
        let f = serve_ws(mode, ws::Config::default());
        let (mut s, _) = ws_connect(addr(&f.server), "");
        send_frame(&mut s, true, TEXT, "héllo".as_bytes());
        assert_eq!(
            read_data_frame(&mut s),
            Frame {
                fin: true,
                rsv1: false,
                opcode: TEXT,
                payload: "héllo".into()
            }
        );
        let big = payload(70_000, 2);
        send_frame(&mut s, true, BINARY, &big);
        assert_eq!(
            read_data_frame(&mut s).payload,
            big,
            "{mode:?}: a 64-bit length"
        );
        // Three fragments with a ping between: the pong comes first, then the message.
        send_frame(&mut s, false, TEXT, b"frag");
        send_frame(&mut s, true, PING, b"are you there");
        send_frame(&mut s, false, CONTINUATION, b"men");
        send_frame(&mut s, true, CONTINUATION, b"ted");
        let pong = read_frame(&mut s).unwrap();
        assert_eq!(
            (pong.opcode, pong.payload.as_slice()),
            (PONG, &b"are you there"[..])
        );
        assert_eq!(read_data_frame(&mut s).payload, b"fragmented");
        // A client closes: the server answers with the same code and closes the socket.
        send_frame(&mut s, true, CLOSE, &close_payload(1000, "bye"));
        let answer = read_frame(&mut s).unwrap();
        assert_eq!(
            (answer.opcode, answer.payload),
            (CLOSE, 1000u16.to_be_bytes().to_vec())
        );
        assert_eq!(
            read_to_close(&mut s),
            b"",
            "then the server closes the socket"
        );
        let closed = f.closed.recv_timeout(PATIENCE).unwrap();
        assert_eq!(
            (
                closed.code,
                closed.reason.as_str(),
                closed.clean,
                closed.cause
            ),
            (1000, "bye", true, Cause::Peer)
        );
        f.server.shutdown(PATIENCE);
    }
}

#[test]
fn the_server_closes_with_a_handshake_and_gives_up_at_the_close_timeout() {
    for mode in modes() {
        let config = ws::Config::default().close_timeout(Duration::from_millis(200));
        let f = serve_ws(mode, config);
        // A client that answers.
        let (mut s, _) = ws_connect(addr(&f.server), "");
        send_frame(&mut s, true, TEXT, b"close");
        let c = read_data_frame(&mut s);
        assert_eq!(
            (c.opcode, c.payload),
            (CLOSE, close_payload(4000, "asked to"))
        );
        // Data after the server's Close is ignored; the answer ends it.
        send_frame(&mut s, true, TEXT, b"ignored");
        send_frame(&mut s, true, CLOSE, &close_payload(4000, ""));
        assert_eq!(read_to_close(&mut s), b"", "{mode:?}: no echo after Close");
        let closed = f.closed.recv_timeout(PATIENCE).unwrap();
        assert_eq!(
            (closed.code, closed.clean, closed.cause),
            (4000, true, Cause::Local)
        );
        // A client that never answers: cut off at the close timeout.
        let (mut s, _) = ws_connect(addr(&f.server), "");
        send_frame(&mut s, true, TEXT, b"close");
        assert_eq!(read_data_frame(&mut s).opcode, CLOSE);
        assert_eq!(read_to_close(&mut s), b"");
        let closed = f.closed.recv_timeout(PATIENCE).unwrap();
        assert_eq!(
            (closed.code, closed.clean, closed.cause),
            (4000, false, Cause::CloseTimeout)
        );
        f.server.shutdown(PATIENCE);
    }
}

#[test]
fn protocol_errors_fail_the_connection_with_their_code_and_limits_hold_before_buffering() {
    for mode in modes() {
        let config = ws::Config::default()
            .max_message_size(64 * 1024)
            .max_frame_size(64 * 1024);
        let f = serve_ws(mode, config);
        let a = addr(&f.server);
        // A 60,000-byte text frame with an invalid byte at 100, of which only the
        // first 300 bytes are sent: it fails as they arrive, not when the frame ends.
        let mut long_text = vec![b'a'; 60_000];
        long_text[100] = 0xff;
        let cases: [(Vec<u8>, u16); 5] = [
            (frame_bytes(true, TEXT, b"\xff\xfe"), 1007),
            (frame_bytes(true, TEXT, &long_text)[..300].to_vec(), 1007),
            (frame_bytes(true, 0x3, b"x"), 1002),
            (frame_bytes(true, CONTINUATION, b"x"), 1002),
            // Only the header of a 1 MiB frame: refused without waiting for its payload.
            (
                frame_bytes(true, BINARY, &vec![0; 1 << 20])[..14].to_vec(),
                1009,
            ),
        ];
        for (wire, code) in cases {
            let (mut s, _) = ws_connect(a, "");
            s.write_all(&wire).unwrap();
            let c = read_data_frame(&mut s);
            assert_eq!(c.opcode, CLOSE);
            assert_eq!(
                u16::from_be_bytes([c.payload[0], c.payload[1]]),
                code,
                "{mode:?}"
            );
            assert_eq!(read_to_close(&mut s), b"");
            let closed = f.closed.recv_timeout(PATIENCE).unwrap();
            assert_eq!((closed.code, closed.cause), (code, Cause::ProtocolError));
        }
        f.server.shutdown(PATIENCE);
    }
}

#[test]
fn a_peer_that_stops_answering_pings_is_closed_at_the_pong_deadline() {
    for mode in modes() {
        let config = ws::Config::default()
            .ping_interval(Some(Duration::from_millis(50)))
            .pong_timeout(Duration::from_millis(150));
        let f = serve_ws(mode, config);
        let (mut s, _) = ws_connect(addr(&f.server), "");
        // Answer three pings, then stop.
        for _ in 0..3 {
            let ping = read_frame(&mut s).unwrap();
            assert_eq!(ping.opcode, PING, "{mode:?}");
            send_frame(&mut s, true, PONG, &ping.payload);
        }
        assert!(
            f.closed.try_recv().is_err(),
            "{mode:?}: alive while it answers"
        );
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        let closed = f.closed.recv_timeout(PATIENCE).unwrap();
        assert_eq!(
            (closed.code, closed.cause),
            (1006, Cause::PongTimeout),
            "{mode:?}"
        );
        f.server.shutdown(PATIENCE);
    }
}

/// A TCP proxy to `target` that forwards both ways until `black_hole` is set, then
/// drops everything while keeping both connections open: a half-open peer, as a dead
/// link or a crashed host leaves it.
fn proxy(target: SocketAddr, black_hole: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        let server = TcpStream::connect(target).unwrap();
        for (mut from, mut to) in [
            (client.try_clone().unwrap(), server.try_clone().unwrap()),
            (server, client),
        ] {
            let black_hole = black_hole.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                from.set_read_timeout(Some(PATIENCE)).unwrap();
                while let Ok(n) = common::read_some(&mut from, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    if !black_hole.load(Ordering::SeqCst) && to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_half_open_peer_behind_a_black_hole_is_found_by_the_pings() {
    let config = ws::Config::default()
        .ping_interval(Some(Duration::from_millis(50)))
        .pong_timeout(Duration::from_millis(200));
    let f = serve_ws(Dispatch::Inline, config);
    let black_hole = Arc::new(AtomicBool::new(false));
    let via = proxy(addr(&f.server), black_hole.clone());
    let (mut s, _) = ws_connect(via, "");
    send_frame(&mut s, true, TEXT, b"through the proxy");
    assert_eq!(read_data_frame(&mut s).payload, b"through the proxy");
    // The link dies silently: no FIN, no RST, nothing comes back.
    black_hole.store(true, Ordering::SeqCst);
    let closed = f.closed.recv_timeout(PATIENCE).unwrap();
    assert_eq!(closed.cause, Cause::PongTimeout);
    drop(s);
    f.server.shutdown(PATIENCE);
}

#[test]
fn sends_from_many_threads_arrive_as_whole_frames() {
    for mode in modes() {
        let f = serve_ws(mode, ws::Config::default().max_backpressure(64 << 20));
        let (mut s, _) = ws_connect(addr(&f.server), "");
        send_frame(&mut s, true, TEXT, b"handle");
        let h = f.handles.recv_timeout(PATIENCE).unwrap();
        let senders: Vec<_> = (0..4u8)
            .map(|t| {
                let h = h.clone();
                thread::spawn(move || {
                    for i in 0..200u32 {
                        let mut body = vec![t; 1000];
                        body.extend_from_slice(&i.to_be_bytes());
                        h.send(Message::Binary(Bytes::from(body))).unwrap();
                    }
                })
            })
            .collect();
        let mut next = [0u32; 4];
        for _ in 0..800 {
            let fr = read_data_frame(&mut s);
            assert_eq!((fr.opcode, fr.payload.len()), (BINARY, 1004));
            let t = fr.payload[0] as usize;
            assert!(
                fr.payload[..1000].iter().all(|&b| b as usize == t),
                "{mode:?}: interleaved"
            );
            assert_eq!(
                u32::from_be_bytes(fr.payload[1000..].try_into().unwrap()),
                next[t]
            );
            next[t] += 1;
        }
        for t in senders {
            t.join().unwrap();
        }
        h.close(1000, "done").unwrap();
        let c = read_data_frame(&mut s);
        assert_eq!((c.opcode, c.payload), (CLOSE, close_payload(1000, "done")));
        assert!(matches!(h.send_text("late"), Err(SendError::Closed)));
        f.server.shutdown(PATIENCE);
    }
}

#[test]
fn a_never_reading_peer_is_held_to_max_backpressure_under_each_policy() {
    const LIMIT: usize = 256 * 1024;
    for mode in modes() {
        for policy in [
            Backpressure::Drop,
            Backpressure::Close,
            Backpressure::Wait(Duration::from_millis(100)),
        ] {
            let config = ws::Config::default()
                .max_backpressure(LIMIT)
                .backpressure(policy);
            let f = serve_ws(mode, config);
            let (mut s, _) = ws_connect(addr(&f.server), "");
            send_frame(&mut s, true, TEXT, b"handle");
            let h = f.handles.recv_timeout(PATIENCE).unwrap();
            // The peer never reads: socket buffers fill, then the limit is reached.
            let msg = Bytes::from(vec![1u8; 16 * 1024]);
            let mut result = Ok(());
            for _ in 0..10_000 {
                result = h.send_binary(msg.clone());
                if result.is_err() {
                    break;
                }
            }
            let peak = f.server.stats().buffered_output;
            match policy {
                Backpressure::Drop => {
                    assert_eq!(result, Err(SendError::Dropped), "{mode:?}");
                    assert!(h.dropped() >= 1);
                    assert!(
                        eventually(|| f.dropped.load(Ordering::SeqCst) >= 1),
                        "on_dropped ran"
                    );
                    assert!(h.is_open());
                }
                Backpressure::Close => {
                    assert_eq!(result, Err(SendError::Closed), "{mode:?}");
                    let closed = f.closed.recv_timeout(PATIENCE).unwrap();
                    assert!(matches!(closed.cause, Cause::Lost(_)), "{closed:?}");
                }
                _ => assert_eq!(result, Err(SendError::Full), "{mode:?}"),
            }
            assert!(
                (peak as usize) <= LIMIT + msg.len() + 64,
                "{mode:?} {policy:?}: {peak} bytes queued"
            );
            drop(s);
            f.server.shutdown(PATIENCE);
        }
    }
}

#[test]
fn permessage_deflate_is_negotiated_and_messages_compress_both_ways() {
    for mode in modes() {
        let config = ws::Config::default().deflate(ws::DeflateConfig::default().threshold(64));
        let f = serve_ws(mode, config);
        let (mut s, head) = ws_connect(
            addr(&f.server),
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        );
        assert!(
            head.contains("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"),
            "{head}"
        );
        // A compressed text frame (RSV1) for "Hello" from RFC 7692 §7.2.3.1.
        let mut frame = frame_bytes(true, TEXT, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        frame[0] |= 0x40;
        s.write_all(&frame).unwrap();
        let echo = read_data_frame(&mut s);
        assert_eq!(
            (echo.rsv1, echo.payload.as_slice()),
            (false, &b"Hello"[..]),
            "under the threshold: plain"
        );
        // A long message comes back compressed, and inflates to the original.
        let long = "a message long enough to compress, ".repeat(20);
        send_frame(&mut s, true, TEXT, long.as_bytes());
        let echo = read_data_frame(&mut s);
        assert!(echo.rsv1 && echo.payload.len() < long.len(), "{mode:?}");
        let mut inflater = flate2::Decompress::new(false);
        let mut wire = echo.payload.clone();
        wire.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity(long.len() * 2);
        inflater
            .decompress_vec(&wire, &mut out, flate2::FlushDecompress::Sync)
            .unwrap();
        assert_eq!(out, long.as_bytes());
        f.server.shutdown(PATIENCE);
    }
}

#[test]
fn bad_handshakes_are_answered_and_a_plain_request_gets_426() {
    let f = serve_ws(Dispatch::Inline, ws::Config::default());
    let mut s = connect(addr(&f.server));
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n").unwrap();
    let answer = String::from_utf8(read_to_close(&mut s)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 426 "), "{answer}");
    assert!(answer.contains("Sec-WebSocket-Version: 13\r\n"), "{answer}");
    let mut s = connect(addr(&f.server));
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 426 "), "{head}");
    f.server.shutdown(PATIENCE);
}
