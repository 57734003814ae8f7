//! The HTTP layer's deadlines: their settings, and one lazily re-armed timer per
//! connection that enforces whichever applies now.
//!
//! A keep-alive connection moves between phases (waiting, reading a head, reading a
//! body) once per request. Re-arming a timer at each move would cost a timer request per
//! request, so the connection keeps its current deadline in its state and one timer that
//! fires no later than it: moving to a later deadline changes nothing, moving to an
//! earlier one re-arms, and a timer that fires early is re-armed for what is left.

use std::time::{Duration, Instant};

use crate::{Conn, TimerKey};

/// The HTTP layer's one timer key: keys `0xFE00..=0xFEFF` are the HTTP layer's, the rest
/// stay free for applications and other layers.
pub(super) const DEADLINE: TimerKey = TimerKey(0xFE00);

/// How long each part of a request may take; see the [`Http`](super::Http) builder
/// methods for what each bounds and why its default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Deadlines {
    pub(super) head: Duration,
    pub(super) body: Duration,
    /// Bytes per second a body must average after `body` to keep its connection.
    pub(super) body_min_rate: u32,
    pub(super) keep_alive: Duration,
    pub(super) write: Option<Duration>,
}

impl Default for Deadlines {
    fn default() -> Deadlines {
        Deadlines {
            head: Duration::from_secs(10),
            body: Duration::from_secs(20),
            body_min_rate: 1024,
            keep_alive: Duration::from_secs(60),
            write: Some(Duration::from_secs(30)),
        }
    }
}

impl Deadlines {
    /// When a body that started at `started` and has `received` bytes so far must be
    /// complete: its grace period, plus a second for every `body_min_rate` bytes.
    pub(super) fn body_deadline(&self, started: Instant, received: usize) -> Instant {
        let rate = u64::from(self.body_min_rate.max(1));
        let extra = Duration::from_millis((received as u64).saturating_mul(1000) / rate);
        started + self.body + extra
    }
}

/// A connection's current deadline and the timer that enforces it.
#[derive(Debug, Default)]
pub(super) struct DeadlineTimer {
    /// When the current phase must be over (`None`: it has no deadline).
    deadline: Option<Instant>,
    /// When the armed timer fires (`None`: not armed).
    fires_at: Option<Instant>,
}

impl DeadlineTimer {
    /// The current phase must end by `at`.
    pub(super) fn expect_by(&mut self, conn: &mut Conn, at: Instant) {
        self.deadline = Some(at);
        if self.fires_at.is_none_or(|fires| fires > at) {
            conn.set_timer(DEADLINE, at.saturating_duration_since(conn.now()));
            self.fires_at = Some(at);
        }
    }

    /// The current phase has no deadline (the armed timer, if any, is left to fire and
    /// find nothing due).
    pub(super) fn clear(&mut self) {
        self.deadline = None;
    }

    /// The timer fired: whether the deadline has passed. If it has not, the timer is
    /// re-armed for it.
    pub(super) fn fired(&mut self, conn: &mut Conn) -> bool {
        self.fires_at = None;
        match self.deadline {
            None => false,
            Some(at) if at > conn.now() => {
                self.expect_by(conn, at);
                false
            }
            Some(_) => true,
        }
    }

    /// Stops the timer for good (the connection leaves the HTTP layer).
    pub(super) fn cancel(&mut self, conn: &mut Conn) {
        if self.fires_at.take().is_some() {
            conn.cancel_timer(DEADLINE);
        }
        self.deadline = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_deadline_grows_with_the_bytes_received() {
        let d = Deadlines::default();
        let t0 = Instant::now();
        assert_eq!(d.body_deadline(t0, 0), t0 + Duration::from_secs(20));
        assert_eq!(d.body_deadline(t0, 10 * 1024), t0 + Duration::from_secs(30));
        let stingy = Deadlines {
            body_min_rate: 0, // treated as 1 byte/s, never a division by zero
            ..d
        };
        assert_eq!(stingy.body_deadline(t0, 5), t0 + Duration::from_secs(25));
    }
}
