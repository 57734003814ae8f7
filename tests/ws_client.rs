//! The WebSocket client engine against netloop's WebSocket server and against scripted
//! fake servers: start, order, stop with the closing handshake; first-start failures;
//! a server restart (sessions change, `on_open` sees the restart, buffered sends
//! arrive in order); the backoff schedule and its cap; a silent server tripping the
//! pong deadline; stop during the restart loop and during a slow `on_message`;
//! concurrent workers; restarts from many threads with one connection in flight;
//! handshake and protocol failures; the offline policies; permessage-deflate.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::eventually;
use netloop::http::Request;
use netloop::ws::client::{
    Backoff, BackoffRng, Client, EngineError, EngineState, HandshakeError, Offline, SendError,
};
use netloop::ws::{self, Closed, DeflateConfig, Message, WsConn, WsHandler};
use netloop::{Server, ServerHandle};

const WAIT: Duration = Duration::from_secs(10);

/// What the test server saw.
#[derive(Default)]
struct Seen {
    texts: Mutex<Vec<String>>,
    closes: Mutex<Vec<u16>>,
    live: AtomicUsize,
    max_live: AtomicUsize,
    opens: AtomicUsize,
    deflate: Mutex<Vec<bool>>,
    /// (subprotocol chosen, `X-Token` header) per connection.
    asked: Mutex<Vec<(Option<String>, Option<String>)>>,
}

/// Echoes, records text messages, counts connections; "bye" makes it close with 4001.
struct Recorder(Arc<Seen>);

impl WsHandler for Recorder {
    type State = ();
    fn on_open(&self, ws: &mut WsConn<'_>, req: &Request) {
        self.0.opens.fetch_add(1, Ordering::SeqCst);
        let live = self.0.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.max_live.fetch_max(live, Ordering::SeqCst);
        self.0.deflate.lock().unwrap().push(ws.deflate().is_some());
        let token = req
            .header("x-token")
            .map(|v| String::from_utf8_lossy(v).into_owned());
        self.0
            .asked
            .lock()
            .unwrap()
            .push((ws.subprotocol().map(String::from), token));
    }
    fn on_message(&self, _: &mut (), ws: &mut WsConn<'_>, msg: Message) {
        if let Message::Text(t) = &msg {
            self.0.texts.lock().unwrap().push(t.as_str().to_string());
            if t.as_str() == "bye" {
                ws.close(4001, "bye");
                return;
            }
        }
        ws.send(msg);
    }
    fn on_close(&self, _: (), closed: Closed) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
        self.0.closes.lock().unwrap().push(closed.code);
    }
}

fn serve_at(addr: &str, seen: &Arc<Seen>, config: ws::Config) -> ServerHandle {
    Server::builder()
        .pollers(1)
        .listen(addr)
        .serve(ws::server(Recorder(seen.clone()), config))
        .expect("server")
}

fn serve(seen: &Arc<Seen>) -> (ServerHandle, SocketAddr) {
    let server = serve_at("127.0.0.1:0", seen, ws::Config::default());
    let addr = match &server.local_addrs()[0] {
        netloop::Addr::Tcp(a) => *a,
        other => panic!("{other:?}"),
    };
    (server, addr)
}

fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/test")
}

/// A port nothing listens on (bound, then released).
fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn fast_backoff() -> Backoff {
    Backoff::default()
        .min(Duration::from_millis(5))
        .max(Duration::from_millis(50))
}

