//! One client must never hurt another: whatever a client sends, another
//! client pipelining through the same worker, over the same shared backend
//! connection, gets every reply right. Hostile inputs are sent one by one,
//! then fuzzed commands; a runaway script is killed through the proxy; a
//! connection stuck behind a long command does not hold up new requests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use test_support::resp::{encode, Reply};
use test_support::{assert_eventually, RedisServer, RespClient};

/// A client that pipelines SET/GET pairs on its own keys and checks every
/// reply, until stopped.
struct Bystander {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<BystanderReport>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default, Clone)]
struct BystanderReport {
    batches: u64,
    replies: u64,
    /// Replies that were not what the pipeline should get.
    wrong: Vec<String>,
}

impl Bystander {
    fn start(port: u16) -> Bystander {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(BystanderReport::default()));
        let thread = {
            let (stop, report) = (stop.clone(), report.clone());
            std::thread::spawn(move || {
                let mut client = RespClient::connect(port).expect("bystander connects");
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    round += 1;
                    let mut bytes = Vec::new();
                    for i in 0..20 {
                        let key = format!("bystander:{i}");
                        let value = format!("{round}-{i}");
                        bytes.extend(encode(&["SET", &key, &value]));
                        bytes.extend(encode(&["GET", &key]));
                    }
                    let mut wrong = Vec::new();
                    if let Err(e) = client.send_raw(&bytes) {
                        wrong.push(format!("send failed: {e}"));
                    }
                    for i in 0..20 {
                        let expected = [
                            Reply::Simple("OK".into()),
                            Reply::Bulk(format!("{round}-{i}").into_bytes()),
                        ];
                        for want in expected {
                            match client.read_reply() {
                                Ok(got) if got == want => {}
                                Ok(got) => wrong.push(format!("wanted {want:?}, got {got:?}")),
                                Err(e) => {
                                    wrong.push(format!("read failed: {e}"));
                                    break;
                                }
                            }
                        }
                    }
                    let mut r = report.lock().unwrap();
                    r.batches += 1;
                    r.replies += 40;
                    let failed = !wrong.is_empty();
                    r.wrong.extend(wrong);
                    if failed {
                        return;
                    }
                }
            })
        };
        Bystander {
            stop,
            report,
            thread: Some(thread),
        }
    }

    fn batches(&self) -> u64 {
        self.report.lock().unwrap().batches
    }

    /// Waits until the bystander has done `n` more batches (it is alive
    /// and served).
    fn progress(&self, n: u64) {
        let start = self.batches();
        assert_eventually!(
            within = Duration::from_secs(10),
            self.batches() >= start + n || !self.report.lock().unwrap().wrong.is_empty(),
            "the bystander made no progress"
        );
    }

    fn finish(mut self) -> BystanderReport {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("bystander thread");
        }
        self.report.lock().unwrap().clone()
    }
}

/// Sends `bytes` on a new connection and reads until the proxy closes it
/// or `wait` passes.
fn hostile(port: u16, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(wait)).unwrap();
    let _ = stream.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

fn commands(list: &[&[&str]]) -> Vec<u8> {
    list.iter().flat_map(|c| encode(c)).collect()
}

