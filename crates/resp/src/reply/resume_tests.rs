//! Proof that the reply scanner does not redo work when a reply arrives in
//! pieces: the bytes handed to line searches stay O(n).

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::ReplyScanner;
use crate::Limits;

/// Scans `input` (one frame) growing it by `piece` bytes per call; returns
/// the bytes the scanner examined.
fn feed(input: &[u8], piece: usize) -> usize {
    let mut s = ReplyScanner::new(Limits::default());
    let mut len = 0;
    loop {
        len = (len + piece).min(input.len());
        if let Some(f) = s.scan(&input[..len]).unwrap() {
            assert_eq!(f.len, input.len());
            return s.examined;
        }
        assert!(len < input.len(), "frame not found");
    }
}

#[test]
fn big_bulk_in_small_pieces_is_linear() {
    let mut input = b"$1048576\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'v', 1 << 20));
    input.extend_from_slice(b"\r\n");
    assert!(feed(&input, 1024) < 16);
}

#[test]
fn streamed_and_nested_byte_by_byte_is_linear() {
    let mut input = b"*?\r\n".to_vec();
    for i in 0..200 {
        input.extend_from_slice(format!("%1\r\n+k{i}\r\n$?\r\n;3\r\nabc\r\n;0\r\n").as_bytes());
    }
    input.extend_from_slice(b".\r\n");
    let examined = feed(&input, 1);
    assert!(
        examined <= bound(&input),
        "examined {examined} of {}",
        input.len()
    );
}

#[test]
fn long_simple_string_byte_by_byte_is_linear() {
    let mut input = b"+".to_vec();
    input.extend(std::iter::repeat_n(b'x', 50_000));
    input.extend_from_slice(b"\r\n");
    let examined = feed(&input, 1);
    assert!(examined <= bound(&input), "examined {examined}");
}

/// Each byte searched once, plus a second look at a CR that arrived
/// before its LF.
fn bound(input: &[u8]) -> usize {
    input.len() + input.iter().filter(|&&b| b == b'\r').count()
}
