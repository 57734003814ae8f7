//! The `Date` header value, formatted at most once a second per thread.

use std::cell::RefCell;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) const DATE_LEN: usize = 29;

struct Cached {
    /// When the wall clock's second changes, on the monotonic clock (`None`: never
    /// formatted).
    until: Option<Instant>,
    text: [u8; DATE_LEN],
}

thread_local! {
    static CACHE: RefCell<Cached> = const {
        RefCell::new(Cached { until: None, text: [b' '; DATE_LEN] })
    };
}

/// Calls `f` with the current date as an IMF-fixdate. Formatting happens once a second
/// per thread (no allocation); other calls copy the cached text.
///
/// `now` is the caller's reading of the monotonic clock (the poller's turn time,
/// [`Conn::now`](crate::Conn::now)): comparing it with the end of the cached second
/// costs no clock read, where reading the wall clock for every response did. The
/// wall clock is read only to format. A `now` that lags the real time by the length of
/// a turn can keep the previous second's text that much longer.
pub(crate) fn with_date<R>(now: Instant, f: impl FnOnce(&[u8]) -> R) -> R {
    CACHE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.until.is_none_or(|until| now >= until) {
            let wall = SystemTime::now();
            let since_epoch = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
            let mut text = [b' '; DATE_LEN];
            let mut cursor = &mut text[..];
            // IMF-fixdate is always exactly 29 bytes, so this cannot run out of room.
            let _ = write!(cursor, "{}", httpdate::HttpDate::from(wall));
            cached.text = text;
            // The rest of this wall-clock second, counted from `now`: if `now` lags,
            // the next refresh comes early, which only formats the same text again.
            let left = Duration::from_secs(1)
                - Duration::from_nanos(u64::from(since_epoch.subsec_nanos()));
            cached.until = Some(now + left);
        }
        f(&cached.text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_an_imf_fixdate_that_parses_back() {
        let text = with_date(Instant::now(), |d| String::from_utf8(d.to_vec()).unwrap());
        assert_eq!(text.len(), DATE_LEN);
        assert!(text.ends_with(" GMT"), "{text}");
        let parsed = httpdate::parse_http_date(&text).unwrap();
        let age = SystemTime::now().duration_since(parsed).unwrap_or_default();
        assert!(age.as_secs() < 3600, "{text} is not the current date");
    }
}
