//! A handler that returns without consuming (an incomplete frame) is not called again
//! until new bytes arrive, or until the amount it declared with `want` is buffered.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use netloop::handler_fn;

/// A 4-byte length-prefixed frame parser that waits for whole frames.
fn framed(calls: Arc<AtomicUsize>, use_want: bool) -> impl netloop::Handler {
    handler_fn(move |conn| {
        calls.fetch_add(1, Ordering::SeqCst);
        let input = conn.input();
        if input.len() < 4 {
            return;
        }
        let len = u32::from_be_bytes(input.peek(4).try_into().unwrap()) as usize;
        if input.len() < 4 + len {
            if use_want {
                input.want(4 + len);
            }
            return;
        }
        input.skip(4);
        let body = input.next(len);
        conn.output().write_bytes(body);
    })
}

/// Sends `bytes` and waits until the server has read them (bytes_in grew) and made at
/// least `calls_by_then` calls, so the call count is looked at only after the server had
/// every chance to (wrongly) spin. The bytes are counted before the handler runs (on a
/// worker, in Pool mode), so the wait for the call is its own.
fn send_and_settle(
    s: &mut std::net::TcpStream,
    server: &netloop::ServerHandle,
    bytes: &[u8],
    calls: &AtomicUsize,
    calls_by_then: usize,
) {
    let before = server.stats().bytes_in;
    s.write_all(bytes).unwrap();
    assert!(eventually(
        || server.stats().bytes_in >= before + bytes.len() as u64
    ));
    settle(calls, calls_by_then);
}

/// Waits until `calls` reaches `at_least`, then gives a spinning server a few loop turns
/// to show itself by calling more.
fn settle(calls: &AtomicUsize, at_least: usize) {
    assert!(eventually(|| calls.load(Ordering::SeqCst) >= at_least));
    std::thread::sleep(std::time::Duration::from_millis(50));
}

#[test]
fn an_incomplete_frame_is_retried_only_when_new_bytes_arrive() {
    for mode in modes() {
        let calls = Arc::new(AtomicUsize::new(0));
        let server = serve(mode, 1, framed(calls.clone(), false));
        let mut s = connect(addr(&server));
        // Header says 10 bytes; send them three at a time.
        send_and_settle(&mut s, &server, &[0, 0, 0, 10, b'a', b'b', b'c'], &calls, 1);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "{mode:?}: one call per arrival"
        );
        send_and_settle(&mut s, &server, b"def", &calls, 2);
        assert_eq!(calls.load(Ordering::SeqCst), 2, "{mode:?}");
        let mut rest = b"ghij".to_vec();
        rest.extend_from_slice(&[0, 0, 0]);
        s.write_all(&rest).unwrap();
        let mut got = [0u8; 10];
        std::io::Read::read_exact(&mut s, &mut got).unwrap();
        assert_eq!(&got, b"abcdefghij");
        // The completed frame was consumed (call 3); the trailing partial header then
        // got one more call that consumed nothing; and nothing after that.
        settle(&calls, 4);
        assert_eq!(calls.load(Ordering::SeqCst), 4, "{mode:?}");
        server.shutdown(PATIENCE);
    }
}

#[test]
fn want_suppresses_calls_until_the_declared_amount_is_buffered() {
    for mode in modes() {
        let calls = Arc::new(AtomicUsize::new(0));
        let server = serve(mode, 1, framed(calls.clone(), true));
        let mut s = connect(addr(&server));
        let body = payload(1000, 3);
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        send_and_settle(&mut s, &server, &frame[..100], &calls, 1);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{mode:?}");
        // Still short of the declared 1004 bytes: no call, however many arrivals.
        for chunk in frame[100..1000].chunks(300) {
            send_and_settle(&mut s, &server, chunk, &calls, 1);
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "{mode:?}: want() not honoured"
        );
        s.write_all(&frame[1000..]).unwrap();
        let mut got = vec![0u8; body.len()];
        std::io::Read::read_exact(&mut s, &mut got).unwrap();
        assert_eq!(got, body);
        assert_eq!(calls.load(Ordering::SeqCst), 2, "{mode:?}");
        server.shutdown(PATIENCE);
    }
}
