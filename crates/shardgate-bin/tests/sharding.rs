//! Commands that span shards, against three real redis-servers: split and
//! merged (MGET, MSET, DEL...), sent to every shard (FLUSHALL, DBSIZE,
//! KEYS, SCRIPT, CONFIG, WAIT, INFO), walked shard by shard (SCAN), refused
//! with a precise error (CROSSSLOT, commands with no meaning across
//! shards), and what happens while a shard is down, ejected or not.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use common::{bulk, ok};

use std::collections::BTreeSet;

use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::{assert_eventually, RedisServer, RespClient, Shardgate};

/// Keys `prefix0..n` and which server holds each (asked directly).
fn placement(servers: &[RedisServer], keys: &[String]) -> Vec<usize> {
    keys.iter()
        .map(|key| {
            servers
                .iter()
                .position(|s| s.cmd(&["EXISTS", key]) == Reply::Integer(1))
                .unwrap_or_else(|| panic!("{key} is on no server"))
        })
        .collect()
}

fn three_shards(extra: &str) -> (Vec<RedisServer>, Shardgate, u16) {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let port = free_port();
    // murmur spreads similar keys (`key:1`, `key:2`...) evenly; twemproxy's
    // default fnv1a_64 (really 32-bit FNV-1a with prime 0x1b3) clusters them.
    let mut yaml = format!(
        "shards:\n  listen: 127.0.0.1:{port}\n  hash: murmur\n  timeout: 500\n{extra}  servers:\n"
    );
    for (i, server) in servers.iter().enumerate() {
        yaml.push_str(&format!("    - {}:1 s{i}\n", server.addr()));
    }
    let proxy = Shardgate::builder(common::BIN, &yaml)
        .wait_port(port)
        .start();
    (servers, proxy, port)
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("key:{i}")).collect()
}

#[test]
fn multi_key_commands_split_per_shard_and_merge_like_one_redis() {
    let (servers, _proxy, port) = three_shards("");
    let mut c = RespClient::connect(port).expect("connect");
    let keys = keys(30);
    let mut mset: Vec<&str> = vec!["MSET"];
    let values: Vec<String> = keys.iter().map(|k| format!("v-{k}")).collect();
    for (k, v) in keys.iter().zip(&values) {
        mset.push(k);
        mset.push(v);
    }
    assert_eq!(c.cmd(&mset).unwrap(), ok());
    let spread: BTreeSet<usize> = placement(&servers, &keys).into_iter().collect();
    assert_eq!(spread.len(), 3, "30 keys should use all 3 shards");

    let mut mget: Vec<&str> = vec!["MGET", "missing:1"];
    mget.extend(keys.iter().map(String::as_str));
    let Reply::Array(got) = c.cmd(&mget).unwrap() else {
        panic!("MGET")
    };
    assert_eq!(got[0], Reply::Nil);
    for (value, expected) in got[1..].iter().zip(&values) {
        assert_eq!(value, &bulk(expected));
    }
    let mut exists: Vec<&str> = vec!["EXISTS", "missing:1"];
    exists.extend(keys.iter().map(String::as_str));
    exists.push("key:0"); // counted twice, as Redis does
    assert_eq!(c.cmd(&exists).unwrap(), Reply::Integer(31));
    let touch: Vec<&str> = ["TOUCH"]
        .into_iter()
        .chain(keys.iter().map(String::as_str))
        .collect();
    assert_eq!(c.cmd(&touch).unwrap(), Reply::Integer(30));
    let del: Vec<&str> = ["DEL"]
        .into_iter()
        .chain(keys[..10].iter().map(String::as_str))
        .collect();
    assert_eq!(c.cmd(&del).unwrap(), Reply::Integer(10));
    let unlink: Vec<&str> = ["UNLINK"]
        .into_iter()
        .chain(keys.iter().map(String::as_str))
        .collect();
    assert_eq!(c.cmd(&unlink).unwrap(), Reply::Integer(20));
    assert!(servers.iter().all(|s| s.dbsize() == 0));

    // Everything else with keys on several shards: CROSSSLOT, as Redis Cluster.
    let mut pos = |k: &str| {
        c.cmd(&["SET", k, "x"]).unwrap();
        placement(&servers, &[k.to_string()])[0]
    };
    let first = pos("cross:a");
    let other = (0..100)
        .map(|i| format!("cross:{i}"))
        .find(|k| pos(k) != first)
        .expect("a key on another shard");
    let crossslot = Reply::Error("CROSSSLOT Keys in request don't hash to the same slot".into());
    for command in [
        vec!["MSETNX", "cross:a", "1", other.as_str(), "2"],
        vec!["RENAME", "cross:a", other.as_str()],
        vec!["SUNION", "cross:a", other.as_str()],
        vec!["LMOVE", "cross:a", other.as_str(), "LEFT", "LEFT"],
        vec!["BITOP", "AND", "cross:dest", "cross:a", other.as_str()],
        vec!["PFMERGE", "cross:a", other.as_str()],
        vec!["EVAL", "return 1", "2", "cross:a", other.as_str()],
        vec!["XREAD", "STREAMS", "cross:a", other.as_str(), "0", "0"],
        vec!["ZUNIONSTORE", "cross:a", "1", other.as_str()],
    ] {
        assert_eq!(c.cmd(&command).unwrap(), crossslot, "{command:?}");
    }
    // Same shard: forwarded (hash tags put keys together).
    let (servers2, _p2, port2) = three_shards("  hash_tag: \"{}\"\n");
    let mut c2 = RespClient::connect(port2).expect("connect");
    assert_eq!(
        c2.cmd(&["MSETNX", "{u}a", "1", "{u}b", "2"]).unwrap(),
        Reply::Integer(1)
    );
    assert_eq!(c2.cmd(&["RENAME", "{u}a", "{u}c"]).unwrap(), ok());
    assert_eq!(
        c2.cmd(&["SUNION", "{u}x", "{u}y"]).unwrap(),
        Reply::Array(vec![])
    );
    assert_eq!(servers2.iter().map(RedisServer::dbsize).sum::<i64>(), 2);
}