#[test]
fn start_opens_echoes_in_order_and_stop_closes_with_on_closes_code() {
    let seen = Arc::new(Seen::default());
    let (_server, addr) = serve(&seen);
    let client = Client::start().unwrap();
    let (tx, rx) = mpsc::channel();
    let opened = Arc::new(Mutex::new(Vec::new()));
    let endings = Arc::new(Mutex::new(Vec::new()));
    let (o, e) = (opened.clone(), endings.clone());
    let engine = client
        .engine(url(addr))
        .on_open(move |s, restart| {
            o.lock().unwrap().push((s.id(), restart));
            s.send_text("hello").unwrap();
        })
        .on_message(move |s, msg| {
            let _ = tx.send((s.id(), msg));
        })
        .on_close(move |_s, ending| {
            e.lock().unwrap().push(format!("{ending:?}"));
            (4100, "done".into())
        })
        .start(WAIT)
        .unwrap();
    // start returned: on_open has run.
    assert_eq!(opened.lock().unwrap().len(), 1);
    assert!(
        !opened.lock().unwrap()[0].1,
        "the first session is not a restart"
    );
    assert_eq!(engine.state(), EngineState::Open);
    let handle = engine.handle();
    for n in 0..100 {
        handle.send_text(&format!("m{n}")).unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..101 {
        let (id, msg) = rx.recv_timeout(WAIT).expect("an echo");
        assert_eq!(id, opened.lock().unwrap()[0].0, "one session");
        got.push(text(&msg));
    }
    let want: Vec<String> = std::iter::once("hello".to_string())
        .chain((0..100).map(|n| format!("m{n}")))
        .collect();
    assert_eq!(got, want, "in order, on_open's first");
    engine.stop(WAIT).unwrap();
    assert_eq!(engine.state(), EngineState::Stopped);
    assert!(eventually(
        || seen.closes.lock().unwrap().as_slice() == [4100]
    ));
    assert_eq!(endings.lock().unwrap().as_slice(), ["Stop"]);
    let stats = engine.stats();
    assert_eq!(
        (stats.sessions, stats.restarts, stats.messages_in),
        (1, 0, 101)
    );
    assert_eq!(stats.messages_out, 101);
    assert_eq!(handle.send_text("late"), Err(SendError::Stopped));
}

#[test]
fn a_first_start_that_fails_is_an_error_unless_retried() {
    let client = Client::start().unwrap();
    let dead = dead_port();
    let err = client
        .engine(url(dead))
        .on_message(|_, _| {})
        .start(WAIT)
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::Connect(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{err:?}"
    );
    for bad in ["http://x/", "ws://"] {
        assert!(matches!(
            client.engine(bad).on_message(|_, _| {}).start(WAIT),
            Err(EngineError::Url(_))
        ));
    }
    // wss:// is dialed like ws:// (its certificate checks are in tests/wss.rs).
    assert!(matches!(
        client
            .engine(format!("wss://{}/", dead_port()))
            .on_message(|_, _| {})
            .start(WAIT),
        Err(EngineError::Connect(_) | EngineError::Tls(_))
    ));

    // Retried: the server comes up on that port after a few refused attempts.
    let seen = Arc::new(Seen::default());
    let failures = Arc::new(AtomicUsize::new(0));
    let (f, s2) = (failures.clone(), seen.clone());
    let server = Arc::new(Mutex::new(None));
    let slot = server.clone();
    let engine = client
        .engine(url(dead))
        .backoff(fast_backoff())
        .retry_first_start(true)
        .on_restart_error(move |_s, e, attempt| {
            assert!(matches!(e, EngineError::Connect(_)), "{e:?}");
            let n = f.fetch_add(1, Ordering::SeqCst) + 1;
            assert_eq!(attempt as usize, n, "attempts counted in a row");
            if n == 3 {
                *slot.lock().unwrap() =
                    Some(serve_at(&dead.to_string(), &s2, ws::Config::default()));
            }
        })
        .on_message(|_, _| {})
        .start(WAIT)
        .unwrap();
    assert_eq!(failures.load(Ordering::SeqCst), 3);
    assert_eq!(engine.stats().failures, 0, "reset by the open");
    engine.stop(WAIT).unwrap();
}

#[test]
fn a_server_restart_reopens_the_session_and_flushes_buffered_sends_in_order() {
    let seen = Arc::new(Seen::default());
    let (server, addr) = serve(&seen);
    let client = Client::start().unwrap();
    let (tx, rx) = mpsc::channel();
    let engine = client
        .engine(url(addr))
        .backoff(fast_backoff())
        .on_open(move |s, restart| {
            let _ = tx.send((s.id(), restart));
            s.send_text(if restart { "again" } else { "first" })
                .unwrap();
        })
        .on_message(|_, _| {})
        .start(WAIT)
        .unwrap();
    let (first, restart) = rx.recv_timeout(WAIT).unwrap();
    assert!(!restart);
    let handle = engine.handle();
    handle.send_text("before").unwrap();
    assert!(eventually(|| seen.texts.lock().unwrap().len() == 2));
    server.shutdown(Duration::ZERO);
    assert!(eventually(|| handle.state() == EngineState::Restarting));
    for n in 0..50 {
        handle.send_text(&format!("offline {n}")).unwrap();
    }
    assert_eq!(handle.stats().buffered, 50);
    let _server = serve_at(&addr.to_string(), &seen, ws::Config::default());
    let (second, restart) = rx.recv_timeout(WAIT).expect("a second session");
    assert!(restart, "on_open is told it is a restart");
    assert_ne!(first, second, "a new session id");
    let want: Vec<String> = ["first", "before", "again"]
        .into_iter()
        .map(String::from)
        .chain((0..50).map(|n| format!("offline {n}")))
        .collect();
    assert!(eventually(|| seen.texts.lock().unwrap().len() == want.len()));
    assert_eq!(
        *seen.texts.lock().unwrap(),
        want,
        "buffered sends after on_open's, in order"
    );
    let stats = engine.stats();
    assert_eq!((stats.sessions, stats.buffered), (2, 0));
    assert!(stats.restarts >= 1);
    assert!(
        matches!(stats.last_error, Some(EngineError::Lost(_))),
        "{:?}",
        stats.last_error
    );
    engine.stop(WAIT).unwrap();
}

#[test]
fn restart_attempts_follow_the_backoff_schedule_and_the_cap() {
    let client = Client::start().unwrap();
    let backoff = Backoff::default()
        .min(Duration::from_millis(1))
        .max(Duration::from_millis(20))
        .factor(2.0)
        .max_attempts(Some(8))
        .seed(99);
    // The delays the engine must draw: the same generator, the same seed.
    let mut rng = BackoffRng::with_seed(99);
    let expected: Vec<Duration> = (1..=7).map(|n| backoff.delay(n, &mut rng)).collect();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (log, handle_slot) = (
        seen.clone(),
        Arc::new(Mutex::new(None::<netloop::ws::client::EngineHandle>)),
    );
    let slot = handle_slot.clone();
    let err = client
        .engine(url(dead_port()))
        .backoff(backoff)
        .retry_first_start(true)
        .on_restart_error(move |s, _e, attempt| {
            // Before attempt `attempt + 1`; the delay before this failed attempt was
            // drawn for step `attempt - 1`.
            log.lock()
                .unwrap()
                .push((attempt, s.handle().stats().last_delay));
            *slot.lock().unwrap() = Some(s.handle());
        })
        .on_message(|_, _| {})
        .start(WAIT)
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Connect(_)),
        "the cap's last error: {err:?}"
    );
    let log = seen.lock().unwrap().clone();
    assert_eq!(
        log.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    assert_eq!(log[0].1, None, "no delay before the first attempt");
    let drawn: Vec<Duration> = log[1..].iter().map(|(_, d)| d.unwrap()).collect();
    assert_eq!(drawn, expected, "the seeded schedule, in order");
    for (n, d) in drawn.iter().enumerate() {
        assert!(*d <= backoff.ceiling(n as u32 + 1));
    }
    let handle = handle_slot.lock().unwrap().clone().unwrap();
    assert_eq!(handle.state(), EngineState::Stopped);
    assert_eq!(handle.stats().restarts, 7);
}

