//! Random input against a live proxy (issue 18's fuzzing beyond the
//! parser), with the proxy started in this test as a library
//! (`Proxy::start`, the in-process harness) on free ports:
//!
//! - random bytes, and mangled commands, sent on one client connection
//!   to a proxy in front of a real redis-server: after each input another
//!   client's requests still get exactly their own replies;
//! - random reply streams from a scripted backend (the one place a fake
//!   server is the point: no real Redis answers garbage): every client
//!   request is answered with one complete frame, a value or an error,
//!   within the pool's timeout, and the proxy keeps answering.
//!
//! Both run a fixed number of seeded cases in `make test` (a failure names
//! its seed and case); `make fuzz` runs them for a time budget from a fresh
//! seed (`LIVE_FUZZ_SECONDS`, `LIVE_FUZZ_SEED`) and prints what ran. No
//! thread of the proxy may panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{InProcess, PANICS};
use test_support::resp::Reply;
use test_support::{assert_eventually, RedisServer};

/// How many cases a test runs, and from which seed: a fixed number from a
/// fixed seed, or with `LIVE_FUZZ_SECONDS` as many as fit in that time,
/// from `LIVE_FUZZ_SEED` or a seed of the clock's.
struct Budget {
    seed: u64,
    cases: usize,
    until: Option<Instant>,
    started: Instant,
}

impl Budget {
    fn from_env(seed: u64, cases: usize) -> Budget {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let started = Instant::now();
        match var("LIVE_FUZZ_SECONDS") {
            Some(seconds) => Budget {
                seed: var("LIVE_FUZZ_SEED").unwrap_or_else(|| {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(1, |d| d.as_nanos() as u64)
                }),
                cases: usize::MAX,
                until: Some(started + Duration::from_secs(seconds)),
                started,
            },
            None => Budget {
                seed,
                cases,
                until: None,
                started,
            },
        }
    }

    fn more(&self, case: usize) -> bool {
        case < self.cases && self.until.is_none_or(|until| Instant::now() < until)
    }

    fn report(&self, what: &str, cases: usize, found: &str) {
        eprintln!(
            "{what}: {cases} cases in {:.0} s from seed {}: {found}",
            self.started.elapsed().as_secs_f64(),
            self.seed
        );
    }
}

fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend(format!("${}\r\n", arg.len()).as_bytes());
        out.extend(arg);
        out.extend(b"\r\n");
    }
    out
}

