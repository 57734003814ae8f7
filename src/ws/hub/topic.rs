//! One topic: its subscribers, grouped by the frame they take, and how a publish
//! reaches them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::encode::{Encoding, Frames};
use super::HubInner;
use crate::ws::handle::{WsHandle, WsShared};
use crate::ws::message::Message;
use crate::{ConnGroup, GroupStats, Overflow};

/// A topic's subscribers. Those that take a shared frame are in one [`ConnGroup`] per
/// encoding (a publish is one command per poller per group); those that compress with
/// context takeover are sent to one by one, through their own turn.
pub(crate) struct Topic {
    pub(super) name: Arc<str>,
    hub: Weak<HubInner>,
    overflow: Overflow,
    groups: Mutex<Vec<(Encoding, Arc<ConnGroup>)>>,
    takeover: Mutex<HashMap<u64, WsHandle>>,
    len: AtomicUsize,
    /// Deliveries and drops of the takeover subscribers (the groups count their own).
    takeover_delivered: AtomicU64,
    takeover_dropped: AtomicU64,
    takeover_closed: AtomicU64,
}

impl Topic {
    pub(super) fn new(name: Arc<str>, hub: Weak<HubInner>, overflow: Overflow) -> Topic {
        Topic {
            name,
            hub,
            overflow,
            groups: Mutex::new(Vec::new()),
            takeover: Mutex::new(HashMap::new()),
            len: AtomicUsize::new(0),
            takeover_delivered: AtomicU64::new(0),
            takeover_dropped: AtomicU64::new(0),
            takeover_closed: AtomicU64::new(0),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Adds a subscriber; `false` if its connection takes no more group messages (it
    /// sealed its output for its Close).
    pub(super) fn add(&self, ws: &WsHandle) -> bool {
        let shared = ws.shared();
        match Encoding::of(shared.deflate.as_ref()) {
            Some(encoding) => {
                let group = {
                    let mut groups = lock(&self.groups);
                    match groups.iter().find(|(e, _)| *e == encoding) {
                        Some((_, g)) => g.clone(),
                        None => {
                            let g = Arc::new(ConnGroup::new(self.overflow));
                            groups.push((encoding, g.clone()));
                            g
                        }
                    }
                };
                if !group.insert_with_limit(shared.conn(), shared.max_backpressure()) {
                    return false;
                }
            }
            None => {
                lock(&self.takeover).insert(ws.id(), ws.clone());
            }
        }
        self.len.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Removes a subscriber that is leaving (unsubscribing or closing); the topic leaves
    /// its hub when its last subscriber has. The caller's record of the subscription
    /// says it was one (each subscription is removed exactly once): the group may have
    /// pruned a sealed or closed member already at a publish, so the group's answer
    /// cannot tell.
    pub(crate) fn remove(self: &Arc<Self>, shared: &WsShared) {
        match Encoding::of(shared.deflate.as_ref()) {
            Some(encoding) => {
                if let Some((_, g)) = lock(&self.groups).iter().find(|(e, _)| *e == encoding) {
                    g.remove(shared.conn());
                }
            }
            None => {
                lock(&self.takeover).remove(&shared.conn().id());
            }
        }
        if self.len.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(hub) = self.hub.upgrade() {
                hub.retire(self);
            }
        }
    }

    /// Sends `msg` to every subscriber: each shared frame built once.
    pub(super) fn publish(&self, msg: &Message) {
        let mut frames = Frames::new(msg);
        let groups: Vec<(Encoding, Arc<ConnGroup>)> = lock(&self.groups).clone();
        for (encoding, group) in groups {
            if !group.is_empty() {
                group.send(frames.get(encoding));
            }
        }
        let takeover: Vec<WsHandle> = lock(&self.takeover).values().cloned().collect();
        for ws in takeover {
            // The hub's policy, not the connection's: a publisher never waits.
            let shared = ws.shared();
            let buffered = ws.buffered_amount();
            if buffered > 0 && buffered + msg.len() > shared.max_backpressure() {
                match self.overflow {
                    Overflow::Close => {
                        let _ = ws.close(crate::ws::close::POLICY_VIOLATION, "too slow");
                        self.takeover_closed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        self.takeover_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                continue;
            }
            if ws.send(msg.clone()).is_ok() {
                self.takeover_delivered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The deliveries, drops and closes for this topic so far.
    pub(super) fn counts(&self) -> GroupStats {
        let mut total = GroupStats::default();
        for (_, g) in lock(&self.groups).iter() {
            let c = g.counts();
            total.delivered += c.delivered;
            total.dropped += c.dropped;
            total.closed += c.closed;
        }
        total.delivered += self.takeover_delivered.load(Ordering::Relaxed);
        total.dropped += self.takeover_dropped.load(Ordering::Relaxed);
        total.closed += self.takeover_closed.load(Ordering::Relaxed);
        total
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
