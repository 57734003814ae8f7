//! Delivering a [`ConnGroup`](crate::ConnGroup) message to this poller's members: one
//! command carried the shared `Bytes`; each member queues a reference to it and sends it
//! with its other output.

use bytes::Bytes;

use super::slot::Holder;
use super::Poller;
use crate::conn::group::Shard;
use crate::conn::Overflow;
use crate::driver::TokenKind;
use crate::stats::bump;
use crate::CloseReason;

impl Poller {
    pub(super) fn fan_out(&mut self, shard: &Shard, data: Bytes) {
        let mut targets = std::mem::take(&mut self.fanout_targets);
        shard.open_members(&mut targets);
        let high = self.config.output_high_water;
        for token in targets.drain(..) {
            let TokenKind::Conn { index, generation } = token.kind() else {
                continue;
            };
            let Some(slot) = self.slab.get_mut(index) else {
                continue;
            };
            if slot.generation != generation {
                continue;
            }
            let queued = match &mut slot.holder {
                Holder::Home(session) => {
                    let conn = &mut session.conn;
                    let pending = conn.link.pending(&conn.output);
                    // As for a send: a message larger than the mark still goes to a
                    // member with nothing queued.
                    if pending > 0 && pending + data.len() > high {
                        false
                    } else {
                        conn.output.write_bytes(data.clone());
                        true
                    }
                }
                Holder::Away(_) => slot.shared.offer(&data),
            };
            if queued {
                if slot.is_home() {
                    self.advance(index);
                } else {
                    self.want_back(index);
                }
                continue;
            }
            match shard.overflow {
                Overflow::Drop => {
                    slot.shared.count_dropped();
                    bump(&self.remote.counters.dropped, 1);
                }
                Overflow::Close => {
                    slot.phase = slot.phase.abort(CloseReason::Backpressure);
                    self.want_back(index);
                    self.advance(index);
                }
            }
        }
        self.fanout_targets = targets;
    }
}
