//! [`decode`]: one complete frame into a [`Value`].

use bytes::{Bytes, BytesMut};
use memchr::memchr;

use super::Value;
use crate::error::{err, ErrorKind};
use crate::number::string2ll as parse_ll;
use crate::{Limits, ProtocolError};

/// Elements reserved up front for an aggregate, whatever count it announces.
const PREALLOC_CAP: usize = 1024;

/// Decodes one complete frame (e.g. one returned by the
/// [`ReplyScanner`](crate::ReplyScanner)). Streamed strings and aggregates
/// are folded into ordinary values. Fails on fewer or more bytes than one
/// frame, and on malformed integers, booleans and nulls the scanner lets
/// through.
pub fn decode(frame: &Bytes, limits: &Limits) -> Result<Value, ProtocolError> {
    let mut d = Decoder {
        buf: frame,
        pos: 0,
        limits,
    };
    let v = d.value(0)?;
    if d.pos != frame.len() {
        return err(ErrorKind::TrailingBytes);
    }
    Ok(v)
}

struct Decoder<'a> {
    buf: &'a Bytes,
    pos: usize,
    limits: &'a Limits,
}

impl<'a> Decoder<'a> {
    /// Reads one line: its type byte and the body up to CRLF.
    fn line(&mut self) -> Result<(u8, &'a [u8]), ProtocolError> {
        let buf: &'a [u8] = self.buf;
        let start = self.pos;
        let Some(&t) = buf.get(start) else {
            return err(ErrorKind::Incomplete);
        };
        let rest = buf.get(start..).unwrap_or_default();
        let Some(cr) = memchr(b'\r', rest).map(|i| start + i) else {
            return err(ErrorKind::Incomplete);
        };
        if cr - start > self.limits.max_inline_len {
            return err(ErrorKind::LineTooLong);
        }
        match buf.get(cr + 1) {
            Some(b'\n') => {}
            Some(_) => return err(ErrorKind::ExpectedCrlf),
            None => return err(ErrorKind::Incomplete),
        }
        self.pos = cr + 2;
        Ok((t, buf.get(start + 1..cr).unwrap_or_default()))
    }

    /// The body of the line just read, as a zero-copy slice.
    fn body(&self, body: &[u8]) -> Bytes {
        self.buf.slice_ref(body)
    }

    /// Reads `n` payload bytes and their CRLF.
    fn payload(&mut self, n: usize) -> Result<Bytes, ProtocolError> {
        let start = self.pos;
        let end = start.saturating_add(n);
        if end.saturating_add(2) > self.buf.len() {
            return err(ErrorKind::Incomplete);
        }
        if self.buf.get(end..end + 2) != Some(&b"\r\n"[..]) {
            return err(ErrorKind::ExpectedCrlf);
        }
        self.pos = end + 2;
        Ok(self.buf.slice(start..end))
    }

    fn bulk_len(&self, body: &[u8]) -> Result<usize, ProtocolError> {
        match parse_ll(body).map(usize::try_from) {
            Some(Ok(n)) if n <= self.limits.max_bulk_len => Ok(n),
            _ => err(ErrorKind::InvalidBulkLength),
        }
    }

    fn count(&self, body: &[u8]) -> Result<usize, ProtocolError> {
        match parse_ll(body).map(usize::try_from) {
            Some(Ok(n)) if n <= self.limits.max_array_len => Ok(n),
            _ => err(ErrorKind::InvalidMultibulkLength),
        }
    }

    /// Fails if opening one more level at `depth` exceeds the limit (the
    /// scanner's rule: only non-empty or streamed aggregates open a level).
    fn enter(&self, depth: usize) -> Result<usize, ProtocolError> {
        if depth >= self.limits.max_depth {
            return err(ErrorKind::TooDeep);
        }
        Ok(depth + 1)
    }

    fn values(&mut self, n: usize, depth: usize) -> Result<Vec<Value>, ProtocolError> {
        let mut vs = Vec::with_capacity(n.min(PREALLOC_CAP));
        if n > 0 {
            let inner = self.enter(depth)?;
            for _ in 0..n {
                vs.push(self.value(inner)?);
            }
        }
        Ok(vs)
    }

