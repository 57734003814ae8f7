//! [`TlsTransport`]: rustls as a [`Transport`], one per connection.

use std::any::Any;
use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use rustls::pki_types::ServerName;

use super::TlsInfo;
use crate::transport::Transport;
use crate::Output;

/// One connection's TLS session, server or client side, as a
/// [`Transport`]: the poller feeds it the socket's bytes and sends what it encodes;
/// the handler reads and writes plaintext.
///
/// Servers get one per accepted connection from [`Builder::tls`](crate::Builder::tls),
/// dials from [`Dialer::tls`](crate::Dialer::tls); it can also be made directly for a
/// [`Builder::transport`](crate::Builder::transport) that picks per connection.
pub struct TlsTransport {
    session: rustls::Connection,
    /// Filled in once the handshake is done.
    info: Option<TlsInfo>,
    /// The peer sent `close_notify`.
    peer_closed: bool,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport")
            .field("handshaking", &self.session.is_handshaking())
            .field("info", &self.info)
            .field("peer_closed", &self.peer_closed)
            .finish()
    }
}

impl TlsTransport {
    /// The server side of a connection, with `config`'s certificates.
    ///
    /// # Errors
    /// rustls refuses the config (no protocol version its provider supports).
    pub fn server(config: Arc<rustls::ServerConfig>) -> io::Result<TlsTransport> {
        let session = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(TlsTransport::new(session.into()))
    }

    /// The client side of a connection to `server_name`, which the server's certificate
    /// must be valid for (a DNS name or an IP address).
    ///
    /// # Errors
    /// rustls refuses the config.
    pub fn client(
        config: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
    ) -> io::Result<TlsTransport> {
        let session =
            rustls::ClientConnection::new(config, server_name).map_err(io::Error::other)?;
        Ok(TlsTransport::new(session.into()))
    }

    fn new(mut session: rustls::Connection) -> TlsTransport {
        // The connection's own output mark bounds what is queued; rustls' second limit
        // would only make `encode` loop.
        session.set_buffer_limit(None);
        TlsTransport {
            session,
            info: None,
            peer_closed: false,
        }
    }

    /// What was negotiated, once the handshake is done.
    pub fn tls_info(&self) -> Option<&TlsInfo> {
        self.info.as_ref()
    }

    /// Moves every TLS record rustls has ready into `wire`.
    fn flush_records(&mut self, wire: &mut Output) -> io::Result<()> {
        let mut sink = OutputSink(wire);
        while self.session.wants_write() {
            self.session.write_tls(&mut sink)?;
        }
        Ok(())
    }

    /// Takes the plaintext rustls decrypted (it tells how much) into `plain`.
    fn take_plaintext(&mut self, mut available: usize, plain: &mut BytesMut) -> io::Result<()> {
        while available > 0 {
            let start = plain.len();
            plain.resize(start + available, 0);
            match self.session.reader().read(&mut plain[start..]) {
                Ok(n) => {
                    plain.truncate(start + n);
                    if n == 0 {
                        break;
                    }
                    available -= n;
                }
                Err(e) => {
                    plain.truncate(start);
                    if e.kind() == io::ErrorKind::WouldBlock {
                        break;
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn note_handshake_done(&mut self) {
        if self.info.is_none() && !self.session.is_handshaking() {
            self.info = Some(TlsInfo::of(&self.session));
        }
    }
}

impl Transport for TlsTransport {
    fn start(&mut self, wire: &mut Output) {
        // A client's ClientHello; a server has nothing to say first. Writing to an
        // `Output` cannot fail.
        let _ = self.flush_records(wire);
    }

    fn decode(
        &mut self,
        wire: &mut BytesMut,
        plain: &mut BytesMut,
        reply: &mut Output,
    ) -> io::Result<()> {
        while !wire.is_empty() && !self.peer_closed {
            let mut src: &[u8] = wire;
            let taken = match self.session.read_tls(&mut src) {
                Ok(n) => n,
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("TLS record: {e}"),
                    ))
                }
            };
            wire.advance(taken);
            match self.session.process_new_packets() {
                Ok(state) => {
                    self.take_plaintext(state.plaintext_bytes_to_read(), plain)?;
                    if state.peer_has_closed() {
                        self.peer_closed = true;
                    }
                }
                Err(e) => {
                    // The alert rustls queued for the peer goes out before the close.
                    let _ = self.flush_records(reply);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
            if taken == 0 {
                break;
            }
        }
        if self.peer_closed {
            // Records after close_notify are not read (RFC 8446 §6.1).
            wire.clear();
        }
        self.note_handshake_done();
        self.flush_records(reply)
    }

    fn encode(&mut self, plain: &mut Output, wire: &mut Output) -> io::Result<()> {
        while let Some(segment) = plain.pop_front() {
            // No buffer limit is set, so rustls takes every byte.
            self.session.writer().write_all(&segment)?;
            self.flush_records(wire)?;
        }
        Ok(())
    }

    fn is_ready(&self) -> bool {
        !self.session.is_handshaking()
    }

    fn close(&mut self, wire: &mut Output) {
        self.session.send_close_notify();
        let _ = self.flush_records(wire);
    }

    fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    fn info(&self) -> Option<&dyn Any> {
        self.info.as_ref().map(|i| i as &dyn Any)
    }
}

/// `io::Write` into an [`Output`], for rustls' `write_tls`.
struct OutputSink<'a>(&'a mut Output);

impl Write for OutputSink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.write(data);
        Ok(data.len())
    }

    fn write_vectored(&mut self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let total = parts.iter().map(|p| p.len()).sum();
        self.0.reserve(total);
        for part in parts {
            self.0.write(part);
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
