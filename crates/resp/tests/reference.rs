//! Property tests against the `redis-protocol` crate as a reference:
//! random RESP2/RESP3 frames encoded by its encoder must be found by our
//! scanner at exactly their length (however they are split) and decoded by
//! our `decode` to the value its decoder gives; random requests encoded by
//! it must be parsed back to the same bytes and arguments.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::collections::{HashMap, HashSet};

use bytes::{Bytes, BytesMut};
use common::{parse_cut, scan_cut};
use proptest::collection::vec;
use proptest::prelude::*;
use redis_protocol::resp2::types::{OwnedFrame as Frame2, Resp2Frame};
use redis_protocol::resp3::types::{OwnedFrame as Frame3, Resp3Frame, VerbatimStringFormat};
use resp::{decode, Limits, Value};

fn encode3(f: &Frame3) -> Vec<u8> {
    let mut buf = vec![0u8; f.encode_len(false)];
    let n = redis_protocol::resp3::encode::complete::encode(&mut buf, f, false).unwrap();
    buf.truncate(n);
    buf
}

fn encode2(f: &Frame2) -> Vec<u8> {
    let mut buf = vec![0u8; f.encode_len(false)];
    let n = redis_protocol::resp2::encode::encode(&mut buf, f, false).unwrap();
    buf.truncate(n);
    buf
}

fn utf8(b: &Bytes) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// Our value in the reference crate's terms.
fn to_frame3(v: &Value) -> Frame3 {
    let all = |vs: &[Value]| vs.iter().map(to_frame3).collect::<Vec<_>>();
    let pairs = |kvs: &[(Value, Value)]| {
        kvs.iter()
            .map(|(k, v)| (to_frame3(k), to_frame3(v)))
            .collect::<HashMap<_, _>>()
    };
    let attributes = None;
    match v {
        Value::Simple(s) => Frame3::SimpleString {
            data: s.to_vec(),
            attributes,
        },
        Value::Error(e) => Frame3::SimpleError {
            data: utf8(e),
            attributes,
        },
        Value::Integer(n) => Frame3::Number {
            data: *n,
            attributes,
        },
        Value::Bulk(b) => Frame3::BlobString {
            data: b.to_vec(),
            attributes,
        },
        Value::Null => Frame3::Null,
        Value::Array(vs) => Frame3::Array {
            data: all(vs),
            attributes,
        },
        Value::Double(d) => Frame3::Double {
            data: utf8(d).parse().unwrap(),
            attributes,
        },
        Value::Boolean(b) => Frame3::Boolean {
            data: *b,
            attributes,
        },
        Value::BigNumber(n) => Frame3::BigNumber {
            data: n.to_vec(),
            attributes,
        },
        Value::BlobError(e) => Frame3::BlobError {
            data: e.to_vec(),
            attributes,
        },
        Value::Verbatim(b) => Frame3::VerbatimString {
            data: b[4..].to_vec(),
            format: match &b[..4] {
                b"txt:" => VerbatimStringFormat::Text,
                b"mkd:" => VerbatimStringFormat::Markdown,
                other => panic!("format {other:?}"),
            },
            attributes,
        },
        Value::Map(kvs) => Frame3::Map {
            data: pairs(kvs),
            attributes,
        },
        Value::Set(vs) => Frame3::Set {
            data: all(vs).into_iter().collect::<HashSet<_>>(),
            attributes,
        },
        Value::Push(vs) => Frame3::Push {
            data: all(vs),
            attributes,
        },
        Value::Attribute { attrs, value } => {
            let mut f = to_frame3(value);
            f.add_attributes(pairs(attrs)).unwrap();
            f
        }
    }
}

fn to_frame2(v: &Value) -> Frame2 {
    match v {
        Value::Simple(s) => Frame2::SimpleString(s.to_vec()),
        Value::Error(e) => Frame2::Error(utf8(e)),
        Value::Integer(n) => Frame2::Integer(*n),
        Value::Bulk(b) => Frame2::BulkString(b.to_vec()),
        Value::Null => Frame2::Null,
        Value::Array(vs) => Frame2::Array(vs.iter().map(to_frame2).collect()),
        other => panic!("not RESP2: {other:?}"),
    }
}

