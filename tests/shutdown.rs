//! Graceful shutdown: idle connections close at once, a busy one finishes and its reply
//! arrives, one that outlives the deadline is cut off, every thread is joined, and the
//! report counts each case.

mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;
use netloop::{handler_fn, Dispatch, Server};

/// Names of this process's threads that netloop started.
fn netloop_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with("netloop-"))
        .collect()
}

/// Pool mode: "busy" is a handler still running. The request byte says how long.
fn pool_mode_case() {
    let running = Arc::new(AtomicUsize::new(0));
    let r = running.clone();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(2)
        .dispatch(Dispatch::Pool { threads: 4 })
        .serve(handler_fn(move |conn| {
            let cmd = conn.input().next(1);
            r.fetch_add(1, Ordering::SeqCst);
            let ms = match cmd[0] {
                b's' => 300,
                b'l' => 3000,
                _ => 0,
            };
            thread::sleep(Duration::from_millis(ms));
            conn.output().write(b"done");
        }))
        .unwrap();
    let a = addr(&server);
    let mut idle = connect(a);
    idle.write_all(b"i").unwrap();
    let mut done = [0u8; 4];
    idle.read_exact(&mut done).unwrap();
    assert_eq!(&done, b"done");
    // The worker sends the reply before it hands the session back, and a session still
    // away when the drain begins is busy, not idle: wait until the poller has it (it
    // counts the call then).
    assert!(eventually(|| server.stats().handler_calls == 1));
    let mut short = connect(a);
    let mut long = connect(a);
    short.write_all(b"s").unwrap();
    long.write_all(b"l").unwrap();
    assert!(eventually(|| running.load(Ordering::SeqCst) == 3));
    assert!(!netloop_threads().is_empty());

    let report = server.shutdown(Duration::from_millis(1000));
    assert_eq!(
        (report.idle_closed, report.drained, report.forced),
        (1, 1, 1),
        "pool: {report:?}"
    );
    assert!(read_to_close(&mut idle).is_empty());
    assert_eq!(
        read_to_close(&mut short),
        b"done",
        "the busy one's reply arrives"
    );
    assert!(
        read_to_close(&mut long).is_empty(),
        "the one past the deadline is cut off without its reply"
    );
    let stats = server.stats();
    assert_eq!(stats.closed.shutdown, 2);
    assert_eq!(stats.closed.shutdown_forced, 1);
    assert_eq!(stats.active, 0);
}

/// Inline mode: "busy" is output the peer has not taken yet.
fn inline_mode_case() {
    const BIG: usize = 8 << 20;
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .serve(handler_fn(|conn| {
            let n = conn.input().len();
            conn.input().skip(n);
            conn.output()
                .write_bytes(netloop::Bytes::from(vec![b'x'; BIG]));
        }))
        .unwrap();
    let a = addr(&server);
    let idle = connect(a);
    let mut reader = connect(a);
    let mut stuck = connect(a);
    reader.write_all(b"go").unwrap();
    stuck.write_all(b"go").unwrap();
    assert!(eventually(|| server.stats().handler_calls == 2));
    // The reader starts taking its 8 MiB only after the shutdown began.
    let reading = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        got.len()
    });
    let report = server.shutdown(Duration::from_millis(1500));
    assert_eq!(
        (report.idle_closed, report.drained, report.forced),
        (1, 1, 1),
        "inline: {report:?}"
    );
    assert_eq!(
        reading.join().unwrap(),
        BIG,
        "every byte flushed before close"
    );
    let mut partial = Vec::new();
    let _ = stuck.read_to_end(&mut partial);
    assert!(partial.len() < BIG, "the stuck peer was cut off");
    drop(idle);
}

#[test]
fn shutdown_closes_idle_drains_busy_forces_late_and_joins_all_threads() {
    pool_mode_case();
    inline_mode_case();
    assert!(
        eventually(|| netloop_threads().is_empty()),
        "{:?}",
        netloop_threads()
    );
}

#[test]
fn shutdown_from_a_stopper_wakes_wait_and_is_idempotent() {
    let server = serve(Dispatch::Inline, 1, echo());
    let stopper = server.stopper();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        stopper.stop(Duration::from_secs(1));
    });
    let report = server.wait();
    t.join().unwrap();
    assert_eq!(server.shutdown(Duration::ZERO), report);
    assert!(
        std::net::TcpStream::connect(addr(&server)).is_err(),
        "listener closed"
    );
}
