//! UTF-8 checks for text messages, incremental so a fragmented message fails as soon as
//! its first invalid byte arrives (not when its last fragment does).

/// Validates a text message fragment by fragment. A code point split between two
/// fragments is carried over (at most 3 bytes).
#[derive(Clone, Copy, Debug, Default)]
pub struct Validator {
    carry: [u8; 4],
    carried: u8,
}

/// The bytes are not UTF-8 (close code 1007).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invalid;

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("text that is not UTF-8")
    }
}

impl std::error::Error for Invalid {}

impl Validator {
    /// Checks the next fragment; `last` says it ends the message (nothing may be left
    /// incomplete).
    ///
    /// ```
    /// use netloop::ws::utf8::Validator;
    /// let euro = "€".as_bytes(); // three bytes, split over two fragments
    /// let mut v = Validator::default();
    /// assert!(v.feed(&euro[..1], false).is_ok());
    /// assert!(v.feed(&euro[1..], true).is_ok());
    /// assert!(Validator::default().feed(&euro[..2], true).is_err());
    /// assert!(Validator::default().feed(&[0xff], false).is_err(), "fails fast");
    /// ```
    pub fn feed(&mut self, mut data: &[u8], last: bool) -> Result<(), Invalid> {
        if self.carried > 0 {
            // Complete the carried code point with the first bytes of this fragment.
            let start = self.carried as usize;
            let need = utf8_len(self.carry[0]).ok_or(Invalid)?;
            let take = (need - start).min(data.len());
            self.carry[start..start + take].copy_from_slice(&data[..take]);
            data = &data[take..];
            let have = start + take;
            if have < need {
                // Still incomplete: what there is must be a valid prefix.
                check_prefix(&self.carry[..have])?;
                self.carried = have as u8;
                return if last { Err(Invalid) } else { Ok(()) };
            }
            simdutf8::basic::from_utf8(&self.carry[..need]).map_err(|_| Invalid)?;
            self.carried = 0;
        }
        match simdutf8::compat::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                Some(_) => Err(Invalid),
                // The fragment ends inside a code point: carry it to the next one.
                None if !last => {
                    let tail = &data[e.valid_up_to()..];
                    self.carry[..tail.len()].copy_from_slice(tail);
                    self.carried = tail.len() as u8;
                    Ok(())
                }
                None => Err(Invalid),
            },
        }
    }
}

/// The length of the code point a lead byte starts, if it can start one.
fn utf8_len(lead: u8) -> Option<usize> {
    match lead {
        0x00..=0x7f => Some(1),
        0xc2..=0xdf => Some(2),
        0xe0..=0xef => Some(3),
        0xf0..=0xf4 => Some(4),
        _ => None,
    }
}

/// Whether `bytes` (a lead byte and fewer continuation bytes than it needs) can still
/// become a valid code point.
fn check_prefix(bytes: &[u8]) -> Result<(), Invalid> {
    match simdutf8::compat::from_utf8(bytes) {
        Ok(_) => Ok(()),
        Err(e) if e.error_len().is_none() => Ok(()),
        Err(_) => Err(Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` in fragments of `size` bytes; returns whether it was accepted.
    fn split_feed(data: &[u8], size: usize) -> bool {
        let mut v = Validator::default();
        let chunks: Vec<&[u8]> = data.chunks(size.max(1)).collect();
        if chunks.is_empty() {
            return v.feed(&[], true).is_ok();
        }
        for (i, c) in chunks.iter().enumerate() {
            if v.feed(c, i + 1 == chunks.len()).is_err() {
                return false;
            }
        }
        true
    }

    #[test]
    fn any_split_of_valid_text_is_accepted_and_of_invalid_text_refused() {
        let valid = "κόσμε, ascii, 𝄞, €, \u{10FFFF}".as_bytes();
        let invalid: [&[u8]; 6] = [
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", // surrogate
            b"\xf4\x90\x80\x80",                                               // > U+10FFFF
            b"\xc0\xaf",                                                       // overlong
            b"abc\xff",
            b"\xe2\x82",  // truncated at the end
            b"\x80start", // lone continuation
        ];
        for size in 1..=valid.len() {
            assert!(split_feed(valid, size), "valid split at {size}");
            for bad in invalid {
                assert!(!split_feed(bad, size), "{bad:?} split at {size}");
            }
        }
    }

    #[test]
    fn an_invalid_byte_fails_the_fragment_it_arrives_in() {
        let mut v = Validator::default();
        assert!(v.feed("κόσμε".as_bytes(), false).is_ok());
        assert!(
            v.feed(b"\xf4\x90", false).is_err(),
            "no need to wait for the end"
        );
    }
}
