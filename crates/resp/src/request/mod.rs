//! Client requests: the [`Request`] view and the resumable
//! [`RequestParser`].

mod inline;
mod parser;

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use crate::number::{digits, format_u64};
pub use parser::RequestParser;

/// One client request.
#[derive(Debug, Clone)]
pub struct Request {
    /// The bytes forwarded to a backend: the client's own bytes for a RESP
    /// array; for an inline command, a RESP array re-encoded from its
    /// arguments.
    pub raw: Bytes,
    /// Ranges into `raw` of each argument's payload.
    pub args: Vec<Range<usize>>,
}

impl Request {
    /// Number of arguments, the command name included.
    pub fn argc(&self) -> usize {
        self.args.len()
    }

    /// Argument `i` (0 is the command name).
    pub fn arg(&self, i: usize) -> Option<&[u8]> {
        self.args.get(i).and_then(|r| self.raw.get(r.clone()))
    }

    /// All arguments in order.
    pub fn args(&self) -> impl Iterator<Item = &[u8]> {
        self.args
            .iter()
            .map(|r| self.raw.get(r.clone()).unwrap_or_default())
    }

    /// A request made of some of this one's arguments: `runs` are ranges
    /// of argument indexes, in the order wanted (MSET's part for one shard:
    /// `0..1`, then each of its keys with its value). Each argument is
    /// copied as the client encoded it, `$len` line and all, so nothing is
    /// re-encoded; two allocations (the bytes and the ranges), sized
    /// exactly. A run past the last argument is left out.
    pub fn select<I>(&self, runs: I) -> Request
    where
        I: Iterator<Item = Range<usize>> + Clone,
    {
        let (count, size) = runs.clone().fold((0, 0), |(count, size), run| {
            match self.encoded(run.clone()) {
                Some((_, bytes)) => (count + run.len(), size + bytes.len()),
                None => (count, size),
            }
        });
        let mut num = [0u8; 20];
        let count_line = format_u64(count as u64, &mut num);
        let mut out = BytesMut::with_capacity(3 + count_line.len() + size);
        out.put_u8(b'*');
        out.put_slice(count_line);
        out.put_slice(b"\r\n");
        let mut args = Vec::with_capacity(count);
        for run in runs {
            let (Some((from, bytes)), Some(ranges)) =
                (self.encoded(run.clone()), self.args.get(run))
            else {
                continue;
            };
            // Each payload keeps its place relative to its run's first byte.
            let to = out.len();
            args.extend(
                ranges
                    .iter()
                    .map(|r| r.start - from + to..r.end - from + to),
            );
            out.put_slice(bytes);
        }
        Request {
            raw: out.freeze(),
            args,
        }
    }

    /// How arguments `run` are encoded in `raw`, from the first one's
    /// `$len` line to the last one's closing CRLF, and where that starts.
    /// An argument's `$len` line starts where the one before it ended (the
    /// first's, after the `*N` line).
    fn encoded(&self, run: Range<usize>) -> Option<(usize, &[u8])> {
        let last = self.args.get(run.end.checked_sub(1)?)?;
        let start = match run.start {
            0 => self.raw.iter().position(|&b| b == b'\n')? + 1,
            i => self.args.get(i - 1)?.end + 2,
        };
        Some((start, self.raw.get(start..last.end + 2)?))
    }

    /// Encodes a new request from arguments (commands the proxy sends of
    /// its own: handshakes, SCRIPT LOAD, CLIENT UNBLOCK...). One
    /// allocation, sized exactly.
    pub fn from_args<A: AsRef<[u8]>>(args: &[A]) -> Request {
        let size = 3
            + digits(args.len())
            + args
                .iter()
                .map(|a| {
                    let n = a.as_ref().len();
                    5 + digits(n) + n
                })
                .sum::<usize>();
        let mut out = BytesMut::with_capacity(size);
        let mut ranges = Vec::with_capacity(args.len());
        let mut num = [0u8; 20];
        out.put_u8(b'*');
        out.put_slice(format_u64(args.len() as u64, &mut num));
        out.put_slice(b"\r\n");
        for a in args {
            let a = a.as_ref();
            out.put_u8(b'$');
            out.put_slice(format_u64(a.len() as u64, &mut num));
            out.put_slice(b"\r\n");
            let start = out.len();
            out.put_slice(a);
            ranges.push(start..out.len());
            out.put_slice(b"\r\n");
        }
        Request {
            raw: out.freeze(),
            args: ranges,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_args_encodes_and_indexes() {
        let r = Request::from_args(&["MGET", "a", ""]);
        assert_eq!(&r.raw[..], b"*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$0\r\n\r\n");
        assert_eq!(r.argc(), 3);
        assert_eq!(r.arg(0), Some(&b"MGET"[..]));
        assert_eq!(r.arg(2), Some(&b""[..]));
        assert_eq!(r.arg(3), None);
        assert_eq!(r.args().collect::<Vec<_>>(), vec![&b"MGET"[..], b"a", b""]);
        let big = vec![b'x'; 1234];
        let r = Request::from_args(&[&big[..]; 11]);
        assert_eq!(r.raw.len(), 5 + 11 * (7 + 1234 + 2));
        let empty: [&[u8]; 0] = [];
        assert_eq!(&Request::from_args(&empty).raw[..], b"*0\r\n");
    }

    #[test]
    fn select_copies_arguments_as_they_were_encoded() {
        let raw = &b"*5\r\n$4\r\nMSET\r\n$1\r\na\r\n$3\r\none\r\n$2\r\nbb\r\n$0\r\n\r\n"[..];
        let mut parser = RequestParser::new(crate::Limits::default());
        let mut buf = BytesMut::from(raw);
        let request = parser.next(&mut buf).expect("parses").expect("whole");
        let part = request.select([0..1, 3..5].into_iter());
        assert_eq!(&part.raw[..], b"*3\r\n$4\r\nMSET\r\n$2\r\nbb\r\n$0\r\n\r\n");
        assert_eq!(
            part.args().collect::<Vec<_>>(),
            vec![&b"MSET"[..], b"bb", b""]
        );
        let part = request.select([0..1, 1..3].into_iter());
        assert_eq!(
            &part.raw[..],
            b"*3\r\n$4\r\nMSET\r\n$1\r\na\r\n$3\r\none\r\n"
        );
        assert_eq!(
            part.args().collect::<Vec<_>>(),
            vec![&b"MSET"[..], b"a", b"one"]
        );
        // Runs past the end are left out, and the count says so.
        let part = request.select([0..1, 4..6, 9..10].into_iter());
        assert_eq!(&part.raw[..], b"*1\r\n$4\r\nMSET\r\n");
        // A request the proxy encoded itself (an inline command's) works the same.
        let made = Request::from_args(&["DEL", "x", "yy"]);
        assert_eq!(
            &made.select([0..1, 2..3].into_iter()).raw[..],
            b"*2\r\n$3\r\nDEL\r\n$2\r\nyy\r\n"
        );
    }
}

#[cfg(test)]
mod resume_tests;
