//! The frame-to-message decoder over arbitrary input split at arbitrary points: it never
//! panics, never reads past what it was given, and the messages it hands out do not
//! depend on how the bytes were split (the first byte of the input picks the splits,
//! whether permessage-deflate is on, and which end decodes: a server, whose peer masks,
//! or a client, whose peer does not).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netloop::ws::codec::{Decoder, Incoming, Limits, Role};
use netloop::ws::deflate::Deflate;
use netloop::ws::DeflateConfig;
use netloop::Input;

const LIMITS: Limits = Limits {
    max_frame: 64 * 1024,
    max_message: 256 * 1024,
};

/// Decodes `data` fed in pieces of the given sizes (cycled); returns what came out and
/// whether it ended in an error.
fn decode(
    data: &[u8],
    pieces: &[usize],
    deflate_on: bool,
    role: Role,
) -> (Vec<Incoming>, Option<u16>) {
    let params = deflate_on.then(|| {
        DeflateConfig::default()
            .negotiate([&b"permessage-deflate"[..]])
            .expect("accepted")
            .0
    });
    let mut deflate = params.map(|p| match role {
        Role::Server => Deflate::new(p),
        Role::Client => Deflate::client(p),
    });
    let mut decoder = Decoder::new(role, LIMITS, deflate_on);
    let mut input = Input::from_slice(&[]);
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    let mut buf = Vec::new();
    while at < data.len() {
        let n = pieces[i % pieces.len()].max(1).min(data.len() - at);
        i += 1;
        buf.extend_from_slice(&data[at..at + n]);
        at += n;
        // Input has no public append: rebuild it from what is left plus the new piece.
        let mut fresh = Input::from_slice(&buf);
        std::mem::swap(&mut input, &mut fresh);
        loop {
            let before = input.len();
            match decoder.decode(&mut input, deflate.as_mut()) {
                Ok(Some(event)) => out.push(event),
                Ok(None) => break,
                Err(e) => return (out, Some(e.code)),
            }
            assert!(input.len() < before, "progress on every event");
        }
        buf = input.as_slice().to_vec();
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let deflate_on = control & 1 == 1;
    let role = if control & 0x80 != 0 {
        Role::Client
    } else {
        Role::Server
    };
    let split = ((control >> 1) & 0x3f) as usize % 17 + 1;
    let whole = decode(data, &[data.len().max(1)], deflate_on, role);
    let pieces = decode(data, &[split, 1, split * 3], deflate_on, role);
    assert_eq!(whole, pieces, "the split changed what was decoded");
});
