//! Header-value helpers shared by the server layer and HTTP clients (the load generator
//! parses responses with the same rules).

/// Parses a `Content-Length` value: ASCII digits only (optional surrounding spaces), no
/// sign, no overflow. `None` means the value is invalid and the message must be refused.
///
/// ```
/// use netloop::http::parse_content_length;
/// assert_eq!(parse_content_length(b" 42 "), Some(42));
/// assert_eq!(parse_content_length(b"-1"), None);
/// ```
pub fn parse_content_length(value: &[u8]) -> Option<usize> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Whether a comma-separated header value (such as `Connection`) lists `token`, ignoring
/// case.
///
/// ```
/// use netloop::http::has_token;
/// assert!(has_token(b"keep-alive, Upgrade", b"upgrade"));
/// assert!(!has_token(b"closed", b"close"));
/// ```
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_accepts_digits_only() {
        assert_eq!(parse_content_length(b" 42 "), Some(42));
        assert_eq!(parse_content_length(b"+1"), None);
        assert_eq!(parse_content_length(b"-1"), None);
        assert_eq!(parse_content_length(b""), None);
        assert_eq!(parse_content_length(b"99999999999999999999999999"), None);
    }

    #[test]
    fn connection_tokens_are_found_in_lists() {
        assert!(has_token(b"keep-alive, Upgrade", b"keep-alive"));
        assert!(has_token(b"Close", b"close"));
        assert!(!has_token(b"closed", b"close"));
    }
}
