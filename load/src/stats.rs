//! What a run measures: completed requests and their latencies inside the recorded
//! window, the open-loop send lag, and errors by kind; and the [`Report`] made of them.

use std::fmt;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms hold, in microseconds (60 s); longer ones are
/// recorded as 60 s rather than dropped, so they still count.
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// The kinds of error a run counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A connection could not be established.
    Connect,
    /// The server closed a connection (end of file) while the run was going on.
    Closed,
    /// A socket error (a reset, for example) broke a connection.
    Socket,
    /// A response did not decode, or did not match its request, or came with no request
    /// outstanding. The connection is closed, since the stream can no longer be trusted.
    BadResponse,
    /// An HTTP response whose status is not 2xx or 3xx.
    Status,
    /// Anything else: a connection closed for a reason the generator does not expect.
    Other,
}

impl ErrorKind {
    /// The kind's name, as the report spells it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Closed => "closed",
            ErrorKind::Socket => "socket",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::Status => "status",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors by kind, over the whole run (warm-up included: an error is an error).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Errors {
    /// Failed connection attempts (see [`ErrorKind::Connect`]).
    pub connect: u64,
    /// Connections the server closed (see [`ErrorKind::Closed`]).
    pub closed: u64,
    /// Connections broken by a socket error (see [`ErrorKind::Socket`]).
    pub socket: u64,
    /// Bad responses (see [`ErrorKind::BadResponse`]).
    pub bad_response: u64,
    /// HTTP responses with a failure status (see [`ErrorKind::Status`]).
    pub status: u64,
    /// Anything else (see [`ErrorKind::Other`]).
    pub other: u64,
    /// The sum of the above.
    pub total: u64,
}

impl Errors {
    /// Counts one error of `kind`.
    pub fn add(&mut self, kind: ErrorKind) {
        let slot = match kind {
            ErrorKind::Connect => &mut self.connect,
            ErrorKind::Closed => &mut self.closed,
            ErrorKind::Socket => &mut self.socket,
            ErrorKind::BadResponse => &mut self.bad_response,
            ErrorKind::Status => &mut self.status,
            ErrorKind::Other => &mut self.other,
        };
        *slot += 1;
        self.total += 1;
    }
}

/// A latency distribution in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Number of samples.
    pub samples: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    #[serde(rename = "p99.9")]
    pub p99_9: u64,
    /// Largest sample.
    pub max: u64,
}

