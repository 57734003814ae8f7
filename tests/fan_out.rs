//! `ConnGroup`: one message to many connections costs one command per poller; every open
//! member gets it, closed members drop out, and a member over its output mark is dealt
//! with by the group's policy without holding up the others.

mod common;

use std::io::Read;
use std::sync::{mpsc, Arc, Mutex};

use common::*;
use netloop::{handler_fn, Bytes, ConnGroup, ConnHandle, Dispatch, Overflow, Server};

/// A server whose every connection joins `group` on its first byte and reports its
/// handle.
fn group_server(
    mode: Dispatch,
    group: Arc<ConnGroup>,
    output_high_water: usize,
) -> (netloop::ServerHandle, mpsc::Receiver<ConnHandle>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(2)
        .dispatch(mode)
        .output_high_water(output_high_water)
        .serve(handler_fn(move |conn| {
            let n = conn.input().len();
            conn.input().skip(n);
            let h = conn.handle();
            if group.insert(&h) {
                let _ = tx.lock().unwrap().send(h);
            }
        }))
        .unwrap();
    (server, rx)
}

fn join(
    server: &netloop::ServerHandle,
    handles: &mpsc::Receiver<ConnHandle>,
    n: usize,
) -> Vec<std::net::TcpStream> {
    let clients: Vec<_> = (0..n)
        .map(|_| {
            let mut s = connect(addr(server));
            std::io::Write::write_all(&mut s, b"j").unwrap();
            s
        })
        .collect();
    for _ in 0..n {
        handles.recv_timeout(PATIENCE).unwrap();
    }
    clients
}

fn commands(server: &netloop::ServerHandle) -> u64 {
    server.stats().pollers.iter().map(|p| p.commands).sum()
}

#[test]
fn one_send_is_one_command_per_poller_and_reaches_every_member() {
    for mode in modes() {
        let group = Arc::new(ConnGroup::new(Overflow::Drop));
        let (server, handles) = group_server(mode, group.clone(), 4 << 20);
        let mut clients = join(&server, &handles, 100);
        assert_eq!(group.len(), 100);
        let before = commands(&server);
        let msg = Bytes::from(payload(2000, 3));
        assert_eq!(group.send(msg.clone()), 2, "both pollers have members");
        for c in &mut clients {
            let mut got = vec![0u8; msg.len()];
            c.read_exact(&mut got).unwrap();
            assert_eq!(got, msg, "{mode:?}");
        }
        assert_eq!(
            commands(&server) - before,
            2,
            "{mode:?}: 100 deliveries, one command per poller"
        );

        // Members that closed are skipped and leave the group at the next send.
        let leaving: Vec<_> = clients.drain(..10).collect();
        drop(leaving);
        assert!(eventually(|| server.stats().closed.peer_closed == 10));
        group.send(Bytes::from_static(b"after"));
        for c in &mut clients {
            let mut got = [0u8; 5];
            c.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"after");
        }
        assert!(eventually(|| group.len() == 90), "{} members", group.len());
        // An empty group costs nothing.
        let empty = ConnGroup::default();
        assert_eq!(empty.send(Bytes::from_static(b"x")), 0);
        server.shutdown(PATIENCE);
    }
}

#[test]
fn a_member_that_does_not_read_is_dropped_or_closed_and_the_others_get_everything() {
    for mode in modes() {
        for overflow in [Overflow::Drop, Overflow::Close] {
            let group = Arc::new(ConnGroup::new(overflow));
            let (server, handles) = group_server(mode, group.clone(), 64 * 1024);
            let mut reader = connect(addr(&server));
            std::io::Write::write_all(&mut reader, b"j").unwrap();
            let _reader_handle = handles.recv_timeout(PATIENCE).unwrap();
            let mut stalled = connect(addr(&server));
            std::io::Write::write_all(&mut stalled, b"j").unwrap();
            let stalled_handle = handles.recv_timeout(PATIENCE).unwrap();
            // 16 KiB messages to both, more than the kernel can buffer for a peer that
            // never reads; the reader keeps up, the other never reads.
            let msg = Bytes::from(vec![9u8; 16 * 1024]);
            let mut got = vec![0u8; msg.len()];
            for _ in 0..more_than_the_kernel_buffers(msg.len()) {
                group.send(msg.clone());
                reader.read_exact(&mut got).unwrap();
                assert!(got.iter().all(|&b| b == 9));
            }
            let stats = server.stats();
            match overflow {
                Overflow::Drop => {
                    assert!(stalled_handle.dropped() > 0, "{mode:?}: nothing dropped");
                    // Counted per connection and per server alike, once the last
                    // send's command is through.
                    assert!(eventually(
                        || server.stats().dropped == stalled_handle.dropped()
                    ));
                    assert!(!stalled_handle.is_closed());
                }
                Overflow::Close => {
                    assert!(eventually(|| stalled_handle.is_closed()), "{mode:?}");
                    assert!(eventually(|| server.stats().closed.backpressure == 1));
                }
                _ => unreachable!(),
            }
            // Its output never grew past the mark (plus one message and the socket's
            // own buffers, which the kernel sizes).
            assert!(
                stats.buffered_output <= (64 + 16) * 1024,
                "{mode:?}: {} bytes queued",
                stats.buffered_output
            );
            drop(stalled);
            server.shutdown(PATIENCE);
        }
    }
}
