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

#[test]
fn a_multi_segment_send_arrives_whole_between_other_threads_sends() {
    for mode in modes() {
        let (server, handles) = handle_server(mode);
        let mut s = connect(addr(&server));
        round_trip_nothing(&mut s);
        let h = handles.recv_timeout(PATIENCE).unwrap();
        // Each message: a 1-byte header naming the thread, a shared 1 KiB payload of
        // that byte, and a 1-byte trailer. Threads race; messages must not interleave.
        let payloads: Vec<Bytes> = (0..4u8).map(|t| Bytes::from(vec![t; 1024])).collect();
        let senders: Vec<_> = (0..4u8)
            .map(|t| {
                let h = h.clone();
                let payload = payloads[t as usize].clone();
                thread::spawn(move || {
                    let mut sent = 0;
                    while sent < 200 {
                        let parts = [Bytes::from(vec![t]), payload.clone(), Bytes::from(vec![t])];
                        match h.send_all(&parts) {
                            Ok(()) => sent += 1,
                            Err(Error::Full) => h.wait_writable(PATIENCE).unwrap(),
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        let mut got = vec![0u8; 4 * 200 * 1026];
        s.read_exact(&mut got).unwrap();
        for t in senders {
            t.join().unwrap();
        }
        for (i, msg) in got.chunks(1026).enumerate() {
            let t = msg[0];
            assert!(
                msg.iter().all(|&b| b == t),
                "{mode:?}: message {i} interleaved"
            );
        }
        // The count is what the poller last published, once it has seen the sends complete.
        assert!(
            eventually(|| h.queued() == 0),
            "{mode:?}: {} still queued",
            h.queued()
        );
        server.shutdown(PATIENCE);
    }
}

/// Echo-less handler whose on_request hands a job to another thread, which wakes the
/// connection when done; on_wake writes the result. Checks that on_wake never runs
/// while another callback of the connection does.
struct Jobs {
    busy: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl netloop::Handler for Jobs {
    type State = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;
    fn on_connect(&self, _: &mut netloop::Conn) -> Self::State {
        Default::default()
    }
    fn on_request(&self, results: &mut Self::State, conn: &mut netloop::Conn) {
        use std::sync::atomic::Ordering;
        assert!(
            !self.busy.swap(true, Ordering::SeqCst),
            "overlapping callbacks"
        );
        let n = conn.input().len();
        let job = conn.input().next(n);
        let (handle, results) = (conn.handle(), results.clone());
        thread::spawn(move || {
            let done: Vec<u8> = job.iter().map(|b| b.to_ascii_uppercase()).collect();
            results.lock().unwrap().extend_from_slice(&done);
            handle.wake().unwrap();
        });
        // Stay busy a little, so a wake may come while this call runs (Pool mode).
        thread::sleep(std::time::Duration::from_millis(2));
        self.busy.store(false, Ordering::SeqCst);
    }
    fn on_wake(&self, results: &mut Self::State, conn: &mut netloop::Conn) {
        use std::sync::atomic::Ordering;
        assert!(
            !self.busy.swap(true, Ordering::SeqCst),
            "on_wake overlapped"
        );
        let done = std::mem::take(&mut *results.lock().unwrap());
        conn.output().write(&done);
        self.busy.store(false, Ordering::SeqCst);
    }
}

#[test]
fn wake_runs_on_wake_on_the_connections_own_turn() {
    for mode in modes() {
        let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let server = serve(mode, 1, Jobs { busy });
        let mut s = connect(addr(&server));
        let mut all = Vec::new();
        for word in [&b"one "[..], b"two ", b"three "] {
            std::io::Write::write_all(&mut s, word).unwrap();
            let mut got = vec![0u8; word.len()];
            s.read_exact(&mut got).unwrap();
            all.extend_from_slice(&got);
        }
        assert_eq!(all, b"ONE TWO THREE ", "{mode:?}");
        assert_eq!(
            server.stats().panics,
            0,
            "{mode:?}: no overlapping callback"
        );
        drop(s);
        server.shutdown(PATIENCE);
    }
    // A closed connection cannot be woken.
    let (server, handles) = handle_server(netloop::Dispatch::Inline);
    let mut s = connect(addr(&server));
    round_trip_nothing(&mut s);
    let h = handles.recv_timeout(PATIENCE).unwrap();
    drop(s);
    assert!(eventually(|| h.is_closed()));
    assert!(matches!(h.wake(), Err(Error::Closed)));
    server.shutdown(PATIENCE);
}

/// Fills its own output from a handle until Full, and writes "DRAINED" in on_drain.
struct Filler {
    drains: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    refused: mpsc::Sender<usize>,
}

impl netloop::Handler for Filler {
    type State = ();
    fn on_connect(&self, conn: &mut netloop::Conn) {
        let h = conn.handle();
        let refused = self.refused.clone();
        thread::spawn(move || {
            let chunk = Bytes::from(vec![7u8; 16 * 1024]);
            let mut sent = 0;
            loop {
                match h.send(chunk.clone()) {
                    Ok(()) => sent += chunk.len(),
                    Err(Error::Full) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            assert!(h.queued() > 0);
            let _ = refused.send(sent);
        });
    }
    fn on_request(&self, _: &mut (), conn: &mut netloop::Conn) {
        let n = conn.input().len();
        conn.input().skip(n);
    }
    fn on_drain(&self, _: &mut (), conn: &mut netloop::Conn) {
        self.drains
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        conn.output().write(b"DRAINED");
    }
}

#[test]
fn on_drain_tells_the_handler_when_a_full_connection_has_room_again() {
    for mode in modes() {
        let drains = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let server = netloop::Server::builder()
            .listen("127.0.0.1:0")
            .pollers(1)
            .dispatch(mode)
            .output_high_water(64 * 1024)
            .serve(Filler {
                drains: drains.clone(),
                refused: tx,
            })
            .unwrap();
        let mut s = connect(addr(&server));
        // The peer reads nothing until the sender was refused. (The kernel's socket
        // buffers may take some output meanwhile, and each time the queue falls from
        // its mark to half of it is a drain too.)
        let sent = rx.recv_timeout(PATIENCE).unwrap();
        // Read everything; the refusal is owed an on_drain, whose marker comes after
        // every byte queued before it.
        let mut stream = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let marker = b"DRAINED";
        loop {
            let filler = stream.iter().filter(|&&b| b == 7).count();
            let markers = stream.windows(marker.len()).filter(|w| w == marker).count();
            let drains_now = drains.load(std::sync::atomic::Ordering::SeqCst);
            if filler == sent && stream.ends_with(marker) && markers == drains_now {
                break;
            }
            let n = common::read_some(&mut s, &mut buf).unwrap();
            assert!(n > 0, "{mode:?}: closed early");
            stream.extend_from_slice(&buf[..n]);
        }
        assert!(drains.load(std::sync::atomic::Ordering::SeqCst) >= 1);
        server.shutdown(PATIENCE);
    }
}

#[test]
fn a_sealed_output_takes_earlier_sends_first_and_refuses_later_ones_and_group_messages() {
    for mode in modes() {
        let (tx, rx) = mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let server = serve(
            mode,
            1,
            handler_fn(move |conn| {
                let n = conn.input().len();
                let data = conn.input().next(n);
                if &data[..] == b"seal" {
                    conn.seal_output();
                    conn.output().write(b"|last");
                    conn.shutdown_write();
                } else {
                    let _ = tx.lock().unwrap().send(conn.handle());
                }
            }),
        );
        let group = netloop::ConnGroup::new(netloop::Overflow::Drop);
        let mut s = connect(addr(&server));
        round_trip_nothing(&mut s);
        let h = rx.recv_timeout(PATIENCE).unwrap();
        assert!(group.insert_with_limit(&h, 1 << 20));
        h.send(Bytes::from_static(b"before")).unwrap();
        assert!(eventually(
            || group.counts().delivered == 0 && h.queued() == 0
        ));
        group.send(Bytes::from_static(b"+group"));
        assert!(eventually(|| group.counts().delivered == 1));
        std::io::Write::write_all(&mut s, b"seal").unwrap();
        let mut got = vec![0u8; "before+group|last".len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            "before+group|last",
            "{mode:?}"
        );
        // Once sealed, a send is refused and the group skips the member.
        assert!(matches!(
            h.send(Bytes::from_static(b"after")),
            Err(Error::Closed)
        ));
        group.send(Bytes::from_static(b"+late"));
        assert!(read_to_close(&mut s).is_empty(), "{mode:?}");
        assert!(eventually(|| group.is_empty()));
        assert_eq!(group.counts().delivered, 1);
        server.shutdown(PATIENCE);
    }
}
