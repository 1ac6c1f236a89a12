//! Bad input, dead and hung backends, slow readers, limits: each gets a
//! precise error and never affects other clients.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use test_support::resp::{encode, Reply};
use test_support::{assert_eventually, RespClient};

fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}

#[test]
fn malformed_input_gets_a_protocol_error_and_other_clients_do_not_notice() {
    let setup = common::start(1, &[]);
    let mut healthy = setup.client();
    assert_eq!(
        healthy.cmd(&["SET", "k", "v"]).unwrap(),
        Reply::Simple("OK".into())
    );
    // A healthy request, then garbage in the same packet: the first is
    // answered, then the error, then the connection closes (as Redis does).
    for (garbage, reason) in [
        (
            &b"*2\r\n$3\r\nGET\r\n$x\r\n"[..],
            "ERR Protocol error: invalid bulk length",
        ),
        (
            &b"*2\r\n+GET\r\n"[..],
            "ERR Protocol error: expected '$', got '+'",
        ),
        (
            &b"*abc\r\n"[..],
            "ERR Protocol error: invalid multibulk length",
        ),
        (
            &b"SET k \"unbalanced\r\n"[..],
            "ERR Protocol error: unbalanced quotes in request",
        ),
    ] {
        let mut bad = TcpStream::connect(("127.0.0.1", setup.port)).unwrap();
        let mut request = encode(&["GET", "k"]);
        request.extend_from_slice(garbage);
        bad.write_all(&request).unwrap();
        let got = String::from_utf8(read_to_close(&mut bad)).unwrap();
        assert_eq!(got, format!("$1\r\nv\r\n-{reason}\r\n"), "for {garbage:?}");
        assert_eq!(
            healthy.cmd(&["GET", "k"]).unwrap(),
            Reply::Bulk(b"v".to_vec())
        );
    }
}

#[test]
fn oversize_requests_get_a_clear_error() {
    let setup = common::start(1, &["max_request_bytes: 1024"]);
    let mut bad = TcpStream::connect(("127.0.0.1", setup.port)).unwrap();
    bad.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000\r\n")
        .unwrap();
    let got = String::from_utf8(read_to_close(&mut bad)).unwrap();
    assert_eq!(got, "-ERR Protocol error: invalid bulk length\r\n");
    let mut inline = TcpStream::connect(("127.0.0.1", setup.port)).unwrap();
    let long_line = vec![b'a'; 70 * 1024];
    let _ = inline.write_all(&long_line);
    let got = String::from_utf8(read_to_close(&mut inline)).unwrap();
    assert_eq!(got, "-ERR Protocol error: too big inline request\r\n");
    assert_eq!(
        setup.client().cmd(&["PING"]).unwrap(),
        Reply::Simple("PONG".into())
    );
}

#[test]
fn a_dead_backend_gets_immediate_errors_and_the_proxy_reconnects() {
    let mut setup = common::start(1, &["timeout: 2000", "server_retry_timeout: 200"]);
    let mut client = setup.client();
    assert_eq!(
        client.cmd(&["SET", "a", "1"]).unwrap(),
        Reply::Simple("OK".into())
    );
    setup.servers[0].kill();
    // Every request now fails fast with an error naming the pool and server.
    let addr = setup.servers[0].addr();
    for _ in 0..20 {
        let started = Instant::now();
        let reply = client.cmd(&["GET", "a"]).unwrap();
        let Reply::Error(message) = reply else {
            panic!("expected an error while the server is down, got {reply:?}");
        };
        assert!(message.starts_with("ERR shardgate: "), "{message}");
        assert!(
            message.contains(&format!("pool 'test' server {addr}")),
            "{message}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "took {:?}",
            started.elapsed()
        );
    }
    setup.servers[0].restart();
    assert_eventually!(
        client.cmd(&["SET", "a", "2"]).ok() == Some(Reply::Simple("OK".into())),
        "the proxy never reconnected: {}",
        setup.proxy.log()
    );
    // The client's own connection stayed open throughout.
    assert_eq!(
        client.cmd(&["GET", "a"]).unwrap(),
        Reply::Bulk(b"2".to_vec())
    );
}

