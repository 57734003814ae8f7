//! Outbound connections on their poller until they are connected: waiting for their
//! start time, connecting to each resolved address in turn under one connect timeout,
//! and reporting a failure to the handler.
//!
//! Nothing here blocks: the socket is non-blocking and the connect's end is an event
//! (epoll: the socket turns writable; io_uring: a connect operation completes). Host
//! names were resolved before the dial reached the poller (see `crate::dial`).

use std::io;
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::clock::Nanos;

use super::slot::Holder;
use super::state::Phase;
use super::Poller;
use crate::conn::ConnShared;
use crate::driver::{Interest, Token};
use crate::session::Hooks;
use crate::stats::bump;
use crate::transport::TransportFactory;
use crate::{sys, Addr, ConnHandle, ConnInfo};

/// A dial, as a [`Dialer`](crate::Dialer) hands it to a poller.
pub(crate) struct Outbound {
    pub(crate) shared: Arc<ConnShared>,
    pub(crate) hooks: Arc<dyn Hooks>,
    /// The addresses to try, in order, or why there are none.
    pub(crate) addrs: io::Result<Vec<Addr>>,
    /// The connect timeout: the dial fails if it has not connected by then.
    pub(crate) connect_by: Instant,
    /// Do not start connecting before this (a reconnect's backoff).
    pub(crate) not_before: Option<Instant>,
    pub(crate) transport: Option<TransportFactory>,
}

impl Outbound {
    /// The poller is gone: the dial fails without a callback (no poller can run it).
    pub(crate) fn abandon(self) {
        self.shared
            .mark_closed(Some(io::ErrorKind::ConnectionAborted));
    }
}

/// A dial's progress while its connection is `Connecting`.
pub(crate) struct Dialing {
    addrs: Vec<Addr>,
    /// The address being tried; `None` while waiting for the start time.
    trying: Option<usize>,
    connect_by: Nanos,
    transport: Option<TransportFactory>,
    /// Why the last attempt failed.
    last_error: Option<io::Error>,
}

impl Dialing {
    /// Whether the dial is still waiting for its start time.
    pub(super) fn waiting(&self) -> bool {
        self.trying.is_none()
    }
}

