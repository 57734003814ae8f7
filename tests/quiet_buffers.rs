//! A connection that goes quiet keeps its pooled buffers only for a while: busy request/
//! response connections keep theirs between requests, and once they all sit idle every
//! buffer goes back (`PollerStats::quiet_buffered` falls to 0) while the connections stay
//! open and keep working.

mod common;

use std::time::{Duration, Instant};

use common::*;

const CONNS: usize = 20;

fn quiet_buffered(server: &netloop::ServerHandle) -> u64 {
    server
        .stats()
        .pollers
        .iter()
        .map(|p| p.quiet_buffered)
        .sum()
}

#[test]
fn quiet_connections_keep_their_buffers_between_requests_and_give_them_back_when_idle() {
    for mode in modes() {
        let server = serve(mode, 1, echo());
        let mut clients: Vec<_> = (0..CONNS).map(|_| connect(addr(&server))).collect();
        // Busy: every connection keeps sending, so one is always between requests.
        let mut seen_kept = 0;
        let start = Instant::now();
        let mut round = 0u8;
        while start.elapsed() < Duration::from_millis(300) {
            for c in &mut clients {
                let data = payload(1000, round);
                assert_eq!(round_trip(c, &data), data, "{mode:?}");
            }
            seen_kept = seen_kept.max(quiet_buffered(&server));
            round = round.wrapping_add(1);
        }
        assert!(
            seen_kept > 0,
            "{mode:?}: connections between requests keep their buffers"
        );
        // Idle: the buffers go back, the connections stay.
        assert!(
            eventually(|| quiet_buffered(&server) == 0),
            "{mode:?}: idle connections still keep {} buffers",
            quiet_buffered(&server)
        );
        assert_eq!(server.stats().active, CONNS as u64, "{mode:?}");
        for c in &mut clients {
            let data = payload(5000, 7);
            assert_eq!(round_trip(c, &data), data, "{mode:?}: served after idling");
        }
        drop(clients);
        server.shutdown(PATIENCE);
    }
}
