//! [`Client`]: one connection of a task server, as the server's user sees it: its
//! tasks, their cancellation, graceful disconnection.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use super::task::{RunData, TaskCode, TaskId};
use super::{Inner, TaskMetrics};
use crate::task::codec::ByteOrder;
use crate::task::CancelToken;
use crate::{Addr, ConnHandle};

/// What the server knows of one assigned task.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskMetadata {
    /// The task id.
    pub id: TaskId,
    /// The task code.
    pub code: TaskCode,
    /// The name the task code was registered with.
    pub name: Arc<str>,
    /// When the TASK arrived.
    pub received: SystemTime,
    /// Payload bytes.
    pub payload_len: usize,
}

pub(crate) struct Entry {
    pub(crate) meta: TaskMetadata,
    /// Assignment order (for `task_codes`).
    pub(crate) seq: u64,
    pub(crate) data: Option<RunData>,
    pub(crate) cancel: CancelToken,
}

pub(crate) struct Tasks {
    pub(crate) map: BTreeMap<TaskId, Entry>,
    next_seq: u64,
}

pub(crate) struct ClientShared {
    pub(crate) seq: u64,
    pub(crate) conn: ConnHandle,
    pub(crate) order: ByteOrder,
    pub(crate) name: String,
    pub(crate) remote: Addr,
    pub(crate) local: Addr,
    pub(crate) timestamp: SystemTime,
    /// The server, weakly: the server's client list holds this client, and a strong
    /// reference back would keep both alive forever.
    server: Weak<Inner>,
    pub(crate) write_timeout: Duration,
    server_metrics: Arc<TaskMetrics>,
    server_span: tracing::Span,
    pub(crate) tasks: Mutex<Tasks>,
    /// When a graceful disconnection closes the connection (the earliest asked).
    pub(crate) disconnect_at: Mutex<Option<(Instant, u8)>>,
    /// The client was dropped for a serious failure, or is gone.
    pub(crate) failed: AtomicBool,
    metrics: Mutex<Option<Arc<TaskMetrics>>>,
    span: Mutex<Option<tracing::Span>>,
    /// Arguments of this client's own ([`TaskServer::handle_connection`](super::TaskServer::handle_connection)).
    args: Mutex<Option<super::Args>>,
}

/// One connection of a [`TaskServer`](super::TaskServer). Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) shared: Arc<ClientShared>,
}

impl Client {
    pub(crate) fn new(
        seq: u64,
        conn: ConnHandle,
        order: ByteOrder,
        name: String,
        (remote, local): (Addr, Addr),
        server: &Arc<Inner>,
    ) -> Client {
        Client {
            shared: Arc::new(ClientShared {
                seq,
                conn,
                order,
                name,
                remote,
                local,
                timestamp: SystemTime::now(),
                server: Arc::downgrade(server),
                write_timeout: server.config.write_timeout,
                server_metrics: server.metrics.clone(),
                server_span: server.span.clone(),
                tasks: Mutex::new(Tasks {
                    map: BTreeMap::new(),
                    next_seq: 0,
                }),
                disconnect_at: Mutex::new(None),
                failed: AtomicBool::new(false),
                metrics: Mutex::new(None),
                span: Mutex::new(None),
                args: Mutex::new(None),
            }),
        }
    }

    pub(crate) fn tasks_lock(&self) -> MutexGuard<'_, Tasks> {
        self.shared.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a task; `false` if its id is taken (PROTOCOL.md §5.4).
    pub(crate) fn assign(
        &self,
        meta: TaskMetadata,
        data: Option<RunData>,
        cancel: CancelToken,
    ) -> bool {
        let mut t = self.tasks_lock();
        if t.map.contains_key(&meta.id) {
            return false;
        }
        let seq = t.next_seq;
        t.next_seq += 1;
        t.map.insert(
            meta.id,
            Entry {
                meta,
                seq,
                data,
                cancel,
            },
        );
        true
    }

    pub(crate) fn has_task(&self, id: TaskId) -> bool {
        self.tasks_lock().map.contains_key(&id)
    }

    /// The task ended: forgets it (its id is free again); whether it was there.
    pub(crate) fn release(&self, id: TaskId) -> bool {
        let gone = self.tasks_lock().map.remove(&id).is_some();
        if gone {
            if let Some(server) = self.shared.server.upgrade() {
                server.task_released();
            }
        }
        gone
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.tasks_lock().map.is_empty()
    }

    /// Cancels the task with id `id`; nothing if there is none or it was cancelled
    /// already.
    pub fn cancel(&self, id: TaskId) {
        if let Some(e) = self.tasks_lock().map.get(&id) {
            e.cancel.cancel();
        }
    }

    /// Cancels every assigned task.
    pub fn cancel_all(&self) {
        for e in self.tasks_lock().map.values() {
            e.cancel.cancel();
        }
    }

