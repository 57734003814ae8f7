//! # netloop
//!
//! A library for latency-sensitive network servers and clients on a per-core event
//! loop, on Linux.
//!
//! Each **poller** thread owns an I/O driver (epoll, or io_uring), a slab of
//! connections, a pool of read buffers and a timer wheel. Listeners accept connections
//! and a [`Balance`] policy hands each one to a poller, which owns it for its whole
//! life; a [`Dialer`] opens outbound connections on the same pollers without blocking.
//! When a socket is readable the poller reads once into the connection's input buffer
//! (level-triggered, so data left unread is reported again on the next turn) and runs
//! the [`Handler`]: on the poller itself ([`Dispatch::Inline`]) or on a worker thread
//! ([`Dispatch::Pool`]), never twice at once for the same connection. The handler reads
//! its input without copying ([`Input::next`] returns [`bytes::Bytes`],
//! [`Input::next_mut`] a buffer to transform in place), writes output (also without
//! copying, with [`Output::write_bytes`]), and the output is sent with one gathered
//! write. Other threads send, wake or close through a [`ConnHandle`]; a [`ConnGroup`]
//! sends one message to many connections for one command per poller.
//! [`ServerHandle::shutdown`] stops gracefully.
//!
//! Between the socket and the handler sits the connection's **transport**: plain TCP by
//! default (no copy, no indirection), or a [`transport::Transport`] such as TLS, which
//! decodes what arrives, encodes everything that leaves (whoever sent it) and completes
//! its handshake before `on_connect`. A connection can **switch protocols** in place
//! ([`Conn::switch_to`]; HTTP's upgrade hook uses it), keeping its buffered bytes.
//!
//! The default backend is [`Backend::Epoll`]. With [`Backend::IoUring`] (or
//! [`Backend::Auto`], or `NETLOOP_BACKEND=io_uring`) each poller owns an io_uring
//! instead: connections are accepted by a multishot operation, small messages are read
//! by multishot receives into a ring of provided buffers (copied into the same input
//! buffers), streams are polled and read straight into their input buffers, dials
//! connect with a connect
//! operation, and with inline dispatch a loop turn's sends and its wait are one system
//! call. The contracts are the same.
//!
//! ## Quick start
//!
//! ```no_run
//! use std::time::Duration;
//! use netloop::{handler_fn, Server};
//!
//! fn main() -> Result<(), netloop::Error> {
//!     let server = Server::builder()
//!         .listen("127.0.0.1:7000")
//!         .serve(handler_fn(|conn| {
//!             // Echo: hand the input back without copying it.
//!             let n = conn.input().len();
//!             let data = conn.input().next(n);
//!             conn.output().write_bytes(data);
//!         }))?;
//!     netloop::signal::stop_on_signals(server.stopper(), Duration::from_secs(5))?;
//!     let report = server.wait();
//!     println!("{report:?}");
//!     Ok(())
//! }
//! ```
//!
//! A client runtime is the same thing without listeners:
//!
//! ```no_run
//! # use std::time::Duration;
//! # use netloop::{handler_fn, Server};
//! let runtime = Server::builder().pollers(1).start()?;
//! let conn = runtime.dialer().dial("localhost:7000", handler_fn(|conn| {
//!     let n = conn.input().len();
//!     conn.input().skip(n);
//! }))?;
//! conn.wait_open(Duration::from_secs(5))?;
//! # Ok::<(), netloop::Error>(())
//! ```
//!
//! ## A connection's life, and its callbacks
//!
//! A connection moves through *connecting* (dialed, not connected yet), *handshaking*
//! (its transport's handshake; plain TCP passes at once), *opening* (`on_connect` runs),
//! *open*, and then *draining* (closing gracefully: nothing new runs, the output is
//! sent) or *closing* (closing at once). Each state and every transition is in one table
//! (`src/poller/state.rs`), unit-tested.
//!
//! | Connection state | Callback | Runs on | Notes |
//! |---|---|---|---|
//! | accepted, not yet registered | [`on_prepare`](Handler::on_prepare) | accepting poller | may reject (`false`): nothing else runs for it |
//! | dialed, could not connect | [`on_connect_failed`](Handler::on_connect_failed) | owning poller | the only callback such a connection gets |
//! | open (transport ready) | [`on_connect`](Handler::on_connect) | poller / worker | creates the state; may write or close |
//! | input buffered | [`on_request`](Handler::on_request) | poller / worker | one at a time per connection, in order; called again while it makes progress |
//! | a timer expired | [`on_timer`](Handler::on_timer) | poller / worker | with the [`TimerKey`] that fired; like `on_request` |
//! | [`ConnHandle::wake`] was called | [`on_wake`](Handler::on_wake) | poller / worker | like `on_request`; wakes that come together run once |
//! | output fell back below half its mark | [`on_drain`](Handler::on_drain) | poller / worker | like `on_request` |
//! | peer hung up, connection still open | [`on_disconnect`](Handler::on_disconnect) | owning poller | may overlap a running callback (Pool mode), which sees [`Conn::is_active`] `== false` |
//! | socket closed | [`on_close`](Handler::on_close) | poller / worker | exactly once, last, with the [`CloseReason`] |
//!
//! Order: `on_prepare → on_connect → (on_request | on_timer | on_wake | on_drain)* →
//! [on_disconnect] → on_close`. Dialed connections skip `on_prepare`, and one that never
//! connects gets `on_connect_failed` alone. A connection whose `on_connect` panicked gets
//! no `on_close` (there is no state to hand back). After [`Conn::switch_to`] the new
//! handler gets every later callback; the old one's state is dropped without `on_close`.
//!
//! ## Rules a handler can rely on
//!
//! * **One in flight**: at most one callback per connection at any instant, in arrival
//!   order, in both dispatch modes. Data that arrives meanwhile is buffered and triggers
//!   the next call.
//! * **No spin**: a call that consumes nothing (an incomplete frame) is not repeated
//!   until new bytes arrive or the amount declared with [`Input::want`] is buffered; a
//!   `want` above [`Builder::max_want`] closes the connection
//!   ([`CloseReason::InputLimit`]), so a declared length cannot make it buffer without
//!   bound.
//! * **Zero-copy, safely**: [`Bytes`] taken from the input stay valid after
//!   the handler returns; the buffer they point into is never reused while they live.
//! * **Backpressure**: past the input high-water mark the poller stops reading the
//!   connection until the handler consumes it down to the low-water mark; past the
//!   output high-water mark no new request runs for it, [`ConnHandle::send`] refuses
//!   with [`Error::Full`], and [`Handler::on_drain`] says when there is room again.
//! * **Timeouts are real**: read (request incomplete), write (output not draining),
//!   idle (no traffic), handshake and connect timeouts come from a per-poller timer
//!   wheel and close with their own [`CloseReason`]; TCP keepalive is a separate option
//!   ([`Builder::tcp_keepalive`]). [`Conn::set_timer`] arms timers of the handler's own.
//! * **Everything goes through the transport**: what the handler writes, what other
//!   threads send, what a group sends.
//! * **Failures stay local**: a panicking callback closes its own connection
//!   ([`CloseReason::Panic`]) and is counted; running out of file descriptors pauses
//!   accepting briefly while existing connections keep being served.
//!
//! ## Observability
//!
//! Every connection has a `tracing` span `conn{id, peer, poller}`; opening, closing (with
//! the reason) and errors are events inside it. [`ServerHandle::stats`] returns counters.
//!
//! ## Features
//!
//! * `http` (default): `netloop::http`, the HTTP/1.1 layer. Without it (and `ws`) only
//!   the core is built.
//! * `ws` (default, turns on `http`): `netloop::ws`, the WebSocket server
//!   with permessage-deflate, its broadcast hub, and the reconnecting client engine
//!   (`netloop::ws::client`).
//! * `task` (default): `netloop::task`, the async task protocol (`PROTOCOL.md`).
//! * `redis` (turns on `ws`): `netloop::ws::hub::redis`, a bridge carrying a
//!   broadcast hub's publishes between servers through Redis pub/sub.
//!
//! [`netloop::testing`](crate::testing) is always there: it drives a handler with no
//! socket or poller, for unit tests of a protocol layer and for fuzzing one.
#![deny(missing_docs)]
#![warn(rust_2018_idioms, unreachable_pub)]

