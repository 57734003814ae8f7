//! The buffers of connections that just went quiet.
//!
//! A connection that has consumed all its input and sent all its output needs neither
//! its read buffer nor its output tail until its peer sends again. Giving them back to
//! the pool at once and taking them again on the next request cost about 150
//! instructions per request on a request/response connection (measured with
//! `scripts/callgrind.sh echo`): mostly the pool's check that no `Bytes` still shares a
//! buffer that zero-copy input handed out. So a quiet connection keeps its buffers for a
//! while:
//!
//! * it is listed here when it goes quiet holding a buffer, and notes the sweep period
//!   it went quiet in;
//! * every [`SWEEP`] the list is walked: a connection that went quiet again during the
//!   period stays listed, one quiet since an earlier period gives its buffers back. An
//!   idle connection holds none after two sweeps at most, and while anything is listed
//!   the poller's wait is bounded by `SWEEP` so the sweeps happen;
//! * when the pool is empty and a read needs a buffer, the longest-listed connection's
//!   buffers are taken back first. Keeping buffers therefore never makes a poller own
//!   more of them than it has in use at once: one is allocated only when none is free
//!   and none is kept by a quiet connection.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::slot::{Holder, Slot};
use super::Poller;
use crate::buf::BufPool;
use crate::conn::Conn;

/// How often the quiet connections' buffers are looked at.
pub(super) const SWEEP: Duration = Duration::from_millis(100);

/// The quiet connections that keep buffers, oldest first.
pub(super) struct Lingering {
    /// Slab index and generation of each listed connection (an entry whose connection
    /// closed, or went away to a worker, is dropped when it is next looked at).
    listed: VecDeque<(usize, u32)>,
    /// The current sweep period.
    period: u32,
    /// When the current period ends.
    next_sweep: Instant,
}

impl Lingering {
    pub(super) fn new(now: Instant) -> Lingering {
        Lingering {
            listed: VecDeque::new(),
            period: 0,
            next_sweep: now + SWEEP,
        }
    }

    /// Whether any connection keeps buffers (the poller then wakes for the sweeps).
    pub(super) fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }
}

/// Whether `conn` holds a buffer it does not need while nothing is pending: the read
/// buffer once all input is consumed and all output sent (replies may share it:
/// `Input::next`), the output tail once the output is empty.
fn holds_spare(conn: &Conn, pending: usize) -> bool {
    (conn.input.is_empty() && pending == 0 && conn.input.buf.capacity() > 0)
        || (conn.output.is_empty() && conn.output.tail.capacity() > 0)
}

/// Gives the buffers [`holds_spare`] describes back to the pool.
fn give_back(pool: &mut BufPool, conn: &mut Conn) {
    let pending = conn.link.pending(&conn.output);
    if conn.input.is_empty() && pending == 0 && conn.input.buf.capacity() > 0 {
        pool.put(&mut conn.input.buf);
    }
    if conn.output.is_empty() && conn.output.tail.capacity() > 0 {
        pool.put(&mut conn.output.tail);
    }
}

/// A listed slot's buffers, if they can go back now; clears its listing either way.
fn release(pool: &mut BufPool, slot: &mut Slot) {
    slot.quiet_in = None;
    if let Holder::Home(session) = &mut slot.holder {
        give_back(pool, &mut session.conn);
    }
}

impl Poller {
    /// A home connection is resting: lists it if it keeps a buffer it does not need now.
    pub(super) fn linger(&mut self, index: usize, pending: usize) {
        let slot = &mut self.slab[index];
        let Holder::Home(session) = &slot.holder else {
            return;
        };
        if !holds_spare(&session.conn, pending) {
            return;
        }
        let newly = slot.quiet_in.is_none();
        slot.quiet_in = Some(self.lingering.period);
        if newly {
            self.lingering.listed.push_back((index, slot.generation));
            self.publish_lingering();
        }
    }

    fn publish_lingering(&self) {
        let n = self.lingering.listed.len() as u64;
        self.remote
            .counters
            .quiet_buffered
            .store(n, Ordering::Relaxed);
    }

    /// At the end of a sweep period, takes back the buffers of connections that have
    /// been quiet since before it.
    #[inline]
    pub(super) fn sweep_lingering(&mut self, now: Instant) {
        if now >= self.lingering.next_sweep {
            self.sweep(now);
        }
    }

    #[inline(never)]
    fn sweep(&mut self, now: Instant) {
        let l = &mut self.lingering;
        let period = l.period;
        l.period = period.wrapping_add(1);
        l.next_sweep = now + SWEEP;
        let slab = &mut self.slab;
        let pool = &mut self.pool;
        l.listed.retain(|&(index, generation)| {
            let Some(slot) = slab.get_mut(index).filter(|s| s.generation == generation) else {
                return false; // closed (and its buffers returned then)
            };
            match slot.quiet_in {
                Some(p) if p == period && slot.is_home() => true,
                Some(_) => {
                    release(pool, slot);
                    false
                }
                None => false,
            }
        });
        self.publish_lingering();
    }

    /// The pool is empty and a read needs a buffer: takes back the buffers of the
    /// longest-quiet connection that has one to give.
    pub(super) fn reclaim_lingering(&mut self) {
        while self.pool.is_empty() {
            let Some((index, generation)) = self.lingering.listed.pop_front() else {
                return;
            };
            if let Some(slot) = self
                .slab
                .get_mut(index)
                .filter(|s| s.generation == generation && s.quiet_in.is_some())
            {
                release(&mut self.pool, slot);
            }
        }
        self.publish_lingering();
    }
}
