//! Fuzzes the request parser against an independent, non-resumable model
//! of redis-server's `processMultibulkBuffer` / `processInlineBuffer` /
//! `sdssplitargs` (with the crate's documented deviations: NUL is ordinary
//! data in a line search, and a line's limit counts every byte before its
//! terminator however the bytes were split).
//!
//! Invariants checked:
//! - no panic;
//! - the same requests, the same stream offset after each request, the
//!   same error and the same number of bytes consumed (on success or
//!   error) whether the input arrives whole, split at a fuzzer-chosen
//!   point, in fuzzer-sized chunks, or byte by byte;
//! - all of that equals the model's answer (so nothing is consumed that is
//!   not accounted for, and the limits are enforced exactly);
//! - a RESP request's `raw` is exactly the client's bytes ending at the
//!   consumed offset, with argument ranges in order and inside `raw`, and
//!   within `max_array_len` / `max_bulk_len`;
//! - asking again with no new bytes changes nothing;
//! - every request parses again from its own forwarded bytes to the same
//!   arguments.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use resp::{ErrorKind, Limits, ProtocolError, RequestParser};

/// One request: the stream offset just past it, its raw bytes, its args.
type Req = (usize, Vec<u8>, Vec<Vec<u8>>);
/// Requests, the error that stopped parsing (if any), bytes consumed.
type Outcome = (Vec<Req>, Option<ProtocolError>, usize);

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
                    let mut end = 0;
                    for range in &r.args {
                        assert!(range.start >= end && range.start <= range.end);
                        assert!(range.end <= r.raw.len());
                        end = range.end;
                    }
                    assert_eq!(r.argc(), r.args.len());
                    assert!(r.argc() > 0, "a request with no arguments is skipped");
                    let at = prev - buf.len();
                    reqs.push((at, r.raw.to_vec(), r.args().map(<[u8]>::to_vec).collect()));
                }
                Ok(None) => {
                    // Asking again without new bytes changes nothing.
                    // (The parser only ever takes bytes off the front.)
                    let before = buf.len();
                    assert!(matches!(p.next(&mut buf), Ok(None)));
                    assert_eq!(before, buf.len());
                    break;
                }
                Err(e) => return (reqs, Some(e), prev - buf.len()),
            }
        }
    }
    (reqs, None, input.len() - buf.len())
}

// ---------------------------------------------------------------------
// The model: re-reads the whole input from each request's start.
// ---------------------------------------------------------------------

enum Step {
    Need,
    Skip(usize),
    /// Bytes consumed, raw, args, whether raw is the client's own bytes.
    Done(usize, Vec<u8>, Vec<Vec<u8>>, bool),
    Fail(ErrorKind),
}

enum Line {
    At(usize),
    Need,
    TooBig,
}

/// The first `needle` at or after `start`, accepted if at most `max`
/// bytes precede it on its line.
fn find(buf: &[u8], start: usize, needle: u8, max: usize) -> Line {
    let found = buf[start..].iter().position(|&b| b == needle);
    match found {
        Some(i) if i <= max => Line::At(start + i),
        _ if buf.len() - start > max => Line::TooBig,
        _ => Line::Need,
    }
}

/// redis-server's `string2ll`, written independently.
fn string2ll(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits[0] == b'0' || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i128 = 0;
    for &d in digits {
        v = v * 10 + i128::from(d - b'0');
        if v > 1 << 64 {
            return None;
        }
    }
    i64::try_from(if neg { -v } else { v }).ok()
}

/// A line ending at a CR that needs one more byte (the skipped LF).
fn count_line(buf: &[u8], start: usize, max: usize, too_big: ErrorKind) -> Result<usize, Step> {
    match find(buf, start, b'\r', max) {
        Line::At(cr) if cr + 1 < buf.len() => Ok(cr),
        Line::At(_) | Line::Need => Err(Step::Need),
        Line::TooBig => Err(Step::Fail(too_big)),
    }
}

fn multibulk(buf: &[u8], l: &Limits) -> Step {
    let cr = match count_line(buf, 0, l.max_inline_len, ErrorKind::TooBigMbulkCountString) {
        Ok(cr) => cr,
        Err(s) => return s,
    };
    let n = match string2ll(&buf[1..cr]) {
        Some(n) if i128::from(n) <= l.max_array_len as i128 => n,
        _ => return Step::Fail(ErrorKind::InvalidMultibulkLength),
    };
    if n <= 0 {
        return Step::Skip(cr + 2);
    }
    let mut pos = cr + 2;
    let mut args = Vec::new();
    for _ in 0..n {
        let cr = match count_line(buf, pos, l.max_inline_len, ErrorKind::TooBigBulkCountString) {
            Ok(cr) => cr,
            Err(s) => return s,
        };
        if buf[pos] != b'$' {
            return Step::Fail(ErrorKind::ExpectedDollar(buf[pos]));
        }
        let len = match string2ll(&buf[pos + 1..cr]) {
            Some(len) if len >= 0 && len as u128 <= l.max_bulk_len as u128 => len as usize,
            _ => return Step::Fail(ErrorKind::InvalidBulkLength),
        };
        pos = cr + 2;
        if buf.len() < pos + len + 2 {
            return Step::Need;
        }
        args.push(buf[pos..pos + len].to_vec());
        pos += len + 2;
    }
    Step::Done(pos, buf[..pos].to_vec(), args, true)
}

