//! Paul Hsieh's SuperFastHash as twemproxy computes it (`nc_hsieh.c`).
//!
//! One quirk: in a 3-byte tail the third byte is read through a signed `char`.

use super::sign_extend;

#[inline]
fn get16(lo: u8, hi: u8) -> u32 {
    u32::from(u16::from_le_bytes([lo, hi]))
}

/// SuperFastHash of `key`; 0 for the empty key.
pub fn hsieh(key: &[u8]) -> u32 {
    if key.is_empty() {
        return 0;
    }
    let mut hash: u32 = 0;
    let mut chunks = key.chunks_exact(4);
    for chunk in &mut chunks {
        if let &[a, b, c, d] = chunk {
            hash = hash.wrapping_add(get16(a, b));
            let tmp = (get16(c, d) << 11) ^ hash;
            hash = (hash << 16) ^ tmp;
            hash = hash.wrapping_add(hash >> 11);
        }
    }
    match *chunks.remainder() {
        [a, b, c] => {
            hash = hash.wrapping_add(get16(a, b));
            hash ^= hash << 16;
            hash ^= sign_extend(c) << 18;
            hash = hash.wrapping_add(hash >> 11);
        }
        [a, b] => {
            hash = hash.wrapping_add(get16(a, b));
            hash ^= hash << 11;
            hash = hash.wrapping_add(hash >> 17);
        }
        [a] => {
            hash = hash.wrapping_add(u32::from(a));
            hash ^= hash << 10;
            hash = hash.wrapping_add(hash >> 1);
        }
        _ => {}
    }
    // Force "avalanching" of the final bits.
    hash ^= hash << 3;
    hash = hash.wrapping_add(hash >> 5);
    hash ^= hash << 4;
    hash = hash.wrapping_add(hash >> 17);
    hash ^= hash << 25;
    hash.wrapping_add(hash >> 6)
}