impl Poller {
    /// Starts an outbound connection: it waits for its start time, or connects at once.
    pub(super) fn dial(&mut self, d: Outbound) {
        let Outbound {
            shared,
            hooks,
            addrs,
            connect_by,
            not_before,
            transport,
        } = d;
        if self.draining.is_some() {
            let e = io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the runtime is shutting down",
            );
            return self.report_dial_failure(&shared, &hooks, e);
        }
        let addrs = match addrs {
            Ok(addrs) if !addrs.is_empty() => addrs,
            Ok(_) => {
                let e = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
                return self.report_dial_failure(&shared, &hooks, e);
            }
            Err(e) => return self.report_dial_failure(&shared, &hooks, e),
        };
        // The first attempt's socket exists from the start, so the slot always has one.
        let fd = match sys::socket_for(&addrs[0]) {
            Ok((fd, _)) => fd,
            Err(e) => return self.report_dial_failure(&shared, &hooks, e),
        };
        let index = self.insert_slot(fd, shared, hooks, None, Phase::Connecting);
        let connect_by = self.clock.nanos(connect_by);
        let not_before = not_before.map(|at| self.clock.nanos(at));
        let slot = &mut self.slab[index];
        slot.dialing = Some(Box::new(Dialing {
            addrs,
            trying: None,
            connect_by,
            transport,
            last_error: None,
        }));
        match not_before {
            Some(at) if at > self.now => {
                slot.timers.phase_deadline = Some(at);
                self.rearm(index);
            }
            _ => self.try_next_address(index),
        }
    }

    /// Connects to the next address of the dial; fails it when none is left.
    pub(super) fn try_next_address(&mut self, index: usize) {
        loop {
            let slot = &mut self.slab[index];
            let dialing = slot
                .dialing
                .as_mut()
                .expect("a connecting slot has its dial");
            let next = dialing.trying.map_or(0, |i| i + 1);
            if next >= dialing.addrs.len() {
                let e = dialing.last_error.take().unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::NotConnected, "no address to connect to")
                });
                return self.fail_dial(index, e);
            }
            if dialing.trying.is_none() {
                // One connect timeout for the whole dial, every address included.
                slot.timers.phase_deadline = Some(dialing.connect_by);
            }
            dialing.trying = Some(next);
            let addr = dialing.addrs[next].clone();
            if next > 0 {
                // A fresh socket under a fresh token: completions of the last attempt's
                // operations must not be taken for this one's.
                let fd = match sys::socket_for(&addr) {
                    Ok((fd, _)) => fd,
                    Err(e) => {
                        dialing.last_error = Some(e);
                        continue;
                    }
                };
                let old = std::mem::replace(&mut slot.fd, fd);
                let old_token = slot.token(index);
                if slot.registered.take().is_some() {
                    self.driver.close(old, old_token);
                }
                let generation = self.next_generation();
                let slot = &mut self.slab[index];
                slot.generation = generation;
                slot.shared.set_token(Token::conn(index, generation));
                let raw = slot.fd.as_raw_fd();
                if let Some(session) = slot.session() {
                    session.conn.link.set_fd(raw);
                }
            }
            if let Err(e) = self.start_connect(index, &addr) {
                if let Some(dialing) = self.slab[index].dialing.as_mut() {
                    dialing.last_error = Some(e);
                }
                continue;
            }
            self.rearm(index);
            return;
        }
    }

    /// Sets the socket up, registers it and starts the non-blocking connect.
    fn start_connect(&mut self, index: usize, addr: &Addr) -> io::Result<()> {
        let slot = &mut self.slab[index];
        let fd = slot.fd.as_raw_fd();
        let token = slot.token(index);
        if let Addr::Tcp(_) = addr {
            if self.config.nodelay {
                sys::set_nodelay(fd)?;
            }
            if let Some(idle) = self.config.tcp_keepalive {
                sys::set_keepalive(fd, idle)?;
            }
        }
        let target = sys::sockaddr(addr)?;
        self.driver.register(fd, token, Interest::NONE)?;
        // The driver may watch it for WRITE now (epoll waits for the connect's end that
        // way); recorded as such so that the next update re-registers either way.
        slot.registered = Some(Interest::WRITE);
        self.driver.connect(fd, token, &target)
    }

    /// The connect of a `Connecting` connection ended (its socket turned writable or
    /// failed).
    pub(super) fn connect_done(&mut self, index: usize) {
        let fd = self.slab[index].fd.as_raw_fd();
        match self.driver.connect_result(fd) {
            Ok(()) => self.connected(index),
            Err(e) => {
                if let Some(dialing) = self.slab[index].dialing.as_mut() {
                    dialing.last_error = Some(e);
                }
                self.try_next_address(index);
            }
        }
    }

    /// The dial's phase deadline passed: its start time came, or its connect timed out.
    pub(super) fn dial_deadline(&mut self, index: usize) {
        let waiting = self.slab[index]
            .dialing
            .as_ref()
            .is_some_and(|d| d.waiting());
        if waiting {
            self.try_next_address(index);
        } else {
            let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
            self.fail_dial(index, e);
        }
    }

    /// Connected: the connection gets its transport and goes on like an accepted one.
    fn connected(&mut self, index: usize) {
        let now = self.now;
        let handshake_timeout = self.config.handshake_timeout;
        let slot = &mut self.slab[index];
        let Some(dialing) = slot.dialing.take() else {
            return;
        };
        let peer = dialing.addrs[dialing.trying.unwrap_or(0)].clone();
        let local = sys::local_addr(slot.fd.as_raw_fd()).ok();
        slot.shared.set_addrs(peer.clone(), local.clone());
        if let Some(factory) = &dialing.transport {
            let info = ConnInfo {
                peer_addr: peer,
                local_addr: local.unwrap_or_else(|| Addr::Tcp(([0, 0, 0, 0], 0).into())),
                listener: None,
            };
            match factory(&info) {
                Ok(transport) => {
                    if let Some(session) = slot.session() {
                        session.conn.link.set_transport(transport);
                    }
                }
                Err(e) => return self.fail_dial(index, e),
            }
        }
        let ready = slot.session().is_some_and(|s| s.conn.link.is_ready());
        slot.timers.phase_deadline = (!ready).then(|| now.after(handshake_timeout));
        slot.timers.last_activity = now;
        slot.phase = Phase::Handshaking;
        if let Some(session) = slot.session() {
            tracing::debug!(parent: &session.conn.span, "connection open");
        }
        self.update_interest(index);
        self.advance(index);
    }

    /// The dial failed: the slot goes and the handler hears of it.
    pub(super) fn fail_dial(&mut self, index: usize, error: io::Error) {
        let slot = self.slab.remove(index);
        let token = slot.token(index);
        if slot.registered.is_some() {
            self.driver.close(slot.fd, token);
        }
        let span = match slot.holder {
            Holder::Home(session) => session.conn.span.clone(),
            Holder::Away(away) => {
                if away.watched {
                    self.away_watched -= 1;
                }
                tracing::Span::none()
            }
        };
        self.remote
            .counters
            .active
            .store(self.slab.len() as u64, Ordering::Relaxed);
        let _entered = span.enter();
        self.report_dial_failure(&slot.shared, &slot.hooks, error);
    }

    /// Marks a dial failed, counts it and runs `on_connect_failed`.
    pub(super) fn report_dial_failure(
        &mut self,
        shared: &Arc<ConnShared>,
        hooks: &Arc<dyn Hooks>,
        error: io::Error,
    ) {
        tracing::debug!(%error, "connect failed");
        shared.mark_closed(Some(error.kind()));
        bump(&self.remote.counters.connect_failed, 1);
        self.remote.assigned.fetch_sub(1, Ordering::Relaxed);
        let handle = ConnHandle::new(shared.clone());
        if catch_unwind(AssertUnwindSafe(|| hooks.connect_failed(&handle, &error))).is_err() {
            bump(&self.remote.counters.panics, 1);
        }
    }
}
