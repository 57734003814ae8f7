//! Steady state allocates nothing per request: after a warm-up, echoing N requests
//! costs the same number of heap allocations whether N is 1,000 or 10,000.
//!
//! This binary installs a counting global allocator, so it holds this one test only.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use netloop::{Dispatch, Server};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: defers every operation to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Echoes `n` 1 KiB requests over each client (buffers allocated up front) and returns
/// the heap allocations made meanwhile, by the whole process.
fn allocations_for(clients: &mut [TcpStream], n: usize, msg: &[u8], back: &mut [u8]) -> u64 {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..n {
        for c in clients.iter_mut() {
            c.write_all(msg).unwrap();
            c.read_exact(back).unwrap();
        }
    }
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

/// Adds settings to a server builder.
type Configure = fn(netloop::Builder) -> netloop::Builder;

#[test]
fn echo_allocations_do_not_grow_with_the_number_of_requests() {
    let timed = |b: netloop::Builder| {
        // Every request re-arms the idle, read and write timers on the wheel.
        b.idle_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(30))
            .write_timeout(Duration::from_secs(30))
    };
    let plain = |b: netloop::Builder| b;
    let configs: [(&str, Dispatch, Configure); 4] = [
        ("inline", Dispatch::Inline, plain),
        ("pool", Dispatch::Pool { threads: 4 }, plain),
        ("inline+timeouts", Dispatch::Inline, timed),
        ("pool+timeouts", Dispatch::Pool { threads: 4 }, timed),
    ];
    for (name, mode, configure) in configs {
        let server = configure(
            Server::builder()
                .listen("127.0.0.1:0")
                .pollers(1)
                .dispatch(mode),
        )
        .serve(echo())
        .unwrap();
        let mut clients: Vec<_> = (0..4).map(|_| connect(addr(&server))).collect();
        let msg = payload(1024, 9);
        let mut back = vec![0u8; msg.len()];
        allocations_for(&mut clients, 500, &msg, &mut back); // warm-up
        let small = allocations_for(&mut clients, 250, &msg, &mut back);
        let large = allocations_for(&mut clients, 2500, &msg, &mut back);
        assert_eq!(back, msg);
        eprintln!("{name}: {small} allocations for 1,000 requests, {large} for 10,000");
        // 9,000 more requests may not cost more than a handful of extra allocations.
        assert!(
            large <= small + 8,
            "{name}: {small} allocations for 1,000 requests but {large} for 10,000"
        );
        drop(clients);
        server.shutdown(PATIENCE);
    }
    keyed_timer_rearming_does_not_allocate();
    #[cfg(feature = "http")]
    http_plaintext_allocations_do_not_grow();
}

/// Echoes, and re-arms two keyed timers and cancels a third on every request (a
/// protocol's ping interval and pong deadline): once each key has its place, re-arming
/// allocates nothing.
fn keyed_timer_rearming_does_not_allocate() {
    use netloop::{Conn, Handler, TimerKey};
    struct TimedEcho;
    impl Handler for TimedEcho {
        type State = ();
        fn on_connect(&self, _: &mut Conn) {}
        fn on_request(&self, _: &mut (), conn: &mut Conn) {
            conn.set_timer(TimerKey(1), Duration::from_secs(30));
            conn.set_timer(TimerKey(2), Duration::from_secs(60));
            conn.cancel_timer(TimerKey(3));
            let n = conn.input().len();
            let data = conn.input().next(n);
            conn.output().write_bytes(data);
        }
    }
    for mode in modes() {
        let server = serve(mode, 1, TimedEcho);
        let mut clients: Vec<_> = (0..4).map(|_| connect(addr(&server))).collect();
        let msg = payload(1024, 5);
        let mut back = vec![0u8; msg.len()];
        allocations_for(&mut clients, 500, &msg, &mut back);
        let small = allocations_for(&mut clients, 250, &msg, &mut back);
        let large = allocations_for(&mut clients, 2500, &msg, &mut back);
        assert_eq!(back, msg);
        eprintln!(
            "keyed timers {mode:?}: {small} allocations for 1,000 requests, {large} for 10,000"
        );
        assert!(
            large <= small + 8,
            "keyed timers {mode:?}: {small} allocations for 1,000 requests but {large} for 10,000"
        );
        drop(clients);
        server.shutdown(PATIENCE);
    }
}

/// The HTTP layer too: keep-alive plaintext requests allocate nothing per request (the
/// Date header is formatted into a fixed buffer once a second).
#[cfg(feature = "http")]
fn http_plaintext_allocations_do_not_grow() {
    use netloop::http::{Http, Request, Response};
    fn hello(_req: &Request, res: &mut Response<'_>) {
        res.header("Content-Type", "text/plain")
            .body(b"Hello, World!");
    }
    for mode in [Dispatch::Inline, Dispatch::Pool { threads: 4 }] {
        let server = serve(mode, 1, Http::new(hello));
        let mut clients: Vec<_> = (0..4).map(|_| connect(addr(&server))).collect();
        let req = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n";
        // Status line, four headers and the body: a fixed 132 bytes.
        let mut back = vec![0u8; 132];
        allocations_for(&mut clients, 500, req, &mut back);
        let small = allocations_for(&mut clients, 250, req, &mut back);
        let large = allocations_for(&mut clients, 2500, req, &mut back);
        assert!(
            back.ends_with(b"\r\n\r\nHello, World!"),
            "{:?}",
            String::from_utf8_lossy(&back)
        );
        eprintln!("http {mode:?}: {small} allocations for 1,000 requests, {large} for 10,000");
        assert!(
            large <= small + 8,
            "http {mode:?}: {small} allocations for 1,000 requests but {large} for 10,000"
        );
        drop(clients);
        server.shutdown(PATIENCE);
    }
}
