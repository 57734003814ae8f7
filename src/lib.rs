//! # netloop
//!
//! A library for latency-sensitive network servers on a per-core event loop.
//!
//! Each **poller** thread owns an epoll instance, a slab of connections and a pool of
//! read buffers. Listeners accept connections and a [`Balance`] policy hands each one to
//! a poller, which owns it for its whole life. When a socket is readable the poller
//! reads once into the connection's input buffer (level-triggered, so data left unread
//! is reported again on the next turn) and runs the [`Handler`]: on the poller itself
//! ([`Dispatch::Inline`]) or on a worker thread ([`Dispatch::Pool`]), never twice at
//! once for the same connection. The handler reads its input without copying
//! ([`Input::next`] returns [`bytes::Bytes`]), writes output (also without copying, with
//! [`Output::write_bytes`]), and the output is sent with one gathered `sendmsg`. Other
//! threads send through a [`ConnHandle`]. [`ServerHandle::shutdown`] stops gracefully.
//!
//! That describes the default [`Backend::Epoll`]. With [`Backend::IoUring`] (or
//! [`Backend::Auto`], or `NETLOOP_BACKEND=io_uring`) each poller owns an io_uring
//! instead: connections are accepted and read by multishot operations into a ring of
//! provided buffers (copied into the same input buffers), and with inline dispatch a
//! loop turn's sends and its wait are one system call. The contracts are the same.
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
//! ## Callback order
//!
//! | Connection state | Callback | Runs on | Notes |
//! |---|---|---|---|
//! | accepted, not yet registered | [`on_prepare`](Handler::on_prepare) | accepting poller | may reject (`false`): nothing else runs for it |
//! | registered with its poller | [`on_connect`](Handler::on_connect) | poller / worker | creates the state; may write or close |
//! | input buffered | [`on_request`](Handler::on_request) | poller / worker | one at a time per connection, in order; called again while it makes progress |
//! | peer hung up, connection still open | [`on_disconnect`](Handler::on_disconnect) | owning poller | may overlap a running `on_request` (Pool mode); that call sees [`Conn::is_active`] `== false` |
//! | socket closed | [`on_close`](Handler::on_close) | poller / worker | exactly once, last, with the [`CloseReason`] |
//!
//! Order: `on_prepare → on_connect → on_request* → [on_disconnect] → on_close`.
//! Dialed connections ([`ServerHandle::dial`]) skip `on_prepare`. A connection whose
//! `on_connect` panicked gets no `on_close` (there is no state to hand back).
//!
//! ## Rules a handler can rely on
//!
//! * **One in flight**: at most one callback per connection at any instant, in arrival
//!   order, in both dispatch modes. Data that arrives meanwhile is buffered and triggers
//!   the next call.
//! * **No spin**: a call that consumes nothing (an incomplete frame) is not repeated
//!   until new bytes arrive or the amount declared with [`Input::want`] is buffered.
//! * **Zero-copy, safely**: [`Bytes`] taken from the input stay valid after
//!   the handler returns; the buffer they point into is never reused while they live.
//! * **Backpressure**: past the input high-water mark the poller stops reading the
//!   connection until the handler consumes it down to the low-water mark; past the
//!   output high-water mark no new request runs for it and [`ConnHandle::send`] refuses
//!   with [`Error::Full`].
//! * **Timeouts are real**: read (request incomplete), write (output not draining) and
//!   idle (no traffic) timeouts come from a per-poller timer wheel and close with their
//!   own [`CloseReason`]; TCP keepalive is a separate option
//!   ([`Builder::tcp_keepalive`]). [`Conn::set_timer`] arms a timer of the handler's own.
//! * **Failures stay local**: a panicking callback closes its own connection
//!   ([`CloseReason::Panic`]) and is counted; running out of file descriptors pauses
//!   accepting briefly while existing connections keep being served.
//!
//! ## Observability
//!
//! Every connection has a `tracing` span `conn{id, peer, poller}`; opening, closing (with
//! the reason) and errors are events inside it. [`ServerHandle::stats`] returns counters.
#![deny(missing_docs)]
#![warn(rust_2018_idioms, unreachable_pub)]

mod addr;
mod backend;
mod buf;
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
mod server;
mod session;
pub mod signal;
mod stats;
mod sys;
mod timer;
pub mod transport;

pub use addr::{Addr, AddrParseError};
pub use backend::{Backend, BACKEND_ENV};
pub use conn::{Conn, ConnGroup, ConnHandle, Input, Output, Overflow, TimerKey};
pub use dial::{Dialer, IntoTarget, Target};
pub use dispatch::Dispatch;
pub use error::Error;
pub use handler::{handler_fn, ConnInfo, FnHandler, Handler};
pub use poller::Balance;
pub use reason::CloseReason;
pub use server::{Builder, IntoAddr, Server, ServerHandle, Stopper};
pub use stats::{ClosedStats, PollerStats, ShutdownReport, Stats};

pub use bytes::{Bytes, BytesMut};

/// The README's examples, compiled as doctests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
