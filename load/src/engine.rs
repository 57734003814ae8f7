//! The engine: N connections on one netloop poller, driven closed or open loop, and the
//! controller thread that sets the recorded window, reports progress and stops the run.
//! Connections are dialed without blocking (netloop's `Dialer`); one that is lost is
//! dialed again from its own `on_close`, one that cannot connect again after
//! [`RETRY_CONNECT`] from its `on_connect_failed`, both on the poller.
//!
//! In broadcast mode ([`Load::Broadcast`]) the connections do not pace themselves: the
//! run goes in rounds ([`crate::broadcast`]). The connections that send are members of
//! one [`ConnGroup`]; a round is one group send of the (identical) request frame, one
//! command to the generator's poller whatever the number of senders, issued by the
//! connection that received the previous round's last delivery.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use netloop::{
    Backend, CloseReason, Conn, ConnGroup, ConnHandle, Dialer, Handler, Overflow, Server, TimerKey,
};

/// The open-loop send timer.
const SEND_TIMER: TimerKey = TimerKey(0);

use crate::broadcast::{Delivered, Rounds, Tally};
use crate::proto::{Decoded, Decoder, Protocol, RequestSpec};
use crate::schedule::Schedule;
use crate::stats::{ErrorKind, Recorder, Report};

/// How requests are paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Load {
    /// Each connection keeps `pipeline` requests outstanding and sends the next as soon
    /// as a response arrives. Latency is measured from the actual send time.
    Closed {
        /// Requests outstanding per connection (1: no pipelining).
        pipeline: usize,
    },
    /// `rate` requests/s in total, spread evenly over the connections, each sent at its
    /// intended time whether or not earlier ones were answered. Latency is measured from
    /// the intended time (corrected for coordinated omission).
    Open {
        /// Requests per second over all connections.
        rate: f64,
    },
    /// WebSocket broadcast rounds (uWebSockets' `broadcast_test` shape, see
    /// [`crate::broadcast`]): once every connection has upgraded, each round the first
    /// `senders` connections send one message and the round ends when every connection
    /// has received `senders` messages, which the server is expected to publish to all.
    /// Throughput counts deliveries; the latency is that of whole rounds.
    Broadcast {
        /// Connections that send each round (1 to `conns`; `conns` is N² deliveries a
        /// round).
        senders: usize,
        /// Stop after this many rounds (the duration bounds the run either way).
        rounds: Option<u64>,
    },
}

/// A run's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The target, `IP:PORT` (or anything [`netloop::IntoAddr`] parses).
    pub addr: String,
    /// The request every connection sends.
    pub request: RequestSpec,
    /// Connections to open.
    pub conns: usize,
    /// Closed or open loop.
    pub load: Load,
    /// Load before the recorded window, not recorded (connections warm up, the server's
    /// caches fill).
    pub warmup: Duration,
    /// Length of the recorded window.
    pub duration: Duration,
    /// Time allowed for establishing all the connections at the start (and for each
    /// re-connection).
    pub connect_timeout: Duration,
    /// Open loop: most requests outstanding on one connection; past it, sending waits
    /// (and the wait counts in the latency, as the intended times do not move).
    pub max_outstanding: usize,
    /// The generator's own event loop. Epoll unless set, whatever netloop's default is,
    /// so that figures taken before and after a change of the library's default compare
    /// (`NETLOOP_BACKEND` overrides it, as for any netloop runtime).
    pub backend: Backend,
}

