//! `pin_cpus(true)` pins each poller thread to its own CPU among those the process may
//! use.

use std::collections::HashSet;

use netloop::Server;

/// (thread name, CPUs it may run on) for every thread of this process.
fn thread_affinities() -> Vec<(String, String)> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| {
            let dir = t.ok()?.path();
            let name = std::fs::read_to_string(dir.join("comm")).ok()?;
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            let cpus = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
                .trim()
                .to_owned();
            Some((name.trim().to_owned(), cpus))
        })
        .collect()
}

#[test]
fn pinned_pollers_each_run_on_one_distinct_cpu() {
    let available = std::thread::available_parallelism().unwrap().get();
    let pollers = available.min(4);
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(pollers)
        .pin_cpus(true)
        .serve(netloop::handler_fn(|conn| conn.close()))
        .unwrap();
    // Pinning happens first thing on each thread; wait until every poller is visible
    // with a single-CPU mask.
    let pinned = || {
        thread_affinities()
            .into_iter()
            .filter(|(name, cpus)| {
                name.starts_with("netloop-poller") && cpus.parse::<usize>().is_ok()
            })
            .map(|(_, cpus)| cpus)
            .collect::<Vec<_>>()
    };
    let start = std::time::Instant::now();
    while pinned().len() < pollers && start.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let cpus = pinned();
    assert_eq!(cpus.len(), pollers, "{:?}", thread_affinities());
    let distinct: HashSet<_> = cpus.iter().collect();
    assert_eq!(distinct.len(), pollers, "pollers share a CPU: {cpus:?}");
    server.shutdown(std::time::Duration::from_secs(5));
}
