//! The chunked-body decoder fed arbitrary bytes split at arbitrary points: it never
//! panics, gives the same result however its input is split, reports data ranges that lie
//! inside the input, in order and within the body limit, and a `need` beyond what it has.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netloop::http::{Chunked, ChunkedDecoder, Limits};

fn limits() -> Limits {
    Limits::default()
        .max_body_bytes(4096)
        .max_chunk_framing(1024)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let mut whole = ChunkedDecoder::new(&limits());
    let expected = whole.decode(body);
    let mut pieces = ChunkedDecoder::new(&limits());
    let step = split as usize % 17 + 1;
    let mut got = Ok(Chunked::More { need: 0 });
    let mut fed = 0;
    while fed < body.len() {
        fed = (fed + step).min(body.len());
        got = pieces.decode(&body[..fed]);
        match got {
            Ok(Chunked::More { need }) => assert!(need > fed, "need {need} at {fed}"),
            _ => break,
        }
    }
    if body.is_empty() {
        return;
    }
    // Done or an error as soon as the whole input decides it; a split one may stop at
    // the same point earlier.
    assert_eq!(got, expected, "split every {step}");
    if let Ok(Chunked::Done { end }) = expected {
        assert!(end <= body.len());
        assert_eq!(whole.data(), pieces.data());
        let mut last = 0;
        let mut total = 0;
        for r in whole.data() {
            assert!(r.start >= last && r.start < r.end && r.end <= end, "{r:?}");
            last = r.end;
            total += r.len();
        }
        assert_eq!(total, whole.body_len());
        assert!(total <= limits().body_limit());
    }
});
