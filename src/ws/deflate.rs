//! permessage-deflate (RFC 7692): negotiating its parameters, and compressing and
//! decompressing messages, with no I/O.
//!
//! A message is compressed as raw DEFLATE ending in a sync flush, whose trailing
//! `00 00 ff ff` is left off on the wire (and put back before inflating). Whether each
//! side keeps its compression context between messages ("context takeover") decides
//! what a connection costs:
//!
//! * **No context takeover** (each message compressed on its own): no per-connection
//!   state at all. The contexts are per thread, reset after every message, shared by
//!   every connection that thread serves.
//! * **Context takeover**: better ratios for similar messages, at the price of a
//!   context per connection and direction, kept as long as the connection lives.
//!   Measured (resident memory of 1,000 idle connections that each sent and received one
//!   compressed 1 KiB message, `scripts/bench.sh --only idle-ws-deflate-takeover`):
//!   about 310 KiB per connection for the server's compressor (15 window bits; 10 bits
//!   still cost about 190 KiB: zlib's hash table and symbol buffer do not shrink with
//!   the window) and about 25 KiB for its decompressor. Without takeover a connection
//!   costs nothing extra (1.4 KiB idle, with or without deflate).
//!
//! The defaults ([`DeflateConfig::default`]) ask for no context takeover both ways.

use std::cell::RefCell;
use std::fmt;

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// What a server accepts of permessage-deflate.
///
/// ```
/// use netloop::ws::DeflateConfig;
/// // Better ratios for chatty clients, at 256 KiB of compressor state per connection.
/// let deflate = DeflateConfig::default().server_context_takeover(true).level(3);
/// # let _ = deflate;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateConfig {
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    pub(crate) server_max_window_bits: u8,
    pub(crate) client_max_window_bits: u8,
    pub(crate) threshold: usize,
    pub(crate) level: u32,
}

impl Default for DeflateConfig {
    /// No context takeover either way (no per-connection state), 15 window bits,
    /// messages under 256 bytes sent uncompressed, compression level 6.
    fn default() -> DeflateConfig {
        DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            threshold: 256,
            level: 6,
        }
    }
}

impl DeflateConfig {
    /// Whether this server keeps its compression context between messages (unless the
    /// client asks it not to). Default: no.
    pub fn server_context_takeover(mut self, keep: bool) -> DeflateConfig {
        self.server_no_context_takeover = !keep;
        self
    }

    /// Whether clients may keep their compression context between messages (this
    /// server then keeps a decompressor per connection). Default: no (clients are asked
    /// for `client_no_context_takeover`).
    pub fn client_context_takeover(mut self, keep: bool) -> DeflateConfig {
        self.client_no_context_takeover = !keep;
        self
    }

    /// The largest window this server compresses with (9–15; smaller saves memory,
    /// costs ratio). A client's `server_max_window_bits` can lower it further. Default:
    /// 15.
    ///
    /// # Panics
    /// Outside 9..=15 (8 bits cannot be honoured: zlib compresses with at least 9).
    pub fn server_max_window_bits(mut self, bits: u8) -> DeflateConfig {
        assert!(
            (9..=15).contains(&bits),
            "server_max_window_bits({bits}): 9..=15"
        );
        self.server_max_window_bits = bits;
        self
    }

    /// The largest window clients are asked to compress with (8–15), where the client
    /// offers to be told. Default: 15 (no limit).
    ///
    /// # Panics
    /// Outside 8..=15.
    pub fn client_max_window_bits(mut self, bits: u8) -> DeflateConfig {
        assert!(
            (8..=15).contains(&bits),
            "client_max_window_bits({bits}): 8..=15"
        );
        self.client_max_window_bits = bits;
        self
    }

    /// Messages shorter than this go uncompressed (compressing them costs more than it
    /// saves). Default: 256 bytes.
    pub fn threshold(mut self, bytes: usize) -> DeflateConfig {
        self.threshold = bytes;
        self
    }

