//! Reading replies the proxy has to merge, without decoding more than it
//! must: an aggregate's elements are kept as the shard's own bytes, so a
//! merged reply carries every value exactly as Redis wrote it, in RESP2 or
//! RESP3.

use bytes::{Bytes, BytesMut};
use resp::{Limits, ReplyScanner};

/// An aggregate reply split into its header and element frames.
pub struct Aggregate {
    /// `*`, `%`, `~` or `>`.
    pub kind: u8,
    /// Elements (for a map, keys and values alternate).
    pub elements: Vec<Bytes>,
}

/// Splits an aggregate reply (`*`, `%`, `~`, `>`) into element frames.
/// None when `frame` is not an aggregate or is malformed (a null array is
/// not an aggregate).
pub fn aggregate(frame: &Bytes) -> Option<Aggregate> {
    let kind = *frame.first()?;
    if !matches!(kind, b'*' | b'%' | b'~' | b'>') {
        return None;
    }
    let line_end = memchr::memchr(b'\n', frame)?;
    let header = frame.get(1..line_end.checked_sub(1)?)?;
    let count: i64 = std::str::from_utf8(header).ok()?.parse().ok()?;
    let count = usize::try_from(count).ok()?;
    let count = if kind == b'%' {
        count.checked_mul(2)?
    } else {
        count
    };
    let mut elements = Vec::with_capacity(count.min(1024));
    let mut rest = frame.slice(line_end + 1..);
    let mut scanner = ReplyScanner::new(Limits::replies());
    for _ in 0..count {
        let element = scanner.scan(&rest).ok()??;
        elements.push(rest.split_to(element.len));
    }
    rest.is_empty().then_some(Aggregate { kind, elements })
}

/// Writes an aggregate header: `kind` with `count` entries (for a map,
/// `count` elements make `count / 2` pairs).
pub fn aggregate_header(out: &mut BytesMut, kind: u8, count: usize) {
    let n = if kind == b'%' { count / 2 } else { count };
    out.extend_from_slice(&[kind]);
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The value of an integer reply.
pub fn integer(frame: &[u8]) -> Option<i64> {
    let body = frame.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
    std::str::from_utf8(body).ok()?.parse().ok()
}

/// True for an error reply (`-...` or a RESP3 blob error `!...`).
pub fn is_error(frame: &[u8]) -> bool {
    matches!(frame.first(), Some(b'-' | b'!'))
}

/// True for a null reply in either protocol (`$-1`, `*-1`, `_`).
pub fn is_null(frame: &[u8]) -> bool {
    frame == b"$-1\r\n" || frame == b"*-1\r\n" || frame == b"_\r\n"
}

/// The payload of a bulk string (`$`) or verbatim string (`=`, with its
/// `txt:` prefix), or a simple string.
pub fn string(frame: &Bytes) -> Option<Bytes> {
    match frame.first()? {
        b'+' => Some(frame.slice(1..frame.len().checked_sub(2)?)),
        b'$' | b'=' => {
            let line_end = memchr::memchr(b'\n', frame)?;
            Some(frame.slice(line_end + 1..frame.len().checked_sub(2)?))
        }
        _ => None,
    }
}

/// An error reply's text without its `-` (or a blob error's payload).
pub fn error_text(frame: &[u8]) -> Option<String> {
    match frame.first() {
        Some(b'-') => Some(
            String::from_utf8_lossy(
                frame
                    .get(1..frame.len().saturating_sub(2))
                    .unwrap_or_default(),
            )
            .into_owned(),
        ),
        Some(b'!') => {
            let body = frame.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
            Some(
                String::from_utf8_lossy(
                    frame
                        .get(body..frame.len().saturating_sub(2))
                        .unwrap_or_default(),
                )
                .into_owned(),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_arrays_and_maps_into_their_own_bytes() {
        let frame = Bytes::from_static(b"*3\r\n$1\r\na\r\n$-1\r\n:5\r\n");
        let agg = aggregate(&frame).expect("array");
        assert_eq!(agg.kind, b'*');
        assert_eq!(
            agg.elements,
            vec![
                Bytes::from_static(b"$1\r\na\r\n"),
                Bytes::from_static(b"$-1\r\n"),
                Bytes::from_static(b":5\r\n"),
            ]
        );
        let map = Bytes::from_static(b"%1\r\n$2\r\nch\r\n:2\r\n");
        assert_eq!(aggregate(&map).expect("map").elements.len(), 2);
        assert!(aggregate(&Bytes::from_static(b"*-1\r\n")).is_none());
        assert!(aggregate(&Bytes::from_static(b"*2\r\n:1\r\n")).is_none());
        assert!(aggregate(&Bytes::from_static(b":1\r\n")).is_none());
    }

    #[test]
    fn reads_scalars() {
        assert_eq!(integer(b":-12\r\n"), Some(-12));
        assert_eq!(integer(b"+12\r\n"), None);
        assert!(is_error(b"-ERR x\r\n"));
        assert!(is_null(b"_\r\n"));
        assert_eq!(
            string(&Bytes::from_static(b"=8\r\ntxt:abcd\r\n")).as_deref(),
            Some(&b"txt:abcd"[..])
        );
        assert_eq!(
            string(&Bytes::from_static(b"$2\r\nhi\r\n")).as_deref(),
            Some(&b"hi"[..])
        );
        let mut out = BytesMut::new();
        aggregate_header(&mut out, b'%', 4);
        assert_eq!(&out[..], b"%2\r\n");
    }
}
