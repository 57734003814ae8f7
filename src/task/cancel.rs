//! Cancellation of a running task: a flag its run function polls, or waits on.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Tells a run function its task was cancelled (a CANCEL from the client, `cancel_all`,
/// a dropped connection, a shutdown's deadline). Cheap to clone; all clones share one
/// flag.
#[derive(Clone, Debug, Default)]
pub struct CancelToken {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl CancelToken {
    /// A token not cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Cancels; returns whether this call did (it was not cancelled before).
    pub fn cancel(&self) -> bool {
        let (flag, changed) = &*self.inner;
        let mut f = flag.lock().unwrap_or_else(|p| p.into_inner());
        let first = !*f;
        *f = true;
        changed.notify_all();
        first
    }

    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.inner.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleeps up to `timeout`, waking early if cancelled; whether it was cancelled. A
    /// run function that waits on something slow does it in steps of this.
    ///
    /// ```
    /// use std::time::Duration;
    /// let token = netloop::task::CancelToken::new();
    /// assert!(!token.sleep(Duration::from_millis(1)));
    /// token.cancel();
    /// assert!(token.sleep(Duration::from_secs(60)), "returns at once");
    /// ```
    pub fn sleep(&self, timeout: Duration) -> bool {
        let (flag, changed) = &*self.inner;
        let f = flag.lock().unwrap_or_else(|p| p.into_inner());
        let (f, _) = changed
            .wait_timeout_while(f, timeout, |cancelled| !*cancelled)
            .unwrap_or_else(|p| p.into_inner());
        *f
    }
}
