//! The pollers' clock: the monotonic clock as one `u64` of nanoseconds.
//!
//! A poller reads the clock once per loop turn and compares deadlines with it for every
//! connection it touches. [`Instant`] is the same clock (`CLOCK_MONOTONIC`), but its
//! arithmetic is a pair of seconds and nanoseconds with carries and overflow checks: a
//! subtraction costs ~50 instructions, where a `u64` costs one. So the poller keeps its
//! time and its deadlines as [`Nanos`], and turns them into `Instant`s only where a user
//! sees one ([`Conn::now`](crate::Conn::now)), through a [`Clock`].

use std::time::{Duration, Instant};

/// A reading of the monotonic clock, in nanoseconds. A `u64` lasts 584 years of uptime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Nanos(pub(crate) u64);

/// Nanoseconds in `d`, saturating at `u64::MAX` (584 years).
#[inline]
pub(crate) fn nanos_of(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

impl Nanos {
    /// Reads the clock (`CLOCK_MONOTONIC`, the clock [`Instant`] reads).
    #[inline]
    pub(crate) fn now() -> Nanos {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux, so
        // the call cannot fail (as std's `Instant::now` assumes too).
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        Nanos((ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64)
    }

    /// `d` later, saturating.
    #[inline]
    pub(crate) fn after(self, d: Duration) -> Nanos {
        Nanos(self.0.saturating_add(nanos_of(d)))
    }

    /// How long from `earlier` to this reading (zero if `earlier` is later).
    #[inline]
    pub(crate) fn since(self, earlier: Nanos) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Converts between [`Nanos`] and [`Instant`]: one reading of each, taken together.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: Instant,
    origin_nanos: Nanos,
}

impl Clock {
    /// The `Instant` is read after the `Nanos`, so it is the later of the two by the
    /// time between the reads: an `Instant` made from a `Nanos` is never earlier than
    /// the moment that `Nanos` was read.
    pub(crate) fn new() -> Clock {
        let origin_nanos = Nanos::now();
        Clock {
            origin: Instant::now(),
            origin_nanos,
        }
    }

    /// The `Instant` of a reading.
    pub(crate) fn instant(&self, at: Nanos) -> Instant {
        if at >= self.origin_nanos {
            self.origin + Duration::from_nanos(at.0 - self.origin_nanos.0)
        } else {
            let back = Duration::from_nanos(self.origin_nanos.0 - at.0);
            self.origin.checked_sub(back).unwrap_or(self.origin)
        }
    }

    /// The reading of an `Instant` (a deadline from another thread).
    pub(crate) fn nanos(&self, at: Instant) -> Nanos {
        match at.checked_duration_since(self.origin) {
            Some(d) => self.origin_nanos.after(d),
            None => Nanos(
                self.origin_nanos
                    .0
                    .saturating_sub(nanos_of(self.origin - at)),
            ),
        }
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_follow_the_instant_clock() {
        let made_from = Instant::now();
        let clock = Clock::new();
        // The time between the clock's two reads is within this, however the thread
        // was scheduled.
        let gap = made_from.elapsed();
        let before = Instant::now();
        let n = Nanos::now();
        let after = Instant::now();
        let i = clock.instant(n);
        // The conversion may be late by the time between the clock's two reads, never
        // early.
        assert!(i >= before, "{i:?} before {before:?}");
        assert!(i <= after + gap, "{i:?} after {after:?} + {gap:?}");
    }

    #[test]
    fn instants_and_readings_convert_both_ways() {
        let clock = Clock::new();
        let later = Instant::now() + Duration::from_secs(3);
        let n = clock.nanos(later);
        let back = clock.instant(n);
        let diff = if back > later {
            back - later
        } else {
            later - back
        };
        assert!(diff < Duration::from_micros(1), "{diff:?}");
        let earlier = clock.nanos(Instant::now() - Duration::from_millis(10));
        assert!(earlier < Nanos::now());
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Nanos(5).since(Nanos(9)), 0);
        assert_eq!(Nanos(9).since(Nanos(5)), 4);
        assert_eq!(
            Nanos(u64::MAX - 1).after(Duration::from_secs(1)),
            Nanos(u64::MAX)
        );
        assert_eq!(Nanos(1).after(Duration::from_millis(2)), Nanos(2_000_001));
    }
}
