//! `max_connections`: connections beyond the limit are refused and counted, the served
//! ones are unaffected, and a freed place is taken again.

mod common;

use common::*;
use netloop::Server;

#[test]
fn connections_past_max_connections_are_refused_and_counted() {
    for mode in modes() {
        let server = Server::builder()
            .listen("127.0.0.1:0")
            .pollers(2)
            .dispatch(mode)
            .max_connections(5)
            .serve(echo())
            .unwrap();
        let a = addr(&server);
        let mut served: Vec<_> = (0..5).map(|_| connect(a)).collect();
        for s in &mut served {
            assert_eq!(round_trip(s, b"in"), b"in");
        }
        let mut refused: Vec<_> = (0..3).map(|_| connect(a)).collect();
        for r in &mut refused {
            assert!(
                read_to_close(r).is_empty(),
                "{mode:?}: closed without a reply"
            );
        }
        assert!(eventually(|| server.stats().over_limit == 3), "{mode:?}");
        for s in &mut served {
            assert_eq!(round_trip(s, b"still in"), b"still in", "{mode:?}");
        }
        drop(served.pop());
        assert!(eventually(|| server.stats().active == 4));
        let mut late = connect(a);
        assert_eq!(
            round_trip(&mut late, b"room again"),
            b"room again",
            "{mode:?}"
        );
        let stats = server.stats();
        assert_eq!((stats.active, stats.over_limit, stats.accepted), (5, 3, 9));
        server.shutdown(PATIENCE);
    }
}