#[test]
fn whole_keyspace_commands_cover_every_shard() {
    let (servers, _proxy, port) = three_shards("");
    let mut c = RespClient::connect(port).expect("connect");
    let keys = keys(200);
    for key in &keys {
        c.cmd(&["SET", key, "v"]).unwrap();
    }
    c.cmd(&["SADD", "aset", "m"]).unwrap();
    assert_eq!(c.cmd(&["DBSIZE"]).unwrap(), Reply::Integer(201));
    let Reply::Array(all) = c.cmd(&["KEYS", "key:*"]).unwrap() else {
        panic!("KEYS")
    };
    assert_eq!(all.len(), 200);

    // A full SCAN returns every key exactly once; MATCH, COUNT, TYPE apply.
    let scan = |c: &mut RespClient, extra: &[&str]| {
        let mut cursor = "0".to_string();
        let mut seen = Vec::new();
        loop {
            let mut args = vec!["SCAN", cursor.as_str()];
            args.extend_from_slice(extra);
            let Reply::Array(reply) = c.cmd(&args).unwrap() else {
                panic!("SCAN")
            };
            let Reply::Array(batch) = &reply[1] else {
                panic!("SCAN keys")
            };
            seen.extend(batch.iter().map(|k| k.bulk_str().unwrap()));
            cursor = reply[0].bulk_str().unwrap();
            if cursor == "0" {
                return seen;
            }
        }
    };
    let seen = scan(&mut c, &["COUNT", "7"]);
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 201, "SCAN missed keys");
    assert_eq!(seen.len(), 201, "SCAN returned duplicates");
    assert_eq!(scan(&mut c, &["MATCH", "key:1*"]).len(), 111);
    assert_eq!(scan(&mut c, &["TYPE", "set"]), vec!["aset".to_string()]);
    assert_eq!(
        c.cmd(&["SCAN", "notanumber"]).unwrap(),
        Reply::Error("ERR invalid cursor".into())
    );

    let random = c.cmd(&["RANDOMKEY"]).unwrap().bulk_str().unwrap();
    assert!(random == "aset" || keys.contains(&random), "{random}");
    let info = c.cmd(&["INFO", "keyspace"]).unwrap().bulk_str().unwrap();
    assert!(info.contains("db0:keys=201,"), "{info}");

    // Scripts and config reach every shard.
    let sha = c
        .cmd(&["SCRIPT", "LOAD", "return 7"])
        .unwrap()
        .bulk_str()
        .unwrap();
    for server in &servers {
        assert_eq!(
            server.cmd(&["SCRIPT", "EXISTS", &sha]),
            Reply::Array(vec![Reply::Integer(1)])
        );
    }
    assert_eq!(
        c.cmd(&["SCRIPT", "EXISTS", &sha, "0000"]).unwrap(),
        Reply::Array(vec![Reply::Integer(1), Reply::Integer(0)])
    );
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"])
            .unwrap(),
        ok()
    );
    for server in &servers {
        assert_eq!(
            server.cmd(&["CONFIG", "GET", "maxmemory-policy"]),
            Reply::Array(vec![bulk("maxmemory-policy"), bulk("allkeys-lru")])
        );
    }
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "maxmemory-policy"]).unwrap(),
        Reply::Array(vec![bulk("maxmemory-policy"), bulk("allkeys-lru")])
    );
    // No replicas anywhere: WAIT's minimum is 0.
    assert_eq!(c.cmd(&["WAIT", "0", "100"]).unwrap(), Reply::Integer(0));

    assert_eq!(c.cmd(&["FLUSHALL"]).unwrap(), ok());
    assert!(servers.iter().all(|s| s.dbsize() == 0));
    assert_eq!(c.cmd(&["RANDOMKEY"]).unwrap(), Reply::Nil);

    // No sound meaning across shards: refused, naming the command.
    let reply = c.cmd(&["SWAPDB", "0", "1"]).unwrap();
    assert!(
        matches!(&reply, Reply::Error(e) if e.contains("'swapdb'") && e.contains("several shards")),
        "{reply:?}"
    );
    // Whatever the pool: these would change the server under every client.
    for (command, name) in [
        (vec!["DEBUG", "SLEEP", "0"], "debug"),
        (vec!["SHUTDOWN"], "shutdown"),
        (vec!["SCRIPT", "DEBUG", "YES"], "script|debug"),
    ] {
        let reply = c.cmd(&command).unwrap();
        assert!(
            matches!(&reply, Reply::Error(e) if e.contains(&format!("'{name}'")) && e.contains("run it on the server itself")),
            "{reply:?}"
        );
    }
    // Sent to every shard and merged.
    assert_eq!(
        c.cmd(&["BGSAVE"]).unwrap(),
        Reply::Simple("Background saving started".into())
    );
    assert!(matches!(c.cmd(&["LASTSAVE"]).unwrap(), Reply::Integer(t) if t > 1_600_000_000));
    assert_eq!(c.cmd(&["MODULE", "LIST"]).unwrap(), Reply::Array(vec![]));
}