impl Latency {
    /// Summarises a histogram (all zeros when it is empty).
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            samples: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// A duration in whole microseconds, rounded up: a reply never takes "0 µs", and
/// rounding up keeps the histogram from flattering the tail.
fn micros(d: Duration) -> u64 {
    let us = d.as_nanos().div_ceil(1000);
    us.min(u128::from(u64::MAX)) as u64
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits: 0.1 % precision, ~140 KiB.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Collects a run's measurements. One per run, shared by its connections (they all run
/// on the generator's single poller thread, so the lock around it is uncontended).
#[derive(Debug)]
pub struct Recorder {
    /// Start (inclusive) and end (exclusive) of the recorded window; nothing is recorded
    /// before it is set.
    window: Option<(Instant, Instant)>,
    latency: Histogram<u64>,
    lag: Histogram<u64>,
    /// Responses completed inside the window.
    completed: u64,
    /// Responses completed over the whole run.
    completed_total: u64,
    /// Requests sent over the whole run.
    sent_total: u64,
    errors: Errors,
    /// The first error's description, to tell the user more than a count.
    first_error: Option<String>,
    /// Requests that never got a response (in flight when the run stopped, or on a
    /// connection that was lost).
    unanswered: u64,
    /// Connections re-established after one was lost.
    reconnects: u64,
    /// Broadcast mode: `latency` holds whole rounds, `completed` counts deliveries.
    broadcast: bool,
    /// Broadcast: rounds completed inside the window.
    rounds: u64,
    /// Broadcast: rounds completed over the whole run.
    rounds_total: u64,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty recorder with no window yet.
    pub fn new() -> Recorder {
        Recorder {
            window: None,
            latency: histogram(),
            lag: histogram(),
            completed: 0,
            completed_total: 0,
            sent_total: 0,
            errors: Errors::default(),
            first_error: None,
            unanswered: 0,
            reconnects: 0,
            broadcast: false,
            rounds: 0,
            rounds_total: 0,
        }
    }

    /// The recorder of a broadcast run: [`delivered`](Recorder::delivered) counts
    /// deliveries as completed requests, [`round`](Recorder::round) records the latency
    /// of whole rounds, and the measurements say how many rounds there were.
    pub fn broadcast(mut self) -> Recorder {
        self.broadcast = true;
        self
    }

    /// Broadcast: `n` deliveries arrived at `now`. Throughput counts them by the time
    /// they arrive.
    pub fn delivered(&mut self, n: u64, now: Instant) {
        self.completed_total += n;
        if self.in_window(now) {
            self.completed += n;
        }
    }

    /// Broadcast: a round sent at `start` received its last delivery at `now`.
    pub fn round(&mut self, start: Instant, now: Instant) {
        self.rounds_total += 1;
        if self.in_window(now) {
            self.rounds += 1;
            self.latency
                .saturating_record(micros(now.saturating_duration_since(start)));
        }
    }

    /// Sets the recorded window: `[start, end)`.
    pub fn set_window(&mut self, start: Instant, end: Instant) {
        self.window = Some((start, end));
    }

    /// Whether `t` falls inside the recorded window.
    pub fn in_window(&self, t: Instant) -> bool {
        self.window.is_some_and(|(s, e)| t >= s && t < e)
    }

    /// A response arrived at `now` for a request that started at `start` (its send time
    /// in closed loop, its intended send time in open loop). Throughput and latency count
    /// responses by the time they complete, as wrk does.
    pub fn response(&mut self, start: Instant, now: Instant) {
        self.completed_total += 1;
        if self.in_window(now) {
            self.completed += 1;
            self.latency
                .saturating_record(micros(now.saturating_duration_since(start)));
        }
    }

    /// An open-loop request meant for `intended` was sent at `now`: how late the
    /// generator itself was (timer resolution, a busy loop, back-pressure).
    pub fn lag(&mut self, intended: Instant, now: Instant) {
        if self.in_window(now) {
            self.lag
                .saturating_record(micros(now.saturating_duration_since(intended)));
        }
    }

    /// Counts `n` requests sent.
    pub fn sent(&mut self, n: u64) {
        self.sent_total += n;
    }

    /// Counts `n` requests that will never be answered: their connection closed (at
    /// the end of the run, or lost during it).
    pub fn unanswered(&mut self, n: u64) {
        self.unanswered += n;
    }

    /// Counts a connection re-established after one was lost.
    pub fn reconnected(&mut self) {
        self.reconnects += 1;
    }

    /// Counts an error; the first one's description is kept for the report.
    pub fn error(&mut self, kind: ErrorKind, detail: impl fmt::Display) {
        self.errors.add(kind);
        if self.first_error.is_none() {
            self.first_error = Some(format!("{kind}: {detail}"));
        }
    }

    /// Requests sent and neither answered nor given up on (their connection closed).
    pub fn in_flight(&self) -> u64 {
        self.sent_total - self.completed_total - self.unanswered
    }

    /// Responses completed over the whole run so far.
    pub fn completed_total(&self) -> u64 {
        self.completed_total
    }

    /// Errors so far.
    pub fn errors(&self) -> &Errors {
        &self.errors
    }

    /// The measurements, for a report: `open_loop` says whether the send lag means
    /// anything.
    pub fn measurements(&self, open_loop: bool) -> Measurements {
        let seconds = self.window.map_or(0.0, |(s, e)| (e - s).as_secs_f64());
        Measurements {
            requests: self.completed,
            seconds,
            rps: if seconds > 0.0 {
                self.completed as f64 / seconds
            } else {
                0.0
            },
            latency_us: Latency::of(&self.latency),
            send_lag_us: open_loop.then(|| Latency::of(&self.lag)),
            errors: self.errors.clone(),
            first_error: self.first_error.clone(),
            sent_total: self.sent_total,
            completed_total: self.completed_total,
            unanswered: self.unanswered,
            reconnects: self.reconnects,
            rounds: self.broadcast.then_some(self.rounds),
            rounds_total: self.broadcast.then_some(self.rounds_total),
        }
    }
}

/// The figures of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Measurements {
    /// Responses completed inside the recorded window.
    pub requests: u64,
    /// Length of the recorded window.
    pub seconds: f64,
    /// `requests / seconds`.
    pub rps: f64,
    /// Latency of the responses completed inside the window, in microseconds: from the
    /// actual send time in closed loop, from the intended send time in open loop.
    pub latency_us: Latency,
    /// Open loop only: how late requests sent inside the window left, relative to their
    /// intended time. Part of every open-loop latency above; large values mean the
    /// generator, not the server, set the pace.
    pub send_lag_us: Option<Latency>,
    /// Errors by kind, over the whole run.
    pub errors: Errors,
    /// The first error's description.
    pub first_error: Option<String>,
    /// Requests sent over the whole run (warm-up included).
    pub sent_total: u64,
    /// Responses completed over the whole run (warm-up included).
    pub completed_total: u64,
    /// Requests sent that never got a response: still outstanding a second after the
    /// run stopped sending, or on a connection that was lost (whose loss is counted in
    /// `errors`, unless the server announced it with `Connection: close`). `sent_total`
    /// is always `completed_total + unanswered`.
    pub unanswered: u64,
    /// Connections re-established after one was lost.
    pub reconnects: u64,
    /// Broadcast mode only: rounds completed inside the window (`requests` then counts
    /// deliveries, `latency_us` the rounds, from their sends to their last delivery).
    pub rounds: Option<u64>,
    /// Broadcast mode only: rounds completed over the whole run (warm-up included).
    pub rounds_total: Option<u64>,
}

/// A run's settings and figures, as printed (and serialised with `--json`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `echo`, `framed` or `http`.
    pub protocol: String,
    /// The target address.
    pub addr: String,
    /// Connections the run was asked to keep open.
    pub connections: usize,
    /// `request` (closed or open loop) or `broadcast` (rounds of deliveries).
    pub mode: &'static str,
    /// Broadcast: connections that send each round.
    pub senders: Option<usize>,
    /// Requests kept outstanding per connection (closed loop).
    pub pipeline: usize,
    /// The open-loop target rate in requests/s; `None` for closed loop.
    pub target_rate: Option<f64>,
    /// Warm-up length in seconds (not recorded).
    pub warmup_s: f64,
    /// The figures.
    #[serde(flatten)]
    pub measurements: Measurements,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_window_is_recorded() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Recorder::new();
        r.response(t0, t0 + ms(1)); // before any window
        r.set_window(t0 + ms(10), t0 + ms(20));
        r.response(t0 + ms(5), t0 + ms(9)); // warm-up
        r.response(t0 + ms(8), t0 + ms(10)); // first instant of the window: 2 ms
        r.response(t0 + ms(15), t0 + ms(19)); // 4 ms
        r.response(t0 + ms(15), t0 + ms(20)); // end is exclusive
        let m = r.measurements(false);
        assert_eq!(m.requests, 2);
        assert_eq!(m.completed_total, 5);
        assert!((m.seconds - 0.010).abs() < 1e-9);
        assert!((m.rps - 200.0).abs() < 1e-6);
        assert_eq!(m.latency_us.samples, 2);
        assert_eq!(m.latency_us.p50, 2000);
        // HDR reports the top of the sample's bucket: 0.1 % precision.
        assert!(
            (4000..=4004).contains(&m.latency_us.max),
            "{}",
            m.latency_us.max
        );
        assert!(m.send_lag_us.is_none());
    }

    #[test]
    fn latencies_round_up_and_saturate() {
        assert_eq!(micros(Duration::from_nanos(1)), 1);
        assert_eq!(micros(Duration::from_nanos(1000)), 1);
        assert_eq!(micros(Duration::from_nanos(1001)), 2);
        let t0 = Instant::now();
        let mut r = Recorder::new();
        r.set_window(t0, t0 + Duration::from_secs(1000));
        r.response(t0, t0 + Duration::from_secs(120));
        let m = r.measurements(true);
        assert_eq!(m.latency_us.samples, 1);
        // Clamped to the histogram's top (within its precision), not dropped.
        assert!(
            m.latency_us.max >= MAX_LATENCY_US && m.latency_us.max < MAX_LATENCY_US / 100 * 101
        );
        assert_eq!(m.send_lag_us, Some(Latency::default()));
    }

    #[test]
    fn errors_are_counted_by_kind_and_the_first_is_described() {
        let mut r = Recorder::new();
        r.error(ErrorKind::BadResponse, "frame length 3, expected 4");
        r.error(ErrorKind::Status, "503");
        r.error(ErrorKind::Status, "503");
        let m = r.measurements(false);
        assert_eq!(m.errors.bad_response, 1);
        assert_eq!(m.errors.status, 2);
        assert_eq!(m.errors.total, 3);
        assert_eq!(
            m.first_error.as_deref(),
            Some("bad_response: frame length 3, expected 4")
        );
    }

    #[test]
    fn the_report_serialises_flat_with_named_percentiles() {
        let report = Report {
            protocol: "http".into(),
            addr: "127.0.0.1:8080".into(),
            connections: 2,
            mode: "request",
            senders: None,
            pipeline: 1,
            target_rate: None,
            warmup_s: 1.0,
            measurements: Recorder::new().measurements(false),
        };
        let v: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(v["protocol"], "http");
        assert_eq!(v["requests"], 0);
        assert!(v["latency_us"]["p99.9"].is_u64());
        assert_eq!(v["errors"]["total"], 0);
        assert!(v["send_lag_us"].is_null());
        assert!(v["rounds"].is_null());
    }

    #[test]
    fn broadcast_counts_deliveries_and_times_rounds() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Recorder::new().broadcast();
        r.set_window(t0 + ms(10), t0 + ms(20));
        r.delivered(9, t0 + ms(5)); // warm-up
        r.round(t0, t0 + ms(5));
        r.delivered(6, t0 + ms(12));
        r.delivered(3, t0 + ms(13));
        r.round(t0 + ms(10), t0 + ms(13));
        let m = r.measurements(false);
        assert_eq!((m.requests, m.completed_total), (9, 18));
        assert_eq!((m.rounds, m.rounds_total), (Some(1), Some(2)));
        assert_eq!(m.latency_us.samples, 1);
        // HDR reports the top of the sample's bucket: 0.1 % precision.
        assert!(
            (3000..=3003).contains(&m.latency_us.p50),
            "{}",
            m.latency_us.p50
        );
    }
}
