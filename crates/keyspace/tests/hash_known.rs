//! Published check values for each hash family, and the C quirks the twemproxy variants
//! keep. (Placement against the real nutcracker is in `golden.rs`.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

use keyspace::hash::{
    crc16_xmodem, fnv1_32, fnv1_64, fnv1a_32, fnv1a_64, hashlittle, hsieh, jenkins, md5,
    murmur2_twemproxy, one_at_a_time, twemproxy_crc16, twemproxy_crc32, twemproxy_crc32a,
};
use keyspace::{DistributionKind, HashFunction};

const CHECK: &[u8] = b"123456789";

#[test]
fn crc_family() {
    // The standard check values, and twemproxy's unmasked crc16 (FACTS.md).
    assert_eq!(crc16_xmodem(CHECK), 0x31C3);
    assert_eq!(twemproxy_crc16(CHECK), 0x8690_31C3);
    assert_eq!(twemproxy_crc32a(CHECK), 0xCBF4_3926);
    // libmemcached's crc32: bits 16..30 of the standard CRC-32.
    assert_eq!(twemproxy_crc32(CHECK), 0x4BF4);
    assert_eq!(twemproxy_crc16(b""), 0);
}

#[test]
fn md5_is_le_u32_of_the_digest() {
    // md5("123456789") = 25f9e794..., md5("") = d41d8cd9...
    assert_eq!(md5(CHECK), 0x94e7_f925);
    assert_eq!(md5(b""), 0xd98c_1dd4);
}

#[test]
fn fnv_family_matches_published_vectors_on_ascii() {
    // FNV-1/FNV-1a 32-bit vectors from the FNV test suite.
    assert_eq!(fnv1_32(b""), 0x811c_9dc5);
    assert_eq!(fnv1_32(b"a"), 0x050c_5d7e);
    assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
    assert_eq!(fnv1_32(b"foobar"), 0x31f0_b262);
    assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
    // 64-bit FNV-1 "a" = 0xaf63bd4c8601b7be, "foobar" = 0x340d8765a4dda9c2: low halves.
    assert_eq!(fnv1_64(b"a"), 0x8601_b7be);
    assert_eq!(fnv1_64(b"foobar"), 0xa4dd_a9c2);
    // twemproxy's fnv1a_64 is 32-bit FNV-1a with basis 0x84222325 and prime 0x1b3, which
    // on ASCII equals the low half of 64-bit FNV-1a ("a" = 0xaf63dc4c8601ec8c).
    assert_eq!(fnv1a_64(b"a"), 0x8601_ec8c);
    assert_eq!(fnv1a_64(b"foobar"), 0xf739_67e8);
    assert_eq!(fnv1a_64(b""), 0x8422_2325);
}

#[test]
fn signed_char_quirk() {
    // twemproxy reads key bytes through a signed char: 0xff is mixed in as 0xffffffff.
    assert_eq!(
        fnv1a_32(&[0xff]),
        (0x811c_9dc5_u32 ^ 0xffff_ffff).wrapping_mul(0x0100_0193)
    );
    assert_eq!(
        fnv1_32(&[0xff]),
        0x811c_9dc5_u32.wrapping_mul(0x0100_0193) ^ 0xffff_ffff
    );
    assert_eq!(
        fnv1a_64(&[0x80]),
        (0x8422_2325_u32 ^ 0xffff_ff80).wrapping_mul(0x1b3)
    );
    // ... but not everywhere: crc16 masks the index, md5/murmur/jenkins read unsigned.
    assert_ne!(one_at_a_time(&[0x80]), one_at_a_time(&[0x00]));
    assert_eq!(
        twemproxy_crc16(&[0x80]) & 0xffff,
        u32::from(crc16_xmodem(&[0x80]))
    );
}

#[test]
fn one_at_a_time_vectors() {
    assert_eq!(one_at_a_time(b"a"), 0xca2e_9442);
    assert_eq!(
        one_at_a_time(b"The quick brown fox jumps over the lazy dog"),
        0x519e_91f5
    );
    assert_eq!(one_at_a_time(b""), 0);
}

#[test]
fn lookup3_vectors() {
    // From the self-test (driver5) in Bob Jenkins' lookup3.c.
    assert_eq!(hashlittle(b"", 0), 0xdead_beef);
    assert_eq!(hashlittle(b"", 0xdead_beef), 0xbd5b_7dde);
    assert_eq!(
        hashlittle(b"Four score and seven years ago", 0),
        0x1777_0551
    );
    assert_eq!(
        hashlittle(b"Four score and seven years ago", 1),
        0xcd62_8161
    );
    assert_eq!(jenkins(b"x"), hashlittle(b"x", 13));
    // Exactly 12 and 24 bytes: the last block is mixed by `final`, not `mix`.
    assert_ne!(jenkins(b"123456789012"), jenkins(b"12345678901"));
}

#[test]
fn empty_keys() {
    assert_eq!(hsieh(b""), 0);
    // MurmurHash2-32 of nothing: seed 0, h = 0, final mixes of 0 stay 0.
    assert_eq!(murmur2_twemproxy(b""), 0);
}

#[test]
fn twemproxy_hashes_fit_in_32_bits() {
    let keys: [&[u8]; 5] = [b"", b"a", b"hello world", &[0xff; 7], &[0x80; 33]];
    for h in HashFunction::ALL.into_iter().filter(|h| h.is_twemproxy()) {
        for key in keys {
            assert!(h.hash(key) <= u64::from(u32::MAX), "{h} {key:?}");
        }
    }
    assert!(HashFunction::Crc32.hash(b"anything at all") <= 0x7fff);
}

#[test]
fn names_round_trip() {
    let names: Vec<&str> = HashFunction::ALL.iter().map(|h| h.name()).collect();
    assert_eq!(
        names,
        [
            "one_at_a_time",
            "md5",
            "crc16",
            "crc32",
            "crc32a",
            "fnv1_64",
            "fnv1a_64",
            "fnv1_32",
            "fnv1a_32",
            "hsieh",
            "murmur",
            "jenkins",
            "murmur2_64"
        ]
    );
    for h in HashFunction::ALL {
        assert_eq!(HashFunction::from_name(h.name()), Some(h));
    }
    assert_eq!(HashFunction::from_name("FNV1A_64"), None);
    assert_eq!(HashFunction::from_name("xxh64"), None);
    for k in DistributionKind::ALL {
        assert_eq!(DistributionKind::from_name(k.name()), Some(k));
    }
    assert_eq!(DistributionKind::from_name("ring"), None);
}
