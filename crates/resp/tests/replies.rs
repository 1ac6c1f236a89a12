//! Reply scanner and decoder behaviour for every RESP2/RESP3 type, every
//! case scanned whole, at every 2-split and byte by byte.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use bytes::{Bytes, BytesMut};
use common::scan_all_ways;
use resp::{decode, ErrorKind, Limits, ReplyScanner, Value};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Scans `frame` (exactly one frame) all ways, checks its kind, decodes it
/// and checks the value re-encodes to something that decodes the same.
fn one(frame: &[u8], kind: u8) -> Value {
    let s = scan_all_ways(frame, Limits::default());
    assert_eq!(s.error, None, "{}", frame.escape_ascii());
    assert_eq!(
        s.frames,
        vec![(frame.to_vec(), kind)],
        "{}",
        frame.escape_ascii()
    );
    let v = decode(&Bytes::copy_from_slice(frame), &Limits::default()).unwrap();
    let mut out = BytesMut::new();
    v.encode_resp3(&mut out);
    assert_eq!(decode(&out.freeze(), &Limits::default()).unwrap(), v);
    v
}

fn scan_err(input: &[u8], limits: Limits) -> ErrorKind {
    scan_all_ways(input, limits).error.expect("an error").kind()
}

#[test]
fn resp2_types() {
    assert_eq!(one(b"+OK\r\n", b'+'), Value::Simple(b("OK")));
    assert_eq!(one(b"-ERR no\r\n", b'-'), Value::Error(b("ERR no")));
    assert_eq!(one(b":-42\r\n", b':'), Value::Integer(-42));
    assert_eq!(one(b"$5\r\nhe\r\no\r\n", b'$'), Value::Bulk(b("he\r\no")));
    assert_eq!(one(b"$0\r\n\r\n", b'$'), Value::Bulk(b("")));
    assert_eq!(one(b"$-1\r\n", b'$'), Value::Null);
    assert_eq!(one(b"*-1\r\n", b'*'), Value::Null);
    assert_eq!(one(b"*0\r\n", b'*'), Value::Array(vec![]));
    assert_eq!(
        one(b"*3\r\n:1\r\n*2\r\n+a\r\n$-1\r\n$1\r\nx\r\n", b'*'),
        Value::Array(vec![
            Value::Integer(1),
            Value::Array(vec![Value::Simple(b("a")), Value::Null]),
            Value::Bulk(b("x")),
        ])
    );
}

