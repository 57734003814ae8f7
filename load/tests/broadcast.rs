//! Broadcast mode end to end against an in-process `examples/ws_broadcast`-like server
//! (one hub topic, every message published to every connection) on 127.0.0.1.
//!
//! As in `runs.rs`, the assertions are about counts (rounds, deliveries, errors), never
//! about timings.

use std::time::Duration;

use netloop::http::Request;
use netloop::ws::hub::Hub;
use netloop::ws::{self, Message, WsConn, WsHandler};
use netloop::{Server, ServerHandle};
use netloop_load::{run, Config, Load, Protocol, Report, RequestSpec};

const TOPIC: &str = "broadcast";

/// Every connection subscribes; every message is published to all of them.
struct Broadcast {
    hub: Hub,
    /// Publish each message this many times (1: the real thing; 2: a server that
    /// sends more than a round asked for).
    copies: usize,
}

impl WsHandler for Broadcast {
    type State = ();
    fn on_open(&self, ws: &mut WsConn<'_>, _: &Request) {
        self.hub.subscribe(&ws.handle(), TOPIC);
    }
    fn on_message(&self, _: &mut (), _: &mut WsConn<'_>, msg: Message) {
        for _ in 0..self.copies {
            self.hub.publish(TOPIC, msg.clone());
        }
    }
}

fn server(copies: usize) -> (ServerHandle, Hub) {
    let hub = Hub::new();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .serve(ws::server(
            Broadcast {
                hub: hub.clone(),
                copies,
            },
            ws::Config::default(),
        ))
        .expect("broadcast server");
    (server, hub)
}

/// A broadcast run of `conns` connections, `senders` of them sending, against a fresh
/// server that publishes each message `copies` times.
fn broadcast(conns: usize, senders: usize, rounds: Option<u64>, copies: usize) -> (Report, Hub) {
    let (server, hub) = server(copies);
    let addr = server.local_addrs()[0].to_string();
    let request = RequestSpec {
        protocol: Protocol::Ws,
        size: 20,
        path: "/".into(),
        host: addr.clone(),
    };
    let mut config = Config::new(addr, request, conns);
    config.load = Load::Broadcast { senders, rounds };
    config.warmup = Duration::ZERO;
    config.duration = Duration::from_secs(1);
    let report = run(&config, |_| {}).expect("run");
    server.shutdown(Duration::from_secs(1));
    (report, hub)
}

#[test]
fn every_round_delivers_n_squared_messages() {
    let (r, hub) = broadcast(10, 10, None, 1);
    let m = &r.measurements;
    assert_eq!(
        m.errors.total, 0,
        "errors: {:?}, first: {:?}",
        m.errors, m.first_error
    );
    assert_eq!(r.mode, "broadcast");
    let rounds = m.rounds_total.expect("rounds reported");
    // Even a debug build on a busy machine completes far more than this in a second.
    assert!(rounds > 20, "{rounds} rounds");
    // Every round ended with all its deliveries (the last one was drained before
    // closing): 10 messages sent, each delivered to 10 connections.
    assert_eq!(m.sent_total, 10 * rounds);
    assert_eq!(m.completed_total, 100 * rounds);
    assert_eq!(m.unanswered, 0);
    // The window is the whole run but for the rounds that end after it closed (the one
    // in progress, and any started before the controller's next tick stops the run; how
    // many depends on the machine's load): one latency sample per recorded round.
    let recorded = m.rounds.expect("rounds in the window");
    assert!(recorded > 0 && recorded <= rounds, "{recorded} of {rounds}");
    assert_eq!(m.latency_us.samples, recorded);
    // Deliveries in the window: every recorded round's, and part of a round that
    // straddles its end.
    assert!(
        m.requests >= 100 * recorded && m.requests <= m.completed_total,
        "{} in the window, {} in all, {recorded} rounds recorded",
        m.requests,
        m.completed_total
    );
    // The server saw the same: one publish per message, ten deliveries each.
    let stats = hub.stats();
    assert_eq!(stats.published, m.sent_total);
    assert_eq!(stats.delivered, m.completed_total);
}

#[test]
fn a_round_count_ends_the_run_early_and_few_senders_reach_everyone() {
    let (r, _) = broadcast(12, 3, Some(5), 1);
    let m = &r.measurements;
    assert_eq!(m.errors.total, 0, "{:?} {:?}", m.errors, m.first_error);
    assert_eq!(r.senders, Some(3));
    assert_eq!(m.rounds_total, Some(5));
    assert_eq!(m.sent_total, 3 * 5);
    assert_eq!(m.completed_total, 12 * 3 * 5);
    // The window ended when the fifth round did, well before the second was up.
    assert!(m.seconds < 1.0, "{} s", m.seconds);
}

#[test]
fn deliveries_beyond_a_round_are_bad_responses() {
    // Each message published twice: every connection receives twice what the round
    // sent, which the generator reports (and the run still ends).
    let (r, _) = broadcast(4, 4, None, 2);
    let m = &r.measurements;
    assert!(m.errors.bad_response >= 1, "{:?}", m.errors);
    assert!(m
        .first_error
        .as_deref()
        .is_some_and(|e| e.contains("more messages in a round")));
}

#[test]
fn broadcast_needs_websocket_and_senders_within_the_connections() {
    let request = |protocol| RequestSpec {
        protocol,
        size: 20,
        path: "/".into(),
        host: "127.0.0.1:9".into(),
    };
    let mut c = Config::new("127.0.0.1:9", request(Protocol::Echo), 4);
    c.load = Load::Broadcast {
        senders: 4,
        rounds: None,
    };
    assert!(c.validate().is_err());
    let mut c = Config::new("127.0.0.1:9", request(Protocol::Ws), 4);
    for (senders, rounds) in [(0, None), (5, None), (4, Some(0))] {
        c.load = Load::Broadcast { senders, rounds };
        assert!(c.validate().is_err(), "{senders} {rounds:?}");
    }
    c.load = Load::Broadcast {
        senders: 4,
        rounds: Some(1),
    };
    assert!(c.validate().is_ok());
}