impl Config {
    /// A closed-loop configuration with the defaults: 1 s warm-up, 5 s recorded, 5 s to
    /// connect.
    pub fn new(addr: impl Into<String>, request: RequestSpec, conns: usize) -> Config {
        Config {
            addr: addr.into(),
            request,
            conns,
            load: Load::Closed { pipeline: 1 },
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            max_outstanding: 1024,
            backend: Backend::Epoll,
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Config`] saying which one is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::Config(msg));
        if self.conns == 0 {
            return bad("--conns must be at least 1".into());
        }
        if self.duration.is_zero() {
            return bad("--duration must be above 0".into());
        }
        if self.connect_timeout.is_zero() {
            return bad("the connect timeout must be above 0".into());
        }
        match self.load {
            Load::Closed { pipeline: 0 } => return bad("--pipeline must be at least 1".into()),
            Load::Open { rate } if !(rate.is_finite() && rate > 0.0) => {
                return bad(format!("--rate {rate} must be a positive number"))
            }
            Load::Open { .. } if self.max_outstanding == 0 => {
                return bad("max_outstanding must be at least 1".into())
            }
            Load::Broadcast { senders, .. } if senders == 0 || senders > self.conns => {
                return bad(format!(
                    "--senders {senders} must be between 1 and --conns ({})",
                    self.conns
                ))
            }
            Load::Broadcast {
                rounds: Some(0), ..
            } => return bad("--rounds must be at least 1".into()),
            Load::Broadcast { .. } if self.request.protocol != Protocol::Ws => {
                return bad("broadcast mode needs --proto ws".into())
            }
            _ => {}
        }
        self.request.validate().map_err(Error::Config)
    }

    fn open_loop(&self) -> bool {
        matches!(self.load, Load::Open { .. })
    }

    fn broadcast(&self) -> bool {
        matches!(self.load, Load::Broadcast { .. })
    }
}

/// Why a run could not be carried out.
#[derive(Debug)]
pub enum Error {
    /// An invalid setting.
    Config(String),
    /// The generator's own poller could not be started.
    Start(netloop::Error),
    /// Not even the first connection could be established: nothing is listening, or
    /// the address is wrong.
    Connect {
        /// The target.
        addr: String,
        /// What the connect returned.
        source: netloop::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(msg) => write!(f, "invalid settings: {msg}"),
            Error::Start(e) => write!(f, "cannot start the generator's poller: {e}"),
            Error::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Start(e) | Error::Connect { source: e, .. } => Some(e),
            Error::Config(_) => None,
        }
    }
}

/// Where a run is, for [`Progress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Opening the connections.
    Connecting,
    /// Load is running; nothing is recorded yet.
    Warmup,
    /// Inside the recorded window.
    Recording,
}

/// A snapshot handed to the progress callback of [`run`] about ten times a second.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Where the run is.
    pub phase: Phase,
    /// Time since the load started (after connecting).
    pub elapsed: Duration,
    /// Warm-up plus recorded window: `elapsed` reaches it when the run ends.
    pub total: Duration,
    /// Responses completed so far, warm-up included.
    pub completed: u64,
    /// Errors so far.
    pub errors: u64,
}

/// How often the controller wakes to report progress and check the end.
const CONTROL_TICK: Duration = Duration::from_millis(100);

/// How long a connection that could not connect waits before it is dialed again.
pub const RETRY_CONNECT: Duration = Duration::from_millis(100);

/// At the end, how long to wait for the responses still outstanding before closing.
/// Closing with responses in flight would make the server see resets (its writes fail)
/// and count requests as unanswered that were merely late.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// How often the controller looks whether the drain is done.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// Grace the final shutdown gives connections with output still queued.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(200);

/// Open loop: with this much output queued (the server is not reading), sending waits.
const OUTPUT_CAP: usize = 1 << 20;

/// Open loop: how soon to look again when sending had to wait.
const RETRY: Duration = Duration::from_millis(10);

/// Broadcast: a round (or, before the first, the upgrades) taking longer than this, or
/// than the connect timeout if that is longer, is abandoned with an error and a new
/// round starts.
const ROUND_STALL: Duration = Duration::from_secs(5);

/// Requests up to this size are copied into the output, larger ones queued by
/// reference: a small copy is cheaper than one more segment in the gathered write.
const COPY_LIMIT: usize = 1024;

/// Runs the load described by `config` and returns its report. Blocks for about
/// `warmup + duration`, plus connecting and at most a second collecting the responses
/// still outstanding at the end; calls `progress` about ten times a second from the
/// calling thread.
///
/// The connections run on a single netloop poller thread, so the whole generator can be
/// pinned to one CPU (`taskset`); the calling thread only waits for the connections to
/// open, reports progress and sleeps.
///
/// # Errors
/// [`Error::Config`] for invalid settings, [`Error::Start`] if the poller cannot start,
/// [`Error::Connect`] if the very first connection fails. Everything that goes wrong
/// later is counted in the report's errors instead.
pub fn run(config: &Config, mut progress: impl FnMut(&Progress)) -> Result<Report, Error> {
    config.validate()?;
    let client = Server::builder()
        .pollers(1)
        .backend(config.backend)
        .start()
        .map_err(Error::Start)?;
    let request = config.request.encode();
    let shared = Arc::new(Shared {
        copy: request.len() <= COPY_LIMIT,
        request,
        decoder: config.request.decoder(),
        load: config.load,
        conns: config.conns,
        epoch: Instant::now(),
        max_outstanding: config.max_outstanding,
        recorder: Mutex::new(if config.broadcast() {
            Recorder::new().broadcast()
        } else {
            Recorder::new()
        }),
        broadcast: match config.load {
            Load::Broadcast { senders, rounds } => Some(Broadcast {
                group: ConnGroup::new(Overflow::Drop),
                rounds: Mutex::new(Rounds::new(config.conns, senders, Instant::now())),
                senders,
                max_rounds: rounds,
            }),
            _ => None,
        },
        stopping: AtomicBool::new(false),
        dialer: client.dialer().connect_timeout(config.connect_timeout),
        handshake: config.request.handshake(),
        addr: config.addr.clone(),
    });
    let total = config.warmup + config.duration;
    progress(&Progress {
        phase: Phase::Connecting,
        elapsed: Duration::ZERO,
        total,
        completed: 0,
        errors: 0,
    });

    // Every connection is dialed at once (the dials do not block); the run starts when
    // they are open, or have failed (and are being retried), or the connect timeout has
    // passed. If not even the first one connects, nothing listens there.
    let deadline = Instant::now() + config.connect_timeout;
    let mut handles: Vec<ConnHandle> = Vec::with_capacity(config.conns);
    for index in 0..config.conns {
        match shared.dial(index, false, Duration::ZERO) {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                client.shutdown(Duration::ZERO);
                return Err(Error::Connect {
                    addr: config.addr.clone(),
                    source: e,
                });
            }
        }
    }
    for (index, handle) in handles.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(source) = handle.wait_open(left) {
            if index == 0 {
                shared.stopping.store(true, Ordering::Relaxed);
                client.shutdown(Duration::ZERO);
                return Err(Error::Connect {
                    addr: config.addr.clone(),
                    source,
                });
            }
        }
    }
    drop(handles);

    let start = Instant::now();
    let (window_start, end) = (start + config.warmup, start + total);
    shared.recorder().set_window(window_start, end);
    let stall = ROUND_STALL.max(config.connect_timeout);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if let Some(b) = &shared.broadcast {
            if b.finished(&shared.stopping) {
                // The round count is reached: the window ends here.
                shared.recorder().set_window(window_start.min(now), now);
                break;
            }
            let stalled = {
                let rounds = b.lock();
                rounds
                    .stalled(now, stall)
                    .map(|missing| (rounds.completed() + 1, missing))
            };
            if let Some((round, missing)) = stalled {
                shared.recorder().error(
                    ErrorKind::Other,
                    format!("round {round} stalled: {missing} deliveries missing after {stall:?}"),
                );
                shared.start_round(now);
            }
        }
        std::thread::sleep(CONTROL_TICK.min(end - now));
        let now = Instant::now();
        let (completed, errors) = {
            let r = shared.recorder();
            (r.completed_total(), r.errors().total)
        };
        progress(&Progress {
            phase: if now < window_start {
                Phase::Warmup
            } else {
                Phase::Recording
            },
            elapsed: now.saturating_duration_since(start).min(total),
            total,
            completed,
            errors,
        });
    }
    // Stop sending and let the responses still outstanding arrive (they are not
    // recorded: the window is over), so the connections close idle and cleanly.
    shared.stopping.store(true, Ordering::Relaxed);
    let drained_by = Instant::now() + DRAIN_TIMEOUT;
    while shared.outstanding() && Instant::now() < drained_by {
        std::thread::sleep(DRAIN_POLL);
    }
    // Idle connections close at once; the rest get a moment to flush. Their on_close
    // callbacks (which count what was left unanswered) have all run when this returns.
    client.shutdown(SHUTDOWN_GRACE);
    if let Some(b) = &shared.broadcast {
        let missing = b.lock().missing();
        shared.recorder().unanswered(missing);
    }
    let measurements = shared.recorder().measurements(config.open_loop());
    Ok(Report {
        protocol: config.request.protocol.to_string(),
        addr: config.addr.clone(),
        connections: config.conns,
        mode: if config.broadcast() {
            "broadcast"
        } else {
            "request"
        },
        pipeline: match config.load {
            Load::Closed { pipeline } => pipeline,
            Load::Open { .. } | Load::Broadcast { .. } => 1,
        },
        target_rate: match config.load {
            Load::Closed { .. } | Load::Broadcast { .. } => None,
            Load::Open { rate } => Some(rate),
        },
        senders: match config.load {
            Load::Broadcast { senders, .. } => Some(senders),
            _ => None,
        },
        warmup_s: config.warmup.as_secs_f64(),
        measurements,
    })
}

