//! Echo round-trips payloads from 1 byte to 4 MiB, byte-exact, in both dispatch modes.

mod common;

use std::io::{Read, Write};
use std::thread;

use common::*;

#[test]
fn echo_round_trips_every_size_from_one_byte_to_four_mib_in_both_modes() {
    for mode in modes() {
        let server = serve(mode, 2, echo());
        let mut client = connect(addr(&server));
        let mut size = 1;
        while size <= 4 << 20 {
            for len in [size, size + 1] {
                let data = payload(len, len as u8);
                // A writer thread: a 4 MiB echo cannot fit in the socket buffers, so
                // sending all before reading would deadlock.
                let mut writer = client.try_clone().unwrap();
                let sent = data.clone();
                let t = thread::spawn(move || writer.write_all(&sent).unwrap());
                let mut got = vec![0u8; len];
                client.read_exact(&mut got).unwrap();
                t.join().unwrap();
                assert!(got == data, "{mode:?}: {len}-byte echo differs");
            }
            size *= 4;
        }
        drop(client);
        let report = server.shutdown(PATIENCE);
        assert_eq!(report.forced, 0, "{mode:?}");
        let stats = server.stats();
        assert_eq!(stats.bytes_in, stats.bytes_out, "{mode:?}");
        assert_eq!(stats.panics, 0);
    }
}
