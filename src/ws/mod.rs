//! WebSocket (RFC 6455, with permessage-deflate from RFC 7692), on netloop's event loop.
//!
//! A [`WsHandler`] gets whole messages as zero-copy [`Bytes`](crate::Bytes) (text as [`Text`], its
//! UTF-8 checked as it arrives), writes messages through a [`WsConn`], and sends from
//! any thread through a [`WsHandle`]. Around that, the layer does what most applications
//! would otherwise write themselves:
//!
//! * **The closing handshake**: [`WsConn::close`] sends a Close frame and waits for the
//!   peer's, up to [`Config::close_timeout`]; a peer's Close is answered; data after a
//!   Close is ignored; [`WsHandler::on_close`] runs exactly once with the code, the
//!   reason and how it ended ([`Closed`]).
//! * **Liveness**: pings every [`Config::ping_interval`], and a peer that does not
//!   answer within [`Config::pong_timeout`] is closed ([`Cause::PongTimeout`]); on by
//!   default, overridable per connection.
//! * **Sends from any thread**, never interleaved, bounded per connection by
//!   [`Config::max_backpressure`] with the [`Backpressure`] policy the application picks:
//!   drop (counted, [`WsHandler::on_dropped`]), close, or wait.
//! * **Limits** on frames and messages, checked against the declared length before
//!   anything is buffered (close code 1009).
//!
//! The handshake is an HTTP upgrade: [`upgrade`] makes the hook for
//! [`Http::on_upgrade`](crate::http::Http::on_upgrade) (WebSocket beside an HTTP
//! service), [`server`] a handler that serves WebSocket only.
//!
//! ```no_run
//! use netloop::ws::{self, Message, WsConn, WsHandler};
//!
//! /// Echoes every message back.
//! struct Echo;
//!
//! impl WsHandler for Echo {
//!     type State = ();
//!     fn on_open(&self, _ws: &mut WsConn<'_>, _req: &netloop::http::Request) {}
//!     fn on_message(&self, _: &mut (), ws: &mut WsConn<'_>, msg: Message) {
//!         ws.send(msg);
//!     }
//! }
//!
//! let server = netloop::Server::builder()
//!     .listen("127.0.0.1:9001")
//!     .serve(ws::server(Echo, ws::Config::default()))?;
//! server.wait();
//! # Ok::<(), netloop::Error>(())
//! ```
//!
//! The codec lives in files of its own, with no I/O, each tested (and fuzzed) alone:
//! [`frame`] (headers), [`mask`], [`utf8`], [`close`] (codes and payloads), [`codec`]
//! (frames to messages and back), [`deflate`], [`handshake`].
//!
//! Timer keys from `0xFF00` up are this layer's (pings, pongs, the close timeout);
//! handlers use the keys below ([`WsConn::set_timer`]).

pub mod client;
pub mod close;
pub mod codec;
mod config;
pub mod deflate;
pub mod frame;
mod handle;
pub mod handshake;
pub mod hub;
pub mod mask;
mod message;
mod server;
pub mod utf8;

pub use config::{Backpressure, Config};
pub use deflate::{DeflateConfig, DeflateParams};
pub use handle::{SendError, WsHandle};
pub use message::{Message, Text};
pub use server::{server, upgrade, Cause, Closed, NotWebSocket, WsConn, WsHandler};
