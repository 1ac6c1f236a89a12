//! Key hash functions: twemproxy's twelve, bit-for-bit, plus Envoy's 64-bit key hash.
//!
//! Every twemproxy hash is a `uint32_t` in C; [`HashFunction::hash`] widens it to `u64`.
//! Several of them read the key through a signed `char` (x86-64), so bytes >= 0x80 are
//! sign-extended before they are mixed in; `sign_extend` is that one quirk, kept in one
//! place so each function says where it applies.

mod crc;
mod fnv;
mod hsieh;
mod jenkins;
mod md5;
mod murmur;
mod one_at_a_time;

pub use crc::{crc16_xmodem, twemproxy_crc16, twemproxy_crc32, twemproxy_crc32a};
pub use fnv::{fnv1_32, fnv1_64, fnv1a_32, fnv1a_64};
pub use hsieh::hsieh;
pub use jenkins::{hashlittle, jenkins};
pub use md5::{md5, md5_digest};
pub use murmur::{murmur2_64, murmur2_twemproxy, STD_HASH_SEED};
pub use one_at_a_time::one_at_a_time;

/// A key hash function, named as in twemproxy's `hash:` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
// Variant names mirror twemproxy's config names (`fnv1a_64`), which read better than
// `Fnv1a64` next to them.
#[allow(non_camel_case_types)]
pub enum HashFunction {
    /// Bob Jenkins' one-at-a-time hash (signed bytes).
    OneAtATime,
    /// Little-endian `u32` of MD5 digest bytes 0..4.
    Md5,
    /// CRC16-XMODEM table with twemproxy's unmasked 32-bit accumulator.
    Crc16,
    /// libmemcached's 15-bit CRC-32: `(crc32 >> 16) & 0x7fff`.
    Crc32,
    /// Standard CRC-32 (IEEE).
    Crc32a,
    /// Low 32 bits of 64-bit FNV-1 (signed bytes).
    Fnv1_64,
    /// twemproxy's "64-bit" FNV-1a, which is really 32-bit: basis 0x84222325, prime 0x1b3.
    Fnv1a_64,
    /// 32-bit FNV-1 (signed bytes).
    Fnv1_32,
    /// 32-bit FNV-1a (signed bytes).
    Fnv1a_32,
    /// Paul Hsieh's SuperFastHash (signed third byte of a 3-byte tail).
    Hsieh,
    /// MurmurHash2-32 with seed `0xdeadbeef * len`.
    Murmur,
    /// lookup3 `hashlittle(key, len, 13)`.
    Jenkins,
    /// Not in twemproxy: MurmurHash2-64 as in libstdc++'s `std::hash<std::string>`
    /// (seed 0xc70f6907), the key hash of Envoy's Redis proxy.
    Murmur2_64,
}

impl HashFunction {
    /// Every hash function, twemproxy's twelve first, in its config order.
    pub const ALL: [HashFunction; 13] = [
        HashFunction::OneAtATime,
        HashFunction::Md5,
        HashFunction::Crc16,
        HashFunction::Crc32,
        HashFunction::Crc32a,
        HashFunction::Fnv1_64,
        HashFunction::Fnv1a_64,
        HashFunction::Fnv1_32,
        HashFunction::Fnv1a_32,
        HashFunction::Hsieh,
        HashFunction::Murmur,
        HashFunction::Jenkins,
        HashFunction::Murmur2_64,
    ];

    /// The function for a config name (`"fnv1a_64"`, `"murmur2_64"`, ...); exact match.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.name() == name)
    }

    /// The config name, as accepted by [`HashFunction::from_name`].
    pub fn name(self) -> &'static str {
        match self {
            HashFunction::OneAtATime => "one_at_a_time",
            HashFunction::Md5 => "md5",
            HashFunction::Crc16 => "crc16",
            HashFunction::Crc32 => "crc32",
            HashFunction::Crc32a => "crc32a",
            HashFunction::Fnv1_64 => "fnv1_64",
            HashFunction::Fnv1a_64 => "fnv1a_64",
            HashFunction::Fnv1_32 => "fnv1_32",
            HashFunction::Fnv1a_32 => "fnv1a_32",
            HashFunction::Hsieh => "hsieh",
            HashFunction::Murmur => "murmur",
            HashFunction::Jenkins => "jenkins",
            HashFunction::Murmur2_64 => "murmur2_64",
        }
    }

    /// Whether twemproxy has this function (all but [`HashFunction::Murmur2_64`]).
    pub fn is_twemproxy(self) -> bool {
        self != HashFunction::Murmur2_64
    }

    /// Hashes `key`. twemproxy's functions return their `uint32_t` widened.
    ///
    /// This is the bare function: twemproxy's "an empty key hashes to 0" rule belongs to
    /// its distributions and is applied by [`crate::Distribution::locate`].
    pub fn hash(self, key: &[u8]) -> u64 {
        match self {
            HashFunction::OneAtATime => u64::from(one_at_a_time(key)),
            HashFunction::Md5 => u64::from(md5(key)),
            HashFunction::Crc16 => u64::from(twemproxy_crc16(key)),
            HashFunction::Crc32 => u64::from(twemproxy_crc32(key)),
            HashFunction::Crc32a => u64::from(twemproxy_crc32a(key)),
            HashFunction::Fnv1_64 => u64::from(fnv1_64(key)),
            HashFunction::Fnv1a_64 => u64::from(fnv1a_64(key)),
            HashFunction::Fnv1_32 => u64::from(fnv1_32(key)),
            HashFunction::Fnv1a_32 => u64::from(fnv1a_32(key)),
            HashFunction::Hsieh => u64::from(hsieh(key)),
            HashFunction::Murmur => u64::from(murmur2_twemproxy(key)),
            HashFunction::Jenkins => u64::from(jenkins(key)),
            HashFunction::Murmur2_64 => murmur2_64(key),
        }
    }
}

impl std::fmt::Display for HashFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A key byte as twemproxy's C code sees it through a signed `char`, widened to `u32`:
/// 0x80..=0xff become 0xffffff80..=0xffffffff.
#[inline]
pub(crate) fn sign_extend(byte: u8) -> u32 {
    // `as` is the point here: reinterpret as i8, then sign-extend.
    i32::from(byte as i8) as u32
}

/// Little-endian `u32` of a 4-byte chunk (callers pass `chunks_exact(4)` items, so the
/// fallback never happens; it only keeps this free of panics).
#[inline]
pub(crate) fn le_u32(chunk: &[u8]) -> u32 {
    <[u8; 4]>::try_from(chunk).map_or(0, u32::from_le_bytes)
}
