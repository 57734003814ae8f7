//! Who is in which room, and what a room or a name may be. The hub knows connections,
//! not names, so the example keeps its own map; every change to a room is announced
//! while the map is locked, so a room's member lists are published in the order its
//! membership changed (a later list never arrives before an earlier one).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Most characters in a name.
pub const MAX_NAME: usize = 24;
/// Most characters in a room.
pub const MAX_ROOM: usize = 32;

/// A name: 1 to [`MAX_NAME`] letters, digits, spaces, `-`, `_` or `.`, not starting or
/// ending with a space (names are shown to everyone; no control or layout characters).
pub fn valid_name(name: &str) -> bool {
    let count = name.chars().count();
    (1..=MAX_NAME).contains(&count)
        && !name.starts_with(' ')
        && !name.ends_with(' ')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'))
}

/// A room: 1 to [`MAX_ROOM`] ASCII lower-case letters, digits, `-` or `_` (it goes into
/// URLs and topic names as it is).
pub fn valid_room(room: &str) -> bool {
    (1..=MAX_ROOM).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Rooms and their members' names, in the order they joined.
#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<String, Vec<String>>>,
}

impl Rooms {
    /// Adds `name` to `room` and calls `announce` with the room's names, unless the name
    /// is taken there (then returns `false` and changes nothing).
    pub fn join(&self, room: &str, name: &str, announce: impl FnOnce(&[String])) -> bool {
        let mut rooms = self.lock();
        let names = rooms.entry(room.to_owned()).or_default();
        if names.iter().any(|n| n == name) {
            return false;
        }
        names.push(name.to_owned());
        announce(names);
        true
    }

    /// Removes `name` from `room` and calls `announce` with who is left; a room left
    /// empty is forgotten (and nobody is told).
    pub fn leave(&self, room: &str, name: &str, announce: impl FnOnce(&[String])) {
        let mut rooms = self.lock();
        let Some(names) = rooms.get_mut(room) else {
            return;
        };
        names.retain(|n| n != name);
        if names.is_empty() {
            rooms.remove(room);
        } else {
            announce(names);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<String>>> {
        // The map stays consistent under a panicking announcer: each change is one
        // push or retain, made before announcing.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_rooms_are_checked() {
        assert!(valid_name("alice"));
        assert!(valid_name("Zoë van Dijk"));
        assert!(valid_name(&"x".repeat(MAX_NAME)));
        assert!(!valid_name(&"x".repeat(MAX_NAME + 1)));
        for bad in [
            "",
            " alice",
            "alice ",
            "a<b",
            "a\"b",
            "tab\there",
            "a\u{202e}b",
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(valid_room("lobby"));
        assert!(valid_room("room-2_b"));
        for bad in ["", "Lobby", "a b", "a/b", "été", &"r".repeat(MAX_ROOM + 1)] {
            assert!(!valid_room(bad), "{bad:?}");
        }
    }

    #[test]
    fn joins_and_leaves_are_announced_in_order() {
        let rooms = Rooms::default();
        let mut seen = Vec::new();
        assert!(rooms.join("lobby", "alice", |n| seen.push(n.to_vec())));
        assert!(rooms.join("lobby", "bob", |n| seen.push(n.to_vec())));
        assert!(!rooms.join("lobby", "bob", |_| panic!("a taken name is not announced")));
        assert!(rooms.join("other", "bob", |n| seen.push(n.to_vec())));
        rooms.leave("lobby", "alice", |n| seen.push(n.to_vec()));
        rooms.leave("lobby", "bob", |_| {
            panic!("an emptied room has nobody to tell")
        });
        assert_eq!(
            seen,
            [
                vec!["alice".to_owned()],
                vec!["alice".to_owned(), "bob".to_owned()],
                vec!["bob".to_owned()],
                vec!["bob".to_owned()],
            ]
        );
        // The emptied room is gone: alice can take the name there again.
        assert!(rooms.join("lobby", "alice", |n| assert_eq!(n, ["alice"])));
    }
}
