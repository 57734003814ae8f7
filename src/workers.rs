//! A fixed set of worker threads taking jobs from one queue, for the protocol layers'
//! own work off the pollers: the WebSocket client's message workers (engines with
//! `workers(n)` above 1) and the task server's run functions. It grows on demand
//! ([`Pool::grow_to`]) and joins its threads when dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

type Job = Box<dyn FnOnce() + Send>;

struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// A fixed set of threads taking jobs from one queue.
pub(crate) struct Pool {
    name: &'static str,
    shared: Arc<Shared>,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
}

impl Pool {
    /// A pool of `threads` threads (at least one), named `{name}-{i}`.
    pub(crate) fn new(name: &'static str, threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
        });
        let pool = Pool {
            name,
            shared,
            threads: Mutex::new(Vec::new()),
        };
        pool.grow_to(threads.max(1));
        pool
    }

    /// Adds threads until there are `n`.
    pub(crate) fn grow_to(&self, n: usize) {
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        while threads.len() < n {
            let shared = self.shared.clone();
            let t = thread::Builder::new()
                .name(format!("{}-{}", self.name, threads.len()))
                .spawn(move || run(&shared))
                .expect("spawning a message worker");
            threads.push(t);
        }
    }

    pub(crate) fn execute(&self, job: Job) {
        let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.jobs.push_back(job);
        drop(q);
        self.shared.ready.notify_one();
    }
}

fn run(shared: &Shared) {
    loop {
        let job = {
            let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(job) = q.jobs.pop_front() {
                    break job;
                }
                if q.closed {
                    return;
                }
                q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        job();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed = true;
        self.shared.ready.notify_all();
        let me = thread::current().id();
        let threads = std::mem::take(self.threads.get_mut().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            // The last engine can be dropped by a worker itself; it must not join itself.
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}
