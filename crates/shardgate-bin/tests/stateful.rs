//! Connection-state commands through a one-server pool: the client gets a
//! backend connection of its own and behaves as if connected directly.

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
        server
            .cmd(&["INFO", "clients"])
            .bulk_str()
            .unwrap_or_default()
            .contains("blocked_clients:1"),
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
