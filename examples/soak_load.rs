//! The load driver of the soak test (`scripts/soak.sh`): a mix of well-behaved and
//! hostile peers against one echo server (`examples/soak_server.rs`) for `--seconds`.
//!
//! Every peer is a plain std thread with a blocking `TcpStream` whose reads and writes
//! have timeouts, so every loop is bounded by the deadline. Each peer reconnects for as
//! long as the run lasts. The kinds, all running at once:
//!
//! * **echo** — round trips of 1 B–64 KiB of random bytes, each echo verified byte for
//!   byte; a connection is kept for 1–10 s, then closed and replaced.
//! * **idle** — connects and says nothing; expects the server's idle timeout
//!   (`--idle-timeout`) to close it, not earlier and not much later, then reconnects.
//! * **slow** — four hostile-but-legal peers, in turn: *flood* sends 2–8 MiB and never
//!   reads (the server must stop reading at its high-water marks and cut the peer off,
//!   by its read timeout); *stall* sends 256 KiB–3 MiB and never reads (cut off by the
//!   write timeout, or the idle timeout if the kernel buffers took it all); *trickle*
//!   sends 256 KiB–4 MiB and reads the echo back 4 KiB every 250 ms, verifying it (the
//!   server may cut it off, but must never corrupt what it sends); *drip* sends one
//!   byte every 500 ms and reads it back (an active peer: the server must not cut it
//!   off).
//! * **abusive** — in turn: connect, send a little and reset (`SO_LINGER` 0); a storm of
//!   ten connect-and-close; random garbage followed by a half-close (the server must echo
//!   all of it, then close); a large half-sent payload, then close without reading.
//!
//! An `http` kind (pipelined and partial requests) joins when the HTTP layer lands: add
//! a [`Kind`] variant, its name, and a `run_*` loop in [`run_peer`].
//!
//! Prints one summary line per kind and `soak_load: PASS` or `soak_load: FAIL ...`; exits
//! non-zero on any verification failure or any *unexpected* event (server misbehaviour:
//! an echo or drip peer closed or stalled, an idle peer closed early or left open, a
//! flooding or stalled peer never cut off, a half-closed echo truncated or left open).
//!
//! ```text
//! cargo run --release --example soak_load -- --addr 127.0.0.1:17500 --seconds 60
//! ```

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

#[derive(Parser)]
#[command(about = "soak-test load driver: echo, idle, slow and abusive peers")]
struct Args {
    /// Echo server address (IP:PORT).
    #[arg(long, default_value = "127.0.0.1:17500")]
    addr: String,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Echo peers (threads).
    #[arg(long, default_value_t = 8)]
    echo: usize,
    /// Idle peers.
    #[arg(long, default_value_t = 32)]
    idle: usize,
    /// Slow peers.
    #[arg(long, default_value_t = 6)]
    slow: usize,
    /// Abusive peers.
    #[arg(long, default_value_t = 3)]
    abusive: usize,
    /// Pause between an echo peer's round trips, in milliseconds (0: none).
    #[arg(long, default_value_t = 1)]
    echo_pause_ms: u64,
    /// The server's idle timeout in seconds: idle peers expect to be closed after it.
    #[arg(long, default_value_t = 10)]
    idle_timeout: u64,
    /// Seed of the random sizes and payloads (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
}

/// A kind of peer. An `Http` kind joins when the HTTP layer lands.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Echo,
    Idle,
    Slow,
    Abusive,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Echo, Kind::Idle, Kind::Slow, Kind::Abusive];

    fn name(self) -> &'static str {
        match self {
            Kind::Echo => "echo",
            Kind::Idle => "idle",
            Kind::Slow => "slow",
            Kind::Abusive => "abusive",
        }
    }

    fn peers(self, args: &Args) -> usize {
        match self {
            Kind::Echo => args.echo,
            Kind::Idle => args.idle,
            Kind::Slow => args.slow,
            Kind::Abusive => args.abusive,
        }
    }
}

/// How many figures were recorded, the least and the most.
type Range = (u64, u64, u64);

