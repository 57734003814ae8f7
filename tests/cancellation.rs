//! Cancellation under load: 1,000 connections (per dispatch mode) closed or reset by the peer while the
//! server is in the middle of receiving a request (a partial line is buffered and a
//! receive is pending) or in the middle of sending a reply (megabytes queued that the
//! peer never reads), while other clients keep the server busy. Afterwards no connection
//! slot, socket, pending kernel operation or buffered byte is left, the descriptor table
//! is as before, and the server still answers.
//!
//! On io_uring this is the test of "close cancels the pending operations and waits for
//! them": a socket closed too early would leave the peer without a FIN and the
//! `closing` gauge above zero; a buffer given back twice or never trips the driver's
//! own checks (debug builds). `scripts/uring_stress.sh` runs it in release mode and
//! under AddressSanitizer.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use netloop::{handler_fn, Bytes, Dispatch, Server};

/// Victim connections per dispatch mode (a multiple of [`WAVE`]).
const VICTIMS: usize = 1000;
/// Victims open at once.
const WAVE: usize = 100;
/// The reply to `BIG`: far more than loopback's socket buffers take, so most of it is
/// still queued in the server when the peer goes.
const BIG: usize = 8 << 20;
/// Clients doing round trips all along, and the most each may do.
const LOADERS: usize = 4;
const LOAD_LIMIT: u64 = 1_000_000;

/// Lines: `ECHO text` is answered with the line, `BIG` with [`BIG`] bytes (shared, not
/// copied). A line without its newline waits for the rest.
fn handler(big: Bytes) -> impl netloop::Handler {
    handler_fn(move |conn| {
        while let Some(line) = conn.input().until(b"\n") {
            if line.starts_with(b"BIG") {
                conn.output().write_bytes(big.clone());
            } else {
                conn.output().write_bytes(line);
            }
        }
    })
}

fn reset_on_drop(s: &TcpStream) {
    socket2::SockRef::from(s)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
}

/// One victim: `kind` 0 leaves mid-receive, 1 mid-send, 2 after a clean round trip;
/// odd ids reset (RST) instead of closing (FIN).
fn victim(a: SocketAddr, id: usize) -> TcpStream {
    let mut s = connect(a);
    match id % 3 {
        0 => s.write_all(b"ECHO half a requ").unwrap(),
        1 => {
            s.write_all(b"BIG\n").unwrap();
            // Wait for the reply to start, so the server is sending when we go.
            let mut first = [0u8; 1024];
            s.read_exact(&mut first).unwrap();
        }
        _ => assert_eq!(round_trip(&mut s, b"ECHO ok\n"), b"ECHO ok\n"),
    }
    if id % 2 == 1 {
        reset_on_drop(&s);
    }
    s
}

fn run(mode: Dispatch) {
    let fds_before = open_fds();
    let big = Bytes::from(payload(BIG, 9));
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(2)
        .dispatch(mode)
        .backlog(1024)
        .serve(handler(big))
        .expect("server starts");
    let a = addr(&server);

    // Load: echo round trips until told to stop (or the limit, or PATIENCE).
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let loaders: Vec<_> = (0..LOADERS)
        .map(|i| {
            let (stop, done) = (stop.clone(), done.clone());
            thread::spawn(move || {
                let mut s = BufReader::new(connect(a));
                let started = Instant::now();
                let msg = format!("ECHO load {i}\n");
                let mut line = String::new();
                for _ in 0..LOAD_LIMIT {
                    if stop.load(Ordering::Relaxed) || started.elapsed() > PATIENCE {
                        break;
                    }
                    s.get_mut().write_all(msg.as_bytes()).unwrap();
                    line.clear();
                    s.read_line(&mut line).unwrap();
                    assert_eq!(line, msg);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    for wave in 0..VICTIMS / WAVE {
        let streams: Vec<TcpStream> = (0..WAVE).map(|i| victim(a, wave * WAVE + i)).collect();
        drop(streams);
    }
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.join().expect("load client");
    }
    assert!(done.load(Ordering::Relaxed) > 0, "the load ran");

    let settled = || {
        let s = server.stats();
        s.active == 0
            && s.buffered_input == 0
            && s.buffered_output == 0
            && s.pollers.iter().all(|p| p.closing == 0)
    };
    assert!(
        eventually(settled),
        "{mode:?}: left behind after every peer went: {:?}",
        server.stats()
    );
    let stats = server.stats();
    assert_eq!(stats.accepted as usize, VICTIMS + LOADERS, "{stats:?}");
    assert_eq!(stats.closed.total(), stats.accepted, "{stats:?}");
    assert_eq!(stats.panics, 0);

    // Still serving.
    let mut c = connect(a);
    assert_eq!(round_trip(&mut c, b"ECHO after\n"), b"ECHO after\n");
    drop(c);
    assert!(eventually(|| server.stats().active == 0));

    server.shutdown(PATIENCE);
    drop(server);
    let after = open_fds();
    assert_eq!(
        after.len(),
        fds_before.len(),
        "{mode:?}: descriptors left open: {:?}",
        extra_fds(&fds_before, &after)
    );
}

/// Both modes in one test, one after the other: the descriptor count is process-wide.
#[test]
fn peers_leaving_mid_receive_and_mid_send_leave_nothing_behind() {
    for mode in modes() {
        run(mode);
    }
}
