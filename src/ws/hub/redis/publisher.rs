//! The publisher thread: takes local publishes off the bridge's queue and `PUBLISH`es
//! them, in pipelined batches, on a connection of its own.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

use super::config::{Backoff, BridgeConfig};
use super::shared::{Shared, Side};
use super::wire::{self, Origin};
use super::TICK;
use crate::ws::message::Message;

/// A local publish waiting for Redis.
pub(crate) type Outgoing = (String, Message);

/// At most this many publishes go in one pipeline: enough to amortise the round trip
/// under load, few enough that one failure loses little.
const BATCH: usize = 64;

pub(crate) struct Publisher {
    pub(crate) client: ::redis::Client,
    pub(crate) config: BridgeConfig,
    pub(crate) origin: Origin,
    pub(crate) shared: Arc<Shared>,
    pub(crate) queue: Receiver<Outgoing>,
    pub(crate) seed: u64,
}

impl Publisher {
    /// Runs until the bridge stops (or its relay is gone: nothing more can come).
    pub(crate) fn run(self) {
        let mut backoff = Backoff::new(&self.config, self.seed);
        let mut ever_connected = false;
        let mut batch: Vec<Outgoing> = Vec::with_capacity(BATCH);
        // Each pass connects, or waits out a backoff, or handles one batch or one
        // TICK of silence; the stop flag is checked on every pass.
        'connect: while !self.shared.stopping() {
            let mut con = match super::connect(&self.client, &self.config) {
                Ok(con) => con,
                Err(e) => {
                    tracing::debug!(error = %e, "hub bridge: publisher cannot connect to Redis");
                    self.shared.sleep(backoff.next_wait());
                    continue;
                }
            };
            if ever_connected {
                self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            ever_connected = true;
            backoff.reset();
            self.shared.set_connected(Side::Publisher, true);
            let mut last_traffic = Instant::now();
            while !self.shared.stopping() {
                match self.queue.recv_timeout(TICK) {
                    Ok(first) => {
                        batch.push(first);
                        // Whatever else is queued already, up to the batch size.
                        while batch.len() < BATCH {
                            match self.queue.try_recv() {
                                Ok(m) => batch.push(m),
                                Err(_) => break,
                            }
                        }
                        let ok = self.send(&mut con, &batch);
                        batch.clear();
                        last_traffic = Instant::now();
                        if !ok {
                            self.shared.set_connected(Side::Publisher, false);
                            self.shared.sleep(backoff.next_wait());
                            continue 'connect;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        if last_traffic.elapsed() >= self.config.health_check {
                            last_traffic = Instant::now();
                            if let Err(e) = ::redis::cmd("PING").query::<String>(&mut con) {
                                tracing::debug!(error = %e, "hub bridge: publisher lost Redis");
                                self.shared.set_connected(Side::Publisher, false);
                                self.shared.sleep(backoff.next_wait());
                                continue 'connect;
                            }
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => break 'connect,
                }
            }
            break;
        }
        self.shared.set_connected(Side::Publisher, false);
        // Publishes still queued are not sent: stopping is bounded in time, not by
        // how far Redis is behind. They count as dropped.
        let mut left = 0;
        while self.queue.try_recv().is_ok() {
            left += 1;
        }
        self.shared.dropped.fetch_add(left, Ordering::Relaxed);
    }

    /// Publishes a batch in one pipeline; `false` if the connection failed, in which
    /// case the whole batch counts as failed. It is not sent again: Redis may have
    /// published some of it before the failure, and a retry could deliver those twice.
    fn send(&self, con: &mut ::redis::Connection, batch: &[Outgoing]) -> bool {
        let mut pipe = ::redis::pipe();
        let mut channel = String::new();
        for (topic, msg) in batch {
            channel.clear();
            channel.push_str(&self.config.prefix);
            channel.push_str(topic);
            pipe.cmd("PUBLISH")
                .arg(channel.as_str())
                .arg(wire::encode(self.origin, msg))
                .ignore();
        }
        match pipe.query::<()>(con) {
            Ok(()) => {
                self.shared
                    .sent
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, lost = batch.len(), "hub bridge: PUBLISH failed");
                self.shared
                    .failed
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                false
            }
        }
    }
}
