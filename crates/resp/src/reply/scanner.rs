//! The resumable reply scanner: finds where each complete RESP2/RESP3
//! frame ends without building values, so replies pass through untouched.

use crate::error::{err, ErrorKind};
use crate::find::find_byte;
use crate::number::{plain_length, string2ll as parse_ll};
use crate::{Limits, ProtocolError};

/// A complete reply frame found at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyFrame {
    /// Length in bytes, from the buffer's first byte.
    pub len: usize,
    /// First byte of the frame (`+`, `-`, `$`, `>` for a RESP3 push...);
    /// for an attribute-prefixed reply, that of the value after the
    /// attribute.
    pub kind: u8,
}

/// An aggregate the scanner is inside of.
#[derive(Debug, Clone, Copy)]
enum Open {
    /// `left` more elements to go. An attribute's elements are its pairs;
    /// when it closes it does not count as an element of its parent (the
    /// value it describes follows).
    Counted { left: u64, attribute: bool },
    /// A streamed aggregate (`*?`, `~?`, `%?`), closed by `.`.
    Streamed,
    /// A streamed string (`$?`): `;len` chunks until `;0`.
    Chunks,
}

/// A length-prefixed payload being waited for.
#[derive(Debug, Clone, Copy)]
struct Blob {
    /// Offset just past the payload's CRLF.
    end: usize,
    /// A streamed-string chunk (more parts follow) rather than a value.
    chunk: bool,
}

/// Resumable reply scanner.
///
/// Scans from where the previous call stopped: the caller never removes
/// bytes between calls that returned `None`; after `Some(frame)` the caller
/// `split_to(frame.len)`s and the scanner has reset itself. Memory is
/// O(nesting depth); each byte is examined about once however the frame is
/// split.
#[derive(Debug)]
pub struct ReplyScanner {
    limits: Limits,
    /// Start of the next item (type byte) not yet consumed.
    pos: usize,
    /// Line search resume point (0 when no search is pending).
    scanned: usize,
    stack: Vec<Open>,
    blob: Option<Blob>,
    kind: Option<u8>,
    /// Bytes handed to a line search, to prove work is not redone.
    #[cfg(test)]
    pub(crate) examined: usize,
}

