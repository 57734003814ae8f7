//! Masking (RFC 6455 §5.3): every byte of a client frame's payload is XORed with the
//! 4-byte key, cycling. Done in place, eight bytes at a time.

/// XORs `data` with `key`, as the payload bytes starting at `offset` within their
/// frame (so a payload unmasked in pieces continues where the last piece stopped).
///
/// ```
/// use netloop::ws::mask::apply;
/// let mut data = *b"hello world";
/// apply(&mut data, [1, 2, 3, 4], 0);
/// let (a, b) = data.split_at_mut(5);
/// apply(a, [1, 2, 3, 4], 0);
/// apply(b, [1, 2, 3, 4], 5);
/// assert_eq!(&data, b"hello world");
/// ```
pub fn apply(data: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset % 4);
    let (head, body, tail) = prefix_align(data);
    // The bytes before the first aligned word, one at a time.
    for (i, b) in head.iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
    key.rotate_left(head.len() % 4);
    let word = u32::from_ne_bytes(key) as u64;
    let wide = word | (word << 32);
    for chunk in body.iter_mut() {
        *chunk ^= wide;
    }
    for (i, b) in tail.iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// A fresh masking key for a client frame, from a fast per-thread generator
/// (`fastrand`, seeded from the operating system's randomness). RFC 6455 asks for keys a
/// peer cannot predict, against proxies that cache by content; they protect no secret.
pub fn new_key() -> [u8; 4] {
    fastrand::u32(..).to_ne_bytes()
}

/// Splits `data` into an unaligned head, 8-byte words, and a tail.
fn prefix_align(data: &mut [u8]) -> (&mut [u8], &mut [u64], &mut [u8]) {
    // SAFETY: any bit pattern is a valid u64, and align_to_mut hands out only properly
    // aligned, in-bounds words.
    unsafe { data.align_to_mut::<u64>() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(data: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in data.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn matches_byte_by_byte_masking_at_every_length_alignment_and_offset() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let base: Vec<u8> = (0..100u8).collect();
        for start in 0..8 {
            for len in 0..64 {
                for offset in 0..4 {
                    let mut fast = base.clone();
                    let mut slow = base.clone();
                    apply(&mut fast[start..start + len], key, offset);
                    naive(&mut slow[start..start + len], key, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                }
            }
        }
    }
}
