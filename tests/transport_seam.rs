//! A transport sits between the socket and the handler: every byte in and out goes
//! through it (the handler's writes, `ConnHandle` sends, group sends, its own closing
//! message), its handshake runs before `on_connect`, a bad handshake gets its answer
//! and a close, a stalled one is cut off by the handshake timeout, and dialed
//! connections take one too. Both dispatch modes, both backends (via NETLOOP_BACKEND).

mod common;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::*;
use netloop::transport::Transport;
use netloop::{
    Bytes, BytesMut, CloseReason, Conn, ConnGroup, ConnHandle, ConnInfo, Handler, Output, Overflow,
    Server,
};

/// The key every byte on the wire is XORed with once the handshake is done.
const KEY: u8 = 0x5a;
const HELLO: &[u8] = b"HELLO\n";
const WELCOME: &[u8] = b"WELCOME\n";

fn scramble(data: &[u8]) -> Vec<u8> {
    data.iter().map(|b| b ^ KEY).collect()
}

/// A toy transport with a handshake: the client says HELLO, the server answers WELCOME
/// (both in the clear), then everything is XORed; closing sends "BYE\n".
struct Scramble {
    client: bool,
    ready: bool,
}

impl Scramble {
    fn server() -> Box<dyn Transport> {
        Box::new(Scramble {
            client: false,
            ready: false,
        })
    }

    fn client() -> Box<dyn Transport> {
        Box::new(Scramble {
            client: true,
            ready: false,
        })
    }
}

impl Transport for Scramble {
    fn start(&mut self, wire: &mut Output) {
        if self.client {
            wire.write(HELLO);
        }
    }

    fn decode(
        &mut self,
        wire: &mut BytesMut,
        plain: &mut BytesMut,
        reply: &mut Output,
    ) -> io::Result<()> {
        if !self.ready {
            let expect = if self.client { WELCOME } else { HELLO };
            let n = wire.len().min(expect.len());
            if wire[..n] != expect[..n] {
                reply.write(b"BAD\n");
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bad greeting"));
            }
            if n < expect.len() {
                return Ok(()); // the rest of the greeting is still to come
            }
            let _ = wire.split_to(n);
            if !self.client {
                reply.write(WELCOME);
            }
            self.ready = true;
        }
        plain.extend(wire.iter().map(|b| b ^ KEY));
        wire.clear();
        Ok(())
    }

    fn encode(&mut self, plain: &mut Output, wire: &mut Output) -> io::Result<()> {
        while let Some(segment) = plain.pop_front() {
            wire.write(&scramble(&segment));
        }
        Ok(())
    }

    fn is_ready(&self) -> bool {
        self.ready
    }

    fn close(&mut self, wire: &mut Output) {
        wire.write(&scramble(b"BYE\n"));
    }
}

/// Greets with "hi", echoes every byte, closes on "quit", and hands out its handle.
struct Echo {
    opened: Arc<AtomicUsize>,
    handles: mpsc::Sender<ConnHandle>,
    closed: mpsc::Sender<CloseReason>,
}

impl Handler for Echo {
    type State = ();
    fn on_connect(&self, conn: &mut Conn) {
        self.opened.fetch_add(1, Ordering::SeqCst);
        conn.output().write(b"hi");
        let _ = self.handles.send(conn.handle());
    }
    fn on_request(&self, _: &mut (), conn: &mut Conn) {
        let n = conn.input().len();
        let data = conn.input().next(n);
        if &data[..] == b"quit" {
            conn.close();
        } else {
            conn.output().write_bytes(data);
        }
    }
    fn on_close(&self, _: (), reason: CloseReason) {
        let _ = self.closed.send(reason);
    }
}

struct Fixture {
    server: netloop::ServerHandle,
    opened: Arc<AtomicUsize>,
    handles: mpsc::Receiver<ConnHandle>,
    closed: mpsc::Receiver<CloseReason>,
}

fn serve_scrambled(mode: netloop::Dispatch, handshake_timeout: Duration) -> Fixture {
    let opened = Arc::new(AtomicUsize::new(0));
    let (handles_tx, handles) = mpsc::channel();
    let (closed_tx, closed) = mpsc::channel();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(2)
        .dispatch(mode)
        .handshake_timeout(handshake_timeout)
        .transport(|_: &ConnInfo| Ok(Scramble::server()))
        .serve(Echo {
            opened: opened.clone(),
            handles: handles_tx,
            closed: closed_tx,
        })
        .unwrap();
    Fixture {
        server,
        opened,
        handles,
        closed,
    }
}

fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut got = vec![0u8; n];
    s.read_exact(&mut got).unwrap();
    got
}

