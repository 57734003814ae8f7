//! The broadcast hub: topics that any number of WebSocket connections subscribe to, and
//! `publish` from any thread.
//!
//! * **One encoding per publish.** The frame is built once and its bytes shared by every
//!   subscriber. Subscribers that negotiated permessage-deflate without server context
//!   takeover get one compressed frame per distinct (level, window, threshold) — in
//!   practice one — so a publish is compressed once, not once per subscriber. A
//!   subscriber *with* server context takeover compresses with its own context, so it
//!   is sent its copy through its own turn (its compressor's state is its own; offer
//!   `server_no_context_takeover` to make broadcasts cheap).
//! * **One command per poller.** Each topic keeps its subscribers in the core's
//!   [`ConnGroup`](crate::ConnGroup)s: a publish costs one cross-thread command per poller
//!   that has subscribers, whatever their number; each poller queues the shared bytes on
//!   its subscribers and sends them with their other output in gathered writes (on
//!   io_uring, a turn's sends go in one `io_uring_enter`).
//! * **Slow subscribers** are held to their connection's
//!   [`max_backpressure`](super::Config::max_backpressure): a publish finding one over it
//!   drops the message for it (counted, reported to
//!   [`WsHandler::on_dropped`](super::WsHandler::on_dropped)) or closes it, as the hub's
//!   [`Overflow`] says. Neither waits: a stalled subscriber never delays
//!   the others, and never holds more than its bound.
//! * **Dead subscribers leave at once.** A connection leaves every topic when its closing
//!   handshake starts or the connection ends for any reason (peer close, reset, timeout,
//!   a failed ping, server shutdown), before its `on_close` runs; a half-open peer is found
//!   by the server's ping/pong liveness. Nothing is sent after its Close, and
//!   [`subscribers`](Hub::subscribers) is exact. Publishing to a topic nobody is
//!   subscribed to is a map lookup.
//!
//! ```no_run
//! use netloop::http::Request;
//! use netloop::ws::hub::Hub;
//! use netloop::ws::{self, Message, WsConn, WsHandler};
//!
//! /// Everyone in the room gets every message anyone sends.
//! struct Room {
//!     hub: Hub,
//! }
//!
//! impl WsHandler for Room {
//!     type State = ();
//!     fn on_open(&self, ws: &mut WsConn<'_>, _req: &Request) {
//!         self.hub.subscribe(&ws.handle(), "lobby");
//!     }
//!     fn on_message(&self, _: &mut (), _ws: &mut WsConn<'_>, msg: Message) {
//!         self.hub.publish("lobby", msg);
//!     }
//! }
//!
//! let hub = Hub::new();
//! let server = netloop::Server::builder()
//!     .listen("127.0.0.1:9001")
//!     .serve(ws::server(Room { hub: hub.clone() }, ws::Config::default()))?;
//! // From any thread:
//! hub.publish("lobby", Message::from("the server says hello"));
//! # Ok::<(), netloop::Error>(())
//! ```

mod encode;
#[cfg(feature = "redis")]
pub mod redis;
mod topic;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub(crate) use topic::Topic;

use super::handle::WsHandle;
use super::message::Message;
use crate::{GroupStats, Overflow};

/// Topics and their subscribers. Cheap to clone (clones share the topics); `Send` and
/// `Sync`, so any thread may subscribe, unsubscribe and publish.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

/// Called with every local publish, for a bridge to other servers ([`Hub::set_relay`]).
type Relay = dyn Fn(&str, &Message) + Send + Sync;

pub(crate) struct HubInner {
    overflow: Overflow,
    topics: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    published: AtomicU64,
    /// Counts of topics that have emptied and left.
    retired: Mutex<GroupStats>,
    relay: RwLock<Option<Arc<Relay>>>,
}

/// A snapshot of a hub's counters ([`Hub::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubStats {
    /// Topics with at least one subscriber.
    pub topics: usize,
    /// Subscriptions (a connection in three topics counts three times).
    pub subscriptions: usize,
    /// Messages published (locally or through [`Hub::publish_local`]).
    pub published: u64,
    /// Deliveries: one per message per subscriber it was queued for.
    pub delivered: u64,
    /// Deliveries skipped for subscribers over their backpressure bound.
    pub dropped: u64,
    /// Subscribers closed for being over their bound ([`Overflow::Close`]).
    pub closed_for_backpressure: u64,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("overflow", &self.inner.overflow)
            .field("topics", &read(&self.inner.topics).len())
            .finish()
    }
}

impl Default for Hub {
    fn default() -> Hub {
        Hub::new()
    }
}

impl Hub {
    /// A hub that drops a message for a subscriber over its bound ([`Overflow::Drop`]).
    pub fn new() -> Hub {
        Hub::with_overflow(Overflow::Drop)
    }

