//! [`TlsTransport`]: rustls as a [`Transport`], one per connection.
//!
//! It drives rustls' *unbuffered* connections: rustls reads records straight out of the
//! connection's own wire buffer and encrypts straight into its wire output, so nothing
//! is copied into or out of buffers of rustls' own, and an idle connection holds no
//! buffer at all (the wire buffer goes back to the poller's pool). The price is that
//! this module runs rustls' state machine itself: the loop in
//! [`Session::take_records`] is its transition table.

use std::any::Any;
use std::cell::RefCell;
use std::io;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::pki_types::ServerName;
use rustls::server::UnbufferedServerConnection;
use rustls::server::{ClientHello, ResolvesServerCert, ServerConnectionData};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, UnbufferedStatus,
};

use super::TlsInfo;
use crate::transport::Transport;
use crate::Output;

/// Makes the server side of TLS connections from one `rustls::ServerConfig`; what
/// [`Builder::tls`](crate::Builder::tls) uses, and what a
/// [`Builder::transport`](crate::Builder::transport) that decides per connection can
/// use too.
#[derive(Debug, Clone)]
pub struct TlsAcceptor {
    config: Arc<rustls::ServerConfig>,
}

impl TlsAcceptor {
    /// An acceptor presenting `config`'s certificates. The config is copied once, with
    /// its certificate resolver wrapped so that each connection learns the server name
    /// its client asked for ([`TlsInfo::server_name`]), and with 0-RTT early data off
    /// (it could be replayed, and handlers could not tell).
    pub fn new(config: impl Into<Arc<rustls::ServerConfig>>) -> TlsAcceptor {
        let mut config = Arc::unwrap_or_clone(config.into());
        config.cert_resolver = Arc::new(NoteServerName(config.cert_resolver.clone()));
        // 0-RTT data can be replayed by anyone who saw it; handlers get no way to tell it
        // apart, so it is not accepted.
        config.max_early_data_size = 0;
        TlsAcceptor {
            config: Arc::new(config),
        }
    }

    /// The server side of one new connection.
    ///
    /// # Errors
    /// rustls refuses the config (no protocol version its provider supports).
    pub fn accept(&self) -> io::Result<TlsTransport> {
        let conn =
            UnbufferedServerConnection::new(self.config.clone()).map_err(io::Error::other)?;
        Ok(TlsTransport {
            side: Side::Server(Session::new(conn)),
        })
    }
}

/// One connection's TLS session, server or client side, as a [`Transport`]: the poller
/// feeds it the socket's bytes and sends what it encodes; the handler reads and writes
/// plaintext.
///
/// Servers get one per accepted connection from a [`TlsAcceptor`] (which
/// [`Builder::tls`](crate::Builder::tls) makes), dials from
/// [`Dialer::tls`](crate::Dialer::tls) or [`TlsTransport::client`].
pub struct TlsTransport {
    side: Side,
}

enum Side {
    Server(Session<UnbufferedServerConnection>),
    Client(Session<UnbufferedClientConnection>),
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (side, info, closed) = match &self.side {
            Side::Server(s) => ("server", &s.info, s.peer_closed),
            Side::Client(s) => ("client", &s.info, s.peer_closed),
        };
        f.debug_struct("TlsTransport")
            .field("side", &side)
            .field("info", info)
            .field("peer_closed", &closed)
            .finish()
    }
}

impl TlsTransport {
    /// The client side of a connection to `server_name`, which the server's certificate
    /// must be valid for (a DNS name or an IP address).
    ///
    /// # Errors
    /// rustls refuses the config.
    pub fn client(
        config: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
    ) -> io::Result<TlsTransport> {
        let conn =
            UnbufferedClientConnection::new(config, server_name).map_err(io::Error::other)?;
        Ok(TlsTransport {
            side: Side::Client(Session::new(conn)),
        })
    }

    /// What was negotiated, once the handshake is done.
    pub fn tls_info(&self) -> Option<&TlsInfo> {
        match &self.side {
            Side::Server(s) => s.info.as_ref(),
            Side::Client(s) => s.info.as_ref(),
        }
    }
}

