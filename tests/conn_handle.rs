//! `ConnHandle` works from any thread: its sends reach the peer; once the connection is
//! closed every call fails with `Closed` — never a panic, never a delivery to another
//! connection that reused the slot.

mod common;

use std::io::Read;
use std::sync::mpsc;
use std::thread;

use common::*;
use netloop::{handler_fn, Bytes, ConnHandle, Error};

fn handle_server(mode: netloop::Dispatch) -> (netloop::ServerHandle, mpsc::Receiver<ConnHandle>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let server = serve(
        mode,
        1,
        handler_fn(move |conn| {
            // Any input means "give the test my handle".
            let n = conn.input().len();
            conn.input().skip(n);
            let _ = tx.lock().unwrap().send(conn.handle());
        }),
    );
    (server, rx)
}

#[test]
fn sends_from_other_threads_reach_the_peer_in_order() {
    for mode in modes() {
        let (server, handles) = handle_server(mode);
        let mut s = connect(addr(&server));
        round_trip_nothing(&mut s);
        let h = handles.recv_timeout(PATIENCE).unwrap();
        let senders: Vec<_> = (0..4u8)
            .map(|t| {
                let h = h.clone();
                thread::spawn(move || {
                    for i in 0..250u32 {
                        let mut msg = vec![t; 4];
                        msg.extend_from_slice(&i.to_be_bytes());
                        h.send(Bytes::from(msg)).unwrap();
                    }
                })
            })
            .collect();
        for t in senders {
            t.join().unwrap();
        }
        let mut got = vec![0u8; 4 * 250 * 8];
        s.read_exact(&mut got).unwrap();
        // Each sender's messages arrive whole and in its order.
        let mut next = [0u32; 4];
        for msg in got.chunks(8) {
            let t = msg[0] as usize;
            assert!(msg[..4].iter().all(|&b| b as usize == t));
            assert_eq!(u32::from_be_bytes(msg[4..].try_into().unwrap()), next[t]);
            next[t] += 1;
        }
        assert_eq!(next, [250; 4], "{mode:?}");
        server.shutdown(PATIENCE);
    }
}

/// Sends one byte so the handler publishes the handle.
fn round_trip_nothing(s: &mut std::net::TcpStream) {
    std::io::Write::write_all(s, b"?").unwrap();
}

#[test]
fn a_handle_to_a_closed_connection_fails_and_never_reaches_the_slots_next_owner() {
    for mode in modes() {
        let (server, handles) = handle_server(mode);
        let a = addr(&server);
        let mut first = connect(a);
        round_trip_nothing(&mut first);
        let stale = handles.recv_timeout(PATIENCE).unwrap();
        drop(first);
        assert!(eventually(|| stale.is_closed()), "{mode:?}");
        // The slab slot is free now; the next connection takes it.
        let mut second = connect(a);
        round_trip_nothing(&mut second);
        let fresh = handles.recv_timeout(PATIENCE).unwrap();
        assert_ne!(fresh.id(), stale.id());
        for _ in 0..100 {
            assert!(matches!(
                stale.send(Bytes::from_static(b"STALE")),
                Err(Error::Closed)
            ));
        }
        assert!(matches!(stale.close(), Err(Error::Closed)));
        fresh.send(Bytes::from_static(b"fresh")).unwrap();
        let mut got = [0u8; 5];
        second.read_exact(&mut got).unwrap();
        assert_eq!(
            &got, b"fresh",
            "{mode:?}: only the fresh handle's data arrives"
        );
        assert!(!fresh.is_closed());
        server.shutdown(PATIENCE);
    }
}

#[test]
fn sends_past_the_output_high_water_mark_are_refused_with_full() {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let server = netloop::Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .output_high_water(64 * 1024)
        .serve(handler_fn(move |conn| {
            let n = conn.input().len();
            conn.input().skip(n);
            let _ = tx.lock().unwrap().send(conn.handle());
        }))
        .unwrap();
    let mut s = connect(addr(&server));
    round_trip_nothing(&mut s);
    let h = rx.recv_timeout(PATIENCE).unwrap();
    // The peer does not read: socket buffers fill, then the output queue, then Full.
    let chunk = Bytes::from(vec![1u8; 16 * 1024]);
    let mut sent = 0usize;
    let mut refused = false;
    for _ in 0..100_000 {
        match h.send(chunk.clone()) {
            Ok(()) => sent += chunk.len(),
            Err(Error::Full) => {
                refused = true;
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(refused, "never refused after {sent} bytes");
    // Draining on the peer side makes room again.
    let mut sink = vec![0u8; sent];
    s.read_exact(&mut sink).unwrap();
    assert!(eventually(|| h.send(chunk.clone()).is_ok()));
    server.shutdown(PATIENCE);
}
