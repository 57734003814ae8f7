//! A connection's link to its socket: the transport (plain TCP, or a
//! [`Transport`](crate::transport::Transport) layered over it), who writes the socket,
//! and how the wire failed, if it did.
//!
//! The link is the seam between "the bytes the handler produced" (the connection's
//! [`Output`]) and "the thing that puts bytes on the wire". Plain TCP costs nothing: the
//! driver reads straight into the input buffer and sends the output queue as it is. A
//! layered transport gets a wire buffer on each side: reads land in `wire_in` and are
//! decoded into the input; the output is encoded into `wire_out`, which is what is sent.

use std::io;
use std::os::fd::RawFd;

use bytes::BytesMut;

use super::{Input, Output};
use crate::sys;
use crate::transport::Transport;

/// Where a connection's bytes go between its socket and its handler.
pub(crate) struct Link {
    fd: RawFd,
    /// Whoever holds the connection writes its socket at once (epoll, and any backend in
    /// Pool dispatch); otherwise the poller's driver sends after each callback.
    direct: bool,
    layer: Option<Box<Layer>>,
    /// The first error writing the socket (or encoding for it): nothing more can be
    /// sent, the connection closes with it.
    pub(crate) write_error: Option<io::ErrorKind>,
    /// The transport could not decode the peer's bytes: what it queued in reply is sent,
    /// then the connection closes with it.
    pub(crate) decode_error: Option<io::ErrorKind>,
    /// What the transport said when it failed (decoding or encoding), in words, until
    /// the connection publishes it on its handle
    /// ([`ConnHandle::transport_error`](crate::ConnHandle::transport_error)).
    pub(crate) failure: Option<String>,
}

/// A transport and its two wire buffers.
struct Layer {
    transport: Box<dyn Transport>,
    wire_in: BytesMut,
    wire_out: Output,
    /// `Transport::close` was called.
    closed: bool,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("fd", &self.fd)
            .field("direct", &self.direct)
            .field("layered", &self.layer.is_some())
            .finish_non_exhaustive()
    }
}