#[test]
fn a_backend_killed_under_pipelined_traffic_loses_no_client_connection() {
    let mut setup = common::start(1, &["timeout: 1000", "server_retry_timeout: 100"]);
    let port = setup.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut client = RespClient::connect(port).unwrap();
                let (mut ok, mut errors) = (0u64, 0u64);
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    // Every request gets exactly one reply: OK or an error.
                    match client.cmd(&["SET", &format!("w{w}:{i}"), "v"]) {
                        Ok(Reply::Simple(s)) if s == "OK" => ok += 1,
                        Ok(Reply::Error(_)) => errors += 1,
                        other => panic!("unexpected {other:?}"),
                    }
                }
                (ok, errors)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    setup.servers[0].kill();
    std::thread::sleep(Duration::from_millis(300));
    setup.servers[0].restart();
    let mut probe = setup.client();
    assert_eventually!(
        probe.cmd(&["PING"]).is_ok()
            && probe.cmd(&["SET", "probe", "1"]).ok() == Some(Reply::Simple("OK".into())),
        "no recovery"
    );
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for worker in workers {
        let (ok, errors) = worker.join().expect("a client connection broke");
        assert!(ok > 0, "no successful writes");
        assert!(errors > 0, "the kill produced no errors at all (ok={ok})");
    }
}

#[test]
fn a_hung_backend_times_out_within_the_pool_timeout() {
    let setup = common::start(1, &["timeout: 300"]);
    let mut client = setup.client();
    assert_eq!(
        client.cmd(&["SET", "a", "1"]).unwrap(),
        Reply::Simple("OK".into())
    );
    setup.servers[0].pause();
    let started = Instant::now();
    let reply = client.cmd(&["GET", "a"]).unwrap();
    let elapsed = started.elapsed();
    setup.servers[0].resume();
    let Reply::Error(message) = reply else {
        panic!("expected a timeout error, got {reply:?}");
    };
    assert!(message.contains("did not reply within 300 ms"), "{message}");
    assert!(
        elapsed >= Duration::from_millis(250),
        "too early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(2000),
        "too late: {elapsed:?}"
    );
    assert_eventually!(
        client.cmd(&["GET", "a"]).ok() == Some(Reply::Bulk(b"1".to_vec())),
        "no recovery after SIGCONT"
    );
}

#[test]
fn client_connections_caps_clients_with_redis_wording() {
    let setup = common::start(1, &["client_connections: 2"]);
    // The harness's readiness probe is a connection too: wait until the
    // proxy has seen it close before counting on two free slots.
    let admitted = || {
        let mut client = None;
        assert_eventually!(
            {
                let mut c = setup.client();
                let ok = c.cmd(&["PING"]).ok() == Some(Reply::Simple("PONG".into()));
                if ok {
                    client = Some(c);
                }
                ok
            },
            "no free client slot"
        );
        client.expect("admitted")
    };
    let mut first = admitted();
    let mut second = admitted();
    assert_eq!(first.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    assert_eq!(second.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    let mut third = TcpStream::connect(("127.0.0.1", setup.port)).unwrap();
    let got = String::from_utf8(read_to_close(&mut third)).unwrap();
    assert_eq!(got, "-ERR max number of clients reached\r\n");
    drop(first);
    assert_eventually!(
        RespClient::connect(setup.port)
            .and_then(|mut c| c.cmd(&["PING"]))
            .ok()
            == Some(Reply::Simple("PONG".into())),
        "a freed slot was never reused"
    );
}

/// A client that pipelines reads of a large value and never reads the
/// replies is cut off at `client_output_limit`; others carry on.
#[test]
fn a_slow_reader_is_cut_off_at_the_output_limit() {
    let setup = common::start(1, &["client_output_limit: 1048576"]);
    let value = "v".repeat(100_000);
    setup.servers[0].cmd(&["SET", "big", &value]);
    let mut slow = TcpStream::connect(("127.0.0.1", setup.port)).unwrap();
    slow.set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut batch = Vec::new();
    for _ in 0..200 {
        batch.extend(encode(&["GET", "big"]));
    }
    // 200 x 100 KB = 20 MB of replies against a 1 MB limit.
    let _ = slow.write_all(&batch);
    let mut healthy = setup.client();
    for i in 0..50 {
        assert_eq!(
            healthy.cmd(&["SET", &format!("h{i}"), "1"]).unwrap(),
            Reply::Simple("OK".into())
        );
    }
    // The proxy gives up on the client that never reads (it must not wait
    // for us to start reading: reading would make room for more replies).
    assert_eventually!(
        setup.proxy.log().contains("reply bytes unread"),
        "the slow reader was never cut off; log:\n{}",
        setup.proxy.log()
    );
    // Its connection is closed: reading it to the end terminates, having
    // received far less than was asked.
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the slow reader was not disconnected: {e}"),
        }
    }
    assert!(
        received < 20_000_000,
        "received {received} bytes: not cut off"
    );
}

