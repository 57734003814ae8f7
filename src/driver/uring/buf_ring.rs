//! A provided-buffer ring: the buffers a multishot receive picks from.
//!
//! The `io-uring` crate offers the registration call and the entry layout but no owning
//! type, so this is it: `entries` 16-byte `io_uring_buf` slots in page-aligned anonymous
//! memory (registered with the ring), and `entries` buffers of `buf_len` bytes in one
//! allocation.
//!
//! Ownership: a buffer belongs to the kernel from the [`publish`](BufRing::publish) that
//! covers its slot until a completion names it; from then on it belongs to the poller,
//! which copies the bytes out and [`push`](BufRing::push)es it back in the same turn.
//!
//! Not every free buffer is in the ring. The kernel takes buffers from the ring's head
//! and a given-back one goes in at its tail, so a ring holding all of them would cycle
//! through every buffer in turn: each receive would land in the coldest one, and after
//! a thousand small receives a poller would have touched all `entries` of memory (4 MiB
//! by default) however light its load. So the ring holds only about twice what recent
//! turns took (its `target`); the rest wait on a stack whose top, the buffer given back
//! last and so the one most likely still in cache, is the next to go in. A turn that
//! empties the ring (a receive fails with `ENOBUFS` and is re-armed) doubles it.

use std::io;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

pub(super) struct BufRing {
    ring: NonNull<BufRingEntry>,
    ring_bytes: usize,
    bufs: Box<[u8]>,
    buf_len: usize,
    mask: u16,
    local_tail: u16,
    /// Buffers completions handed to the poller and not yet given back.
    out: usize,
    /// Free buffers not in the ring, the most recently given back on top.
    free: Vec<u16>,
    /// Buffers in the ring (pushed, published or not, and not yet taken by a completion).
    in_ring: usize,
    /// How many buffers `publish` fills the ring up to.
    target: usize,
    /// Buffers taken since the last publish.
    taken_since_publish: usize,
    /// The most taken between two publishes in the current window.
    window_peak: usize,
    /// Publishes in the current window.
    window_turns: u32,
}

/// The fewest buffers the ring is filled to: one multishot receive may take up to 32 in
/// a wake-up (the kernel's retry limit), so room for two.
const MIN_TARGET: usize = 64;
/// Publishes after which the target is re-derived from the window's peak use, so the
/// ring shrinks back (and its buffers stay warm) once a burst has passed.
const WINDOW_TURNS: u32 = 256;

// SAFETY: the mapping and the buffers are owned by this value alone (the kernel aside);
// it moves to the poller thread once, with the ring, and is used only there.
unsafe impl Send for BufRing {}

