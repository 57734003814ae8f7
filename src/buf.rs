//! The per-poller pool of I/O buffers.
//!
//! An idle connection holds no read buffer: a buffer is taken from the pool when bytes
//! are about to be read and given back once the handler has consumed everything. A
//! buffer whose bytes are still shared with a [`Bytes`](bytes::Bytes) the handler kept
//! (zero-copy `next`) cannot be reused; it is dropped from the pool and freed when the
//! last `Bytes` goes, so handed-out data is never overwritten.

use bytes::BytesMut;

/// A free list of equally sized buffers, owned by one poller thread.
pub(crate) struct BufPool {
    free: Vec<BytesMut>,
    size: usize,
    max_free: usize,
}

impl BufPool {
    /// A pool of `size`-byte buffers that keeps at most `max_free` of them.
    pub(crate) fn new(size: usize, max_free: usize) -> BufPool {
        BufPool {
            free: Vec::with_capacity(max_free.min(4096)),
            size,
            max_free,
        }
    }

    /// An empty buffer with at least `buffer_size()` bytes of capacity.
    pub(crate) fn get(&mut self) -> BytesMut {
        self.free
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(self.size))
    }

    /// Makes sure `buf` can take at least `min_spare` more bytes, filling an empty
    /// placeholder from the pool instead of allocating.
    pub(crate) fn ensure_spare(&mut self, buf: &mut BytesMut, min_spare: usize) {
        if buf.capacity() == 0 && buf.is_empty() {
            *buf = self.get();
        }
        if buf.capacity() - buf.len() < min_spare {
            // Reclaims the front of the allocation in place when no `Bytes` still
            // shares it; allocates otherwise.
            buf.reserve(min_spare.max(self.size / 2));
        }
    }

    /// Gives an output tail a pooled buffer before a handler call if the handler wrote
    /// through it last time (so a response does not start from an empty, growing
    /// buffer); the poller takes it back once the output is sent.
    // Inlined: it runs before every handler call and usually only clears a flag.
    #[inline]
    pub(crate) fn provision_tail(&mut self, output: &mut crate::Output) {
        if std::mem::take(&mut output.used_tail) && output.tail.capacity() == 0 {
            output.tail = self.get();
        }
    }

    /// Gives an emptied buffer back, leaving an unallocated placeholder in its place.
    pub(crate) fn put(&mut self, buf: &mut BytesMut) {
        let mut buf = std::mem::take(buf);
        if self.free.len() >= self.max_free {
            return;
        }
        buf.clear();
        // Only a buffer nobody else shares can be handed out again; an oversized one
        // (grown for a large frame) is freed rather than kept.
        if buf.try_reclaim(self.size) && buf.capacity() <= self.size * 4 {
            self.free.push(buf);
        }
    }

    /// Number of buffers waiting in the pool.
    #[cfg(test)]
    pub(crate) fn free_count(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_a_returned_buffer_without_allocating() {
        let mut pool = BufPool::new(1024, 8);
        let mut b = pool.get();
        let ptr = b.as_ptr();
        b.extend_from_slice(b"hello");
        pool.put(&mut b);
        assert_eq!(b.capacity(), 0, "placeholder left behind holds no memory");
        assert_eq!(pool.free_count(), 1);
        let again = pool.get();
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.capacity() >= 1024);
    }

    #[test]
    fn a_buffer_shared_with_live_bytes_is_not_reused() {
        let mut pool = BufPool::new(64, 8);
        let mut b = pool.get();
        b.extend_from_slice(b"data still in use");
        let kept = b.split_to(4).freeze();
        b.clear();
        pool.put(&mut b);
        assert_eq!(pool.free_count(), 0);
        assert_eq!(&kept[..], b"data");
    }

    #[test]
    fn ensure_spare_takes_from_the_pool_for_an_empty_placeholder() {
        let mut pool = BufPool::new(256, 8);
        let mut b = pool.get();
        pool.put(&mut b);
        let mut placeholder = BytesMut::new();
        pool.ensure_spare(&mut placeholder, 128);
        assert!(placeholder.capacity() >= 256);
        assert_eq!(pool.free_count(), 0);
    }
}
