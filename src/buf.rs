//! The per-poller pool of I/O buffers.
//!
//! An idle connection holds no read buffer: a buffer is taken from the pool when bytes
//! are about to be read and given back once the handler has consumed everything.
//!
//! Handed-out data is never overwritten: [`Input::next`](crate::Input::next) splits the
//! front of a buffer off as a [`Bytes`](bytes::Bytes), and the buffer itself only ever
//! writes past that front. A buffer comes back with its front used up, so it is
//! *reclaimed* (its start moved back to the beginning of its allocation, which is only
//! possible once no `Bytes` shares it) lazily: not on every return, which would cost a
//! reclaim per request, but when its spare room has run low. Until then the next reads
//! go on into the room after the front. A buffer still shared when it is reclaimed is
//! left to its `Bytes` (freed when the last one goes) and replaced by a fresh one.

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

    /// An empty buffer with at least a quarter of `size` bytes of spare room (see
    /// [`put`](BufPool::put)).
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
        // An oversized buffer (grown for a large frame) is freed rather than kept.
        if self.free.len() >= self.max_free || buf.capacity() > self.size * 4 {
            return;
        }
        buf.clear();
        // With a quarter of a buffer left after the front that was used, it goes back as
        // it is (see the module docs); below that it is reclaimed now, and only a buffer
        // nobody else shares can be.
        if buf.capacity() >= self.size / 4 || buf.try_reclaim(self.size) {
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
    fn a_buffer_shared_with_live_bytes_is_reused_only_past_them() {
        let mut pool = BufPool::new(64, 8);
        let mut b = pool.get();
        b.extend_from_slice(b"data still in use");
        let kept = b.split_to(4).freeze();
        b.clear();
        pool.put(&mut b);
        assert_eq!(pool.free_count(), 1, "room is left after the shared front");
        let mut again = pool.get();
        again.extend_from_slice(&[b'x'; 50]);
        assert_eq!(
            &kept[..],
            b"data",
            "written past the shared front, not over it"
        );
        // Used up nearly to its end while `kept` still shares it: it cannot be
        // reclaimed, so it is left to `kept` rather than pooled.
        drop(again.split_to(50));
        pool.put(&mut again);
        assert_eq!(pool.free_count(), 0);
        assert_eq!(&kept[..], b"data");
    }

    #[test]
    fn a_used_up_buffer_is_reclaimed_to_its_start_once_unshared() {
        let mut pool = BufPool::new(64, 8);
        let mut b = pool.get();
        let start = b.as_ptr();
        b.extend_from_slice(&[1; 60]);
        drop(b.split_to(60));
        pool.put(&mut b);
        let again = pool.get();
        assert_eq!(again.as_ptr(), start, "reclaimed: back at its start");
        assert!(again.capacity() >= 64);
    }

    #[test]
    fn a_partly_used_buffer_goes_back_as_it_is_and_keeps_serving_reads() {
        let mut pool = BufPool::new(1024, 8);
        let mut b = pool.get();
        let start = b.as_ptr() as usize;
        b.extend_from_slice(&[1; 100]);
        drop(b.split_to(100));
        pool.put(&mut b);
        let mut again = pool.get();
        assert_eq!(
            again.as_ptr() as usize,
            start + 100,
            "not moved: no reclaim"
        );
        pool.ensure_spare(&mut again, 512);
        assert!(again.capacity() >= 512);
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
