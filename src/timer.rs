//! The per-poller timer wheel.
//!
//! A hashed wheel of `SLOTS` buckets, each `TICK` (1 ms) wide. A connection has at most one
//! live entry, scheduled for its earliest deadline (read, write, idle or its own timer);
//! its deadlines themselves live in the connection. That makes every operation cheap:
//!
//! * re-arming to a *later* deadline (the idle timeout after each request) touches only
//!   the connection's field; when the early entry fires, the poller sees the deadline
//!   has moved and schedules it again;
//! * re-arming to an *earlier* deadline inserts one entry (O(1)); the old one becomes
//!   stale and is skipped when it fires (its tick no longer matches);
//! * cancelling is setting the deadline to `None`.
//!
//! Buckets are `Vec`s that keep their capacity, so steady-state re-arming does not
//! allocate.

use std::time::Duration;

use crate::clock::Nanos;

/// Width of one bucket: the resolution of every timeout. One millisecond matches
/// `epoll_wait`'s own resolution; the wheel's cost does not depend on it (empty
/// stretches are skipped at once).
pub(crate) const TICK: Duration = Duration::from_millis(1);
const TICK_NANOS: u64 = TICK.as_nanos() as u64;

const SLOTS: usize = 512;
/// Entries each bucket holds before it grows (48 KiB per poller in all).
const BUCKET_CAPACITY: usize = 4;

/// Identifies the connection an entry belongs to (slab index and generation) and the
/// tick it was scheduled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) index: usize,
    pub(crate) generation: u32,
    pub(crate) tick: u64,
}

pub(crate) struct TimerWheel {
    origin: Nanos,
    buckets: Vec<Vec<Entry>>,
    /// The next tick to process: every tick before it has fired.
    current: u64,
    /// Earliest tick holding an entry (may be stale-low; never too high).
    earliest: Option<u64>,
    /// When `earliest` begins: the poller asks every loop turn whether it has come and
    /// how long until it does, and comparing readings is cheaper than converting `now`
    /// to ticks each time.
    earliest_at: Option<Nanos>,
    len: usize,
}

impl TimerWheel {
    pub(crate) fn new(origin: Nanos) -> TimerWheel {
        TimerWheel {
            origin,
            // Sized up front so the first lap of the wheel does not allocate either.
            buckets: (0..SLOTS)
                .map(|_| Vec::with_capacity(BUCKET_CAPACITY))
                .collect(),
            current: 0,
            earliest: None,
            earliest_at: None,
            len: 0,
        }
    }

    /// The tick at or after `at`: timeouts never fire early.
    pub(crate) fn tick_of(&self, at: Nanos) -> u64 {
        at.since(self.origin).div_ceil(TICK_NANOS)
    }

    /// Schedules an entry for `at`; returns the tick it landed on.
    pub(crate) fn insert(&mut self, at: Nanos, index: usize, generation: u32) -> u64 {
        let tick = self.tick_of(at).max(self.current);
        self.buckets[(tick % SLOTS as u64) as usize].push(Entry {
            index,
            generation,
            tick,
        });
        self.len += 1;
        if self.earliest.is_none_or(|e| tick < e) {
            self.set_earliest(Some(tick));
        }
        tick
    }

    fn set_earliest(&mut self, tick: Option<u64>) {
        self.earliest = tick;
        self.earliest_at =
            tick.map(|t| Nanos(self.origin.0.saturating_add(t.saturating_mul(TICK_NANOS))));
    }

    /// Whether an entry may be due at `now` ([`expire`](TimerWheel::expire) has work).
    #[inline]
    pub(crate) fn is_due(&self, now: Nanos) -> bool {
        self.earliest_at.is_some_and(|at| now >= at)
    }

    /// Moves every entry due at `now` into `due`.
    pub(crate) fn expire(&mut self, now: Nanos, due: &mut Vec<Entry>) {
        if !self.is_due(now) {
            return; // the common turn: nothing due
        }
        let until = self.floor_tick(now);
        let Some(earliest) = self.earliest.filter(|&e| e <= until) else {
            return;
        };
        // Nothing is scheduled before `earliest`: skip the empty stretch at once.
        self.current = self.current.max(earliest);
        while self.current <= until && self.len > 0 {
            let bucket = &mut self.buckets[(self.current % SLOTS as u64) as usize];
            let before = bucket.len();
            let current = self.current;
            // Entries for a later lap of the wheel stay.
            bucket.retain(|e| {
                if e.tick <= current {
                    due.push(*e);
                    false
                } else {
                    true
                }
            });
            self.len -= before - bucket.len();
            self.current += 1;
        }
        self.current = self.current.max(until + 1);
        let earliest = self.find_earliest();
        self.set_earliest(earliest);
    }