    /// Cancels every assigned task because a disconnection's time is up, and, during a
    /// server shutdown, adds the tasks this call cancelled to the shutdown's count. The
    /// count is taken under the task list's lock, so whichever of the client's own
    /// timer and the shutdown cancels a task first counts it, and the other one, which
    /// takes the same lock after it, already sees the count.
    pub(crate) fn cut_off(&self) {
        let tasks = self.tasks_lock();
        let cut = tasks.map.values().filter(|e| e.cancel.cancel()).count();
        if let Some(server) = self.shared.server.upgrade() {
            server.count_cut_off(cut);
        }
    }

    /// The assigned task ids: distinct, ascending.
    pub fn tasks(&self) -> Vec<TaskId> {
        self.tasks_lock().map.keys().copied().collect()
    }

    /// The task codes of the assigned tasks, in the order they were assigned, oldest
    /// first.
    pub fn task_codes(&self) -> Vec<TaskCode> {
        let t = self.tasks_lock();
        let mut by_seq: Vec<(u64, TaskCode)> =
            t.map.values().map(|e| (e.seq, e.meta.code)).collect();
        by_seq.sort_unstable();
        by_seq.into_iter().map(|(_, c)| c).collect()
    }

    /// The assigned task ids with task code `code`: distinct, ascending.
    pub fn tasks_with_task_code(&self, code: TaskCode) -> Vec<TaskId> {
        self.tasks_lock()
            .map
            .values()
            .filter(|e| e.meta.code == code)
            .map(|e| e.meta.id)
            .collect()
    }

    /// What is known of task `id`, if it is assigned.
    pub fn metadata(&self, id: TaskId) -> Option<TaskMetadata> {
        self.tasks_lock().map.get(&id).map(|e| e.meta.clone())
    }

    /// Task `id`'s run data, while its run function runs.
    pub fn run_data(&self, id: TaskId) -> Option<RunData> {
        self.tasks_lock().map.get(&id).and_then(|e| e.data.clone())
    }

    /// Begins a graceful disconnection: the server reads nothing more from the client
    /// now and closes the connection after `d` (sooner once no task is left). Cannot be
    /// undone; a second call keeps the shorter of the two. Does not block.
    pub fn disconnect(&self, d: Duration) {
        self.disconnect_with(d, crate::task::codec::reason::GRACEFUL);
    }

    pub(crate) fn disconnect_with(&self, d: Duration, reason: u8) {
        let at = Instant::now() + d;
        {
            let mut slot = self
                .shared
                .disconnect_at
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match *slot {
                Some((earlier, _)) if earlier <= at => {}
                Some((_, first_reason)) => *slot = Some((at, first_reason)),
                None => *slot = Some((at, reason)),
            }
        }
        let _ = self.shared.conn.wake();
    }

    /// The byte order the client chose.
    pub fn byte_order(&self) -> ByteOrder {
        self.shared.order
    }

    /// The name the client gave in its hello.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The client's address.
    pub fn remote_addr(&self) -> &Addr {
        &self.shared.remote
    }

    /// The server's address of the connection.
    pub fn local_addr(&self) -> &Addr {
        &self.shared.local
    }

    /// When the client connected.
    pub fn timestamp(&self) -> SystemTime {
        self.shared.timestamp
    }

    /// The metrics this client counts into: the server's unless set.
    pub fn metrics(&self) -> Arc<TaskMetrics> {
        self.shared
            .metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| self.shared.server_metrics.clone())
    }

    /// Counts this client's tasks into `metrics` instead of the server's.
    pub fn set_metrics(&self, metrics: Arc<TaskMetrics>) {
        *self
            .shared
            .metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(metrics);
    }

    /// The tracing span this client's events are recorded in: a child of the server's
    /// unless set.
    pub fn span(&self) -> tracing::Span {
        self.shared
            .span
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| {
                tracing::debug_span!(parent: &self.shared.server_span, "task client", client = %self)
            })
    }

    /// Records this client's events in `span` instead.
    pub fn set_span(&self, span: tracing::Span) {
        *self.shared.span.lock().unwrap_or_else(|p| p.into_inner()) = Some(span);
    }
}

impl Client {
    pub(crate) fn set_args(&self, args: super::Args) {
        *self.shared.args.lock().unwrap_or_else(|p| p.into_inner()) = Some(args);
    }

    pub(crate) fn args(&self) -> Option<super::Args> {
        self.shared
            .args
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl fmt::Display for Client {
    /// `remote->local`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{}", self.shared.remote, self.shared.local)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("addr", &format_args!("{self}"))
            .field("name", &self.shared.name)
            .field("order", &self.shared.order)
            .finish_non_exhaustive()
    }
}

impl ClientShared {
    pub(crate) fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
}