fn leaf3() -> impl Strategy<Value = Frame3> {
    prop_oneof![
        vec(any::<u8>(), 0..40).prop_map(|data| Frame3::BlobString {
            data,
            attributes: None
        }),
        vec(any::<u8>(), 0..40).prop_map(|data| Frame3::BlobError {
            data,
            attributes: None
        }),
        "[a-zA-Z0-9 :.-]{0,20}".prop_map(|s| Frame3::SimpleString {
            data: s.into_bytes(),
            attributes: None
        }),
        "[A-Z]{1,8}( [a-z0-9 ]{0,20})?".prop_map(|data| Frame3::SimpleError {
            data,
            attributes: None
        }),
        any::<bool>().prop_map(|data| Frame3::Boolean {
            data,
            attributes: None
        }),
        Just(Frame3::Null),
        any::<i64>().prop_map(|data| Frame3::Number {
            data,
            attributes: None
        }),
        prop_oneof![
            any::<f64>().prop_filter("nan", |d| !d.is_nan()),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY)
        ]
        .prop_map(|data| Frame3::Double {
            data,
            attributes: None
        }),
        "-?[1-9][0-9]{0,40}".prop_map(|s| Frame3::BigNumber {
            data: s.into_bytes(),
            attributes: None
        }),
        (
            vec(any::<u8>(), 0..30),
            prop_oneof![
                Just(VerbatimStringFormat::Text),
                Just(VerbatimStringFormat::Markdown)
            ]
        )
            .prop_map(|(data, format)| Frame3::VerbatimString {
                data,
                format,
                attributes: None
            }),
    ]
}

/// The reference hashes map keys, set members and attribute keys, and
/// only scalar frames can be hashed: keys come from `leaf3`.
fn attrs_of(
    inner: impl Strategy<Value = Frame3>,
) -> impl Strategy<Value = HashMap<Frame3, Frame3>> {
    vec((leaf3(), inner), 1..3).prop_map(|kvs| kvs.into_iter().collect())
}

fn frame3() -> impl Strategy<Value = Frame3> {
    leaf3().prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(|data| Frame3::Array {
                data,
                attributes: None
            }),
            vec((leaf3(), inner.clone()), 0..4).prop_map(|kvs| Frame3::Map {
                data: kvs.into_iter().collect(),
                attributes: None
            }),
            vec(leaf3(), 0..4).prop_map(|vs| Frame3::Set {
                data: vs.into_iter().collect(),
                attributes: None
            }),
            vec(inner.clone(), 0..4).prop_map(|data| Frame3::Push {
                data,
                attributes: None
            }),
            (inner.clone(), attrs_of(inner)).prop_map(|(mut f, attrs)| {
                // Only some frame types carry attributes (not Null).
                let _ = f.add_attributes(attrs);
                f
            }),
        ]
    })
}

fn frame2() -> impl Strategy<Value = Frame2> {
    let leaf = prop_oneof![
        vec(any::<u8>(), 0..40).prop_map(Frame2::BulkString),
        "[a-zA-Z0-9 ]{0,20}".prop_map(|s| Frame2::SimpleString(s.into_bytes())),
        "[A-Z]{1,8} [a-z ]{0,20}".prop_map(Frame2::Error),
        any::<i64>().prop_map(Frame2::Integer),
        Just(Frame2::Null),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| vec(inner, 0..6).prop_map(Frame2::Array))
}

