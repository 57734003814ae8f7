//! A poller's connection deadlines on its [`TimerWheel`](crate::timer::TimerWheel): the
//! read, write and idle timeouts, the handler's keyed timers, and the deadline of the
//! current phase (a dial's start time or connect timeout, a handshake timeout).
//!
//! Each connection keeps the start of each timeout window and its timers' deadlines; the
//! wheel holds one entry per connection, for the earliest of them (see the wheel's docs
//! for why re-arming is O(1) and allocation-free). When it fires, the connection's
//! deadlines are looked at again: what passed acts, the rest is scheduled anew.

use std::time::Duration;

use crate::clock::Nanos;

use super::slot::Holder;
use super::state::Phase;
use super::Poller;
use crate::conn::Timeouts;
use crate::{CloseReason, Conn, TimerKey};

/// A connection's deadlines.
pub(crate) struct SlotTimers {
    /// Last time bytes moved in either direction (idle timeout).
    pub(super) last_activity: Nanos,
    /// Since when unconsumed input has sat without the handler consuming any.
    read_since: Option<Nanos>,
    /// Since when queued output has not moved.
    write_since: Option<Nanos>,
    /// Some output was sent since the last re-arm.
    write_progress: bool,
    /// The handler's armed timers and their deadlines (a few at most: searched in order;
    /// the vector keeps its capacity, so re-arming does not allocate).
    armed: Vec<(TimerKey, Nanos)>,
    /// Timers that expired and whose `on_timer` has not run, in the order they expired.
    due: Vec<TimerKey>,
    /// The deadline of the connection's current phase, if it has one.
    pub(super) phase_deadline: Option<Nanos>,
    /// The tick of this connection's live wheel entry.
    tick: Option<u64>,
}

impl SlotTimers {
    pub(super) fn new(now: Nanos) -> SlotTimers {
        SlotTimers {
            last_activity: now,
            read_since: None,
            write_since: None,
            write_progress: false,
            armed: Vec::new(),
            due: Vec::new(),
            phase_deadline: None,
            tick: None,
        }
    }

    /// Whether [`rearm`](Poller::rearm) would do no more than close the timeout windows
    /// of a connection with nothing buffered either way: its wheel entry is live (or it
    /// has nothing to time), its limits did not change, it asked for no timer and its
    /// phase has no deadline.
    #[inline]
    pub(super) fn settled(&self, conn: &Conn) -> bool {
        (self.tick.is_some() || (conn.timeouts == Timeouts::default() && self.armed.is_empty()))
            && !conn.requests.timeouts_changed
            && conn.requests.timers.is_empty()
            && self.phase_deadline.is_none()
    }

    /// Nothing is buffered and nothing waits to be sent: no read or write window is
    /// open (what [`rearm`](Poller::rearm) does in that case).
    #[inline]
    pub(super) fn close_windows(&mut self) {
        self.read_since = None;
        self.write_since = None;
        self.write_progress = false;
    }

    /// Whether a deadline other than the timeouts is set.
    pub(super) fn has_deadlines(&self) -> bool {
        !self.armed.is_empty() || self.phase_deadline.is_some()
    }

    /// Output moved.
    pub(super) fn wrote(&mut self, now: Nanos) {
        self.last_activity = now;
        self.write_progress = true;
    }

    /// The first expired timer whose `on_timer` has not run.
    pub(super) fn first_due(&self) -> Option<TimerKey> {
        self.due.first().copied()
    }

    /// `on_timer(key)` is about to run.
    pub(super) fn take_due(&mut self, key: TimerKey) {
        if let Some(i) = self.due.iter().position(|&k| k == key) {
            self.due.remove(i);
        }
    }

