//! [`BridgeConfig`]: the bridge's settings, and the reconnect backoff they describe.

use std::time::Duration;

/// A [`RedisBridge`](super::RedisBridge)'s settings.
///
/// ```
/// use std::time::Duration;
/// use netloop::ws::hub::redis::BridgeConfig;
///
/// let config = BridgeConfig::default()
///     .prefix("chat:")
///     .queue(10_000)
///     .backoff(Duration::from_millis(20), Duration::from_secs(2));
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    pub(crate) prefix: String,
    pub(crate) queue: usize,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) io_timeout: Duration,
    pub(crate) health_check: Duration,
}

impl Default for BridgeConfig {
    /// Channels `netloop:hub:<topic>`, 4096 messages queued for Redis, reconnects
    /// after 50 ms doubling up to 5 s (with jitter), 2 s to connect and for each
    /// command, a `PING` after 1 s without traffic.
    fn default() -> BridgeConfig {
        BridgeConfig {
            prefix: "netloop:hub:".to_string(),
            queue: 4096,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(2),
            health_check: Duration::from_secs(1),
        }
    }
}

impl BridgeConfig {
    /// The Redis channel of topic `t` is `prefix + t`. Every server of one cluster must
    /// use the same prefix; servers with different prefixes share nothing.
    pub fn prefix(mut self, prefix: impl Into<String>) -> BridgeConfig {
        self.prefix = prefix.into();
        self
    }

    /// How many local publishes may wait for the Redis connection (at least 1). A
    /// publish finding the queue full is not sent to other servers and is counted in
    /// [`BridgeStats::dropped`](super::BridgeStats::dropped); the publisher never waits.
    pub fn queue(mut self, messages: usize) -> BridgeConfig {
        self.queue = messages.max(1);
        self
    }

    /// The wait before reconnecting: `min` after the first failure, doubling on each
    /// failure in a row up to `max`, each wait drawn at random between half and all of
    /// it (so servers that lost Redis together do not reconnect in step).
    pub fn backoff(mut self, min: Duration, max: Duration) -> BridgeConfig {
        self.backoff_min = min.max(Duration::from_millis(1));
        self.backoff_max = max.max(self.backoff_min);
        self
    }

    /// The longest wait for a TCP connection to Redis.
    pub fn connect_timeout(mut self, t: Duration) -> BridgeConfig {
        self.connect_timeout = t.max(Duration::from_millis(1));
        self
    }

    /// The longest wait for one command's write or reply; past it the connection is
    /// taken as lost and made anew.
    pub fn io_timeout(mut self, t: Duration) -> BridgeConfig {
        self.io_timeout = t.max(Duration::from_millis(1));
        self
    }

    /// After this long without traffic each connection sends a `PING`, so a Redis that
    /// vanished without closing the connection (a restart seen only by the other
    /// side, a partition) is noticed within about `health_check + io_timeout`, not at
    /// the next publish (which would be lost).
    pub fn health_check(mut self, t: Duration) -> BridgeConfig {
        self.health_check = t.max(Duration::from_millis(1));
        self
    }
}

/// The waits between reconnection attempts of one connection.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    seed: u64,
}

impl Backoff {
    pub(crate) fn new(config: &BridgeConfig, seed: u64) -> Backoff {
        Backoff {
            min: config.backoff_min,
            max: config.backoff_max,
            failures: 0,
            // xorshift has a fixed point at 0.
            seed: seed | 1,
        }
    }

    /// The wait after one more failure in a row.
    pub(crate) fn next_wait(&mut self) -> Duration {
        // Capped at 2^20 × min: past that the cap has long been reached anyway.
        let doublings = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let full = self.min.saturating_mul(1 << doublings).min(self.max);
        // Jitter: between half and all of the wait.
        let half = full / 2;
        let span = (full - half).as_nanos() as u64;
        let r = self.random();
        half + Duration::from_nanos(if span == 0 { 0 } else { r % (span + 1) })
    }

    /// A connection succeeded: the next failure waits `min` again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    fn random(&mut self) -> u64 {
        // xorshift64: jitter needs spread, not secrecy.
        let mut x = self.seed;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_and_resets() {
        let config = BridgeConfig::default()
            .backoff(Duration::from_millis(100), Duration::from_millis(1000));
        let mut b = Backoff::new(&config, 42);
        let mut fulls = Vec::new();
        for _ in 0..8 {
            let w = b.next_wait();
            // Every wait is within [full/2, full] for the full wait it was drawn from.
            let full = [100u64, 200, 400, 800, 1000, 1000, 1000, 1000][fulls.len()];
            let full = Duration::from_millis(full);
            assert!(w >= full / 2 && w <= full, "{w:?} for {full:?}");
            fulls.push(w);
        }
        assert!(fulls[4..].iter().all(|w| *w <= Duration::from_millis(1000)));
        b.reset();
        assert!(b.next_wait() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_waits_of_different_seeds() {
        let config = BridgeConfig::default();
        let waits: Vec<Duration> = (1..=8)
            .map(|seed: u64| {
                Backoff::new(&config, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_wait()
            })
            .collect();
        assert!(waits.iter().any(|w| *w != waits[0]), "{waits:?}");
    }

    #[test]
    fn settings_are_clamped() {
        let c = BridgeConfig::default()
            .queue(0)
            .backoff(Duration::ZERO, Duration::ZERO);
        assert_eq!(c.queue, 1);
        assert!(c.backoff_min > Duration::ZERO && c.backoff_max >= c.backoff_min);
    }
}
