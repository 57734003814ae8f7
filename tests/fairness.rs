//! One peer flooding a poller does not starve the others on it: with a firehose peer
//! and ten ping-pong peers on one poller, every ping-pong peer keeps completing round
//! trips (counted, not timed).

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use common::*;

#[test]
fn ping_pong_peers_keep_completing_while_another_peer_floods() {
    const ROUND_TRIPS: usize = 200;
    for mode in modes() {
        let server = serve(mode, 1, echo());
        let a = addr(&server);
        let stop = Arc::new(AtomicBool::new(false));
        // The firehose writes 64 KiB blocks as fast as it can and drains the echo.
        let mut flood = connect(a);
        let mut flood_reader = flood.try_clone().unwrap();
        let flooded = {
            let stop = stop.clone();
            thread::spawn(move || {
                let block = vec![1u8; 64 * 1024];
                let mut total = 0u64;
                while !stop.load(Ordering::Relaxed) && total < 64 << 30 {
                    if flood.write_all(&block).is_err() {
                        break;
                    }
                    total += block.len() as u64;
                }
                total
            })
        };
        let drain = thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            while let Ok(n) = common::read_some(&mut flood_reader, &mut buf) {
                if n == 0 {
                    break;
                }
            }
        });
        // Wait until the flood is under way before starting the ping-pongs.
        assert!(eventually(|| server.stats().bytes_in > 8 << 20));
        let pingers: Vec<_> = (0..10)
            .map(|i| {
                thread::spawn(move || {
                    let mut s = connect(a);
                    let msg = format!("ping {i}");
                    for _ in 0..ROUND_TRIPS {
                        assert_eq!(round_trip(&mut s, msg.as_bytes()), msg.as_bytes());
                    }
                    ROUND_TRIPS
                })
            })
            .collect();
        let done: usize = pingers.into_iter().map(|p| p.join().unwrap()).sum();
        let flood_in_progress = !flooded.is_finished();
        stop.store(true, Ordering::Relaxed);
        let flooded = flooded.join().unwrap();
        assert_eq!(done, 10 * ROUND_TRIPS, "{mode:?}");
        assert!(
            flood_in_progress,
            "{mode:?}: the flood ended before the ping-pongs did"
        );
        assert!(flooded > 8 << 20, "{mode:?}");
        server.shutdown(PATIENCE);
        drain.join().unwrap();
    }
}