/// `sdssplitargs`, transliterated from sds.c (reads past the end as NUL).
fn sdssplitargs(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let c = |i: usize| line.get(i).copied().unwrap_or(0);
    let isspace = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let hexval = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut p = 0;
    let mut vector = Vec::new();
    loop {
        while c(p) != 0 && isspace(c(p)) {
            p += 1;
        }
        if c(p) == 0 {
            return Some(vector);
        }
        let (mut inq, mut insq, mut done) = (false, false, false);
        let mut current = Vec::new();
        while !done {
            if inq {
                if c(p) == b'\\'
                    && c(p + 1) == b'x'
                    && hexval(c(p + 2)).is_some()
                    && hexval(c(p + 3)).is_some()
                {
                    current.push(hexval(c(p + 2))? * 16 + hexval(c(p + 3))?);
                    p += 3;
                } else if c(p) == b'\\' && c(p + 1) != 0 {
                    p += 1;
                    current.push(match c(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        x => x,
                    });
                } else if c(p) == b'"' {
                    if c(p + 1) != 0 && !isspace(c(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c(p) == 0 {
                    return None;
                } else {
                    current.push(c(p));
                }
            } else if insq {
                if c(p) == b'\\' && c(p + 1) == b'\'' {
                    p += 1;
                    current.push(b'\'');
                } else if c(p) == b'\'' {
                    if c(p + 1) != 0 && !isspace(c(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c(p) == 0 {
                    return None;
                } else {
                    current.push(c(p));
                }
            } else {
                match c(p) {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    x => current.push(x),
                }
            }
            if c(p) != 0 {
                p += 1;
            }
        }
        vector.push(current);
    }
}

fn inline(buf: &[u8], l: &Limits) -> Step {
    let nl = match find(buf, 0, b'\n', l.max_inline_len) {
        Line::At(nl) => nl,
        Line::Need => return Step::Need,
        Line::TooBig => return Step::Fail(ErrorKind::TooBigInlineRequest),
    };
    let mut line = &buf[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    // The C string ends at the first NUL.
    if let Some(nul) = line.iter().position(|&b| b == 0) {
        line = &line[..nul];
    }
    let Some(args) = sdssplitargs(line) else {
        return Step::Fail(ErrorKind::UnbalancedQuotes);
    };
    if args.is_empty() {
        return Step::Skip(nl + 1);
    }
    let mut raw = format!("*{}\r\n", args.len()).into_bytes();
    for a in &args {
        raw.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        raw.extend_from_slice(a);
        raw.extend_from_slice(b"\r\n");
    }
    Step::Done(nl + 1, raw, args, false)
}

/// The model's outcome, and for each request whether it is wire bytes.
fn model(input: &[u8], l: &Limits) -> (Outcome, Vec<bool>) {
    let mut pos = 0;
    let mut reqs = Vec::new();
    let mut wire = Vec::new();
    loop {
        let rest = &input[pos..];
        let step = match rest.first() {
            None => Step::Need,
            Some(b'*') => multibulk(rest, l),
            Some(_) => inline(rest, l),
        };
        match step {
            Step::Need => return ((reqs, None, pos), wire),
            Step::Skip(n) => pos += n,
            Step::Done(n, raw, args, is_wire) => {
                pos += n;
                reqs.push((pos, raw, args));
                wire.push(is_wire);
            }
            Step::Fail(kind) => return ((reqs, Some(kind.into()), pos), wire),
        }
    }
}

fn limits_from(ctl: u8, lim: u8) -> Limits {
    if ctl & 1 == 0 {
        return Limits::default();
    }
    // Small, varied limits (zero included) so every limit error and every
    // boundary is reachable with short inputs.
    let lim = usize::from(lim);
    Limits {
        max_bulk_len: lim % 70,
        max_array_len: (lim / 3) % 17,
        max_depth: lim % 6,
        max_inline_len: (lim / 5) % 41,
    }
}

fuzz_target!(|data: &[u8]| {
    let [ctl, cut, lim, input @ ..] = data else {
        return;
    };
    let limits = limits_from(*ctl, *lim);
    let cut = usize::from(*cut) * input.len() / 255;
    let whole = run(input, &[], limits);

    let (expected, wire) = model(input, &limits);
    assert_eq!(whole, expected, "parser vs model");

    assert_eq!(whole, run(input, &[cut], limits), "split at {cut}");
    let step = 1 + usize::from(*ctl >> 1) % 64;
    let chunks: Vec<usize> = (step..input.len()).step_by(step).collect();
    assert_eq!(whole, run(input, &chunks, limits), "chunks of {step}");
    if input.len() <= 256 {
        let bytes: Vec<usize> = (1..input.len()).collect();
        assert_eq!(whole, run(input, &bytes, limits), "byte by byte");
    }

    for ((end, raw, args), is_wire) in whole.0.iter().zip(wire) {
        if is_wire {
            // Forwarded as is: exactly the client's bytes before `end`.
            assert_eq!(&input[end - raw.len()..*end], &raw[..]);
            assert!(args.len() <= limits.max_array_len);
            assert!(args.iter().all(|a| a.len() <= limits.max_bulk_len));
        } else {
            assert_eq!(input[end - 1], b'\n');
        }
        let (again, err, used) = run(raw, &[], Limits::default());
        assert_eq!(err, None);
        assert_eq!(used, raw.len());
        assert_eq!(again.len(), 1);
        assert_eq!(&again[0].2, args);
    }
});
