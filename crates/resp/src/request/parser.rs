//! The resumable request parser: RESP arrays of bulk strings and inline
//! commands, with redis-server's acceptance rules and error strings
//! (`processMultibulkBuffer` / `processInlineBuffer` in `networking.c`).
//!
//! Deliberate equivalences with redis-server, so the proxy accepts exactly
//! what the backend would and forwards the client's bytes untouched:
//! - a count line ends at the first CR, and the byte after it is skipped
//!   without checking it is LF; a bulk payload's two trailing bytes are
//!   skipped the same way;
//! - `*0` and `*-N` are consumed and skipped, as are empty inline lines;
//! - an element that does not start with `$` is only reported once its
//!   line (up to a CR) has arrived.
//!
//! One deliberate difference: redis-server finds line ends with `strchr`,
//! which stops at a NUL byte, so a NUL before the line end makes it wait
//! for more data; here a NUL is ordinary data (in an inline line it ends
//! the argument list, as in `sdssplitargs`).

use std::mem;
use std::ops::Range;

use bytes::{Buf, BytesMut};

use super::{inline::split_args, Request};
use crate::error::{err, ErrorKind};
use crate::find::find_byte;
use crate::number::{plain_length, string2ll as parse_ll};
use crate::{Limits, ProtocolError};

/// Argument slots reserved up front at least: enough for common commands.
/// Beyond it, as many as the bytes already read could hold, so that a
/// huge announced count costs nothing until its bytes arrive, and a
/// whole request in the buffer (MSET's 21 arguments) is indexed without
/// growing the list.
const ARGS_PREALLOC: usize = 16;
/// The fewest bytes an argument takes: `$0\r\n\r\n`.
const MIN_ARG_LEN: usize = 6;

/// Where the parse of the request at the front of the buffer stands.
#[derive(Debug, Clone, Copy)]
enum State {
    /// At the start of a request (a `*` count line or an inline line).
    Start,
    /// Inside an array: `left` arguments still to read. With `bulk` set,
    /// that argument's header is read and its payload starts at `pos`;
    /// otherwise its `$` header starts at `pos`.
    Array {
        pos: usize,
        left: usize,
        bulk: Option<usize>,
    },
}

/// What one step of parsing produced.
enum Step {
    Need,
    /// A request with no arguments of this many bytes: drop it and go on.
    Skip(usize),
    Done(Request),
}

/// Resumable request parser: remembers how far it got (which argument,
/// which partial bulk, how far a line was searched) so a request arriving
/// byte by byte is not rescanned from byte 0.
///
/// The caller appends to the buffer between calls and removes nothing;
/// the parser itself takes each complete request off the front.
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    state: State,
    /// Line search resume point: no terminator before this offset in the
    /// line being searched (0 when no search is pending).
    scanned: usize,
    /// Argument ranges of the request being parsed; moved into the
    /// [`Request`] when it completes.
    args: Vec<Range<usize>>,
    /// Bytes handed to a line search, to prove work is not redone.
    #[cfg(test)]
    pub(crate) examined: usize,
}

