//! The data path through one server: forwarding, pipelining, split reads,
//! inline commands, and replies byte for byte.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use test_support::resp::{encode, exchange_raw, Reply};

#[test]
fn forwards_commands_and_keys_land_on_the_server() {
    let setup = common::start(1, &[]);
    let mut client = setup.client();
    assert_eq!(
        client.cmd(&["SET", "greeting", "hello"]).unwrap(),
        Reply::Simple("OK".into())
    );
    assert_eq!(
        client.cmd(&["GET", "greeting"]).unwrap(),
        Reply::Bulk(b"hello".to_vec())
    );
    assert_eq!(
        setup.servers[0].cmd(&["GET", "greeting"]),
        Reply::Bulk(b"hello".to_vec())
    );
    assert_eq!(client.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    assert_eq!(
        client.cmd(&["PING", "hi"]).unwrap(),
        Reply::Bulk(b"hi".to_vec())
    );
    assert_eq!(
        client.cmd(&["ECHO", "x y"]).unwrap(),
        Reply::Bulk(b"x y".to_vec())
    );
    // Redis's own error for an unknown command comes back as it is.
    let reply = client.cmd(&["NOSUCHCOMMAND", "a"]).unwrap();
    assert!(
        matches!(&reply, Reply::Error(e) if e.starts_with("ERR unknown command")),
        "{reply:?}"
    );
}

#[test]
fn works_with_the_redis_crate_and_its_pipelines() {
    let setup = common::start(1, &[]);
    let client = redis::Client::open(setup.redis_url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let _: () = redis::cmd("SET").arg("n").arg(41).query(&mut conn).unwrap();
    let n: i64 = redis::cmd("INCR").arg("n").query(&mut conn).unwrap();
    assert_eq!(n, 42);
    let mut pipe = redis::pipe();
    for i in 0..100 {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
    }
    for i in 0..100 {
        pipe.cmd("GET").arg(format!("k{i}"));
    }
    let values: Vec<i64> = pipe.query(&mut conn).unwrap();
    assert_eq!(values, (0..100).collect::<Vec<i64>>());
}

#[test]
fn a_pipelined_batch_of_10000_commands_is_answered_in_order() {
    let setup = common::start(1, &[]);
    let mut client = setup.client();
    let mut batch = Vec::new();
    for i in 0..10_000 {
        batch.extend(encode(&["SET", &format!("key:{i}"), &format!("value:{i}")]));
        batch.extend(encode(&["GET", &format!("key:{i}")]));
    }
    // Write from another thread so a full socket buffer cannot deadlock.
    let mut writer = client.stream().try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&batch));
    for i in 0..10_000 {
        assert_eq!(
            client.read_reply().unwrap(),
            Reply::Simple("OK".into()),
            "SET {i}"
        );
        assert_eq!(
            client.read_reply().unwrap(),
            Reply::Bulk(format!("value:{i}").into_bytes()),
            "GET {i}"
        );
    }
    sender.join().unwrap().unwrap();
    assert_eq!(setup.servers[0].dbsize(), 10_000);
}

/// Sends `bytes` in two writes split at every position and checks the
/// replies are always the same.
#[test]
fn requests_split_at_every_byte_get_the_same_replies() {
    let setup = common::start(1, &[]);
    let mut request = Vec::new();
    request.extend(encode(&["SET", "split", "a value with spaces\r\nand CRLF"]));
    request.extend(encode(&["GET", "split"]));
    request.extend(b"PING\r\n");
    request.extend(encode(&["STRLEN", "split"]));
    let expected = "+OK\r\n$29\r\na value with spaces\r\nand CRLF\r\n+PONG\r\n:29\r\n";
    for cut in 1..request.len() {
        let mut stream = TcpStream::connect(("127.0.0.1", setup.port)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(&request[..cut]).unwrap();
        stream.flush().unwrap();
        std::thread::sleep(Duration::from_millis(1));
        stream.write_all(&request[cut..]).unwrap();
        let mut got = vec![0u8; expected.len()];
        stream.read_exact(&mut got).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            expected,
            "split at byte {cut}"
        );
    }
}

#[test]
fn a_request_sent_one_byte_at_a_time_is_answered() {
    let setup = common::start(1, &[]);
    let mut stream = TcpStream::connect(("127.0.0.1", setup.port)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = encode(&["SET", "slow", "drip"]);
    for byte in &request {
        stream.write_all(std::slice::from_ref(byte)).unwrap();
    }
    let mut got = [0u8; 5];
    stream.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"+OK\r\n");
    assert_eq!(
        setup.servers[0].cmd(&["GET", "slow"]),
        Reply::Bulk(b"drip".to_vec())
    );
}

#[test]
fn inline_commands_work_as_redis_server_accepts_them() {
    let setup = common::start(1, &[]);
    let mut client = setup.client();
    client
        .send_raw(b"PING\r\nSET inline \"hello world\\n\"\r\nGET inline\nEXISTS 'inline'\r\n\r\n")
        .unwrap();
    assert_eq!(client.read_reply().unwrap(), Reply::Simple("PONG".into()));
    assert_eq!(client.read_reply().unwrap(), Reply::Simple("OK".into()));
    assert_eq!(
        client.read_reply().unwrap(),
        Reply::Bulk(b"hello world\n".to_vec())
    );
    assert_eq!(client.read_reply().unwrap(), Reply::Integer(1));
}

/// Replies pass through untouched: the bytes from the proxy equal the
/// bytes from the server for the same commands.
#[test]
fn replies_reach_the_client_byte_for_byte() {
    let setup = common::start(1, &[]);
    let server = &setup.servers[0];
    server.cmd(&["RPUSH", "list", "a", "b", "c"]);
    server.cmd(&["HSET", "hash", "f1", "v1", "f2", "v2"]);
    server.cmd(&["ZADD", "z", "1.5", "m1", "2", "m2"]);
    server.cmd(&["SET", "big", &"x".repeat(100_000)]);
    let commands: Vec<Vec<&str>> = vec![
        vec!["LRANGE", "list", "0", "-1"],
        vec!["HGETALL", "hash"],
        vec!["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        vec!["GET", "big"],
        vec!["GET", "missing"],
        vec!["INCR", "list"],
        vec!["SCAN", "0", "COUNT", "100"],
        vec!["TYPE", "hash"],
        vec!["OBJECT", "ENCODING", "list"],
    ];
    for command in commands {
        let direct = exchange_raw(server.port(), &command).unwrap();
        let proxied = exchange_raw(setup.port, &command).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&proxied),
            String::from_utf8_lossy(&direct),
            "{command:?}"
        );
    }
}