/// What every connection of a run shares.
struct Shared {
    /// The request, encoded once; each send queues a copy or a reference.
    request: Bytes,
    copy: bool,
    /// A fresh decoder, cloned for each connection.
    decoder: Decoder,
    load: Load,
    conns: usize,
    /// Origin of the open-loop schedule.
    epoch: Instant,
    max_outstanding: usize,
    /// Locked by the poller thread once per callback that completes or sends
    /// something, and by the controller ten times a second: practically uncontended.
    recorder: Mutex<Recorder>,
    /// The run is over: send nothing more, dial nothing more, only collect the
    /// outstanding responses.
    stopping: AtomicBool,
    /// Dials the connections (and re-dials lost ones, from the poller).
    dialer: Dialer,
    /// What a connection sends before its first request (WebSocket's upgrade).
    handshake: Option<Bytes>,
    /// The target.
    addr: String,
    /// Broadcast mode's group of senders and rounds.
    broadcast: Option<Broadcast>,
}

/// Broadcast mode: who sends, and where the rounds are.
struct Broadcast {
    /// The connections that send each round (the first `senders`).
    group: ConnGroup,
    /// Locked once per callback that received deliveries, never together with the
    /// recorder.
    rounds: Mutex<Rounds>,
    senders: usize,
    max_rounds: Option<u64>,
}

