//! Connection-state commands through a one-server pool: the client gets a
//! backend connection of its own and behaves as if connected directly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use common::ok;

use std::time::Duration;

use test_support::resp::{exchange_raw, Reply};

#[test]
fn select_uses_its_own_database_without_affecting_others() {
    let setup = common::start(1, &[]);
    let mut other = setup.client();
    let mut client = setup.client();
    assert_eq!(other.cmd(&["SET", "k", "db0"]).unwrap(), ok());
    assert_eq!(client.cmd(&["SELECT", "3"]).unwrap(), ok());
    assert_eq!(client.cmd(&["SET", "k", "db3"]).unwrap(), ok());
    assert_eq!(
        client.cmd(&["GET", "k"]).unwrap(),
        Reply::Bulk(b"db3".to_vec())
    );
    assert_eq!(
        other.cmd(&["GET", "k"]).unwrap(),
        Reply::Bulk(b"db0".to_vec())
    );
    let mut direct = setup.servers[0].client();
    direct.cmd(&["SELECT", "3"]).unwrap();
    assert_eq!(
        direct.cmd(&["GET", "k"]).unwrap(),
        Reply::Bulk(b"db3".to_vec())
    );
}

#[test]
fn transactions_and_watch_behave_as_on_redis() {
    let setup = common::start(1, &[]);
    let mut client = setup.client();
    let mut rival = setup.client();
    assert_eq!(client.cmd(&["SET", "balance", "10"]).unwrap(), ok());
    assert_eq!(client.cmd(&["WATCH", "balance"]).unwrap(), ok());
    assert_eq!(client.cmd(&["MULTI"]).unwrap(), ok());
    assert_eq!(
        client.cmd(&["INCRBY", "balance", "5"]).unwrap(),
        Reply::Simple("QUEUED".into())
    );
    // Another client changes the watched key: EXEC must abort.
    assert_eq!(rival.cmd(&["SET", "balance", "100"]).unwrap(), ok());
    assert_eq!(client.cmd(&["EXEC"]).unwrap(), Reply::Nil);
    assert_eq!(client.cmd(&["MULTI"]).unwrap(), ok());
    client.cmd(&["INCRBY", "balance", "5"]).unwrap();
    client.cmd(&["GET", "balance"]).unwrap();
    assert_eq!(
        client.cmd(&["EXEC"]).unwrap(),
        Reply::Array(vec![Reply::Integer(105), Reply::Bulk(b"105".to_vec())])
    );
}

#[test]
fn a_blocking_pop_is_woken_by_another_clients_push() {
    let setup = common::start(1, &["timeout: 200"]);
    let mut waiter = setup.client();
    waiter.set_read_timeout(Some(Duration::from_secs(10)));
    // Longer than the pool timeout: blocking commands are not cut by it.
    waiter.send(&["BLPOP", "jobs", "5"]).unwrap();
    let server = &setup.servers[0];
    test_support::assert_eventually!(
        blocked_clients(server) == 1,
        "the BLPOP never reached the server"
    );
    // Wait past the pool timeout before waking it.
    std::thread::sleep(Duration::from_millis(400));
    let mut pusher = setup.client();
    assert_eq!(
        pusher.cmd(&["RPUSH", "jobs", "job-1"]).unwrap(),
        Reply::Integer(1)
    );
    assert_eq!(
        waiter.read_reply().unwrap(),
        Reply::Array(vec![
            Reply::Bulk(b"jobs".to_vec()),
            Reply::Bulk(b"job-1".to_vec())
        ])
    );
}

#[test]
fn pubsub_messages_arrive_as_redis_sends_them() {
    let setup = common::start(1, &[]);
    let mut subscriber = setup.client();
    let confirmation = subscriber.cmd(&["SUBSCRIBE", "news"]).unwrap();
    assert_eq!(
        confirmation,
        Reply::Array(vec![
            Reply::Bulk(b"subscribe".to_vec()),
            Reply::Bulk(b"news".to_vec()),
            Reply::Integer(1)
        ])
    );
    let mut publisher = setup.client();
    assert_eq!(
        publisher.cmd(&["PUBLISH", "news", "hello"]).unwrap(),
        Reply::Integer(1)
    );
    assert_eq!(
        subscriber.read_reply().unwrap(),
        Reply::Array(vec![
            Reply::Bulk(b"message".to_vec()),
            Reply::Bulk(b"news".to_vec()),
            Reply::Bulk(b"hello".to_vec())
        ])
    );
}