/// A scripted server: answers each connection's upgrade with `answer(key)`, then runs
/// `then` on the stream. Returns its address; it accepts `conns` connections.
fn fake_server(
    conns: usize,
    answer: impl Fn(&str) -> String + Send + 'static,
    then: impl Fn(usize, TcpStream) + Send + Sync + 'static,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let then = Arc::new(then);
    thread::spawn(move || {
        for n in 0..conns {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            s.set_read_timeout(Some(WAIT)).unwrap();
            let head = common::ws::read_head(&mut s);
            let key = head
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap_or("")
                .trim()
                .to_string();
            s.write_all(answer(&key).as_bytes()).unwrap();
            let then = then.clone();
            thread::spawn(move || then(n, s));
        }
    });
    addr
}

fn accept_101(key: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        ws::handshake::accept_key(key.as_bytes())
    )
}

#[test]
fn a_silent_server_trips_the_pong_deadline_and_the_engine_restarts() {
    // Connection 0 completes the handshake, then reads and never answers; connection 1
    // is answered and kept.
    let addr = fake_server(2, accept_101, |_n, mut s| {
        let mut buf = [0u8; 256];
        while matches!(common::read_some(&mut s, &mut buf), Ok(n) if n > 0) {}
    });
    let client = Client::start().unwrap();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let e = errors.clone();
    let engine = client
        .engine(url(addr))
        .config(
            ws::Config::default()
                .ping_interval(Some(Duration::from_millis(50)))
                .pong_timeout(Duration::from_millis(100)),
        )
        .backoff(fast_backoff())
        .on_open(move |_s, restart| {
            let _ = tx.send(restart);
        })
        .on_read_error(move |_s, err| e.lock().unwrap().push(err.clone()))
        .on_message(|_, _| {})
        .start(WAIT)
        .unwrap();
    assert!(!rx.recv_timeout(WAIT).unwrap());
    assert!(
        rx.recv_timeout(WAIT).expect("restarted"),
        "the second open is a restart"
    );
    let first = errors.lock().unwrap()[0].clone();
    assert!(matches!(first, EngineError::PongTimeout), "{first:?}");
    assert!(first.is_broken_connection());
    let _ = engine.stop(Duration::from_millis(500));
}