impl BufRing {
    /// Allocates `entries` (a power of two, at most 32768) buffers of `buf_len` bytes
    /// and registers them with `ring` as buffer group `bgid`.
    ///
    /// The ring must be dropped (which unregisters the group) before this value.
    pub(super) fn new(
        ring: &IoUring,
        bgid: u16,
        entries: u16,
        buf_len: usize,
    ) -> io::Result<BufRing> {
        assert!(entries.is_power_of_two() && entries <= 32768);
        let ring_bytes = usize::from(entries) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: an anonymous private mapping; the result is checked. It is page
        // aligned (as the kernel requires) and zero-filled, so the tail starts at 0.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut br = BufRing {
            ring: NonNull::new(p.cast()).expect("mmap returned a non-null address"),
            ring_bytes,
            // Zeroed memory comes from the allocator untouched: pages cost RSS only
            // once a receive has used them.
            bufs: vec![0u8; usize::from(entries) * buf_len].into_boxed_slice(),
            buf_len,
            mask: entries - 1,
            local_tail: 0,
            out: 0,
            // Popped from the top: buffer 0 first.
            free: (0..entries).rev().collect(),
            in_ring: 0,
            target: MIN_TARGET.min(usize::from(entries)),
            taken_since_publish: 0,
            window_peak: 0,
            window_turns: 0,
        };
        // SAFETY: the slots and buffers live until `self` is dropped, which the owner
        // does only after the ring (and with it the registration) is gone.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(p as u64, entries, bgid, 0)?;
        }
        br.publish();
        Ok(br)
    }

    /// The bytes a completion delivered into buffer `bid`.
    pub(super) fn data(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * self.buf_len;
        &self.bufs[start..start + len.min(self.buf_len)]
    }

    /// A completion handed buffer `bid` to the poller.
    pub(super) fn taken(&mut self) {
        self.out += 1;
        self.in_ring -= 1;
        self.taken_since_publish += 1;
    }

    /// A receive found the ring empty (`ENOBUFS`): offer twice as many from now on.
    pub(super) fn starved(&mut self) {
        self.target = (self.target * 2).min(self.capacity());
    }

    fn capacity(&self) -> usize {
        usize::from(self.mask) + 1
    }

    /// Buffers handed to the poller and not given back yet (0 between turns).
    pub(super) fn out(&self) -> usize {
        self.out
    }

    /// Gives buffer `bid` back (to the kernel again at a later `publish`).
    pub(super) fn push(&mut self, bid: u16) {
        debug_assert!(self.out > 0, "buffer {bid} given back twice");
        self.out -= 1;
        self.free.push(bid);
    }

    /// Sizes the ring for the next turn from what this one took (see the module docs).
    fn adapt(&mut self) {
        let taken = std::mem::take(&mut self.taken_since_publish);
        self.window_peak = self.window_peak.max(taken);
        if 2 * taken > self.target {
            self.target = (2 * taken).min(self.capacity());
        }
        self.window_turns += 1;
        if self.window_turns == WINDOW_TURNS {
            self.target =
                (2 * self.window_peak).clamp(MIN_TARGET.min(self.capacity()), self.capacity());
            self.window_peak = 0;
            self.window_turns = 0;
        }
    }

    fn push_slot(&mut self, bid: u16) {
        let idx = self.local_tail & self.mask;
        // SAFETY: idx is within the mapping, and the kernel reads only the slots between
        // its head and the published tail, which this one is not (the ring never holds
        // more than `entries` buffers, and this buffer was outside it).
        let e = unsafe { &mut *self.ring.as_ptr().add(usize::from(idx)) };
        e.set_addr(self.bufs.as_ptr() as u64 + u64::from(bid) * self.buf_len as u64);
        e.set_len(self.buf_len as u32);
        e.set_bid(bid);
        self.local_tail = self.local_tail.wrapping_add(1);
        self.in_ring += 1;
    }

    /// Fills the ring up to its target from the top of the free stack and makes the new
    /// slots visible to the kernel: a release store of the tail, so the slot writes are
    /// seen before it.
    pub(super) fn publish(&mut self) {
        self.adapt();
        let mut pushed = false;
        while self.in_ring < self.target {
            let Some(bid) = self.free.pop() else { break };
            self.push_slot(bid);
            pushed = true;
        }
        if !pushed {
            return;
        }
        // SAFETY: `tail` points at the u16 tail field overlaying slot 0, naturally
        // aligned inside the mapping; the kernel only reads it.
        unsafe {
            let tail = BufRingEntry::tail(self.ring.as_ptr()) as *const AtomicU16;
            (*tail).store(self.local_tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; the ring that used it is gone.
        unsafe { libc::munmap(self.ring.as_ptr().cast(), self.ring_bytes) };
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    use io_uring::{cqueue, opcode, squeue, types};

    use super::*;

    /// A ring to test with, or `None` where the kernel refuses io_uring.
    fn test_ring() -> Option<IoUring> {
        IoUring::new(8).ok()
    }

    /// One receive on `sock` drawing on group 0; the buffer it used.
    fn receive_one(ring: &mut IoUring, bufs: &mut BufRing, sock: &UnixStream) -> u16 {
        let sqe = opcode::Recv::new(types::Fd(sock.as_raw_fd()), ptr::null_mut(), 64)
            .buf_group(0)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT);
        // SAFETY: the buffers are the ring's own, alive for the whole test.
        unsafe { ring.submission().push(&sqe) }.expect("room for one submission");
        ring.submit_and_wait(1).expect("the receive completes");
        let cqe = ring.completion().next().expect("one completion");
        assert!(cqe.result() > 0, "receive failed: {}", cqe.result());
        let bid = cqueue::buffer_select(cqe.flags()).expect("a provided buffer");
        bufs.taken();
        bid
    }

    #[test]
    fn light_load_reuses_a_few_warm_buffers() {
        let Some(mut ring) = test_ring() else { return };
        let mut bufs = BufRing::new(&ring, 0, 1024, 64).expect("register the buffer ring");
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut used = HashSet::new();
        for _ in 0..500 {
            a.write_all(b"x").unwrap();
            let bid = receive_one(&mut ring, &mut bufs, &b);
            assert_eq!(bufs.data(bid, 1), b"x");
            used.insert(bid);
            bufs.push(bid);
            bufs.publish();
        }
        // One buffer a turn: the ring stays at its minimum, and only those buffers are
        // ever written (a ring of all 1024 would have used 500 different ones).
        assert_eq!(bufs.target, MIN_TARGET);
        assert!(used.len() <= MIN_TARGET, "{} buffers used", used.len());
        drop(ring);
    }

    #[test]
    fn ring_grows_with_use_and_when_starved_then_shrinks_back() {
        let Some(ring) = test_ring() else { return };
        let mut bufs = BufRing::new(&ring, 0, 1024, 64).expect("register the buffer ring");
        assert_eq!(bufs.in_ring, MIN_TARGET);
        // A turn that takes 50 buffers: the next offers twice that.
        for _ in 0..50 {
            bufs.taken();
        }
        for bid in 0..50 {
            bufs.push(bid);
        }
        bufs.publish();
        assert_eq!(bufs.target, 100);
        assert_eq!(bufs.in_ring, 100);
        // A receive that found the ring empty doubles it, up to every buffer there is.
        bufs.starved();
        assert_eq!(bufs.target, 200);
        for _ in 0..10 {
            bufs.starved();
        }
        assert_eq!(bufs.target, 1024);
        bufs.publish();
        assert_eq!(bufs.in_ring, 1024);
        // A quiet window later (the current one still saw the 50) it is back to its
        // minimum; the buffers already offered stay offered until taken.
        for _ in 0..2 * WINDOW_TURNS {
            bufs.publish();
        }
        assert_eq!(bufs.target, MIN_TARGET);
        drop(ring);
    }
}
