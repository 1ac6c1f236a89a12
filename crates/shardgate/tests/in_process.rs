//! The pool's client registry and the session, checked in process: the
//! proxy runs as a library inside the test (the harness in `common`), so
//! what its registry holds is read directly, beside what each client sees.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use common::{InProcess, PANICS};
use shardgate::pool::clients::{ClientEntry, UNBLOCK_TIMEOUT};
use shardgate::pool::PoolState;
use test_support::resp::{closed_by_peer, Reply};
use test_support::{assert_eventually, RedisServer, RespClient};

/// The registry's entry for the client connected from `client`'s socket.
fn entry(pool: &PoolState, client: &RespClient) -> Option<Arc<ClientEntry>> {
    let addr = client
        .stream()
        .local_addr()
        .expect("local address")
        .to_string();
    pool.clients.list().into_iter().find(|e| *e.addr == *addr)
}

fn pong(client: &mut RespClient) -> bool {
    matches!(client.cmd(&["PING"]), Ok(Reply::Simple(s)) if s == "PONG")
}

#[test]
fn the_registry_holds_exactly_the_connected_clients_and_ends_the_one_it_kills() {
    let redis = RedisServer::start();
    let proxy = InProcess::start(&[redis.port()], "");
    let pool = proxy.pool();
    let mut clients: Vec<RespClient> = (0..3).map(|_| proxy.client()).collect();
    for client in &mut clients {
        assert!(pong(client));
    }
    assert_eq!(pool.clients.count(), 3);
    for client in &mut clients {
        let entry = entry(&pool, client).expect("every connected client is registered");
        // What the client is told is what the registry holds.
        assert_eq!(
            client.cmd(&["CLIENT", "ID"]).unwrap(),
            Reply::Integer(entry.id as i64)
        );
    }
    clients[0].cmd(&["CLIENT", "SETNAME", "first"]).unwrap();
    assert_eq!(
        entry(&pool, &clients[0]).and_then(|e| e.name()).as_deref(),
        Some("first")
    );

    // A connection closed by its client leaves the registry.
    let gone = clients.pop().expect("three");
    let gone_addr = gone.stream().local_addr().unwrap().to_string();
    drop(gone);
    assert_eventually!(
        pool.clients.count() == 2 && pool.clients.list().iter().all(|e| *e.addr != *gone_addr),
        "a closed client is still registered"
    );

    // Killed through the registry: that client is closed, the other served.
    entry(&pool, &clients[1]).expect("registered").kill();
    clients[1].set_read_timeout(Some(Duration::from_secs(5)));
    assert!(
        closed_by_peer(&clients[1].read_reply()),
        "the killed client stays open"
    );
    assert!(pong(&mut clients[0]));
    assert_eventually!(
        pool.clients.count() == 1,
        "the killed client is still registered"
    );
    assert_eq!(PANICS.load(Relaxed), 0, "a thread panicked");
}

#[test]
fn what_a_client_holds_is_counted_while_held_and_nothing_once_answered() {
    let redis = RedisServer::start();
    let proxy = InProcess::start(&[redis.port()], "");
    let pool = proxy.pool();
    let mut client = proxy.client();
    assert!(pong(&mut client));
    let entry = entry(&pool, &client).expect("registered");
    // Recorded when the session parks, just after the reply went out.
    assert_eventually!(
        entry.memory() == 0,
        "an idle client holds {} bytes",
        entry.memory()
    );

    // Most of a 64 KiB SET: the session holds it until the rest comes.
    let value = vec![b'v'; 64 * 1024];
    let mut request = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", value.len()).into_bytes();
    request.extend_from_slice(&value);
    request.extend_from_slice(b"\r\n");
    let (head, tail) = request.split_at(request.len() - 1000);
    client.send_raw(head).unwrap();
    assert_eventually!(
        entry.memory() >= head.len() as u64 - 4096,
        "a partial request of {} bytes is not counted ({} bytes)",
        head.len(),
        entry.memory()
    );
    client.send_raw(tail).unwrap();
    assert_eq!(client.read_reply().unwrap(), Reply::Simple("OK".into()));
    assert_eventually!(
        entry.memory() == 0,
        "an answered client still counts {} bytes",
        entry.memory()
    );

    // Commands without keys queued in MULTI are held by the proxy until
    // the transaction's shard is known: counted while held.
    assert_eq!(client.cmd(&["MULTI"]).unwrap(), Reply::Simple("OK".into()));
    let padding = "x".repeat(1000);
    for _ in 0..100 {
        assert_eq!(
            client.cmd(&["ECHO", &padding]).unwrap(),
            Reply::Simple("QUEUED".into())
        );
    }
    assert!(
        entry.memory() >= 100 * 1000,
        "100 queued commands of 1 KB count {} bytes",
        entry.memory()
    );
    assert_eq!(
        client.cmd(&["DISCARD"]).unwrap(),
        Reply::Simple("OK".into())
    );
    // 102 requests in quick succession make the client busy: it keeps an
    // empty read buffer of at most 4 KiB for its next request (counted).
    assert_eventually!(
        entry.memory() <= 4096,
        "a discarded transaction still counts {} bytes",
        entry.memory()
    );
}

#[test]
fn a_blocked_call_shows_in_the_registry_and_is_ended_through_it() {
    let redis = RedisServer::start();
    let proxy = InProcess::start(&[redis.port()], "");
    let pool = proxy.pool();
    let mut blocked = proxy.client();
    let mut other = proxy.client();
    assert!(pong(&mut blocked));
    let entry = entry(&pool, &blocked).expect("registered");
    blocked.send(&["BLPOP", "nothing-here", "0"]).unwrap();
    assert_eventually!(entry.is_blocked(), "BLPOP does not show as blocked");
    assert_eq!(pool.clients.blocked(), 1);
    assert!(pong(&mut other), "a blocked client holds up another");

    // CLIENT UNBLOCK's way: the call ends as if its timeout passed.
    assert!(entry.unblock(UNBLOCK_TIMEOUT));
    blocked.set_read_timeout(Some(Duration::from_secs(5)));
    assert_eq!(blocked.read_reply().unwrap(), Reply::Nil);
    assert_eventually!(!entry.is_blocked(), "still shown as blocked");
    assert_eq!(pool.clients.blocked(), 0);
    // The client carries on, its next request answered in order.
    assert!(pong(&mut blocked));
    assert_eq!(PANICS.load(Relaxed), 0, "a thread panicked");
}
