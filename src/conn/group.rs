//! [`ConnGroup`]: one message to many connections for one cross-thread command per
//! poller.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::{ConnHandle, ConnShared};
use crate::driver::Token;
use crate::poller::{Command, Remote};

/// What a [`ConnGroup`] does with a member whose output is at its high-water mark
/// ([`Builder::output_high_water`](crate::Builder::output_high_water)) when a message
/// comes: it never queues past the mark, so one slow member cannot grow memory or hold
/// up the others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Skip the message for that member and count it
    /// ([`ConnHandle::dropped`](crate::ConnHandle::dropped), [`Stats::dropped`](crate::Stats::dropped)).
    #[default]
    Drop,
    /// Close that member ([`CloseReason::Backpressure`](crate::CloseReason::Backpressure)).
    Close,
}

/// A set of connections that receive the same bytes.
///
/// [`send`](ConnGroup::send) costs one command per poller that has members, whatever
/// their number: each poller then queues the one shared `Bytes` (no copy) on each of its
/// members and sends with their other output, in gathered writes. Members may be on any
/// poller of any server; a connection may be in any number of groups.
///
/// A member that closes is skipped from then on and leaves the group at the next
/// `send` (or when [`remove`](ConnGroup::remove)d); [`len`](ConnGroup::len) counts it
/// until then. A protocol layer that wants exact counts removes members in `on_close`.
///
/// ```no_run
/// use netloop::{Bytes, ConnGroup, Overflow};
///
/// let room = ConnGroup::new(Overflow::Drop);
/// // In a handler: room.insert(&conn.handle());
/// let pollers_reached = room.send(Bytes::from_static(b"hello, everyone\n"));
/// # let _ = pollers_reached;
/// ```
pub struct ConnGroup {
    overflow: Overflow,
    shards: Mutex<Vec<Arc<Shard>>>,
    len: Arc<AtomicUsize>,
    counts: Arc<GroupCounts>,
}

/// What the pollers did with a group's messages, added once per message per poller.
#[derive(Debug, Default)]
pub(crate) struct GroupCounts {
    pub(crate) delivered: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) closed: AtomicU64,
}

/// What a [`ConnGroup`]'s messages did, summed over every poller that delivered them
/// ([`ConnGroup::counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupStats {
    /// Member deliveries: one per message per member it was queued for.
    pub delivered: u64,
    /// Deliveries skipped for members over their limit ([`Overflow::Drop`]).
    pub dropped: u64,
    /// Members closed for being over their limit ([`Overflow::Close`]).
    pub closed: u64,
}

/// The members of a group that live on one poller.
pub(crate) struct Shard {
    pub(crate) remote: Arc<Remote>,
    pub(crate) overflow: Overflow,
    members: Mutex<Members>,
    /// The group's member count, kept exact as closed members are pruned.
    group_len: Arc<AtomicUsize>,
    pub(crate) counts: Arc<GroupCounts>,
}

#[derive(Default)]
struct Members {
    list: Vec<Arc<ConnShared>>,
    /// Each member's own limit on queued output (`usize::MAX`: the output mark).
    limits: Vec<usize>,
    /// Connection id → index in `list`.
    index: HashMap<u64, usize>,
}

impl Members {
    fn insert(&mut self, member: &Arc<ConnShared>, limit: usize) -> bool {
        if self.index.contains_key(&member.id) {
            return false;
        }
        self.index.insert(member.id, self.list.len());
        self.list.push(member.clone());
        self.limits.push(limit);
        true
    }

    fn remove_at(&mut self, i: usize) {
        self.limits.swap_remove(i);
        let gone = self.list.swap_remove(i);
        self.index.remove(&gone.id);
        if let Some(moved) = self.list.get(i) {
            self.index.insert(moved.id, i);
        }
    }

    fn remove(&mut self, id: u64) -> bool {
        match self.index.get(&id) {
            Some(&i) => {
                self.remove_at(i);
                true
            }
            None => false,
        }
    }
}

