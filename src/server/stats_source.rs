//! [`StatsSource`]: a server's counters, readable without its handle.

use std::sync::Arc;

use crate::poller::Remote;
use crate::Stats;

/// Reads a server's counters from anywhere, for as long as it is kept (a metrics
/// endpoint, a reporting thread): a cheap clone of what
/// [`ServerHandle::stats`](crate::ServerHandle::stats) reads, without the handle's
/// ownership of the server. After the server has shut down it reads the final counts.
#[derive(Clone)]
pub struct StatsSource {
    remotes: Arc<[Arc<Remote>]>,
}

impl std::fmt::Debug for StatsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsSource")
            .field("pollers", &self.remotes.len())
            .finish()
    }
}

impl StatsSource {
    pub(super) fn new(remotes: &[Arc<Remote>]) -> StatsSource {
        StatsSource {
            remotes: remotes.iter().cloned().collect(),
        }
    }

    /// A snapshot of the counters, summed over the pollers.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        for r in self.remotes.iter() {
            r.counters.add_to(&mut stats);
        }
        stats
    }
}