/// Flips, inserts, deletes or truncates a few bytes.
fn mangle(rng: &mut fastrand::Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.usize(0..4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.usize(0..bytes.len());
        match rng.u8(0..4) {
            0 => bytes[at] = rng.u8(..),
            1 => bytes.insert(at, rng.u8(..)),
            2 => {
                bytes.remove(at);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

fn random_bytes(rng: &mut fastrand::Rng, most: usize) -> Vec<u8> {
    (0..rng.usize(1..most)).map(|_| rng.u8(..)).collect()
}

/// Commands a client may send; none that ends, pauses or kills other
/// clients or wipes the server (those are what an operator may do to
/// everyone, not isolation failures).
const COMMANDS: &[&str] = &[
    "GET",
    "SET",
    "MGET",
    "MSET",
    "DEL",
    "INCR",
    "EXISTS",
    "TTL",
    "EXPIRE",
    "TYPE",
    "HSET",
    "HGETALL",
    "LPUSH",
    "LRANGE",
    "ZADD",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUBLISH",
    "PING",
    "ECHO",
    "HELLO",
    "AUTH",
    "SELECT",
    "CLIENT",
    "INFO",
    "EVAL",
    "EVALSHA",
    "SCRIPT",
    "SCAN",
    "KEYS",
    "BLPOP",
    "XREAD",
    "XADD",
    "RESET",
    "QUIT",
    "MONITOR",
    "COMMAND",
    "OBJECT",
    "SLOWLOG",
    "WAIT",
];
const WORDS: &[&str] = &[
    "k0", "k1", "{t}k2", "{t}k3", "0", "1", "-1", "3", "NX", "EX", "0.5", "*", "LIST", "SETNAME",
    "ID", "REPLY", "OFF", "SKIP", "STREAMS", "BLOCK", "$", "return 1", "3", "default", "",
];

/// One input: commands from the lists above, then mangled; or raw bytes.
fn input(rng: &mut fastrand::Rng) -> Vec<u8> {
    if rng.bool() {
        return random_bytes(rng, 200);
    }
    let mut bytes = Vec::new();
    for _ in 0..rng.usize(1..6) {
        let mut args = vec![COMMANDS[rng.usize(..COMMANDS.len())].as_bytes().to_vec()];
        for _ in 0..rng.usize(0..5) {
            args.push(WORDS[rng.usize(..WORDS.len())].as_bytes().to_vec());
        }
        bytes.extend(encode(&args));
    }
    mangle(rng, bytes)
}

#[test]
fn random_input_on_one_connection_never_reaches_another_client() {
    let redis = RedisServer::start();
    let proxy = InProcess::start(&[redis.port()], "  timeout: 1000\n");
    let mut bystander = proxy.client();
    let budget = Budget::from_env(18, 300);
    let seed = budget.seed;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut answered = 0;
    let mut case = 0;
    while budget.more(case) {
        case += 1;
        let bytes = input(&mut rng);
        let mut fuzz = TcpStream::connect(("127.0.0.1", proxy.port)).expect("connect");
        fuzz.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let _ = fuzz.write_all(&bytes);
        if rng.bool() {
            let _ = fuzz.shutdown(std::net::Shutdown::Write);
        }
        let mut sink = [0u8; 4096];
        while let Ok(n) = fuzz.read(&mut sink) {
            if n == 0 {
                break;
            }
            answered += 1;
        }
        drop(fuzz);
        // The bystander gets exactly its own replies.
        let (key, value) = (format!("bystander:{case}"), format!("v{case}"));
        assert_eq!(
            bystander.cmd(&["SET", &key, &value]).expect("SET"),
            Reply::Simple("OK".into()),
            "seed {seed} case {case}: {bytes:?}"
        );
        assert_eq!(
            bystander.cmd(&["GET", &key]).expect("GET"),
            Reply::Bulk(value.into_bytes()),
            "seed {seed} case {case}: {bytes:?}"
        );
    }
    budget.report(
        "random input to a live session",
        case,
        &format!("{answered} reads with replies; every bystander request answered right"),
    );
    assert_eq!(
        proxy.client().cmd(&["PING"]).unwrap(),
        Reply::Simple("PONG".into())
    );
    assert_eq!(PANICS.load(Relaxed), 0, "a thread panicked");
}

/// A backend that answers `GET` with `script`'s bytes (and closes the
/// connection after them when `close` is set), and everything else (the
/// proxy's handshake and health checks) as Redis would, so the streams
/// reach the data path.
struct Scripted {
    port: u16,
    script: Arc<Mutex<(Vec<u8>, bool)>>,
}

impl Scripted {
    fn start() -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let script = Arc::new(Mutex::new((b"+OK\r\n".to_vec(), false)));
        let shared = script.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let script = shared.clone();
                std::thread::spawn(move || {
                    let mut parser = resp::RequestParser::new(resp::Limits::default());
                    let mut pending = bytes::BytesMut::new();
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            return;
                        }
                        pending.extend_from_slice(&buf[..n]);
                        while let Ok(Some(request)) = parser.next(&mut pending) {
                            let name = request.arg(0).unwrap_or_default().to_ascii_uppercase();
                            let (bytes, close) = match &name[..] {
                                b"GET" => script.lock().unwrap().clone(),
                                b"PING" => (b"+PONG\r\n".to_vec(), false),
                                b"INFO" => (INFO.to_vec(), false),
                                b"ROLE" => (b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n".to_vec(), false),
                                _ => (b"+OK\r\n".to_vec(), false),
                            };
                            if stream.write_all(&bytes).is_err() || close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Scripted { port, script }
    }
}

/// What the health check reads.
const INFO: &[u8] = b"$46\r\n# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n";

/// Valid reply frames, RESP2 and RESP3, to build streams from.
const FRAMES: &[&[u8]] = &[
    b"+OK\r\n",
    b"-ERR no\r\n",
    b"-MOVED 1 127.0.0.1:1\r\n",
    b":42\r\n",
    b"$3\r\nabc\r\n",
    b"$-1\r\n",
    b"*2\r\n$1\r\na\r\n:1\r\n",
    b"*-1\r\n",
    b"_\r\n",
    b"%1\r\n+k\r\n+v\r\n",
    b"~1\r\n:1\r\n",
    b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n",
    b",1.5\r\n",
    b"#t\r\n",
    b"(123\r\n",
    b"=8\r\ntxt:abcd\r\n",
    b"|1\r\n+a\r\n+b\r\n",
    b"$100\r\n",
    b"*3\r\n",
];

#[test]
fn random_reply_streams_from_a_server_are_answered_with_one_frame_in_time() {
    const CASES: usize = 120;
    let backend = Scripted::start();
    let proxy = InProcess::start(
        &[backend.port],
        "  timeout: 300\n  reconnect_backoff_max: 50\n",
    );
    let budget = Budget::from_env(20, CASES);
    let seed = budget.seed;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut errors = 0;
    let mut case = 0;
    while budget.more(case) {
        case += 1;
        // Served again after the last stream (its connection to the
        // server may have been dropped, and is made again).
        *backend.script.lock().unwrap() = (b"$1\r\nx\r\n".to_vec(), false);
        assert_eventually!(
            within = Duration::from_secs(5),
            get(proxy.port).is_ok_and(|frame| frame == b"$1\r\nx\r\n"),
            "seed {seed} case {case}: not served again"
        );
        let stream = match rng.bool() {
            true => random_bytes(&mut rng, 100),
            false => {
                let mut bytes = Vec::new();
                for _ in 0..rng.usize(1..4) {
                    bytes.extend(FRAMES[rng.usize(..FRAMES.len())]);
                }
                mangle(&mut rng, bytes)
            }
        };
        *backend.script.lock().unwrap() = (stream.clone(), rng.u8(0..4) == 0);
        let started = Instant::now();
        let frame = get(proxy.port)
            .unwrap_or_else(|e| panic!("seed {seed} case {case} ({stream:?}): no reply: {e}"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "seed {seed} case {case} ({stream:?}): answered after {:?}",
            started.elapsed()
        );
        if frame.first() == Some(&b'-') {
            errors += 1;
        }
        // The proxy answers what it answers itself, whatever its server does.
        let mut ping = TcpStream::connect(("127.0.0.1", proxy.port)).expect("connect");
        ping.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        ping.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(
            read_frame(&mut ping).unwrap(),
            b"+PONG\r\n",
            "seed {seed} case {case}"
        );
    }
    budget.report(
        "random reply streams",
        case,
        &format!("{errors} answered with an error, every one within the bound"),
    );
    assert!(errors > 0, "no stream made the proxy answer an error");
    assert!(errors < case, "no stream reached the client");
    assert_eq!(PANICS.load(Relaxed), 0, "a thread panicked");
}

/// `GET k` on a new connection: the one frame that answers it.
fn get(port: u16) -> std::io::Result<Vec<u8>> {
    let mut client = TcpStream::connect(("127.0.0.1", port))?;
    client.set_read_timeout(Some(Duration::from_secs(3)))?;
    client.write_all(&encode(&[b"GET".to_vec(), b"k".to_vec()]))?;
    read_frame(&mut client)
}

/// Reads until one complete RESP frame has arrived; returns it.
fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut scanner = resp::ReplyScanner::new(resp::Limits::replies());
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(Some(frame)) = scanner.scan(&buf) {
            buf.truncate(frame.len);
            return Ok(buf);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other(format!(
                "closed after {:?}",
                String::from_utf8_lossy(&buf)
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
