//! A panicking handler closes only its own connection (reason Panic), is counted, and
//! the server keeps serving everyone else.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use netloop::{CloseReason, Conn, Handler};

struct Fragile {
    closes: Arc<Mutex<Vec<CloseReason>>>,
}

impl Handler for Fragile {
    type State = ();
    fn on_connect(&self, _: &mut Conn) {}
    fn on_request(&self, _: &mut (), conn: &mut Conn) {
        let n = conn.input().len();
        let data = conn.input().next(n);
        if data.starts_with(b"boom") {
            panic!("handler bug (expected by the test)");
        }
        conn.output().write_bytes(data);
    }
    fn on_close(&self, _: (), reason: CloseReason) {
        self.closes.lock().unwrap().push(reason);
    }
}

#[test]
fn a_panicking_handler_closes_only_its_connection() {
    for mode in modes() {
        let closes = Arc::new(Mutex::new(Vec::new()));
        let server = serve(
            mode,
            1,
            Fragile {
                closes: closes.clone(),
            },
        );
        let a = addr(&server);
        let mut healthy: Vec<_> = (0..5).map(|_| connect(a)).collect();
        for _ in 0..3 {
            let mut victim = connect(a);
            victim.write_all(b"boom").unwrap();
            assert!(read_to_close(&mut victim).is_empty(), "{mode:?}");
            for (i, h) in healthy.iter_mut().enumerate() {
                let msg = format!("still here {i}");
                assert_eq!(round_trip(h, msg.as_bytes()), msg.as_bytes());
            }
        }
        assert!(eventually(|| closes.lock().unwrap().len() == 3));
        assert_eq!(*closes.lock().unwrap(), vec![CloseReason::Panic; 3]);
        let stats = server.stats();
        assert_eq!(stats.panics, 3, "{mode:?}");
        assert_eq!(stats.closed.panic, 3);
        assert_eq!(stats.active, 5);
        drop(healthy);
        server.shutdown(PATIENCE);
    }
}
