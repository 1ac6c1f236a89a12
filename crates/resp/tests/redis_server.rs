//! Differential tests against a real redis-server: the parser must accept
//! what the server accepts, split inline commands the way it does, and
//! refuse malformed input with the server's own error string.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

use std::io::Read;
use std::time::Duration;

use bytes::BytesMut;
use resp::{Limits, RequestParser};
use test_support::resp::Reply;
use test_support::RedisServer;

/// What our parser makes of `input`: the requests' arguments and the error
/// that stopped it (the error's reason as redis-server writes it).
fn ours(input: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<String>) {
    let mut p = RequestParser::new(Limits::default());
    let mut buf = BytesMut::from(input);
    let mut reqs = Vec::new();
    loop {
        match p.next(&mut buf) {
            Ok(Some(r)) => reqs.push(r.args().map(<[u8]>::to_vec).collect()),
            Ok(None) => return (reqs, None),
            Err(e) => return (reqs, Some(format!("ERR Protocol error: {e}"))),
        }
    }
}

/// Sends `input` on a fresh connection and returns everything the server
/// wrote before closing it.
fn server_answer(server: &RedisServer, input: &[u8]) -> Vec<u8> {
    let mut c = server.client();
    c.set_read_timeout(Some(Duration::from_secs(5)));
    c.send_raw(input).unwrap();
    let mut out = Vec::new();
    let _ = c.stream().read_to_end(&mut out);
    out
}

#[test]
fn protocol_errors_match_redis_server() {
    let server = RedisServer::start();
    let mut cases: Vec<Vec<u8>> = [
        &b"*abc\r\n"[..],
        b"*3000000000\r\n",
        b"*01\r\n",
        b"*1\r\n$-1\r\n",
        b"*1\r\n$abc\r\n",
        b"*1\r\n$536870913\r\n",
        b"*1\r\n$01\r\n",
        b"*1\r\n$+1\r\n",
        b"*+1\r\n",
        b"*1\r\n$1234567890\r\n",
        b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n",
        b"*1\r\n\r\n",
        b"PING\r\nSET \"a\r\n",
        b"SET 'a'b\r\n",
        b"ECHO \"\\x4\"x\r\n",
    ]
    .iter()
    .map(|c| c.to_vec())
    .collect();
    cases.push(vec![b'a'; 70_000]);
    cases.push([&b"*"[..], &[b'1'; 70_000]].concat());
    cases.push([&b"*1\r\n$"[..], &[b'1'; 70_000]].concat());
    for input in &cases {
        let (_, our_err) = ours(input);
        let our_err = our_err.unwrap_or_else(|| panic!("no error for {}", input.escape_ascii()));
        let answer = server_answer(&server, input);
        let last = answer
            .strip_suffix(b"\r\n")
            .and_then(|a| a.split(|&b| b == b'\n').next_back())
            .unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(last),
            format!("-{our_err}"),
            "input {}",
            input.get(..40).unwrap_or(input).escape_ascii()
        );
    }
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

#[test]
fn inline_splitting_matches_redis_server() {
    let server = RedisServer::start();
    // Bytes that exercise sdssplitargs: quotes, escapes, all whitespace
    // kinds, hex digits. No NUL (redis-server's strchr stops there, see the
    // parser's module doc) and no LF (it ends the line).
    let alphabet = b"ab  \t\"\"''\\\\x4f1nrtq\x0b\x0c\r\xff";
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut checked = (0, 0, 0);
    for _ in 0..400 {
        let len = 1 + rng.next() % 16;
        let tokens: Vec<u8> = (0..len).map(|_| rng.pick(alphabet)).collect();
        let line = [&b"RPUSH k "[..], &tokens, b"\r\n"].concat();
        let (reqs, err) = ours(&line);
        let mut c = server.client();
        c.send_raw(&line).unwrap();
        let reply = c.read_reply().unwrap();
        match (&reply, err) {
            (Reply::Error(e), Some(ours)) => {
                assert_eq!(e, &ours, "line {}", line.escape_ascii());
                checked.0 += 1;
            }
            (Reply::Error(e), None) => {
                assert!(e.contains("wrong number of arguments"), "{e}");
                assert_eq!(reqs[0].len(), 2, "line {}", line.escape_ascii());
                checked.1 += 1;
            }
            (Reply::Integer(n), None) => {
                let args = &reqs[0][2..];
                assert_eq!(*n as usize, args.len(), "line {}", line.escape_ascii());
                let Reply::Array(items) = c.cmd(&["LRANGE", "k", "0", "-1"]).unwrap() else {
                    panic!("LRANGE")
                };
                let items: Vec<Vec<u8>> = items
                    .into_iter()
                    .map(|i| match i {
                        Reply::Bulk(b) => b,
                        other => panic!("{other:?}"),
                    })
                    .collect();
                assert_eq!(items, args, "line {}", line.escape_ascii());
                c.cmd(&["DEL", "k"]).unwrap();
                checked.2 += 1;
            }
            (reply, err) => panic!(
                "line {}: server {reply:?}, ours {err:?}",
                line.escape_ascii()
            ),
        }
    }
    // The generator must reach all three outcomes to prove anything.
    assert!(
        checked.0 > 20 && checked.1 > 5 && checked.2 > 100,
        "{checked:?}"
    );
}
