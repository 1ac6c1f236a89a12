//! Request parser behaviour, every case checked whole, at every 2-split and
//! byte by byte.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use bytes::BytesMut;
use common::{parse_all_ways, Parsed};
use resp::{ErrorKind, Limits, ProtocolError, Request, RequestParser};

fn args(xs: &[&str]) -> Vec<Vec<u8>> {
    xs.iter().map(|x| x.as_bytes().to_vec()).collect()
}

fn ok(input: &[u8]) -> Parsed {
    let p = parse_all_ways(input, Limits::default());
    assert_eq!(p.error, None, "{}", input.escape_ascii());
    p
}

fn error(input: &[u8], limits: Limits) -> String {
    let p = parse_all_ways(input, limits);
    p.error.expect("an error").to_string()
}

#[test]
fn multibulk_forwards_client_bytes() {
    let set = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
    let p = ok(set);
    assert_eq!(
        p.requests,
        vec![(set.to_vec(), args(&["SET", "key", "value"]))]
    );
    assert!(p.rest.is_empty());
}

#[test]
fn binary_payloads_and_empty_args() {
    let input = b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$6\r\na\r\n\0\xffb\r\n";
    let p = ok(input);
    assert_eq!(
        p.requests[0].1,
        vec![b"SET".to_vec(), b"".to_vec(), b"a\r\n\0\xffb".to_vec()]
    );
}

