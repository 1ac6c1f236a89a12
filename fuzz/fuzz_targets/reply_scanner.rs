//! Fuzzes the reply scanner and decoder: no panics, the same frames whether
//! the input arrives whole, split at a fuzzer-chosen point, or byte by
//! byte; and every frame that decodes re-encodes to a stable frame the
//! scanner delimits exactly.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use resp::{decode, Limits, ProtocolError, ReplyScanner};

type Outcome = (Vec<(Vec<u8>, u8)>, Option<ProtocolError>);

fn run(input: &[u8], cuts: &[usize], limits: Limits) -> Outcome {
    let mut s = ReplyScanner::new(limits);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut prev = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        buf.extend_from_slice(&input[prev..cut]);
        prev = cut;
        loop {
            match s.scan(&buf) {
                Ok(Some(f)) => {
                    assert!(f.len > 0 && f.len <= buf.len());
                    frames.push((buf.split_to(f.len).to_vec(), f.kind));
                }
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let Some((&cut, input)) = input.split_first() else {
        return;
    };
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
    for (frame, _) in &whole.0 {
        let Ok(value) = decode(&Bytes::copy_from_slice(frame), &limits) else {
            continue;
        };
        let mut once = BytesMut::new();
        value.encode_resp3(&mut once);
        let once = once.freeze();
        let (frames, err) = run(&once, &[], Limits::default());
        assert_eq!(err, None);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0.len(), once.len());
        let again = decode(&once, &Limits::default()).expect("re-encoded frame decodes");
        let mut twice = BytesMut::new();
        again.encode_resp3(&mut twice);
        assert_eq!(once, twice.freeze());
    }
});