    /// When the next entry is due (`None`: nothing scheduled).
    #[inline]
    pub(crate) fn next_due(&self) -> Option<Nanos> {
        self.earliest_at
    }

    /// How long until the next entry is due (`None`: nothing scheduled).
    #[cfg(test)]
    pub(crate) fn next_timeout(&self, now: Nanos) -> Option<Duration> {
        // 64-bit arithmetic: a u32 tick count would wrap after 49.7 days of uptime.
        Some(Duration::from_nanos(self.earliest_at?.since(now)))
    }

    fn floor_tick(&self, now: Nanos) -> u64 {
        now.since(self.origin) / TICK_NANOS
    }

    /// The earliest scheduled tick: the first bucket from `current` on that holds an
    /// entry for this lap; entries more than a lap away are found by a full scan, which
    /// only happens when nothing nearer exists.
    fn find_earliest(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        for tick in self.current..self.current + SLOTS as u64 {
            let bucket = &self.buckets[(tick % SLOTS as u64) as usize];
            if bucket.iter().any(|e| e.tick <= tick) {
                return Some(tick);
            }
        }
        self.buckets
            .iter()
            .flat_map(|b| b.iter().map(|e| e.tick))
            .min()
    }

    /// Number of scheduled entries (stale ones included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Nanos, d: Duration) -> Nanos {
        t0.after(d)
    }

    #[test]
    fn an_entry_fires_at_its_tick_and_not_before() {
        let t0 = Nanos::now();
        let mut w = TimerWheel::new(t0);
        w.insert(at(t0, Duration::from_millis(35)), 7, 1);
        let mut due = Vec::new();
        w.expire(at(t0, Duration::from_millis(30)), &mut due);
        assert!(due.is_empty());
        w.expire(at(t0, Duration::from_millis(40)), &mut due);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].index, due[0].generation), (7, 1));
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_timeout(t0), None);
    }

    #[test]
    fn entries_beyond_one_lap_wait_for_their_lap() {
        let t0 = Nanos::now();
        let mut w = TimerWheel::new(t0);
        let far = at(t0, TICK * (SLOTS as u32 + 3));
        w.insert(far, 1, 0);
        w.insert(at(t0, TICK * 3), 2, 0);
        let mut due = Vec::new();
        w.expire(at(t0, TICK * 4), &mut due);
        assert_eq!(due.iter().map(|e| e.index).collect::<Vec<_>>(), [2]);
        due.clear();
        w.expire(at(t0, TICK * (SLOTS as u32 + 2)), &mut due);
        assert!(due.is_empty(), "same bucket, next lap");
        w.expire(far, &mut due);
        assert_eq!(due.iter().map(|e| e.index).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn next_timeout_points_at_the_earliest_entry() {
        let t0 = Nanos::now();
        let mut w = TimerWheel::new(t0);
        w.insert(at(t0, Duration::from_millis(500)), 1, 0);
        w.insert(at(t0, Duration::from_millis(100)), 2, 0);
        let left = w.next_timeout(t0).unwrap();
        assert!(left >= Duration::from_millis(100) && left < Duration::from_millis(110));
    }

    #[test]
    fn next_timeout_is_right_after_months_of_uptime() {
        let t0 = Nanos::now();
        let mut w = TimerWheel::new(t0);
        let ninety_days = Duration::from_secs(90 * 24 * 3600);
        // Pretend the wheel has been turning for 90 days.
        w.current = w.tick_of(at(t0, ninety_days));
        w.insert(at(t0, ninety_days + Duration::from_millis(5)), 1, 0);
        let left = w.next_timeout(at(t0, ninety_days)).unwrap();
        assert!(
            left >= Duration::from_millis(5) && left <= Duration::from_millis(6),
            "{left:?}"
        );
    }

    #[test]
    fn rearming_reuses_bucket_capacity() {
        let t0 = Nanos::now();
        let mut w = TimerWheel::new(t0);
        let mut due = Vec::with_capacity(8);
        for round in 0..3u32 {
            let when = at(t0, TICK * (round * 2 + 1));
            w.insert(when, 0, round);
            w.expire(when, &mut due);
        }
        assert_eq!(due.len(), 3);
    }
}
