//! The open-loop schedule: when each request is meant to be sent.
//!
//! A run at `rate` requests/s over `conns` connections gives every connection a fixed
//! grid of intended send times, one every `conns / rate` seconds, and staggers the
//! connections by `1 / rate` so that together they send evenly rather than in bursts of
//! `conns`. The times depend only on the run's epoch, never on when earlier requests were
//! actually sent or answered: that is what makes latencies measured from them free of
//! coordinated omission.

use std::time::{Duration, Instant};

/// The intended send times of one connection.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    epoch: Instant,
    /// Nanoseconds from the epoch to request 0 of this connection.
    offset_ns: f64,
    /// Nanoseconds between two requests of this connection.
    interval_ns: f64,
}

impl Schedule {
    /// The schedule of connection `index` (0-based) of `conns`, for `rate` requests/s
    /// in total.
    ///
    /// # Panics
    /// If `rate` is not a positive finite number or `conns` is 0.
    pub fn new(epoch: Instant, rate: f64, conns: usize, index: usize) -> Schedule {
        assert!(rate.is_finite() && rate > 0.0, "rate must be positive");
        assert!(conns > 0, "at least one connection");
        let per_request = 1e9 / rate;
        Schedule {
            epoch,
            offset_ns: (index % conns) as f64 * per_request,
            interval_ns: conns as f64 * per_request,
        }
    }

    /// The time between two requests of this connection.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns as u64)
    }

    /// The intended send time of this connection's request number `k`.
    pub fn at(&self, k: u64) -> Instant {
        // Computed from the epoch each time rather than by adding intervals, so rounding
        // does not accumulate into drift over a long run.
        self.epoch + Duration::from_nanos((self.offset_ns + k as f64 * self.interval_ns) as u64)
    }

    /// The first request number whose intended time is at or after `t`: where a
    /// connection that joins at `t` starts, rather than sending a burst to catch up with
    /// times that passed before it existed.
    pub fn first_at_or_after(&self, t: Instant) -> u64 {
        let since = t.saturating_duration_since(self.epoch).as_nanos() as f64;
        if since <= self.offset_ns {
            return 0;
        }
        let mut k = ((since - self.offset_ns) / self.interval_ns).ceil() as u64;
        // Float rounding may land one short; never hand back a time before `t`.
        while self.at(k) < t {
            k += 1;
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_interleave_evenly() {
        let t0 = Instant::now();
        // 1000 requests/s over 4 connections: each sends every 4 ms, offset by 1 ms.
        let times: Vec<Duration> = (0..4)
            .flat_map(|i| {
                let s = Schedule::new(t0, 1000.0, 4, i);
                (0..3).map(move |k| s.at(k) - t0)
            })
            .collect();
        let mut sorted = times.clone();
        sorted.sort();
        let expected: Vec<Duration> = (0..12).map(Duration::from_millis).collect();
        assert_eq!(sorted, expected);
        assert_eq!(
            Schedule::new(t0, 1000.0, 4, 0).interval(),
            Duration::from_millis(4)
        );
    }

    #[test]
    fn a_late_joiner_starts_at_its_next_slot() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 100.0, 2, 1); // every 20 ms, starting at 10 ms
        assert_eq!(s.first_at_or_after(t0), 0);
        assert_eq!(s.first_at_or_after(t0 + Duration::from_millis(10)), 0);
        assert_eq!(s.first_at_or_after(t0 + Duration::from_millis(11)), 1);
        assert_eq!(s.first_at_or_after(t0 + Duration::from_millis(30)), 1);
        assert_eq!(s.first_at_or_after(t0 + Duration::from_millis(31)), 2);
        for ms in 0..200 {
            let t = t0 + Duration::from_micros(ms * 733);
            let k = s.first_at_or_after(t);
            assert!(s.at(k) >= t);
            assert!(k == 0 || s.at(k - 1) < t);
        }
    }

    #[test]
    fn long_runs_do_not_drift() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 3.0, 1, 0); // a third of a second: not exact in nanoseconds
        let hour = s.at(3 * 3600) - t0;
        assert!(hour.abs_diff(Duration::from_secs(3600)) < Duration::from_micros(1));
    }
}
