//! The transport seam: what sits between a connection's socket and its
//! [`Input`](crate::Input)/[`Output`].
//!
//! Plain TCP is the built-in transport: bytes are read straight into the input buffer
//! and the output queue is sent as it is, with no copy and no call through this trait.
//! A [`Transport`] (TLS is the one netloop will ship) sits in between: the driver reads
//! the socket's bytes into a wire buffer, the transport decodes them into plaintext input
//! for the handler, and encodes the handler's output into a wire queue that the driver
//! sends. Handlers do not change: they see plaintext `Input` and write plaintext
//! `Output`. Everything that leaves a connection goes through its transport: what the
//! handler writes, what other threads send with [`ConnHandle::send`](crate::ConnHandle::send),
//! fan-out through a [`ConnGroup`](crate::ConnGroup).
//!
//! A transport with a handshake reports [`is_ready`](Transport::is_ready) `false` until
//! it is done: until then the connection is in its *handshaking* state, bytes are read
//! and decoded (the transport answers through the wire queue) but no handler callback
//! runs, bounded by [`Builder::handshake_timeout`](crate::Builder::handshake_timeout).
//! `on_connect` runs once it is ready.
//!
//! A transport runs on whichever thread holds the connection: its poller, or in
//! [`Dispatch::Pool`](crate::Dispatch::Pool) mode the worker that runs the handler
//! (which encodes and writes the reply itself). Bytes read while the handler is away are
//! decoded when it comes back, in order.
//!
//! ```
//! use std::io;
//! use netloop::transport::Transport;
//! use netloop::{BytesMut, Output};
//!
//! /// Flips every bit on the wire: the smallest transport that changes the bytes.
//! struct Invert;
//!
//! impl Transport for Invert {
//!     fn decode(&mut self, wire: &mut BytesMut, plain: &mut BytesMut, _reply: &mut Output) -> io::Result<()> {
//!         plain.extend(wire.iter().map(|b| !b));
//!         wire.clear();
//!         Ok(())
//!     }
//!
//!     fn encode(&mut self, plain: &mut Output, wire: &mut Output) -> io::Result<()> {
//!         while let Some(segment) = plain.pop_front() {
//!             let inverted: Vec<u8> = segment.iter().map(|b| !b).collect();
//!             wire.write(&inverted);
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let server = netloop::Server::builder()
//!     .listen("127.0.0.1:0")
//!     .transport(|_info: &netloop::ConnInfo| Ok(Box::new(Invert) as Box<dyn Transport>));
//! # let _ = server;
//! ```

use std::any::Any;
use std::io;
use std::sync::Arc;

use bytes::BytesMut;

use crate::{ConnInfo, Output};

/// Encodes and decodes one connection's bytes between the socket and the handler.
///
/// Calls are made by the thread holding the connection, never two at once.
pub trait Transport: Send + 'static {
    /// Bytes arrived from the peer: `wire` holds them (after whatever an earlier call
    /// left in it). Append the plaintext they carry to `plain` and consume from `wire`
    /// what was used; leave an incomplete record there for the next call. Anything the
    /// protocol must send by itself (handshake messages, alerts) goes into `reply`.
    ///
    /// # Errors
    /// The peer's bytes are not valid for the protocol: the connection sends what is in
    /// `reply` and closes with [`CloseReason::Error`](crate::CloseReason::Error) and the
    /// error's kind.
    fn decode(
        &mut self,
        wire: &mut BytesMut,
        plain: &mut BytesMut,
        reply: &mut Output,
    ) -> io::Result<()>;

    /// Encodes the handler's output: take what is queued in `plain` (all of it, or as
    /// much as the protocol can frame now) and queue its encoding in `wire`.
    ///
    /// # Errors
    /// The output cannot be encoded: the connection closes with the error's kind.
    fn encode(&mut self, plain: &mut Output, wire: &mut Output) -> io::Result<()>;

    /// The connection is established (accepted, or a dial connected): queue what this
    /// side sends first, if anything (a TLS client's `ClientHello`). Called once, before
    /// any other call. Default: nothing.
    fn start(&mut self, wire: &mut Output) {
        let _ = wire;
    }

    /// Whether the handshake is done. Until it is, no handler callback runs. Default:
    /// ready at once.
    fn is_ready(&self) -> bool {
        true
    }

    /// The connection is closing gracefully (or shutting down its write side): queue
    /// any closing message (TLS's `close_notify`). Called at most once. Default: nothing.
    fn close(&mut self, wire: &mut Output) {
        let _ = wire;
    }

    /// Whether the peer ended its side inside the protocol (TLS's `close_notify`):
    /// the connection then treats it as end-of-file, stops reading, sends what is
    /// queued and closes with [`CloseReason::PeerClosed`](crate::CloseReason::PeerClosed).
    /// Default: never.
    fn peer_closed(&self) -> bool {
        false
    }

    /// What the transport negotiated, for handlers to inspect through
    /// [`Conn::transport_info`](crate::Conn::transport_info) (TLS gives a
    /// `netloop::tls::TlsInfo` once its handshake is done). Default: nothing.
    fn info(&self) -> Option<&dyn Any> {
        None
    }
}

/// Makes the [`Transport`] of each new connection: given to
/// [`Builder::transport`](crate::Builder::transport) and
/// [`Dialer::transport`](crate::Dialer::transport). An error refuses the connection
/// (accepted ones are closed at once, dialed ones fail with it).
pub type TransportFactory =
    Arc<dyn Fn(&ConnInfo) -> io::Result<Box<dyn Transport>> + Send + Sync + 'static>;

/// The transports of a server's accepted connections: `Ok(None)` is plain TCP (a
/// listener without TLS on a server where others have it).
pub(crate) type ListenerTransports =
    Arc<dyn Fn(&ConnInfo) -> io::Result<Option<Box<dyn Transport>>> + Send + Sync + 'static>;
