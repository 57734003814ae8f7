//! Graceful shutdown on one poller: close idle connections at once, let busy ones
//! finish, cut off what is left at the deadline, report, exit.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::mpsc::Sender;
use std::time::Instant;

use super::state::Phase;
use super::{Draining, Mode, Poller};
use crate::{sys, CloseReason, ShutdownReport};

impl Poller {
    pub(super) fn begin_drain(
        &mut self,
        deadline: Instant,
        keep_fresh: bool,
        done: Sender<ShutdownReport>,
    ) {
        self.stop_accepting();
        self.draining = Some(Draining {
            deadline: self.clock.nanos(deadline),
            keep_fresh,
            forced: false,
            busy: 0,
            report: ShutdownReport::default(),
            done,
        });
        let indices: Vec<usize> = self.slab.iter().map(|(i, _)| i).collect();
        for index in indices {
            let slot = &mut self.slab[index];
            let connecting = slot.phase == Phase::Connecting;
            // After a handover a just-accepted connection may have its first request on
            // the way; closing it would fail a client the service should keep.
            let served_later = keep_fresh && slot.fresh && !connecting;
            if !served_later && slot.is_idle() {
                if let Some(d) = self.draining.as_mut() {
                    d.report.idle_closed += 1;
                }
                if connecting {
                    let e = io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the runtime is shutting down",
                    );
                    self.fail_dial(index, e);
                } else {
                    self.close_slot(index, CloseReason::Shutdown);
                }
            } else {
                if let Some(d) = self.draining.as_mut() {
                    d.busy += 1;
                }
                // Stops reading (nothing new is started while draining), except for a
                // fresh connection kept for its first request.
                self.update_interest(index);
                self.advance(index);
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
            slot.phase = Phase::Closing(CloseReason::ShutdownForced);
            if slot.is_home() {
                self.close_slot(index, CloseReason::ShutdownForced);
            } else {
                // The handler is still running on a worker: the peer is cut off now, the
                // socket is closed and on_close runs when the handler returns.
                sys::shutdown(slot.fd.as_raw_fd());
                self.want_back(index);
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
        // A closed listener's accept operation may still deliver a connection (io_uring):
        // the poller stays until the driver has retired every closed socket, or the
        // deadline passed.
        let retired =
            self.driver.closing() == 0 || self.draining.as_ref().is_some_and(|d| d.forced);
        self.draining.is_some() && self.slab.is_empty() && idle_pool && retired
    }

    /// Reports the drain: every connection busy at its start either finished (drained)
    /// or was cut off at the deadline (forced). Commands still queued are dropped by the
    /// exit guard.
    pub(super) fn exit(&mut self) {
        if let Some(mut d) = self.draining.take() {
            d.report.drained = d.busy.saturating_sub(d.report.forced);
            let _ = d.done.send(d.report);
        }
    }
}
