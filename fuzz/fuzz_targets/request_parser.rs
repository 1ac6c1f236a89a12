//! Fuzzes the request parser: no panics, and the same results whether the
//! input arrives whole, split at a fuzzer-chosen point, or byte by byte.
//! Every request parsed must parse again from its own forwarded bytes to
//! the same arguments.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use resp::{Limits, ProtocolError, RequestParser};

type Outcome = (Vec<(Vec<u8>, Vec<Vec<u8>>)>, Option<ProtocolError>);

fn run(input: &[u8], cuts: &[usize], limits: Limits) -> Outcome {
    let mut p = RequestParser::new(limits);
    let mut buf = BytesMut::new();
    let mut reqs = Vec::new();
    let mut prev = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        buf.extend_from_slice(&input[prev..cut]);
        prev = cut;
        loop {
            match p.next(&mut buf) {
                Ok(Some(r)) => {
                    for range in &r.args {
                        assert!(range.end <= r.raw.len());
                    }
                    reqs.push((r.raw.to_vec(), r.args().map(<[u8]>::to_vec).collect()));
                }
                Ok(None) => break,
                Err(e) => return (reqs, Some(e)),
            }
        }
    }
    (reqs, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let Some((&cut, input)) = input.split_first() else {
        return;
    };
    // Small limits let the fuzzer reach every limit error quickly.
    let limits = if ctl & 1 == 0 {
        Limits::default()
    } else {
        Limits {
            max_bulk_len: 64,
            max_array_len: 16,
            max_depth: 4,
            max_inline_len: 32,
        }
    };
    let cut = usize::from(cut) * input.len() / 255;
    let whole = run(input, &[], limits);
    assert_eq!(whole, run(input, &[cut], limits), "split at {cut}");
    if input.len() <= 256 {
        let bytes: Vec<usize> = (1..input.len()).collect();
        assert_eq!(whole, run(input, &bytes, limits), "byte by byte");
    }
    for (raw, args) in &whole.0 {
        let (again, err) = run(raw, &[], Limits::default());
        assert_eq!(err, None);
        assert_eq!(again.len(), 1);
        assert_eq!(&again[0].1, args);
    }
});
