//! Every connection gets a `tracing` span carrying its id, peer and poller, with events
//! when it opens and when it closes (with the reason).
//!
//! This binary installs a global subscriber, so it holds this one test only.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_connection_logs_open_and_close_inside_its_span() {
    let out = Captured::default();
    let writer = out.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let server = serve(netloop::Dispatch::Inline, 1, echo());
    let mut s = connect(addr(&server));
    let local = s.local_addr().unwrap();
    assert_eq!(round_trip(&mut s, b"traced"), b"traced");
    drop(s);
    assert!(eventually(|| server.stats().closed.peer_closed == 1));
    server.shutdown(PATIENCE);
    let log = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let span = format!("peer={local} poller=0");
    let open = log
        .lines()
        .find(|l| l.contains("connection open"))
        .unwrap_or_else(|| panic!("no open event in:\n{log}"));
    assert!(open.contains("conn{id=") && open.contains(&span), "{open}");
    let close = log
        .lines()
        .find(|l| l.contains("connection closed"))
        .unwrap_or_else(|| panic!("no close event in:\n{log}"));
    assert!(
        close.contains(&span) && close.contains("reason=peer closed"),
        "{close}"
    );
}
