//! Delivering a [`ConnGroup`](crate::ConnGroup) message to this poller's members: one
//! command carried the shared `Bytes`; each member queues a reference to it (or, for a
//! small message, a copy: see [`COPY_LIMIT`]) and sends it with its other output.
//!
//! **One send per member per batch.** A member is not sent to as each message is
//! queued: the poller notes it ([`Pending`]) and, once the batch of commands it is
//! taking is done, advances each noted member once. A broadcast of M messages that
//! arrive together to N members so costs N sends (each gathering the M messages), not
//! M × N.

use bytes::Bytes;

use super::slot::Holder;
use super::Poller;
use crate::conn::group::Shard;
use crate::conn::{Offer, Overflow};
use crate::driver::TokenKind;
use crate::stats::bump;
use crate::CloseReason;

/// Messages up to this size are copied into a member's output rather than queued by
/// reference: a small copy is cheaper than one more shared reference count and one
/// more segment (iovec) in the gathered write, and many small broadcasts then go out
/// as one contiguous buffer.
const COPY_LIMIT: usize = 512;

/// The members fan-outs queued output on and that have not been advanced yet, each
/// once: a list, and per slab index the generation noted plus one (0: none), so a slot
/// freed and reused within one batch is noted again for its new connection.
#[derive(Debug, Default)]
pub(super) struct Pending {
    list: Vec<(usize, u32)>,
    noted: Vec<u64>,
}

impl Pending {
    /// Notes slot `index` (of `generation`); `false` if it was noted already.
    fn note(&mut self, index: usize, generation: u32) -> bool {
        if index >= self.noted.len() {
            self.noted.resize(index + 1, 0);
        }
        let mark = u64::from(generation) + 1;
        if self.noted[index] == mark {
            return false;
        }
        self.noted[index] = mark;
        self.list.push((index, generation));
        true
    }

    /// Takes the noted members, clearing the marks.
    fn take(&mut self, out: &mut Vec<(usize, u32)>) {
        for &(index, _) in &self.list {
            self.noted[index] = 0;
        }
        out.clear();
        out.append(&mut self.list);
    }
}

impl Poller {
    /// Advances, once each, the members that this batch's fan-outs queued output on
    /// (still the same connection: a slot freed and reused meanwhile is skipped).
    pub(super) fn send_fanned_out(&mut self) {
        if self.fanout_pending.list.is_empty() {
            return;
        }
        let mut noted = Vec::new();
        self.fanout_pending.take(&mut noted);
        for &(index, generation) in &noted {
            if self
                .slab
                .get(index)
                .is_some_and(|s| s.generation == generation)
            {
                self.advance(index);
            }
        }
        // Keep the capacity for the next batch.
        noted.clear();
        self.fanout_pending.list = noted;
    }

    /// Delivers a run of messages for one group (consecutive fan-out commands of one
    /// shard in this batch), walking the members once for all of them: with thousands of
    /// members each touch is a cache miss or three, so a message per walk would cost the
    /// misses again for every message.
    pub(super) fn fan_out(&mut self, shard: &Shard, messages: &[Bytes]) {
        let mut targets = std::mem::take(&mut self.fanout_targets);
        shard.open_members(&mut targets);
        let high = self.config.output_high_water;
        let (mut delivered, mut dropped, mut closed) = (0u64, 0u64, 0u64);
        // What the run's copied messages take in a member's output: reserved once, so
        // a hundred small frames cost one allocation, not a doubling series of them.
        let copied: usize = messages
            .iter()
            .map(Bytes::len)
            .filter(|&n| n <= COPY_LIMIT)
            .sum();
        for (token, limit) in targets.drain(..) {
            let TokenKind::Conn { index, generation } = token.kind() else {
                continue;
            };
            let Some(slot) = self.slab.get_mut(index) else {
                continue;
            };
            if slot.generation != generation {
                continue;
            }
            let (mut queued_any, mut close_it) = (false, false);
            if let Holder::Home(session) = &mut slot.holder {
                if copied > COPY_LIMIT && !session.conn.shared.is_sealed() {
                    session.conn.output.reserve(copied);
                }
            }
            for data in messages {
                let offer = match &mut slot.holder {
                    Holder::Home(session) => {
                        let conn = &mut session.conn;
                        let pending = conn.link.pending(&conn.output);
                        // As for a send: a message larger than the mark still goes to a
                        // member with nothing queued.
                        if conn.shared.is_sealed() {
                            Offer::Gone
                        } else if pending > 0 && pending + data.len() > limit.min(high) {
                            Offer::Full
                        } else if data.len() <= COPY_LIMIT {
                            conn.output.write(data);
                            Offer::Queued
                        } else {
                            conn.output.write_bytes(data.clone());
                            Offer::Queued
                        }
                    }
                    Holder::Away(_) => slot.shared.offer(data, limit),
                };
                match offer {
                    Offer::Queued => {
                        delivered += 1;
                        queued_any = true;
                        continue;
                    }
                    Offer::Gone => break,
                    Offer::Full => {}
                }
                match shard.overflow {
                    Overflow::Drop => {
                        dropped += 1;
                        slot.shared.count_dropped();
                        bump(&self.remote.counters.dropped, 1);
                    }
                    Overflow::Close => {
                        closed += 1;
                        slot.phase = slot.phase.abort(CloseReason::Backpressure);
                        close_it = true;
                        break;
                    }
                }
            }
            if close_it {
                self.want_back(index);
                self.advance(index);
            } else if queued_any {
                if slot.is_home() {
                    self.fanout_pending.note(index, generation);
                } else {
                    self.want_back(index);
                }
            }
        }
        self.fanout_targets = targets;
        let counts = &shard.counts;
        for (counter, n) in [
            (&counts.delivered, delivered),
            (&counts.dropped, dropped),
            (&counts.closed, closed),
        ] {
            if n > 0 {
                counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pending;

    #[test]
    fn each_member_is_noted_once_and_a_reused_slot_again() {
        let mut p = Pending::default();
        assert!(p.note(3, 1));
        assert!(!p.note(3, 1));
        assert!(p.note(3, 2), "the slot's next connection");
        assert!(p.note(130, 1));
        let mut out = Vec::new();
        p.take(&mut out);
        assert_eq!(out, [(3, 1), (3, 2), (130, 1)]);
        assert!(p.note(3, 1), "noted again after the batch");
        assert!(p.note(7, 0), "generation 0 is a generation");
        assert!(!p.note(7, 0));
    }
}