#[test]
fn hello_3_switches_only_this_client_to_resp3() {
    let setup = common::start(1, &[]);
    let mut resp3 = setup.client();
    let hello = resp3.cmd(&["HELLO", "3"]).unwrap();
    assert!(matches!(hello, Reply::Array(_)), "{hello:?}");
    resp3.cmd(&["HSET", "h", "f", "v"]).unwrap();
    // A RESP3 map reply, passed through untouched.
    assert_eq!(
        resp3.cmd(&["HGETALL", "h"]).unwrap(),
        Reply::Array(vec![Reply::Bulk(b"f".to_vec()), Reply::Bulk(b"v".to_vec())])
    );
    // Other clients still get RESP2, byte for byte as from Redis directly.
    assert_eq!(
        exchange_raw(setup.port, &["HGETALL", "h"]).unwrap(),
        exchange_raw(setup.servers[0].port(), &["HGETALL", "h"]).unwrap()
    );
    assert_eq!(
        String::from_utf8(exchange_raw(setup.port, &["HGETALL", "h"]).unwrap()).unwrap(),
        "*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
}

#[test]
fn a_stateful_command_to_a_dead_server_gets_an_error_and_the_session_goes_on() {
    let mut setup = common::start(1, &[]);
    let mut client = setup.client();
    // Served (the first health checks are done) before the server dies:
    // otherwise its first probe fails and the shard has no master at all.
    assert_eq!(client.cmd(&["GET", "x"]).unwrap(), Reply::Nil);
    setup.servers[0].kill();
    // MULTI is answered by the proxy; the first key needs the server.
    assert_eq!(client.cmd(&["MULTI"]).unwrap(), ok());
    let reply = client.cmd(&["SET", "x", "1"]).unwrap();
    assert!(
        matches!(&reply, Reply::Error(e) if e.contains("is unavailable")),
        "{reply:?}"
    );
    // The transaction's connection never came up: EXEC says why.
    let reply = client.cmd(&["EXEC"]).unwrap();
    assert!(
        matches!(&reply, Reply::Error(e) if e.contains("is unavailable")),
        "{reply:?}"
    );
    setup.servers[0].restart();
    test_support::assert_eventually!(
        client.cmd(&["SET", "x", "1"]).ok() == Some(ok()),
        "no recovery"
    );
}

#[test]
fn replication_protocol_commands_are_refused_and_other_clients_keep_their_replies() {
    let setup = common::start(1, &[]);
    let mut intruder = setup.client();
    let mut victim = setup.client();
    assert_eq!(victim.cmd(&["SET", "secret", "victim"]).unwrap(), ok());
    // REPLCONF ACK gets no reply from Redis and SYNC turns a connection
    // into a replication link: on a shared connection either would hand
    // other clients' replies to the wrong client.
    for command in [
        &["REPLCONF", "ACK", "0"][..],
        &["SYNC"],
        &["PSYNC", "?", "-1"],
    ] {
        let reply = intruder.cmd(command).unwrap();
        assert!(
            matches!(&reply, Reply::Error(e) if e.contains("replication protocol")),
            "{command:?}: {reply:?}"
        );
    }
    assert_eq!(intruder.cmd(&["SET", "mine", "intruder"]).unwrap(), ok());
    assert_eq!(
        victim.cmd(&["GET", "secret"]).unwrap(),
        common::bulk("victim")
    );
    assert_eq!(
        intruder.cmd(&["GET", "mine"]).unwrap(),
        common::bulk("intruder")
    );
}

/// How many clients the server has blocked (BLPOP and the like).
fn blocked_clients(server: &test_support::RedisServer) -> u32 {
    let info = server
        .cmd(&["INFO", "clients"])
        .bulk_str()
        .unwrap_or_default();
    info.lines()
        .find_map(|line| line.strip_prefix("blocked_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(u32::MAX)
}

/// Kills every client connection the proxy has on the server (but not
/// the caller's).
fn kill_proxy_connections(server: &test_support::RedisServer) {
    let killed = server.cmd(&["CLIENT", "KILL", "TYPE", "normal"]);
    assert!(matches!(killed, Reply::Integer(n) if n > 0), "{killed:?}");
}

#[test]
fn a_transaction_whose_connection_dies_runs_nothing_outside_it() {
    let setup = common::start(1, &[]);
    let server = &setup.servers[0];
    let mut client = setup.client();
    assert_eq!(client.cmd(&["SET", "k", "before"]).unwrap(), ok());
    assert_eq!(client.cmd(&["MULTI"]).unwrap(), ok());
    assert_eq!(
        client.cmd(&["SET", "k", "first"]).unwrap(),
        Reply::Simple("QUEUED".into())
    );
    kill_proxy_connections(server);
    // The transaction is gone with its connection: the next command must
    // not run at once on a fresh connection, nor be queued anywhere.
    let reply = client.cmd(&["SET", "k", "second"]).unwrap();
    assert!(reply.is_error(), "{reply:?}");
    let reply = client.cmd(&["EXEC"]).unwrap();
    assert!(reply.is_error(), "{reply:?}");
    assert_eq!(server.cmd(&["GET", "k"]), common::bulk("before"));

    // WATCH: a write by another client while the watching connection was
    // down must still abort (or fail) the transaction, never be overwritten.
    let mut rival = setup.client();
    test_support::assert_eventually!(
        client.cmd(&["WATCH", "k"]).ok() == Some(ok()),
        "no recovery after the kill"
    );
    kill_proxy_connections(server);
    test_support::assert_eventually!(
        rival.cmd(&["SET", "k", "rival"]).ok() == Some(ok()),
        "the rival never got through"
    );
    let _ = client.cmd(&["MULTI"]).unwrap();
    let _ = client.cmd(&["SET", "k", "mine"]).unwrap();
    let reply = client.cmd(&["EXEC"]).unwrap();
    assert!(reply.is_error() || reply == Reply::Nil, "{reply:?}");
    assert_eq!(server.cmd(&["GET", "k"]), common::bulk("rival"));
}

#[test]
fn select_and_hello_while_watching_apply_to_the_watching_connection() {
    let setup = common::start(1, &[]);
    let server = &setup.servers[0];
    let mut client = setup.client();
    assert_eq!(client.cmd(&["WATCH", "k"]).unwrap(), ok());
    assert_eq!(client.cmd(&["SELECT", "1"]).unwrap(), ok());
    assert_eq!(client.cmd(&["SET", "k", "in-db1"]).unwrap(), ok());
    assert_eq!(client.cmd(&["MULTI"]).unwrap(), ok());
    client.cmd(&["SET", "k", "tx"]).unwrap();
    // The WATCH was on db 0's k, which nobody touched.
    assert_eq!(client.cmd(&["EXEC"]).unwrap(), Reply::Array(vec![ok()]));
    assert_eq!(server.cmd(&["GET", "k"]), Reply::Nil);
    let mut direct = server.client();
    assert_eq!(direct.cmd(&["SELECT", "1"]).unwrap(), ok());
    assert_eq!(direct.cmd(&["GET", "k"]).unwrap(), common::bulk("tx"));

    assert_eq!(
        client.cmd(&["HSET", "h", "f", "v"]).unwrap(),
        Reply::Integer(1)
    );
    assert_eq!(client.cmd(&["WATCH", "h"]).unwrap(), ok());
    client.cmd(&["HELLO", "3"]).unwrap();
    let raw = client.cmd_raw(&["HGETALL", "h"]).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&raw),
        "%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
}

#[test]
fn evalsha_runs_in_order_on_a_server_that_lost_the_script() {
    let setup = common::start(1, &[]);
    let server = &setup.servers[0];
    let mut client = setup.client();
    assert_eq!(client.cmd(&["SET", "n", "1"]).unwrap(), ok());
    let sha = client
        .cmd(&["SCRIPT", "LOAD", "return redis.call('INCR', KEYS[1])"])
        .unwrap()
        .bulk_str()
        .expect("a sha");
    // As after a restart or failover: the server no longer has it.
    assert_eq!(server.cmd(&["SCRIPT", "FLUSH"]), ok());
    client.send(&["EVALSHA", &sha, "1", "n"]).unwrap();
    client.send(&["GET", "n"]).unwrap();
    client.send(&["SET", "n", "100"]).unwrap();
    assert_eq!(client.read_reply().unwrap(), Reply::Integer(2));
    assert_eq!(client.read_reply().unwrap(), common::bulk("2"));
    assert_eq!(client.read_reply().unwrap(), ok());
    assert_eq!(server.cmd(&["GET", "n"]), common::bulk("100"));
}

#[test]
fn a_client_that_half_closes_still_gets_its_replies() {
    use std::io::{Read, Write};
    let setup = common::start(1, &[]);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", setup.port)).unwrap();
    stream
        .write_all(b"SET k 1\r\nGET k\r\n*1\r\n$4\r\nPING\r\n")
        .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut replies = Vec::new();
    stream.read_to_end(&mut replies).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&replies),
        "+OK\r\n$1\r\n1\r\n+PONG\r\n"
    );

    // A blocking call is cancelled by the close instead: the server no
    // longer has a blocked client.
    let server = &setup.servers[0];
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", setup.port)).unwrap();
    stream.write_all(b"BLPOP q 0\r\n").unwrap();
    test_support::assert_eventually!(
        blocked_clients(server) == 1,
        "the BLPOP never reached the server"
    );
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    test_support::assert_eventually!(
        blocked_clients(server) == 0,
        "the BLPOP outlived its client"
    );

    // The same on the connection a WATCH pinned.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", setup.port)).unwrap();
    stream.write_all(b"WATCH q\r\nBLPOP q 0\r\n").unwrap();
    test_support::assert_eventually!(
        blocked_clients(server) == 1,
        "the watched BLPOP never reached the server"
    );
    drop(stream);
    test_support::assert_eventually!(
        blocked_clients(server) == 0,
        "the watched BLPOP outlived its client"
    );
}

