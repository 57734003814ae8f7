//! The HTTP layer's counters: why it cut connections off and which requests it refused.
//!
//! Only rare events are counted (a counter shared by every poller thread, bumped per
//! request, would bounce its cache line between cores); requests served are the core's
//! [`Stats::handler_calls`](crate::Stats::handler_calls) and bytes are in
//! [`Stats`](crate::Stats) too.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Why the HTTP layer ended a connection or refused a request: each has a counter in
/// [`HttpStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpEvent {
    /// A request head took longer than [`Http::head_timeout`](super::Http::head_timeout)
    /// from its first byte: answered `408`, closed.
    HeadTimeout,
    /// A body fell behind [`Http::body_timeout`](super::Http::body_timeout) and
    /// [`Http::body_min_rate`](super::Http::body_min_rate): answered `408`, closed.
    BodyTimeout,
    /// No request began within [`Http::keep_alive_timeout`](super::Http::keep_alive_timeout)
    /// of the previous response (or, for a new connection, within the head timeout of
    /// its opening): closed without an answer.
    IdleTimeout,
    /// Responses stayed unsent for [`Http::write_timeout`](super::Http::write_timeout):
    /// the peer stopped reading; closed.
    WriteTimeout,
    /// Refused with `400`: malformed, or ambiguous framing (a smuggling attempt).
    BadRequest,
    /// Refused with `413`: the body over its limit.
    BodyTooLarge,
    /// Refused with `414`: the request line over the head limit.
    UriTooLong,
    /// Refused with `417`: an `Expect` other than `100-continue`.
    ExpectationFailed,
    /// Refused with `431`: too many headers, or a head over its limit.
    HeadersTooLarge,
    /// Refused with `501`: a transfer coding other than `chunked`.
    NotImplemented,
    /// An interim `100 Continue` was sent.
    Continue,
    /// The connection switched protocols ([`Upgrade::Switched`](super::Upgrade::Switched)).
    Upgraded,
}

impl HttpEvent {
    const ALL: [HttpEvent; 12] = [
        HttpEvent::HeadTimeout,
        HttpEvent::BodyTimeout,
        HttpEvent::IdleTimeout,
        HttpEvent::WriteTimeout,
        HttpEvent::BadRequest,
        HttpEvent::BodyTooLarge,
        HttpEvent::UriTooLong,
        HttpEvent::ExpectationFailed,
        HttpEvent::HeadersTooLarge,
        HttpEvent::NotImplemented,
        HttpEvent::Continue,
        HttpEvent::Upgraded,
    ];

    fn slot(self) -> usize {
        self as usize
    }

    /// The counter's name in [`HttpStats`] and in the Prometheus text format.
    pub fn name(self) -> &'static str {
        match self {
            HttpEvent::HeadTimeout => "head_timeout",
            HttpEvent::BodyTimeout => "body_timeout",
            HttpEvent::IdleTimeout => "idle_timeout",
            HttpEvent::WriteTimeout => "write_timeout",
            HttpEvent::BadRequest => "bad_request",
            HttpEvent::BodyTooLarge => "body_too_large",
            HttpEvent::UriTooLong => "uri_too_long",
            HttpEvent::ExpectationFailed => "expectation_failed",
            HttpEvent::HeadersTooLarge => "headers_too_large",
            HttpEvent::NotImplemented => "not_implemented",
            HttpEvent::Continue => "continue",
            HttpEvent::Upgraded => "upgraded",
        }
    }

    /// The status code it was answered with, if any.
    pub fn status(self) -> Option<u16> {
        match self {
            HttpEvent::HeadTimeout | HttpEvent::BodyTimeout => Some(408),
            HttpEvent::BadRequest => Some(400),
            HttpEvent::BodyTooLarge => Some(413),
            HttpEvent::UriTooLong => Some(414),
            HttpEvent::ExpectationFailed => Some(417),
            HttpEvent::HeadersTooLarge => Some(431),
            HttpEvent::NotImplemented => Some(501),
            HttpEvent::Continue => Some(100),
            HttpEvent::Upgraded => Some(101),
            HttpEvent::IdleTimeout | HttpEvent::WriteTimeout => None,
        }
    }
}

