//! Read, idle and user timeouts: a slow-loris peer is closed at the read timeout, a
//! silent peer at the idle timeout (a busy one is not), per-connection overrides win,
//! and a handler's own timer calls `on_timer`.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use netloop::{handler_fn, CloseReason, Conn, Dispatch, Handler, Server, TimerKey};

/// 4-byte length-prefixed frames, echoed whole once complete.
fn framed() -> impl Handler {
    handler_fn(|conn| {
        let input = conn.input();
        if input.len() < 4 {
            return;
        }
        let len = u32::from_be_bytes(input.peek(4).try_into().unwrap()) as usize;
        if input.len() < 4 + len {
            return;
        }
        let frame = input.next(4 + len);
        conn.output().write_bytes(frame);
    })
}

fn server_with<H: Handler>(
    mode: Dispatch,
    configure: fn(netloop::Builder) -> netloop::Builder,
    h: H,
) -> netloop::ServerHandle {
    configure(
        Server::builder()
            .listen("127.0.0.1:0")
            .pollers(1)
            .dispatch(mode),
    )
    .serve(h)
    .unwrap()
}

/// Whether the server closed the stream (end-of-file or reset), waiting at most
/// PATIENCE.
fn closed_by_server(s: &mut std::net::TcpStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match common::read_some(s, &mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn a_slowloris_peer_is_closed_at_the_read_timeout() {
    for mode in modes() {
        let server = server_with(
            mode,
            |b| b.read_timeout(Duration::from_millis(300)),
            framed(),
        );
        let a = addr(&server);
        let mut slow = connect(a);
        // A header announcing 1,000 bytes, then one byte every 50 ms: each arrival wakes
        // the handler, which never completes the frame.
        slow.write_all(&1000u32.to_be_bytes()).unwrap();
        let trickler = {
            let mut w = slow.try_clone().unwrap();
            std::thread::spawn(move || {
                for _ in 0..400 {
                    if w.write_all(b"x").is_err() {
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                false
            })
        };
        // Meanwhile a well-behaved peer with complete frames is served throughout.
        let mut good = connect(a);
        let mut frame = 3u32.to_be_bytes().to_vec();
        frame.extend_from_slice(b"abc");
        assert_eq!(round_trip(&mut good, &frame), frame);
        assert!(closed_by_server(&mut slow), "{mode:?}");
        assert!(
            trickler.join().unwrap(),
            "{mode:?}: the trickle was cut off"
        );
        assert_eq!(round_trip(&mut good, &frame), frame, "{mode:?}");
        let stats = server.stats();
        assert_eq!(stats.closed.read_timeout, 1, "{mode:?}: {stats:?}");
        server.shutdown(PATIENCE);
    }
}

#[test]
fn the_idle_timeout_closes_a_silent_peer_and_spares_a_busy_one() {
    for mode in modes() {
        let server = server_with(mode, |b| b.idle_timeout(Duration::from_millis(300)), echo());
        let a = addr(&server);
        let mut silent = connect(a);
        let mut busy = connect(a);
        silent.set_nonblocking(true).unwrap();
        let mut pings = 0;
        // Ping every 20 ms until the silent one is closed, then 20 more times.
        let mut after_close = None;
        while after_close.is_none_or(|n: u32| n < 20) && pings < 2000 {
            assert_eq!(round_trip(&mut busy, b"ping"), b"ping", "{mode:?}");
            pings += 1;
            std::thread::sleep(Duration::from_millis(20));
            let mut b = [0u8; 1];
            match (after_close, common::read_some(&mut silent, &mut b)) {
                (Some(n), _) => after_close = Some(n + 1),
                (None, Ok(0)) => after_close = Some(0),
                (None, Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                (None, other) => panic!("{mode:?}: unexpected {other:?}"),
            }
        }
        assert!(after_close.is_some(), "{mode:?}: silent peer never closed");
        let stats = server.stats();
        assert_eq!(stats.closed.idle_timeout, 1, "{mode:?}");
        assert_eq!(stats.active, 1, "{mode:?}: the busy one is still open");
        server.shutdown(PATIENCE);
    }
}

/// Disables the idle timeout for connections whose first message is "keep".
struct Selective;

impl Handler for Selective {
    type State = ();
    fn on_connect(&self, _: &mut Conn) {}
    fn on_request(&self, _: &mut (), conn: &mut Conn) {
        let n = conn.input().len();
        let msg = conn.input().next(n);
        if &msg[..] == b"keep" {
            conn.set_idle_timeout(None);
        }
        conn.output().write_bytes(msg);
    }
}

#[test]
fn a_per_connection_override_beats_the_server_timeout() {
    for mode in modes() {
        let server = server_with(
            mode,
            |b| b.idle_timeout(Duration::from_millis(200)),
            Selective,
        );
        let a = addr(&server);
        let mut kept = connect(a);
        let mut dropped = connect(a);
        assert_eq!(round_trip(&mut kept, b"keep"), b"keep");
        assert_eq!(round_trip(&mut dropped, b"drop"), b"drop");
        assert!(closed_by_server(&mut dropped), "{mode:?}");
        // Several idle periods later the kept one still answers.
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(round_trip(&mut kept, b"still"), b"still", "{mode:?}");
        assert_eq!(server.stats().closed.idle_timeout, 1);
        server.shutdown(PATIENCE);
    }
}

/// Writes "tick" three times from its timer, then closes.
struct Ticker;

const TICK: TimerKey = TimerKey(7);

impl Handler for Ticker {
    type State = u32;
    fn on_connect(&self, conn: &mut Conn) -> u32 {
        conn.set_timer(TICK, Duration::from_millis(30));
        0
    }
    fn on_request(&self, _: &mut u32, conn: &mut Conn) {
        let n = conn.input().len();
        conn.input().skip(n);
    }
    fn on_timer(&self, ticks: &mut u32, conn: &mut Conn, key: TimerKey) {
        assert_eq!(key, TICK);
        *ticks += 1;
        conn.output().write(format!("tick{ticks};").as_bytes());
        if *ticks < 3 {
            conn.set_timer(TICK, Duration::from_millis(30));
        } else {
            conn.close();
        }
    }
    fn on_close(&self, ticks: u32, reason: CloseReason) {
        assert_eq!((ticks, reason), (3, CloseReason::Local));
    }
}

#[test]
fn a_handler_timer_runs_on_timer_until_it_stops_rearming() {
    for mode in modes() {
        let server = serve(mode, 1, Ticker);
        let mut s = connect(addr(&server));
        assert_eq!(read_to_close(&mut s), b"tick1;tick2;tick3;", "{mode:?}");
        assert!(eventually(|| server.stats().closed.local == 1));
        // on_close runs (and a panic in it is counted) after the close is counted; a
        // shutdown has run every callback.
        server.shutdown(PATIENCE);
        assert_eq!(server.stats().panics, 0, "on_close saw 3 ticks");
    }
}

#[test]
fn zero_timeouts_are_refused_with_a_clear_error() {
    let err = Server::builder()
        .listen("127.0.0.1:0")
        .idle_timeout(Duration::ZERO)
        .serve(echo())
        .unwrap_err();
    assert!(err.to_string().contains("idle_timeout(0)"), "{err}");
}

/// Arms three timers, cancels one, re-arms another from its own callback: each runs with
/// its key, in deadline order, the cancelled one never.
struct Keyed;

const A: TimerKey = TimerKey(1);
const B: TimerKey = TimerKey(2);
const C: TimerKey = TimerKey(3);

impl Handler for Keyed {
    type State = u32;
    fn on_connect(&self, conn: &mut Conn) -> u32 {
        conn.set_timer(A, Duration::from_millis(120));
        conn.set_timer(B, Duration::from_millis(40));
        conn.set_timer(C, Duration::from_millis(80));
        conn.cancel_timer(C);
        0
    }
    fn on_request(&self, _: &mut u32, conn: &mut Conn) {
        let n = conn.input().len();
        conn.input().skip(n);
    }
    fn on_timer(&self, fired: &mut u32, conn: &mut Conn, key: TimerKey) {
        *fired += 1;
        let name = match key {
            A => "A",
            B => "B",
            C => "C",
            _ => "?",
        };
        conn.output().write(name.as_bytes());
        if key == B && *fired == 1 {
            // Re-arming B leaves A alone: B fires again after A.
            conn.set_timer(B, Duration::from_millis(200));
        }
        if *fired == 3 {
            conn.close();
        }
    }
}

#[test]
fn keyed_timers_fire_with_their_key_in_deadline_order_and_a_cancelled_one_never() {
    for mode in modes() {
        let server = serve(mode, 1, Keyed);
        let mut s = connect(addr(&server));
        assert_eq!(read_to_close(&mut s), b"BAB", "{mode:?}");
        server.shutdown(PATIENCE);
    }
}

/// In Pool dispatch, a deadline that passes while the handler runs on a worker is looked
/// at once the session is home, although nothing else happens on the server: the
/// worker's hand-back does not wake the poller, the poller's own wait is what brings it
/// back.
#[test]
fn a_deadline_that_passes_while_the_handler_is_away_is_checked_when_it_returns() {
    let slow_echo = handler_fn(|conn| {
        // Longer than the idle timeout: its wheel entry fires while the handler is away.
        std::thread::sleep(Duration::from_millis(400));
        let n = conn.input().len();
        let data = conn.input().next(n);
        conn.output().write_bytes(data);
    });
    let server = server_with(
        Dispatch::Pool { threads: 2 },
        |b| b.idle_timeout(Duration::from_millis(150)),
        slow_echo,
    );
    let mut s = connect(addr(&server));
    assert_eq!(round_trip(&mut s, b"slow"), b"slow");
    // Then silence: the idle timeout, counted from the reply, is what closes it.
    assert!(
        closed_by_server(&mut s),
        "never closed after the handler came back"
    );
    assert!(eventually(|| server.stats().closed.idle_timeout == 1));
    server.shutdown(PATIENCE);
}
