//! Stateful Redis through a 3-shard pool, with real clients: WATCH
//! conflicts, blocking pops woken and released, pattern subscriptions fed
//! by every shard and restored after a restart, MONITOR merged from every
//! shard, SELECT isolation, CLIENT LIST / KILL, and the `redis` crate's own
//! pipelines, transactions, Pub/Sub and RESP3.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use common::{bulk, ok};

use std::time::{Duration, Instant};

use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::{assert_eventually, RedisServer, RespClient, Shardgate};

struct Pool {
    servers: Vec<RedisServer>,
    _proxy: Shardgate,
    port: u16,
}

fn pool(extra: &str) -> Pool {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let port = free_port();
    let mut yaml = format!("s:\n  listen: 127.0.0.1:{port}\n  hash: murmur\n{extra}  servers:\n");
    for (i, server) in servers.iter().enumerate() {
        yaml.push_str(&format!("    - {}:1 shard{i}\n", server.addr()));
    }
    let proxy = Shardgate::builder(common::BIN, &yaml)
        .wait_port(port)
        .start();
    Pool {
        servers,
        _proxy: proxy,
        port,
    }
}

impl Pool {
    fn client(&self) -> RespClient {
        RespClient::connect(self.port).expect("connect")
    }

    fn shard_of(&self, key: &str) -> usize {
        self.servers
            .iter()
            .position(|s| s.cmd(&["EXISTS", key]) == Reply::Integer(1))
            .expect("placed")
    }

    /// Channel names (or keys) that land on three different shards.
    fn one_per_shard(&self, prefix: &str) -> Vec<String> {
        let mut found: Vec<Option<String>> = vec![None; 3];
        let mut c = self.client();
        for i in 0..200 {
            let name = format!("{prefix}{i}");
            c.cmd(&["SET", &name, "x"]).unwrap();
            let shard = self.shard_of(&name);
            c.cmd(&["DEL", &name]).unwrap();
            found[shard].get_or_insert(name);
            if found.iter().all(Option::is_some) {
                break;
            }
        }
        found
            .into_iter()
            .map(|f| f.expect("a name per shard"))
            .collect()
    }
}

#[test]
fn a_watched_key_changed_by_another_client_aborts_the_transaction() {
    let pool = pool("");
    let mut a = pool.client();
    let mut b = pool.client();
    assert_eq!(a.cmd(&["WATCH", "balance"]).unwrap(), ok());
    assert_eq!(b.cmd(&["SET", "balance", "100"]).unwrap(), ok());
    assert_eq!(a.cmd(&["MULTI"]).unwrap(), ok());
    assert_eq!(
        a.cmd(&["SET", "balance", "0"]).unwrap(),
        Reply::Simple("QUEUED".into())
    );
    assert_eq!(
        a.cmd(&["EXEC"]).unwrap(),
        Reply::Nil,
        "EXEC ran despite the conflict"
    );
    assert_eq!(a.cmd(&["GET", "balance"]).unwrap(), bulk("100"));
    // Without a conflict it commits.
    assert_eq!(a.cmd(&["WATCH", "balance"]).unwrap(), ok());
    assert_eq!(a.cmd(&["MULTI"]).unwrap(), ok());
    a.cmd(&["INCRBY", "balance", "5"]).unwrap();
    assert_eq!(
        a.cmd(&["EXEC"]).unwrap(),
        Reply::Array(vec![Reply::Integer(105)])
    );
    // A key on another shard inside the transaction: CROSSSLOT, then EXECABORT.
    let keys = pool.one_per_shard("tx:");
    assert_eq!(a.cmd(&["MULTI"]).unwrap(), ok());
    a.cmd(&["SET", &keys[0], "1"]).unwrap();
    let reply = a.cmd(&["SET", &keys[1], "1"]).unwrap();
    assert_eq!(
        reply,
        Reply::Error("CROSSSLOT Keys in request don't hash to the same slot".into())
    );
    let reply = a.cmd(&["EXEC"]).unwrap();
    assert_eq!(
        reply,
        Reply::Error("EXECABORT Transaction discarded because of previous errors.".into())
    );
    assert_eq!(a.cmd(&["EXISTS", &keys[0]]).unwrap(), Reply::Integer(0));
}

