//! Frame headers: parsing any bytes never panics; a parsed header writes back to bytes
//! that parse to the same header; "need n" always asks for more than it has.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netloop::ws::frame::{parse, write_header, Parsed, MAX_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    for rsv1 in [false, true] {
        match parse(data, rsv1) {
            Ok(Parsed::Need(n)) => assert!(n > data.len() && n <= MAX_HEADER_LEN),
            Ok(Parsed::Header(h)) => {
                assert!(h.header_len <= data.len());
                let mut out = [0u8; MAX_HEADER_LEN];
                let n = write_header(&mut out, h.fin, h.rsv1, h.opcode, h.mask, h.len);
                // The writer uses the shortest length form; the parser accepts any.
                let Ok(Parsed::Header(back)) = parse(&out[..n], rsv1) else {
                    panic!("a written header does not parse");
                };
                assert_eq!((back.fin, back.rsv1, back.opcode, back.mask, back.len), (h.fin, h.rsv1, h.opcode, h.mask, h.len));
            }
            Err(_) => {}
        }
    }
});