impl std::fmt::Debug for ConnGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnGroup")
            .field("overflow", &self.overflow)
            .field("len", &self.len())
            .finish()
    }
}

impl Default for ConnGroup {
    fn default() -> ConnGroup {
        ConnGroup::new(Overflow::default())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ConnGroup {
    /// An empty group with the given policy for members over their output mark.
    pub fn new(overflow: Overflow) -> ConnGroup {
        ConnGroup {
            overflow,
            shards: Mutex::new(Vec::new()),
            len: Arc::new(AtomicUsize::new(0)),
            counts: Arc::default(),
        }
    }

    /// What the group's messages did so far: deliveries, drops, closes (as the pollers
    /// reported them; a message still in flight is not counted yet).
    pub fn counts(&self) -> GroupStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        GroupStats {
            delivered: get(&self.counts.delivered),
            dropped: get(&self.counts.dropped),
            closed: get(&self.counts.closed),
        }
    }

    /// Adds a connection; returns `false` if it was a member already or is closed.
    pub fn insert(&self, conn: &ConnHandle) -> bool {
        self.insert_with_limit(conn, usize::MAX)
    }

    /// Adds a connection that takes group messages only while its queued output plus
    /// the message stays within `limit` bytes (and the output mark); over it, the
    /// group's [`Overflow`] policy applies. A protocol layer passes its own per-connection
    /// bound (WebSocket's `max_backpressure`). Returns `false` if it was a member already
    /// or is closed (or sealed).
    pub fn insert_with_limit(&self, conn: &ConnHandle, limit: usize) -> bool {
        let member = &conn.shared;
        if member.is_closed() || member.is_sealed() {
            return false;
        }
        let shard = {
            let mut shards = lock(&self.shards);
            match shards
                .iter()
                .find(|s| Arc::ptr_eq(&s.remote, member.remote()))
            {
                Some(s) => s.clone(),
                None => {
                    let s = Arc::new(Shard {
                        remote: member.remote().clone(),
                        overflow: self.overflow,
                        members: Mutex::new(Members::default()),
                        group_len: self.len.clone(),
                        counts: self.counts.clone(),
                    });
                    shards.push(s.clone());
                    s
                }
            }
        };
        let added = lock(&shard.members).insert(member, limit);
        if added {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        added
    }

    /// Removes a connection; returns whether it was a member.
    pub fn remove(&self, conn: &ConnHandle) -> bool {
        let member = &conn.shared;
        let shard = lock(&self.shards)
            .iter()
            .find(|s| Arc::ptr_eq(&s.remote, member.remote()))
            .cloned();
        let removed = shard.is_some_and(|s| lock(&s.members).remove(member.id));
        if removed {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Number of members (closed ones included until the next `send` prunes them).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the group has no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends `data` to every member, from any thread; returns at once, with the number of
    /// pollers the message went to (one command each). Each member gets the bytes after
    /// whatever was queued for it before, through its own transport; a member over its
    /// output mark is dealt with by the group's [`Overflow`] policy. Sending to an empty
    /// group costs nothing.
    pub fn send(&self, data: Bytes) -> usize {
        let shards = lock(&self.shards);
        let mut reached = 0;
        for shard in shards.iter() {
            if lock(&shard.members).list.is_empty() {
                continue;
            }
            shard.remote.push(Command::FanOut {
                shard: shard.clone(),
                data: data.clone(),
            });
            reached += 1;
        }
        reached
    }
}

impl Shard {
    /// The tokens of the members still open, with their limits, for the owning poller
    /// to deliver to (into `out`, which is cleared first; no reference count is
    /// touched); closed and sealed members leave the group here.
    pub(crate) fn open_members(&self, out: &mut Vec<(Token, usize)>) {
        out.clear();
        let mut members = lock(&self.members);
        let mut i = 0;
        while i < members.list.len() {
            let m = &members.list[i];
            if m.is_closed() || m.is_sealed() {
                members.remove_at(i);
                self.group_len.fetch_sub(1, Ordering::Relaxed);
            } else {
                out.push((m.token(), members.limits[i]));
                i += 1;
            }
        }
    }
}