    /// The zlib compression level, 0–9. Default: 6.
    ///
    /// # Panics
    /// Above 9.
    pub fn level(mut self, level: u32) -> DeflateConfig {
        assert!(level <= 9, "level({level}): 0..=9");
        self.level = level;
        self
    }

    /// Negotiates against a client's `Sec-WebSocket-Extensions` values: the first
    /// permessage-deflate offer this configuration can accept, and the response header
    /// value. Offers with unknown, repeated or malformed parameters are declined, as
    /// RFC 7692 §5 requires.
    ///
    /// ```
    /// use netloop::ws::DeflateConfig;
    /// let offer = "permessage-deflate; client_max_window_bits, permessage-deflate";
    /// let (params, response) = DeflateConfig::default().negotiate([offer.as_bytes()]).unwrap();
    /// assert!(params.server_no_context_takeover);
    /// assert_eq!(
    ///     response,
    ///     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    /// );
    /// ```
    pub fn negotiate<'a>(
        &self,
        headers: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<(DeflateParams, String)> {
        for header in headers {
            let Ok(text) = std::str::from_utf8(header) else {
                continue;
            };
            for offer in text.split(',') {
                if let Some(found) = self.accept(offer) {
                    return Some(found);
                }
            }
        }
        None
    }

    /// Accepts one offer, if it is permessage-deflate with parameters this
    /// configuration can honour.
    fn accept(&self, offer: &str) -> Option<(DeflateParams, String)> {
        let mut parts = offer.split(';').map(str::trim);
        if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
            return None;
        }
        let mut seen = Offer::default();
        for param in parts {
            let (name, value) = match param.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (param, None),
            };
            let name = name.to_ascii_lowercase();
            let bits = |v: Option<&str>| -> Option<u8> {
                let v = v?;
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || v.len() > 2 {
                    return None;
                }
                v.parse().ok().filter(|b| (8..=15).contains(b))
            };
            match name.as_str() {
                "server_no_context_takeover" if value.is_none() && !seen.server_nct => {
                    seen.server_nct = true
                }
                "client_no_context_takeover" if value.is_none() && !seen.client_nct => {
                    seen.client_nct = true
                }
                "server_max_window_bits" if seen.server_bits.is_none() => {
                    seen.server_bits = Some(bits(value)?)
                }
                "client_max_window_bits" if seen.client_bits.is_none() => {
                    seen.client_bits = Some(match value {
                        None => None,
                        Some(_) => Some(bits(value)?),
                    })
                }
                _ => return None,
            }
        }
        // The server compresses with at most what the client allows (and zlib needs 9).
        let server_bits = match seen.server_bits {
            Some(8) => return None,
            Some(b) => b.min(self.server_max_window_bits),
            None => self.server_max_window_bits,
        };
        // The client is told a limit only if it said it understands one.
        let client_bits = match seen.client_bits {
            None => 15,
            Some(None) => self.client_max_window_bits,
            Some(Some(b)) => b.min(self.client_max_window_bits),
        };
        let params = DeflateParams {
            server_no_context_takeover: seen.server_nct || self.server_no_context_takeover,
            client_no_context_takeover: seen.client_nct || self.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
            threshold: self.threshold,
            level: self.level,
        };
        let mut response = String::from("permessage-deflate");
        if params.server_no_context_takeover {
            response.push_str("; server_no_context_takeover");
        }
        if params.client_no_context_takeover {
            response.push_str("; client_no_context_takeover");
        }
        if seen.server_bits.is_some() || server_bits < 15 {
            response.push_str(&format!("; server_max_window_bits={server_bits}"));
        }
        if seen.client_bits.is_some() && client_bits < 15 {
            response.push_str(&format!("; client_max_window_bits={client_bits}"));
        }
        Some((params, response))
    }
}

/// The parameters of one offer, as seen.
#[derive(Default)]
struct Offer {
    server_nct: bool,
    client_nct: bool,
    server_bits: Option<u8>,
    /// `Some(None)`: the parameter without a value.
    client_bits: Option<Option<u8>>,
}

