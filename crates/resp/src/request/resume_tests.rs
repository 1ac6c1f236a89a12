//! Proof that the request parser does not redo work when a request arrives
//! in pieces: the bytes handed to line searches stay O(n).

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use bytes::BytesMut;

use super::RequestParser;
use crate::Limits;

/// Feeds `input` in `piece`-byte pieces; returns the requests' argument
/// counts and the bytes the parser examined.
fn feed(input: &[u8], piece: usize) -> (Vec<usize>, usize) {
    let mut p = RequestParser::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut argcs = Vec::new();
    for chunk in input.chunks(piece) {
        buf.extend_from_slice(chunk);
        while let Some(r) = p.next(&mut buf).unwrap() {
            argcs.push(r.argc());
        }
    }
    assert!(buf.is_empty());
    (argcs, p.examined)
}

#[test]
fn big_bulk_in_small_pieces_is_linear() {
    let mut input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'v', 1 << 20));
    input.extend_from_slice(b"\r\n");
    let (argcs, examined) = feed(&input, 1024);
    assert_eq!(argcs, vec![3]);
    // Only the header lines are searched; the payload is never looked at.
    assert!(examined < 64, "examined {examined} bytes");
}

#[test]
fn byte_by_byte_headers_are_searched_once() {
    let mut input = Vec::new();
    for i in 0..100 {
        input.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n$4\r\nk{i:03}\r\n").as_bytes());
    }
    let (argcs, examined) = feed(&input, 1);
    assert_eq!(argcs, vec![2; 100]);
    // Each count line is searched once per byte that arrives: <= its length.
    assert!(
        examined <= bound(&input),
        "examined {examined} of {}",
        input.len()
    );
}

#[test]
fn long_inline_line_byte_by_byte_is_linear() {
    let mut input = b"SET k ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 60_000));
    input.extend_from_slice(b"\r\n");
    let (argcs, examined) = feed(&input, 1);
    assert_eq!(argcs, vec![3]);
    assert!(examined <= bound(&input), "examined {examined}");
}

/// Each byte searched once, plus a second look at a CR that arrived
/// before its LF.
fn bound(input: &[u8]) -> usize {
    input.len() + input.iter().filter(|&&b| b == b'\r').count()
}
