//! The broadcast hub: exact delivery to a thousand subscribers across pollers;
//! subscribers leaving by every way a connection can end while publishes run (nothing
//! sent after a Close, counts exact); a stalled subscriber under each policy, bounded,
//! the others unaffected; per-publisher order with many publishing threads.

mod common;

use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::ws::*;
use common::*;
use netloop::http::Request;
use netloop::ws::hub::Hub;
use netloop::ws::{self, Message, WsConn, WsHandler};
use netloop::{Dispatch, Overflow, Server, ServerHandle};

const TOPIC: &str = "news";

/// Subscribes every connection to [`TOPIC`]; a text message "bye" makes the server close
/// the connection, any other is published to the topic.
struct Members {
    hub: Hub,
}

impl WsHandler for Members {
    type State = ();
    fn on_open(&self, ws: &mut WsConn<'_>, _req: &Request) {
        assert!(self.hub.subscribe(&ws.handle(), TOPIC));
    }
    fn on_message(&self, _: &mut (), ws: &mut WsConn<'_>, msg: Message) {
        if msg.as_bytes() == &b"bye"[..] {
            ws.close(1000, "bye");
        } else {
            self.hub.publish(TOPIC, msg);
        }
    }
}

fn serve(mode: Dispatch, hub: &Hub, config: ws::Config) -> ServerHandle {
    Server::builder()
        .listen("127.0.0.1:0")
        .pollers(2)
        .dispatch(mode)
        .serve(ws::server(Members { hub: hub.clone() }, config))
        .expect("server starts")
}

/// Reads data frames until `n` have come; pings are skipped (this client never answers).
fn read_texts(s: &mut TcpStream, n: usize) -> Vec<String> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let f = read_frame(s).expect("a frame");
        match f.opcode {
            TEXT => got.push(String::from_utf8(f.payload).unwrap()),
            PING | PONG => {}
            other => panic!("unexpected opcode {other:#x} after {} messages", got.len()),
        }
    }
    got
}

#[test]
fn a_publish_reaches_each_of_a_thousand_subscribers_across_pollers_exactly_once() {
    const SUBSCRIBERS: usize = 1000;
    const MESSAGES: usize = 5;
    let hub = Hub::new();
    let server = serve(Dispatch::Inline, &hub, ws::Config::default());
    let mut clients: Vec<TcpStream> = (0..SUBSCRIBERS)
        .map(|_| ws_connect(addr(&server), "").0)
        .collect();
    assert!(eventually(|| hub.subscribers(TOPIC) == SUBSCRIBERS));
    for i in 0..MESSAGES {
        hub.publish(TOPIC, Message::from(format!("m{i}").as_str()));
    }
    let want: Vec<String> = (0..MESSAGES).map(|i| format!("m{i}")).collect();
    for c in &mut clients {
        assert_eq!(read_texts(c, MESSAGES), want);
    }
    // Nothing more: one delivery per message per subscriber.
    for c in clients.iter_mut().take(20) {
        with_read_timeout(c, Duration::from_millis(50));
        assert!(read_frame(c).is_err(), "a duplicate arrived");
    }
    let stats = hub.stats();
    assert_eq!(stats.published, MESSAGES as u64);
    assert!(eventually(
        || hub.stats().delivered == (SUBSCRIBERS * MESSAGES) as u64
    ));
    assert_eq!((stats.topics, stats.subscriptions), (1, SUBSCRIBERS));
    assert!(
        server.stats().pollers.iter().all(|p| p.active > 0),
        "spread over pollers"
    );
    drop(clients);
    assert!(eventually(|| hub.subscribers(TOPIC) == 0));
    assert!(hub.topics().is_empty(), "an empty topic leaves the hub");
    server.shutdown(PATIENCE);
}

/// How one subscriber leaves.
#[derive(Clone, Copy, Debug)]
enum Leave {
    /// Sends a Close and waits for the answer.
    PeerClose,
    /// Resets the connection.
    Reset,
    /// Asks the server to close ("bye").
    ServerClose,
    /// Never answers the server's pings.
    Silent,
    /// Stays until the server shuts down.
    Stays,
}