impl RequestParser {
    /// A parser enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        RequestParser {
            limits,
            state: State::Start,
            scanned: 0,
            args: Vec::new(),
            #[cfg(test)]
            examined: 0,
        }
    }

    /// Takes back a served request's argument list for the next request
    /// (allocating it anew is an allocation and a free per request at
    /// `-P 1`). A list longer than [`ARGS_PREALLOC`] is dropped: a big
    /// request's must not stay with the session.
    pub fn recycle(&mut self, mut args: Vec<Range<usize>>) {
        if self.args.capacity() == 0 && args.capacity() <= ARGS_PREALLOC {
            args.clear();
            self.args = args;
        }
    }

    /// Enforces `limits` from the next request on (a request being parsed
    /// is checked against them as its remaining parts arrive).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Takes the next complete request off the front of `buf`
    /// (`split_to(n).freeze()`: the forwarded bytes are the client's own).
    ///
    /// `Ok(None)` means more bytes are needed; the progress made is kept.
    /// Empty inline lines and `*0` / `*-N` arrays are consumed and skipped
    /// as redis-server does. After an error the connection should be
    /// closed (redis-server closes it); the parser is reset.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        loop {
            let step = match self.state {
                State::Start => self.start(buf),
                State::Array { .. } => self.array(buf),
            };
            match step {
                Ok(Step::Need) => return Ok(None),
                Ok(Step::Done(req)) => return Ok(Some(req)),
                Ok(Step::Skip(n)) => {
                    buf.advance(n);
                    self.reset();
                }
                Err(e) => {
                    self.reset();
                    return Err(e);
                }
            }
        }
    }

    fn reset(&mut self) {
        self.state = State::Start;
        self.scanned = 0;
        self.args.clear();
    }

    /// Searches `buf[start..]` for `needle` ending a line of at most
    /// `max_inline_len` bytes, resuming where the last search stopped.
    /// `Ok(None)`: not there yet. The error is `too_big` once more than
    /// `max_inline_len` bytes have arrived without it (redis-server's test,
    /// made independent of how the bytes were split).
    #[inline]
    fn find_line_end(
        &mut self,
        buf: &[u8],
        start: usize,
        needle: u8,
        too_big: ErrorKind,
    ) -> Result<Option<usize>, ProtocolError> {
        let from = self.scanned.max(start);
        let window_end = start
            .saturating_add(self.limits.max_inline_len)
            .saturating_add(1)
            .min(buf.len());
        let hay = buf.get(from..window_end).unwrap_or_default();
        let found = find_byte(needle, hay);
        #[cfg(test)]
        {
            self.examined += found.map_or(hay.len(), |i| i + 1);
        }
        match found {
            Some(i) => Ok(Some(from + i)),
            None if buf.len().saturating_sub(start) > self.limits.max_inline_len => err(too_big),
            None => {
                self.scanned = window_end;
                Ok(None)
            }
        }
    }

    /// Like [`find_line_end`](Self::find_line_end) for a `*`/`$` count
    /// line: also needs the byte after the CR (its LF, skipped unchecked).
    #[inline]
    fn find_count_end(
        &mut self,
        buf: &[u8],
        start: usize,
        too_big: ErrorKind,
    ) -> Result<Option<usize>, ProtocolError> {
        match self.find_line_end(buf, start, b'\r', too_big)? {
            Some(cr) if cr + 1 < buf.len() => {
                self.scanned = 0;
                Ok(Some(cr))
            }
            Some(cr) => {
                // Resume at the CR itself: only the byte after it is missing.
                self.scanned = cr;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn start(&mut self, buf: &mut BytesMut) -> Result<Step, ProtocolError> {
        match buf.first() {
            None => Ok(Step::Need),
            Some(b'*') => self.array_header(buf),
            Some(_) => self.inline(buf),
        }
    }

    fn array_header(&mut self, buf: &mut BytesMut) -> Result<Step, ProtocolError> {
        let (left, pos) = match self.plain_count_line(buf, 1) {
            Some((n @ 1.., next)) if n <= self.limits.max_array_len => (n, next),
            _ => {
                let Some(cr) = self.find_count_end(buf, 0, ErrorKind::TooBigMbulkCountString)?
                else {
                    return Ok(Step::Need);
                };
                let max = i64::try_from(self.limits.max_array_len).unwrap_or(i64::MAX);
                let n = match buf.get(1..cr).and_then(parse_ll) {
                    Some(n) if n <= max => n,
                    _ => return err(ErrorKind::InvalidMultibulkLength),
                };
                let Ok(left @ 1..) = usize::try_from(n) else {
                    return Ok(Step::Skip(cr + 2));
                };
                (left, cr + 2)
            }
        };
        let could_be_here = buf.len().saturating_sub(pos) / MIN_ARG_LEN;
        self.args
            .reserve_exact(left.min(could_be_here.max(ARGS_PREALLOC)));
        self.state = State::Array {
            pos,
            left,
            bulk: None,
        };
        self.array(buf)
    }

    /// A count line at `at` (after its `*` or `$`) that
    /// [`plain_length`] reads: its value and where the next line starts.
    #[inline(always)] // every line of every request
    fn plain_count_line(&mut self, buf: &[u8], at: usize) -> Option<(usize, usize)> {
        // The limit counts from the line's `*` or `$`.
        let (value, cr) = plain_length(buf.get(at..)?, self.limits.max_inline_len)?;
        self.scanned = 0;
        Some((value, at + cr + 2))
    }

    /// The `$len` line of the argument at `pos`: the length and where its
    /// payload starts, or `None` while the line is incomplete. The common
    /// line is read in one pass; any other goes to the general path, which
    /// words the errors.
    #[inline(always)] // every argument of every request
    fn bulk_header(
        &mut self,
        buf: &[u8],
        pos: usize,
    ) -> Result<Option<(usize, usize)>, ProtocolError> {
        if buf.get(pos) == Some(&b'$') {
            if let Some((len, next)) = self.plain_count_line(buf, pos + 1) {
                if len <= self.limits.max_bulk_len {
                    return Ok(Some((len, next)));
                }
            }
        }
        let Some(cr) = self.find_count_end(buf, pos, ErrorKind::TooBigBulkCountString)? else {
            return Ok(None);
        };
        match buf.get(pos) {
            Some(b'$') => {}
            Some(&other) => return err(ErrorKind::ExpectedDollar(other)),
            None => return err(ErrorKind::InvalidBulkLength),
        }
        let max_bulk = i64::try_from(self.limits.max_bulk_len).unwrap_or(i64::MAX);
        match buf.get(pos + 1..cr).and_then(parse_ll) {
            // 0 <= len <= max_bulk_len, a usize: the cast is exact.
            Some(len @ 0..) if len <= max_bulk => Ok(Some((len as usize, cr + 2))),
            _ => err(ErrorKind::InvalidBulkLength),
        }
    }

    /// Reads arguments until the array is complete or the bytes run out.
    fn array(&mut self, buf: &mut BytesMut) -> Result<Step, ProtocolError> {
        let State::Array {
            mut pos,
            mut left,
            mut bulk,
        } = self.state
        else {
            return Ok(Step::Need);
        };
        loop {
            let len = match bulk {
                Some(len) => len,
                None => {
                    let Some((len, next)) = self.bulk_header(buf, pos)? else {
                        break;
                    };
                    pos = next;
                    len
                }
            };
            // Payload plus its two trailing bytes (CRLF, skipped unchecked).
            let end = pos.saturating_add(len).saturating_add(2);
            if buf.len() < end {
                bulk = Some(len);
                break;
            }
            self.args.push(pos..pos + len);
            pos = end;
            bulk = None;
            left -= 1;
            if left == 0 {
                self.state = State::Start;
                let raw = buf.split_to(pos).freeze();
                let args = mem::take(&mut self.args);
                return Ok(Step::Done(Request { raw, args }));
            }
        }
        self.state = State::Array { pos, left, bulk };
        Ok(Step::Need)
    }

    fn inline(&mut self, buf: &mut BytesMut) -> Result<Step, ProtocolError> {
        let Some(nl) = self.find_line_end(buf, 0, b'\n', ErrorKind::TooBigInlineRequest)? else {
            return Ok(Step::Need);
        };
        self.scanned = 0;
        let mut line = buf.get(..nl).unwrap_or_default();
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        let args = split_args(line)?;
        if args.is_empty() {
            return Ok(Step::Skip(nl + 1));
        }
        buf.advance(nl + 1);
        Ok(Step::Done(Request::from_args(&args)))
    }
}