/// Backend trouble is logged at the default level once per episode (not
/// once per failed request), with the node and the reason; its end only
/// once a reply has arrived again (a frozen server still accepts TCP).
#[test]
fn backend_trouble_is_logged_once_per_episode_and_its_end_after_a_reply() {
    let servers = vec![test_support::RedisServer::start()];
    let setup = common::start_with(servers, &["timeout: 300"], &["--workers", "2"]);
    let server = setup.servers[0].addr();
    let mut client = setup.client();
    assert_eq!(
        client.cmd(&["SET", "k", "v"]).unwrap(),
        Reply::Simple("OK".into())
    );
    setup.servers[0].pause();
    let mut failed = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        // New clients land on both workers.
        if let Ok(Reply::Error(_)) = RespClient::connect(setup.port).unwrap().cmd(&["GET", "k"]) {
            failed += 1;
        }
    }
    assert!(
        failed >= 5,
        "only {failed} requests failed on a frozen server"
    );
    let troubles = |log: &str| {
        log.lines()
            .filter(|l| l.contains("WARN") && l.contains("backend trouble") && l.contains(&server))
            .count()
    };
    let log = setup.proxy.log();
    assert_eq!(troubles(&log), 1, "{log}");
    assert!(!log.contains("answering again"), "{log}");
    setup.servers[0].resume();
    assert_eventually!(
        within = Duration::from_secs(10),
        matches!(
            RespClient::connect(setup.port).unwrap().cmd(&["GET", "k"]),
            Ok(Reply::Bulk(_))
        ),
        "never served again"
    );
    assert_eventually!(
        setup.proxy.log().contains("backend answering again"),
        "the end of the episode was not logged"
    );
    assert_eq!(troubles(&setup.proxy.log()), 1);
}

/// At the file descriptor limit, new clients get Redis's own
/// `max number of clients reached` at once instead of hanging in the
/// backlog, the log says so once, and clients are served again when
/// descriptors free up.
#[test]
fn at_the_descriptor_limit_new_clients_are_told_and_served_again_later() {
    let server = test_support::RedisServer::start();
    let port = test_support::ports::free_port();
    let yaml = format!(
        "fd:\n  listen: 127.0.0.1:{port}\n  servers:\n    - {}:1\n",
        server.addr()
    );
    let proxy = test_support::Shardgate::builder(common::BIN, &yaml)
        .arg("--workers")
        .arg("1")
        .nofile_limit(64)
        .wait_port(port)
        .start();
    let mut held = Vec::new();
    let mut refused = None;
    for _ in 0..100 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        stream.write_all(&encode(&["PING"])).unwrap();
        let mut reply = [0u8; 64];
        match stream.read(&mut reply) {
            Ok(n) if reply[..n].starts_with(b"+PONG") => held.push(stream),
            Ok(n) => {
                refused = Some(String::from_utf8_lossy(&reply[..n]).into_owned());
                break;
            }
            Err(e) => panic!("a client got no answer at the limit: {e}"),
        }
    }
    assert_eq!(
        refused.as_deref(),
        Some("-ERR max number of clients reached\r\n"),
        "{} clients were served",
        held.len()
    );
    // More refusals are not logged again.
    for _ in 0..20 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let _ = read_to_close(&mut stream);
    }
    let warnings = proxy
        .log()
        .lines()
        .filter(|l| l.contains("out of file descriptors"))
        .count();
    assert_eq!(warnings, 1, "{}", proxy.log());
    drop(held);
    assert_eventually!(
        RespClient::connect(port)
            .ok()
            .and_then(|mut c| c.cmd(&["PING"]).ok())
            == Some(Reply::Simple("PONG".into())),
        "never served again"
    );
    assert!(proxy.log().contains("accepting clients again"));
}