/// CLIENT PAUSE holds the pool's clients as Redis holds its own: WRITE
/// holds only writes, ALL everything, until the timeout or CLIENT UNPAUSE.
#[test]
fn client_pause_holds_writes_or_everything_until_it_ends() {
    use std::time::{Duration, Instant};
    let setup = common::start(2, &[]);
    let mut admin = setup.client();
    let mut other = setup.client();
    let timed = |client: &mut test_support::RespClient, args: &[&str]| {
        let start = Instant::now();
        let reply = client.cmd(args).unwrap();
        (reply, start.elapsed())
    };
    assert_eq!(
        admin.cmd(&["CLIENT", "PAUSE", "500", "WRITE"]).unwrap(),
        ok()
    );
    let (reply, waited) = timed(&mut other, &["GET", "k"]);
    assert_eq!(reply, Reply::Nil);
    assert!(
        waited < Duration::from_millis(250),
        "a read waited {waited:?}"
    );
    let (reply, waited) = timed(&mut other, &["SET", "k", "v"]);
    assert_eq!(reply, ok());
    assert!(
        waited >= Duration::from_millis(300),
        "a write waited only {waited:?}"
    );

    assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "400", "ALL"]).unwrap(), ok());
    let (reply, waited) = timed(&mut other, &["GET", "k"]);
    assert_eq!(reply, Reply::Bulk(b"v".to_vec()));
    assert!(
        waited >= Duration::from_millis(250),
        "a read waited only {waited:?}"
    );

    // A long WRITE pause ended early by CLIENT UNPAUSE (not itself a write).
    assert_eq!(
        admin.cmd(&["CLIENT", "PAUSE", "30000", "WRITE"]).unwrap(),
        ok()
    );
    let port = setup.port;
    let writer = std::thread::spawn(move || {
        let mut client = test_support::RespClient::connect(port).unwrap();
        let start = Instant::now();
        (client.cmd(&["SET", "k", "w"]).unwrap(), start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(admin.cmd(&["CLIENT", "UNPAUSE"]).unwrap(), ok());
    let (reply, waited) = writer.join().unwrap();
    assert_eq!(reply, ok());
    assert!(
        waited < Duration::from_secs(5),
        "held {waited:?} after UNPAUSE"
    );
    assert!(waited >= Duration::from_millis(150), "not held: {waited:?}");
}