/// Calls `$body` with the session of either side bound to `$s`.
macro_rules! each_side {
    ($side:expr, $s:ident => $body:expr) => {
        match $side {
            Side::Server($s) => $body,
            Side::Client($s) => $body,
        }
    };
}

impl Transport for TlsTransport {
    fn start(&mut self, wire: &mut Output) {
        // A client's ClientHello; a server has nothing to say first.
        let mut none = BytesMut::new();
        if let Err(e) = each_side!(&mut self.side, s => s.take_records(&mut none, wire)) {
            tracing::debug!(error = %e, "TLS session cannot start");
        }
    }

    fn decode(
        &mut self,
        wire: &mut BytesMut,
        plain: &mut BytesMut,
        reply: &mut Output,
    ) -> io::Result<()> {
        each_side!(&mut self.side, s => s.decode(wire, plain, reply))
    }

    fn encode(&mut self, plain: &mut Output, wire: &mut Output) -> io::Result<()> {
        each_side!(&mut self.side, s => s.encode(plain, wire))
    }

    fn is_ready(&self) -> bool {
        each_side!(&self.side, s => !s.conn.state().is_handshaking())
    }

    fn close(&mut self, wire: &mut Output) {
        each_side!(&mut self.side, s => s.close(wire))
    }

    fn peer_closed(&self) -> bool {
        each_side!(&self.side, s => s.peer_closed)
    }

    fn info(&self) -> Option<&dyn Any> {
        self.tls_info().map(|i| i as &dyn Any)
    }
}

/// The two unbuffered rustls connections, for one record loop.
trait Records: Send + 'static {
    type Data;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
    fn state(&self) -> &rustls::CommonState;
    /// The server name the client asked for, if this side is a server that just saw a
    /// ClientHello.
    fn take_server_name(&mut self) -> Option<Option<String>> {
        None
    }
}

impl Records for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ServerConnectionData> {
        self.process_tls_records(incoming)
    }
    fn state(&self) -> &rustls::CommonState {
        self
    }
    fn take_server_name(&mut self) -> Option<Option<String>> {
        SERVER_NAME.with(|s| s.borrow_mut().take())
    }
}

impl Records for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ClientConnectionData> {
        self.process_tls_records(incoming)
    }
    fn state(&self) -> &rustls::CommonState {
        self
    }
}

/// One side's session and the records it has not consumed yet.
struct Session<C> {
    conn: C,
    /// Wire bytes not yet consumed (an incomplete record), kept here because rustls'
    /// bookkeeping points into them; empty between reads in the usual case, when the
    /// buffer itself goes back to the link.
    incoming: BytesMut,
    /// The peer sent `close_notify`.
    peer_closed: bool,
    /// Filled in once the handshake is done.
    info: Option<TlsInfo>,
    /// What the client asked for (SNI), on a server.
    server_name: Option<String>,
    /// rustls failed (bad records, a certificate that does not verify): the session is
    /// over, and nothing more goes through rustls.
    failed: bool,
}

impl<C: Records> Session<C> {
    fn new(conn: C) -> Session<C> {
        Session {
            conn,
            incoming: BytesMut::new(),
            peer_closed: false,
            info: None,
            server_name: None,
            failed: false,
        }
    }

    fn decode(
        &mut self,
        wire: &mut BytesMut,
        plain: &mut BytesMut,
        reply: &mut Output,
    ) -> io::Result<()> {
        // Takes the wire buffer itself when nothing is left over (no copy).
        if self.incoming.is_empty() {
            std::mem::swap(&mut self.incoming, wire);
        } else {
            self.incoming.extend_from_slice(wire);
            wire.clear();
        }
        let mut incoming = std::mem::take(&mut self.incoming);
        let result = self.take_records_into(&mut incoming, plain, reply);
        if self.peer_closed {
            // Records after close_notify are not read (RFC 8446 §6.1).
            incoming.clear();
        }
        if incoming.is_empty() {
            // The empty buffer goes back to the link, which pools it while idle.
            *wire = incoming;
        } else {
            self.incoming = incoming;
        }
        if self.info.is_none() && !self.conn.state().is_handshaking() {
            self.info = Some(TlsInfo::of(self.conn.state(), self.server_name.take()));
        }
        result
    }

