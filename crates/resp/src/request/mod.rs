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

    /// Encodes a new request from arguments (used when the proxy splits
    /// MGET and friends per shard). One allocation, sized exactly.
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
}

#[cfg(test)]
mod resume_tests;
