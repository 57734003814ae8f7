//! At most one on_request per connection at any instant, in arrival order, in both
//! dispatch modes — even with a pool of workers and a client that pipelines.

mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use netloop::{Conn, Handler};

/// Handles 4-byte big-endian sequence numbers, one per call, sleeping in each call and
/// recording how many calls overlap on the same connection.
#[derive(Default)]
struct Recorder {
    max_overlap: AtomicUsize,
    out_of_order: AtomicUsize,
    calls: AtomicUsize,
}

struct PerConn {
    running: Arc<AtomicUsize>,
    next_expected: u32,
}

impl Handler for Recorder {
    type State = PerConn;

    fn on_connect(&self, _conn: &mut Conn) -> PerConn {
        PerConn {
            running: Arc::new(AtomicUsize::new(0)),
            next_expected: 0,
        }
    }

    fn on_request(&self, st: &mut PerConn, conn: &mut Conn) {
        let now = st.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_overlap.fetch_max(now, Ordering::SeqCst);
        self.calls.fetch_add(1, Ordering::SeqCst);
        // Long enough for more requests to arrive and for other workers to be free.
        std::thread::sleep(Duration::from_millis(2));
        if conn.input().len() >= 4 {
            let seq = u32::from_be_bytes(conn.input().peek(4).try_into().unwrap());
            if seq != st.next_expected {
                self.out_of_order.fetch_add(1, Ordering::SeqCst);
            }
            st.next_expected = seq + 1;
            let frame = conn.input().next(4);
            conn.output().write_bytes(frame);
        }
        st.running.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn one_call_in_flight_per_connection_and_requests_in_order() {
    const REQUESTS: u32 = 100;
    for mode in modes() {
        let rec = Arc::new(Recorder::default());
        let server = serve(mode, 1, rec.clone());
        let a = addr(&server);
        let errors = Arc::new(Mutex::new(Vec::new()));
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let errors = errors.clone();
                std::thread::spawn(move || {
                    let mut s = connect(a);
                    // Pipelined bursts: many requests are buffered while a call sleeps.
                    for burst in 0..(REQUESTS / 10) {
                        let mut msg = Vec::new();
                        for i in 0..10 {
                            msg.extend_from_slice(&(burst * 10 + i).to_be_bytes());
                        }
                        s.write_all(&msg).unwrap();
                        let mut back = vec![0u8; msg.len()];
                        s.read_exact(&mut back).unwrap();
                        if back != msg {
                            errors
                                .lock()
                                .unwrap()
                                .push(format!("burst {burst} echoed wrong"));
                        }
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        server.shutdown(PATIENCE);
        assert!(
            errors.lock().unwrap().is_empty(),
            "{:?}",
            errors.lock().unwrap()
        );
        assert_eq!(rec.max_overlap.load(Ordering::SeqCst), 1, "{mode:?}");
        assert_eq!(rec.out_of_order.load(Ordering::SeqCst), 0, "{mode:?}");
        assert!(rec.calls.load(Ordering::SeqCst) >= 4 * REQUESTS as usize);
    }
}