/// The proxy counts a client as blocked once its call is sent; its server
/// only once the call has arrived. A CLIENT UNBLOCK in between (here, the
/// call's connection is still opening through a slow network) must still
/// end the call, not leave it blocked for its full timeout. A client
/// that repeats it must not multiply what the proxy sends the server.
#[test]
fn client_unblock_ends_a_call_still_on_its_way_to_its_server() {
    let server = test_support::RedisServer::start();
    let relay = test_support::Relay::start(server.port());
    relay.set_delay(Duration::from_millis(300));
    let setup = common::start_with_addrs(
        &[format!("127.0.0.1:{}", relay.port())],
        &[
            "timeout: 3000",
            "health_check: {interval: 500, timeout: 3000}",
        ],
    );
    // How many CLIENT UNBLOCKs the server has run (asked past the relay).
    let unblocks_run = || {
        let mut direct = RespClient::connect(server.port()).unwrap();
        let Ok(Reply::Bulk(stats)) = direct.cmd(&["INFO", "commandstats"]) else {
            panic!("INFO commandstats");
        };
        String::from_utf8_lossy(&stats)
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_client|unblock:calls="))
            .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    for (how, expected) in [
        ("TIMEOUT", Reply::Nil),
        (
            "ERROR",
            Reply::Error("UNBLOCKED client unblocked via CLIENT UNBLOCK".into()),
        ),
    ] {
        let mut blocked = setup.client();
        let Ok(Reply::Integer(id)) = blocked.cmd(&["CLIENT", "ID"]) else {
            panic!("CLIENT ID");
        };
        blocked.send(&["BLPOP", "nothing", "30"]).unwrap();
        let mut other = setup.client();
        // (CLIENT LIST is the proxy's own: it answers at once.)
        assert_eventually!(
            matches!(other.cmd(&["CLIENT", "LIST", "ID", &id.to_string()]), Ok(Reply::Bulk(line)) if String::from_utf8_lossy(&line).contains(" flags=b ")),
            "CLIENT LIST never showed the blocked client"
        );
        let (run_before, asked) = (unblocks_run(), Instant::now());
        assert_eq!(
            other
                .cmd(&["CLIENT", "UNBLOCK", &id.to_string(), how])
                .unwrap(),
            Reply::Integer(1)
        );
        // The same, again and again, while the call is still on its way.
        for _ in 0..20 {
            other
                .cmd(&["CLIENT", "UNBLOCK", &id.to_string(), how])
                .unwrap();
        }
        blocked.set_read_timeout(Some(Duration::from_secs(10)));
        assert_eq!(blocked.read_reply().unwrap(), expected, "{how}");
        assert!(asked.elapsed() < Duration::from_secs(10), "{how}");
        // One request stream for the call, not one per CLIENT UNBLOCK:
        // each round trip takes 600 ms here, so a single one asks a few
        // times at most.
        let run = unblocks_run() - run_before;
        assert!(
            (1..10).contains(&run),
            "{how}: the server ran {run} CLIENT UNBLOCKs"
        );
        // The other client's connection still works.
        assert_eq!(other.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    }
}
