//! The handover channel's messages, encoded and decoded with no I/O (see the module docs
//! of [`restart`](super) for the protocol).

use std::io;

/// Every message starts with these four bytes, then the version.
const MAGIC: &[u8; 4] = b"NLHO";
/// The protocol version; a receiver refuses any other.
const VERSION: u8 = 1;

/// A listener's socket file was created by the sending server, which hands over its
/// removal at shutdown along with the socket.
pub(super) const OWNS_PATH: u8 = 1;

/// One descriptor of a `Listeners` message: which of the old server's listeners it
/// belongs to (the builder's index), and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) listener: u32,
    pub(super) flags: u8,
}

/// A message on the handover channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Message {
    /// Old to new: the descriptors attached to this message, one entry each, in order.
    Listeners(Vec<Entry>),
    /// Old to new: every descriptor has been sent; `fds` is their total.
    End { fds: u32 },
    /// New to old: the successor serves on the listeners.
    Ready { pid: u32 },
}

const LISTENERS: u8 = b'L';
const END: u8 = b'E';
const READY: u8 = b'R';

/// The longest message: a full `Listeners` message.
pub(super) const MAX_MESSAGE: usize = 6 + 2 + crate::sys::fd_passing::MAX_FDS_PER_MESSAGE * 5;

impl Message {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        match self {
            Message::Listeners(entries) => {
                out.push(LISTENERS);
                out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
                for e in entries {
                    out.extend_from_slice(&e.listener.to_le_bytes());
                    out.push(e.flags);
                }
            }
            Message::End { fds } => {
                out.push(END);
                out.extend_from_slice(&fds.to_le_bytes());
            }
            Message::Ready { pid } => {
                out.push(READY);
                out.extend_from_slice(&pid.to_le_bytes());
            }
        }
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> io::Result<Message> {
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("handover channel: {why}"),
            )
        };
        let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
            return Err(bad("not a netloop handover message"));
        };
        let [version, kind, body @ ..] = rest else {
            return Err(bad("message cut short"));
        };
        if *version != VERSION {
            return Err(bad(&format!(
                "protocol version {version}, this build speaks {VERSION}"
            )));
        }
        let u32_body = |body: &[u8]| -> io::Result<u32> {
            let b: [u8; 4] = body.try_into().map_err(|_| bad("wrong length"))?;
            Ok(u32::from_le_bytes(b))
        };
        match *kind {
            LISTENERS => {
                let [a, b, entries @ ..] = body else {
                    return Err(bad("message cut short"));
                };
                let count = u16::from_le_bytes([*a, *b]) as usize;
                if entries.len() != count * 5 {
                    return Err(bad("wrong length"));
                }
                Ok(Message::Listeners(
                    entries
                        .chunks_exact(5)
                        .map(|c| Entry {
                            listener: u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                            flags: c[4],
                        })
                        .collect(),
                ))
            }
            END => Ok(Message::End {
                fds: u32_body(body)?,
            }),
            READY => Ok(Message::Ready {
                pid: u32_body(body)?,
            }),
            other => Err(bad(&format!("unknown message kind {other:#04x}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        let messages = [
            Message::Listeners(vec![
                Entry {
                    listener: 0,
                    flags: 0,
                },
                Entry {
                    listener: 70_000,
                    flags: OWNS_PATH,
                },
            ]),
            Message::Listeners(Vec::new()),
            Message::End { fds: 3 },
            Message::Ready { pid: 4242 },
        ];
        for m in messages {
            let bytes = m.encode();
            assert!(bytes.len() <= MAX_MESSAGE);
            assert_eq!(Message::decode(&bytes).unwrap(), m);
        }
    }

    #[test]
    fn damaged_messages_are_refused_with_a_reason() {
        let good = Message::Ready { pid: 1 }.encode();
        let cases: [(&[u8], &str); 5] = [
            (b"HTTP/1.1 200 OK", "not a netloop handover message"),
            (&good[..5], "cut short"),
            (&good[..good.len() - 1], "wrong length"),
            (b"NLHO\x02R\x01\x00\x00\x00", "protocol version 2"),
            (b"NLHO\x01Z", "unknown message kind"),
        ];
        for (bytes, why) in cases {
            let err = Message::decode(bytes).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(err.to_string().contains(why), "{err}");
        }
        let short_list = b"NLHO\x01L\x02\x00\x00\x00\x00\x00\x00";
        assert!(
            Message::decode(short_list).is_err(),
            "two entries announced, one sent"
        );
    }
}
