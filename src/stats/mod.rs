//! Counters: what [`ServerHandle::stats`](crate::ServerHandle::stats) and
//! [`ServerHandle::shutdown`](crate::ServerHandle::shutdown) report.

mod text;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::CloseReason;

/// A snapshot of the server's counters, summed over its pollers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections open now (accepted and dialed).
    pub active: u64,
    /// Connections accepted by the listeners (including rejected ones).
    pub accepted: u64,
    /// Connections refused by [`Handler::on_prepare`](crate::Handler::on_prepare).
    pub rejected: u64,
    /// Connections refused because [`Builder::max_connections`](crate::Builder::max_connections)
    /// were open.
    pub over_limit: u64,
    /// Input bytes buffered now, over all connections (read, not yet consumed).
    pub buffered_input: u64,
    /// Output bytes queued now, over all connections (written, not yet sent).
    pub buffered_output: u64,
    /// Connections closed, by reason.
    pub closed: ClosedStats,
    /// Bytes read from sockets.
    pub bytes_in: u64,
    /// Bytes written to sockets.
    pub bytes_out: u64,
    /// `on_request` calls.
    pub handler_calls: u64,
    /// Handler callbacks that panicked.
    pub panics: u64,
    /// Dials that failed to connect (`on_connect_failed`).
    pub connect_failed: u64,
    /// [`ConnGroup`](crate::ConnGroup) messages dropped for members over their output mark.
    pub dropped: u64,
    /// Per-poller figures, indexed by poller.
    pub pollers: Vec<PollerStats>,
}

/// Closed connections by [`CloseReason`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClosedStats {
    /// [`CloseReason::PeerClosed`].
    pub peer_closed: u64,
    /// [`CloseReason::Local`].
    pub local: u64,
    /// [`CloseReason::Shutdown`].
    pub shutdown: u64,
    /// [`CloseReason::ShutdownForced`].
    pub shutdown_forced: u64,
    /// [`CloseReason::Panic`].
    pub panic: u64,
    /// [`CloseReason::Error`].
    pub error: u64,
    /// [`CloseReason::ReadTimeout`].
    pub read_timeout: u64,
    /// [`CloseReason::WriteTimeout`].
    pub write_timeout: u64,
    /// [`CloseReason::IdleTimeout`].
    pub idle_timeout: u64,
    /// [`CloseReason::InputLimit`].
    pub input_limit: u64,
    /// [`CloseReason::HandshakeTimeout`].
    pub handshake_timeout: u64,
    /// [`CloseReason::Backpressure`].
    pub backpressure: u64,
}

impl ClosedStats {
    /// All closed connections.
    pub fn total(&self) -> u64 {
        self.peer_closed
            + self.local
            + self.shutdown
            + self.shutdown_forced
            + self.panic
            + self.error
            + self.read_timeout
            + self.write_timeout
            + self.idle_timeout
            + self.input_limit
            + self.handshake_timeout
            + self.backpressure
    }
}

/// One poller's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PollerStats {
    /// Connections this poller owns now.
    pub active: u64,
    /// Connections this poller has adopted since start.
    pub adopted: u64,
    /// Sockets this poller has closed whose kernel operations have not all finished
    /// (io_uring only: a socket is closed for real once its last operation completes).
    pub closing: u64,
    /// Commands this poller has taken from other threads (new connections, dials,
    /// notifications, fan-out, shutdown steps).
    pub commands: u64,
}

/// What a graceful shutdown did, returned by
/// [`ServerHandle::shutdown`](crate::ServerHandle::shutdown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Connections that were idle at shutdown and closed at once.
    pub idle_closed: u64,
    /// Connections that were busy at shutdown and finished (handler returned, output
    /// flushed) before the deadline.
    pub drained: u64,
    /// Connections still busy at the deadline, cut off.
    pub forced: u64,
}