/// What a connection negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateParams {
    /// The server starts every message with a fresh compressor.
    pub server_no_context_takeover: bool,
    /// The client starts every message with a fresh compressor.
    pub client_no_context_takeover: bool,
    /// The server's compression window.
    pub server_max_window_bits: u8,
    /// The client's compression window (this server's decompression window).
    pub client_max_window_bits: u8,
    /// Smaller messages go uncompressed.
    pub threshold: usize,
    /// The compression level.
    pub level: u32,
}

/// A compressed message inflated past the size limit (close code 1009), or was not
/// valid DEFLATE (1007).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflateError {
    /// The message would be larger than the limit.
    TooBig,
    /// The data is not DEFLATE.
    Corrupt,
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InflateError::TooBig => "a compressed message inflates past the size limit",
            InflateError::Corrupt => "a compressed message is not valid DEFLATE",
        })
    }
}

impl std::error::Error for InflateError {}

/// The end of a sync flush, left off on the wire.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// One connection's compression: its own contexts where it takes them over between
/// messages, the thread's shared ones where it does not.
pub struct Deflate {
    params: DeflateParams,
    /// Which end this is: it compresses with its own side's parameters and inflates
    /// the other side's messages.
    client: bool,
    compressor: Option<Box<Compress>>,
    decompressor: Option<Box<Decompress>>,
}

impl fmt::Debug for Deflate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deflate")
            .field("params", &self.params)
            .field("own_compressor", &self.compressor.is_some())
            .field("own_decompressor", &self.decompressor.is_some())
            .finish()
    }
}

thread_local! {
    /// The contexts of connections that take nothing over, by (level, window bits):
    /// reset after every message, so any connection on this thread can use them.
    static SHARED_COMPRESSORS: RefCell<Vec<((u32, u8), Compress)>> = const { RefCell::new(Vec::new()) };
    static SHARED_DECOMPRESSORS: RefCell<Vec<(u8, Decompress)>> = const { RefCell::new(Vec::new()) };
}

impl Deflate {
    /// The compression of a connection that negotiated `params`.
    pub fn new(params: DeflateParams) -> Deflate {
        Deflate {
            params,
            client: false,
            compressor: None,
            decompressor: None,
        }
    }

    /// The compression of a client that negotiated `params`: it compresses with the
    /// `client_*` parameters and inflates what the server compressed with the
    /// `server_*` ones.
    pub fn client(params: DeflateParams) -> Deflate {
        Deflate {
            client: true,
            ..Deflate::new(params)
        }
    }

    /// This end's compressor: (fresh context per message, window bits).
    fn compress_side(&self) -> (bool, u8) {
        let p = &self.params;
        if self.client {
            (p.client_no_context_takeover, p.client_max_window_bits)
        } else {
            (p.server_no_context_takeover, p.server_max_window_bits)
        }
    }

    /// This end's decompressor: (fresh context per message, window bits). A client
    /// inflates with the largest window, which decodes a stream made with any smaller
    /// one (and zlib has no 8-bit raw window).
    fn decompress_side(&self) -> (bool, u8) {
        let p = &self.params;
        if self.client {
            (p.server_no_context_takeover, 15)
        } else {
            (p.client_no_context_takeover, p.client_max_window_bits)
        }
    }

    /// The negotiated parameters.
    pub fn params(&self) -> &DeflateParams {
        &self.params
    }

    /// Whether a message of `len` bytes is worth compressing.
    pub fn worth_compressing(&self, len: usize) -> bool {
        len >= self.params.threshold
    }

