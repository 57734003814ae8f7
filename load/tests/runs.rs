//! End-to-end runs of the engine against netloop servers started in-process on
//! 127.0.0.1: each protocol closed loop and open loop for about a second.
//!
//! The assertions are about counts, never about latency figures: on a shared two-core
//! machine timing is noise, but a run that completes requests with no errors, and an
//! open-loop run that completes about `rate × duration` of them, says the engine works.

use std::time::Duration;

use netloop::http::{Http, Request, Response};
use netloop::{handler_fn, ws, Conn, Server, ServerHandle};
use netloop_load::{run, Config, Load, Protocol, Report, RequestSpec};

/// Echo: every byte back, without copying.
fn echo_server() -> ServerHandle {
    Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .serve(handler_fn(|conn| {
            let n = conn.input().len();
            let data = conn.input().next(n);
            conn.output().write_bytes(data);
        }))
        .expect("echo server")
}

/// Framed: each complete frame (4-byte big-endian length + payload) sent back whole.
fn framed(conn: &mut Conn) {
    loop {
        let input = conn.input();
        if input.len() < 4 {
            input.want(4);
            return;
        }
        let header = input.peek(4);
        let len = 4 + u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if input.len() < len {
            input.want(len);
            return;
        }
        let frame = input.next(len);
        conn.output().write_bytes(frame);
    }
}

fn framed_server() -> ServerHandle {
    Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .serve(handler_fn(framed))
        .expect("framed server")
}

fn plaintext(_req: &Request, res: &mut Response<'_>) {
    res.header("Content-Type", "text/plain")
        .body(b"Hello, World!");
}

fn http_server() -> ServerHandle {
    Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .serve(Http::new(plaintext))
        .expect("http server")
}

/// WebSocket echo on netloop's own server.
struct WsEcho;

