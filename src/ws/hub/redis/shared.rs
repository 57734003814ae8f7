//! What the bridge's two threads and its handle share: counters, which side is
//! connected, and the stop signal, with one condition variable for waits on either.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::BridgeStats;

/// One of the bridge's two connections.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Side {
    Publisher,
    Subscriber,
}

#[derive(Default)]
struct State {
    stopping: bool,
    publisher: bool,
    subscriber: bool,
}

#[derive(Default)]
pub(crate) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) skipped_own: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) invalid: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `side` is connected (and subscribed, for the subscriber) or not.
    pub(crate) fn set_connected(&self, side: Side, up: bool) {
        let mut s = self.state();
        match side {
            Side::Publisher => s.publisher = up,
            Side::Subscriber => s.subscriber = up,
        }
        self.changed.notify_all();
    }

    pub(crate) fn stop(&self) {
        self.state().stopping = true;
        self.changed.notify_all();
    }

    pub(crate) fn stopping(&self) -> bool {
        self.state().stopping
    }

    /// Waits up to `d`, returning early (with `true`) if the bridge is stopping.
    pub(crate) fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut s = self.state();
        // Bounded: each pass either returns or waits out part of the deadline
        // (spurious wake-ups re-check the time).
        loop {
            if s.stopping {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            s = self
                .changed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits up to `d` for both sides to be connected.
    pub(crate) fn wait_connected(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut s = self.state();
        loop {
            if s.publisher && s.subscriber {
                return true;
            }
            let now = Instant::now();
            if s.stopping || now >= deadline {
                return false;
            }
            s = self
                .changed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    pub(crate) fn stats(&self) -> BridgeStats {
        let s = self.state();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BridgeStats {
            sent: get(&self.sent),
            received: get(&self.received),
            skipped_own: get(&self.skipped_own),
            dropped: get(&self.dropped),
            failed: get(&self.failed),
            invalid: get(&self.invalid),
            reconnects: get(&self.reconnects),
            connected: s.publisher && s.subscriber,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_ends_sleeps_and_waits() {
        let s = std::sync::Arc::new(Shared::default());
        assert!(!s.sleep(Duration::from_millis(1)));
        assert!(!s.wait_connected(Duration::from_millis(1)));
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.sleep(Duration::from_secs(600)));
        s.stop();
        assert!(t.join().unwrap(), "the sleep saw the stop");
        assert!(
            !s.wait_connected(Duration::from_secs(600)),
            "no wait after stop"
        );
    }

    #[test]
    fn connected_needs_both_sides() {
        let s = Shared::default();
        s.set_connected(Side::Publisher, true);
        assert!(!s.stats().connected);
        s.set_connected(Side::Subscriber, true);
        assert!(s.stats().connected && s.wait_connected(Duration::ZERO));
        s.set_connected(Side::Publisher, false);
        assert!(!s.stats().connected);
    }
}
