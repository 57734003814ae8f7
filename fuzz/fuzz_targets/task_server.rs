//! The whole task server (hello, frames, its timers) fed a hello and then arbitrary
//! bytes split at arbitrary points, with the wait and disconnect timers firing in
//! between: nothing panics, and what it writes is a welcome followed by well-formed
//! server frames, a GOODBYE (if any) being the last. Task functions here answer on the
//! connection's turn (no run functions, whose replies come from worker threads).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netloop::task::codec::{ByteOrder, Parsed, ServerFrame};
use netloop::task::{Task, TaskConfig, TaskError, TaskServer};
use netloop::testing::Harness;
use netloop::TimerKey;

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let (order, marker) = if control & 1 == 0 {
        (ByteOrder::Little, b'L')
    } else {
        (ByteOrder::Big, b'B')
    };
    let tasks = TaskServer::new(TaskConfig::default().max_payload(4096).workers(1));
    tasks.register(1, "done", |_| Ok(Task::done())).unwrap();
    tasks
        .register(2, "refuses", |req| {
            if req.payload().len() % 2 == 1 {
                Err(TaskError("odd".into()))
            } else {
                Ok(Task::done())
            }
        })
        .unwrap();
    let mut h = Harness::new(tasks);
    let version = match order {
        ByteOrder::Little => [1, 0],
        ByteOrder::Big => [0, 1],
    };
    h.feed(&[b'N', b'L', b'T', b'K', marker, version[0], version[1], 0]);
    let mut out = h.take_output();
    assert_eq!(&out[..5], b"NLTK\x00", "welcomed");
    out.drain(..7);
    let split = (control >> 1) as usize % 29 + 1;
    for (i, piece) in data.chunks(split).enumerate() {
        h.feed(piece);
        if i % 7 == 6 {
            h.fire_timer(TimerKey(0xFD00 + (i as u16 / 7) % 2));
        }
        out.extend(h.take_output());
        assert!(!h.panicked(), "a callback panicked");
    }
    // The connection ends (its client leaves the server's list).
    h.close(netloop::CloseReason::PeerClosed);
    let mut rest = &out[..];
    while !rest.is_empty() {
        match ServerFrame::parse(rest, order) {
            Ok(Parsed::Done(frame, n)) => {
                rest = &rest[n..];
                if matches!(frame, ServerFrame::Goodbye(..)) {
                    assert!(rest.is_empty(), "a frame after GOODBYE");
                }
            }
            other => panic!("not a server frame: {other:?}"),
        }
    }
});
