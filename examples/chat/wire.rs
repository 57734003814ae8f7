//! The text messages the server sends the page: tiny JSON objects written by hand (two
//! shapes do not need a JSON crate), with every string escaped.
//!
//! * `{"type":"members","names":["alice","bob"]}`: who is in the room, after every
//!   join and leave.
//! * `{"type":"message","name":"alice","text":"hi"}`: someone said something.

use std::fmt::Write;

/// The member list of a room.
pub fn members(names: &[String]) -> String {
    let mut out = String::from(r#"{"type":"members","names":["#);
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(&mut out, name);
    }
    out.push_str("]}");
    out
}

/// A message `name` sent to the room.
pub fn message(name: &str, text: &str) -> String {
    let mut out = String::from(r#"{"type":"message","name":"#);
    string(&mut out, name);
    out.push_str(r#","text":"#);
    string(&mut out, text);
    out.push('}');
    out
}

/// Appends `s` as a JSON string literal (RFC 8259 §7): quote, backslash and control
/// characters escaped; everything else is valid in JSON as it is.
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(
            message("a\"b", "x\\y\n\u{1}</script>é"),
            r#"{"type":"message","name":"a\"b","text":"x\\y\n\u0001</script>é"}"#
        );
    }

    #[test]
    fn member_lists() {
        assert_eq!(members(&[]), r#"{"type":"members","names":[]}"#);
        assert_eq!(
            members(&["alice".into(), "bob".into()]),
            r#"{"type":"members","names":["alice","bob"]}"#
        );
    }
}
