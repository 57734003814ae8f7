//! Half-close in both directions: a peer that shuts its write side still gets a reply to
//! everything it sent; `Conn::shutdown_write` ends the server's side while it keeps
//! reading; a peer resetting mid-response disturbs no other connection.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::time::Duration;

use common::*;
use netloop::{handler_fn, Bytes};

#[test]
fn every_pipelined_request_is_answered_after_the_peer_half_closes() {
    for mode in modes() {
        let server = serve(mode, 1, echo());
        let mut s = connect(addr(&server));
        let data = payload(3 << 20, 1);
        s.write_all(&data).unwrap_or_else(|_| panic!("{mode:?}"));
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert!(
            got == data,
            "{mode:?}: {} of {} bytes",
            got.len(),
            data.len()
        );
        assert!(eventually(|| server.stats().closed.peer_closed == 1));
        server.shutdown(PATIENCE);
    }
}

#[test]
fn shutdown_write_ends_the_reply_stream_but_keeps_reading() {
    for mode in modes() {
        let server = serve(
            mode,
            1,
            handler_fn(|conn| {
                let n = conn.input().len();
                let msg = conn.input().next(n);
                // Only "one" is echoed: anything written after shutdown_write would fail
                // (EPIPE) and close the connection.
                if &msg[..] == b"last" {
                    conn.output().write(b"bye");
                    conn.shutdown_write();
                } else if &msg[..] == b"one" {
                    conn.output().write_bytes(msg);
                }
            }),
        );
        let mut s = connect(addr(&server));
        assert_eq!(round_trip(&mut s, b"one"), b"one");
        s.write_all(b"last").unwrap();
        assert_eq!(
            read_to_close(&mut s),
            b"bye",
            "{mode:?}: reply, then end-of-file"
        );
        // The server still reads: more input reaches the handler (counted), no reply.
        let before = server.stats().bytes_in;
        s.write_all(b"after").unwrap();
        assert!(
            eventually(|| server.stats().bytes_in == before + 5),
            "{mode:?}"
        );
        assert_eq!(server.stats().active, 1);
        drop(s);
        assert!(eventually(|| server.stats().active == 0));
        server.shutdown(PATIENCE);
    }
}

/// Sets SO_LINGER to 0 so closing sends a reset instead of a FIN.
fn reset_on_close(s: &std::net::TcpStream) {
    socket2::SockRef::from(&s.as_fd())
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

#[test]
fn a_reset_mid_response_leaves_other_connections_untouched() {
    for mode in modes() {
        let big = Bytes::from(vec![9u8; 16 << 20]);
        let server = serve(
            mode,
            1,
            handler_fn(move |conn| {
                let n = conn.input().len();
                let msg = conn.input().next(n);
                if &msg[..] == b"big" {
                    conn.output().write_bytes(big.clone());
                } else {
                    conn.output().write_bytes(msg);
                }
            }),
        );
        let a = addr(&server);
        let mut others: Vec<_> = (0..5).map(|_| connect(a)).collect();
        for _ in 0..10 {
            let victim = connect(a);
            let mut v = victim.try_clone().unwrap();
            v.write_all(b"big").unwrap();
            let mut some = [0u8; 4096];
            v.read_exact(&mut some).unwrap();
            reset_on_close(&victim);
            drop((victim, v));
            for (i, o) in others.iter_mut().enumerate() {
                let msg = format!("fine {i}");
                assert_eq!(round_trip(o, msg.as_bytes()), msg.as_bytes(), "{mode:?}");
            }
        }
        assert!(eventually(|| server.stats().active == 5), "{mode:?}");
        let stats = server.stats();
        assert_eq!(stats.closed.error, 10, "{mode:?}: {stats:?}");
        assert_eq!(stats.panics, 0);
        // A reply the client already has may still count as buffered until the poller
        // sees its send complete (io_uring reports that in its next turn).
        assert!(
            eventually(|| server.stats().buffered_output == 0),
            "{mode:?}: {:?}",
            server.stats()
        );
        server.shutdown(PATIENCE);
    }
}