    /// Runs rustls over `incoming` with no plaintext expected (start, alerts).
    fn take_records(&mut self, incoming: &mut BytesMut, out: &mut Output) -> io::Result<()> {
        let mut plain = BytesMut::new();
        self.take_records_into(incoming, &mut plain, out)
    }

    /// The record loop: hands rustls the incoming bytes and does what each state asks
    /// until it needs more bytes (or may send application data), plaintext going to
    /// `plain` and rustls' own messages (handshake, alerts, tickets) to `out`.
    fn take_records_into(
        &mut self,
        incoming: &mut BytesMut,
        plain: &mut BytesMut,
        out: &mut Output,
    ) -> io::Result<()> {
        if self.failed {
            return Err(failed());
        }
        loop {
            let status = self.conn.process(&mut incoming[..]);
            let discard = status.discard;
            let step = match status.state {
                Err(e) => Err(e),
                Ok(ConnectionState::ReadTraffic(mut records)) => loop {
                    match records.next_record() {
                        Some(Ok(record)) => plain.extend_from_slice(record.payload),
                        Some(Err(e)) => break Err(e),
                        None => break Ok(true),
                    }
                },
                // TlsAcceptor turns 0-RTT off, so no early data comes.
                Ok(ConnectionState::ReadEarlyData(_)) => Err(rustls::Error::General(
                    "0-RTT early data, which is not accepted".into(),
                )),
                Ok(ConnectionState::EncodeTlsData(mut message)) => {
                    write_message(out, &mut message)?;
                    Ok(true)
                }
                Ok(ConnectionState::TransmitTlsData(sent)) => {
                    // `out` is sent by the poller once this call returns.
                    sent.done();
                    Ok(true)
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    Ok(true)
                }
                Ok(ConnectionState::Closed) => {
                    self.peer_closed = true;
                    Ok(false)
                }
                // More bytes are needed, or the handshake is done and nothing is left to
                // read.
                Ok(ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_)) => {
                    Ok(false)
                }
                Ok(_) => Ok(false),
            };
            incoming.advance(discard);
            if let Some(name) = self.conn.take_server_name() {
                self.server_name = name;
            }
            match step {
                Ok(true) => continue,
                Ok(false) => return Ok(()),
                Err(e) => {
                    self.failed = true;
                    self.send_alerts(incoming, out);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
        }
    }

    /// After an error: the alert rustls queued goes out before the close. Only what is
    /// queued is taken (rustls hands out queued messages before it looks at the input
    /// again, and the input is what failed).
    fn send_alerts(&mut self, incoming: &mut BytesMut, out: &mut Output) {
        while self.conn.state().wants_write() {
            let status = self.conn.process(&mut incoming[..]);
            let Ok(ConnectionState::EncodeTlsData(mut message)) = status.state else {
                return;
            };
            if write_message(out, &mut message).is_err() {
                return;
            }
        }
    }

    /// Encrypts what the handler queued straight into `wire`.
    fn encode(&mut self, plain: &mut Output, wire: &mut Output) -> io::Result<()> {
        if plain.is_empty() {
            return Ok(());
        }
        if self.failed {
            return Err(failed());
        }
        loop {
            let status = self.conn.process(&mut self.incoming[..]);
            let discard = status.discard;
            let again = match status.state {
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    SCRATCH.with(|scratch| -> io::Result<()> {
                        let mut scratch = scratch.borrow_mut();
                        while let Some(segment) = plain.pop_front() {
                            // Small segments (a frame header, then its payload) go into one
                            // record rather than one each: gathered in a scratch buffer of
                            // the thread's, up to a record's worth.
                            let data: &[u8] = if segment.len() < COALESCE
                                && plain
                                    .front_len()
                                    .is_some_and(|n| segment.len() + n <= RECORD)
                            {
                                scratch.clear();
                                scratch.extend_from_slice(&segment);
                                while plain
                                    .front_len()
                                    .is_some_and(|n| scratch.len() + n <= RECORD)
                                {
                                    if let Some(next) = plain.pop_front() {
                                        scratch.extend_from_slice(&next);
                                    }
                                }
                                &scratch
                            } else {
                                &segment
                            };
                            write_sized(wire, sealed_len(data.len()), |buf| {
                                traffic.encrypt(data, buf).map_err(room)
                            })?;
                        }
                        Ok(())
                    })?;
                    false
                }
                Ok(ConnectionState::EncodeTlsData(mut message)) => {
                    write_message(wire, &mut message)?;
                    true
                }
                Ok(ConnectionState::TransmitTlsData(sent)) => {
                    sent.done();
                    true
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    true
                }
                Ok(ConnectionState::Closed) => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "TLS session closed both ways",
                    ))
                }
                Ok(ConnectionState::BlockedHandshake) => false,
                Ok(_) => {
                    return Err(io::Error::other(
                        "TLS: plaintext arrived that was not taken before encoding",
                    ))
                }
                Err(e) => {
                    self.failed = true;
                    return Err(io::Error::other(e));
                }
            };
            self.incoming.advance(discard);
            if !again {
                return Ok(());
            }
        }
    }

    /// Queues `close_notify` (once the handshake is done; a session closing before
    /// that has nothing to protect and just closes).
    fn close(&mut self, wire: &mut Output) {
        if self.failed {
            return;
        }
        loop {
            let status = self.conn.process(&mut self.incoming[..]);
            let discard = status.discard;
            let again = match status.state {
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    let _ = write_sized(wire, 64, |buf| {
                        traffic.queue_close_notify(buf).map_err(room)
                    });
                    false
                }
                Ok(ConnectionState::EncodeTlsData(mut message)) => {
                    write_message(wire, &mut message).is_ok()
                }
                Ok(ConnectionState::TransmitTlsData(sent)) => {
                    sent.done();
                    true
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    true
                }
                _ => false,
            };
            self.incoming.advance(discard);
            if !again {
                return;
            }
        }
    }
}