mod addr;
mod backend;
mod buf;
mod clock;
mod conn;
mod dial;
mod dispatch;
mod driver;
mod error;
mod handler;
#[cfg(feature = "http")]
pub mod http;
mod poller;
mod reason;
pub mod restart;
mod server;
mod session;
pub mod signal;
mod stats;
mod sys;
#[cfg(feature = "task")]
pub mod task;
pub mod testing;
mod timer;
#[cfg(feature = "tls")]
pub mod tls;
pub mod transport;
#[cfg(any(feature = "ws", feature = "task"))]
mod workers;
#[cfg(feature = "ws")]
pub mod ws;

pub use addr::{Addr, AddrParseError};
pub use backend::{Backend, BACKEND_ENV};
pub use conn::{Conn, ConnGroup, ConnHandle, GroupStats, Input, Output, Overflow, TimerKey};
pub use dial::{Dialer, IntoTarget, Target};
pub use dispatch::Dispatch;
pub use error::Error;
pub use handler::{handler_fn, ConnInfo, FnHandler, Handler};
pub use poller::Balance;
pub use reason::CloseReason;
pub use server::{Builder, IntoAddr, Server, ServerHandle, StatsSource, Stopper};
pub use stats::{ClosedStats, PollerStats, ShutdownReport, Stats};

pub use bytes::{Bytes, BytesMut};

/// The README's examples, compiled as doctests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
