//! The one error type of the codec: a protocol violation, worded the way
//! redis-server words it for requests.

use std::fmt;

/// What was wrong with the bytes.
///
/// Request-side kinds carry redis-server's own wording (see `networking.c`),
/// so a proxy can answer `-ERR Protocol error: <reason>` exactly like the
/// server would. Reply-side kinds are ours: redis-server never parses replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `*` count that is not a number, or above [`Limits::max_array_len`](crate::Limits).
    InvalidMultibulkLength,
    /// `$` length that is not a number, negative, or above [`Limits::max_bulk_len`](crate::Limits).
    InvalidBulkLength,
    /// An array element that does not start with `$`; carries the byte found.
    ExpectedDollar(u8),
    /// An inline line longer than [`Limits::max_inline_len`](crate::Limits).
    TooBigInlineRequest,
    /// A `*` count line with no CR in [`Limits::max_inline_len`](crate::Limits) bytes.
    TooBigMbulkCountString,
    /// A `$` length line with no CR in [`Limits::max_inline_len`](crate::Limits) bytes.
    TooBigBulkCountString,
    /// An inline command with an unterminated quote, or a closing quote
    /// followed by something other than a space.
    UnbalancedQuotes,
    /// A reply starting with a byte that is no RESP2/RESP3 type.
    UnknownReplyType(u8),
    /// A reply nested deeper than [`Limits::max_depth`](crate::Limits).
    TooDeep,
    /// A reply line (simple string, error, number...) longer than
    /// [`Limits::max_inline_len`](crate::Limits).
    LineTooLong,
    /// A reply line or payload not terminated by CRLF.
    ExpectedCrlf,
    /// A streamed-string part that is not a `;` chunk.
    ExpectedChunk,
    /// A `.` end marker outside a streamed aggregate, or a streamed map
    /// ending between a key and its value.
    UnexpectedEnd,
    /// A malformed `:` integer, `#` boolean or `_` null in a decoded reply.
    InvalidValue,
    /// [`decode`](crate::decode) was given fewer bytes than one frame.
    Incomplete,
    /// [`decode`](crate::decode) was given bytes after the end of the frame.
    TrailingBytes,
}

/// A protocol violation.
///
/// `Display` gives the reason as Redis words it, without the
/// `ERR Protocol error: ` prefix (see
/// [`encode::protocol_error`](crate::encode::protocol_error) for the full
/// reply, byte-exact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    kind: ErrorKind,
}

impl ProtocolError {
    /// Which violation this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The reason as raw bytes. Differs from `Display` only for a byte that
    /// is not ASCII in "expected '$', got 'x'": redis-server writes that byte
    /// as is.
    pub fn reason_bytes(&self) -> Vec<u8> {
        match self.kind {
            ErrorKind::ExpectedDollar(b) => {
                let mut v = b"expected '$', got '".to_vec();
                v.push(printable(b));
                v.push(b'\'');
                v
            }
            _ => self.to_string().into_bytes(),
        }
    }
}

/// redis-server maps CR and LF inside an error message to spaces so the
/// reply stays one line; do the same.
fn printable(b: u8) -> u8 {
    if b == b'\r' || b == b'\n' {
        b' '
    } else {
        b
    }
}

impl From<ErrorKind> for ProtocolError {
    fn from(kind: ErrorKind) -> Self {
        ProtocolError { kind }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.kind {
            ErrorKind::InvalidMultibulkLength => "invalid multibulk length",
            ErrorKind::InvalidBulkLength => "invalid bulk length",
            ErrorKind::ExpectedDollar(b) => {
                return write!(f, "expected '$', got '{}'", char::from(printable(b)))
            }
            ErrorKind::TooBigInlineRequest => "too big inline request",
            ErrorKind::TooBigMbulkCountString => "too big mbulk count string",
            ErrorKind::TooBigBulkCountString => "too big bulk count string",
            ErrorKind::UnbalancedQuotes => "unbalanced quotes in request",
            ErrorKind::UnknownReplyType(b) => {
                return write!(f, "unknown reply type '{}'", b.escape_ascii())
            }
            ErrorKind::TooDeep => "reply nested too deeply",
            ErrorKind::LineTooLong => "reply line too long",
            ErrorKind::ExpectedCrlf => "expected CRLF",
            ErrorKind::ExpectedChunk => "expected ';' chunk in streamed string",
            ErrorKind::UnexpectedEnd => "unexpected end marker",
            ErrorKind::InvalidValue => "invalid value in reply",
            ErrorKind::Incomplete => "incomplete frame",
            ErrorKind::TrailingBytes => "trailing bytes after frame",
        };
        f.write_str(s)
    }
}

impl std::error::Error for ProtocolError {}

/// Shorthand for `Err(kind.into())`.
pub(crate) fn err<T>(kind: ErrorKind) -> Result<T, ProtocolError> {
    Err(ProtocolError { kind })
}