/// Lost or refused backend connections, from the proxy's metrics.
fn backend_failures(setup: &common::Setup) -> u64 {
    let (_, metrics) = setup.proxy.admin_get("/metrics").expect("metrics");
    metrics
        .lines()
        .filter(|l| l.starts_with("shardgate_node_connection_failures_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn nothing_one_client_sends_costs_a_bystander_a_reply() {
    // One worker, one shared connection per node: the hostile client's
    // requests and the bystander's travel on the same backend connection.
    let servers = vec![RedisServer::start()];
    let direct = servers[0].port();
    let setup = common::start_with(
        servers,
        &["server_connections: 1", "max_request_bytes: 1048576"],
        &["--workers", "1"],
    );
    let bystander = Bystander::start(setup.port);
    bystander.progress(5);
    let big = "x".repeat(2 << 20);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "POST (inline)",
            b"POST / HTTP/1.1\r\nHost: example\r\n\r\n".to_vec(),
        ),
        ("Host: (inline)", b"Host: example\r\n".to_vec()),
        ("POST (array)", commands(&[&["post", "/x"]])),
        (
            "QUIT",
            commands(&[&["SET", "h", "1"], &["QUIT"], &["GET", "h"]]),
        ),
        (
            "RESET",
            commands(&[&["SELECT", "3"], &["RESET"], &["GET", "h"]]),
        ),
        (
            "CLIENT settings",
            commands(&[
                &["CLIENT", "SETNAME", "hostile"],
                &["CLIENT", "NO-EVICT", "on"],
                &["CLIENT", "REPLY", "OFF"],
                &["GET", "h"],
                &["CLIENT", "REPLY", "ON"],
                &["CLIENT", "TRACKING", "on"],
                &["CLIENT", "CACHING", "yes"],
                &["CLIENT", "KILL", "ID", "999999999"],
                &["CLIENT", "KILL", "LADDR", "127.0.0.1:1"],
                &["CLIENT", "UNBLOCK", "1"],
                &["CLIENT", "PAUSE", "50", "WRITE"],
            ]),
        ),
        ("MONITOR", commands(&[&["MONITOR"], &["GET", "h"]])),
        (
            "SUBSCRIBE",
            commands(&[&["SUBSCRIBE", "c"], &["PSUBSCRIBE", "*"]]),
        ),
        (
            "replication protocol",
            commands(&[
                &["SYNC"],
                &["PSYNC", "?", "-1"],
                &["REPLCONF", "ACK", "0"],
                &["REPLCONF", "listening-port", "1"],
            ]),
        ),
        (
            "DEBUG",
            commands(&[
                &["DEBUG", "SLEEP", "2"],
                &["DEBUG", "SEGFAULT"],
                &["DEBUG", "RESTART"],
                &["DEBUG", "SET-ACTIVE-EXPIRE", "0"],
                &["DEBUG", "PROTOCOL", "attrib"],
            ]),
        ),
        (
            "server control",
            commands(&[
                &["SHUTDOWN", "NOSAVE"],
                &["REPLICAOF", "127.0.0.1", "1"],
                &["SLAVEOF", "NO", "ONE"],
                &["FAILOVER"],
                &["MODULE", "LOAD", "/nonexistent.so"],
            ]),
        ),
        (
            "SCRIPT DEBUG",
            commands(&[&["SCRIPT", "DEBUG", "YES"], &["EVAL", "return 1", "0"]]),
        ),
        (
            "CONFIG SET the proxy depends on",
            commands(&[
                &["CONFIG", "SET", "requirepass", "locked-out"],
                &["CONFIG", "SET", "timeout", "1"],
                &[
                    "CONFIG",
                    "SET",
                    "client-output-buffer-limit",
                    "normal 1 1 1",
                ],
                &["CONFIG", "SET", "maxclients", "1"],
                &["CONFIG", "SET", "proto-max-bulk-len", "1mb"],
                &["CONFIG", "SET", "client-query-buffer-limit", "1mb"],
                &["CONFIG", "SET", "busy-reply-threshold", "1"],
            ]),
        ),
        (
            "ACL changes",
            commands(&[
                &["ACL", "SETUSER", "default", "off"],
                &["ACL", "DELUSER", "default"],
                &["ACL", "LOAD"],
                &["ACL", "SAVE"],
            ]),
        ),
        (
            "transactions and blocking",
            commands(&[
                &["MULTI"],
                &["SUBSCRIBE", "c"],
                &["SET", "h", "1"],
                &["EXEC"],
                &["WATCH", "h"],
                &["BLPOP", "nothing", "0.05"],
                &["WAIT", "1", "50"],
                &["BLPOP", "nothing", "0"],
            ]),
        ),
        ("oversize argument", {
            let mut bytes = commands(&[&["GET", "h"]]);
            bytes.extend(encode(&["SET", "h", &big]));
            bytes
        }),
        (
            "malformed: not a bulk",
            b"*2\r\n$3\r\nGET\r\n:1\r\n".to_vec(),
        ),
        ("malformed: negative bulk", b"*1\r\n$-5\r\n".to_vec()),
        ("malformed: count", b"*abc\r\n".to_vec()),
        ("malformed: quotes", b"SET h \"open\r\n".to_vec()),
        (
            "empty requests",
            b"*0\r\n\r\n   \r\n*-1\r\nGET h\r\n".to_vec(),
        ),
        (
            "half a request",
            b"*3\r\n$3\r\nSET\r\n$1\r\nh\r\n$10\r\nabc".to_vec(),
        ),
    ];
    for (name, bytes) in &cases {
        hostile(setup.port, bytes, Duration::from_millis(300));
        bystander.progress(2);
        let report = bystander.report.lock().unwrap().clone();
        assert!(
            report.wrong.is_empty(),
            "after '{name}' the bystander got: {:?}",
            report.wrong
        );
    }
    // The server is as it was: no password, the bystander's settings.
    let server = RespClient::connect(direct)
        .expect("direct")
        .cmd(&["PING"])
        .unwrap();
    assert_eq!(server, Reply::Simple("PONG".into()));
    let report = bystander.finish();
    assert!(report.wrong.is_empty(), "{:?}", report.wrong);
    assert!(report.replies > 0);
    assert_eq!(
        backend_failures(&setup),
        0,
        "a backend connection was lost; log:\n{}",
        setup.proxy.log()
    );
}

