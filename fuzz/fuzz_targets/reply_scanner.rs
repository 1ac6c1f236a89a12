//! Fuzzes the reply scanner and decoder against an independent recursive
//! (non-resumable) model of the scanner's grammar.
//!
//! Invariants checked:
//! - no panic;
//! - every frame is non-empty and no longer than the bytes it was found in;
//! - the same frames (bytes and kind) and the same error whether the input
//!   arrives whole, split at a fuzzer-chosen point, in fuzzer-sized chunks,
//!   or byte by byte; asking again with no new bytes changes nothing;
//! - all of that equals the model's answer (limits enforced exactly);
//! - the decoder agrees with the scanner on where each frame ends (it may
//!   only reject a frame for a malformed value, never as incomplete or
//!   with trailing bytes, nor for a limit the scanner let through), and
//!   the decoded value's type matches the frame's kind;
//! - a decoded value re-encodes to one frame the scanner delimits exactly,
//!   that decodes back to the same value (up to the line sanitising of
//!   LF in simple strings) and re-encodes to the same bytes.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use resp::{decode, ErrorKind, Limits, ProtocolError, ReplyScanner, Value};

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
                Ok(None) => {
                    assert_eq!(s.scan(&buf), Ok(None), "idempotent when no bytes arrive");
                    break;
                }
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

// ---------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------

enum Stop {
    Need,
    Fail(ErrorKind),
}

type Res<T> = Result<T, Stop>;

fn fail<T>(k: ErrorKind) -> Res<T> {
    Err(Stop::Fail(k))
}

struct Model<'a> {
    buf: &'a [u8],
    l: Limits,
}

fn string2ll(s: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(s).ok()?;
    let n: i64 = text.parse().ok()?;
    // Canonical form only: no '+', no leading zeros, no "-0", <= 20 bytes.
    (n.to_string() == text).then_some(n)
}

impl Model<'_> {
    /// The line starting at `pos`: its type byte, body, and the offset
    /// past its CRLF. At most `max_inline_len` bytes precede the CR.
    fn line(&self, pos: usize) -> Res<(u8, &[u8], usize)> {
        let Some(&t) = self.buf.get(pos) else {
            return Err(Stop::Need);
        };
        let rest = &self.buf[pos..];
        match rest.iter().position(|&b| b == b'\r') {
            Some(i) if i <= self.l.max_inline_len => match rest.get(i + 1) {
                None => Err(Stop::Need),
                Some(b'\n') => Ok((t, rest.get(1..i).unwrap_or_default(), pos + i + 2)),
                Some(_) => fail(ErrorKind::ExpectedCrlf),
            },
            _ if rest.len() > self.l.max_inline_len => fail(ErrorKind::LineTooLong),
            _ => Err(Stop::Need),
        }
    }

    fn enter(&self, depth: usize) -> Res<usize> {
        if depth >= self.l.max_depth {
            return fail(ErrorKind::TooDeep);
        }
        Ok(depth + 1)
    }

    fn bulk_len(&self, body: &[u8]) -> Res<usize> {
        match string2ll(body) {
            Some(n) if n >= 0 && n as u128 <= self.l.max_bulk_len as u128 => Ok(n as usize),
            _ => fail(ErrorKind::InvalidBulkLength),
        }
    }

    fn count(&self, body: &[u8]) -> Res<u64> {
        match string2ll(body) {
            Some(n) if n >= 0 && n as u128 <= self.l.max_array_len as u128 => Ok(n as u64),
            _ => fail(ErrorKind::InvalidMultibulkLength),
        }
    }

    fn blob(&self, pos: usize, n: usize) -> Res<usize> {
        let end = pos + n + 2;
        if self.buf.len() < end {
            return Err(Stop::Need);
        }
        if &self.buf[end - 2..end] != b"\r\n" {
            return fail(ErrorKind::ExpectedCrlf);
        }
        Ok(end)
    }

    /// An attribute (its `|n` line already read): n pairs of elements.
    fn attribute(&self, body: &[u8], mut pos: usize, depth: usize) -> Res<usize> {
        let n = self.count(body)?;
        if n > 0 {
            let inner = self.enter(depth)?;
            for _ in 0..2 * n {
                pos = self.element(pos, inner)?.0;
            }
        }
        Ok(pos)
    }

    /// One element at `pos`, attributes in front included; returns the
    /// offset past it and its (non-attribute) type byte.
    fn element(&self, mut pos: usize, depth: usize) -> Res<(usize, u8)> {
        loop {
            let (t, body, next) = self.line(pos)?;
            if t == b'|' {
                pos = self.attribute(body, next, depth)?;
                continue;
            }
            return Ok((self.value(t, body, next, depth)?, t));
        }
    }

    /// The rest of a value whose first line (`t`, `body`) is read.
    fn value(&self, t: u8, body: &[u8], mut pos: usize, depth: usize) -> Res<usize> {
        match t {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(pos),
            b'$' if body == b"?" => {
                self.enter(depth)?;
                loop {
                    let (t, body, next) = self.line(pos)?;
                    if t != b';' {
                        return fail(ErrorKind::ExpectedChunk);
                    }
                    match self.bulk_len(body)? {
                        0 => return Ok(next),
                        n => pos = self.blob(next, n)?,
                    }
                }
            }
            b'$' | b'*' if body == b"-1" => Ok(pos),
            b'$' | b'!' | b'=' => self.blob(pos, self.bulk_len(body)?),
            b'*' | b'~' | b'%' if body == b"?" => {
                let inner = self.enter(depth)?;
                // Items until `.`; an attribute may come right before it
                // (the scanner only delimits, it does not check this, nor
                // that a streamed map has pairs).
                loop {
                    let (t, body, next) = self.line(pos)?;
                    pos = match t {
                        b'.' => return Ok(next),
                        b'|' => self.attribute(body, next, inner)?,
                        _ => self.value(t, body, next, inner)?,
                    };
                }
            }
            b'*' | b'~' | b'>' | b'%' => {
                let n = self.count(body)?;
                let n = if t == b'%' { 2 * n } else { n };
                if n > 0 {
                    let inner = self.enter(depth)?;
                    for _ in 0..n {
                        pos = self.element(pos, inner)?.0;
                    }
                }
                Ok(pos)
            }
            b'.' => fail(ErrorKind::UnexpectedEnd),
            _ => fail(ErrorKind::UnknownReplyType(t)),
        }
    }
}