impl ReplyScanner {
    /// A scanner enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        ReplyScanner {
            limits,
            pos: 0,
            scanned: 0,
            stack: Vec::new(),
            blob: None,
            kind: None,
            #[cfg(test)]
            examined: 0,
        }
    }

    /// Finds the end of the frame at the front of `buf`. `Ok(None)`: the
    /// frame is not complete yet (progress is kept). After an error the
    /// backend connection is unusable; the scanner is reset.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<ReplyFrame>, ProtocolError> {
        // At a frame's start (nothing consumed yet), most replies are
        // whole and plain.
        if self.pos == 0 {
            if let Some(frame) = self.plain_frame(buf) {
                self.scanned = 0;
                return Ok(Some(frame));
            }
        }
        match self.scan_items(buf) {
            Ok(Some(len)) => {
                let kind = self.kind.unwrap_or(b'|');
                self.reset();
                Ok(Some(ReplyFrame { len, kind }))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.reset();
                Err(e)
            }
        }
    }

    /// The commonest replies, whole at the front of `buf`, read in one
    /// pass: a `+`, `-` or `:` line, a nil, or a bulk string whose length
    /// [`plain_length`] reads. `None` leaves the rest (partial, aggregate,
    /// RESP3, malformed) to the general scan, which words the errors; what
    /// this accepts, that scan accepts with the same length.
    #[inline]
    fn plain_frame(&self, buf: &[u8]) -> Option<ReplyFrame> {
        let kind = *buf.first()?;
        let len = match kind {
            b'+' | b'-' | b':' => {
                // The CR within the line limit, as `find_crlf` looks.
                let window = buf.len().min(self.limits.max_inline_len.saturating_add(1));
                let cr = find_byte(b'\r', buf.get(..window)?)?;
                (buf.get(cr + 1) == Some(&b'\n')).then_some(cr + 2)?
            }
            b'$' if buf.starts_with(b"$-1\r\n") => 5,
            b'$' => {
                let (n, cr) = plain_length(buf.get(1..)?, self.limits.max_inline_len)?;
                let payload = cr + 3;
                let end = payload.checked_add(n)?.checked_add(2)?;
                let well_formed = n <= self.limits.max_bulk_len
                    && buf.get(payload - 1) == Some(&b'\n')
                    && buf.get(end - 2..end) == Some(b"\r\n");
                well_formed.then_some(end)?
            }
            _ => return None,
        };
        Some(ReplyFrame { len, kind })
    }

    fn reset(&mut self) {
        self.pos = 0;
        self.scanned = 0;
        self.stack.clear();
        self.blob = None;
        self.kind = None;
    }

    /// Consumes items until the frame is complete (its length) or the
    /// bytes run out.
    fn scan_items(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        loop {
            if let Some(blob) = self.blob {
                if buf.len() < blob.end {
                    return Ok(None);
                }
                if buf.get(blob.end - 2..blob.end) != Some(b"\r\n") {
                    return err(ErrorKind::ExpectedCrlf);
                }
                self.blob = None;
                self.pos = blob.end;
                if !blob.chunk && self.element_done() {
                    return Ok(Some(self.pos));
                }
                continue;
            }
            let start = self.pos;
            let Some(&t) = buf.get(start) else {
                return Ok(None);
            };
            let Some(cr) = self.find_crlf(buf, start)? else {
                return Ok(None);
            };
            let body = buf.get(start + 1..cr).unwrap_or_default();
            self.pos = cr + 2;
            if let Some(Open::Chunks) = self.stack.last() {
                if t != b';' {
                    return err(ErrorKind::ExpectedChunk);
                }
                match self.bulk_len(body)? {
                    0 => {
                        self.stack.pop();
                        if self.element_done() {
                            return Ok(Some(self.pos));
                        }
                    }
                    n => self.expect_blob(n, true),
                }
                continue;
            }
            if self.kind.is_none() && t != b'|' && self.stack.is_empty() {
                self.kind = Some(t);
            }
            let done = match t {
                b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => self.element_done(),
                b'$' if body == b"?" => {
                    self.open(Open::Chunks)?;
                    false
                }
                b'$' if body == b"-1" => self.element_done(),
                b'$' | b'!' | b'=' => {
                    let n = self.bulk_len(body)?;
                    self.expect_blob(n, false);
                    false
                }
                b'*' | b'~' | b'%' if body == b"?" => {
                    self.open(Open::Streamed)?;
                    false
                }
                b'*' if body == b"-1" => self.element_done(),
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let n = self.count(body)?;
                    let pairs = t == b'%' || t == b'|';
                    let left = if pairs { n.saturating_mul(2) } else { n };
                    if left > 0 {
                        self.open(Open::Counted {
                            left,
                            attribute: t == b'|',
                        })?;
                        false
                    } else {
                        // An empty attribute describes the value that follows.
                        t != b'|' && self.element_done()
                    }
                }
                b'.' => match self.stack.last() {
                    Some(Open::Streamed) => {
                        self.stack.pop();
                        self.element_done()
                    }
                    _ => return err(ErrorKind::UnexpectedEnd),
                },
                _ => return err(ErrorKind::UnknownReplyType(t)),
            };
            if done {
                return Ok(Some(self.pos));
            }
        }
    }

    /// Records that one element ended; closes every aggregate it completes.
    /// Returns whether the whole frame is complete.
    fn element_done(&mut self) -> bool {
        loop {
            match self.stack.last_mut() {
                None => return true,
                Some(Open::Counted { left, attribute }) => {
                    *left = left.saturating_sub(1);
                    if *left > 0 {
                        return false;
                    }
                    let attribute = *attribute;
                    self.stack.pop();
                    if attribute {
                        return false;
                    }
                }
                Some(Open::Streamed | Open::Chunks) => return false,
            }
        }
    }

    fn open(&mut self, o: Open) -> Result<(), ProtocolError> {
        if self.stack.len() >= self.limits.max_depth {
            return err(ErrorKind::TooDeep);
        }
        self.stack.push(o);
        Ok(())
    }

    fn expect_blob(&mut self, n: usize, chunk: bool) {
        let end = self.pos.saturating_add(n).saturating_add(2);
        self.blob = Some(Blob { end, chunk });
    }

    fn bulk_len(&self, body: &[u8]) -> Result<usize, ProtocolError> {
        match parse_ll(body).map(usize::try_from) {
            Some(Ok(n)) if n <= self.limits.max_bulk_len => Ok(n),
            _ => err(ErrorKind::InvalidBulkLength),
        }
    }

    fn count(&self, body: &[u8]) -> Result<u64, ProtocolError> {
        match parse_ll(body).map(usize::try_from) {
            Some(Ok(n)) if n <= self.limits.max_array_len => Ok(n as u64),
            _ => err(ErrorKind::InvalidMultibulkLength),
        }
    }

    /// Finds the CR of the CRLF ending the line that starts at `start`,
    /// resuming where the last search stopped.
    fn find_crlf(&mut self, buf: &[u8], start: usize) -> Result<Option<usize>, ProtocolError> {
        let from = self.scanned.max(start);
        let window_end = start
            .saturating_add(self.limits.max_inline_len)
            .saturating_add(1)
            .min(buf.len());
        let hay = buf.get(from..window_end).unwrap_or_default();
        let found = find_byte(b'\r', hay);
        #[cfg(test)]
        {
            self.examined += found.map_or(hay.len(), |i| i + 1);
        }
        match found {
            Some(i) => {
                let cr = from + i;
                match buf.get(cr + 1) {
                    Some(b'\n') => {
                        self.scanned = 0;
                        Ok(Some(cr))
                    }
                    Some(_) => err(ErrorKind::ExpectedCrlf),
                    None => {
                        self.scanned = cr;
                        Ok(None)
                    }
                }
            }
            None if buf.len().saturating_sub(start) > self.limits.max_inline_len => {
                err(ErrorKind::LineTooLong)
            }
            None => {
                self.scanned = window_end;
                Ok(None)
            }
        }
    }
}
