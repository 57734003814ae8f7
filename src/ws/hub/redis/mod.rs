//! A bridge from a [`Hub`] to Redis pub/sub (feature `redis`): a publish on any server
//! reaches the topic's subscribers on every server of the cluster, once each.
//!
//! Each server runs one [`RedisBridge`] on its hub. The bridge sets the hub's relay
//! ([`Hub::set_relay`]), so every [`Hub::publish`] — delivered locally first, as without
//! a bridge — is also queued for Redis and sent as `PUBLISH <prefix><topic>` by the
//! bridge's publisher thread. Its subscriber thread holds `PSUBSCRIBE <prefix>*` and
//! hands each message to the hub with [`Hub::publish_local`] (local delivery, no relay:
//! nothing goes round twice).
//!
//! * **Exactly once per subscriber.** Each Redis payload carries the id of the bridge
//!   that sent it (128 random bits, new per [`RedisBridge::start`]) and the message's
//!   kind (text or binary). A bridge skips its own messages coming back (counted in
//!   [`BridgeStats::skipped_own`]): its server delivered them when they were
//!   published. Payloads not in this format are ignored ([`BridgeStats::invalid`]).
//! * **A publisher never waits for Redis.** Between [`Hub::publish`] and the publisher
//!   thread is a bounded queue ([`BridgeConfig::queue`]); a publish finding it full is
//!   delivered locally but not sent to other servers, and counted in
//!   [`BridgeStats::dropped`]. The publisher thread sends what is queued in pipelined
//!   batches.
//! * **Reconnects.** Each thread has its own connection; on any error (or a `PING`
//!   unanswered after [`BridgeConfig::health_check`] of silence) it reconnects with
//!   exponential backoff and jitter ([`BridgeConfig::backoff`]) and the subscriber
//!   subscribes again. [`BridgeStats::reconnects`] counts the connections made after a
//!   loss; [`RedisBridge::wait_connected`] waits for both.
//!
//! # What can be lost
//!
//! Redis pub/sub is at-most-once: Redis keeps no message for a subscriber that is not
//! connected. So, while a bridge's connections are down (from the moment Redis stops,
//! or the network between them fails, until [`BridgeStats::connected`] is true again):
//!
//! * **Messages published on other servers are lost for this server's subscribers.**
//!   This includes the moments after Redis comes back and before this bridge has
//!   subscribed again (at most one backoff wait, up to [`BridgeConfig::backoff`]'s cap).
//! * **Messages published on this server** are delivered to its own subscribers at
//!   once, as always. For other servers they wait in the queue, up to its bound, and are
//!   sent when the publisher has reconnected (late, but once; those over the bound are
//!   dropped and counted). Other servers whose subscriber has not reconnected yet miss
//!   them, as above.
//! * **The batch being sent when the connection fails** (at most 64 publishes) is not
//!   sent again: Redis may have published part of it before failing, and sending it
//!   again could deliver that part twice. It is counted in [`BridgeStats::failed`].
//! * A connection that vanished without being closed (a partition) is noticed within
//!   about `health_check + io_timeout`; publishes sent into it in that time are lost
//!   (counted as failed once noticed).
//!
//! Nothing is ever delivered twice to one subscriber, and messages from one server
//! arrive at another in the order they were published (one publisher connection, one
//! subscriber connection, Redis keeps their order). Publishes from different servers
//! have no order among them.
//!
//! ```no_run
//! use netloop::ws::hub::redis::{BridgeConfig, RedisBridge};
//! use netloop::ws::hub::Hub;
//! use netloop::ws::Message;
//!
//! let hub = Hub::new();
//! // ... a WebSocket server whose handler subscribes connections to `hub` ...
//! let bridge = RedisBridge::start(&hub, "redis://127.0.0.1:6379/", BridgeConfig::default())?;
//! // Reaches "lobby"'s subscribers here and on every other bridged server.
//! hub.publish("lobby", Message::from("hello, cluster"));
//! println!("{:?}", bridge.stats());
//! bridge.stop();
//! # Ok::<(), netloop::ws::hub::redis::BridgeError>(())
//! ```

mod config;
mod publisher;
mod shared;
mod subscriber;
mod wire;

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use config::BridgeConfig;

use super::Hub;
use publisher::{Outgoing, Publisher};
use shared::Shared;
use subscriber::Subscriber;
use wire::Origin;

/// How often the bridge's threads look at the stop flag while waiting on Redis or on
/// their queue: a bound on how long [`RedisBridge::stop`] takes when Redis answers.
const TICK: Duration = Duration::from_millis(100);