fn model(input: &[u8], l: Limits) -> Outcome {
    let mut frames = Vec::new();
    let mut pos = 0;
    loop {
        let m = Model {
            buf: &input[pos..],
            l,
        };
        match m.element(0, 0) {
            Ok((len, kind)) => {
                frames.push((input[pos..pos + len].to_vec(), kind));
                pos += len;
            }
            Err(Stop::Need) => return (frames, None),
            Err(Stop::Fail(k)) => return (frames, Some(k.into())),
        }
    }
}

// ---------------------------------------------------------------------
// Decoder checks.
// ---------------------------------------------------------------------

fn kind_matches(kind: u8, v: &Value) -> bool {
    matches!(
        (kind, v.without_attributes()),
        (b'+', Value::Simple(_))
            | (b'-', Value::Error(_))
            | (b':', Value::Integer(_))
            | (b'$' | b'*' | b'_', Value::Null)
            | (b'$', Value::Bulk(_))
            | (b'*', Value::Array(_))
            | (b',', Value::Double(_))
            | (b'#', Value::Boolean(_))
            | (b'(', Value::BigNumber(_))
            | (b'!', Value::BlobError(_))
            | (b'=', Value::Verbatim(_))
            | (b'%', Value::Map(_))
            | (b'~', Value::Set(_))
            | (b'>', Value::Push(_))
    )
}

/// Whether encoding keeps every byte: simple-line types map LF to a space.
fn lossless(v: &Value) -> bool {
    let all = |vs: &[Value]| vs.iter().all(lossless);
    let pairs = |kvs: &[(Value, Value)]| kvs.iter().all(|(k, v)| lossless(k) && lossless(v));
    match v {
        Value::Simple(s) | Value::Error(s) | Value::Double(s) | Value::BigNumber(s) => {
            !s.contains(&b'\n')
        }
        Value::Array(vs) | Value::Set(vs) | Value::Push(vs) => all(vs),
        Value::Map(kvs) => pairs(kvs),
        Value::Attribute { attrs, value } => pairs(attrs) && lossless(value),
        _ => true,
    }
}

fn limits_from(ctl: u8, lim: u8) -> Limits {
    if ctl & 1 == 0 {
        return Limits::default();
    }
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
    assert_eq!(whole, model(input, limits), "scanner vs model");
    assert_eq!(whole, run(input, &[cut], limits), "split at {cut}");
    let step = 1 + usize::from(*ctl >> 1) % 64;
    let chunks: Vec<usize> = (step..input.len()).step_by(step).collect();
    assert_eq!(whole, run(input, &chunks, limits), "chunks of {step}");
    if input.len() <= 256 {
        let bytes: Vec<usize> = (1..input.len()).collect();
        assert_eq!(whole, run(input, &bytes, limits), "byte by byte");
    }
    for (frame, kind) in &whole.0 {
        let value = match decode(&Bytes::copy_from_slice(frame), &limits) {
            Ok(v) => v,
            // Values the scanner does not look at, or a streamed map or
            // aggregate with a dangling key / attribute before its end.
            Err(e) if matches!(e.kind(), ErrorKind::InvalidValue | ErrorKind::UnexpectedEnd) => {
                continue
            }
            Err(e) => panic!("scanner delimited a frame the decoder rejects: {e:?}"),
        };
        assert!(kind_matches(*kind, &value), "kind {kind} vs {value:?}");
        let mut once = BytesMut::new();
        value.encode_resp3(&mut once);
        let once = once.freeze();
        let (frames, err) = run(&once, &[], Limits::default());
        assert_eq!(err, None);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0.len(), once.len());
        let again = decode(&once, &Limits::default()).expect("re-encoded frame decodes");
        if lossless(&value) {
            assert_eq!(again, value, "decode(encode(v)) == v");
        }
        let mut twice = BytesMut::new();
        again.encode_resp3(&mut twice);
        assert_eq!(once, twice.freeze());
    }
});
