//! Shared logic for both forwarders: RESP framing, config, listener setup.
use std::net::SocketAddr;

/// Result of trying to frame one message at the start of a buffer.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A complete message of this many bytes.
    Complete(usize),
    /// Need more bytes.
    Incomplete,
    /// Protocol error.
    Invalid,
}

#[inline]
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    // position of '\r' of the first "\r\n" at or after `from`
    let mut i = from;
    while i + 1 < buf.len() {
        match buf[i..].iter().position(|&b| b == b'\r') {
            None => return None,
            Some(p) => {
                i += p;
                if i + 1 < buf.len() {
                    if buf[i + 1] == b'\n' {
                        return Some(i);
                    }
                    i += 1;
                } else {
                    return None;
                }
            }
        }
    }
    None
}

#[inline]
fn parse_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let (neg, digits) = if s[0] == b'-' { (true, &s[1..]) } else { (false, s) };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as i64)?;
    }
    Some(if neg { -v } else { v })
}

/// Frames one client request: an array of bulk strings (what redis-benchmark
/// and redis-cli send), or an inline command line.
pub fn frame_request(buf: &[u8]) -> Frame {
    if buf.is_empty() {
        return Frame::Incomplete;
    }
    if buf[0] != b'*' {
        // inline command: up to "\n"
        return match buf.iter().position(|&b| b == b'\n') {
            Some(p) => Frame::Complete(p + 1),
            None => Frame::Incomplete,
        };
    }
    let e = match find_crlf(buf, 1) {
        Some(e) => e,
        None => return Frame::Incomplete,
    };
    let n = match parse_int(&buf[1..e]) {
        Some(n) if n >= 0 => n,
        _ => return Frame::Invalid,
    };
    let mut pos = e + 2;
    for _ in 0..n {
        if pos >= buf.len() {
            return Frame::Incomplete;
        }
        if buf[pos] != b'$' {
            return Frame::Invalid;
        }
        let e = match find_crlf(buf, pos + 1) {
            Some(e) => e,
            None => return Frame::Incomplete,
        };
        let len = match parse_int(&buf[pos + 1..e]) {
            Some(l) if l >= 0 => l as usize,
            _ => return Frame::Invalid,
        };
        pos = e + 2 + len + 2;
        if pos > buf.len() {
            return Frame::Incomplete;
        }
        if &buf[pos - 2..pos] != b"\r\n" {
            return Frame::Invalid;
        }
    }
    Frame::Complete(pos)
}

/// Frames one reply (RESP2 + common RESP3 types) starting at buf[0].
pub fn frame_reply(buf: &[u8]) -> Frame {
    match frame_reply_at(buf, 0, 0) {
        Ok(Some(end)) => Frame::Complete(end),
        Ok(None) => Frame::Incomplete,
        Err(()) => Frame::Invalid,
    }
}

fn frame_reply_at(buf: &[u8], pos: usize, depth: u32) -> Result<Option<usize>, ()> {
    if depth > 64 {
        return Err(());
    }
    if pos >= buf.len() {
        return Ok(None);
    }
    let t = buf[pos];
    let e = match find_crlf(buf, pos + 1) {
        Some(e) => e,
        None => return Ok(None),
    };
    match t {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(Some(e + 2)),
        b'$' | b'!' | b'=' => {
            let len = parse_int(&buf[pos + 1..e]).ok_or(())?;
            if len < 0 {
                return Ok(Some(e + 2));
            }
            let end = e + 2 + len as usize + 2;
            if end > buf.len() {
                Ok(None)
            } else {
                Ok(Some(end))
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = parse_int(&buf[pos + 1..e]).ok_or(())?;
            if n < 0 {
                return Ok(Some(e + 2));
            }
            let n = if t == b'%' || t == b'|' { n * 2 } else { n };
            let mut p = e + 2;
            for _ in 0..n {
                match frame_reply_at(buf, p, depth + 1)? {
                    Some(np) => p = np,
                    None => return Ok(None),
                }
            }
            Ok(Some(p))
        }
        _ => Err(()),
    }
}

pub struct Config {
    pub listen: SocketAddr,
    pub backend: SocketAddr,
    pub workers: usize,
}

/// Usage: BIN LISTEN_PORT BACKEND_PORT WORKERS
pub fn config() -> Config {
    let a: Vec<String> = std::env::args().collect();
    let lp: u16 = a.get(1).map(|s| s.parse().unwrap()).unwrap_or(7000);
    let bp: u16 = a.get(2).map(|s| s.parse().unwrap()).unwrap_or(6379);
    let w: usize = a.get(3).map(|s| s.parse().unwrap()).unwrap_or(1);
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], lp)),
        backend: SocketAddr::from(([127, 0, 0, 1], bp)),
        workers: w,
    }
}

/// One SO_REUSEPORT listener per worker (same in both variants).
pub fn reuseport_listener(addr: SocketAddr) -> std::net::TcpListener {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.set_reuse_port(true).unwrap();
    s.bind(&addr.into()).unwrap();
    s.listen(1024).unwrap();
    s.into()
}

pub const READ_BUF: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn req() {
        let r = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
        assert_eq!(frame_request(r), Frame::Complete(r.len()));
        for i in 0..r.len() {
            assert_eq!(frame_request(&r[..i]), Frame::Incomplete);
        }
        assert_eq!(frame_request(b"PING\r\n"), Frame::Complete(6));
    }
    #[test]
    fn rep() {
        for r in [
            &b"+OK\r\n"[..],
            b"-ERR x\r\n",
            b":12\r\n",
            b"$-1\r\n",
            b"$3\r\nabc\r\n",
            b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
            b"*-1\r\n",
            b"$4\r\na\r\nb\r\n",
        ] {
            assert_eq!(frame_reply(r), Frame::Complete(r.len()), "{:?}", r);
            for i in 0..r.len() {
                assert_eq!(frame_reply(&r[..i]), Frame::Incomplete);
            }
        }
    }
}