/// Counters of one kind, shared by its peers.
struct Counters {
    /// Connections established.
    connects: AtomicU64,
    connect_errors: AtomicU64,
    /// Completed as expected: verified round trips (echo, drip), expected closures
    /// (idle, slow), finished actions (abusive).
    ok: AtomicU64,
    /// Bytes that came back different from what was sent.
    verify_failures: AtomicU64,
    /// Connections the server closed (end-of-file or reset seen).
    server_closed: AtomicU64,
    /// Server misbehaviour other than corruption; see the module docs.
    unexpected: AtomicU64,
    /// Echoed bytes verified.
    verified_bytes: AtomicU64,
    /// Figures of expected closures, by variant and unit: how many, the least and the
    /// most (idle: ms from connect to close; flood, stall: KiB echoed before the close).
    closes: Mutex<BTreeMap<(&'static str, &'static str), Range>>,
    /// Messages printed so far (bounded, so a broken server does not flood the log).
    notes: AtomicU64,
}

impl Counters {
    fn new() -> Counters {
        Counters {
            connects: AtomicU64::new(0),
            connect_errors: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            verify_failures: AtomicU64::new(0),
            server_closed: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            verified_bytes: AtomicU64::new(0),
            closes: Mutex::new(BTreeMap::new()),
            notes: AtomicU64::new(0),
        }
    }

    fn record(&self, variant: &'static str, unit: &'static str, value: u64) {
        let mut closes = self.closes.lock().unwrap_or_else(|e| e.into_inner());
        let e = closes.entry((variant, unit)).or_insert((0, u64::MAX, 0));
        *e = (e.0 + 1, e.1.min(value), e.2.max(value));
    }

    fn summary(&self, kind: Kind, peers: usize) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut line = format!(
            "{}: peers={peers} conns={} connect_err={} ok={} verify_fail={} server_closed={} \
             unexpected={} verified_bytes={}",
            kind.name(),
            get(&self.connects),
            get(&self.connect_errors),
            get(&self.ok),
            get(&self.verify_failures),
            get(&self.server_closed),
            get(&self.unexpected),
            get(&self.verified_bytes),
        );
        let closes = self.closes.lock().unwrap_or_else(|e| e.into_inner());
        for ((variant, unit), (n, min, max)) in closes.iter() {
            line += &format!(" {variant}_closed={n} {variant}_{unit}={min}..{max}");
        }
        line
    }
}

/// xorshift64*: fast, seedable, good enough for sizes and payloads.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// One peer thread's context.
struct Peer {
    kind: Kind,
    id: usize,
    addr: SocketAddr,
    deadline: Instant,
    c: Arc<Counters>,
    rng: Rng,
    echo_pause: Duration,
    idle_timeout: Duration,
}