impl Stats {
    /// Adds another server's counters to these (its pollers are listed after these).
    #[cfg(feature = "http")]
    pub(crate) fn absorb(&mut self, other: &Stats) {
        self.active += other.active;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.over_limit += other.over_limit;
        self.buffered_input += other.buffered_input;
        self.buffered_output += other.buffered_output;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.handler_calls += other.handler_calls;
        self.panics += other.panics;
        self.connect_failed += other.connect_failed;
        self.dropped += other.dropped;
        let (c, o) = (&mut self.closed, &other.closed);
        c.peer_closed += o.peer_closed;
        c.local += o.local;
        c.shutdown += o.shutdown;
        c.shutdown_forced += o.shutdown_forced;
        c.panic += o.panic;
        c.error += o.error;
        c.read_timeout += o.read_timeout;
        c.write_timeout += o.write_timeout;
        c.idle_timeout += o.idle_timeout;
        c.input_limit += o.input_limit;
        c.handshake_timeout += o.handshake_timeout;
        c.backpressure += o.backpressure;
        self.pollers.extend(other.pollers.iter().cloned());
    }
}

impl ShutdownReport {
    pub(crate) fn add(&mut self, other: &ShutdownReport) {
        self.idle_closed += other.idle_closed;
        self.drained += other.drained;
        self.forced += other.forced;
    }
}

/// One poller's counters. Each is written by the owning poller thread only, so an
/// update is a plain load and store (no locked instruction); readers on other threads
/// see a recent value.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) active: AtomicU64,
    pub(crate) adopted: AtomicU64,
    pub(crate) closing: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) over_limit: AtomicU64,
    pub(crate) buffered_input: AtomicU64,
    pub(crate) buffered_output: AtomicU64,
    pub(crate) closed: [AtomicU64; CloseReason::SLOTS],
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) handler_calls: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) connect_failed: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) commands: AtomicU64,
}

/// Moves a single-writer gauge from `old` to `new`.
#[inline]
pub(crate) fn shift(gauge: &AtomicU64, old: usize, new: usize) {
    if old != new {
        let v = gauge
            .load(Ordering::Relaxed)
            .wrapping_add(new as u64)
            .wrapping_sub(old as u64);
        gauge.store(v, Ordering::Relaxed);
    }
}

/// Adds to a single-writer counter.
#[inline]
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    if n != 0 {
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

impl Counters {
    pub(crate) fn add_to(&self, stats: &mut Stats) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let active = get(&self.active);
        stats.active += active;
        stats.accepted += get(&self.accepted);
        stats.rejected += get(&self.rejected);
        stats.over_limit += get(&self.over_limit);
        stats.buffered_input += get(&self.buffered_input);
        stats.buffered_output += get(&self.buffered_output);
        stats.bytes_in += get(&self.bytes_in);
        stats.bytes_out += get(&self.bytes_out);
        stats.handler_calls += get(&self.handler_calls);
        stats.panics += get(&self.panics);
        stats.connect_failed += get(&self.connect_failed);
        stats.dropped += get(&self.dropped);
        let c = &mut stats.closed;
        c.peer_closed += get(&self.closed[CloseReason::PeerClosed.slot()]);
        c.local += get(&self.closed[CloseReason::Local.slot()]);
        c.shutdown += get(&self.closed[CloseReason::Shutdown.slot()]);
        c.shutdown_forced += get(&self.closed[CloseReason::ShutdownForced.slot()]);
        c.panic += get(&self.closed[CloseReason::Panic.slot()]);
        c.error += get(&self.closed[CloseReason::Error(std::io::ErrorKind::Other).slot()]);
        c.read_timeout += get(&self.closed[CloseReason::ReadTimeout.slot()]);
        c.write_timeout += get(&self.closed[CloseReason::WriteTimeout.slot()]);
        c.idle_timeout += get(&self.closed[CloseReason::IdleTimeout.slot()]);
        c.input_limit += get(&self.closed[CloseReason::InputLimit.slot()]);
        c.handshake_timeout += get(&self.closed[CloseReason::HandshakeTimeout.slot()]);
        c.backpressure += get(&self.closed[CloseReason::Backpressure.slot()]);
        stats.pollers.push(PollerStats {
            active,
            adopted: get(&self.adopted),
            closing: get(&self.closing),
            commands: get(&self.commands),
        });
    }
}