    /// Carries out the handler's arm and cancel requests, in order; `armed_at` is when
    /// they are taken (deadlines count from then, never from earlier). Returns the
    /// earliest deadline armed.
    fn apply(
        &mut self,
        requests: &mut Vec<(TimerKey, Option<Duration>)>,
        armed_at: Nanos,
    ) -> Option<Nanos> {
        let mut earliest: Option<Nanos> = None;
        for (key, after) in requests.drain(..) {
            if let Some(after) = after {
                let at = armed_at.after(after);
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
            self.due.retain(|&k| k != key);
            match (self.armed.iter_mut().find(|(k, _)| *k == key), after) {
                (Some(entry), Some(after)) => entry.1 = armed_at.after(after),
                (None, Some(after)) => self.armed.push((key, armed_at.after(after))),
                (Some(_), None) => self.armed.retain(|(k, _)| *k != key),
                (None, None) => {}
            }
        }
        earliest
    }

    /// Moves the timers whose deadline passed to the due list, earliest first (several
    /// may have passed by the time the poller looks); returns whether any did.
    fn expire(&mut self, now: Nanos) -> bool {
        let before = self.due.len();
        while let Some(i) = self
            .armed
            .iter()
            .enumerate()
            .filter(|(_, &(_, at))| at <= now)
            .min_by_key(|(_, &(_, at))| at)
            .map(|(i, _)| i)
        {
            self.due.push(self.armed.swap_remove(i).0);
        }
        self.due.len() > before
    }
}

/// How often a poller wakes while sessions with deadlines are on workers: a hand-back
/// may come without waking it, and a session's deadlines are checked when it is home.
///
/// This is one bound on the poller's wait, not a wheel entry per session: an entry per
/// hand-off would leave the connection's later entry (its idle deadline) stale in the
/// wheel, and a busy connection would pile up one every 50 ms for a whole idle timeout.
pub(super) const AWAY_RECHECK: Duration = Duration::from_millis(50);

impl Poller {
    /// Restarts or clears a home connection's timeout windows from its current state,
    /// takes its timer requests, and makes sure the wheel holds an entry for its earliest
    /// deadline.
    pub(super) fn rearm(&mut self, index: usize) {
        let now = self.now;
        let output_high_water = self.config.output_high_water;
        let slot = &mut self.slab[index];
        let phase_deadline = slot.timers.phase_deadline;
        let Holder::Home(session) = &mut slot.holder else {
            return;
        };
        let conn = &mut session.conn;
        let t = &mut slot.timers;
        if conn.timeouts == Timeouts::default()
            && t.armed.is_empty()
            && conn.requests.timers.is_empty()
            && phase_deadline.is_none()
        {
            // Nothing to time (the common case for servers without timeouts): skip the
            // window bookkeeping; windows start when a timeout is first set.
            conn.input.progressed = false;
            conn.requests.timeouts_changed = false;
            t.write_progress = false;
            t.read_since = None;
            t.write_since = None;
            return;
        }
        // With a wheel entry live, only deadlines that begin this turn can come before
        // it: every earlier one was scheduled when it began, and the idle deadline only
        // moves later. Without one (it just fired), or with the limits changed,
        // everything is looked at. This keeps the common turn free of clock arithmetic.
        let full = t.tick.is_none() || conn.requests.timeouts_changed;
        let limits = conn.timeouts;
        let mut earliest = phase_deadline;
        let mut consider = |at: Option<Nanos>| {
            if let Some(at) = at {
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
        };
        // Above the output mark the server itself holds requests back (backpressure):
        // the peer is not slow to send, it is slow to read, which the write timeout
        // covers.
        let pending = conn.link.pending(&conn.output);
        let withheld = pending >= output_high_water;
        if conn.input.is_empty() || withheld {
            t.read_since = None;
        } else if conn.input.progressed || t.read_since.is_none() {
            t.read_since = Some(now);
            consider(limits.read.map(|d| now.after(d)));
        }
        conn.input.progressed = false;
        conn.requests.timeouts_changed = false;
        if pending == 0 {
            t.write_since = None;
        } else if t.write_progress || t.write_since.is_none() {
            t.write_since = Some(now);
            consider(limits.write.map(|d| now.after(d)));
        }
        t.write_progress = false;
        if !conn.requests.timers.is_empty() {
            // Measured from now, not from the start of this turn: the handler asked
            // after the turn began, and a timer must never fire early by its clock.
            consider(t.apply(&mut conn.requests.timers, Nanos::now()));
        }
        if full {
            consider(t.read_since.zip(limits.read).map(|(s, d)| s.after(d)));
            consider(t.write_since.zip(limits.write).map(|(s, d)| s.after(d)));
            consider(limits.idle.map(|d| t.last_activity.after(d)));
            consider(t.armed.iter().map(|&(_, at)| at).min());
        }
        if let Some(at) = earliest {
            self.schedule(index, at);
        }
        // Cancelling is lazy: a live entry finds nothing due and lapses.
    }

    /// Makes sure the wheel holds an entry for this connection at `at` or earlier.
    fn schedule(&mut self, index: usize, at: Nanos) {
        let slot = &mut self.slab[index];
        let tick = self.wheel.tick_of(at);
        if slot.timers.tick.is_none_or(|scheduled| tick < scheduled) {
            slot.timers.tick = Some(self.wheel.insert(at, index, slot.generation));
        }
    }

    /// Acts on every wheel entry that is due.
    pub(super) fn fire_timers(&mut self) {
        // The common turn: nothing due, and no scratch vector to move in and out.
        if !self.wheel.is_due(self.now) {
            return;
        }
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

    /// Acts on whichever of the connection's deadlines passed; schedules the next one.
    fn check_timeouts(&mut self, index: usize) {
        let now = self.now;
        let slot = &mut self.slab[index];
        let phase_passed = slot.timers.phase_deadline.is_some_and(|d| now >= d);
        match slot.phase {
            Phase::Connecting => {
                if phase_passed {
                    return self.dial_deadline(index);
                }
                return self.rearm(index);
            }
            Phase::Handshaking if phase_passed => {
                slot.timers.phase_deadline = None;
                slot.phase = slot.phase.abort(CloseReason::HandshakeTimeout);
                return self.advance(index);
            }
            _ => {}
        }
        let Holder::Home(session) = &mut slot.holder else {
            // The handler is still running on a worker (a finished one would have been
            // taken back at the top of this turn). Its entry is spent, so its return
            // looks at every deadline (`rearm` with no entry live), and the poller
            // wakes to take it back (`away_watched`).
            return;
        };
        let conn = &mut session.conn;
        let limits = conn.timeouts;
        let t = &mut slot.timers;
        let passed = |since: Option<Nanos>, limit: Option<Duration>| {
            since.zip(limit).is_some_and(|(s, d)| now >= s.after(d))
        };
        let expired = if passed(t.write_since, limits.write) {
            Some(CloseReason::WriteTimeout)
        } else if passed(t.read_since, limits.read) {
            Some(CloseReason::ReadTimeout)
        } else if passed(Some(t.last_activity), limits.idle) {
            Some(CloseReason::IdleTimeout)
        } else {
            None
        };
        if let Some(reason) = expired {
            tracing::debug!(parent: &conn.span, %reason, "timeout");
            slot.phase = slot.phase.abort(reason);
            return self.advance(index);
        }
        if t.expire(now) {
            return self.advance(index);
        }
        self.rearm(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u16) -> TimerKey {
        TimerKey(n)
    }

    #[test]
    fn timers_arm_replace_cancel_and_expire_earliest_first() {
        let t0 = Nanos::now();
        let mut t = SlotTimers::new(t0);
        let ms = Duration::from_millis;
        let mut asks = vec![
            (key(1), Some(ms(60))),
            (key(2), Some(ms(20))),
            (key(3), Some(ms(40))),
            (key(3), None),
            (key(4), Some(ms(10))),
            (key(4), Some(ms(50))),
        ];
        t.apply(&mut asks, t0);
        assert!(asks.is_empty(), "requests are taken");
        assert_eq!(
            t.armed.len(),
            3,
            "re-arming key 4 replaced it, key 3 is gone"
        );
        // Everything has passed by the time the poller looks: deadline order anyway.
        assert!(t.expire(t0.after(ms(100))));
        assert_eq!(t.due, [key(2), key(4), key(1)]);
        assert!(!t.has_deadlines());
        t.take_due(key(4));
        assert_eq!(t.first_due(), Some(key(2)));
        // Re-arming or cancelling a key that expired but has not run drops its run.
        let mut asks = vec![(key(2), None), (key(1), Some(ms(5)))];
        t.apply(&mut asks, t0.after(ms(100)));
        assert_eq!(t.first_due(), None);
        assert!(!t.expire(t0.after(ms(104))));
        assert!(t.expire(t0.after(ms(105))), "never early, on time");
        assert_eq!(t.due, [key(1)]);
    }
}
