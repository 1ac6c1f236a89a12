//! Writers for the replies the proxy makes itself (errors, merged results,
//! re-encoded requests). Each appends one complete element to `out`.

use bytes::{BufMut, BytesMut};

use crate::number::format_u64;
use crate::ProtocolError;

/// Appends `prefix`, the decimal `n`, CRLF: every RESP header.
fn header(out: &mut BytesMut, prefix: u8, n: u64, negative: bool) {
    let mut digits = [0u8; 20];
    let digits = format_u64(n, &mut digits);
    out.reserve(digits.len() + 4);
    out.put_u8(prefix);
    if negative {
        out.put_u8(b'-');
    }
    out.put_slice(digits);
    out.put_slice(b"\r\n");
}

/// Appends a line type: `prefix`, `s` with CR/LF replaced by spaces, CRLF.
fn line(out: &mut BytesMut, prefix: u8, s: &[u8]) {
    out.reserve(s.len() + 3);
    out.put_u8(prefix);
    // A CR or LF would end the line early and desync the client, so map
    // them to spaces as redis-server's addReplyError does.
    let mut rest = s;
    while let Some(i) = memchr::memchr2(b'\r', b'\n', rest) {
        let (head, tail) = rest.split_at(i);
        out.put_slice(head);
        out.put_u8(b' ');
        rest = tail.get(1..).unwrap_or_default();
    }
    out.put_slice(rest);
    out.put_slice(b"\r\n");
}