/// Random commands from the whole command table with random arguments,
/// and random bytes: the bystander must not notice.
#[test]
fn fuzzed_commands_and_bytes_cost_a_bystander_nothing() {
    let servers = vec![RedisServer::start()];
    let setup = common::start_with(servers, &["server_connections: 1"], &["--workers", "1"]);
    let bystander = Bystander::start(setup.port);
    bystander.progress(3);
    // Commands that legitimately change what every client sees (Redis
    // semantics, not isolation bugs) are left out: the data (FLUSH*,
    // SWAPDB), the bystander's connection (CLIENT KILL), every client's
    // commands (CLIENT PAUSE), server settings (CONFIG SET of limits).
    let excluded = [
        "flushall",
        "flushdb",
        "swapdb",
        "client|kill",
        "client|pause",
        "config|set",
        "config|resetstat",
        "config|rewrite",
        "script|flush",
        "function|flush",
        "function|restore",
    ];
    let names: Vec<&'static str> = shardgate::command::commands()
        .iter()
        .flat_map(|c| std::iter::once(c).chain(c.subcommands()))
        .map(|spec| spec.name())
        .filter(|name| !excluded.contains(name))
        .collect();
    let words = [
        "0",
        "1",
        "-1",
        "5",
        "100",
        "9223372036854775807",
        "x",
        "k",
        "*",
        "COUNT",
        "BLOCK",
        "STREAMS",
        "KEYS",
        "AUTH",
        "GET",
        "WITHSCORES",
        "LIMIT",
        "0.1",
        "nan",
        "\u{0}",
        "",
        "{t}a",
        "$",
        ">",
        "ON",
        "OFF",
        "YES",
        "NO",
        "TYPE",
        "string",
        "return 1",
    ];
    let mut rng = fastrand::Rng::with_seed(0x5eed_1234);
    for batch in 0..60 {
        let mut bytes = Vec::new();
        for _ in 0..20 {
            let name = names[rng.usize(..names.len())];
            let mut args: Vec<String> = name.split('|').map(str::to_uppercase).collect();
            for _ in 0..rng.usize(0..6) {
                args.push(if rng.u8(..) < 20 {
                    "y".repeat(rng.usize(0..5000))
                } else {
                    words[rng.usize(..words.len())].to_string()
                });
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            bytes.extend(encode(&args));
        }
        if batch % 10 == 9 {
            // Raw noise: whatever the parser makes of it.
            bytes.extend((0..rng.usize(1..300)).map(|_| rng.u8(..)));
        }
        hostile(setup.port, &bytes, Duration::from_millis(150));
        let report = bystander.report.lock().unwrap().clone();
        assert!(
            report.wrong.is_empty(),
            "fuzz batch {batch}: the bystander got {:?}",
            report.wrong
        );
    }
    bystander.progress(2);
    let report = bystander.finish();
    assert!(report.wrong.is_empty(), "{:?}", report.wrong);
    assert_eq!(
        backend_failures(&setup),
        0,
        "a backend connection was lost; log:\n{}",
        setup.proxy.log()
    );
}

#[test]
fn settings_the_proxy_depends_on_cannot_be_changed_through_it() {
    let setup = common::start(3, &[]);
    let mut client = setup.client();
    for (name, value) in [
        ("requirepass", "x"),
        ("masterauth", "x"),
        ("timeout", "1"),
        ("maxclients", "1"),
        ("proto-max-bulk-len", "1mb"),
    ] {
        let reply = client.cmd(&["CONFIG", "SET", name, value]).unwrap();
        let Reply::Error(message) = reply else {
            panic!("CONFIG SET {name} was accepted: {reply:?}");
        };
        assert!(
            message.contains(&format!(
                "CONFIG SET '{name}' is not allowed through the proxy"
            )),
            "{message}"
        );
    }
    // Nothing reached a server; other settings still go to every shard.
    for server in &setup.servers {
        let pass = server.cmd(&["CONFIG", "GET", "requirepass"]);
        assert_eq!(
            pass,
            Reply::Array(vec![
                Reply::Bulk(b"requirepass".to_vec()),
                Reply::Bulk(Vec::new())
            ])
        );
    }
    assert_eq!(
        client
            .cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"])
            .unwrap(),
        Reply::Simple("OK".into())
    );
    for server in &setup.servers {
        assert_eq!(
            server.cmd(&["CONFIG", "GET", "maxmemory-policy"]),
            Reply::Array(vec![
                Reply::Bulk(b"maxmemory-policy".to_vec()),
                Reply::Bulk(b"allkeys-lru".to_vec())
            ])
        );
    }
    // The proxy can still open new backend connections (no password was set).
    let mut fresh = setup.client();
    assert_eq!(
        fresh.cmd(&["SELECT", "5"]).unwrap(),
        Reply::Simple("OK".into())
    );
    assert_eq!(
        fresh.cmd(&["SET", "after", "1"]).unwrap(),
        Reply::Simple("OK".into())
    );
}

/// A script that never ends, killed through the proxy by another client:
/// the kill reaches the server at once (not queued behind the script), the
/// node is reported busy (not down) meanwhile, other clients get Redis's
/// own BUSY error, and the shard serves again without a restart.
#[test]
fn a_runaway_script_or_function_is_killed_through_the_proxy() {
    let server = RedisServer::builder()
        .arg("busy-reply-threshold", "100")
        .start();
    let direct = server.port();
    let setup = common::start_with(
        vec![server],
        &["timeout: 20000", "server_connections: 1"],
        &["--workers", "1"],
    );
    let library =
        "#!lua name=spin\nredis.register_function('spin', function() while true do end end)";
    assert_eq!(
        setup.client().cmd(&["FUNCTION", "LOAD", library]).unwrap(),
        Reply::Bulk(b"spin".to_vec())
    );
    for (run, kill, killed) in [
        (
            &["EVAL", "while true do end", "0"][..],
            &["SCRIPT", "KILL"][..],
            "Script killed by user with SCRIPT KILL",
        ),
        (
            &["FCALL", "spin", "0"][..],
            &["FUNCTION", "KILL"][..],
            // Redis 7.0 words a killed function this way too.
            "Script killed by user with SCRIPT KILL",
        ),
    ] {
        let port = setup.port;
        let runner = {
            let run: Vec<String> = run.iter().map(|s| s.to_string()).collect();
            std::thread::spawn(move || {
                let mut client = RespClient::connect(port).unwrap();
                client.set_read_timeout(Some(Duration::from_secs(30)));
                let args: Vec<&str> = run.iter().map(String::as_str).collect();
                client.cmd(&args)
            })
        };
        // The node is busy, not down (the health check sees BUSY).
        assert_eventually!(
            within = Duration::from_secs(10),
            setup
                .proxy
                .admin_get("/topology")
                .is_ok_and(|(_, body)| body.contains("\"busy\":true")),
            "the node was never reported busy"
        );
        // Another client meets Redis's own BUSY, not a proxy error and not
        // a wait behind the script (its shared connection is stuck).
        let started = Instant::now();
        let reply = setup.client().cmd(&["GET", "k"]).unwrap();
        assert!(
            matches!(&reply, Reply::Error(e) if e.starts_with("BUSY ")),
            "{reply:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        let (_, topology) = setup.proxy.admin_get("/topology").unwrap();
        assert!(!topology.contains("\"health\":\"down\""), "{topology}");
        let started = Instant::now();
        let reply = setup.client().cmd(kill).unwrap();
        assert_eq!(reply, Reply::Simple("OK".into()), "{kill:?}");
        let outcome = runner.join().unwrap().expect("the script's reply");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "killing took {:?}",
            started.elapsed()
        );
        match outcome {
            Reply::Error(e) => assert!(e.contains(killed), "{e}"),
            other => panic!("{run:?} answered {other:?}"),
        }
        // Serving again, through the same shared connection.
        assert_eq!(
            setup.client().cmd(&["SET", "k", "v"]).unwrap(),
            Reply::Simple("OK".into())
        );
        assert_eq!(
            RespClient::connect(direct)
                .unwrap()
                .cmd(&["GET", "k"])
                .unwrap(),
            Reply::Bulk(b"v".to_vec())
        );
        assert_eventually!(
            within = Duration::from_secs(5),
            setup
                .proxy
                .admin_get("/topology")
                .is_ok_and(|(_, body)| body.contains("\"busy\":false")),
            "the node stayed busy"
        );
    }
}

/// A shared connection stuck behind a long command: requests sent after
/// it is found stuck go over another connection to the node, and get
/// Redis's answer (here BUSY) instead of waiting behind the command.
#[test]
fn a_connection_stuck_behind_a_long_command_does_not_hold_up_new_requests() {
    let server = RedisServer::builder()
        .arg("busy-reply-threshold", "50")
        .start();
    let setup = common::start_with(
        vec![server],
        &["timeout: 20000", "server_connections: 1"],
        &["--workers", "1"],
    );
    let port = setup.port;
    // Runs for 2 s, then ends by itself.
    let script = "local t = redis.call('TIME') local e = t[1] * 1000000 + t[2] + 2000000 \
                  repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] > e return 1";
    let runner = std::thread::spawn(move || {
        let mut client = RespClient::connect(port).unwrap();
        client.cmd(&["EVAL", script, "0"])
    });
    std::thread::sleep(Duration::from_millis(300));
    // The shared connection carries the script: a new request is answered
    // by Redis (BUSY) within a fraction of the script's 2 s.
    let mut client = setup.client();
    let started = Instant::now();
    let reply = client.cmd(&["GET", "k"]).unwrap();
    let waited = started.elapsed();
    assert!(
        matches!(&reply, Reply::Error(e) if e.starts_with("BUSY ")),
        "{reply:?}"
    );
    assert!(waited < Duration::from_millis(1000), "waited {waited:?}");
    assert_eq!(runner.join().unwrap().unwrap(), Reply::Integer(1));
    assert_eq!(client.cmd(&["GET", "k"]).unwrap(), Reply::Nil);
}

#[test]
fn clients_that_hold_too_much_together_are_closed_heaviest_first() {
    let setup = common::start_with(
        vec![RedisServer::start()],
        &[],
        &["--workers", "1", "--maxmemory-clients", "16mb"],
    );
    let port = setup.port;
    // An 8 MiB value, set on the server itself.
    let big = "x".repeat(8 << 20);
    setup.servers[0]
        .client()
        .cmd(&["SET", "big", &big])
        .unwrap();
    let small = "y".repeat(1 << 20);
    setup.servers[0]
        .client()
        .cmd(&["SET", "small", &small])
        .unwrap();
    let bystander = Bystander::start(port);
    bystander.progress(5);
    // A light client leaves one 1 MiB reply unread meanwhile: the heaviest
    // go first, so it is never the one closed.
    let mut light = RespClient::connect(port).unwrap();
    light.send(&["GET", "small"]).unwrap();
    // Three clients ask for it eight times each and never read: 64 MiB of
    // replies each (under the per-client limit), 192 MiB together.
    let readers: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream
                .write_all(&commands(&[&["GET", "big"][..]; 8]))
                .unwrap();
            stream
        })
        .collect();
    let evicted = || -> u64 {
        let (_, metrics) = setup.proxy.admin_get("/metrics").unwrap();
        metrics
            .lines()
            .filter(|l| l.starts_with("shardgate_clients_evicted_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert_eventually!(
        within = Duration::from_secs(10),
        evicted() >= 2,
        "no client was closed: {}",
        setup.proxy.log()
    );
    bystander.progress(5);
    // A closed reader finds its connection ended once it reads what the
    // kernel still held.
    let mut ended = 0;
    for mut reader in readers {
        reader
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let mut probe = [0u8; 1];
        if matches!(reader.read(&mut probe), Ok(0)) || reader.write_all(b"PING\r\n").is_err() {
            ended += 1;
        }
    }
    assert!(ended >= 2, "{ended} of 3 readers were closed");
    assert_eq!(light.read_reply().unwrap(), Reply::Bulk(small.into_bytes()));
    assert_eq!(light.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    let report = bystander.finish();
    assert!(report.wrong.is_empty(), "{:?}", report.wrong);
    assert!(
        setup
            .proxy
            .log()
            .contains("clients hold more memory than --maxmemory-clients allows"),
        "{}",
        setup.proxy.log()
    );
    // Served as before.
    let mut client = setup.client();
    assert_eq!(
        client.cmd(&["STRLEN", "big"]).unwrap(),
        Reply::Integer(8 << 20)
    );
}
