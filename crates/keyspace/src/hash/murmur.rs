//! MurmurHash2 in two flavours: twemproxy's 32-bit `murmur`, and the 64-bit variant of
//! libstdc++'s `std::hash<std::string>` (`_Hash_bytes`), which Envoy uses for Redis keys.

use super::le_u32;

const M32: u32 = 0x5bd1_e995;

/// twemproxy's `murmur`: MurmurHash2-32 with seed `0xdeadbeef * len`.
pub fn murmur2_twemproxy(key: &[u8]) -> u32 {
    // size_t -> uint32_t truncation, as in C.
    let len = key.len() as u32;
    let seed = 0xdead_beef_u32.wrapping_mul(len);
    let mut h = seed ^ len;
    let mut chunks = key.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = le_u32(chunk).wrapping_mul(M32);
        k ^= k >> 24;
        k = k.wrapping_mul(M32);
        h = h.wrapping_mul(M32) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        // The C switch falls through 3 -> 2 -> 1: xor every tail byte in, then multiply.
        for (i, &b) in tail.iter().enumerate() {
            h ^= u32::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M32);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M32);
    h ^ (h >> 15)
}

/// The seed libstdc++ passes to `_Hash_bytes` for `std::hash<std::string>`.
pub const STD_HASH_SEED: u64 = 0xc70f_6907;

const M64: u64 = (0xc6a4_a793_u64 << 32) + 0x5bd1_e995;

#[inline]
fn shift_mix(v: u64) -> u64 {
    v ^ (v >> 47)
}

/// libstdc++'s 64-bit `_Hash_bytes(key, len, 0xc70f6907)`, i.e. `std::hash<std::string>`
/// on x86-64, i.e. Envoy's `MurmurHash::murmurHash2` with `STD_HASH_SEED`.
pub fn murmur2_64(key: &[u8]) -> u64 {
    let len = key.len() as u64;
    let mut hash = STD_HASH_SEED ^ len.wrapping_mul(M64);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let word = <[u8; 8]>::try_from(chunk).map_or(0, u64::from_le_bytes);
        let data = shift_mix(word.wrapping_mul(M64)).wrapping_mul(M64);
        hash ^= data;
        hash = hash.wrapping_mul(M64);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        // load_bytes: the tail as a little-endian integer of its own length.
        let data = tail
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        hash ^= data;
        hash = hash.wrapping_mul(M64);
    }
    hash = shift_mix(hash).wrapping_mul(M64);
    shift_mix(hash)
}
