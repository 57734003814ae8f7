//! A connection's life as explicit states, and the transition table.
//!
//! A connection is in one [`Phase`]. Besides the phase, a few orthogonal facts are
//! stored, each once, each written by its owner (see `slot.rs` and `conn/`): whether the
//! handler is home or away on a worker, whether reading is open, paused or ended,
//! whether a send is waiting for room or in flight, what the handler asked for. After
//! anything happens to a connection, [`Poller::advance`](super::Poller::advance) gathers
//! the facts into [`Facts`] and asks [`next`] what to do, until the answer is
//! [`Step::Wait`]. `next` is a pure function: the table below is all of it, and the unit
//! tests at the end of this file check it row by row.
//!
//! # States
//!
//! | phase | the connection | reads | writes | handler callbacks |
//! |---|---|---|---|---|
//! | `Connecting` | dialed; waiting to start, or its non-blocking connect is in flight | – | – | none |
//! | `Handshaking` | connected; its transport's handshake is not done (plain TCP passes at once) | yes | transport's own | none |
//! | `Opening` | `on_connect` is due or running | yes | yes | `on_connect` |
//! | `Open` | serving | yes | yes | `on_request`, `on_timer`, `on_wake`, `on_drain` |
//! | `Draining(r)` | closing gracefully: nothing new runs, the output is sent, then it closes with `r` | – | yes | the one running finishes |
//! | `Closing(r)` | closing at once with `r`: closes as soon as the handler is home, unsent output dropped | – | – | the one running finishes |
//!
//! Closed connections leave the slab: `on_close` runs (or, for a dial that never
//! connected, `on_connect_failed`).
//!
//! # Transitions decided by [`next`] (for a connection whose handler is home)
//!
//! First matching row wins.
//!
//! | phase | when | step |
//! |---|---|---|
//! | any | writing failed (`write_error`) | `Close(Error)`, or `Close(r)` if already `Closing(r)` |
//! | `Connecting` | a close was asked for | `Abandon` (the dial fails) |
//! | `Connecting` | otherwise | `Wait` (the connect's outcome moves it, see below) |
//! | `Handshaking` | the transport rejected the peer's bytes | `Become(Draining(Error))` |
//! | `Handshaking` | a close was asked for / the server drains / the peer hung up | `Become(Closing(Local / Shutdown / PeerClosed))` |
//! | `Handshaking` | the transport is ready | `Become(Opening)` |
//! | `Opening` | always | `Run(Connect)` |
//! | `Open` | the transport rejected the peer's bytes | `Become(Draining(Error))` |
//! | `Open` | a close was asked for | `Become(Draining(Local))` |
//! | `Open` | a `want` above the limit was refused | `Become(Draining(InputLimit))` |
//! | `Open` | the server drains | `Become(Draining(Shutdown))` |
//! | `Open` | a handler timer is due | `Run(Timer(key))` |
//! | `Open` | a wake is pending | `Run(Wake)` |
//! | `Open` | a drain notification is owed | `Run(Drain)` |
//! | `Open` | input is ready and the output is below its mark | `Run(Requests)` |
//! | `Open` | the write side was asked shut and the output is sent | `ShutWrite` |
//! | `Open` | the peer hung up and the output is sent | `Become(Draining(PeerClosed))` |
//! | `Draining(r)` | the output is sent | `Close(r)` |
//! | `Closing(r)` | always | `Close(r)` |
//! | otherwise | | `Wait` |
//!
//! # Transitions made by events (outside [`next`])
//!
//! | event | from | to |
//! |---|---|---|
//! | accepted, or connected | – / `Connecting` | `Handshaking` |
//! | `on_connect` returned | `Opening` | `Open` |
//! | connect failed, connect timeout, shutdown | `Connecting` | gone (`on_connect_failed`) |
//! | handshake timeout | `Handshaking` | `Closing(HandshakeTimeout)` |
//! | read error or reset, read/write/idle timeout, handler panic, fan-out overflow (close policy) | any but `Closing` | `Closing(reason)` ([`Phase::abort`]) |
//! | shutdown deadline | any | `Closing(ShutdownForced)` |
//!
//! A connection closes only from a phase with its handler home; a close decided while it
//! is away takes effect when it comes back, and the poller asks for it back at once
//! (see `doorbell.rs`).

