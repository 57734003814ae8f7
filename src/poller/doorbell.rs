//! The wake-up protocol between a poller and the threads that give it work.
//!
//! A poller blocks in its driver's `wait`. Other threads give it work by pushing onto one
//! of its queues (commands; sessions handed back by workers) and then ringing its
//! [`Doorbell`]. A ring writes the poller's waker (an eventfd: one system call) only if
//! the poller is asleep or about to be, and only the first of several concurrent ringers
//! pays for it. This is the only place the protocol's flags and fences live.
//!
//! # The protocol
//!
//! The poller, every turn:
//!
//! 1. **P1** `sleeping = true`
//! 2. **P2** `fence(SeqCst)`
//! 3. **P3** if a queue holds work: wait with a zero timeout; otherwise block in the
//!    driver (until an event, the waker, or the next timer)
//! 4. **P4** `sleeping = false`, then take everything from the queues.
//!
//! A thread that gives work:
//!
//! 1. **S1** push onto the queue
//! 2. **S2** `fence(SeqCst)`
//! 3. **S3** if `sleeping` and `swap(sleeping, false)` returned `true`: write the waker.
//!
//! **No lost wake-up.** The two SeqCst fences are ordered one way or the other. If S2
//! comes first, the push (S1) is visible to P3's check and the poller does not block. If
//! P2 comes first, `sleeping = true` (P1) is visible to S3, which writes the waker, and a
//! written eventfd makes the wait return. Either way work pushed before P3 is seen by
//! the end of that wait; work pushed after P4 is taken at the top of the turn.
//!
//! # Hand-backs that need no wake-up
//!
//! In Pool dispatch a worker sends the reply itself and hands the session back. The
//! poller usually has nothing to do with it, so the hand-back rings only if
//!
//! * it is *urgent*: the session carries news for the poller (output still queued, a
//!   close, a timer to arm);
//! * the poller *wants it back* ([`want_back`](Doorbell::want_back)): it has news for
//!   that session (input arrived, the peer hung up, a command named it);
//! * the poller wants *every* hand-back ([`want_every_return`](Doorbell::want_every_return)):
//!   it is draining, or has a backlog of jobs to submit as soon as one comes back.
//!
//! Otherwise the hand-back waits in its queue until the poller's next turn, which costs
//! nothing because nothing waits for it. The check is safe for the same reason as S3:
//! `want_back` is a SeqCst read-modify-write made before the poller's P2, and the
//! worker's check comes after its S2; if the worker reads the old count, its push came
//! before the poller's P3 check, which sees it.
//!
//! # Exit
//!
//! A poller leaving its loop calls [`close`](Doorbell::close) and then empties its
//! queues. A sender whose ring finds the doorbell closed ([`Ring::Gone`]) empties the
//! queue itself. Whatever is pushed is taken by one of the two, never left: the closing
//! store and the sender's check are ordered by the same fences as above.
//!
//! The model test (`cargo test --lib doorbell` with `RUSTFLAGS="--cfg loom"`, run by
//! `.ci/run`) checks the no-lost-wake-up and exit properties over every interleaving
//! loom can produce.

#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};

/// What makes a sleeping poller's wait return (its eventfd).
pub(crate) trait Wake {
    fn wake(&self);
}

impl Wake for crate::driver::Waker {
    fn wake(&self) {
        crate::driver::Waker::wake(self)
    }
}

/// What a ring found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ring {
    /// The poller will see the work.
    Heard,
    /// The poller has left its loop: the work will never be taken by it.
    Gone,
}

/// One poller's doorbell (see the module docs for the protocol).
pub(crate) struct Doorbell<W> {
    /// P1/P4: the poller is asleep or about to block.
    sleeping: AtomicBool,
    /// Sessions away on workers that the poller has news for.
    wanted_back: AtomicUsize,
    /// Every hand-back must wake the poller.
    every_return: AtomicBool,
    /// The poller has left its loop.
    exited: AtomicBool,
    waker: W,
}

impl<W: Wake> Doorbell<W> {
    pub(crate) fn new(waker: W) -> Doorbell<W> {
        Doorbell {
            sleeping: AtomicBool::new(false),
            wanted_back: AtomicUsize::new(0),
            every_return: AtomicBool::new(false),
            exited: AtomicBool::new(false),
            waker,
        }
    }

    pub(crate) fn waker(&self) -> &W {
        &self.waker
    }

