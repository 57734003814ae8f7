//! The hub's Redis bridge against a real `redis-server` on loopback: two WebSocket
//! servers in one process, each with its own hub and bridge and its own clients;
//! publishes on either (from the test and from a handler on a client's message) reach
//! every subscriber on both exactly once; Redis killed and restarted on the same port,
//! the bridges reconnect and delivery resumes. A full queue drops and counts, and what
//! it held is sent once Redis is there. Both backends (via NETLOOP_BACKEND).
//!
//! `redis-server` (Debian package `redis-server`) must be installed: `.ci/run`
//! installs it. Without it these tests fail; they do not skip.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::ws::*;
use common::*;
use netloop::http::Request;
use netloop::ws::hub::redis::{BridgeConfig, BridgeStats, RedisBridge};
use netloop::ws::hub::Hub;
use netloop::ws::{self, Message, WsConn, WsHandler};
use netloop::{Server, ServerHandle};

const TOPIC: &str = "room";

/// A `redis-server` of the test's own, on a loopback port; killed when dropped (also
/// when the test panics).
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Starts one on a free port and waits until it answers.
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Redis { port, child: None };
        r.spawn();
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--logfile", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): these tests need it; install the \
                     Debian package redis-server (.ci/run does)"
                )
            });
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits (bounded) until `PING` is answered.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("redis-server on port {} exited: {status}", self.port);
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                s.set_read_timeout(Some(PATIENCE)).unwrap();
                let mut pong = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read_exact(&mut pong).is_ok()
                    && &pong == b"+PONG\r\n"
                {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "redis-server never answered");
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it and starts a new one on the same port (with no memory of the old one's
    /// subscriptions).
    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Subscribes every connection to [`TOPIC`]; whatever a client sends is published to
/// it (through the bridge, so to every server).
struct Member {
    hub: Hub,
}

impl WsHandler for Member {
    type State = ();
    fn on_open(&self, ws: &mut WsConn<'_>, _req: &Request) {
        assert!(self.hub.subscribe(&ws.handle(), TOPIC));
    }
    fn on_message(&self, _: &mut (), _ws: &mut WsConn<'_>, msg: Message) {
        self.hub.publish(TOPIC, msg);
    }
}

/// One netloop server with its hub, bridge and clients.
struct Node {
    name: &'static str,
    hub: Hub,
    bridge: RedisBridge,
    server: ServerHandle,
    clients: Vec<TcpStream>,
}

fn config() -> BridgeConfig {
    // Short waits so a restart is noticed and survived quickly; they bound, the test
    // asserts no timing.
    BridgeConfig::default()
        .prefix("netloop-test:")
        .backoff(Duration::from_millis(20), Duration::from_millis(500))
        .health_check(Duration::from_millis(200))
}

fn node(name: &'static str, redis: &Redis, clients: usize) -> Node {
    let hub = Hub::new();
    let bridge = RedisBridge::start(&hub, &redis.url(), config()).expect("bridge starts");
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(2)
        .serve(ws::server(
            Member { hub: hub.clone() },
            ws::Config::default(),
        ))
        .expect("server starts");
    let clients: Vec<TcpStream> = (0..clients)
        .map(|_| ws_connect(addr(&server), "").0)
        .collect();
    wait_for(&format!("{name}'s subscribers"), || {
        hub.subscribers(TOPIC) == clients.len()
    });
    Node {
        name,
        hub,
        bridge,
        server,
        clients,
    }
}

const CLIENTS: usize = 4;
const PUBLISHES: usize = 20;

/// Polls `cond` until it holds, at most [`PATIENCE`].
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn text(f: &Frame) -> String {
    assert_eq!(f.opcode, TEXT, "{f:?}");
    String::from_utf8(f.payload.clone()).unwrap()
}

/// Reads until `client` has seen every one of `expected`, failing on anything seen
/// twice or not expected.
fn read_all(
    who: &str,
    client: &mut TcpStream,
    expected: &[String],
    seen: &mut BTreeMap<String, u32>,
) {
    // Bounded: each read waits at most PATIENCE, and every frame is counted; a
    // duplicate or a stranger fails at once.
    while expected.iter().any(|m| !seen.contains_key(m)) {
        let m = text(&read_data_frame(client));
        assert!(
            expected.contains(&m),
            "{who} got {m:?}, expected one of {expected:?}"
        );
        let n = seen.entry(m.clone()).or_insert(0);
        *n += 1;
        assert_eq!(*n, 1, "{who} got {m:?} twice");
    }
}

/// One round: `PUBLISHES` publishes from the test on each hub and one message from
/// each of `a`'s clients, published by `a`'s handler; every client on both servers gets
/// each exactly once. Then two sync messages, one from each server, each published once
/// every client has seen what came before: Redis delivers messages to a subscriber in
/// the order it took them, so each server's copy of its own earlier messages (which it
/// must skip) reaches its bridge before the other server's sync, and a copy not skipped
/// would be read before the sync and fail the round.
fn round(tag: &str, a: &mut Node, b: &mut Node) {
    let mut expected = Vec::new();
    for i in 0..PUBLISHES {
        for n in [&*a, &*b] {
            let m = format!("{tag}-{}-hub-{i}", n.name);
            n.hub.publish(TOPIC, m.as_str());
            expected.push(m);
        }
    }
    for (i, c) in a.clients.iter_mut().enumerate() {
        let m = format!("{tag}-{}-client-{i}", a.name);
        send_frame(c, true, TEXT, m.as_bytes());
        expected.push(m);
    }
    let mut seen: Vec<BTreeMap<String, u32>> = Vec::new();
    for n in [&mut *a, &mut *b] {
        for (i, c) in n.clients.iter_mut().enumerate() {
            let mut s = BTreeMap::new();
            read_all(
                &format!("{tag} {} client {i}", n.name),
                c,
                &expected,
                &mut s,
            );
            seen.push(s);
        }
    }
    for b_first in [true, false] {
        let sync_on = if b_first { &*b } else { &*a };
        let sync = format!("{tag}-sync-{}", sync_on.name);
        sync_on.hub.publish(TOPIC, sync.as_str());
        let mut all = expected.clone();
        all.push(sync);
        let mut k = 0;
        for n in [&mut *a, &mut *b] {
            for (i, c) in n.clients.iter_mut().enumerate() {
                read_all(
                    &format!("{tag} {} client {i}", n.name),
                    c,
                    &all,
                    &mut seen[k],
                );
                k += 1;
            }
        }
        expected = all;
    }
    for s in &seen {
        assert_eq!(s.len(), expected.len());
        assert!(s.values().all(|n| *n == 1));
    }
}

/// `n`'s bridge counters once its publisher has counted at least `sent` publishes.
/// A pipeline is counted when Redis has answered it, which can be after every
/// subscriber (the other server's, through Redis, included) has the messages: the
/// clients having read them does not mean the count is there yet. Waiting for "at
/// least" keeps a count above `sent` visible to the caller's exact assertions.
fn stats_once_sent(n: &Node, sent: u64) -> BridgeStats {
    wait_for(
        &format!("{}'s publisher to count {sent} sent", n.name),
        || n.bridge.stats().sent >= sent,
    );
    n.bridge.stats()
}

fn wait_reconnected(n: &Node, before: &BridgeStats) {
    // Each of the bridge's two connections lost Redis and made a new connection.
    wait_for(&format!("{}'s bridge to reconnect", n.name), || {
        let s = n.bridge.stats();
        s.connected && s.reconnects >= before.reconnects + 2
    });
}

#[test]
fn publishes_reach_every_subscriber_on_both_servers_once_across_a_redis_restart() {
    let mut redis = Redis::start();
    let mut a = node("a", &redis, CLIENTS);
    let mut b = node("b", &redis, CLIENTS);
    for n in [&a, &b] {
        assert!(
            n.bridge.wait_connected(PATIENCE),
            "{}'s bridge connects",
            n.name
        );
    }
    let per_round = (2 * PUBLISHES + CLIENTS) as u64;

    round("r1", &mut a, &mut b);
    let sa = stats_once_sent(&a, per_round - PUBLISHES as u64 + 1);
    let sb = stats_once_sent(&b, PUBLISHES as u64 + 1);
    // a sent its publishes, its clients' and its sync; it received b's.
    assert_eq!(sa.sent, per_round - PUBLISHES as u64 + 1, "{sa:?}");
    assert_eq!(sb.sent, PUBLISHES as u64 + 1, "{sb:?}");
    assert_eq!(sb.received, sa.sent, "{sb:?}");
    assert_eq!(sa.received, sb.sent, "{sa:?}");
    // Each came back to its sender and was skipped, a's sync perhaps still on its way
    // (b's came back before a's sync was published).
    assert!(sa.skipped_own >= sa.sent - 1, "{sa:?}");
    assert_eq!(sb.skipped_own, sb.sent, "{sb:?}");
    for s in [&sa, &sb] {
        assert_eq!(
            (s.dropped, s.failed, s.invalid, s.reconnects),
            (0, 0, 0, 0),
            "{s:?}"
        );
    }

    let restarted = Instant::now();
    redis.restart();
    wait_reconnected(&a, &sa);
    wait_reconnected(&b, &sb);
    // A figure for the record, not asserted.
    eprintln!(
        "Redis restart to both bridges connected again: {:?} ({:?})",
        restarted.elapsed(),
        a.server.backend()
    );

    round("r2", &mut a, &mut b);
    let sa2 = stats_once_sent(&a, sa.sent + per_round - PUBLISHES as u64 + 1);
    let sb2 = stats_once_sent(&b, sb.sent + PUBLISHES as u64 + 1);
    assert_eq!(
        sa2.sent - sa.sent,
        per_round - PUBLISHES as u64 + 1,
        "{sa2:?}"
    );
    assert_eq!(sb2.sent - sb.sent, PUBLISHES as u64 + 1, "{sb2:?}");
    for s in [&sa2, &sb2] {
        // Nothing was being published while Redis was down.
        assert_eq!((s.dropped, s.failed, s.invalid), (0, 0, 0), "{s:?}");
    }
    // Every message reached every client once, and the hubs counted each delivery:
    // per round each hub delivered every message of both servers to its own clients.
    for n in [&a, &b] {
        let hub = n.hub.stats();
        assert_eq!(
            hub.delivered,
            2 * (per_round + 2) * CLIENTS as u64,
            "{hub:?}"
        );
        assert_eq!(hub.dropped, 0, "{hub:?}");
    }

    for n in [a, b] {
        let stats = n.bridge.stop();
        assert!(!stats.connected);
        n.server.shutdown(Duration::from_secs(5));
    }
}

#[test]
fn a_full_queue_drops_and_counts_and_what_it_held_is_sent_once_redis_is_there() {
    // Redis is not running yet: the bridge keeps trying, and queues for it.
    let mut redis = Redis {
        port: TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
        child: None,
    };
    let hub = Hub::new();
    let bridge = RedisBridge::start(&hub, &redis.url(), config().queue(2)).expect("bridge");
    for i in 0..5 {
        hub.publish("nobody", format!("m{i}"));
    }
    let s = bridge.stats();
    assert_eq!((s.sent, s.dropped, s.connected), (0, 3, false), "{s:?}");
    redis.spawn();
    assert!(bridge.wait_connected(PATIENCE), "the bridge connects");
    wait_for("the queued publishes to be sent", || {
        bridge.stats().sent == 2
    });
    let s = bridge.stop();
    // Connecting late is not a reconnection; nothing failed; its own two came back
    // (or were still on their way when it stopped).
    assert_eq!(
        (s.sent, s.dropped, s.failed, s.reconnects),
        (2, 3, 0, 0),
        "{s:?}"
    );
    assert!(s.skipped_own <= 2 && s.received == 0, "{s:?}");
}