#[test]
fn subscribers_leave_at_once_by_every_way_a_connection_ends_while_publishes_run() {
    for mode in modes() {
        let hub = Hub::new();
        // Pings every 100 ms, 200 ms for the pong: a silent peer is gone within ~300 ms.
        let config = ws::Config::default()
            .ping_interval(Some(Duration::from_millis(100)))
            .pong_timeout(Duration::from_millis(200));
        let server = serve(mode, &hub, config);
        let plan = [
            Leave::PeerClose,
            Leave::Reset,
            Leave::ServerClose,
            Leave::Silent,
            Leave::Stays,
        ];
        let per_kind = 6;
        let mut clients: Vec<(Leave, TcpStream)> = plan
            .iter()
            .flat_map(|&k| (0..per_kind).map(move |_| k))
            .map(|k| (k, ws_connect(addr(&server), "").0))
            .collect();
        assert!(eventually(|| hub.subscribers(TOPIC) == clients.len()));
        let stop = Arc::new(AtomicBool::new(false));
        let publisher = thread::spawn({
            let (hub, stop) = (hub.clone(), stop.clone());
            move || {
                let mut n = 0u64;
                let end = Instant::now() + Duration::from_secs(30);
                while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                    hub.publish(TOPIC, Message::from(format!("p{n}").as_str()));
                    n += 1;
                    thread::sleep(Duration::from_millis(1));
                }
                n
            }
        });
        // Everyone reads (answering pings, except the silent ones) in a thread of its own.
        let readers: Vec<_> = clients
            .drain(..)
            .map(|(kind, mut s)| {
                thread::spawn(move || -> (Leave, bool) {
                    // Some traffic first, so each leaves mid-stream.
                    let mut seen = 0;
                    while seen < 20 {
                        let f = read_frame(&mut s).expect("a frame");
                        match f.opcode {
                            TEXT => seen += 1,
                            PING if !matches!(kind, Leave::Silent) => {
                                send_frame(&mut s, true, PONG, &f.payload)
                            }
                            _ => {}
                        }
                    }
                    match kind {
                        Leave::PeerClose => {
                            send_frame(&mut s, true, CLOSE, &close_payload(1000, ""))
                        }
                        Leave::ServerClose => send_frame(&mut s, true, TEXT, b"bye"),
                        Leave::Reset => {
                            socket2::SockRef::from(&s)
                                .set_linger(Some(Duration::ZERO))
                                .unwrap();
                            return (kind, true);
                        }
                        Leave::Silent | Leave::Stays => {}
                    }
                    // Until the server's Close (or the end); nothing may follow a Close.
                    let mut after_close = 0;
                    let mut closed = false;
                    loop {
                        match read_frame(&mut s) {
                            Ok(f) if closed => {
                                after_close += 1;
                                let _ = f;
                            }
                            Ok(f) if f.opcode == CLOSE => closed = true,
                            Ok(f) if f.opcode == PING && !matches!(kind, Leave::Silent) => {
                                send_frame(&mut s, true, PONG, &f.payload)
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                    // A silent peer is cut off at the pong deadline, and the stayers by
                    // the shutdown, without a closing handshake; the others get the
                    // server's Close, and nothing after it.
                    let handshake_expected = matches!(kind, Leave::PeerClose | Leave::ServerClose);
                    (kind, after_close == 0 && (closed || !handshake_expected))
                })
            })
            .collect();
        // All but the stayers leave; the counts follow exactly.
        assert!(
            eventually(|| hub.subscribers(TOPIC) == per_kind),
            "{mode:?}: {} subscribers",
            hub.subscribers(TOPIC)
        );
        server.shutdown(PATIENCE);
        stop.store(true, Ordering::Relaxed);
        let published = publisher.join().unwrap();
        let mut ends: HashMap<String, usize> = HashMap::new();
        for r in readers {
            let (kind, clean) = r.join().unwrap();
            assert!(clean, "{mode:?} {kind:?}: no Close, or frames after it");
            *ends.entry(format!("{kind:?}")).or_default() += 1;
        }
        assert_eq!(hub.subscribers(TOPIC), 0, "{mode:?}");
        assert!(hub.topics().is_empty());
        eprintln!("{mode:?}: {published} publishes, leavers {ends:?}");
    }
}

#[test]
fn a_stalled_subscriber_is_held_to_its_bound_under_each_policy_and_the_others_get_everything() {
    const LIMIT: usize = 64 * 1024;
    // 1 KiB messages, more than the kernel can buffer for the peer that never reads.
    let messages = more_than_the_kernel_buffers(1000);
    for overflow in [Overflow::Drop, Overflow::Close] {
        let hub = Hub::with_overflow(overflow);
        let server = serve(
            Dispatch::Inline,
            &hub,
            ws::Config::default().max_backpressure(LIMIT),
        );
        let stalled = ws_connect(addr(&server), "").0;
        socket2::SockRef::from(&stalled)
            .set_recv_buffer_size(4096)
            .unwrap();
        let mut readers: Vec<TcpStream> = (0..8).map(|_| ws_connect(addr(&server), "").0).collect();
        assert!(eventually(|| hub.subscribers(TOPIC) == 9));
        let payload = "x".repeat(1000);
        // Each reader counts what it has read, so the publisher can keep the readers
        // within their bound whatever the machine's load: the test is about the stalled
        // one, not about readers slower than the publisher.
        let counts: Vec<Arc<AtomicUsize>> = (0..readers.len()).map(|_| Arc::default()).collect();
        let got: Vec<_> = readers
            .drain(..)
            .zip(counts.iter().cloned())
            .map(|(mut s, count)| {
                thread::spawn(move || {
                    let mut n = 0;
                    while n < messages {
                        let f = read_frame(&mut s).expect("a frame");
                        if f.opcode == TEXT {
                            n += 1;
                            count.store(n, Ordering::Release);
                        }
                    }
                    (n, s)
                })
            })
            .collect();
        let mut peak = 0;
        for i in 0..messages {
            hub.publish(TOPIC, Message::from(format!("{i:05}{payload}").as_str()));
            // Bursts of 16 KiB, well within a reading subscriber's bound even while a
            // send is in flight (on io_uring output counts until its completion).
            if i % 16 == 15 {
                peak = peak.max(server.stats().buffered_output);
                assert!(
                    eventually(|| counts.iter().all(|c| c.load(Ordering::Acquire) > i)),
                    "{overflow:?}: readers stuck before message {i}"
                );
            }
        }
        let mut kept = Vec::new();
        for g in got {
            let (n, s) = g.join().unwrap();
            kept.push(s); // still subscribed: the counts below include them
            assert_eq!(n, messages, "{overflow:?}: a reader missed messages");
        }
        let stats = hub.stats();
        match overflow {
            Overflow::Drop => {
                assert!(stats.dropped > 0, "{stats:?}");
                assert_eq!(hub.subscribers(TOPIC), 9);
            }
            _ => {
                assert!(stats.closed_for_backpressure >= 1, "{stats:?}");
                assert!(eventually(|| hub.subscribers(TOPIC) == 8));
                assert!(eventually(|| server.stats().closed.backpressure == 1));
            }
        }
        // The stalled one never held more than its bound plus one message (plus what
        // the readers had in flight at the moment of the sample).
        eprintln!("{overflow:?}: peak queued output {peak} bytes, {stats:?}");
        assert!(peak as usize <= LIMIT + 8 * 256 * 1024, "{peak}");
        drop(stalled);
        server.shutdown(PATIENCE);
    }
}

#[test]
fn publishes_from_many_threads_keep_each_publishers_order() {
    const THREADS: usize = 4;
    const EACH: usize = 500;
    let hub = Hub::new();
    let server = serve(Dispatch::Inline, &hub, ws::Config::default());
    let mut clients: Vec<TcpStream> = (0..3).map(|_| ws_connect(addr(&server), "").0).collect();
    assert!(eventually(|| hub.subscribers(TOPIC) == 3));
    let publishers: Vec<_> = (0..THREADS)
        .map(|t| {
            let hub = hub.clone();
            thread::spawn(move || {
                for n in 0..EACH {
                    hub.publish(TOPIC, Message::from(format!("{t}:{n}").as_str()));
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    for c in &mut clients {
        let mut next = [0usize; THREADS];
        for m in read_texts(c, THREADS * EACH) {
            let (t, n) = m.split_once(':').unwrap();
            let (t, n): (usize, usize) = (t.parse().unwrap(), n.parse().unwrap());
            assert_eq!(n, next[t], "publisher {t} out of order");
            next[t] += 1;
        }
        assert_eq!(next, [EACH; THREADS]);
    }
    server.shutdown(PATIENCE);
}