    /// Compresses a message into `out` (appended), without the flush's tail.
    pub fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let p = self.params;
        let (fresh, bits) = self.compress_side();
        let key = (p.level, bits);
        let new = || Compress::new_with_window_bits(Compression::new(p.level), false, bits);
        if fresh {
            SHARED_COMPRESSORS.with(|shared| {
                let mut shared = shared.borrow_mut();
                let i = match shared.iter().position(|(k, _)| *k == key) {
                    Some(i) => i,
                    None => {
                        shared.push((key, new()));
                        shared.len() - 1
                    }
                };
                let c = &mut shared[i].1;
                deflate_into(c, data, out);
                c.reset();
            });
        } else {
            let c = self.compressor.get_or_insert_with(|| Box::new(new()));
            deflate_into(c, data, out);
        }
    }

    /// Inflates a whole compressed message (all its fragments' payloads) into `out`,
    /// refusing to produce more than `limit` bytes.
    pub fn decompress(
        &mut self,
        data: &[u8],
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), InflateError> {
        let (fresh, bits) = self.decompress_side();
        let new = || Decompress::new_with_window_bits(false, bits);
        if fresh {
            SHARED_DECOMPRESSORS.with(|shared| {
                let mut shared = shared.borrow_mut();
                let i = match shared.iter().position(|(k, _)| *k == bits) {
                    Some(i) => i,
                    None => {
                        shared.push((bits, new()));
                        shared.len() - 1
                    }
                };
                let d = &mut shared[i].1;
                let result = inflate_into(d, data, out, limit);
                d.reset(false);
                result
            })
        } else {
            let d = self.decompressor.get_or_insert_with(|| Box::new(new()));
            let result = inflate_into(d, data, out, limit);
            if result.is_err() {
                // A broken stream leaves the context unusable; the connection closes anyway.
                d.reset(false);
            }
            result
        }
    }
}

/// Deflates `data` with a sync flush and appends the result, less its 4-byte tail.
fn deflate_into(c: &mut Compress, data: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let mut consumed = 0;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve((data.len() - consumed) / 2 + 64);
        }
        let before = c.total_in();
        c.compress_vec(&data[consumed..], out, FlushCompress::Sync)
            .expect("deflate does not fail on valid input");
        consumed += (c.total_in() - before) as usize;
        // zlib's rule: the flush is complete once all input is in and it left room in
        // the output (a full output may have more to come).
        if consumed == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    if out.len() >= start + 4 && out[out.len() - 4..] == TAIL {
        out.truncate(out.len() - 4);
    }
}

/// Inflates `data` plus the sync flush's tail, appending at most `limit` bytes to `out`.
fn inflate_into(
    d: &mut Decompress,
    data: &[u8],
    out: &mut BytesMut,
    limit: usize,
) -> Result<(), InflateError> {
    let start = out.len();
    for (input, is_tail) in [(data, false), (&TAIL[..], true)] {
        let mut consumed = 0;
        loop {
            let produced = out.len() - start;
            if produced > limit {
                return Err(InflateError::TooBig);
            }
            // Never more room than one byte past the limit: a bomb is caught without
            // inflating it.
            let room = (limit + 1 - produced).min(64 * 1024);
            out.reserve(room);
            let spare = &mut out.spare_capacity_mut()[..room];
            // SAFETY: the decompressor writes initialised bytes only, and no more than
            // it reports having written is marked initialised below.
            let spare =
                unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<u8>(), room) };
            let (before_in, before_out) = (d.total_in(), d.total_out());
            let status = d
                .decompress(&input[consumed..], spare, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            let read = (d.total_in() - before_in) as usize;
            let wrote = (d.total_out() - before_out) as usize;
            consumed += read;
            // SAFETY: the decompressor initialised `wrote` bytes of the spare capacity.
            unsafe { out.set_len(out.len() + wrote) };
            if status == Status::StreamEnd {
                // The message ended with a final block: nothing may follow it, and the
                // tail is not needed.
                if !is_tail && consumed < input.len() {
                    return Err(InflateError::Corrupt);
                }
                d.reset(false);
                return check_limit(out.len() - start, limit);
            }
            if consumed == input.len() && wrote < room {
                break;
            }
            if read == 0 && wrote == 0 {
                // No progress with input left and room to write: not DEFLATE.
                return Err(InflateError::Corrupt);
            }
        }
    }
    check_limit(out.len() - start, limit)
}

