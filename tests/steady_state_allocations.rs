//! Steady state allocates nothing per request: after a warm-up, echoing N requests
//! costs the same number of heap allocations whether N is 1,000 or 10,000.
//!
//! This binary installs a counting global allocator, so it holds this one test only.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: defers every operation to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Echoes `n` 1 KiB requests over each client (buffers allocated up front) and returns
/// the heap allocations made meanwhile, by the whole process.
fn allocations_for(clients: &mut [TcpStream], n: usize, msg: &[u8], back: &mut [u8]) -> u64 {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..n {
        for c in clients.iter_mut() {
            c.write_all(msg).unwrap();
            c.read_exact(back).unwrap();
        }
    }
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
fn echo_allocations_do_not_grow_with_the_number_of_requests() {
    for mode in modes() {
        let server = serve(mode, 1, echo());
        let mut clients: Vec<_> = (0..4).map(|_| connect(addr(&server))).collect();
        let msg = payload(1024, 9);
        let mut back = vec![0u8; msg.len()];
        allocations_for(&mut clients, 500, &msg, &mut back); // warm-up
        let small = allocations_for(&mut clients, 250, &msg, &mut back);
        let large = allocations_for(&mut clients, 2500, &msg, &mut back);
        assert_eq!(back, msg);
        eprintln!("{mode:?}: {small} allocations for 1,000 requests, {large} for 10,000");
        // 9,000 more requests may not cost more than a handful of extra allocations.
        assert!(
            large <= small + 8,
            "{mode:?}: {small} allocations for 1,000 requests but {large} for 10,000"
        );
        drop(clients);
        server.shutdown(PATIENCE);
    }
}
