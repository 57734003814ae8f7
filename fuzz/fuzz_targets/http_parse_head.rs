//! The HTTP request-head parser on arbitrary bytes: it never panics, a complete head is
//! within the buffer, and its fields can be read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netloop::http::{parse_head, Limits, Request};
use netloop::Bytes;

fuzz_target!(|data: &[u8]| {
    let buf = Bytes::copy_from_slice(data);
    let mut req = Request::default();
    if let Ok(Some(head)) = parse_head(&buf, &Limits::default(), &mut req) {
        assert!(head.head_len() <= data.len());
        let _ = (req.method(), req.path(), req.minor_version());
        for (name, value) in req.headers() {
            assert!(!name.is_empty());
            let _ = value.len();
        }
    }
});
