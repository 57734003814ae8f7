//! The task protocol's parsers over arbitrary bytes (PROTOCOL.md): the hello, client
//! frames and server frames never panic, always make progress or ask for more, and a
//! client frame parsed and written again is the bytes it was parsed from (the first
//! byte picks the byte order).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netloop::task::codec::{
    parse_client_head, ByteOrder, ClientFrame, ClientFrameKind, ClientHead, Hello, Parsed,
    ServerFrame, TASK_HEADER,
};
use netloop::Bytes;

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let order = if control & 1 == 0 {
        ByteOrder::Little
    } else {
        ByteOrder::Big
    };
    let _ = Hello::parse(data);
    let mut rest = data;
    while !rest.is_empty() {
        match parse_client_head(rest, order, 4096) {
            Ok(Parsed::Need(n)) => {
                assert!(n > 0);
                break;
            }
            Ok(Parsed::Done(head, n)) => {
                let (frame, used) = match head {
                    ClientHead::Task { id, code, len } => {
                        if rest.len() < TASK_HEADER + len {
                            break;
                        }
                        let payload = Bytes::copy_from_slice(&rest[TASK_HEADER..TASK_HEADER + len]);
                        (ClientFrame::Task { id, code, payload }, TASK_HEADER + len)
                    }
                    ClientHead::Other(kind, len) => {
                        assert_eq!(len, n);
                        let frame = match kind {
                            ClientFrameKind::Cancel(id) => ClientFrame::Cancel(id),
                            ClientFrameKind::CancelAll => ClientFrame::CancelAll,
                            ClientFrameKind::Ping(t) => ClientFrame::Ping(t),
                            ClientFrameKind::Goodbye => ClientFrame::Goodbye,
                        };
                        (frame, len)
                    }
                };
                let mut again = netloop::BytesMut::new();
                frame.write(&mut again, order);
                assert_eq!(&again[..], &rest[..used], "written back differently");
                rest = &rest[used..];
            }
            Err(_) => break,
        }
    }
    let mut rest = data;
    while !rest.is_empty() {
        match ServerFrame::parse(rest, order) {
            Ok(Parsed::Done(_, n)) => {
                assert!(n > 0 && n <= rest.len());
                rest = &rest[n..];
            }
            Ok(Parsed::Need(n)) => {
                assert!(n > 0);
                break;
            }
            Err(_) => break,
        }
    }
});