#[test]
fn a_watching_clients_commands_over_several_shards_keep_their_order() {
    let pool = pool("");
    let keys = pool.one_per_shard("w:");
    let (watched, other) = (keys[0].as_str(), keys[1].as_str());
    let mut a = pool.client();
    assert_eq!(a.cmd(&["SET", watched, "old"]).unwrap(), ok());
    // One pipeline: the split commands' part for the watched shard must
    // run after the SET before them and before the GET after them.
    for command in [
        &["WATCH", watched][..],
        &["SET", watched, "new"],
        &["MGET", watched, other],
        &["EXISTS", watched, other],
        &["DEL", watched, other],
        &["GET", watched],
        &["UNWATCH"],
    ] {
        a.send(command).unwrap();
    }
    let replies: Vec<Reply> = (0..7).map(|_| a.read_reply().unwrap()).collect();
    assert_eq!(
        replies,
        vec![
            ok(),
            ok(),
            Reply::Array(vec![bulk("new"), Reply::Nil]),
            Reply::Integer(1),
            Reply::Integer(1),
            Reply::Nil,
            ok(),
        ]
    );
    assert_eq!(a.cmd(&["EXISTS", watched]).unwrap(), Reply::Integer(0));
}

#[test]
fn a_blocking_pop_is_woken_bounded_by_its_own_timeout_and_released_on_disconnect() {
    let pool = pool("  timeout: 200\n");
    let mut waiter = pool.client();
    let mut pusher = pool.client();
    waiter.send(&["BLPOP", "jobs", "5"]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        pusher.cmd(&["RPUSH", "jobs", "j1"]).unwrap(),
        Reply::Integer(1)
    );
    assert_eq!(
        waiter.read_reply().unwrap(),
        Reply::Array(vec![bulk("jobs"), bulk("j1")])
    );
    // Its own 1 s timeout, not the pool's 200 ms: a null after ~1 s.
    let started = Instant::now();
    assert_eq!(waiter.cmd(&["BLPOP", "empty", "1"]).unwrap(), Reply::Nil);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // A client that leaves while blocked frees the server's blocked client.
    let shard = {
        pusher.cmd(&["SET", "gone", "x"]).unwrap();
        let s = pool.shard_of("gone");
        pusher.cmd(&["DEL", "gone"]).unwrap();
        s
    };
    let mut leaver = pool.client();
    leaver.send(&["BLPOP", "gone", "0"]).unwrap();
    let blocked = |s: &RedisServer| {
        s.info_field("clients", "blocked_clients")
            .and_then(|v| v.parse::<u32>().ok())
    };
    assert_eventually!(
        blocked(&pool.servers[shard]) == Some(1),
        "never blocked on the server"
    );
    drop(leaver);
    assert_eventually!(
        blocked(&pool.servers[shard]) == Some(0),
        "the server still blocks for a client that left"
    );
    // And the leased connection was not reused dirty: a push is not eaten.
    assert_eq!(
        pusher.cmd(&["RPUSH", "gone", "x"]).unwrap(),
        Reply::Integer(1)
    );
    assert_eq!(pusher.cmd(&["LLEN", "gone"]).unwrap(), Reply::Integer(1));
}

#[test]
fn pattern_subscriptions_hear_every_shard_and_survive_a_restart() {
    let mut pool = pool("");
    let channels = pool.one_per_shard("news.");
    let mut subscriber = pool.client();
    assert_eq!(
        subscriber.cmd(&["PSUBSCRIBE", "news.*"]).unwrap(),
        Reply::Array(vec![bulk("psubscribe"), bulk("news.*"), Reply::Integer(1)])
    );
    subscriber.send(&["SUBSCRIBE", &channels[1]]).unwrap();
    assert_eq!(
        subscriber.read_reply().unwrap(),
        Reply::Array(vec![
            bulk("subscribe"),
            bulk(&channels[1]),
            Reply::Integer(2)
        ])
    );
    let mut publisher = pool.client();
    for channel in &channels {
        assert!(matches!(
            publisher.cmd(&["PUBLISH", channel, "hi"]).unwrap(),
            Reply::Integer(1 | 2)
        ));
    }
    let mut heard = Vec::new();
    for _ in 0..4 {
        let Reply::Array(message) = subscriber.read_reply().unwrap() else {
            panic!("message")
        };
        heard.push(
            message[0].bulk_str().unwrap() + ":" + &message[message.len() - 2].bulk_str().unwrap(),
        );
    }
    heard.sort();
    let mut expected: Vec<String> = channels.iter().map(|c| format!("pmessage:{c}")).collect();
    expected.push(format!("message:{}", channels[1]));
    expected.sort();
    assert_eq!(heard, expected);

    // The shard of channels[1] restarts: its subscriptions are restored.
    let shard = {
        let mut c = pool.client();
        c.cmd(&["SET", &channels[1], "x"]).unwrap();
        let s = pool.shard_of(&channels[1]);
        c.cmd(&["DEL", &channels[1]]).unwrap();
        s
    };
    pool.servers[shard].restart();
    assert_eventually!(
        publisher.cmd(&["PUBLISH", &channels[1], "again"]).ok() == Some(Reply::Integer(2)),
        "the subscriptions were not restored after the restart"
    );
    let Reply::Array(first) = subscriber.read_reply().unwrap() else {
        panic!("message")
    };
    assert_eq!(first.last(), Some(&bulk("again")));
}

