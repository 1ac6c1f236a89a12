//! Bob Jenkins' lookup3 `hashlittle`, twemproxy's `jenkins` (initval 13).
//!
//! twemproxy has three read paths (4-byte aligned, 2-byte aligned, bytewise); on a
//! little-endian machine all three give the same value, which is what this computes.

use super::le_u32;

const JENKINS_INITVAL: u32 = 13;

/// twemproxy's `jenkins`: `hashlittle(key, len, 13)`.
pub fn jenkins(key: &[u8]) -> u32 {
    hashlittle(key, JENKINS_INITVAL)
}

#[inline]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

#[inline]
fn final_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

/// lookup3 `hashlittle(key, key.len(), initval)`.
pub fn hashlittle(key: &[u8], initval: u32) -> u32 {
    let init = 0xdead_beef_u32
        .wrapping_add(key.len() as u32)
        .wrapping_add(initval);
    let (mut a, mut b, mut c) = (init, init, init);

    // Every 12-byte block but the last is mixed in full; the last (1..=12 bytes) is
    // zero-padded, which equals lookup3's masked reads and its byte-wise switch.
    let mut rest = key;
    while rest.len() > 12 {
        let Some((block, tail)) = rest.split_first_chunk::<12>() else {
            break;
        };
        a = a.wrapping_add(le_u32(&block[0..4]));
        b = b.wrapping_add(le_u32(&block[4..8]));
        c = c.wrapping_add(le_u32(&block[8..12]));
        mix(&mut a, &mut b, &mut c);
        rest = tail;
    }
    if rest.is_empty() {
        // Only the empty key: the loop leaves 1..=12 bytes of any longer one. No mixing.
        return c;
    }
    let mut last = [0u8; 12];
    for (dst, &src) in last.iter_mut().zip(rest) {
        *dst = src;
    }
    a = a.wrapping_add(u32::from_le_bytes([last[0], last[1], last[2], last[3]]));
    b = b.wrapping_add(u32::from_le_bytes([last[4], last[5], last[6], last[7]]));
    c = c.wrapping_add(u32::from_le_bytes([last[8], last[9], last[10], last[11]]));
    final_mix(&mut a, &mut b, &mut c);
    c
}