fn check_limit(produced: usize, limit: usize) -> Result<(), InflateError> {
    if produced > limit {
        Err(InflateError::TooBig)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(takeover: bool) -> DeflateParams {
        let cfg = DeflateConfig::default()
            .server_context_takeover(takeover)
            .client_context_takeover(takeover);
        cfg.negotiate([&b"permessage-deflate; client_max_window_bits"[..]])
            .unwrap()
            .0
    }

    /// Inflates as the peer would: with the params' server window.
    fn peer_inflate(data: &[u8], takeover_ctx: &mut Decompress) -> Vec<u8> {
        let mut out = BytesMut::new();
        inflate_into(takeover_ctx, data, &mut out, 1 << 30).unwrap();
        out.to_vec()
    }

    #[test]
    fn messages_round_trip_with_and_without_context_takeover() {
        for takeover in [false, true] {
            let mut ours = Deflate::new(params(takeover));
            let mut peer = Decompress::new_with_window_bits(false, 15);
            let text = "the same words, the same words, again and again ".repeat(40);
            let mut sizes = Vec::new();
            for _ in 0..3 {
                let mut wire = Vec::new();
                ours.compress(text.as_bytes(), &mut wire);
                assert!(!wire.ends_with(&TAIL), "tail left off");
                sizes.push(wire.len());
                if !takeover {
                    peer.reset(false);
                }
                assert_eq!(peer_inflate(&wire, &mut peer), text.as_bytes());
                // And back through our decompressor.
                let mut back = BytesMut::new();
                ours.decompress(&wire, &mut back, 1 << 20).unwrap();
                assert_eq!(&back[..], text.as_bytes());
            }
            if takeover {
                assert!(
                    sizes[1] < sizes[0],
                    "the context helps the second message: {sizes:?}"
                );
            } else {
                assert_eq!(sizes[0], sizes[1], "every message compressed alone");
            }
        }
    }

    #[test]
    fn a_bomb_is_refused_without_inflating_it_all() {
        let mut ours = Deflate::new(params(false));
        let zeros = vec![0u8; 10 << 20];
        let mut wire = Vec::new();
        ours.compress(&zeros, &mut wire);
        assert!(wire.len() < 64 * 1024);
        let mut out = BytesMut::new();
        assert_eq!(
            ours.decompress(&wire, &mut out, 1 << 20),
            Err(InflateError::TooBig)
        );
        assert!(out.len() <= (1 << 20) + 64 * 1024);
        let mut out = BytesMut::new();
        assert_eq!(
            ours.decompress(b"\xff\xff\xff", &mut out, 1 << 20),
            Err(InflateError::Corrupt)
        );
    }

    #[test]
    fn offers_are_negotiated_or_declined_as_rfc_7692_says() {
        let cfg = DeflateConfig::default()
            .server_context_takeover(true)
            .client_context_takeover(true);
        let neg = |offer: &str| cfg.negotiate([offer.as_bytes()]).map(|(_, r)| r);
        assert_eq!(
            neg("permessage-deflate").as_deref(),
            Some("permessage-deflate")
        );
        assert_eq!(
            neg("permessage-deflate; server_no_context_takeover").as_deref(),
            Some("permessage-deflate; server_no_context_takeover")
        );
        assert_eq!(
            neg("permessage-deflate; server_max_window_bits=10").as_deref(),
            Some("permessage-deflate; server_max_window_bits=10")
        );
        assert_eq!(
            neg("permessage-deflate; client_max_window_bits").as_deref(),
            Some("permessage-deflate")
        );
        assert_eq!(
            DeflateConfig::default()
                .client_max_window_bits(10)
                .client_context_takeover(true)
                .server_context_takeover(true)
                .negotiate([&b"permessage-deflate; client_max_window_bits"[..]])
                .map(|(_, r)| r)
                .as_deref(),
            Some("permessage-deflate; client_max_window_bits=10")
        );
        // Declined: unknown or repeated parameters, bad values, a window zlib cannot
        // honour; the next offer is taken instead.
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=8",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(neg(bad), None, "{bad}");
            assert_eq!(
                neg(&format!("{bad}, permessage-deflate")).as_deref(),
                Some("permessage-deflate"),
                "{bad} then a plain offer"
            );
        }
    }
}
