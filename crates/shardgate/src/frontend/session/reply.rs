//! Replies the proxy writes itself, encoded as Redis encodes them.

use bytes::{Bytes, BytesMut};

pub const OK: Bytes = Bytes::from_static(b"+OK\r\n");

pub fn bulk(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 16);
    resp::encode::bulk(&mut out, payload);
    out.freeze()
}

pub fn integer(n: i64) -> Bytes {
    let mut out = BytesMut::with_capacity(24);
    resp::encode::integer(&mut out, n);
    out.freeze()
}

/// A null in the client's protocol.
pub fn null(resp3: bool) -> Bytes {
    Bytes::from_static(if resp3 { b"_\r\n" } else { b"$-1\r\n" })
}

/// A text reply: a verbatim string in RESP3 (as Redis sends CLIENT LIST
/// and INFO), a bulk string in RESP2.
pub fn verbatim_or_bulk(resp3: bool, text: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(text.len() + 24);
    if resp3 {
        out.extend_from_slice(format!("={}\r\ntxt:", text.len() + 4).as_bytes());
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    } else {
        resp::encode::bulk(&mut out, text.as_bytes());
    }
    out.freeze()
}

/// A HELP subcommand's reply: one simple string per line, as Redis sends it.
pub fn help(lines: &[&str]) -> Bytes {
    let mut out = BytesMut::new();
    resp::encode::array_header(&mut out, lines.len());
    for line in lines {
        resp::encode::simple(&mut out, line.as_bytes());
    }
    out.freeze()
}
