//! A peer that sends but never reads is held to the water marks — the server stops
//! reading it, its buffered bytes stay under the configured bound — and is closed at the
//! write timeout; `ConnHandle` senders are refused with `Full` and can wait for room.

mod common;

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use netloop::{handler_fn, Backend, Bytes, Error, Server};

const IN_HIGH: usize = 64 * 1024;
const OUT_HIGH: usize = 256 * 1024;
const READ_BUF: usize = 16 * 1024;

#[test]
fn a_peer_that_never_reads_is_bounded_then_closed_at_the_write_timeout() {
    for mode in modes() {
        let server = Server::builder()
            .listen("127.0.0.1:0")
            .pollers(1)
            .dispatch(mode)
            .input_high_water(IN_HIGH)
            .output_high_water(OUT_HIGH)
            .read_buffer_size(READ_BUF)
            .write_timeout(Duration::from_millis(500))
            // Shorter than the write timeout: held-back requests must not count as
            // incomplete ones, the close reason is the peer not reading.
            .read_timeout(Duration::from_millis(200))
            .serve(echo())
            .unwrap();
        let mut hog = connect(addr(&server));
        hog.set_write_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        // Send until the server stops taking bytes (our write times out) or the server
        // closes the connection; never read.
        let chunk = vec![0x5a; 64 * 1024];
        let mut sent = 0usize;
        let mut peak_in = 0;
        let mut peak_out = 0;
        while sent < 256 << 20 {
            match common::write_some(&mut hog, &chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
            let s = server.stats();
            peak_in = peak_in.max(s.buffered_input);
            peak_out = peak_out.max(s.buffered_output);
        }
        assert!(
            sent < 256 << 20,
            "{mode:?}: the server kept reading {sent} bytes"
        );
        assert!(
            eventually(|| server.stats().closed.total() == 1),
            "{mode:?}"
        );
        let closed = server.stats().closed;
        assert_eq!(
            (closed.write_timeout, closed.read_timeout),
            (1, 0),
            "{mode:?}: closed for not reading, not as a slow sender"
        );
        // One read beyond the input mark, and one echoed batch beyond the output mark.
        // On io_uring "one read" is at most one completion batch of a multishot receive
        // (the kernel retries up to 32 times, 4 KiB buffers, per wake-up), which the
        // driver arms only with that much room left under the mark; closer to it, it
        // receives one buffer of at most the room left. (The hard bound is the poller's
        // provided-buffer ring; this is the expected one.)
        let read_burst = match server.backend() {
            Backend::IoUring => READ_BUF + 32 * 4096,
            _ => READ_BUF,
        };
        assert!(
            peak_in as usize <= IN_HIGH + read_burst * 2,
            "{mode:?}: input {peak_in}"
        );
        assert!(
            peak_out as usize <= OUT_HIGH + IN_HIGH + read_burst * 2,
            "{mode:?}: output {peak_out}"
        );
        let stats = server.stats();
        assert_eq!(
            (stats.buffered_input, stats.buffered_output),
            (0, 0),
            "{mode:?}"
        );
        server.shutdown(PATIENCE);
    }
}

#[test]
fn a_blocked_sender_waits_for_room_and_resumes_when_the_peer_drains() {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .output_high_water(OUT_HIGH)
        .serve(handler_fn(move |conn| {
            let n = conn.input().len();
            conn.input().skip(n);
            let _ = tx.lock().unwrap().send(conn.handle());
        }))
        .unwrap();
    let mut peer = connect(addr(&server));
    peer.write_all(b"?").unwrap();
    let handle = rx.recv_timeout(PATIENCE).unwrap();
    let chunk = Bytes::from(vec![3u8; 32 * 1024]);
    let mut sent = 0usize;
    // Fill until refused, and again until the refusal sticks: at first the poller keeps
    // moving queued bytes into the kernel's socket buffers, which makes room.
    loop {
        match handle.send(chunk.clone()) {
            Ok(()) => sent += chunk.len(),
            Err(Error::Full) => {
                let stuck = handle.wait_writable(Duration::from_millis(50));
                if matches!(stuck, Err(Error::Full)) {
                    break;
                }
            }
            Err(e) => panic!("{e}"),
        }
        assert!(sent < 256 << 20, "never stuck after {sent} bytes");
    }
    let waiter = {
        let handle = handle.clone();
        std::thread::spawn(move || handle.wait_writable(PATIENCE))
    };
    let mut got = vec![0u8; sent];
    peer.read_exact(&mut got).unwrap();
    assert!(
        waiter.join().unwrap().is_ok(),
        "woken once the peer drained"
    );
    handle.send(chunk).unwrap();
    drop(peer);
    assert!(eventually(|| handle.is_closed()));
    assert!(matches!(handle.wait_writable(PATIENCE), Err(Error::Closed)));
    server.shutdown(PATIENCE);
}