/// Appends a length-prefixed payload: `prefix`, length, CRLF, `b`, CRLF.
fn blob(out: &mut BytesMut, prefix: u8, b: &[u8]) {
    header(out, prefix, b.len() as u64, false);
    out.reserve(b.len() + 2);
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

/// `+s\r\n` (CR/LF inside `s` become spaces).
pub fn simple(out: &mut BytesMut, s: &[u8]) {
    line(out, b'+', s);
}

/// `-msg\r\n`. `msg` includes its prefix (`ERR ...`, `CROSSSLOT ...`);
/// CR/LF inside it become spaces.
pub fn error(out: &mut BytesMut, msg: &str) {
    line(out, b'-', msg.as_bytes());
}

/// `-ERR Protocol error: <reason>\r\n`, byte for byte what redis-server
/// answers before closing the connection.
pub fn protocol_error(out: &mut BytesMut, e: &ProtocolError) {
    let mut msg = b"ERR Protocol error: ".to_vec();
    msg.extend_from_slice(&e.reason_bytes());
    line(out, b'-', &msg);
}

/// `:n\r\n`.
pub fn integer(out: &mut BytesMut, n: i64) {
    header(out, b':', n.unsigned_abs(), n < 0);
}

/// `$len\r\nb\r\n`.
pub fn bulk(out: &mut BytesMut, b: &[u8]) {
    blob(out, b'$', b);
}

/// `$-1\r\n`, the RESP2 null.
pub fn null_bulk(out: &mut BytesMut) {
    out.extend_from_slice(b"$-1\r\n");
}

/// `*-1\r\n`, the RESP2 null array.
pub fn null_array(out: &mut BytesMut) {
    out.extend_from_slice(b"*-1\r\n");
}

/// `*n\r\n`; the caller appends the `n` elements.
pub fn array_header(out: &mut BytesMut, n: usize) {
    header(out, b'*', n as u64, false);
}

/// `_\r\n`, the RESP3 null.
pub fn null(out: &mut BytesMut) {
    out.extend_from_slice(b"_\r\n");
}

/// `%n\r\n`; the caller appends `n` key/value pairs (2n elements).
pub fn map_header(out: &mut BytesMut, n: usize) {
    header(out, b'%', n as u64, false);
}

/// `~n\r\n`; the caller appends the `n` elements.
pub fn set_header(out: &mut BytesMut, n: usize) {
    header(out, b'~', n as u64, false);
}

/// `>n\r\n`; the caller appends the `n` elements.
pub fn push_header(out: &mut BytesMut, n: usize) {
    header(out, b'>', n as u64, false);
}

/// `|n\r\n`; the caller appends `n` pairs, then the value they describe.
pub fn attribute_header(out: &mut BytesMut, n: usize) {
    header(out, b'|', n as u64, false);
}

/// `#t\r\n` or `#f\r\n`.
pub fn boolean(out: &mut BytesMut, b: bool) {
    out.extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
}

/// `,repr\r\n`; `repr` is the textual double (`1.5`, `inf`, `-inf`, `nan`).
pub fn double(out: &mut BytesMut, repr: &[u8]) {
    line(out, b',', repr);
}

/// `(digits\r\n`.
pub fn big_number(out: &mut BytesMut, digits: &[u8]) {
    line(out, b'(', digits);
}

/// `!len\r\nmsg\r\n`.
pub fn blob_error(out: &mut BytesMut, msg: &[u8]) {
    blob(out, b'!', msg);
}

/// `=len\r\nfmt:text\r\n`; `b` includes the three-letter format and colon.
pub fn verbatim(out: &mut BytesMut, b: &[u8]) {
    blob(out, b'=', b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn w(f: impl FnOnce(&mut BytesMut)) -> BytesMut {
        let mut b = BytesMut::new();
        f(&mut b);
        b
    }

    #[test]
    fn writers() {
        assert_eq!(&w(|b| simple(b, b"OK"))[..], b"+OK\r\n");
        assert_eq!(&w(|b| error(b, "ERR a\r\nb"))[..], b"-ERR a  b\r\n");
        assert_eq!(&w(|b| integer(b, 0))[..], b":0\r\n");
        assert_eq!(&w(|b| integer(b, -42))[..], b":-42\r\n");
        assert_eq!(
            &w(|b| integer(b, i64::MIN))[..],
            b":-9223372036854775808\r\n"
        );
        assert_eq!(&w(|b| bulk(b, b"a\r\nb"))[..], b"$4\r\na\r\nb\r\n");
        assert_eq!(&w(|b| bulk(b, b""))[..], b"$0\r\n\r\n");
        assert_eq!(&w(null_bulk)[..], b"$-1\r\n");
        assert_eq!(&w(null_array)[..], b"*-1\r\n");
        assert_eq!(&w(null)[..], b"_\r\n");
        assert_eq!(&w(|b| array_header(b, 3))[..], b"*3\r\n");
        assert_eq!(&w(|b| map_header(b, 2))[..], b"%2\r\n");
        assert_eq!(&w(|b| set_header(b, 1))[..], b"~1\r\n");
        assert_eq!(&w(|b| push_header(b, 12))[..], b">12\r\n");
        assert_eq!(&w(|b| attribute_header(b, 1))[..], b"|1\r\n");
        assert_eq!(&w(|b| boolean(b, true))[..], b"#t\r\n");
        assert_eq!(&w(|b| boolean(b, false))[..], b"#f\r\n");
        assert_eq!(&w(|b| double(b, b"1.5"))[..], b",1.5\r\n");
        assert_eq!(&w(|b| big_number(b, b"123"))[..], b"(123\r\n");
        assert_eq!(&w(|b| blob_error(b, b"ERR x"))[..], b"!5\r\nERR x\r\n");
        assert_eq!(&w(|b| verbatim(b, b"txt:hi"))[..], b"=6\r\ntxt:hi\r\n");
    }

    #[test]
    fn protocol_error_is_byte_exact() {
        let e = ProtocolError::from(ErrorKind::ExpectedDollar(0xff));
        assert_eq!(
            &w(|b| protocol_error(b, &e))[..],
            b"-ERR Protocol error: expected '$', got '\xff'\r\n"
        );
        let e = ProtocolError::from(ErrorKind::ExpectedDollar(b'\r'));
        assert_eq!(e.to_string(), "expected '$', got ' '");
        let e = ProtocolError::from(ErrorKind::InvalidBulkLength);
        assert_eq!(
            &w(|b| protocol_error(b, &e))[..],
            b"-ERR Protocol error: invalid bulk length\r\n"
        );
    }
}
