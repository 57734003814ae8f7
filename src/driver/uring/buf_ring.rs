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
    /// Pushed since the last publish.
    unpublished: bool,
    /// Buffers completions handed to the poller and not yet given back.
    out: usize,
}

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
            unpublished: false,
            out: 0,
        };
        // SAFETY: the slots and buffers live until `self` is dropped, which the owner
        // does only after the ring (and with it the registration) is gone.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(p as u64, entries, bgid, 0)?;
        }
        for bid in 0..entries {
            br.push_slot(bid);
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
    }

    /// Buffers handed to the poller and not given back yet (0 between turns).
    pub(super) fn out(&self) -> usize {
        self.out
    }

    /// Gives buffer `bid` back (visible to the kernel after the next `publish`).
    pub(super) fn push(&mut self, bid: u16) {
        debug_assert!(self.out > 0, "buffer {bid} given back twice");
        self.out -= 1;
        self.push_slot(bid);
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
        self.unpublished = true;
    }

    /// Makes the pushed buffers visible to the kernel: a release store of the tail, so
    /// the slot writes are seen before it.
    pub(super) fn publish(&mut self) {
        if !std::mem::take(&mut self.unpublished) {
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
