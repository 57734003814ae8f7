//! The client's check of a server's handshake answer over arbitrary bytes: it never
//! panics, a head it accepts lies within what it was given, the verdict on the whole
//! answer does not change when it is first shown a prefix (a prefix is either "not all
//! there yet" or already the same error), and permessage-deflate answers parse without
//! panicking. The first byte picks the offer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netloop::ws::client::handshake::{check_response, deflate_answer, Offer};
use netloop::ws::DeflateConfig;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fuzz_target!(|data: &[u8]| {
    let Some((&control, answer)) = data.split_first() else {
        return;
    };
    let mut offer = Offer::new();
    if control & 1 != 0 {
        offer = offer.subprotocol("chat").subprotocol("v2");
    }
    let deflate = DeflateConfig::default().server_context_takeover(control & 2 != 0);
    if control & 4 != 0 {
        offer = offer.deflate(deflate);
    }
    let whole = check_response(answer, KEY, &offer);
    if let Ok(Some(opened)) = &whole {
        assert!(opened.head_len <= answer.len());
    }
    let cut = (control as usize >> 3) * answer.len() / 32;
    match check_response(&answer[..cut], KEY, &offer) {
        Ok(None) => {}
        Ok(Some(opened)) => assert_eq!(Ok(Some(opened)), whole, "a complete prefix is the answer"),
        Err(e) => assert_eq!(Err(e), whole, "an error in a prefix stays"),
    }
    if let Ok(text) = std::str::from_utf8(answer) {
        let _ = deflate_answer(text, &deflate);
    }
});