/// Writes a message rustls has ready (a handshake message, an alert, a ticket) into
/// `out`.
fn write_message<D>(out: &mut Output, message: &mut EncodeTlsData<'_, D>) -> io::Result<()> {
    write_sized(out, 0, |buf| {
        message.encode(buf).map_err(|e| match e {
            EncodeError::InsufficientSize(e) => Some(e.required_size),
            _ => None,
        })
    })
}

/// The room an encryption asked for, for [`write_sized`] (`None`: it failed otherwise).
fn room(e: EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(e) => Some(e.required_size),
        _ => None,
    }
}

/// The error of every call after rustls failed.
fn failed() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "the TLS session failed earlier")
}

/// Room for `len` plaintext bytes once sealed: a record header, content type and tag per
/// 16 KiB record (generous: rustls asks for more if it needs it).
fn sealed_len(len: usize) -> usize {
    len + (len / 16_384 + 1) * 64
}

/// Lets `fill` write into `out`'s tail buffer, first with room for `hint` bytes, then
/// with as much as it says it needs (`Err(Some(n))`); `Err(None)` is a failure.
fn write_sized(
    out: &mut Output,
    hint: usize,
    mut fill: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
) -> io::Result<()> {
    let tail = out.buf_mut();
    let start = tail.len();
    let mut room = hint;
    for _ in 0..3 {
        tail.resize(start + room, 0);
        match fill(&mut tail[start..]) {
            Ok(n) => {
                tail.truncate(start + n);
                return Ok(());
            }
            Err(Some(needed)) if needed > room => room = needed,
            Err(_) => break,
        }
    }
    tail.truncate(start);
    Err(io::Error::other("TLS: a record could not be written"))
}

/// A TLS record's most plaintext (RFC 8446 §5.1), and so the most the scratch buffer
/// below holds.
const RECORD: usize = 16_384;
/// Segments shorter than this are gathered with those after them into one record.
const COALESCE: usize = 4096;