    /// Poller, P1 and P2: call before checking the queues one last time and blocking.
    pub(crate) fn prepare_to_sleep(&self) {
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Poller, P4: the wait returned.
    pub(crate) fn awake(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Poller: it has news for one more away session, whose hand-back must wake it.
    pub(crate) fn want_back(&self) {
        self.wanted_back.fetch_add(1, Ordering::SeqCst);
    }

    /// Poller: one session it wanted back is back.
    pub(crate) fn got_back(&self) {
        self.wanted_back.fetch_sub(1, Ordering::SeqCst);
    }

    /// Poller: whether every hand-back must wake it (draining, or a backlog to submit).
    pub(crate) fn want_every_return(&self, every: bool) {
        if self.every_return.load(Ordering::Relaxed) != every {
            self.every_return.store(every, Ordering::SeqCst);
        }
    }

    /// Poller: it leaves its loop; rings from now on report [`Ring::Gone`].
    pub(crate) fn close(&self) {
        self.exited.store(true, Ordering::SeqCst);
    }

    /// Sender, S2 and S3: call after pushing work.
    pub(crate) fn ring(&self) -> Ring {
        fence(Ordering::SeqCst);
        if self.exited.load(Ordering::Relaxed) {
            return Ring::Gone;
        }
        self.wake_if_sleeping();
        Ring::Heard
    }

    /// Worker: call after handing a session back; rings only if the poller waits for
    /// it (see the module docs).
    pub(crate) fn ring_for_hand_back(&self, urgent: bool) {
        fence(Ordering::SeqCst);
        if urgent
            || self.every_return.load(Ordering::Relaxed)
            || self.wanted_back.load(Ordering::Relaxed) > 0
        {
            self.wake_if_sleeping();
        }
    }

    fn wake_if_sleeping(&self) {
        // The plain load first keeps an awake poller's cache line shared between
        // senders; only a sleeping one is swapped, and only its first ringer wakes it.
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::AcqRel) {
            self.waker.wake();
        }
    }
}

/// The protocol checked by loom over every interleaving: a queue is modelled by a
/// counter, the waker by a flag that records a write.
#[cfg(all(test, loom))]
mod model {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// Counts waker writes.
    #[derive(Default)]
    struct Flag(AtomicUsize);

    impl Flag {
        fn written(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    impl Wake for Flag {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct Poller {
        bell: Doorbell<Flag>,
        queue: AtomicUsize,
    }

    fn shared() -> Arc<Poller> {
        Arc::new(Poller {
            bell: Doorbell::new(Flag::default()),
            queue: AtomicUsize::new(0),
        })
    }

    /// One poller turn up to its wait: returns whether it found no work, so that only a
    /// waker write (made before or after) can end the wait it enters.
    fn turn(p: &Poller) -> bool {
        p.bell.prepare_to_sleep();
        let blocked = p.queue.load(Ordering::Relaxed) == 0;
        if !blocked {
            p.bell.awake();
        }
        blocked
    }

    #[test]
    fn work_pushed_while_the_poller_goes_to_sleep_always_wakes_it() {
        loom::model(|| {
            let p = shared();
            let sender = {
                let p = p.clone();
                thread::spawn(move || {
                    p.queue.fetch_add(1, Ordering::Relaxed);
                    assert_eq!(p.bell.ring(), Ring::Heard);
                })
            };
            let blocked = turn(&p);
            sender.join().unwrap();
            if blocked {
                // The poller saw no work and is blocked: the sender must have written
                // the waker, or the work would sit there until some unrelated event.
                assert_eq!(
                    p.bell.waker().written(),
                    1,
                    "lost wake-up: work queued, poller asleep, waker never written"
                );
            }
        });
    }

    #[test]
    fn two_senders_wake_a_sleeping_poller_exactly_once() {
        loom::model(|| {
            let p = shared();
            let senders: Vec<_> = (0..2)
                .map(|_| {
                    let p = p.clone();
                    thread::spawn(move || {
                        p.queue.fetch_add(1, Ordering::Relaxed);
                        p.bell.ring();
                    })
                })
                .collect();
            let blocked = turn(&p);
            for s in senders {
                s.join().unwrap();
            }
            if blocked {
                assert_eq!(p.bell.waker().written(), 1, "lost or doubled wake-up");
            } else {
                assert!(
                    p.bell.waker().written() <= 1,
                    "only the first ringer writes"
                );
            }
        });
    }

    #[test]
    fn a_hand_back_the_poller_wants_wakes_it() {
        loom::model(|| {
            let p = shared();
            // The session is away; the poller learns something for it (input arrived)
            // while the worker is finishing.
            let worker = {
                let p = p.clone();
                thread::spawn(move || {
                    p.queue.fetch_add(1, Ordering::Relaxed);
                    p.bell.ring_for_hand_back(false);
                })
            };
            p.bell.want_back();
            let blocked = turn(&p);
            worker.join().unwrap();
            if blocked {
                assert_eq!(
                    p.bell.waker().written(),
                    1,
                    "the poller sleeps with a wanted session handed back"
                );
            }
        });
    }

    #[test]
    fn work_pushed_around_exit_is_taken_by_the_poller_or_its_sender() {
        loom::model(|| {
            let p = shared();
            let taken_by_sender = Arc::new(AtomicUsize::new(0));
            let sender = {
                let p = p.clone();
                let taken = taken_by_sender.clone();
                thread::spawn(move || {
                    p.queue.fetch_add(1, Ordering::Relaxed);
                    if p.bell.ring() == Ring::Gone {
                        // Empty the queue as Remote::push does.
                        taken.fetch_add(p.queue.swap(0, Ordering::SeqCst), Ordering::SeqCst);
                    }
                })
            };
            // The poller exits: close, then empty the queue.
            p.bell.close();
            let taken_by_poller = p.queue.swap(0, Ordering::SeqCst);
            sender.join().unwrap();
            let left = p.queue.load(Ordering::SeqCst);
            assert_eq!(
                taken_by_poller + taken_by_sender.load(Ordering::SeqCst) + left,
                1,
                "every push is accounted for"
            );
            assert_eq!(left, 0, "a push around exit was left in the queue");
        });
    }
}
