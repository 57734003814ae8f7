//! The broadcast mode's rounds: the bookkeeping of [`Load::Broadcast`](crate::Load),
//! without I/O.
//!
//! The shape is uWebSockets' `broadcast_test`: once every connection has upgraded, each
//! round `senders` connections send one message, the server publishes each message to
//! every connection, and the round ends when every connection has received `senders`
//! messages (`conns × senders` deliveries; with every connection sending, N²). Only then
//! does the next round start, so a delivery always belongs to the round in progress and
//! a connection that receives more than `senders` in one round has been sent something
//! the round did not ask for.
//!
//! A round that does not complete within the stall limit (the server dropped messages
//! for a subscriber over its bound, or a connection was lost mid-round) is abandoned:
//! the engine counts an error and starts the next one, so the run goes on and the report
//! says what happened.

use std::time::{Duration, Instant};

/// What [`Rounds::delivered`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Counted; the round goes on.
    Counted,
    /// That was the round's last delivery: it started at `started`. The caller records
    /// it and, unless the run is over, starts the next round.
    RoundDone {
        /// When the round's messages were sent.
        started: Instant,
    },
    /// The connection received more messages in this round than were sent in it, or a
    /// delivery arrived with no round in progress.
    Unexpected,
}

/// The rounds of one run.
#[derive(Debug)]
pub struct Rounds {
    /// Connections the run opens: the first round waits for all of them.
    conns: usize,
    /// Messages sent per round.
    senders: usize,
    /// Upgraded connections that are still open.
    ready: usize,
    /// Number of the current (or last) round; 0 before the first.
    round: u64,
    /// Start of the round in progress.
    open: Option<Instant>,
    /// Deliveries the round in progress still expects.
    left: u64,
    /// Since when the run has been waiting: for the round in progress, or for the
    /// connections before the first round.
    waiting_since: Instant,
    /// Rounds completed.
    completed: u64,
}

/// A connection's view of the rounds: which round its count is for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    round: u64,
    got: usize,
}

impl Rounds {
    /// No round yet; `senders` connections of `conns` send each round.
    pub fn new(conns: usize, senders: usize, now: Instant) -> Rounds {
        Rounds {
            conns,
            senders,
            ready: 0,
            round: 0,
            open: None,
            left: 0,
            waiting_since: now,
            completed: 0,
        }
    }

    /// A connection has upgraded. Returns whether the first round should start now
    /// (every connection is ready and none has started yet).
    pub fn joined(&mut self) -> bool {
        self.ready += 1;
        self.round == 0 && self.ready >= self.conns
    }

    /// An upgraded connection closed.
    pub fn left(&mut self) {
        self.ready = self.ready.saturating_sub(1);
    }

    /// Starts a round at `now`: every ready connection expects `senders` deliveries.
    /// Returns the messages to send (`senders`).
    pub fn start(&mut self, now: Instant) -> usize {
        self.round += 1;
        self.open = Some(now);
        self.waiting_since = now;
        self.left = (self.ready * self.senders) as u64;
        self.senders
    }

    /// `n` deliveries arrived on the connection whose tally is `tally`.
    pub fn delivered(&mut self, tally: &mut Tally, n: usize) -> Delivered {
        let Some(started) = self.open else {
            return Delivered::Unexpected;
        };
        if tally.round != self.round {
            *tally = Tally {
                round: self.round,
                got: 0,
            };
        }
        tally.got += n;
        if tally.got > self.senders || n as u64 > self.left {
            return Delivered::Unexpected;
        }
        self.left -= n as u64;
        if self.left > 0 {
            return Delivered::Counted;
        }
        self.open = None;
        self.completed += 1;
        Delivered::RoundDone { started }
    }

    /// Whether the run has waited longer than `limit` at `now`: for the round in
    /// progress to complete, or (before the first round) for the connections to upgrade,
    /// with at least one ready. Returns the deliveries still missing (0 before the first
    /// round); the caller counts an error and starts a new round.
    pub fn stalled(&self, now: Instant, limit: Duration) -> Option<u64> {
        let waiting = self.open.is_some() || (self.round == 0 && self.ready > 0);
        (waiting && now.saturating_duration_since(self.waiting_since) > limit).then_some(self.left)
    }

    /// Rounds completed.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Whether a round is in progress.
    pub fn in_progress(&self) -> bool {
        self.open.is_some()
    }

    /// Deliveries the round in progress still expects (0 if none is).
    pub fn missing(&self) -> u64 {
        if self.open.is_some() {
            self.left
        } else {
            0
        }
    }

    /// Upgraded connections still open.
    pub fn ready(&self) -> usize {
        self.ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_round_waits_for_every_connection_then_ends_at_n_squared() {
        let t0 = Instant::now();
        let mut r = Rounds::new(3, 3, t0);
        assert!(!r.joined());
        assert!(!r.joined());
        assert!(r.joined());
        assert_eq!(r.start(t0), 3);
        let mut tallies = [Tally::default(); 3];
        for (i, t) in tallies.iter_mut().enumerate() {
            assert_eq!(r.delivered(t, 2), Delivered::Counted, "conn {i}");
        }
        assert_eq!(r.delivered(&mut tallies[0], 1), Delivered::Counted);
        assert_eq!(r.delivered(&mut tallies[1], 1), Delivered::Counted);
        assert_eq!(r.missing(), 1);
        assert_eq!(
            r.delivered(&mut tallies[2], 1),
            Delivered::RoundDone { started: t0 }
        );
        assert_eq!((r.completed(), r.in_progress()), (1, false));
        // A delivery between rounds was not asked for.
        assert_eq!(r.delivered(&mut tallies[0], 1), Delivered::Unexpected);
        // The next round: the tallies start again.
        r.start(t0);
        assert_eq!(r.delivered(&mut tallies[0], 3), Delivered::Counted);
    }

    #[test]
    fn more_deliveries_than_senders_is_unexpected() {
        let t0 = Instant::now();
        let mut r = Rounds::new(4, 2, t0);
        for _ in 0..4 {
            r.joined();
        }
        assert_eq!(r.start(t0), 2);
        assert_eq!(r.missing(), 8);
        let mut t = Tally::default();
        assert_eq!(r.delivered(&mut t, 2), Delivered::Counted);
        assert_eq!(r.delivered(&mut t, 1), Delivered::Unexpected);
    }

    #[test]
    fn stalls_are_reported_after_the_limit() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut r = Rounds::new(2, 2, t0);
        // Nobody ready: nothing to restart.
        assert_eq!(r.stalled(t0 + s(10), s(5)), None);
        r.joined();
        assert_eq!(r.stalled(t0 + s(4), s(5)), None);
        assert_eq!(r.stalled(t0 + s(6), s(5)), Some(0));
        r.start(t0 + s(6));
        let mut t = Tally::default();
        r.delivered(&mut t, 1);
        assert_eq!(r.stalled(t0 + s(12), s(5)), Some(1));
        r.left();
        assert_eq!(r.ready(), 0);
    }
}