/// The server hung up on us (as opposed to a timeout or a local problem).
fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// One `read`, tried again when interrupted: a socket with a timeout fails a read with
/// `Interrupted` when the process is stopped and continued (a paused VM, a debugger),
/// which is neither the server's doing nor a reason to stop.
fn read_some(s: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// One `write`, tried again when interrupted (see [`read_some`]).
fn write_some(s: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
    loop {
        match s.write(data) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Peer {
    fn alive(&self) -> bool {
        Instant::now() < self.deadline
    }

    /// Time left before the deadline, capped at `cap`; `None` once (nearly) passed.
    fn left(&self, cap: Duration) -> Option<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        (left >= Duration::from_millis(5)).then(|| left.min(cap))
    }

    /// Sleeps for `d`, or until the deadline if that is sooner.
    fn nap(&self, d: Duration) {
        if let Some(d) = self.left(d) {
            std::thread::sleep(d);
        }
    }

    fn count(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Prints a message about this peer; at most 20 per kind.
    fn note(&self, msg: &str) {
        if self.c.notes.fetch_add(1, Ordering::Relaxed) < 20 {
            eprintln!("soak_load: {} #{}: {msg}", self.kind.name(), self.id);
        }
    }

    /// Something the server must not do happened.
    fn unexpected(&self, msg: &str) {
        self.count(&self.c.unexpected);
        self.note(msg);
    }

    /// Connects with 5 s read and write timeouts; `None` after a failure (counted, and
    /// followed by a short pause) or past the deadline.
    fn connect(&mut self) -> Option<TcpStream> {
        let timeout = self.left(Duration::from_secs(2))?;
        match TcpStream::connect_timeout(&self.addr, timeout) {
            Ok(s) => {
                self.count(&self.c.connects);
                let io_timeout = Some(Duration::from_secs(5));
                if s.set_read_timeout(io_timeout).is_err()
                    || s.set_write_timeout(io_timeout).is_err()
                    || s.set_nodelay(true).is_err()
                {
                    self.note("cannot set socket options");
                    return None;
                }
                Some(s)
            }
            Err(e) => {
                self.count(&self.c.connect_errors);
                self.note(&format!("connect: {e}"));
                self.nap(Duration::from_millis(100));
                None
            }
        }
    }
}

fn run_peer(mut p: Peer) {
    match p.kind {
        Kind::Echo => run_echo(&mut p),
        Kind::Idle => run_idle(&mut p),
        Kind::Slow => run_slow(&mut p),
        Kind::Abusive => run_abusive(&mut p),
    }
}

/// Round trips of random sizes, verified; each connection lives 1–10 s.
fn run_echo(p: &mut Peer) {
    const MAX: usize = 64 * 1024;
    let mut payload = vec![0u8; MAX];
    let mut echoed = vec![0u8; MAX];
    while p.alive() {
        let Some(mut s) = p.connect() else { continue };
        let until = (Instant::now() + Duration::from_millis(p.rng.range(1000, 10_000) as u64))
            .min(p.deadline);
        while Instant::now() < until {
            let n = p.rng.range(1, MAX);
            p.rng.fill(&mut payload[..n]);
            if let Err(e) = s.write_all(&payload[..n]) {
                echo_error(p, "write", &e);
                break;
            }
            if let Err(e) = s.read_exact(&mut echoed[..n]) {
                echo_error(p, "read", &e);
                break;
            }
            if echoed[..n] != payload[..n] {
                let at = (0..n).find(|&i| echoed[i] != payload[i]).unwrap_or(0);
                p.count(&p.c.verify_failures);
                p.note(&format!("echo of {n} bytes differs at byte {at}"));
                break;
            }
            p.count(&p.c.ok);
            p.c.verified_bytes.fetch_add(n as u64, Ordering::Relaxed);
            if !p.echo_pause.is_zero() {
                std::thread::sleep(p.echo_pause);
            }
        }
    }
}

/// An echo peer's round trip failed: the server closed it or stalled.
fn echo_error(p: &Peer, what: &str, e: &io::Error) {
    if is_closed(e) {
        p.count(&p.c.server_closed);
        p.unexpected(&format!(
            "server closed an active echo connection ({what}: {e})"
        ));
    } else if is_timeout(e) {
        p.unexpected(&format!("echo stalled for 5 s ({what}: {e})"));
    } else {
        p.unexpected(&format!("{what}: {e}"));
    }
}

/// Connects, says nothing, waits to be closed by the idle timeout.
fn run_idle(p: &mut Peer) {
    // The timer wheel never fires early; allow a generous margin for lateness.
    let early = p.idle_timeout.saturating_sub(Duration::from_millis(50));
    let late = p.idle_timeout + Duration::from_secs(5);
    while p.alive() {
        let Some(mut s) = p.connect() else { continue };
        let start = Instant::now();
        let Some(wait) = p.left(p.idle_timeout * 3) else {
            break;
        };
        if s.set_read_timeout(Some(wait)).is_err() {
            continue;
        }
        let mut byte = [0u8; 1];
        let closed = match read_some(&mut s, &mut byte) {
            Ok(0) => true,
            Ok(_) => {
                p.unexpected("the server sent data to a silent peer");
                false
            }
            Err(e) if is_closed(&e) => true,
            Err(e) if is_timeout(&e) => {
                if p.alive() {
                    p.unexpected(&format!(
                        "still open {:?} after connecting, idle timeout is {:?}",
                        start.elapsed(),
                        p.idle_timeout
                    ));
                }
                false
            }
            Err(e) => {
                p.unexpected(&format!("read: {e}"));
                false
            }
        };
        if closed {
            let elapsed = start.elapsed();
            p.count(&p.c.server_closed);
            p.c.record("idle", "close_ms", elapsed.as_millis() as u64);
            if elapsed < early {
                p.unexpected(&format!(
                    "closed after {elapsed:?}, before the idle timeout"
                ));
            } else if elapsed > late {
                p.unexpected(&format!("closed only after {elapsed:?}"));
            } else {
                p.count(&p.c.ok);
            }
        }
    }
}

/// Flood, stall, trickle and drip peers, in turn.
fn run_slow(p: &mut Peer) {
    let mut turn = p.id;
    while p.alive() {
        let Some(s) = p.connect() else { continue };
        match turn % 4 {
            0 => slow_no_read(p, s, "flood", 2 << 20, 8 << 20),
            1 => slow_no_read(p, s, "stall", 256 << 10, 3 << 20),
            2 => slow_trickle(p, s),
            _ => slow_drip(p, s),
        }
        turn += 1;
    }
}

/// Sends `lo..=hi` bytes (or until the server stops taking them) without ever reading,
/// then sends nothing more for longer than any of the server's timeouts. A flood goes
/// past the server's high-water marks (read timeout); a stall mostly stays below them,
/// so the server's output stops moving (write timeout), or the kernel buffers all of it
/// (idle timeout). Either way the server must have closed the connection by then.
///
/// A close cannot be seen without reading: the server's FIN queues behind the echo the
/// peer has not read (only a reset, when the server leaves input unread, arrives at
/// once). So the peer then drains what was echoed, verifying it, and expects
/// end-of-file or a reset; data that stops for a second with neither means the server
/// never cut the peer off.
fn slow_no_read(p: &mut Peer, mut s: TcpStream, variant: &'static str, lo: usize, hi: usize) {
    const CHUNK: usize = 64 * 1024;
    let total = p.rng.range(lo, hi);
    // Byte i of the stream is chunk[i % CHUNK], so the echo can be verified.
    let mut chunk = vec![0u8; CHUNK];
    p.rng.fill(&mut chunk);
    if s.set_write_timeout(Some(Duration::from_secs(1))).is_err() {
        return;
    }
    let mut sent = 0;
    while sent < total {
        if !p.alive() {
            return;
        }
        let at = sent % CHUNK;
        let n = (CHUNK - at).min(total - sent);
        match write_some(&mut s, &chunk[at..at + n]) {
            Ok(n) => sent += n,
            Err(e) if is_timeout(&e) => break, // the server stopped reading: backpressure
            Err(e) if is_closed(&e) => {
                // Cut off while still sending: fine, the limits did their job.
                p.count(&p.c.server_closed);
                p.count(&p.c.ok);
                return;
            }
            Err(e) => return p.note(&format!("{variant} write: {e}")),
        }
    }
    // Every server timeout (read 2 s, write 5 s, idle) has passed by then.
    let quiet = p.idle_timeout + Duration::from_secs(3);
    p.nap(quiet);
    if !p.alive() || s.set_read_timeout(Some(Duration::from_secs(1))).is_err() {
        return;
    }
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0;
    loop {
        match read_some(&mut s, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let bad = got + n > sent || (0..n).any(|i| buf[i] != chunk[(got + i) % CHUNK]);
                if bad {
                    p.count(&p.c.verify_failures);
                    return p.note(&format!(
                        "{variant}: echo differs: {n} bytes at offset {got}, {sent} sent"
                    ));
                }
                got += n;
            }
            Err(e) if is_closed(&e) => break,
            Err(e) if is_timeout(&e) => {
                return p.unexpected(&format!(
                    "{variant}: a peer that sent {sent} bytes and never read is still open \
                     {quiet:?} later ({got} bytes echoed)"
                ));
            }
            Err(e) => return p.note(&format!("{variant} drain: {e}")),
        }
    }
    p.count(&p.c.server_closed);
    p.count(&p.c.ok);
    p.c.verified_bytes.fetch_add(got as u64, Ordering::Relaxed);
    p.c.record(variant, "echoed_kib", (got / 1024) as u64);
}

/// Sends 256 KiB–4 MiB and reads the echo back 4 KiB every 250 ms, verifying it, until
/// all of it is back, the server cuts it off, or 60 s pass.
fn slow_trickle(p: &mut Peer, mut s: TcpStream) {
    let total = p.rng.range(256 << 10, 4 << 20);
    let mut payload = vec![0u8; total];
    p.rng.fill(&mut payload);
    if s.set_nonblocking(true).is_err() {
        return;
    }
    let (mut sent, mut got) = (0, 0);
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    let closed = |p: &Peer| {
        p.count(&p.c.server_closed);
        p.count(&p.c.ok);
    };
    while start.elapsed() < Duration::from_secs(60) {
        if !p.alive() {
            return;
        }
        if sent < total {
            let n = (64 << 10).min(total - sent);
            match write_some(&mut s, &payload[sent..sent + n]) {
                Ok(n) => sent += n,
                Err(e) if is_timeout(&e) => {}
                Err(e) if is_closed(&e) => return closed(p),
                Err(e) => return p.note(&format!("trickle write: {e}")),
            }
        }
        match read_some(&mut s, &mut buf) {
            Ok(0) => return closed(p),
            Ok(n) => {
                if got + n > sent || buf[..n] != payload[got..got + n] {
                    p.count(&p.c.verify_failures);
                    return p.note(&format!(
                        "trickled echo differs: {n} bytes at offset {got}, {sent} sent"
                    ));
                }
                got += n;
                p.c.verified_bytes.fetch_add(n as u64, Ordering::Relaxed);
                if got == total {
                    p.count(&p.c.ok);
                    return;
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) if is_closed(&e) => return closed(p),
            Err(e) => return p.note(&format!("trickle read: {e}")),
        }
        p.nap(Duration::from_millis(250));
    }
    p.count(&p.c.ok); // still being served after 60 s: fine, make room for the next
}

/// One byte every 500 ms for 5–20 s, each echo verified: slow but active, so the server
/// must not cut it off.
fn slow_drip(p: &mut Peer, mut s: TcpStream) {
    let until =
        (Instant::now() + Duration::from_millis(p.rng.range(5000, 20_000) as u64)).min(p.deadline);
    let mut byte = [0u8; 1];
    while Instant::now() < until {
        p.nap(Duration::from_millis(500));
        let sent = p.rng.next() as u8;
        if let Err(e) = s.write_all(&[sent]) {
            return drip_error(p, &e);
        }
        if let Err(e) = s.read_exact(&mut byte) {
            return drip_error(p, &e);
        }
        if byte[0] != sent {
            p.count(&p.c.verify_failures);
            return p.note("dripped byte came back different");
        }
        p.count(&p.c.ok);
        p.c.verified_bytes.fetch_add(1, Ordering::Relaxed);
    }
}

fn drip_error(p: &Peer, e: &io::Error) {
    if is_closed(e) {
        p.count(&p.c.server_closed);
    }
    p.unexpected(&format!("active drip connection failed: {e}"));
}

/// Reset, storm, garbage-and-half-close and half-sent-drop, in turn, 4 a second.
fn run_abusive(p: &mut Peer) {
    let mut turn = p.id;
    while p.alive() {
        match turn % 4 {
            0 => abuse_reset(p),
            1 => abuse_storm(p),
            2 => abuse_half_close(p),
            _ => abuse_half_sent(p),
        }
        turn += 1;
        p.nap(Duration::from_millis(250));
    }
}

/// Connects, sends up to 32 KiB, and resets the connection (`SO_LINGER` 0).
fn abuse_reset(p: &mut Peer) {
    let Some(mut s) = p.connect() else { return };
    let mut data = vec![0u8; p.rng.range(0, 32 << 10)];
    p.rng.fill(&mut data);
    let _ = s.write_all(&data);
    if let Err(e) = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)) {
        return p.note(&format!("SO_LINGER: {e}"));
    }
    drop(s); // close with linger 0: RST
    p.count(&p.c.ok);
}

/// Ten connections opened and closed at once.
fn abuse_storm(p: &mut Peer) {
    for _ in 0..10 {
        if p.connect().is_none() {
            return;
        }
    }
    p.count(&p.c.ok);
}

/// Sends 1 B–128 KiB of garbage, half-closes, and expects all of it back, then
/// end-of-file.
fn abuse_half_close(p: &mut Peer) {
    let Some(mut s) = p.connect() else { return };
    let mut data = vec![0u8; p.rng.range(1, 128 << 10)];
    p.rng.fill(&mut data);
    if let Err(e) = s.write_all(&data) {
        return p.unexpected(&format!("garbage write: {e}"));
    }
    if let Err(e) = s.shutdown(Shutdown::Write) {
        return p.note(&format!("half-close: {e}"));
    }
    let mut back = Vec::with_capacity(data.len());
    match s.read_to_end(&mut back) {
        Ok(_) => p.count(&p.c.server_closed),
        Err(e) if is_timeout(&e) => {
            return p.unexpected(&format!(
                "half-closed peer: no end-of-file 5 s after {} of {} bytes came back",
                back.len(),
                data.len()
            ))
        }
        Err(e) => {
            return p.unexpected(&format!(
                "half-closed peer: {e} after {} of {} bytes came back",
                back.len(),
                data.len()
            ))
        }
    }
    let common = back.len().min(data.len());
    if back[..common] != data[..common] || back.len() > data.len() {
        p.count(&p.c.verify_failures);
        p.note("echo to a half-closed peer differs");
    } else if back.len() < data.len() {
        p.unexpected(&format!(
            "half-closed peer got {} of {} bytes, then end-of-file",
            back.len(),
            data.len()
        ));
    } else {
        p.c.verified_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        p.count(&p.c.ok);
    }
}

/// Sends 64 KiB–1 MiB (as much as goes in 2 s) and closes without reading the echo,
/// which makes the kernel reset the connection under the server's feet.
fn abuse_half_sent(p: &mut Peer) {
    let Some(mut s) = p.connect() else { return };
    let mut data = vec![0u8; p.rng.range(64 << 10, 1 << 20)];
    p.rng.fill(&mut data);
    if s.set_write_timeout(Some(Duration::from_secs(2))).is_err() {
        return;
    }
    let _ = s.write_all(&data);
    drop(s);
    p.count(&p.c.ok);
}

fn main() {
    let args = Args::parse();
    let addr = match args.addr.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        _ => {
            eprintln!("soak_load: cannot resolve {}", args.addr);
            std::process::exit(2);
        }
    };
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    println!(
        "soak_load: {addr} for {}s, seed {seed}, peers: echo={} idle={} slow={} abusive={}",
        args.seconds, args.echo, args.idle, args.slow, args.abusive
    );

    let counters: Vec<Arc<Counters>> = Kind::ALL
        .iter()
        .map(|_| Arc::new(Counters::new()))
        .collect();
    let mut threads = Vec::new();
    let mut n = 0u64;
    for (kind, c) in Kind::ALL.into_iter().zip(&counters) {
        for id in 0..kind.peers(&args) {
            n += 1;
            let peer = Peer {
                kind,
                id,
                addr,
                deadline,
                c: c.clone(),
                rng: Rng::new(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                echo_pause: Duration::from_millis(args.echo_pause_ms),
                idle_timeout: Duration::from_secs(args.idle_timeout),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{id}", kind.name()))
                .stack_size(256 << 10)
                .spawn(move || run_peer(peer));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    eprintln!("soak_load: cannot start a peer thread: {e}");
                    std::process::exit(2);
                }
            }
        }
    }
    let mut panicked = 0;
    for t in threads {
        if t.join().is_err() {
            panicked += 1;
        }
    }

    let mut failures = Vec::new();
    for (kind, c) in Kind::ALL.into_iter().zip(&counters) {
        println!("{}", c.summary(kind, kind.peers(&args)));
        let verify = c.verify_failures.load(Ordering::Relaxed);
        let unexpected = c.unexpected.load(Ordering::Relaxed);
        if verify > 0 {
            failures.push(format!("{} verify_fail={verify}", kind.name()));
        }
        if unexpected > 0 {
            failures.push(format!("{} unexpected={unexpected}", kind.name()));
        }
    }
    if panicked > 0 {
        failures.push(format!("{panicked} peer threads panicked"));
    }
    println!("soak_load: ran {:.1}s", start.elapsed().as_secs_f64());
    if failures.is_empty() {
        println!("soak_load: PASS");
    } else {
        println!("soak_load: FAIL {}", failures.join(", "));
        std::process::exit(1);
    }
}
