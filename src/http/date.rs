//! The `Date` header value, formatted at most once a second per thread.

use std::cell::RefCell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) const DATE_LEN: usize = 29;

struct Cached {
    second: u64,
    text: [u8; DATE_LEN],
}

thread_local! {
    static CACHE: RefCell<Cached> = const {
        RefCell::new(Cached { second: u64::MAX, text: [b' '; DATE_LEN] })
    };
}

/// Calls `f` with the current date as an IMF-fixdate. Formatting happens once a second
/// per thread (no allocation); other calls copy the cached text.
pub(crate) fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.second != second {
            let mut text = [b' '; DATE_LEN];
            let mut cursor = &mut text[..];
            // IMF-fixdate is always exactly 29 bytes, so this cannot run out of room.
            let _ = write!(cursor, "{}", httpdate::HttpDate::from(now));
            cached.text = text;
            cached.second = second;
        }
        f(&cached.text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_an_imf_fixdate_that_parses_back() {
        let text = with_date(|d| String::from_utf8(d.to_vec()).unwrap());
        assert_eq!(text.len(), DATE_LEN);
        assert!(text.ends_with(" GMT"), "{text}");
        let parsed = httpdate::parse_http_date(&text).unwrap();
        let age = SystemTime::now().duration_since(parsed).unwrap_or_default();
        assert!(age.as_secs() < 3600, "{text} is not the current date");
    }
}