use std::io;

use crate::dispatch::Call;
use crate::{CloseReason, TimerKey};

/// Where a connection is in its life (see the module docs for the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Connecting,
    Handshaking,
    Opening,
    Open,
    Draining(CloseReason),
    Closing(CloseReason),
}

impl Phase {
    /// An abortive close was decided: the first abortive reason stands.
    pub(crate) fn abort(self, reason: CloseReason) -> Phase {
        match self {
            Phase::Closing(first) => Phase::Closing(first),
            _ => Phase::Closing(reason),
        }
    }

    /// Whether the connection reads its socket in this phase.
    pub(crate) fn reads(self) -> bool {
        matches!(self, Phase::Handshaking | Phase::Opening | Phase::Open)
    }

    /// Whether the connection writes its socket in this phase.
    pub(crate) fn writes(self) -> bool {
        !matches!(self, Phase::Connecting | Phase::Closing(_))
    }
}

/// What [`next`] looks at: the facts about a connection whose handler is home.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Facts {
    /// Writing (or encoding for) the socket failed.
    pub(crate) write_error: Option<io::ErrorKind>,
    /// The transport could not decode the peer's bytes.
    pub(crate) decode_error: Option<io::ErrorKind>,
    /// The transport's handshake is done.
    pub(crate) transport_ready: bool,
    /// The handler or a handle asked for a close.
    pub(crate) close_requested: bool,
    /// A `want` above the limit was refused.
    pub(crate) input_over_limit: bool,
    /// The server is shutting down gracefully.
    pub(crate) server_draining: bool,
    /// The peer hung up (end-of-file or reset).
    pub(crate) peer_closed: bool,
    /// Bytes are queued and not yet on the wire (or a send of them is in flight).
    pub(crate) output_pending: bool,
    /// The queued output is at or above the output high-water mark.
    pub(crate) output_over_mark: bool,
    /// The handler has input to be called for.
    pub(crate) input_ready: bool,
    /// The first handler timer that expired and has not run.
    pub(crate) timer_due: Option<TimerKey>,
    /// [`ConnHandle::wake`](crate::ConnHandle::wake) is pending.
    pub(crate) wake_requested: bool,
    /// `on_drain` is owed: the output was at its mark (or a send was refused) and is now
    /// below half of it.
    pub(crate) drain_due: bool,
    /// The handler asked to shut the write side.
    pub(crate) shutdown_write_requested: bool,
}

/// What to do next with a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing until something happens.
    Wait,
    /// Move to this phase and decide again.
    Become(Phase),
    /// Run this callback (then decide again).
    Run(Call),
    /// Shut the socket's write side, then decide again.
    ShutWrite,
    /// Close the socket and run `on_close` with this reason.
    Close(CloseReason),
    /// Give up a dial that has not connected (`on_connect_failed`).
    Abandon,
}