/// Scans `bytes` (one frame, then `tail`) whole and at `cut`, checking the
/// frame is found at exactly its length both ways; returns our decoding.
fn scan_and_decode(bytes: &[u8], tail: &[u8], cut: usize) -> Value {
    let mut input = bytes.to_vec();
    input.extend_from_slice(tail);
    let cut = cut % (input.len() + 1);
    for cuts in [&[][..], &[cut]] {
        let s = scan_cut(&input, cuts, Limits::default());
        assert_eq!(s.error, None);
        assert!(!s.frames.is_empty(), "{}", input.escape_ascii());
        assert_eq!(s.frames[0].0, bytes, "cuts {cuts:?}");
    }
    decode(&Bytes::copy_from_slice(bytes), &Limits::default()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn resp3_frames_match_reference(f in frame3(), cut in any::<usize>()) {
        let bytes = encode3(&f);
        let (reference, used) =
            redis_protocol::resp3::decode::complete::decode(&bytes).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        let ours = scan_and_decode(&bytes, b"+next\r\n", cut);
        prop_assert_eq!(to_frame3(&ours), reference);
        // Re-encoding our value gives bytes the reference reads the same.
        let mut again = BytesMut::new();
        ours.encode_resp3(&mut again);
        let (back, _) = redis_protocol::resp3::decode::complete::decode(&again).unwrap().unwrap();
        prop_assert_eq!(to_frame3(&ours), back);
    }

    #[test]
    fn resp2_frames_match_reference(f in frame2(), cut in any::<usize>()) {
        let bytes = encode2(&f);
        let (reference, used) = redis_protocol::resp2::decode::decode(&bytes).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(&reference, &f);
        let ours = scan_and_decode(&bytes, b":1\r\n", cut);
        prop_assert_eq!(to_frame2(&ours), reference);
        let mut again = BytesMut::new();
        ours.encode(&mut again);
        prop_assert_eq!(&again[..], &bytes[..]);
    }

    #[test]
    fn streamed_frames_fold(
        chunks in vec(vec(any::<u8>(), 1..20), 0..5),
        items in vec(leaf3(), 0..5),
        kind in 0..3u8,
        cut in any::<usize>(),
    ) {
        use redis_protocol::resp3::encode::streaming as s;
        use redis_protocol::resp3::types::FrameKind;
        let mut buf = vec![0u8; 1 << 16];
        // A streamed string of `chunks`...
        let mut n = s::encode_start_string(&mut buf, 0).unwrap();
        for c in &chunks {
            n = s::encode_string_chunk(&mut buf, n, c).unwrap();
        }
        n = s::encode_end_string(&mut buf, n).unwrap();
        let string_end = n;
        // ...then a streamed aggregate of `items`.
        let agg = [FrameKind::Array, FrameKind::Set, FrameKind::Map][usize::from(kind)];
        n = s::encode_start_aggregate_type(&mut buf, n, agg).unwrap();
        let pairs: Vec<_> = items.chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect();
        if agg == FrameKind::Map {
            for (k, v) in &pairs {
                n = s::encode_owned_aggregate_type_inner_kv_pair(&mut buf, n, k, v, false).unwrap();
            }
        } else {
            for i in &items {
                n = s::encode_owned_aggregate_type_inner_value(&mut buf, n, i, false).unwrap();
            }
        }
        n = s::encode_end_aggregate_type(&mut buf, n).unwrap();
        buf.truncate(n);

        let sc = scan_cut(&buf, &[cut % (n + 1)], Limits::default());
        prop_assert_eq!(sc.error, None);
        prop_assert_eq!(sc.frames.len(), 2);
        prop_assert_eq!(sc.frames[0].0.len(), string_end);

        let string = decode(&Bytes::copy_from_slice(&buf[..string_end]), &Limits::default()).unwrap();
        prop_assert_eq!(string, Value::Bulk(chunks.concat().into()));
        let folded = decode(&Bytes::copy_from_slice(&buf[string_end..]), &Limits::default()).unwrap();
        let expected = match agg {
            FrameKind::Array => Frame3::Array { data: items.clone(), attributes: None },
            FrameKind::Set => Frame3::Set { data: items.iter().cloned().collect(), attributes: None },
            _ => Frame3::Map { data: pairs.into_iter().collect(), attributes: None },
        };
        // Compare through the reference's own reading of each element.
        let reread = |f: &Frame3| {
            redis_protocol::resp3::decode::complete::decode(&encode3(f)).unwrap().unwrap().0
        };
        prop_assert_eq!(reread(&to_frame3(&folded)), reread(&expected));
    }

    #[test]
    fn requests_match_reference(
        reqs in vec(vec(vec(any::<u8>(), 0..30), 1..8), 1..6),
        cuts in vec(any::<usize>(), 0..4),
    ) {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for args in &reqs {
            let frame = Frame2::Array(args.iter().cloned().map(Frame2::BulkString).collect());
            let bytes = encode2(&frame);
            input.extend_from_slice(&bytes);
            expected.push((bytes, args.clone()));
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let p = parse_cut(&input, &cuts, Limits::default());
        prop_assert_eq!(p.error, None);
        prop_assert!(p.rest.is_empty());
        prop_assert_eq!(p.requests, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_splits_agree(
        input in vec(prop_oneof![any::<u8>(), Just(b'\r'), Just(b'\n'), Just(b'*'), Just(b'$'), Just(b'"')], 0..200),
        cut in any::<usize>(),
    ) {
        let cut = cut % (input.len() + 1);
        let small = Limits { max_bulk_len: 64, max_array_len: 16, max_depth: 4, max_inline_len: 32 };
        let whole = parse_cut(&input, &[], small);
        let split = parse_cut(&input, &[cut], small);
        prop_assert_eq!(&whole.requests, &split.requests);
        prop_assert_eq!(&whole.error, &split.error);
        let whole = scan_cut(&input, &[], small);
        let split = scan_cut(&input, &[cut], small);
        prop_assert_eq!(&whole.frames, &split.frames);
        prop_assert_eq!(&whole.error, &split.error);
        for (frame, _) in &whole.frames {
            // Whatever the scanner delimits, decode never panics on it.
            let _ = decode(&Bytes::copy_from_slice(frame), &small);
        }
    }
}
