//! The join request's query string: `/ws?room=lobby&name=alice`, as the page's
//! `encodeURIComponent` (or a form) writes it.

use crate::rooms::{valid_name, valid_room};

/// The room and name a WebSocket request asks for, if its path is `/ws` and both are
/// present and valid.
pub fn room_and_name(target: &str) -> Option<(String, String)> {
    let (path, query) = target.split_once('?')?;
    if path != "/ws" {
        return None;
    }
    let (mut room, mut name) = (None, None);
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "room" => room = Some(decode(value)?),
            "name" => name = Some(decode(value)?),
            _ => {}
        }
    }
    let (room, name) = (room?, name?);
    (valid_room(&room) && valid_name(&name)).then_some((room, name))
}

/// Percent-decodes a query value (`+` is a space, as forms write it); `None` if an
/// escape is malformed or the result is not UTF-8.
fn decode(value: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let (hex, tail) = rest.split_at_checked(2)?;
                // from_str_radix alone would take a sign ("%+1").
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                bytes.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                rest = tail;
            }
            b => bytes.push(b),
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_joins() {
        assert_eq!(
            room_and_name("/ws?room=lobby&name=alice"),
            Some(("lobby".into(), "alice".into()))
        );
        assert_eq!(
            room_and_name("/ws?name=Zo%C3%AB+v&x=1&room=r-1"),
            Some(("r-1".into(), "Zoë v".into()))
        );
    }

    #[test]
    fn refused_joins() {
        for target in [
            "/ws",
            "/ws?room=lobby",
            "/ws?name=alice",
            "/other?room=lobby&name=alice",
            "/ws?room=lobby&name=%3Cb%3E",
            "/ws?room=lobby&name=a%2",
            "/ws?room=lobby&name=%zz",
            "/ws?room=lobby&name=a%+1",
            "/ws?room=lobby&name=%FF",
            "/ws?room=Lobby&name=alice",
        ] {
            assert_eq!(room_and_name(target), None, "{target}");
        }
    }
}