#[test]
fn pipeline_mixes_inline_multibulk_and_skips() {
    let input = b"PING\r\n\r\n\n*0\r\n*-1\r\n*-10\r\n   \r\n*1\r\n$4\r\nPING\r\nGET a\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n*2\r\n$3\r\nGE";
    let p = ok(input);
    let got: Vec<_> = p.requests.iter().map(|r| r.1.clone()).collect();
    assert_eq!(
        got,
        vec![
            args(&["PING"]),
            args(&["PING"]),
            args(&["GET", "a"]),
            args(&["GET", "b"])
        ]
    );
    // Inline commands are forwarded re-encoded as RESP arrays.
    assert_eq!(p.requests[0].0, b"*1\r\n$4\r\nPING\r\n");
    assert_eq!(p.requests[2].0, b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n");
    // The incomplete tail stays in the buffer.
    assert_eq!(p.rest, b"*2\r\n$3\r\nGE");
}

#[test]
fn inline_quoting_like_sdssplitargs() {
    let p = ok(b"SET \"a b\\x41\\n\" 'it\\'s'\r\nECHO \"\"\n");
    assert_eq!(
        p.requests[0].1,
        vec![b"SET".to_vec(), b"a bA\n".to_vec(), b"it's".to_vec()]
    );
    assert_eq!(p.requests[1].1, vec![b"ECHO".to_vec(), b"".to_vec()]);
}

#[test]
fn redis_skips_the_byte_after_cr_and_the_payload_terminator() {
    // redis-server checks neither the LF after a count's CR nor the two
    // bytes after a payload; neither do we, so both sides stay in sync.
    let input = b"*1\rX$1\rYaZZ*1\r\n$1\r\nb\r\n";
    let p = ok(input);
    assert_eq!(p.requests.len(), 2);
    assert_eq!(p.requests[0], (b"*1\rX$1\rYaZZ".to_vec(), args(&["a"])));
}

#[test]
fn incomplete_is_none_and_keeps_bytes() {
    for input in [
        &b"*"[..],
        b"*2",
        b"*2\r",
        b"*2\r\n$3\r\nGET\r\n$1\r\na\r",
        b"GET a",
        b"\"x",
    ] {
        let p = ok(input);
        assert!(p.requests.is_empty());
        assert_eq!(p.rest, input);
    }
}

#[test]
fn errors_worded_like_redis() {
    let d = Limits::default();
    assert_eq!(error(b"*abc\r\n", d), "invalid multibulk length");
    assert_eq!(error(b"*3000000000\r\n", d), "invalid multibulk length");
    assert_eq!(error(b"*01\r\n", d), "invalid multibulk length");
    assert_eq!(error(b"*1\r\n$-1\r\n", d), "invalid bulk length");
    assert_eq!(error(b"*1\r\n$abc\r\n", d), "invalid bulk length");
    assert_eq!(error(b"*1\r\n$536870913\r\n", d), "invalid bulk length");
    // Forms the one-pass count line leaves to the general path.
    assert_eq!(error(b"*1\r\n$01\r\n", d), "invalid bulk length");
    assert_eq!(error(b"*1\r\n$+1\r\n", d), "invalid bulk length");
    assert_eq!(error(b"*+1\r\n", d), "invalid multibulk length");
    assert_eq!(error(b"*1\r\n$1234567890\r\n", d), "invalid bulk length");
    assert_eq!(
        error(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", d),
        "expected '$', got 'f'"
    );
    assert_eq!(error(b"*1\r\n\r\n", d), "expected '$', got ' '");
    assert_eq!(error(b"SET \"a\r\n", d), "unbalanced quotes in request");
    assert_eq!(error(b"SET 'a'b\r\n", d), "unbalanced quotes in request");
}

#[test]
fn limits_are_enforced_independently_of_splits() {
    let small = Limits {
        max_bulk_len: 10,
        max_array_len: 3,
        max_depth: 4,
        max_inline_len: 16,
    };
    assert_eq!(error(b"*4\r\n", small), "invalid multibulk length");
    assert_eq!(error(b"*1\r\n$11\r\n", small), "invalid bulk length");
    let p = parse_all_ways(b"*1\r\n$10\r\n0123456789\r\n", small);
    assert_eq!(p.requests.len(), 1);
    // A line of exactly max_inline_len is fine, one more byte is not.
    let p = parse_all_ways(b"ECHO 0123456789a", small);
    assert_eq!((p.requests.len(), p.error), (0, None));
    let p = parse_all_ways(b"ECHO 0123456789a\n", small);
    assert_eq!(p.requests[0].1, args(&["ECHO", "0123456789a"]));
    assert_eq!(
        error(b"ECHO 0123456789a\r\n", small),
        "too big inline request"
    );
    assert_eq!(error(b"ECHO 0123456789ab", small), "too big inline request");
    assert_eq!(
        error(b"*11111111111111111", small),
        "too big mbulk count string"
    );
    assert_eq!(
        error(b"*1\r\n$1111111111111111", small),
        "too big bulk count string"
    );
    let d = Limits::default();
    let mut long = vec![b'a'; 64 * 1024 + 1];
    let mut buf = BytesMut::from(&long[..]);
    let e = RequestParser::new(d).next(&mut buf).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooBigInlineRequest);
    long.pop();
    let mut buf = BytesMut::from(&long[..]);
    assert!(RequestParser::new(d).next(&mut buf).unwrap().is_none());
}

#[test]
fn huge_announced_counts_allocate_nothing_up_front() {
    let mut p = RequestParser::new(Limits::default());
    let mut buf = BytesMut::from(&b"*2147483647\r\n$2147483647\r\n"[..]);
    assert!(matches!(
        p.next(&mut buf),
        Err(e) if e == ProtocolError::from(ErrorKind::InvalidBulkLength)
    ));
    let mut buf = BytesMut::from(&b"*2147483647\r\n$3\r\nGET\r\n"[..]);
    assert!(p.next(&mut buf).unwrap().is_none());
}

#[test]
fn parser_recovers_state_after_error_and_between_requests() {
    let mut p = RequestParser::new(Limits::default());
    let mut buf = BytesMut::from(&b"*1\r\nx\r\n"[..]);
    assert!(p.next(&mut buf).is_err());
    let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\n"[..]);
    let r = p.next(&mut buf).unwrap().unwrap();
    assert_eq!(r.arg(0), Some(&b"PING"[..]));
    assert!(buf.is_empty());
}

#[test]
fn request_accessors() {
    let r = Request::from_args(&[b"DEL".as_slice(), b"k"]);
    assert_eq!(r.argc(), 2);
    let mut buf = BytesMut::from(&r.raw[..]);
    let parsed = RequestParser::new(Limits::default())
        .next(&mut buf)
        .unwrap()
        .unwrap();
    assert_eq!(parsed.raw, r.raw);
    assert_eq!(parsed.args, r.args);
}

#[test]
fn a_recycled_argument_list_serves_the_next_request() {
    let mut parser = RequestParser::new(Limits::default());
    let mut buf =
        BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n"[..]);
    let first = parser.next(&mut buf).unwrap().unwrap();
    let list = first.args.as_ptr();
    parser.recycle(first.args);
    let second = parser.next(&mut buf).unwrap().unwrap();
    assert_eq!(
        second.args.as_ptr(),
        list,
        "the same allocation, not a new one"
    );
    assert_eq!(second.arg(1), Some(&b"b"[..]));

    // A long list is not kept.
    let big = Request::from_args(&vec!["MSET"; 101]);
    parser.recycle(big.args);
    let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\n"[..]);
    let third = parser.next(&mut buf).unwrap().unwrap();
    assert!(third.args.capacity() < 101, "{}", third.args.capacity());
}
