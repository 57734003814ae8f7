//! How long a restarting engine waits before each attempt: exponential backoff with
//! full jitter, so a thousand clients dropped by one server restart do not come back in
//! one wave.

use std::time::Duration;

/// The restart loop's schedule. Before restart `n` (1, 2, …) the engine waits a delay
/// drawn uniformly from `[min, ceiling(n)]`, where `ceiling(n) = min(max, min ×
/// factor^n)`: the range grows until it reaches `max`, and every delay is random within
/// all of it ("full jitter"), the first one included, so clients dropped together by a
/// server restart come back spread over the range rather than in one wave. The count
/// starts again after a session that stayed open for
/// [`stable_after`](Backoff::stable_after).
///
/// Defaults: `min` 200 ms, `max` 20 s, `factor` 2, no attempt cap, stable after 10 s.
///
/// ```
/// use std::time::Duration;
/// use netloop::ws::client::Backoff;
///
/// let b = Backoff::default().min(Duration::from_millis(100)).max(Duration::from_secs(5));
/// assert_eq!(b.ceiling(1), Duration::from_millis(200));
/// assert_eq!(b.ceiling(3), Duration::from_millis(800));
/// assert_eq!(b.ceiling(30), Duration::from_secs(5));
/// let mut rng = netloop::ws::client::BackoffRng::with_seed(7);
/// let d = b.delay(3, &mut rng);
/// assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(800));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    factor: f64,
    max_attempts: Option<u32>,
    stable_after: Duration,
    seed: Option<u64>,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            min: Duration::from_millis(200),
            max: Duration::from_secs(20),
            factor: 2.0,
            max_attempts: None,
            stable_after: Duration::from_secs(10),
            seed: None,
        }
    }
}

/// The random source of the delays (a seeded generator, so a test can replay them).
#[derive(Clone, Debug)]
pub struct BackoffRng(fastrand::Rng);

impl BackoffRng {
    /// A generator seeded from the operating system's randomness.
    pub fn new() -> BackoffRng {
        BackoffRng(fastrand::Rng::new())
    }

    /// A generator that always draws the same sequence for `seed`.
    pub fn with_seed(seed: u64) -> BackoffRng {
        BackoffRng(fastrand::Rng::with_seed(seed))
    }
}

impl Default for BackoffRng {
    fn default() -> BackoffRng {
        BackoffRng::new()
    }
}

impl Backoff {
    /// The shortest delay: the bottom of every range. Default: 200 ms.
    pub fn min(mut self, min: Duration) -> Backoff {
        self.min = min;
        self
    }

    /// The top of the range, however many attempts failed. Default: 20 s.
    pub fn max(mut self, max: Duration) -> Backoff {
        self.max = max;
        self
    }

    /// How much the range's top grows per failed attempt (at least 1). Default: 2.
    pub fn factor(mut self, factor: f64) -> Backoff {
        self.factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            2.0
        };
        self
    }

    /// Gives up (the engine stops, its last error kept) after this many failed attempts
    /// in a row. Default: none (retry until stopped).
    pub fn max_attempts(mut self, attempts: Option<u32>) -> Backoff {
        self.max_attempts = attempts;
        self
    }

    /// A session open at least this long resets the attempt count. Default: 10 s.
    pub fn stable_after(mut self, period: Duration) -> Backoff {
        self.stable_after = period;
        self
    }

    /// Draws the delays from a generator seeded with `seed` (reproducible; for tests).
    /// Default: seeded from the operating system.
    pub fn seed(mut self, seed: u64) -> Backoff {
        self.seed = Some(seed);
        self
    }

    /// The top of the range before restart `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let max = self.max.max(self.min);
        let grown = self.min.as_secs_f64() * self.factor.powi(attempt.min(1024) as i32);
        if grown >= max.as_secs_f64() {
            max
        } else {
            Duration::from_secs_f64(grown).clamp(self.min, max)
        }
    }

    /// The delay before attempt `attempt`, drawn from `rng`.
    pub fn delay(&self, attempt: u32, rng: &mut BackoffRng) -> Duration {
        let lo = self.min.as_nanos() as u64;
        let hi = self.ceiling(attempt).as_nanos() as u64;
        Duration::from_nanos(rng.0.u64(lo..=hi.max(lo)))
    }

    /// Whether `failed` attempts in a row are the cap.
    pub(crate) fn exhausted(&self, failed: u32) -> bool {
        self.max_attempts.is_some_and(|cap| failed >= cap)
    }

    pub(crate) fn stable_period(&self) -> Duration {
        self.stable_after
    }

    pub(crate) fn rng(&self) -> BackoffRng {
        self.seed
            .map_or_else(BackoffRng::new, BackoffRng::with_seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_grows_by_the_factor_up_to_the_cap() {
        let b = Backoff::default();
        let ms = |n| b.ceiling(n).as_millis();
        assert_eq!((ms(1), ms(2), ms(3), ms(6)), (400, 800, 1600, 12_800));
        assert_eq!((ms(7), ms(1000)), (20_000, 20_000));
        let flat = Backoff::default().factor(0.5);
        assert_eq!(flat.ceiling(5), flat.ceiling(1), "a factor below 1 is 1");
    }

    #[test]
    fn delays_stay_in_range_and_replay_from_a_seed() {
        let b = Backoff::default();
        let draw = |seed| {
            let mut rng = BackoffRng::with_seed(seed);
            (1..=12).map(|n| b.delay(n, &mut rng)).collect::<Vec<_>>()
        };
        let a = draw(42);
        assert_eq!(a, draw(42));
        assert_ne!(a, draw(43));
        for (i, d) in a.iter().enumerate() {
            assert!(*d >= b.min && *d <= b.ceiling(i as u32 + 1), "{i}: {d:?}");
        }
    }

    #[test]
    fn the_cap_counts_failures_in_a_row() {
        let b = Backoff::default().max_attempts(Some(3));
        assert!(!b.exhausted(2) && b.exhausted(3));
        assert!(!Backoff::default().exhausted(u32::MAX));
    }
}
