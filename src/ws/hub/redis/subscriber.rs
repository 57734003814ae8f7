//! The subscriber thread: `PSUBSCRIBE prefix*` on a connection of its own, and every
//! message another server published handed to the local hub.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::config::{Backoff, BridgeConfig};
use super::shared::{Shared, Side};
use super::wire::{self, Origin};
use super::TICK;
use crate::ws::hub::Hub;

pub(crate) struct Subscriber {
    pub(crate) client: ::redis::Client,
    pub(crate) config: BridgeConfig,
    pub(crate) origin: Origin,
    pub(crate) shared: Arc<Shared>,
    pub(crate) hub: Hub,
    pub(crate) seed: u64,
}

impl Subscriber {
    /// Runs until the bridge stops.
    pub(crate) fn run(self) {
        let pattern = wire::pattern(&self.config.prefix);
        let mut backoff = Backoff::new(&self.config, self.seed);
        let mut ever_connected = false;
        // Each pass is one connection's life, or one failed attempt and its backoff.
        while !self.shared.stopping() {
            let mut con = match super::connect(&self.client, &self.config) {
                Ok(con) => con,
                Err(e) => {
                    tracing::debug!(error = %e, "hub bridge: subscriber cannot connect to Redis");
                    self.shared.sleep(backoff.next_wait());
                    continue;
                }
            };
            let mut ps = con.as_pubsub();
            if let Err(e) = ps.psubscribe(pattern.as_str()) {
                tracing::debug!(error = %e, "hub bridge: PSUBSCRIBE failed");
                self.shared.sleep(backoff.next_wait());
                continue;
            }
            if ever_connected {
                self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            ever_connected = true;
            backoff.reset();
            self.shared.set_connected(Side::Subscriber, true);
            let lost = self.listen(&mut ps);
            self.shared.set_connected(Side::Subscriber, false);
            if let Some(e) = lost {
                tracing::debug!(error = %e, "hub bridge: subscriber lost Redis");
                self.shared.sleep(backoff.next_wait());
            }
        }
    }

    /// Delivers messages until the connection fails (the error) or the bridge stops.
    fn listen(&self, ps: &mut ::redis::PubSub<'_>) -> Option<::redis::RedisError> {
        // Reads wake every TICK, so a stop is seen within one; the parser keeps a
        // message that a timeout split, so a timeout loses nothing.
        if let Err(e) = ps.set_read_timeout(Some(TICK)) {
            return Some(e);
        }
        let mut last_traffic = Instant::now();
        // One message, or one TICK of silence, per pass.
        while !self.shared.stopping() {
            match ps.get_message() {
                Ok(m) => {
                    last_traffic = Instant::now();
                    self.deliver(&m);
                }
                Err(e) if e.is_timeout() => {
                    if last_traffic.elapsed() >= self.config.health_check {
                        last_traffic = Instant::now();
                        let ping = ps
                            .set_read_timeout(Some(self.config.io_timeout))
                            .and_then(|()| ps.ping::<::redis::Value>())
                            .and_then(|_| ps.set_read_timeout(Some(TICK)));
                        if let Err(e) = ping {
                            return Some(e);
                        }
                    }
                }
                Err(e) => return Some(e),
            }
        }
        None
    }

    fn deliver(&self, m: &::redis::Msg) {
        let decoded = wire::decode(m.get_payload_bytes());
        let channel = m.get_channel::<String>().ok();
        let topic = channel
            .as_deref()
            .and_then(|c| c.strip_prefix(self.config.prefix.as_str()));
        let (Some(d), Some(topic)) = (decoded, topic) else {
            self.shared.invalid.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if d.origin == self.origin {
            // This server delivered it locally when it was published.
            self.shared.skipped_own.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.shared.received.fetch_add(1, Ordering::Relaxed);
        self.hub.publish_local(topic, &d.msg);
    }
}