/// A running bridge between one [`Hub`] and Redis. Stopping it (or dropping it) ends
/// its threads and removes the hub's relay.
pub struct RedisBridge {
    hub: Hub,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// A snapshot of a bridge's counters ([`RedisBridge::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeStats {
    /// Local publishes sent to Redis, counted when Redis has answered their pipeline.
    /// Subscribers (on this server and others) may already have a message before it
    /// is counted here.
    pub sent: u64,
    /// Messages from other servers delivered to the local hub.
    pub received: u64,
    /// This bridge's own messages coming back from Redis, skipped (delivered locally
    /// when published).
    pub skipped_own: u64,
    /// Local publishes not sent to Redis: the queue was full, or they were still
    /// queued when the bridge stopped.
    pub dropped: u64,
    /// Local publishes in a batch whose connection failed (not sent again).
    pub failed: u64,
    /// Messages on the bridge's channels not in its format, ignored.
    pub invalid: u64,
    /// Connections made again after one was lost (each of the bridge's two
    /// connections counts its own).
    pub reconnects: u64,
    /// Whether both connections are up now (the subscriber's subscribed).
    pub connected: bool,
}

/// Why a bridge could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum BridgeError {
    /// The Redis URL is not one the `redis` crate accepts (`redis://host:port/db`,
    /// `redis+unix:///path`); the text says why.
    Url(String),
    /// A bridge thread could not be started.
    Spawn(std::io::Error),
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::Url(why) => write!(f, "invalid Redis URL: {why}"),
            BridgeError::Spawn(e) => write!(f, "cannot start a bridge thread: {e}"),
        }
    }
}

impl std::error::Error for BridgeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BridgeError::Spawn(e) => Some(e),
            BridgeError::Url(_) => None,
        }
    }
}

impl fmt::Debug for RedisBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBridge")
            .field("stats", &self.stats())
            .finish()
    }
}

impl RedisBridge {
    /// Bridges `hub` to the Redis at `url`, replacing the hub's relay. Returns at once:
    /// the connections are made by the bridge's threads, and made again whenever lost
    /// (a Redis that is down at start is no error; see [`wait_connected`]).
    ///
    /// One bridge per hub: the hub has one relay, so a second bridge (or any
    /// [`Hub::set_relay`]) takes the outgoing side from the first, whose publisher
    /// thread then ends.
    ///
    /// [`wait_connected`]: RedisBridge::wait_connected
    pub fn start(hub: &Hub, url: &str, config: BridgeConfig) -> Result<RedisBridge, BridgeError> {
        let client = ::redis::Client::open(url).map_err(|e| BridgeError::Url(e.to_string()))?;
        let origin = Origin::new();
        let shared = Arc::new(Shared::default());
        let (tx, queue) = mpsc::sync_channel::<Outgoing>(config.queue);
        // Seeds for the two backoffs' jitter: different per bridge and per side.
        let seed = origin.seed();
        let publisher = Publisher {
            client: client.clone(),
            config: config.clone(),
            origin,
            shared: shared.clone(),
            queue,
            seed,
        };
        let subscriber = Subscriber {
            client,
            config,
            origin,
            shared: shared.clone(),
            hub: hub.clone(),
            seed: seed.rotate_left(32),
        };
        let mut bridge = RedisBridge {
            hub: hub.clone(),
            shared: shared.clone(),
            threads: Vec::with_capacity(2),
        };
        // On an error below, dropping `bridge` stops the thread already started.
        bridge.threads.push(
            std::thread::Builder::new()
                .name("netloop-hub-redis-pub".into())
                .spawn(move || publisher.run())
                .map_err(BridgeError::Spawn)?,
        );
        bridge.threads.push(
            std::thread::Builder::new()
                .name("netloop-hub-redis-sub".into())
                .spawn(move || subscriber.run())
                .map_err(BridgeError::Spawn)?,
        );
        let counters = shared;
        hub.set_relay(move |topic, msg| {
            match tx.try_send((topic.to_owned(), msg.clone())) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                // The publisher thread has ended: the bridge is stopping.
                Err(TrySendError::Disconnected(_)) => {}
            }
        });
        Ok(bridge)
    }

    /// The counters now.
    pub fn stats(&self) -> BridgeStats {
        self.shared.stats()
    }

    /// Waits up to `timeout` for both connections to be up (the subscriber's
    /// subscribed); returns whether they are.
    pub fn wait_connected(&self, timeout: Duration) -> bool {
        self.shared.wait_connected(timeout)
    }

    /// Stops the bridge: removes the hub's relay (publishes stay local from here on),
    /// ends both threads and returns the final counters. Takes at most about
    /// 100 ms (the threads' wake-up interval) plus [`BridgeConfig::io_timeout`] (a
    /// command in flight) or [`BridgeConfig::connect_timeout`] (a connection being
    /// made).
    pub fn stop(mut self) -> BridgeStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.hub.clear_relay();
        self.shared.stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for RedisBridge {
    /// As [`stop`](RedisBridge::stop).
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A connection with the bridge's timeouts on connecting, writing and reading.
fn connect(
    client: &::redis::Client,
    config: &BridgeConfig,
) -> ::redis::RedisResult<::redis::Connection> {
    let con = client.get_connection_with_timeout(config.connect_timeout)?;
    con.set_write_timeout(Some(config.io_timeout))?;
    con.set_read_timeout(Some(config.io_timeout))?;
    Ok(con)
}
