//! The four FNV variants exactly as twemproxy computes them (`nc_fnv.c`).
//!
//! All four read bytes through a signed `char`. `fnv1a_64` keeps only the low 32 bits of
//! the 64-bit basis and prime, so it is a 32-bit FNV-1a with an unusual basis.

use super::sign_extend;

const FNV_64_INIT: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_64_PRIME: u64 = 0x0000_0100_0000_01b3;
const FNV_32_INIT: u32 = 0x811c_9dc5;
const FNV_32_PRIME: u32 = 0x0100_0193;

/// 64-bit FNV-1, truncated to its low 32 bits.
pub fn fnv1_64(key: &[u8]) -> u32 {
    let hash = key.iter().fold(FNV_64_INIT, |hash, &b| {
        // (uint64_t)key[x] sign-extends to all 64 bits; the high bits feed later rounds.
        hash.wrapping_mul(FNV_64_PRIME) ^ i64::from(b as i8) as u64
    });
    hash as u32
}

/// twemproxy's `fnv1a_64`: 32-bit FNV-1a with basis 0x84222325 and prime 0x1b3.
pub fn fnv1a_64(key: &[u8]) -> u32 {
    key.iter().fold(FNV_64_INIT as u32, |hash, &b| {
        (hash ^ sign_extend(b)).wrapping_mul(FNV_64_PRIME as u32)
    })
}

/// 32-bit FNV-1.
pub fn fnv1_32(key: &[u8]) -> u32 {
    key.iter().fold(FNV_32_INIT, |hash, &b| {
        hash.wrapping_mul(FNV_32_PRIME) ^ sign_extend(b)
    })
}

/// 32-bit FNV-1a.
pub fn fnv1a_32(key: &[u8]) -> u32 {
    key.iter().fold(FNV_32_INIT, |hash, &b| {
        (hash ^ sign_extend(b)).wrapping_mul(FNV_32_PRIME)
    })
}