#[test]
fn resp3_types() {
    assert_eq!(one(b"_\r\n", b'_'), Value::Null);
    assert_eq!(one(b",3.14\r\n", b','), Value::Double(b("3.14")));
    assert_eq!(one(b",-inf\r\n", b','), Value::Double(b("-inf")));
    assert_eq!(one(b"#t\r\n", b'#'), Value::Boolean(true));
    assert_eq!(one(b"#f\r\n", b'#'), Value::Boolean(false));
    assert_eq!(
        one(b"(3492890328409238509324850943850943825024385\r\n", b'('),
        Value::BigNumber(b("3492890328409238509324850943850943825024385"))
    );
    assert_eq!(
        one(b"!10\r\nSYNTAX bad\r\n", b'!'),
        Value::BlobError(b("SYNTAX bad"))
    );
    let v = one(b"=15\r\ntxt:Some string\r\n", b'=');
    assert_eq!(v, Value::Verbatim(b("txt:Some string")));
    assert_eq!(v.as_bytes(), Some(&b"Some string"[..]));
    assert_eq!(
        one(b"%2\r\n+a\r\n:1\r\n+b\r\n%0\r\n", b'%'),
        Value::Map(vec![
            (Value::Simple(b("a")), Value::Integer(1)),
            (Value::Simple(b("b")), Value::Map(vec![])),
        ])
    );
    assert_eq!(
        one(b"~2\r\n+a\r\n#f\r\n", b'~'),
        Value::Set(vec![Value::Simple(b("a")), Value::Boolean(false)])
    );
    assert_eq!(
        one(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", b'>'),
        Value::Push(vec![
            Value::Bulk(b("message")),
            Value::Bulk(b("ch")),
            Value::Bulk(b("hi"))
        ])
    );
}

#[test]
fn attributes_describe_the_value_after_them() {
    let v = one(
        b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2039123\r\n:9543892\r\n",
        b'*',
    );
    let Value::Attribute { attrs, value } = &v else {
        panic!("{v:?}")
    };
    assert_eq!(attrs.len(), 1);
    assert_eq!(value.as_array().unwrap().len(), 2);
    // Inside an aggregate an attribute does not take an element slot.
    let v = one(b"*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n:2\r\n", b'*');
    let items = v.as_array().unwrap();
    assert_eq!(items[0].as_integer(), Some(1));
    assert!(matches!(items[0], Value::Attribute { .. }));
    assert_eq!(items[1], Value::Integer(2));
    // Consecutive and empty attributes; the kind is the value's.
    let v = one(b"|0\r\n|1\r\n+x\r\n+y\r\n>1\r\n+p\r\n", b'>');
    assert!(matches!(&v, Value::Attribute { attrs, .. } if attrs.len() == 1));
}

#[test]
fn streamed_strings_and_aggregates_fold() {
    assert_eq!(
        one(
            b"$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n",
            b'$'
        ),
        Value::Bulk(b("Hello word"))
    );
    assert_eq!(one(b"$?\r\n;0\r\n", b'$'), Value::Bulk(b("")));
    assert_eq!(
        one(b"*?\r\n:1\r\n$?\r\n;1\r\na\r\n;0\r\n*?\r\n.\r\n.\r\n", b'*'),
        Value::Array(vec![
            Value::Integer(1),
            Value::Bulk(b("a")),
            Value::Array(vec![])
        ])
    );
    assert_eq!(
        one(b"%?\r\n+a\r\n:1\r\n+b\r\n:2\r\n.\r\n", b'%'),
        Value::Map(vec![
            (Value::Simple(b("a")), Value::Integer(1)),
            (Value::Simple(b("b")), Value::Integer(2)),
        ])
    );
    assert_eq!(
        one(b"~?\r\n+a\r\n.\r\n", b'~'),
        Value::Set(vec![Value::Simple(b("a"))])
    );
}

#[test]
fn pipelined_frames_come_one_at_a_time() {
    let input = b"+OK\r\n$3\r\nabc\r\n*2\r\n:1\r\n>1\r\n+x\r\n:5\r\n$5\r\nab";
    let s = scan_all_ways(input, Limits::default());
    let kinds: Vec<u8> = s.frames.iter().map(|f| f.1).collect();
    assert_eq!(kinds, b"+$*:");
    assert_eq!(s.frames[2].0, b"*2\r\n:1\r\n>1\r\n+x\r\n");
    assert_eq!(s.rest, b"$5\r\nab");
}

#[test]
fn scanner_errors() {
    let d = Limits::default();
    assert_eq!(scan_err(b"?x\r\n", d), ErrorKind::UnknownReplyType(b'?'));
    assert_eq!(scan_err(b"+OK\rX", d), ErrorKind::ExpectedCrlf);
    assert_eq!(scan_err(b"$3\r\nabcXY", d), ErrorKind::ExpectedCrlf);
    assert_eq!(scan_err(b"$-2\r\n", d), ErrorKind::InvalidBulkLength);
    assert_eq!(scan_err(b"$x\r\n", d), ErrorKind::InvalidBulkLength);
    assert_eq!(scan_err(b"*-2\r\n", d), ErrorKind::InvalidMultibulkLength);
    assert_eq!(scan_err(b"%-1\r\n", d), ErrorKind::InvalidMultibulkLength);
    assert_eq!(scan_err(b".\r\n", d), ErrorKind::UnexpectedEnd);
    assert_eq!(scan_err(b"*1\r\n.\r\n", d), ErrorKind::UnexpectedEnd);
    assert_eq!(scan_err(b"$?\r\n+x\r\n", d), ErrorKind::ExpectedChunk);
    // Whole but malformed: the one-pass reading of plain replies leaves
    // them to the general scan.
    assert_eq!(scan_err(b"$1\r\nab\r\n", d), ErrorKind::ExpectedCrlf);
    assert_eq!(scan_err(b"$1\rXa\r\n", d), ErrorKind::ExpectedCrlf);
    assert_eq!(scan_err(b"$01\r\na\r\n", d), ErrorKind::InvalidBulkLength);
    assert_eq!(scan_err(b":1\rX", d), ErrorKind::ExpectedCrlf);
    let small = Limits {
        max_bulk_len: 4,
        max_array_len: 2,
        max_depth: 2,
        max_inline_len: 8,
    };
    assert_eq!(scan_err(b"$5\r\n", small), ErrorKind::InvalidBulkLength);
    assert_eq!(
        scan_err(b"$?\r\n;5\r\n", small),
        ErrorKind::InvalidBulkLength
    );
    assert_eq!(
        scan_err(b"*3\r\n", small),
        ErrorKind::InvalidMultibulkLength
    );
    assert_eq!(scan_err(b"+123456789", small), ErrorKind::LineTooLong);
    assert_eq!(scan_err(b"+12345678\r\n", small), ErrorKind::LineTooLong);
    assert_eq!(
        scan_err(b"$4\r\nabcd\r\n$5\r\n", small),
        ErrorKind::InvalidBulkLength
    );
    assert_eq!(scan_err(b"*1\r\n*1\r\n*1\r\n", small), ErrorKind::TooDeep);
    assert_eq!(scan_err(b"*1\r\n*1\r\n$?\r\n", small), ErrorKind::TooDeep);
    // Two levels are fine, and an empty aggregate opens no level.
    let ok = scan_all_ways(b"*1\r\n*1\r\n*0\r\n+1234567\r\n", small);
    assert_eq!((ok.frames.len(), ok.error), (2, None));
}

#[test]
fn decode_rejects_what_the_scanner_passes() {
    let d = Limits::default();
    let kind = |s: &[u8]| decode(&Bytes::copy_from_slice(s), &d).unwrap_err().kind();
    assert_eq!(kind(b":12a\r\n"), ErrorKind::InvalidValue);
    assert_eq!(kind(b"#x\r\n"), ErrorKind::InvalidValue);
    assert_eq!(kind(b"_x\r\n"), ErrorKind::InvalidValue);
    assert_eq!(kind(b"%?\r\n+a\r\n.\r\n"), ErrorKind::UnexpectedEnd);
    assert_eq!(kind(b"+OK\r\n+"), ErrorKind::TrailingBytes);
    assert_eq!(kind(b"*2\r\n+OK\r\n"), ErrorKind::Incomplete);
    assert_eq!(kind(b"$3\r\nab"), ErrorKind::Incomplete);
    assert_eq!(kind(b""), ErrorKind::Incomplete);
    let deep = b"*1\r\n".repeat(65);
    let mut deep = deep;
    deep.extend_from_slice(b":1\r\n");
    assert_eq!(kind(&deep), ErrorKind::TooDeep);
    let mut s = ReplyScanner::new(d);
    assert_eq!(s.scan(&deep).unwrap_err().kind(), ErrorKind::TooDeep);
}

#[test]
fn decode_is_zero_copy() {
    let frame = Bytes::from_static(b"*2\r\n$3\r\nabc\r\n+OK\r\n");
    let v = decode(&frame, &Limits::default()).unwrap();
    let items = v.as_array().unwrap();
    let abc = items[0].as_bytes().unwrap();
    assert_eq!(abc.as_ptr(), frame[8..].as_ptr());
}

#[test]
fn encode_resp2_null_and_accessors() {
    let v = Value::Array(vec![Value::Bulk(b("a")), Value::Null, Value::Integer(3)]);
    let mut out = BytesMut::new();
    v.encode(&mut out);
    assert_eq!(&out[..], b"*3\r\n$1\r\na\r\n$-1\r\n:3\r\n");
    let mut out = BytesMut::new();
    v.encode_resp3(&mut out);
    assert_eq!(&out[..], b"*3\r\n$1\r\na\r\n_\r\n:3\r\n");
    assert!(v.as_array().unwrap()[1].is_null());
    assert!(Value::Error(b("ERR x")).is_error());
    assert_eq!(Value::BlobError(b("E")).as_error(), Some(&b"E"[..]));
    assert_eq!(Value::Map(vec![]).as_map().map(<[_]>::len), Some(0));
    assert_eq!(Value::Integer(1).as_bytes(), None);
}