impl Link {
    pub(crate) fn new(fd: RawFd, direct: bool, transport: Option<Box<dyn Transport>>) -> Link {
        let mut link = Link {
            fd,
            direct,
            layer: None,
            write_error: None,
            decode_error: None,
            failure: None,
        };
        if let Some(t) = transport {
            link.set_transport(t);
        }
        link
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    /// Whether the transport saw the peer end its side inside the protocol (TLS's
    /// `close_notify`): the connection treats it as end-of-file.
    pub(crate) fn peer_closed(&self) -> bool {
        self.layer
            .as_ref()
            .is_some_and(|l| l.transport.peer_closed())
    }

    /// What the transport negotiated ([`Transport::info`]).
    pub(crate) fn info(&self) -> Option<&dyn std::any::Any> {
        self.layer.as_ref().and_then(|l| l.transport.info())
    }

    /// Whether the transport's handshake is done (plain TCP: always).
    pub(crate) fn is_ready(&self) -> bool {
        self.layer.as_ref().is_none_or(|l| l.transport.is_ready())
    }

    /// Bytes queued and not yet on the wire: the handler's and, with a transport, the
    /// encoded ones.
    pub(crate) fn pending(&self, output: &Output) -> usize {
        output.len() + self.layer.as_ref().map_or(0, |l| l.wire_out.len())
    }

    /// Where the driver appends bytes read from the socket.
    pub(crate) fn read_buf<'a>(&'a mut self, input: &'a mut Input) -> &'a mut BytesMut {
        match self.layer.as_mut() {
            None => &mut input.buf,
            Some(l) => &mut l.wire_in,
        }
    }

    /// Bytes were appended to [`read_buf`](Link::read_buf): make them input.
    // Inlined for the plain path (a call per read); a transport's decode is out of line.
    #[inline]
    pub(crate) fn received(&mut self, input: &mut Input) {
        if self.layer.is_none() {
            input.appended();
        } else {
            self.decode_received(input);
        }
    }

    #[inline(never)]
    fn decode_received(&mut self, input: &mut Input) {
        let Some(l) = self.layer.as_mut() else {
            return;
        };
        let before = input.buf.len();
        if let Err(e) = l
            .transport
            .decode(&mut l.wire_in, &mut input.buf, &mut l.wire_out)
        {
            tracing::debug!(error = %e, "transport cannot decode the peer's bytes");
            self.decode_error.get_or_insert(e.kind());
            self.failure.get_or_insert_with(|| e.to_string());
        }
        if input.buf.len() > before {
            input.appended();
        }
    }

    /// Appends bytes the poller read while the handler was away (in `incoming`, which is
    /// left empty).
    pub(crate) fn absorb(&mut self, input: &mut Input, incoming: &mut BytesMut) {
        if incoming.is_empty() {
            return;
        }
        match self.layer.as_mut() {
            None => input.absorb(incoming),
            Some(l) => {
                if l.wire_in.is_empty() {
                    std::mem::swap(&mut l.wire_in, incoming);
                } else {
                    l.wire_in.extend_from_slice(incoming);
                    incoming.clear();
                }
                self.received(input);
            }
        }
    }

    /// The queue to send: the output itself (plain TCP), or the transport's wire queue
    /// after encoding what the handler queued. Until the transport's handshake is done
    /// nothing is encoded (bytes other threads sent meanwhile wait in the output).
    // Inlined for the plain path (a call per send); a transport's encode is out of line.
    #[inline]
    pub(crate) fn wire<'a>(&'a mut self, output: &'a mut Output) -> &'a mut Output {
        if self.layer.is_none() {
            return output;
        }
        self.encode_wire(output)
    }

    #[inline(never)]
    fn encode_wire<'a>(&'a mut self, output: &'a mut Output) -> &'a mut Output {
        let Some(l) = self.layer.as_mut() else {
            return output;
        };
        if !output.is_empty() && self.write_error.is_none() && l.transport.is_ready() {
            if let Err(e) = l.transport.encode(output, &mut l.wire_out) {
                tracing::debug!(error = %e, "transport cannot encode the output");
                self.write_error = Some(e.kind());
                self.failure.get_or_insert_with(|| e.to_string());
            }
        }
        &mut l.wire_out
    }

    /// The wire queue as it is, without encoding more (to account for a send that
    /// completed).
    pub(crate) fn wire_queue<'a>(&'a mut self, output: &'a mut Output) -> &'a mut Output {
        match self.layer.as_mut() {
            None => output,
            Some(l) => &mut l.wire_out,
        }
    }

    /// Sends what the handler queued as far as the socket takes it now, if this link's
    /// holder writes directly (see [`Conn::flush`](crate::Conn::flush)).
    pub(crate) fn flush(&mut self, output: &mut Output) -> io::Result<()> {
        if let Some(kind) = self.write_error {
            return Err(kind.into());
        }
        if !self.direct {
            return Ok(());
        }
        let fd = self.fd;
        let wire = self.wire(output);
        if let Err(e) = sys::send_queue(fd, wire) {
            self.write_error = Some(e.kind());
            return Err(e);
        }
        match self.write_error {
            Some(kind) => Err(kind.into()),
            None => Ok(()),
        }
    }

    /// The connection is closing gracefully or shutting its write side: the transport
    /// encodes what is still queued in `output`, then queues its closing message, once. Returns whether it queued anything (to be sent
    /// before the socket's write side closes).
    pub(crate) fn close_transport(&mut self, output: &mut Output) -> bool {
        // What the handler queued goes before the closing message.
        if self.layer.as_ref().is_some_and(|l| !l.closed) {
            self.wire(output);
        }
        match self.layer.as_mut() {
            Some(l) if !l.closed => {
                l.closed = true;
                let before = l.wire_out.len();
                l.transport.close(&mut l.wire_out);
                l.wire_out.len() > before
            }
            _ => false,
        }
    }

    /// Points the link at another socket (a dial trying its next address).
    pub(crate) fn set_fd(&mut self, fd: RawFd) {
        self.fd = fd;
    }

    /// Installs the transport of a connection once it is established, and lets it
    /// queue what it sends first.
    pub(crate) fn set_transport(&mut self, mut transport: Box<dyn Transport>) {
        let mut wire_out = Output::new();
        transport.start(&mut wire_out);
        self.layer = Some(Box::new(Layer {
            transport,
            wire_in: BytesMut::new(),
            wire_out,
            closed: false,
        }));
    }

    /// Bytes put on the wire since the last call.
    pub(crate) fn take_sent(&mut self, output: &mut Output) -> u64 {
        match self.layer.as_mut() {
            None => std::mem::take(&mut output.sent),
            Some(l) => {
                output.sent = 0;
                std::mem::take(&mut l.wire_out.sent)
            }
        }
    }

    /// The transport's wire-side output buffer once everything in it is sent, to give
    /// back to the pool (an idle TLS connection keeps none).
    pub(crate) fn idle_wire_out(&mut self) -> Option<&mut BytesMut> {
        self.layer
            .as_mut()
            .filter(|l| l.wire_out.is_empty() && l.wire_out.tail.capacity() > 0)
            .map(|l| &mut l.wire_out.tail)
    }

    /// The transport's wire-side input buffer, to give back to the pool when it is empty.
    pub(crate) fn idle_wire_in(&mut self) -> Option<&mut BytesMut> {
        self.layer
            .as_mut()
            .map(|l| &mut l.wire_in)
            .filter(|b| b.is_empty() && b.capacity() > 0)
    }
}