#[test]
fn monitor_merges_every_shard() {
    let pool = pool("");
    let keys = pool.one_per_shard("mon:");
    let mut monitor = pool.client();
    assert_eq!(monitor.cmd(&["MONITOR"]).unwrap(), ok());
    let mut c = pool.client();
    for key in &keys {
        c.cmd(&["SET", key, "watched"]).unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let Reply::Simple(line) = monitor.read_reply().unwrap() else {
            panic!("monitor line")
        };
        if let Some(key) = keys
            .iter()
            .find(|k| line.contains(&format!("\"SET\" \"{k}\"")))
        {
            seen.push(key.clone());
        }
    }
    seen.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(seen, expected);
}

#[test]
fn select_is_per_client_and_client_list_shows_the_proxys_clients() {
    let pool = pool("");
    let mut a = pool.client();
    let mut b = pool.client();
    assert_eq!(a.cmd(&["SELECT", "3"]).unwrap(), ok());
    assert_eq!(a.cmd(&["SET", "k", "in-db3"]).unwrap(), ok());
    assert_eq!(b.cmd(&["GET", "k"]).unwrap(), Reply::Nil);
    assert_eq!(a.cmd(&["GET", "k"]).unwrap(), bulk("in-db3"));
    let shard = pool
        .servers
        .iter()
        .position(|s| {
            s.client().cmd(&["SELECT", "3"]).is_ok() && {
                let mut c = s.client();
                c.cmd(&["SELECT", "3"]).unwrap();
                c.cmd(&["EXISTS", "k"]).unwrap() == Reply::Integer(1)
            }
        })
        .expect("k in db 3 somewhere");
    assert_eq!(pool.servers[shard].dbsize(), 0, "db 0 must stay empty");

    assert_eq!(a.cmd(&["CLIENT", "SETNAME", "alice"]).unwrap(), ok());
    let list = b.cmd(&["CLIENT", "LIST"]).unwrap().bulk_str().unwrap();
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(
        list.contains("name=alice") && list.contains("db=3"),
        "{list}"
    );
    let Reply::Integer(id) = a.cmd(&["CLIENT", "ID"]).unwrap() else {
        panic!("id")
    };
    assert_eq!(
        b.cmd(&["CLIENT", "KILL", "ID", &id.to_string()]).unwrap(),
        Reply::Integer(1)
    );
    assert!(
        a.cmd(&["PING"]).is_err(),
        "a killed client must be disconnected"
    );
}

#[test]
fn the_redis_crate_works_with_pipelines_transactions_pubsub_and_resp3() {
    let pool = pool("");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = format!("redis://127.0.0.1:{}/", pool.port);
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut pipe = redis::pipe();
        for i in 0..500 {
            pipe.cmd("SET").arg(format!("p{i}")).arg(i).ignore();
        }
        pipe.cmd("MGET")
            .arg((0..500).map(|i| format!("p{i}")).collect::<Vec<_>>());
        let (values,): (Vec<i64>,) = pipe.query_async(&mut conn).await.unwrap();
        assert_eq!(values, (0..500).collect::<Vec<_>>());
        let (a, b): (i64, i64) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg("{acct}x")
            .cmd("INCRBY")
            .arg("{acct}x")
            .arg(10)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!((a, b), (1, 11));

        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.psubscribe("evt.*").await.unwrap();
        let _: i64 = redis::cmd("PUBLISH")
            .arg("evt.one")
            .arg("payload")
            .query_async(&mut conn)
            .await
            .unwrap();
        use futures_util::StreamExt;
        let message = pubsub.on_message().next().await.unwrap();
        assert_eq!(message.get_channel_name(), "evt.one");
        assert_eq!(message.get_payload::<String>().unwrap(), "payload");

        let resp3 = redis::Client::open(format!("{url}?protocol=resp3").as_str()).unwrap();
        let mut conn3 = resp3.get_multiplexed_async_connection().await.unwrap();
        let _: () = redis::cmd("HSET")
            .arg("h")
            .arg("f")
            .arg("v")
            .query_async(&mut conn3)
            .await
            .unwrap();
        let map: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg("h")
            .query_async(&mut conn3)
            .await
            .unwrap();
        assert_eq!(map.get("f").map(String::as_str), Some("v"));
    });
}