#[test]
fn stop_returns_within_its_timeout_during_the_restart_loop_and_a_slow_on_message() {
    let client = Client::start().unwrap();
    // In the restart loop, waiting out a long backoff: stop cancels the pending dial.
    let seen = Arc::new(Seen::default());
    let (server, addr) = serve(&seen);
    let engine = client
        .engine(url(addr))
        .backoff(
            Backoff::default()
                .min(Duration::from_secs(30))
                .max(Duration::from_secs(60)),
        )
        .on_message(|_, _| {})
        .start(WAIT)
        .unwrap();
    server.shutdown(Duration::ZERO);
    assert!(eventually(|| engine.state() == EngineState::Restarting));
    engine
        .stop(WAIT)
        .expect("stopped, not waiting out the 30 s backoff");
    assert_eq!(engine.state(), EngineState::Stopped);

    // A slow on_message: stop gives up at its timeout, and the engine stops by itself
    // once the callback returns.
    let seen = Arc::new(Seen::default());
    let (_server, addr) = serve(&seen);
    let (entered_tx, entered) = mpsc::channel();
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    let engine = client
        .engine(url(addr))
        .on_open(|s, _| s.send_text("go").unwrap())
        .on_message(move |_, _| {
            let _ = entered_tx.send(());
            let start = std::time::Instant::now();
            while !r.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(30) {
                thread::sleep(Duration::from_millis(5));
            }
        })
        .start(WAIT)
        .unwrap();
    entered.recv_timeout(WAIT).unwrap();
    assert_eq!(
        engine.stop(Duration::from_millis(200)),
        Err(netloop::ws::client::StopTimeout),
        "the callback is still running"
    );
    release.store(true, Ordering::SeqCst);
    assert!(engine.handle().wait_stopped(WAIT));
    assert!(eventually(
        || seen.closes.lock().unwrap().as_slice() == [1000]
    ));
}

#[test]
fn workers_process_messages_concurrently_and_one_worker_keeps_order() {
    let seen = Arc::new(Seen::default());
    let (_server, addr) = serve(&seen);
    let client = Client::start().unwrap();
    // Four workers: four messages must be inside on_message at once for any to leave.
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let (i, p, d) = (inside.clone(), peak.clone(), done.clone());
    let engine = client
        .engine(url(addr))
        .workers(4)
        .on_message(move |_, _| {
            let now = i.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            let start = std::time::Instant::now();
            while p.load(Ordering::SeqCst) < 4 && start.elapsed() < WAIT {
                thread::sleep(Duration::from_millis(1));
            }
            i.fetch_sub(1, Ordering::SeqCst);
            d.fetch_add(1, Ordering::SeqCst);
        })
        .start(WAIT)
        .unwrap();
    for n in 0..40 {
        engine.handle().send_text(&format!("w{n}")).unwrap();
    }
    assert!(eventually(|| done.load(Ordering::SeqCst) == 40));
    assert_eq!(peak.load(Ordering::SeqCst), 4, "four at once, never more");
    engine.stop(WAIT).unwrap();

    // One worker: strictly in order, one at a time.
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    let busy = Arc::new(AtomicBool::new(false));
    let engine = client
        .engine(url(addr))
        .on_message(move |_, msg| {
            assert!(!busy.swap(true, Ordering::SeqCst), "one at a time");
            o.lock().unwrap().push(text(&msg));
            busy.store(false, Ordering::SeqCst);
        })
        .start(WAIT)
        .unwrap();
    for n in 0..500 {
        engine.handle().send_text(&n.to_string()).unwrap();
    }
    assert!(eventually(|| order.lock().unwrap().len() == 500));
    let want: Vec<String> = (0..500).map(|n: i32| n.to_string()).collect();
    assert_eq!(*order.lock().unwrap(), want);
    engine.stop(WAIT).unwrap();
}

