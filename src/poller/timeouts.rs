//! Read, write, idle and user timeouts of one poller's connections, on its
//! [`TimerWheel`](crate::timer::TimerWheel).
//!
//! Each connection keeps the start of each timeout window; the deadline is the start
//! plus the connection's configured timeout. Only the earliest deadline has an entry in
//! the wheel (see the wheel's docs for why re-arming is O(1) and allocation-free).

use std::time::{Duration, Instant};

use super::Poller;
use crate::conn::Timeouts;
use crate::CloseReason;

/// A connection's timer state.
pub(crate) struct SlotTimers {
    /// Last time bytes moved in either direction (idle timeout).
    pub(super) last_activity: Instant,
    /// Since when unconsumed input has sat without the handler consuming any.
    read_since: Option<Instant>,
    /// Since when queued output has not moved.
    write_since: Option<Instant>,
    /// Some output was sent since the last re-arm.
    write_progress: bool,
    /// The handler's own timer ([`Conn::set_timer`](crate::Conn::set_timer)).
    user_deadline: Option<Instant>,
    /// The user timer expired; `on_timer` runs when the session is home.
    pub(super) user_due: bool,
    /// The tick of this connection's live wheel entry.
    tick: Option<u64>,
}

impl SlotTimers {
    pub(super) fn new(now: Instant) -> SlotTimers {
        SlotTimers {
            last_activity: now,
            read_since: None,
            write_since: None,
            write_progress: false,
            user_deadline: None,
            user_due: false,
            tick: None,
        }
    }

    pub(super) fn has_user_deadline(&self) -> bool {
        self.user_deadline.is_some()
    }

    /// Output moved.
    pub(super) fn wrote(&mut self, now: Instant) {
        self.last_activity = now;
        self.write_progress = true;
    }
}

/// How often the deadlines of a connection whose handler is on a worker are looked at:
/// its completion may come back without waking the poller.
const AWAY_RECHECK: Duration = Duration::from_millis(50);

/// Which timeout expired first.
enum Expired {
    Close(CloseReason),
    UserTimer,
}

impl Poller {
    /// Restarts or clears a home connection's timeout windows from its current state and
    /// makes sure the wheel holds an entry for its earliest deadline.
    pub(super) fn rearm(&mut self, index: usize) {
        let now = self.now;
        let slot = &mut self.slab[index];
        let Some(session) = slot.session.as_mut() else {
            return;
        };
        let conn = session.conn();
        let t = &mut slot.timers;
        if conn.timeouts == Timeouts::default()
            && t.user_deadline.is_none()
            && conn.timer_request.is_none()
        {
            // Nothing to time (the common case for servers without timeouts): skip the
            // window bookkeeping; windows start when a timeout is first set.
            conn.input.progressed = false;
            conn.timeouts_changed = false;
            t.write_progress = false;
            t.read_since = None;
            t.write_since = None;
            return;
        }
        // Above the output mark the server itself holds requests back (backpressure):
        // the peer is not slow to send, it is slow to read, which the write timeout
        // covers.
        let withheld = conn.output.len() >= self.config.output_high_water;
        if conn.input.is_empty() || withheld {
            t.read_since = None;
        } else if conn.input.progressed || t.read_since.is_none() {
            t.read_since = Some(now);
        }
        conn.input.progressed = false;
        conn.timeouts_changed = false;
        if conn.output.is_empty() {
            t.write_since = None;
        } else if t.write_progress || t.write_since.is_none() {
            t.write_since = Some(now);
        }
        t.write_progress = false;
        if let Some(request) = conn.timer_request.take() {
            // Measured from now, not from the start of this turn: the handler asked
            // after the turn began, and a timer must never fire early by its clock.
            let armed = Instant::now();
            t.user_deadline = request.map(|after| armed + after);
        }
        let limits = conn.timeouts;
        let deadline = [
            t.read_since.zip(limits.read).map(|(s, d)| s + d),
            t.write_since.zip(limits.write).map(|(s, d)| s + d),
            limits.idle.map(|d| t.last_activity + d),
            t.user_deadline,
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(at) = deadline {
            self.schedule(index, at);
        }
        // Cancelling is lazy: a live entry finds nothing due and lapses.
    }

    /// Makes sure the wheel holds an entry for this connection at `at` or earlier.
    fn schedule(&mut self, index: usize, at: Instant) {
        let slot = &mut self.slab[index];
        let tick = self.wheel.tick_of(at);
        if slot.timers.tick.map_or(true, |scheduled| tick < scheduled) {
            slot.timers.tick = Some(self.wheel.insert(at, index, slot.generation));
        }
    }

    /// Looks at this connection's deadlines again shortly (its handler is away).
    pub(super) fn recheck_later(&mut self, index: usize) {
        self.schedule(index, self.now + AWAY_RECHECK);
    }

    /// Acts on every wheel entry that is due.
    pub(super) fn fire_timers(&mut self) {
        let mut due = std::mem::take(&mut self.due);
        self.wheel.expire(self.now, &mut due);
        for entry in due.drain(..) {
            let Some(slot) = self.slab.get_mut(entry.index) else {
                continue;
            };
            if slot.generation != entry.generation || slot.timers.tick != Some(entry.tick) {
                continue; // stale: the connection was re-armed earlier or is gone
            }
            slot.timers.tick = None;
            self.check_timeouts(entry.index);
        }
        self.due = due;
    }

    /// Closes the connection, or runs its timer, if one of its deadlines passed;
    /// otherwise schedules the next one.
    fn check_timeouts(&mut self, index: usize) {
        let now = self.now;
        let slot = &mut self.slab[index];
        let Some(session) = slot.session.as_mut() else {
            // The handler is still running on a worker (a finished one would have been
            // taken back at the top of this turn): look again later.
            self.recheck_later(index);
            return;
        };
        let limits = session.conn().timeouts;
        let t = &mut slot.timers;
        let passed = |since: Option<Instant>, limit: Option<std::time::Duration>| {
            since.zip(limit).is_some_and(|(s, d)| now >= s + d)
        };
        let expired = if passed(t.write_since, limits.write) {
            Some(Expired::Close(CloseReason::WriteTimeout))
        } else if passed(t.read_since, limits.read) {
            Some(Expired::Close(CloseReason::ReadTimeout))
        } else if passed(Some(t.last_activity), limits.idle) {
            Some(Expired::Close(CloseReason::IdleTimeout))
        } else if t.user_deadline.is_some_and(|d| now >= d) {
            Some(Expired::UserTimer)
        } else {
            None
        };
        match expired {
            Some(Expired::Close(reason)) => {
                tracing::debug!(parent: &session.conn().span, %reason, "timeout");
                self.finalize(index, reason);
            }
            Some(Expired::UserTimer) => {
                t.user_deadline = None;
                t.user_due = true;
                self.settle(index);
            }
            None => self.rearm(index),
        }
    }
}