impl Broadcast {
    fn lock(&self) -> MutexGuard<'_, Rounds> {
        self.rounds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether no more rounds are to start: the run is stopping or the round count is
    /// reached.
    fn finished(&self, stopping: &AtomicBool) -> bool {
        stopping.load(Ordering::Relaxed)
            || self
                .max_rounds
                .is_some_and(|max| self.lock().completed() >= max)
    }
}

impl Shared {
    /// Whether responses (or, in broadcast mode, a round's deliveries) are still
    /// expected.
    fn outstanding(&self) -> bool {
        match &self.broadcast {
            Some(b) => b.lock().in_progress(),
            None => self.recorder().in_flight() > 0,
        }
    }

    /// Broadcast: starts the next round, unless the run is over: one group send of the
    /// request frame to the senders.
    fn start_round(&self, now: Instant) {
        let Some(b) = &self.broadcast else {
            return;
        };
        if b.finished(&self.stopping) {
            return;
        }
        let n = b.lock().start(now);
        b.group.send(self.request.clone());
        self.recorder().sent(n as u64);
    }

    fn recorder(&self) -> MutexGuard<'_, Recorder> {
        // A panic while holding it leaves counters that are still meaningful.
        self.recorder.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Dials connection `index` (a re-dial if `again`), after `delay`.
    fn dial(
        self: &Arc<Self>,
        index: usize,
        again: bool,
        delay: Duration,
    ) -> Result<ConnHandle, netloop::Error> {
        let client = Client {
            shared: self.clone(),
            index,
            again,
        };
        self.dialer
            .clone()
            .delay(delay)
            .dial(self.addr.as_str(), client)
    }