/// The live counters of one [`Http`](super::Http) layer, shared with every clone: take a
/// clone with [`Http::metrics`](super::Http::metrics) before serving, read it with
/// [`snapshot`](HttpMetrics::snapshot) at any time, from any thread.
#[derive(Clone, Debug, Default)]
pub struct HttpMetrics {
    counters: Arc<[AtomicU64; HttpEvent::ALL.len()]>,
}

impl HttpMetrics {
    pub(super) fn count(&self, event: HttpEvent) {
        self.counters[event.slot()].fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> HttpStats {
        let mut counts = [0; HttpEvent::ALL.len()];
        for (count, counter) in counts.iter_mut().zip(self.counters.iter()) {
            *count = counter.load(Ordering::Relaxed);
        }
        HttpStats { counts }
    }
}

/// A snapshot of an HTTP layer's counters ([`HttpMetrics::snapshot`]).
///
/// ```
/// use netloop::http::{Http, HttpEvent, Request, Response};
///
/// let http = Http::new(|_: &Request, res: &mut Response<'_>| res.body(b"hi"));
/// let metrics = http.metrics();
/// // ... serve `http` ...
/// let stats = metrics.snapshot();
/// assert_eq!(stats.get(HttpEvent::HeadTimeout), 0);
/// assert!(stats.to_string().contains("head_timeout 0"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpStats {
    counts: [u64; HttpEvent::ALL.len()],
}

impl HttpStats {
    /// The count of `event`.
    pub fn get(&self, event: HttpEvent) -> u64 {
        self.counts[event.slot()]
    }

    /// Every counter with its event, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (HttpEvent, u64)> + '_ {
        HttpEvent::ALL.iter().map(|&e| (e, self.get(e)))
    }

    /// Adds another layer's counts to these.
    pub(crate) fn absorb(&mut self, other: &HttpStats) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
    }

    /// Connections the layer closed for a deadline (head, body, idle, write).
    pub fn timeouts(&self) -> u64 {
        [
            HttpEvent::HeadTimeout,
            HttpEvent::BodyTimeout,
            HttpEvent::IdleTimeout,
            HttpEvent::WriteTimeout,
        ]
        .iter()
        .map(|&e| self.get(e))
        .sum()
    }

    /// Appends the counters in the Prometheus text exposition format, as one counter
    /// family `{prefix}_http_events_total` with an `event` label.
    pub fn write_prometheus(&self, prefix: &str, out: &mut String) {
        use std::fmt::Write;
        let family = format!("{prefix}_http_events_total");
        let _ = writeln!(
            out,
            "# HELP {family} Connections the HTTP layer cut off and requests it refused, by event."
        );
        let _ = writeln!(out, "# TYPE {family} counter");
        for (event, count) in self.iter() {
            let _ = writeln!(out, "{family}{{event=\"{}\"}} {count}", event.name());
        }
    }
}

impl fmt::Display for HttpStats {
    /// One `name count` pair per line, as `netloop::Stats` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (event, count) in self.iter() {
            writeln!(f, "http {} {count}", event.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_its_own_slot_and_name() {
        let m = HttpMetrics::default();
        for (i, &e) in HttpEvent::ALL.iter().enumerate() {
            assert_eq!(e.slot(), i);
            for _ in 0..=i {
                m.count(e);
            }
        }
        let s = m.snapshot();
        for (i, &e) in HttpEvent::ALL.iter().enumerate() {
            assert_eq!(s.get(e), i as u64 + 1, "{e:?}");
        }
        let names: std::collections::HashSet<_> = HttpEvent::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(names.len(), HttpEvent::ALL.len());
        assert_eq!(s.timeouts(), 1 + 2 + 3 + 4);
    }

    #[test]
    fn prometheus_text_lists_every_event() {
        let m = HttpMetrics::default();
        m.count(HttpEvent::BadRequest);
        let mut out = String::new();
        m.snapshot().write_prometheus("netloop", &mut out);
        assert!(out.contains("# TYPE netloop_http_events_total counter\n"));
        assert!(out.contains("netloop_http_events_total{event=\"bad_request\"} 1\n"));
        assert_eq!(
            out.lines().filter(|l| !l.starts_with('#')).count(),
            HttpEvent::ALL.len()
        );
    }
}