    /// A hub with the given policy for subscribers over their bound: skip the message
    /// for them ([`Overflow::Drop`]) or close them ([`Overflow::Close`]).
    pub fn with_overflow(overflow: Overflow) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                overflow,
                topics: RwLock::new(HashMap::new()),
                published: AtomicU64::new(0),
                retired: Mutex::new(GroupStats::default()),
                relay: RwLock::new(None),
            }),
        }
    }

    /// Subscribes the connection to `topic`, from its handler or any thread. Returns
    /// `false` if it was subscribed already, or is closing or closed (a closed
    /// connection is never a member).
    pub fn subscribe(&self, ws: &WsHandle, topic: &str) -> bool {
        let shared = ws.shared();
        // Joining under the map's read lock: a topic emptying at the same time leaves
        // the map under its write lock, so it cannot be retired between the look-up
        // and the join.
        {
            let topics = read(&self.inner.topics);
            if let Some(t) = topics.get(topic) {
                return shared.subscribe(t, || t.add(ws));
            }
        }
        let mut topics = write(&self.inner.topics);
        let t = topics
            .entry(Arc::from(topic))
            .or_insert_with_key(|name| {
                Arc::new(Topic::new(
                    name.clone(),
                    Arc::downgrade(&self.inner),
                    self.inner.overflow,
                ))
            })
            .clone();
        let joined = shared.subscribe(&t, || t.add(ws));
        if !joined && t.len() == 0 {
            topics.remove(topic);
        }
        joined
    }

    /// Unsubscribes the connection from `topic`; returns whether it was subscribed.
    pub fn unsubscribe(&self, ws: &WsHandle, topic: &str) -> bool {
        let Some(t) = read(&self.inner.topics).get(topic).cloned() else {
            return false;
        };
        let shared = ws.shared();
        if !shared.unsubscribe(&t) {
            return false;
        }
        t.remove(shared);
        true
    }

    /// Publishes `msg` to every subscriber of `topic`, from any thread, and hands it to
    /// the relay if one is set. Returns at once: delivery happens on the subscribers'
    /// pollers. A topic with no subscribers costs a look-up.
    pub fn publish(&self, topic: &str, msg: impl Into<Message>) {
        let msg = msg.into();
        self.publish_local(topic, &msg);
        let relay = read(&self.inner.relay).clone();
        if let Some(relay) = relay {
            relay(topic, &msg);
        }
    }

    /// Publishes to this hub's subscribers only, without the relay: for a bridge
    /// delivering what another server published.
    pub fn publish_local(&self, topic: &str, msg: &Message) {
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        let t = read(&self.inner.topics).get(topic).cloned();
        if let Some(t) = t {
            t.publish(msg);
        }
    }

    /// Sets the function every [`publish`](Hub::publish) also calls (after local
    /// delivery), replacing any before: how a bridge carries publishes to other servers.
    pub fn set_relay<F>(&self, relay: F)
    where
        F: Fn(&str, &Message) + Send + Sync + 'static,
    {
        *write(&self.inner.relay) = Some(Arc::new(relay));
    }

    /// Removes the relay.
    pub fn clear_relay(&self) {
        *write(&self.inner.relay) = None;
    }

    /// Subscribers of `topic` now (exact: a closing connection has left).
    pub fn subscribers(&self, topic: &str) -> usize {
        read(&self.inner.topics).get(topic).map_or(0, |t| t.len())
    }

    /// The topics that have subscribers, in no particular order.
    pub fn topics(&self) -> Vec<String> {
        read(&self.inner.topics)
            .keys()
            .map(|k| k.to_string())
            .collect()
    }

    /// The counters now.
    pub fn stats(&self) -> HubStats {
        let topics = read(&self.inner.topics);
        let retired = *lock(&self.inner.retired);
        let mut stats = HubStats {
            topics: topics.len(),
            published: self.inner.published.load(Ordering::Relaxed),
            delivered: retired.delivered,
            dropped: retired.dropped,
            closed_for_backpressure: retired.closed,
            ..HubStats::default()
        };
        for t in topics.values() {
            stats.subscriptions += t.len();
            let c = t.counts();
            stats.delivered += c.delivered;
            stats.dropped += c.dropped;
            stats.closed_for_backpressure += c.closed;
        }
        stats
    }
}

impl HubInner {
    /// A topic's last subscriber left: it leaves the map, unless someone joined it since.
    pub(crate) fn retire(&self, topic: &Arc<Topic>) {
        let mut topics = write(&self.topics);
        let current = topics
            .get(&topic.name)
            .is_some_and(|t| Arc::ptr_eq(t, topic));
        if current && topic.len() == 0 {
            topics.remove(&topic.name);
            let c = topic.counts();
            let mut retired = lock(&self.retired);
            retired.delivered += c.delivered;
            retired.dropped += c.dropped;
            retired.closed += c.closed;
        }
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
