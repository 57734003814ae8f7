//! Delivering a [`ConnGroup`](crate::ConnGroup) message to this poller's members: one
//! command carried the shared `Bytes`; each member queues a reference to it and sends it
//! with its other output.

use bytes::Bytes;

use super::slot::Holder;
use super::Poller;
use crate::conn::group::Shard;
use crate::conn::{Offer, Overflow};
use crate::driver::TokenKind;
use crate::stats::bump;
use crate::CloseReason;

impl Poller {
    pub(super) fn fan_out(&mut self, shard: &Shard, data: Bytes) {
        let mut targets = std::mem::take(&mut self.fanout_targets);
        shard.open_members(&mut targets);
        let high = self.config.output_high_water;
        let (mut delivered, mut dropped, mut closed) = (0u64, 0u64, 0u64);
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
                    } else {
                        conn.output.write_bytes(data.clone());
                        Offer::Queued
                    }
                }
                Holder::Away(_) => slot.shared.offer(&data, limit),
            };
            match offer {
                Offer::Queued => {
                    delivered += 1;
                    if slot.is_home() {
                        self.advance(index);
                    } else {
                        self.want_back(index);
                    }
                    continue;
                }
                Offer::Gone => continue,
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
                    self.want_back(index);
                    self.advance(index);
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