thread_local! {
    /// Where small output segments are gathered before they are encrypted as one record.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };

    /// The server name (SNI) of the ClientHello the resolver below saw last on this
    /// thread: rustls' unbuffered server connection does not report it, but it resolves
    /// the certificate inside `process_tls_records`, on the thread that called it, which
    /// takes it from here right after.
    static SERVER_NAME: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

/// A certificate resolver that notes the server name each ClientHello asks for.
#[derive(Debug)]
struct NoteServerName(Arc<dyn ResolvesServerCert>);

impl ResolvesServerCert for NoteServerName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let name = hello.server_name().map(str::to_owned);
        SERVER_NAME.with(|s| *s.borrow_mut() = Some(name));
        self.0.resolve(hello)
    }

    fn only_raw_public_keys(&self) -> bool {
        self.0.only_raw_public_keys()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// A server transport and rustls' own buffered client, joined in memory.
    fn pair() -> (TlsTransport, rustls::ClientConnection) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        let server = rustls::ServerConfig::builder_with_provider(super::super::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![made.cert.der().clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(made.cert.der().clone()).unwrap();
        let client = super::super::client_config(roots);
        let mut client = rustls::ClientConnection::new(
            Arc::new(client),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        client.set_buffer_limit(None);
        (TlsAcceptor::new(server).accept().unwrap(), client)
    }

    fn drain(out: &mut Output) -> Vec<u8> {
        std::iter::from_fn(|| out.pop_front()).flatten().collect()
    }

    /// Feeds `bytes` to the server `piece` bytes at a time, as reads would.
    fn feed(
        server: &mut TlsTransport,
        bytes: &[u8],
        piece: usize,
        plain: &mut BytesMut,
    ) -> Vec<u8> {
        let (mut wire, mut reply) = (BytesMut::new(), Output::new());
        for chunk in bytes.chunks(piece) {
            wire.extend_from_slice(chunk);
            server.decode(&mut wire, plain, &mut reply).unwrap();
        }
        drain(&mut reply)
    }

    /// Gives the client `bytes`; the plaintext they carried.
    fn to_client(client: &mut rustls::ClientConnection, mut bytes: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        while !bytes.is_empty() {
            client.read_tls(&mut bytes).unwrap();
            let state = client.process_new_packets().unwrap();
            let mut more = vec![0u8; state.plaintext_bytes_to_read()];
            client.reader().read_exact(&mut more).unwrap();
            plain.extend_from_slice(&more);
        }
        plain
    }

    fn from_client(client: &mut rustls::ClientConnection) -> Vec<u8> {
        let mut out = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut out).unwrap();
        }
        out
    }

    #[test]
    fn records_split_anywhere_decode_the_same_and_the_server_name_is_seen() {
        for piece in [1, 7, 100, 100_000] {
            let (mut server, mut client) = pair();
            let mut plain = BytesMut::new();
            while client.is_handshaking() || !server.is_ready() {
                let hello = from_client(&mut client);
                let reply = feed(&mut server, &hello, piece, &mut plain);
                to_client(&mut client, &reply);
            }
            assert_eq!(
                server.tls_info().unwrap().server_name.as_deref(),
                Some("localhost")
            );
            let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
            client.writer().write_all(&data).unwrap();
            let records = from_client(&mut client);
            feed(&mut server, &records, piece, &mut plain);
            assert!(
                plain[..] == data[..],
                "piece {piece}: the plaintext differs"
            );

            // And back: encrypted straight into the wire queue.
            let (mut out, mut wire) = (Output::new(), Output::new());
            out.write(&data);
            server.encode(&mut out, &mut wire).unwrap();
            assert!(out.is_empty());
            let got = to_client(&mut client, &drain(&mut wire));
            assert!(got == data, "piece {piece}: the echo differs");
            // Many small segments (gathered into records) and a large one, in order.
            let mut out = Output::new();
            for chunk in data.chunks(100 + piece % 50) {
                out.write_bytes(bytes::Bytes::copy_from_slice(chunk));
            }
            out.write_bytes(bytes::Bytes::from(data.clone()));
            server.encode(&mut out, &mut wire).unwrap();
            let got = to_client(&mut client, &drain(&mut wire));
            assert!(
                got.len() == 2 * data.len(),
                "piece {piece}: {} bytes",
                got.len()
            );
            assert!(got[..data.len()] == data[..] && got[data.len()..] == data[..]);

            client.send_close_notify();
            let bye = from_client(&mut client);
            feed(&mut server, &bye, piece, &mut plain);
            assert!(server.peer_closed());
            let mut wire = Output::new();
            server.close(&mut wire);
            assert!(to_client(&mut client, &drain(&mut wire)).is_empty());
            let mut rest = Vec::new();
            assert_eq!(
                client.reader().read_to_end(&mut rest).unwrap(),
                0,
                "close_notify came back"
            );
        }
    }
}