#[test]
fn a_down_shard_fails_only_its_own_keys_and_says_which() {
    let (mut servers, _proxy, port) = three_shards("");
    let mut c = RespClient::connect(port).expect("connect");
    let keys = keys(30);
    for key in &keys {
        c.cmd(&["SET", key, "v"]).unwrap();
    }
    let where_ = placement(&servers, &keys);
    assert!(where_.contains(&1), "{where_:?}");
    servers[1].kill();
    let mut mget: Vec<&str> = vec!["MGET"];
    mget.extend(keys.iter().map(String::as_str));
    let Reply::Array(got) = c.cmd(&mget).unwrap() else {
        panic!("MGET")
    };
    for ((value, shard), key) in got.iter().zip(&where_).zip(&keys) {
        if *shard == 1 {
            assert!(
                matches!(value, Reply::Error(e) if e.contains("shardgate")),
                "{key}: {value:?}"
            );
        } else {
            assert_eq!(value, &bulk("v"), "{key}");
        }
    }
    let del: Vec<&str> = ["DEL"]
        .into_iter()
        .chain(keys.iter().map(String::as_str))
        .collect();
    let reply = c.cmd(&del).unwrap();
    assert!(
        matches!(&reply, Reply::Error(e) if e.contains(&servers[1].port().to_string()) || e.contains("s1")),
        "{reply:?}"
    );
    let reply = c.cmd(&["FLUSHALL"]).unwrap();
    assert!(
        matches!(&reply, Reply::Error(e) if e.contains("(shard s1)") || e.contains(&servers[1].port().to_string())),
        "{reply:?}"
    );
    for (key, shard) in keys.iter().zip(&where_) {
        let reply = c.cmd(&["SET", key, "w"]).unwrap();
        if *shard == 1 {
            assert!(reply.is_error(), "{key}: {reply:?}");
        } else {
            assert_eq!(reply, ok(), "{key}");
        }
    }
}

