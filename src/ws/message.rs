//! Messages as handlers get and send them.

use std::fmt;

use bytes::Bytes;

/// A complete data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message (its bytes are UTF-8, checked on arrival).
    Text(Text),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// The payload, whichever the kind.
    pub fn as_bytes(&self) -> &Bytes {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Message {
        Message::Text(Text::from(s))
    }
}

impl From<String> for Message {
    fn from(s: String) -> Message {
        Message::Text(Text::from(s))
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Message {
        Message::Binary(b)
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Message {
        Message::Binary(Bytes::from(b))
    }
}

/// The payload of a text message: bytes known to be UTF-8, shared without copying.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Text(Bytes);

impl Text {
    /// Checks `bytes` and wraps them.
    ///
    /// # Errors
    /// The bytes are not UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Text, super::utf8::Invalid> {
        simdutf8::basic::from_utf8(&bytes).map_err(|_| super::utf8::Invalid)?;
        Ok(Text(bytes))
    }

    /// Wraps bytes the caller has checked.
    pub(crate) fn from_checked(bytes: Bytes) -> Text {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Text(bytes)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: a Text is only made from bytes that were checked to be UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The bytes, shared with the message (no copy).
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The bytes, taken out.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(Bytes::from(s))
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