impl ws::WsHandler for WsEcho {
    type State = ();
    fn on_open(&self, _: &mut ws::WsConn<'_>, _: &Request) {}
    fn on_message(&self, _: &mut (), conn: &mut ws::WsConn<'_>, msg: ws::Message) {
        conn.send(msg);
    }
}

fn ws_server() -> ServerHandle {
    Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .serve(ws::server(WsEcho, ws::Config::default()))
        .expect("ws server")
}

fn server(protocol: Protocol) -> ServerHandle {
    match protocol {
        Protocol::Echo => echo_server(),
        Protocol::Framed => framed_server(),
        Protocol::Http => http_server(),
        Protocol::Ws => ws_server(),
    }
}

/// About 1.2 s of load on 8 connections against a fresh server.
fn load(protocol: Protocol, load: Load) -> Report {
    let server = server(protocol);
    let addr = server.local_addrs()[0].to_string();
    let request = RequestSpec {
        protocol,
        size: 100,
        path: "/".into(),
        host: addr.clone(),
    };
    let mut config = Config::new(addr, request, 8);
    config.load = load;
    config.warmup = Duration::from_millis(200);
    config.duration = Duration::from_secs(1);
    let mut phases = Vec::new();
    let report = run(&config, |p| phases.push(p.phase)).expect("run");
    server.shutdown(Duration::from_secs(1));
    assert!(
        phases.len() >= 5,
        "progress is reported about ten times a second"
    );
    report
}

fn assert_clean(r: &Report) {
    let m = &r.measurements;
    assert_eq!(
        m.errors.total, 0,
        "errors: {:?}, first: {:?}",
        m.errors, m.first_error
    );
    assert_eq!(m.reconnects, 0);
    assert!((m.seconds - 1.0).abs() < 1e-6);
    assert_eq!(m.latency_us.samples, m.requests);
    assert!(m.completed_total >= m.requests);
    assert!(m.sent_total >= m.completed_total);
    // What was outstanding at the end was collected before closing.
    assert_eq!(m.unanswered, 0);
    assert_eq!(m.sent_total, m.completed_total);
}

fn closed_loop(protocol: Protocol, pipeline: usize) {
    let r = load(protocol, Load::Closed { pipeline });
    assert_clean(&r);
    let m = &r.measurements;
    // Even a slow debug build on a busy machine manages far more than this.
    assert!(m.requests > 500, "{} requests in 1 s", m.requests);
    assert!(m.send_lag_us.is_none());
}

fn open_loop(protocol: Protocol) {
    let rate = 2000.0;
    let r = load(protocol, Load::Open { rate });
    assert_clean(&r);
    let m = &r.measurements;
    // The schedule fixes how many requests fall in the window; timer resolution and
    // scheduling noise only move a few across its edges. A generous tolerance keeps this
    // a check of the pacing, not of the machine.
    let expected = rate * m.seconds;
    assert!(
        (m.requests as f64 - expected).abs() < expected * 0.2,
        "{} requests at {rate}/s over {} s",
        m.requests,
        m.seconds
    );
    assert!(m.send_lag_us.as_ref().is_some_and(|l| l.samples > 0));
    assert_eq!(r.target_rate, Some(rate));
}

#[test]
fn echo_closed_loop() {
    closed_loop(Protocol::Echo, 1);
}

#[test]
fn framed_closed_loop() {
    closed_loop(Protocol::Framed, 1);
}

#[test]
fn http_closed_loop() {
    closed_loop(Protocol::Http, 1);
}

#[test]
fn ws_closed_loop_pipelined() {
    closed_loop(Protocol::Ws, 4);
}

#[test]
fn ws_open_loop() {
    open_loop(Protocol::Ws);
}

#[test]
fn http_closed_loop_pipelined() {
    closed_loop(Protocol::Http, 8);
}

#[test]
fn echo_open_loop() {
    open_loop(Protocol::Echo);
}

#[test]
fn framed_open_loop() {
    open_loop(Protocol::Framed);
}

#[test]
fn http_open_loop() {
    open_loop(Protocol::Http);
}

#[test]
fn wrong_replies_are_counted_as_bad_responses() {
    // An "echo" server that answers in upper case: every reply differs.
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .serve(handler_fn(|conn| {
            let n = conn.input().len();
            let data = conn.input().next(n).to_ascii_uppercase();
            conn.output().write(&data);
        }))
        .expect("server");
    let addr = server.local_addrs()[0].to_string();
    let request = RequestSpec {
        protocol: Protocol::Echo,
        size: 16,
        path: "/".into(),
        host: addr.clone(),
    };
    let mut config = Config::new(addr, request, 2);
    config.warmup = Duration::ZERO;
    config.duration = Duration::from_millis(300);
    let r = run(&config, |_| {}).expect("run");
    server.shutdown(Duration::from_secs(1));
    let m = &r.measurements;
    assert!(m.errors.bad_response >= 2, "{:?}", m.errors);
    assert_eq!(m.errors.total, m.errors.bad_response + m.errors.connect);
    assert_eq!(m.requests, 0);
    assert!(m.reconnects >= 1, "lost connections are re-established");
    assert!(m.first_error.as_deref().unwrap().contains("differs"));
}

#[test]
fn nothing_listening_is_a_connect_error() {
    // Bind a port and close it again: nothing listens there afterwards.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let request = RequestSpec {
        protocol: Protocol::Http,
        size: 0,
        path: "/".into(),
        host: addr.clone(),
    };
    let config = Config::new(addr, request, 4);
    let err = run(&config, |_| {}).unwrap_err();
    assert!(matches!(err, netloop_load::Error::Connect { .. }), "{err}");
}

#[test]
fn an_announced_close_is_not_an_error_and_the_connection_comes_back() {
    // Every response says `Connection: close`: each connection serves one request, then
    // the controller re-establishes it.
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .serve(Http::new(|_req: &Request, res: &mut Response<'_>| {
            res.close().body(b"bye");
        }))
        .expect("server");
    let addr = server.local_addrs()[0].to_string();
    let request = RequestSpec {
        protocol: Protocol::Http,
        size: 0,
        path: "/".into(),
        host: addr.clone(),
    };
    let mut config = Config::new(addr, request, 2);
    config.load = Load::Closed { pipeline: 2 };
    config.warmup = Duration::ZERO;
    config.duration = Duration::from_millis(350);
    let r = run(&config, |_| {}).expect("run");
    server.shutdown(Duration::from_secs(1));
    let m = &r.measurements;
    assert_eq!(m.errors.total, 0, "{:?} {:?}", m.errors, m.first_error);
    assert!(m.reconnects >= 2, "{} reconnects", m.reconnects);
    assert!(m.requests >= 4, "{} requests", m.requests);
    // The second pipelined request on each connection is never answered.
    assert_eq!(m.sent_total, m.completed_total + m.unanswered);
    assert!(m.unanswered >= m.completed_total);
}