    /// Re-establishes connection `index`, at its old place in the open-loop schedule,
    /// unless the run is over. A failure to queue the dial is counted.
    fn redial(self: &Arc<Self>, index: usize, delay: Duration) {
        if self.stopping.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.dial(index, true, delay) {
            self.recorder().error(ErrorKind::Connect, e);
        }
    }
}

/// The handler of one connection: `index` is its place among the run's connections
/// (which fixes its slot in the open-loop schedule).
struct Client {
    shared: Arc<Shared>,
    index: usize,
    /// A re-dial of a connection that was lost or could not connect.
    again: bool,
}

/// Why this side closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// A bad response (already counted as an error).
    Broken,
    /// The server announced it closes after its last response: not an error, the
    /// connection is simply re-established.
    ServerClosing,
}

/// Per-connection state.
struct ConnState {
    decoder: Decoder,
    /// Start times of the requests sent and not yet answered, oldest first: the actual
    /// send time in closed loop, the intended send time in open loop. All three
    /// protocols answer in request order, so the front belongs to the next response.
    starts: VecDeque<Instant>,
    /// Open loop: this connection's intended send times, and the next request number.
    schedule: Option<Schedule>,
    next: u64,
    ending: Option<Ending>,
    /// Broadcast: the connection has upgraded and counts in the rounds.
    joined: bool,
    /// Broadcast: its deliveries in the current round.
    tally: Tally,
}

impl Client {
    /// Queues one request that started (or was meant to start) at `start`.
    fn send(&self, conn: &mut Conn, st: &mut ConnState, start: Instant, rec: &mut Recorder) {
        let out = conn.output();
        if self.shared.copy {
            out.write(&self.shared.request);
        } else {
            out.write_bytes(self.shared.request.clone());
        }
        st.starts.push_back(start);
        rec.sent(1);
    }

    fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Relaxed)
    }

    /// Open loop: sends every request whose intended time has come, unless the
    /// connection has too much outstanding, then arms the timer for the next one.
    fn pace<'a>(
        &'a self,
        conn: &mut Conn,
        st: &mut ConnState,
        now: Instant,
        rec: &mut Option<MutexGuard<'a, Recorder>>,
    ) {
        let Some(schedule) = st.schedule else {
            return;
        };
        if self.stopping() {
            return; // and no timer: nothing is due any more
        }
        let mut held = false;
        loop {
            let at = schedule.at(st.next);
            if at > now {
                break;
            }
            if st.starts.len() >= self.shared.max_outstanding || conn.output().len() >= OUTPUT_CAP {
                held = true;
                break;
            }
            let r = rec.get_or_insert_with(|| self.shared.recorder());
            r.lag(at, now);
            self.send(conn, st, at, r);
            st.next += 1;
        }
        // netloop's timer fires on the first 1 ms tick at or after the deadline (and
        // epoll waits in whole milliseconds), so a request can leave about a millisecond
        // late; the send lag (reported separately) shows
        // how much of each open-loop latency that costs. Responses arriving in between
        // give extra chances to send on time (see on_request).
        let wait = if held {
            RETRY
        } else {
            schedule.at(st.next).saturating_duration_since(now)
        };
        conn.set_timer(SEND_TIMER, wait);
    }

    /// Closes the connection after a bad response; what is buffered is garbage now.
    fn abandon(&self, conn: &mut Conn, st: &mut ConnState) {
        st.ending = Some(Ending::Broken);
        let n = conn.input().len();
        conn.input().skip(n);
        conn.close();
    }

    /// Takes the responses that arrived, and sends what closed loop sends in return.
    fn answers(&self, st: &mut ConnState, conn: &mut Conn) {
        // One clock read per callback: it stamps every response completed by this read
        // and, in closed loop, the send time of the requests that replace them.
        let now = Instant::now();
        if self.shared.broadcast.is_some() && st.joined {
            return self.deliveries(st, conn, now);
        }
        let mut rec = None;
        while !conn.input().is_empty() {
            let decoded = st.decoder.decode(conn.input().as_slice());
            let r = rec.get_or_insert_with(|| self.shared.recorder());
            match decoded {
                Ok(Decoded::Complete {
                    consumed,
                    ok,
                    closes,
                }) => {
                    conn.input().skip(consumed);
                    let Some(start) = st.starts.pop_front() else {
                        r.error(
                            ErrorKind::BadResponse,
                            "a response with no request outstanding",
                        );
                        return self.abandon(conn, st);
                    };
                    r.response(start, now);
                    if !ok {
                        r.error(ErrorKind::Status, "HTTP status not 2xx or 3xx");
                    }
                    if closes {
                        // Requests behind this one will not be answered on this connection.
                        st.ending = Some(Ending::ServerClosing);
                        let n = conn.input().len();
                        conn.input().skip(n);
                        conn.close();
                        return;
                    }
                    if let Load::Closed { .. } = self.shared.load {
                        if !self.stopping() {
                            self.send(conn, st, now, r);
                        }
                    }
                }
                Ok(Decoded::Partial { consumed, need }) => {
                    conn.input().skip(consumed);
                    conn.input().want(need);
                    break;
                }
                Ok(Decoded::Upgraded { consumed }) => {
                    conn.input().skip(consumed);
                    drop(rec.take());
                    if !self.stopping() {
                        self.start(conn, st, now);
                    }
                    if st.joined {
                        // Broadcast: what follows the 101 is deliveries.
                        return self.deliveries(st, conn, now);
                    }
                }
                Err(e) => {
                    r.error(ErrorKind::BadResponse, e);
                    return self.abandon(conn, st);
                }
            }
        }
        if st.schedule.is_some() {
            self.pace(conn, st, now, &mut rec);
        }
    }

    /// Broadcast: takes the deliveries that arrived (each one whole message), counts
    /// them in the round, and starts the next round if this was the last.
    fn deliveries(&self, st: &mut ConnState, conn: &mut Conn, now: Instant) {
        let mut n = 0;
        let mut failed = None;
        while !conn.input().is_empty() {
            match st.decoder.decode(conn.input().as_slice()) {
                Ok(Decoded::Complete { consumed, .. }) => {
                    conn.input().skip(consumed);
                    n += 1;
                }
                Ok(Decoded::Partial { consumed, need }) => {
                    conn.input().skip(consumed);
                    conn.input().want(need);
                    break;
                }
                Ok(Decoded::Upgraded { .. }) => unreachable!("upgraded once"),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let b = self.shared.broadcast.as_ref().expect("broadcast mode");
        let outcome = (n > 0).then(|| b.lock().delivered(&mut st.tally, n));
        {
            let mut rec = self.shared.recorder();
            rec.delivered(n as u64, now);
            if let Some(e) = failed {
                rec.error(ErrorKind::BadResponse, e);
                drop(rec);
                return self.abandon(conn, st);
            }
            match outcome {
                Some(Delivered::RoundDone { started }) => rec.round(started, now),
                Some(Delivered::Unexpected) => {
                    rec.error(
                        ErrorKind::BadResponse,
                        "more messages in a round than were sent in it",
                    );
                    drop(rec);
                    return self.abandon(conn, st);
                }
                Some(Delivered::Counted) | None => return,
            }
        }
        self.shared.start_round(now);
    }

    /// Broadcast: a connection that has upgraded joins the rounds (and the senders'
    /// group if it is one of them); the last to join starts the first round.
    fn join(&self, conn: &mut Conn, st: &mut ConnState, now: Instant) {
        let b = self.shared.broadcast.as_ref().expect("broadcast mode");
        if self.index < b.senders {
            b.group.insert(&conn.handle());
        }
        st.joined = true;
        let first = b.lock().joined();
        if first {
            self.shared.start_round(now);
        }
    }

    /// Starts the load on a connection that is ready for requests.
    fn start(&self, conn: &mut Conn, st: &mut ConnState, now: Instant) {
        match self.shared.load {
            Load::Broadcast { .. } => self.join(conn, st, now),
            Load::Closed { pipeline } => {
                let mut rec = self.shared.recorder();
                for _ in 0..pipeline {
                    self.send(conn, st, now, &mut rec);
                }
            }
            Load::Open { rate } => {
                let schedule =
                    Schedule::new(self.shared.epoch, rate, self.shared.conns, self.index);
                st.next = schedule.first_at_or_after(now);
                st.schedule = Some(schedule);
                self.pace(conn, st, now, &mut None);
            }
        }
    }
}

impl Handler for Client {
    type State = ConnState;

    fn on_connect(&self, conn: &mut Conn) -> ConnState {
        if self.again {
            self.shared.recorder().reconnected();
        }
        let mut st = ConnState {
            decoder: self.shared.decoder.clone(),
            starts: VecDeque::new(),
            schedule: None,
            next: 0,
            ending: None,
            joined: false,
            tally: Tally::default(),
        };
        match &self.shared.handshake {
            // Requests wait for the handshake's answer (see on_request).
            Some(greeting) => conn.output().write_bytes(greeting.clone()),
            None => self.start(conn, &mut st, Instant::now()),
        }
        st
    }

    fn on_request(&self, st: &mut ConnState, conn: &mut Conn) {
        self.answers(st, conn);
    }

    fn on_timer(&self, st: &mut ConnState, conn: &mut Conn, _key: TimerKey) {
        if st.ending.is_none() {
            self.pace(conn, st, Instant::now(), &mut None);
        }
    }

    fn on_close(&self, st: ConnState, reason: CloseReason) {
        if let (Some(b), true) = (&self.shared.broadcast, st.joined) {
            b.lock().left();
        }
        let mut rec = self.shared.recorder();
        rec.unanswered(st.starts.len() as u64);
        let lost = match reason {
            CloseReason::Shutdown | CloseReason::ShutdownForced => false,
            CloseReason::Local => true, // a bad response (counted) or the server's announced close
            CloseReason::PeerClosed if st.ending == Some(Ending::ServerClosing) => true,
            CloseReason::PeerClosed => {
                rec.error(ErrorKind::Closed, "the server closed a connection");
                true
            }
            CloseReason::Error(kind) => {
                rec.error(ErrorKind::Socket, kind);
                true
            }
            other => {
                rec.error(ErrorKind::Other, other);
                true
            }
        };
        drop(rec);
        if lost {
            self.shared.redial(self.index, Duration::ZERO);
        }
    }

    fn on_connect_failed(&self, _conn: &ConnHandle, error: &std::io::Error) {
        if self.stopping() {
            // A re-dial still in flight when the run ended, aborted by the client
            // runtime's own shutdown: not the server's failure.
            return;
        }
        self.shared.recorder().error(ErrorKind::Connect, error);
        self.shared.redial(self.index, RETRY_CONNECT);
    }
}