#[test]
fn every_byte_goes_through_the_transport_both_ways_from_every_sender() {
    for mode in modes() {
        let f = serve_scrambled(mode, PATIENCE);
        let mut s = connect(addr(&f.server));
        s.write_all(HELLO).unwrap();
        assert_eq!(read_exactly(&mut s, WELCOME.len()), WELCOME, "{mode:?}");
        // on_connect ran after the handshake, and its greeting is scrambled.
        assert_eq!(read_exactly(&mut s, 2), scramble(b"hi"), "{mode:?}");
        assert_eq!(f.opened.load(Ordering::SeqCst), 1);

        let msg = payload(3000, 4);
        s.write_all(&scramble(&msg)).unwrap();
        assert_eq!(read_exactly(&mut s, msg.len()), scramble(&msg), "{mode:?}");

        // Another thread's send and a group's send take the same road.
        let handle = f.handles.recv_timeout(PATIENCE).unwrap();
        handle.send(Bytes::from_static(b"pushed")).unwrap();
        assert_eq!(read_exactly(&mut s, 6), scramble(b"pushed"), "{mode:?}");
        let group = ConnGroup::new(Overflow::Drop);
        assert!(group.insert(&handle));
        assert_eq!(group.send(Bytes::from_static(b"to all")), 1);
        assert_eq!(read_exactly(&mut s, 6), scramble(b"to all"), "{mode:?}");

        // A graceful close sends the transport's closing message before the FIN.
        s.write_all(&scramble(b"quit")).unwrap();
        assert_eq!(read_to_close(&mut s), scramble(b"BYE\n"), "{mode:?}");
        assert_eq!(f.closed.recv_timeout(PATIENCE).unwrap(), CloseReason::Local);
        f.server.shutdown(PATIENCE);
    }
}

#[test]
fn a_peer_that_fails_the_handshake_gets_the_answer_and_is_closed_unseen_by_the_handler() {
    for mode in modes() {
        let f = serve_scrambled(mode, PATIENCE);
        let mut s = connect(addr(&f.server));
        s.write_all(b"GARBAGE\n").unwrap();
        assert_eq!(read_to_close(&mut s), b"BAD\n", "{mode:?}");
        assert!(eventually(|| f.server.stats().closed.error == 1));
        assert_eq!(f.opened.load(Ordering::SeqCst), 0, "on_connect never ran");
        assert!(
            f.closed.try_recv().is_err(),
            "no on_close for a connection the handler never had"
        );
        f.server.shutdown(PATIENCE);
    }
}

#[test]
fn a_stalled_handshake_is_cut_off_by_the_handshake_timeout() {
    for mode in modes() {
        let f = serve_scrambled(mode, Duration::from_millis(200));
        let mut s = connect(addr(&f.server));
        s.write_all(&HELLO[..3]).unwrap(); // half a greeting, then nothing
        assert_eq!(read_to_close(&mut s), b"", "{mode:?}");
        assert!(eventually(|| f.server.stats().closed.handshake_timeout == 1));
        assert_eq!(f.opened.load(Ordering::SeqCst), 0);
        // A peer that does finish is served as usual.
        let mut ok = connect(addr(&f.server));
        ok.write_all(HELLO).unwrap();
        assert_eq!(read_exactly(&mut ok, WELCOME.len()), WELCOME);
        f.server.shutdown(PATIENCE);
    }
}

/// A dialed client: once its transport's handshake is done, sends "ping" and reports
/// the echo.
struct Pinger {
    got: mpsc::Sender<Vec<u8>>,
}

impl Handler for Pinger {
    type State = Vec<u8>;
    fn on_connect(&self, conn: &mut Conn) -> Vec<u8> {
        conn.output().write(b"ping");
        Vec::new()
    }
    fn on_request(&self, got: &mut Vec<u8>, conn: &mut Conn) {
        let n = conn.input().len();
        got.extend_from_slice(conn.input().peek(n));
        conn.input().skip(n);
        // "hi" (the server's greeting) then the echoed "ping".
        if got.len() >= 6 {
            let _ = self.got.send(std::mem::take(got));
            conn.close();
        }
    }
}

#[test]
fn dialed_connections_speak_through_their_transport() {
    for mode in modes() {
        let f = serve_scrambled(mode, PATIENCE);
        let client = Server::builder().pollers(1).dispatch(mode).start().unwrap();
        let (tx, rx) = mpsc::channel();
        let handle = client
            .dialer()
            .transport(|_: &ConnInfo| Ok(Scramble::client()))
            .dial(addr(&f.server), Pinger { got: tx })
            .unwrap();
        handle.wait_open(PATIENCE).unwrap();
        assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), b"hiping", "{mode:?}");
        client.shutdown(PATIENCE);
        f.server.shutdown(PATIENCE);
    }
}
