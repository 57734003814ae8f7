//! Churn: 2,000 connections opened, used and dropped in a pseudo-random order (some
//! closed normally, some reset with `SO_LINGER 0`, some dropped with a request still in
//! flight), at most 200 open at once. Afterwards no connection is left open, every
//! poller's slab is empty, every accepted connection was closed exactly once, and the
//! process has exactly as many file descriptors open as before the server started.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use netloop::{Dispatch, Server};

/// Connections opened over the whole run.
const TOTAL: usize = 2000;
/// Connections open at once, at most.
const MAX_OPEN: usize = 200;
/// Largest echo payload.
const MAX_PAYLOAD: usize = 16 * 1024;

/// xorshift64: deterministic, so a failure replays the same sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-enough in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `true` with probability `percent`/100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// How many connections left in each way.
#[derive(Clone, Copy, Debug, Default)]
struct Drops {
    closed: usize,
    reset: usize,
    in_flight: usize,
}

/// One echo round trip of a random size, checked byte for byte.
fn echo_once(rng: &mut Rng, stream: &mut TcpStream, id: usize, nth: usize) {
    let len = 1 + rng.below(MAX_PAYLOAD);
    let data = payload(len, (id ^ nth) as u8);
    let got = round_trip(stream, &data);
    assert!(
        got == data,
        "connection {id}, round trip {nth}: echo differs"
    );
}

/// Drops `stream` in one of three ways: a normal close (FIN), a reset (`SO_LINGER 0`:
/// RST, no FIN), or a close with a request the server has not answered yet (the server
/// may find the peer gone while it writes the echo).
fn drop_conn(rng: &mut Rng, stream: TcpStream, drops: &mut Drops) {
    match rng.below(100) {
        0..=29 => {
            socket2::SockRef::from(&stream)
                .set_linger(Some(Duration::ZERO))
                .expect("SO_LINGER 0");
            drops.reset += 1;
        }
        30..=44 => {
            let mut stream = &stream;
            let len = 1 + rng.below(MAX_PAYLOAD);
            // The echo server never closes a connection on its own, so this succeeds.
            stream
                .write_all(&payload(len, 7))
                .expect("request before drop");
            if rng.chance(50) {
                socket2::SockRef::from(stream)
                    .set_linger(Some(Duration::ZERO))
                    .expect("SO_LINGER 0");
            }
            drops.in_flight += 1;
        }
        _ => drops.closed += 1,
    }
    drop(stream);
}

fn churn(mode: Dispatch, seed: u64) {
    let fds_before = open_fds();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(2)
        .dispatch(mode)
        .backlog(1024)
        .serve(echo())
        .expect("server starts");
    let a: SocketAddr = addr(&server);
    let mut rng = Rng(seed);
    // (id, stream, round trips done)
    let mut open: Vec<(usize, TcpStream, usize)> = Vec::with_capacity(MAX_OPEN);
    let mut opened = 0;
    let mut round_trips = 0;
    let mut drops = Drops::default();
    let mut peak = 0;

    while opened < TOTAL || !open.is_empty() {
        let can_open = opened < TOTAL && open.len() < MAX_OPEN;
        // Opening is likelier than dropping: the number open climbs to MAX_OPEN, churns
        // there (one opened for one dropped), and drains once all TOTAL were opened.
        if can_open && (open.is_empty() || rng.chance(55)) {
            let mut s = connect(a);
            // Every connection is used at least once before it can be dropped.
            echo_once(&mut rng, &mut s, opened, 0);
            round_trips += 1;
            open.push((opened, s, 1));
            opened += 1;
            peak = peak.max(open.len());
            continue;
        }
        let i = rng.below(open.len());
        if rng.chance(30) {
            let (id, s, n) = &mut open[i];
            echo_once(&mut rng, s, *id, *n);
            *n += 1;
            round_trips += 1;
        } else {
            let (_, s, n) = open.swap_remove(i);
            assert!(n >= 1);
            drop_conn(&mut rng, s, &mut drops);
        }
    }
    assert_eq!(opened, TOTAL);
    assert!(
        peak > MAX_OPEN / 2,
        "the churn should keep many connections open at once (peak {peak})"
    );
    assert!(
        drops.reset > 0 && drops.closed > 0 && drops.in_flight > 0,
        "{drops:?}"
    );

    assert!(
        eventually(|| server.stats().active == 0),
        "{mode:?}: connections left open after every client dropped: {:?}",
        server.stats()
    );
    let report = server.shutdown(PATIENCE);
    let stats = server.stats();
    let context = format!("{mode:?}: {drops:?}, {round_trips} round trips, {report:?}, {stats:?}");
    assert_eq!(stats.accepted as usize, TOTAL, "{context}");
    assert_eq!(stats.active, 0, "{context}");
    assert!(
        stats.pollers.iter().all(|p| p.active == 0),
        "a poller's slab is not empty: {context}"
    );
    assert_eq!(
        stats.pollers.iter().map(|p| p.adopted).sum::<u64>() as usize,
        TOTAL,
        "{context}"
    );
    assert_eq!(stats.closed.total(), stats.accepted, "{context}");
    assert_eq!(
        (stats.rejected, stats.over_limit, stats.panics),
        (0, 0, 0),
        "{context}"
    );
    assert_eq!(
        (stats.buffered_input, stats.buffered_output),
        (0, 0),
        "buffered-byte gauges must return to zero: {context}"
    );
    assert_eq!(
        (report.idle_closed, report.drained, report.forced),
        (0, 0, 0),
        "nothing was open at shutdown: {context}"
    );
    // After shutdown every socket and epoll instance is closed. The only descriptors the
    // server may still hold are the pollers' wakers (one eventfd each): they belong to
    // the part of a poller the handle shares, and are closed with the handle.
    let after_shutdown = open_fds();
    let extra = extra_fds(&fds_before, &after_shutdown);
    assert!(
        extra.len() <= server.pollers() && extra.iter().all(|fd| fd.ends_with("[eventfd]")),
        "descriptors still open after shutdown: {extra:?}; {context}"
    );
    assert_eq!(
        after_shutdown.len() - extra.len(),
        fds_before.len(),
        "descriptors open before the server started were closed: {context}"
    );
    drop(server);
    let after_drop = open_fds();
    assert_eq!(
        after_drop.len(),
        fds_before.len(),
        "descriptors open after the handle was dropped: {:?}; {context}",
        extra_fds(&fds_before, &after_drop)
    );
}

/// One test for both modes, run one after the other: a parallel test in this binary
/// would disturb the process-wide file-descriptor count.
#[test]
fn churn_of_2000_connections_leaves_no_connection_slot_or_fd_behind() {
    for (i, mode) in modes().into_iter().enumerate() {
        churn(mode, 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1));
    }
}
