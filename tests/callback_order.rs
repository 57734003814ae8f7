//! Callbacks run in the documented order — on_prepare → on_connect → on_request* →
//! [on_disconnect] → on_close (exactly once, last) — for every way a connection ends.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use common::*;
use netloop::{CloseReason, Conn, ConnHandle, ConnInfo, Dispatch, Handler};

#[derive(Clone)]
struct Logger {
    log: Arc<Mutex<Vec<String>>>,
    admit: bool,
    handles: mpsc::Sender<ConnHandle>,
}

impl Logger {
    fn push(&self, s: impl Into<String>) {
        self.log.lock().unwrap().push(s.into());
    }
}

impl Handler for Logger {
    type State = ();

    fn on_prepare(&self, _info: &ConnInfo) -> bool {
        self.push("prepare");
        self.admit
    }

    fn on_connect(&self, conn: &mut Conn) {
        self.push("connect");
        let _ = self.handles.send(conn.handle());
    }

    fn on_request(&self, _: &mut (), conn: &mut Conn) {
        self.push("request");
        let n = conn.input().len();
        let data = conn.input().next(n);
        if &data[..] == b"bye" {
            conn.close();
        }
        conn.output().write_bytes(data);
    }

    fn on_disconnect(&self, conn: &ConnHandle) {
        assert!(!conn.is_active());
        self.push("disconnect");
    }

    fn on_close(&self, _: (), reason: CloseReason) {
        self.push(format!("close:{reason:?}"));
    }
}

struct Case {
    log: Arc<Mutex<Vec<String>>>,
    server: netloop::ServerHandle,
    handles: mpsc::Receiver<ConnHandle>,
}

fn case(mode: Dispatch, admit: bool) -> Case {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let server = serve(
        mode,
        1,
        Logger {
            log: log.clone(),
            admit,
            handles: tx,
        },
    );
    Case {
        log,
        server,
        handles: rx,
    }
}

impl Case {
    /// Waits until the log ends with a close (or holds `n` entries) and returns it.
    fn settled_log(&self, n: usize) -> Vec<String> {
        assert!(eventually(|| self.log.lock().unwrap().len() >= n));
        self.log.lock().unwrap().clone()
    }
}

#[test]
fn handler_close_runs_callbacks_in_order_and_flushes_the_reply() {
    for mode in modes() {
        let c = case(mode, true);
        let mut s = connect(addr(&c.server));
        s.write_all(b"bye").unwrap();
        assert_eq!(
            read_to_close(&mut s),
            b"bye",
            "{mode:?}: reply sent before close"
        );
        let log = c.settled_log(4);
        assert_eq!(
            log,
            ["prepare", "connect", "request", "close:Local"],
            "{mode:?}"
        );
        c.server.shutdown(PATIENCE);
    }
}

#[test]
fn peer_close_runs_disconnect_before_close() {
    for mode in modes() {
        let c = case(mode, true);
        let mut s = connect(addr(&c.server));
        assert_eq!(round_trip(&mut s, b"hi"), b"hi");
        drop(s);
        let log = c.settled_log(5);
        assert_eq!(
            log,
            [
                "prepare",
                "connect",
                "request",
                "disconnect",
                "close:PeerClosed"
            ],
            "{mode:?}"
        );
        c.server.shutdown(PATIENCE);
    }
}

#[test]
fn half_closed_peer_still_gets_its_reply_then_close() {
    for mode in modes() {
        let c = case(mode, true);
        let mut s = connect(addr(&c.server));
        s.write_all(b"last words").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"last words", "{mode:?}");
        let log = c.settled_log(5);
        assert_eq!(log.last().unwrap(), "close:PeerClosed", "{mode:?}: {log:?}");
        c.server.shutdown(PATIENCE);
    }
}

#[test]
fn server_side_close_through_a_handle_runs_close_once() {
    for mode in modes() {
        let c = case(mode, true);
        let mut s = connect(addr(&c.server));
        let handle = c.handles.recv_timeout(PATIENCE).unwrap();
        handle.close().unwrap();
        assert!(read_to_close(&mut s).is_empty());
        let log = c.settled_log(3);
        assert_eq!(log, ["prepare", "connect", "close:Local"], "{mode:?}");
        assert!(handle.is_closed());
        assert!(
            handle.close().is_err(),
            "a second close reports it is closed"
        );
        c.server.shutdown(PATIENCE);
        assert_eq!(c.log.lock().unwrap().len(), 3, "on_close ran exactly once");
    }
}

#[test]
fn rejection_in_on_prepare_runs_nothing_else() {
    for mode in modes() {
        let c = case(mode, false);
        let mut s = connect(addr(&c.server));
        assert!(read_to_close(&mut s).is_empty());
        assert!(eventually(|| c.server.stats().rejected == 1));
        c.server.shutdown(PATIENCE);
        assert_eq!(*c.log.lock().unwrap(), ["prepare"], "{mode:?}");
        let stats = c.server.stats();
        assert_eq!((stats.accepted, stats.rejected, stats.active), (1, 1, 0));
    }
}

#[test]
fn shutdown_closes_an_idle_connection_with_reason_shutdown() {
    for mode in modes() {
        let c = case(mode, true);
        let mut s = connect(addr(&c.server));
        assert_eq!(round_trip(&mut s, b"x"), b"x");
        // In Pool mode the worker sends the reply before it hands the session back, and
        // a session still away when the drain begins is busy, not idle: wait until the
        // poller has it (it counts the call then).
        assert!(eventually(|| c.server.stats().handler_calls == 1));
        let report = c.server.shutdown(PATIENCE);
        assert_eq!(
            (report.idle_closed, report.drained, report.forced),
            (1, 0, 0),
            "{mode:?}"
        );
        assert!(read_to_close(&mut s).is_empty());
        assert_eq!(
            *c.log.lock().unwrap(),
            ["prepare", "connect", "request", "close:Shutdown"],
            "{mode:?}"
        );
    }
}
