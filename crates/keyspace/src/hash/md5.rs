//! MD5, used for twemproxy's `md5` key hash and for every ketama ring point.

use md5::{Digest, Md5};

/// The 16-byte MD5 digest of `data`.
pub fn md5_digest(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// twemproxy's `md5` hash: the little-endian `u32` of digest bytes 0..4.
pub fn md5(key: &[u8]) -> u32 {
    let d = md5_digest(key);
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}
