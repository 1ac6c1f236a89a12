//! Split-read harness shared by the integration tests: run the parser or
//! scanner over an input delivered in pieces and record everything it
//! produced, so whole-buffer and split runs can be compared.

#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing)]

use bytes::BytesMut;
use resp::{Limits, ProtocolError, ReplyScanner, RequestParser};

/// Everything a parser produced from one input.
#[derive(Debug, PartialEq)]
pub struct Parsed {
    /// Per request: forwarded bytes and arguments.
    pub requests: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    /// The error that stopped parsing, if any.
    pub error: Option<ProtocolError>,
    /// Bytes left unconsumed (meaningful only without an error).
    pub rest: Vec<u8>,
}

/// Feeds `input` to a fresh parser cut at `cuts` (ascending offsets).
pub fn parse_cut(input: &[u8], cuts: &[usize], limits: Limits) -> Parsed {
    let mut p = RequestParser::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Parsed {
        requests: Vec::new(),
        error: None,
        rest: Vec::new(),
    };
    let mut prev = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        buf.extend_from_slice(&input[prev..cut]);
        prev = cut;
        loop {
            match p.next(&mut buf) {
                Ok(Some(r)) => {
                    let args = r.args().map(<[u8]>::to_vec).collect();
                    out.requests.push((r.raw.to_vec(), args));
                }
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e);
                    return out;
                }
            }
        }
    }
    out.rest = buf.to_vec();
    out
}

/// Parses `input` whole, then at every 2-split and byte by byte, asserting
/// identical results; returns the whole-buffer result.
pub fn parse_all_ways(input: &[u8], limits: Limits) -> Parsed {
    let whole = parse_cut(input, &[], limits);
    for cut in 0..=input.len() {
        assert_same(&whole, &parse_cut(input, &[cut], limits), input, cut);
    }
    let bytes: Vec<usize> = (1..input.len()).collect();
    assert_same(&whole, &parse_cut(input, &bytes, limits), input, usize::MAX);
    whole
}

fn assert_same(whole: &Parsed, split: &Parsed, input: &[u8], cut: usize) {
    assert_eq!(
        whole.requests,
        split.requests,
        "cut {cut} of {}",
        input.escape_ascii()
    );
    assert_eq!(
        whole.error,
        split.error,
        "cut {cut} of {}",
        input.escape_ascii()
    );
    if whole.error.is_none() {
        assert_eq!(whole.rest, split.rest, "cut {cut}");
    }
}

/// Everything a scanner produced from one input.
#[derive(Debug, PartialEq)]
pub struct Scanned {
    /// Per frame: its bytes and kind.
    pub frames: Vec<(Vec<u8>, u8)>,
    pub error: Option<ProtocolError>,
    pub rest: Vec<u8>,
}

/// Feeds `input` to a fresh scanner cut at `cuts`, splitting off each frame
/// found as the proxy does.
pub fn scan_cut(input: &[u8], cuts: &[usize], limits: Limits) -> Scanned {
    let mut s = ReplyScanner::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Scanned {
        frames: Vec::new(),
        error: None,
        rest: Vec::new(),
    };
    let mut prev = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        buf.extend_from_slice(&input[prev..cut]);
        prev = cut;
        loop {
            match s.scan(&buf) {
                Ok(Some(f)) => {
                    let frame = buf.split_to(f.len);
                    out.frames.push((frame.to_vec(), f.kind));
                }
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e);
                    return out;
                }
            }
        }
    }
    out.rest = buf.to_vec();
    out
}

/// Scans `input` whole, then at every 2-split and byte by byte, asserting
/// identical results; returns the whole-buffer result.
pub fn scan_all_ways(input: &[u8], limits: Limits) -> Scanned {
    let whole = scan_cut(input, &[], limits);
    for cut in 0..=input.len() {
        let split = scan_cut(input, &[cut], limits);
        assert_eq!(
            whole.frames,
            split.frames,
            "cut {cut} of {}",
            input.escape_ascii()
        );
        assert_eq!(
            whole.error,
            split.error,
            "cut {cut} of {}",
            input.escape_ascii()
        );
        if whole.error.is_none() {
            assert_eq!(whole.rest, split.rest);
        }
    }
    let bytes: Vec<usize> = (1..input.len()).collect();
    let split = scan_cut(input, &bytes, limits);
    assert_eq!(
        whole.frames,
        split.frames,
        "bytewise {}",
        input.escape_ascii()
    );
    assert_eq!(
        whole.error,
        split.error,
        "bytewise {}",
        input.escape_ascii()
    );
    whole
}
