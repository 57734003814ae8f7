//! Graceful shutdown on one poller: close idle connections at once, let busy ones
//! finish, cut off what is left at the deadline, report, exit.

use std::sync::mpsc::Sender;
use std::time::Instant;

use super::{Draining, Mode, Poller};
use crate::{sys, CloseReason, ShutdownReport};

use std::os::fd::AsRawFd;

impl Poller {
    pub(super) fn begin_drain(&mut self, deadline: Instant, done: Sender<ShutdownReport>) {
        self.stop_accepting();
        self.draining = Some(Draining {
            deadline,
            forced: false,
            report: ShutdownReport::default(),
            done,
        });
        let indices: Vec<usize> = self.slab.iter().map(|(i, _)| i).collect();
        for index in indices {
            let slot = &mut self.slab[index];
            if slot.is_idle() {
                if let Some(d) = self.draining.as_mut() {
                    d.report.idle_closed += 1;
                }
                self.finalize(index, CloseReason::Shutdown);
            } else {
                slot.busy_at_drain = true;
                // Stops reading: nothing new is started while draining.
                self.update_interest(index);
            }
        }
    }

    /// The deadline passed: cut off every connection still open.
    pub(super) fn force_close_all(&mut self) {
        if let Some(d) = self.draining.as_mut() {
            d.forced = true;
        }
        let indices: Vec<usize> = self.slab.iter().map(|(i, _)| i).collect();
        for index in indices {
            if let Some(d) = self.draining.as_mut() {
                d.report.forced += 1;
            }
            let slot = &mut self.slab[index];
            if slot.session.is_some() {
                self.finalize(index, CloseReason::ShutdownForced);
            } else {
                // The handler is still running on a worker: the peer is cut off now, the
                // socket is closed and on_close runs when the handler returns.
                slot.pending_close = Some(CloseReason::ShutdownForced);
                sys::shutdown(slot.fd.as_raw_fd());
            }
        }
    }

    /// Whether a drain has completed: every connection closed and every job back.
    pub(super) fn finished(&self) -> bool {
        let idle_pool = match &self.mode {
            Mode::Inline => true,
            Mode::Pool {
                in_flight, backlog, ..
            } => *in_flight == 0 && backlog.is_empty(),
        };
        self.draining.is_some() && self.slab.is_empty() && idle_pool
    }

    /// Reports the drain. Commands still queued are dropped by the exit guard.
    pub(super) fn exit(&mut self) {
        if let Some(d) = self.draining.take() {
            let _ = d.done.send(d.report);
        }
    }
}
