//! Bob Jenkins' one-at-a-time hash as twemproxy computes it (signed bytes).

use super::sign_extend;

/// One-at-a-time over `key`, each byte sign-extended as a C `char`.
pub fn one_at_a_time(key: &[u8]) -> u32 {
    let mut value = key.iter().fold(0u32, |mut value, &b| {
        value = value.wrapping_add(sign_extend(b));
        value = value.wrapping_add(value << 10);
        value ^ (value >> 6)
    });
    value = value.wrapping_add(value << 3);
    value ^= value >> 11;
    value.wrapping_add(value << 15)
}