#[test]
fn ejection_rehashes_keys_and_fail_mode_keeps_them_in_place() {
    // eject (twemproxy's auto_eject_hosts): the dead shard's keys move.
    let (mut servers, proxy, port) = three_shards(
        "  auto_eject_hosts: true\n  server_failure_limit: 1\n  server_retry_timeout: 300\n  health_check: {interval: 100, timeout: 100}\n",
    );
    let mut c = RespClient::connect(port).expect("connect");
    servers[2].kill();
    assert_eventually!(
        proxy.log().contains("ejected from the ring"),
        "no ejection; log:\n{}",
        proxy.log()
    );
    for key in keys(50) {
        assert_eq!(
            c.cmd(&["SET", &key, "v"]).unwrap(),
            ok(),
            "{key} after ejection"
        );
    }
    servers[2].restart();
    assert_eventually!(proxy.log().contains("back in the ring"), "never readmitted");

    // fail (shardgate's default): its keys get errors, nothing moves.
    let (mut servers, proxy, port) =
        three_shards("  health_check: {interval: 100, timeout: 100}\n");
    let mut c = RespClient::connect(port).expect("connect");
    let keys = keys(50);
    for key in &keys {
        c.cmd(&["SET", key, "old"]).unwrap();
    }
    let where_ = placement(&servers, &keys);
    assert!(
        where_.contains(&2) && where_.iter().any(|s| *s != 2),
        "{where_:?}"
    );
    servers[2].kill();
    assert_eventually!(proxy.log().contains("is down"), "no health flip");
    for (key, shard) in keys.iter().zip(&where_) {
        let reply = c.cmd(&["SET", key, "new"]).unwrap();
        assert_eq!(reply.is_error(), *shard == 2, "{key}: {reply:?}");
    }
    servers[2].restart();
    assert_eventually!(
        keys.iter()
            .zip(&where_)
            .all(|(k, s)| *s != 2 || c.cmd(&["SET", k, "new"]).ok() == Some(ok())),
        "the shard never came back"
    );
    // No key was written elsewhere meanwhile: every key still has one home.
    assert_eq!(placement(&servers, &keys), where_);
}

#[test]
fn several_pools_are_independent() {
    let a = RedisServer::start();
    let mut b = RedisServer::start();
    let (pa, pb) = (free_port(), free_port());
    let yaml = format!(
        "alpha:\n  listen: 127.0.0.1:{pa}\n  servers:\n    - {}:1\nbeta:\n  listen: 127.0.0.1:{pb}\n  servers:\n    - {}:1\n",
        a.addr(),
        b.addr()
    );
    let _proxy = Shardgate::builder(common::BIN, &yaml)
        .wait_port(pa)
        .wait_port(pb)
        .start();
    let mut ca = RespClient::connect(pa).expect("alpha");
    let mut cb = RespClient::connect(pb).expect("beta");
    assert_eq!(ca.cmd(&["SET", "k", "alpha"]).unwrap(), ok());
    assert_eq!(cb.cmd(&["SET", "k", "beta"]).unwrap(), ok());
    assert_eq!(a.cmd(&["GET", "k"]), bulk("alpha"));
    assert_eq!(b.cmd(&["GET", "k"]), bulk("beta"));
    b.kill();
    assert!(cb.cmd(&["GET", "k"]).unwrap().is_error());
    assert_eq!(ca.cmd(&["GET", "k"]).unwrap(), bulk("alpha"));
}