#[test]
fn restarts_from_many_threads_keep_one_connection_in_flight() {
    let seen = Arc::new(Seen::default());
    let (_server, addr) = serve(&seen);
    let client = Client::start().unwrap();
    let engine = client
        .engine(url(addr))
        .backoff(fast_backoff())
        .on_message(|_, _| {})
        .start(WAIT)
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let h = engine.handle();
            thread::spawn(move || {
                for _ in 0..25 {
                    // A session is counted just before its on_open, and a restart does
                    // nothing until the session is open: asked in that gap it would
                    // wait for nothing, so it is asked again until a new one comes.
                    let before = h.stats().sessions;
                    h.restart();
                    assert!(eventually(|| {
                        h.stats().sessions > before || {
                            h.restart();
                            false
                        }
                    }));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(engine.handle().wait_open(WAIT));
    let stats = engine.stats();
    assert!(stats.sessions > 10, "restarted many times: {stats:?}");
    assert_eq!(
        seen.max_live.load(Ordering::SeqCst),
        1,
        "never two connections of one engine at once"
    );
    assert_eq!(seen.opens.load(Ordering::SeqCst) as u64, stats.sessions);
    engine.stop(WAIT).unwrap();
}

#[test]
fn handshake_failures_are_clear_errors() {
    let client = Client::start().unwrap();
    let start = |addr| {
        client
            .engine(url(addr))
            .on_message(|_, _| {})
            .start(WAIT)
            .unwrap_err()
    };
    let forbidden = fake_server(
        1,
        |_| "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".into(),
        |_, _| {},
    );
    assert!(matches!(
        start(forbidden),
        EngineError::Handshake(HandshakeError::Status { code: 403, .. })
    ));
    let wrong_key = fake_server(1, |_| accept_101("d3Jvbmcga2V5IGhlcmU="), |_, _| {});
    assert!(matches!(
        start(wrong_key),
        EngineError::Handshake(HandshakeError::Invalid(_))
    ));
    let extension = fake_server(
        1,
        |k| {
            accept_101(k).replace(
                "\r\n\r\n",
                "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
            )
        },
        |_, _| {},
    );
    assert!(matches!(
        start(extension),
        EngineError::Handshake(HandshakeError::Invalid(_))
    ));
    let silent = fake_server(
        1,
        |_| String::new(),
        |_, s| {
            thread::sleep(Duration::from_secs(2));
            drop(s);
        },
    );
    let err = client
        .engine(url(silent))
        .handshake_timeout(Duration::from_millis(100))
        .on_message(|_, _| {})
        .start(WAIT)
        .unwrap_err();
    assert!(matches!(err, EngineError::HandshakeTimeout), "{err:?}");
}

#[test]
fn a_server_protocol_error_is_a_read_error_and_restarts() {
    // Connection 0 sends a masked frame (servers must not); connection 1 behaves.
    let addr = fake_server(2, accept_101, |n, mut s| {
        if n == 0 {
            s.write_all(&common::ws::frame_bytes(true, common::ws::TEXT, b"masked"))
                .unwrap();
        }
        let mut buf = [0u8; 256];
        while matches!(common::read_some(&mut s, &mut buf), Ok(n) if n > 0) {}
    });
    let client = Client::start().unwrap();
    let (tx, rx) = mpsc::channel();
    let engine = client
        .engine(url(addr))
        .backoff(fast_backoff())
        .on_read_error(move |_s, e| {
            let _ = tx.send(e.clone());
        })
        .on_message(|_, _| {})
        .start(WAIT)
        .unwrap();
    let err = rx.recv_timeout(WAIT).unwrap();
    assert!(
        matches!(&err, EngineError::Protocol(p) if p.code == 1002),
        "{err:?}"
    );
    assert!(!err.is_broken_connection());
    assert!(eventually(|| engine.stats().sessions == 2), "restarted");
    let _ = engine.stop(Duration::from_millis(500));
}

#[test]
fn offline_sends_fail_or_buffer_up_to_the_bound() {
    let seen = Arc::new(Seen::default());
    let (server, addr) = serve(&seen);
    let client = Client::start().unwrap();
    let long = Backoff::default()
        .min(Duration::from_secs(30))
        .max(Duration::from_secs(30));
    let failing = client
        .engine(url(addr))
        .offline(Offline::Fail)
        .backoff(long)
        .on_message(|_, _| {})
        .start(WAIT)
        .unwrap();
    let buffering = client
        .engine(url(addr))
        .offline(Offline::Buffer {
            messages: 3,
            bytes: 10,
        })
        .backoff(long)
        .on_message(|_, _| {})
        .start(WAIT)
        .unwrap();
    server.shutdown(Duration::ZERO);
    assert!(eventually(|| failing.state() == EngineState::Restarting
        && buffering.state() == EngineState::Restarting));
    assert_eq!(
        failing.handle().send_text("x"),
        Err(SendError::NotConnected)
    );
    let b = buffering.handle();
    assert_eq!(b.send_text("1234"), Ok(()));
    assert_eq!(b.send_text("12345"), Ok(()));
    assert_eq!(
        b.send_text("12"),
        Err(SendError::BufferFull),
        "11 bytes > 10"
    );
    assert_eq!(b.send_text("1"), Ok(()));
    assert_eq!(b.send_text(""), Err(SendError::BufferFull), "3 messages");
    buffering.stop(WAIT).unwrap();
    assert_eq!(buffering.stats().discarded, 3);
    failing.stop(WAIT).unwrap();
}

#[test]
fn permessage_deflate_round_trips_with_the_netloop_server() {
    let seen = Arc::new(Seen::default());
    let config = ws::Config::default().deflate(
        DeflateConfig::default()
            .server_context_takeover(true)
            .client_context_takeover(true),
    );
    let server = serve_at("127.0.0.1:0", &seen, config);
    let addr = match &server.local_addrs()[0] {
        netloop::Addr::Tcp(a) => *a,
        _ => unreachable!(),
    };
    let client = Client::start().unwrap();
    for (takeover, workers) in [(false, 1), (true, 1), (true, 3)] {
        let (tx, rx) = mpsc::channel();
        let engine = client
            .engine(url(addr))
            .deflate(
                DeflateConfig::default()
                    .server_context_takeover(takeover)
                    .client_context_takeover(takeover),
            )
            .workers(workers)
            .on_message(move |_, msg| {
                let _ = tx.send(msg);
            })
            .start(WAIT)
            .unwrap();
        let texts: Vec<String> = (0..20)
            .map(|n| format!("{n} {}", "compressible ".repeat(40 + n)))
            .collect();
        for t in &texts {
            engine.handle().send_text(t).unwrap();
        }
        let mut got: Vec<String> = (0..20)
            .map(|_| text(&rx.recv_timeout(WAIT).unwrap()))
            .collect();
        if workers > 1 {
            got.sort_by_key(|t| t.split(' ').next().unwrap().parse::<usize>().unwrap());
        }
        assert_eq!(got, texts);
        engine.stop(WAIT).unwrap();
    }
    assert_eq!(
        *seen.deflate.lock().unwrap(),
        [true, true, true],
        "negotiated each time"
    );
}

#[test]
fn callbacks_can_exit_the_engine_and_a_server_close_is_an_ending() {
    let seen = Arc::new(Seen::default());
    let (_server, addr) = serve(&seen);
    let client = Client::start().unwrap();
    let endings = Arc::new(Mutex::new(Vec::new()));
    let e = endings.clone();
    let engine = client
        .engine(url(addr))
        .on_open(|s, _| s.send_text("bye").unwrap())
        .on_message(|_, _| {})
        .on_close(move |s, ending| {
            e.lock().unwrap().push(format!("{ending:?}"));
            s.exit();
            (1000, String::new())
        })
        .start(WAIT)
        .unwrap();
    assert!(engine.handle().wait_stopped(WAIT), "exit asked in on_close");
    assert_eq!(
        endings.lock().unwrap().as_slice(),
        [r#"Server { code: 4001, reason: "bye" }"#]
    );
    assert!(matches!(
        engine.stats().last_error,
        Some(EngineError::ClosedByServer { code: 4001, .. })
    ));
    // An exit from on_message: this side closes with on_close's code.
    let endings = Arc::new(Mutex::new(Vec::new()));
    let e = endings.clone();
    let engine = client
        .engine(url(addr))
        .on_open(|s, _| s.send_text("x").unwrap())
        .on_message(|s, _| s.exit())
        .on_close(move |_, ending| {
            e.lock().unwrap().push(format!("{ending:?}"));
            (4200, "exiting".into())
        })
        .start(WAIT)
        .unwrap();
    assert!(engine.handle().wait_stopped(WAIT));
    assert_eq!(endings.lock().unwrap().as_slice(), ["Exit"]);
    assert!(
        eventually(|| seen.closes.lock().unwrap().contains(&4200)),
        "{:?}",
        seen.closes.lock().unwrap()
    );
}

/// A text message's text.
fn text(msg: &Message) -> String {
    match msg {
        Message::Text(t) => t.as_str().to_string(),
        Message::Binary(b) => panic!("a binary message of {} bytes", b.len()),
    }
}

#[test]
fn on_a_pool_dispatch_runtime_callbacks_run_on_workers_in_order_and_restarts_work() {
    let seen = Arc::new(Seen::default());
    let (server, addr) = serve(&seen);
    let client = Client::with_runtime(
        Server::builder()
            .pollers(1)
            .dispatch(netloop::Dispatch::Pool { threads: 2 }),
    )
    .unwrap();
    let (tx, rx) = mpsc::channel();
    let engine = client
        .engine(url(addr))
        .backoff(fast_backoff())
        .on_message(move |_, msg| {
            let name = thread::current().name().unwrap_or("").to_string();
            let _ = tx.send((name, text(&msg)));
        })
        .start(WAIT)
        .unwrap();
    for n in 0..200 {
        engine.handle().send_text(&n.to_string()).unwrap();
    }
    let got: Vec<(String, String)> = (0..200).map(|_| rx.recv_timeout(WAIT).unwrap()).collect();
    let want: Vec<String> = (0..200).map(|n: i32| n.to_string()).collect();
    assert_eq!(got.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>(), want);
    assert!(
        got.iter()
            .all(|(name, _)| name.starts_with("netloop-worker-")),
        "on the runtime's workers: {:?}",
        got[0].0
    );
    server.shutdown(Duration::ZERO);
    assert!(eventually(|| engine.state() == EngineState::Restarting));
    let _server = serve_at(&addr.to_string(), &seen, ws::Config::default());
    assert!(engine.handle().wait_open(WAIT));
    engine.stop(WAIT).unwrap();
}

#[test]
fn subprotocols_and_extra_headers_reach_the_server() {
    let seen = Arc::new(Seen::default());
    let server = serve_at(
        "127.0.0.1:0",
        &seen,
        ws::Config::default().subprotocols(["chat.v2", "chat.v1"]),
    );
    let addr = match &server.local_addrs()[0] {
        netloop::Addr::Tcp(a) => *a,
        _ => unreachable!(),
    };
    let client = Client::start().unwrap();
    let chosen = Arc::new(Mutex::new(None));
    let c = chosen.clone();
    let engine = client
        .engine(url(addr))
        .config(ws::Config::default().subprotocols(["chat.v1", "x"]))
        .header("X-Token", "secret-1")
        .on_open(move |s, _| *c.lock().unwrap() = s.subprotocol().map(String::from))
        .on_message(|_, _| {})
        .start(WAIT)
        .unwrap();
    assert_eq!(chosen.lock().unwrap().as_deref(), Some("chat.v1"));
    assert_eq!(
        *seen.asked.lock().unwrap(),
        [(Some("chat.v1".to_string()), Some("secret-1".to_string()))]
    );
    engine.stop(WAIT).unwrap();
}