/// The transition table (see the module docs).
pub(crate) fn next(phase: Phase, f: &Facts) -> Step {
    use CloseReason as R;
    use Phase as P;
    if let Some(kind) = f.write_error {
        return match phase {
            P::Closing(r) => Step::Close(r),
            _ => Step::Close(R::Error(kind)),
        };
    }
    match phase {
        P::Connecting if f.close_requested => Step::Abandon,
        P::Connecting => Step::Wait,
        P::Handshaking => {
            if let Some(kind) = f.decode_error {
                Step::Become(P::Draining(R::Error(kind)))
            } else if f.close_requested {
                Step::Become(P::Closing(R::Local))
            } else if f.server_draining {
                Step::Become(P::Closing(R::Shutdown))
            } else if f.peer_closed {
                Step::Become(P::Closing(R::PeerClosed))
            } else if f.transport_ready {
                Step::Become(P::Opening)
            } else {
                Step::Wait
            }
        }
        P::Opening => Step::Run(Call::Connect),
        P::Open => {
            if let Some(kind) = f.decode_error {
                Step::Become(P::Draining(R::Error(kind)))
            } else if f.close_requested {
                Step::Become(P::Draining(R::Local))
            } else if f.input_over_limit {
                Step::Become(P::Draining(R::InputLimit))
            } else if f.server_draining {
                Step::Become(P::Draining(R::Shutdown))
            } else if let Some(key) = f.timer_due {
                Step::Run(Call::Timer(key))
            } else if f.wake_requested {
                Step::Run(Call::Wake)
            } else if f.drain_due {
                Step::Run(Call::Drain)
            } else if f.input_ready && !f.output_over_mark {
                // Above the output mark no new request runs: its reply would only queue
                // up. Input then fills to its own mark and reading stops, so a peer that
                // sends without reading is held to both marks.
                Step::Run(Call::Requests)
            } else if f.shutdown_write_requested && !f.output_pending {
                Step::ShutWrite
            } else if f.peer_closed && !f.output_pending {
                Step::Become(P::Draining(R::PeerClosed))
            } else {
                Step::Wait
            }
        }
        P::Draining(r) if !f.output_pending => Step::Close(r),
        P::Draining(_) => Step::Wait,
        P::Closing(r) => Step::Close(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CloseReason as R;
    use Phase as P;

    fn facts() -> Facts {
        Facts {
            transport_ready: true,
            ..Facts::default()
        }
    }

    /// Every phase, for rows that apply to all of them.
    const ALL: [Phase; 6] = [
        P::Connecting,
        P::Handshaking,
        P::Opening,
        P::Open,
        P::Draining(R::Local),
        P::Closing(R::IdleTimeout),
    ];

    #[test]
    fn a_write_error_closes_from_any_phase_keeping_an_earlier_abortive_reason() {
        let f = Facts {
            write_error: Some(io::ErrorKind::BrokenPipe),
            ..facts()
        };
        for phase in ALL {
            let want = match phase {
                P::Closing(r) => Step::Close(r),
                _ => Step::Close(R::Error(io::ErrorKind::BrokenPipe)),
            };
            assert_eq!(next(phase, &f), want, "{phase:?}");
        }
    }

    #[test]
    fn connecting_waits_for_its_outcome_and_a_close_abandons_it() {
        assert_eq!(next(P::Connecting, &facts()), Step::Wait);
        let with_input = Facts {
            input_ready: true,
            output_pending: true,
            server_draining: true,
            ..facts()
        };
        assert_eq!(next(P::Connecting, &with_input), Step::Wait);
        let close = Facts {
            close_requested: true,
            ..facts()
        };
        assert_eq!(next(P::Connecting, &close), Step::Abandon);
    }

    #[test]
    fn handshaking_opens_when_the_transport_is_ready_and_not_before() {
        let waiting = Facts {
            transport_ready: false,
            input_ready: true,
            ..facts()
        };
        assert_eq!(next(P::Handshaking, &waiting), Step::Wait);
        assert_eq!(next(P::Handshaking, &facts()), Step::Become(P::Opening));
    }

    #[test]
    fn handshaking_ends_on_a_bad_peer_a_close_a_drain_or_a_hang_up() {
        let cases = [
            (
                Facts {
                    decode_error: Some(io::ErrorKind::InvalidData),
                    ..facts()
                },
                P::Draining(R::Error(io::ErrorKind::InvalidData)),
            ),
            (
                Facts {
                    close_requested: true,
                    ..facts()
                },
                P::Closing(R::Local),
            ),
            (
                Facts {
                    server_draining: true,
                    ..facts()
                },
                P::Closing(R::Shutdown),
            ),
            (
                Facts {
                    peer_closed: true,
                    ..facts()
                },
                P::Closing(R::PeerClosed),
            ),
        ];
        for (f, to) in cases {
            assert_eq!(next(P::Handshaking, &f), Step::Become(to), "{f:?}");
        }
    }

    #[test]
    fn opening_runs_on_connect() {
        assert_eq!(next(P::Opening, &facts()), Step::Run(Call::Connect));
    }

    #[test]
    fn open_rows_in_priority_order() {
        // Each case sets its own condition and every lower-priority one, so the row
        // that wins is the one under test.
        let lower = Facts {
            input_ready: true,
            timer_due: Some(TimerKey(2)),
            wake_requested: true,
            drain_due: true,
            peer_closed: true,
            ..facts()
        };
        let cases: [(Facts, Step); 9] = [
            (
                Facts {
                    decode_error: Some(io::ErrorKind::InvalidData),
                    close_requested: true,
                    ..lower
                },
                Step::Become(P::Draining(R::Error(io::ErrorKind::InvalidData))),
            ),
            (
                Facts {
                    close_requested: true,
                    input_over_limit: true,
                    server_draining: true,
                    ..lower
                },
                Step::Become(P::Draining(R::Local)),
            ),
            (
                Facts {
                    input_over_limit: true,
                    server_draining: true,
                    ..lower
                },
                Step::Become(P::Draining(R::InputLimit)),
            ),
            (
                Facts {
                    server_draining: true,
                    ..lower
                },
                Step::Become(P::Draining(R::Shutdown)),
            ),
            (lower, Step::Run(Call::Timer(TimerKey(2)))),
            (
                Facts {
                    timer_due: None,
                    ..lower
                },
                Step::Run(Call::Wake),
            ),
            (
                Facts {
                    timer_due: None,
                    wake_requested: false,
                    ..lower
                },
                Step::Run(Call::Drain),
            ),
            (
                Facts {
                    timer_due: None,
                    wake_requested: false,
                    drain_due: false,
                    ..lower
                },
                Step::Run(Call::Requests),
            ),
            (
                Facts {
                    timer_due: None,
                    wake_requested: false,
                    drain_due: false,
                    input_ready: false,
                    ..lower
                },
                Step::Become(P::Draining(R::PeerClosed)),
            ),
        ];
        for (f, want) in cases {
            assert_eq!(next(P::Open, &f), want, "{f:?}");
        }
    }

    #[test]
    fn above_the_output_mark_no_request_runs_and_a_hung_up_peer_waits_for_its_output() {
        let f = Facts {
            input_ready: true,
            output_over_mark: true,
            output_pending: true,
            peer_closed: true,
            ..facts()
        };
        assert_eq!(next(P::Open, &f), Step::Wait);
        let below = Facts {
            output_over_mark: false,
            ..f
        };
        assert_eq!(next(P::Open, &below), Step::Run(Call::Requests));
    }

    #[test]
    fn the_write_side_shuts_once_the_output_is_sent() {
        let f = Facts {
            shutdown_write_requested: true,
            output_pending: true,
            ..facts()
        };
        assert_eq!(next(P::Open, &f), Step::Wait);
        let sent = Facts {
            output_pending: false,
            ..f
        };
        assert_eq!(next(P::Open, &sent), Step::ShutWrite);
    }

    #[test]
    fn an_idle_open_connection_waits() {
        assert_eq!(next(P::Open, &facts()), Step::Wait);
    }

    #[test]
    fn draining_closes_once_the_output_is_sent_and_closing_closes_at_once() {
        let pending = Facts {
            output_pending: true,
            input_ready: true,
            ..facts()
        };
        assert_eq!(next(P::Draining(R::Shutdown), &pending), Step::Wait);
        assert_eq!(
            next(P::Draining(R::Shutdown), &facts()),
            Step::Close(R::Shutdown)
        );
        assert_eq!(
            next(P::Closing(R::ReadTimeout), &pending),
            Step::Close(R::ReadTimeout)
        );
    }

    #[test]
    fn abort_keeps_the_first_abortive_reason_and_overrides_a_graceful_one() {
        assert_eq!(P::Open.abort(R::ReadTimeout), P::Closing(R::ReadTimeout));
        assert_eq!(P::Draining(R::Local).abort(R::Panic), P::Closing(R::Panic));
        assert_eq!(
            P::Closing(R::WriteTimeout).abort(R::Panic),
            P::Closing(R::WriteTimeout)
        );
    }

    #[test]
    fn phases_say_whether_they_read_and_write() {
        let reads: Vec<bool> = ALL.iter().map(|p| p.reads()).collect();
        assert_eq!(reads, [false, true, true, true, false, false]);
        let writes: Vec<bool> = ALL.iter().map(|p| p.writes()).collect();
        assert_eq!(writes, [false, true, true, true, true, false]);
    }
}