    fn pairs(&mut self, n: usize, depth: usize) -> Result<Vec<(Value, Value)>, ProtocolError> {
        let mut kvs = Vec::with_capacity(n.min(PREALLOC_CAP));
        if n > 0 {
            let inner = self.enter(depth)?;
            for _ in 0..n {
                let k = self.value(inner)?;
                let v = self.value(inner)?;
                kvs.push((k, v));
            }
        }
        Ok(kvs)
    }

    /// Whether the next item is the `.` closing a streamed aggregate
    /// (consumed if so).
    fn end_marker(&mut self) -> Result<bool, ProtocolError> {
        if self.buf.get(self.pos) != Some(&b'.') {
            return Ok(false);
        }
        self.line()?;
        Ok(true)
    }

    fn streamed_values(&mut self, depth: usize) -> Result<Vec<Value>, ProtocolError> {
        let inner = self.enter(depth)?;
        let mut vs = Vec::new();
        while !self.end_marker()? {
            vs.push(self.value(inner)?);
        }
        Ok(vs)
    }

    fn streamed_pairs(&mut self, depth: usize) -> Result<Vec<(Value, Value)>, ProtocolError> {
        let inner = self.enter(depth)?;
        let mut kvs = Vec::new();
        while !self.end_marker()? {
            let k = self.value(inner)?;
            if self.end_marker()? {
                return err(ErrorKind::UnexpectedEnd);
            }
            kvs.push((k, self.value(inner)?));
        }
        Ok(kvs)
    }

    fn streamed_string(&mut self, depth: usize) -> Result<Value, ProtocolError> {
        self.enter(depth)?;
        let mut s = BytesMut::new();
        loop {
            let (t, body) = self.line()?;
            if t != b';' {
                return err(ErrorKind::ExpectedChunk);
            }
            match self.bulk_len(body)? {
                0 => return Ok(Value::Bulk(s.freeze())),
                n => s.extend_from_slice(&self.payload(n)?),
            }
        }
    }

    /// Decodes the value at `pos`, with its attributes if any. `depth` is
    /// the number of aggregates around it.
    fn value(&mut self, depth: usize) -> Result<Value, ProtocolError> {
        let mut attrs = Vec::new();
        loop {
            let (t, body) = self.line()?;
            let v = match t {
                b'|' => {
                    let n = self.count(body)?;
                    attrs.extend(self.pairs(n, depth)?);
                    // Iterate, not recurse: a run of attributes must not
                    // grow the call stack.
                    continue;
                }
                b'+' => Value::Simple(self.body(body)),
                b'-' => Value::Error(self.body(body)),
                b':' => match parse_ll(body) {
                    Some(n) => Value::Integer(n),
                    None => return err(ErrorKind::InvalidValue),
                },
                b'_' if body.is_empty() => Value::Null,
                b'#' if body == b"t" => Value::Boolean(true),
                b'#' if body == b"f" => Value::Boolean(false),
                b'_' | b'#' => return err(ErrorKind::InvalidValue),
                b',' => Value::Double(self.body(body)),
                b'(' => Value::BigNumber(self.body(body)),
                b'$' if body == b"?" => self.streamed_string(depth)?,
                b'$' | b'*' if body == b"-1" => Value::Null,
                b'$' => {
                    let n = self.bulk_len(body)?;
                    Value::Bulk(self.payload(n)?)
                }
                b'!' => {
                    let n = self.bulk_len(body)?;
                    Value::BlobError(self.payload(n)?)
                }
                b'=' => {
                    let n = self.bulk_len(body)?;
                    Value::Verbatim(self.payload(n)?)
                }
                b'*' if body == b"?" => Value::Array(self.streamed_values(depth)?),
                b'~' if body == b"?" => Value::Set(self.streamed_values(depth)?),
                b'%' if body == b"?" => Value::Map(self.streamed_pairs(depth)?),
                b'*' | b'~' | b'>' => {
                    let n = self.count(body)?;
                    let vs = self.values(n, depth)?;
                    match t {
                        b'*' => Value::Array(vs),
                        b'~' => Value::Set(vs),
                        _ => Value::Push(vs),
                    }
                }
                b'%' => {
                    let n = self.count(body)?;
                    Value::Map(self.pairs(n, depth)?)
                }
                b'.' => return err(ErrorKind::UnexpectedEnd),
                other => return err(ErrorKind::UnknownReplyType(other)),
            };
            return Ok(if attrs.is_empty() {
                v
            } else {
                Value::Attribute {
                    attrs,
                    value: Box::new(v),
                }
            });
        }
    }
}
