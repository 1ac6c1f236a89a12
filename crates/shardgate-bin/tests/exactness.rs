//! Byte-for-byte equivalence with a single Redis: the same scripts run
//! against one redis-server directly and through shardgate over a 3-shard
//! pool, and every reply must be identical, in RESP2 and RESP3, one
//! command at a time and pipelined.
//!
//! Keys carry the hash tag `{t}` so each script's keys share a shard (the
//! cross-shard rules have their own tests); Pub/Sub channels deliberately
//! do not, so subscriptions span shards.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::{RedisServer, RespClient, Shardgate};

struct Twin {
    direct: RedisServer,
    shards: Vec<RedisServer>,
    proxy_port: u16,
    _proxy: Shardgate,
}

impl Twin {
    fn start() -> Twin {
        Twin::start_with(RedisServer::start(), "")
    }

    /// `direct` is the reference server; `pool_yaml` is added to the
    /// proxy's pool (indented two spaces).
    fn start_with(direct: RedisServer, pool_yaml: &str) -> Twin {
        let shards: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
        let port = free_port();
        let mut yaml = format!(
            "exact:\n  listen: 127.0.0.1:{port}\n  hash: fnv1a_64\n  distribution: ketama\n  hash_tag: \"{{}}\"\n{pool_yaml}  servers:\n"
        );
        for shard in &shards {
            yaml.push_str(&format!("    - {}:1\n", shard.addr()));
        }
        let proxy = Shardgate::builder(common::BIN, &yaml)
            .wait_port(port)
            .start();
        Twin {
            direct,
            shards,
            proxy_port: port,
            _proxy: proxy,
        }
    }

    fn flush(&self) {
        self.direct.cmd(&["FLUSHALL"]);
        for shard in &self.shards {
            shard.cmd(&["FLUSHALL"]);
        }
    }

    /// Runs `script` one command at a time on fresh connections to both;
    /// `silent` commands get no reply (CLIENT REPLY OFF / SKIP).
    fn one_by_one(&self, name: &str, script: &[&[&str]]) {
        self.flush();
        let mut direct = RespClient::connect(self.direct.port()).expect("direct");
        let mut proxy = RespClient::connect(self.proxy_port).expect("proxy");
        for command in script {
            let expected = direct.cmd_raw(command).expect("direct reply");
            let got = proxy.cmd_raw(command).expect("proxy reply");
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&expected),
                "script {name}: {command:?}"
            );
        }
    }

    /// Sends the whole script at once, then an end marker, and compares
    /// everything received until the marker's reply.
    fn pipelined(&self, name: &str, script: &[&[&str]], marker: &[&str]) {
        self.flush();
        let run = |port: u16| {
            let mut client = RespClient::connect(port).expect("connect");
            let mut bytes = Vec::new();
            for command in script {
                bytes.extend(test_support::resp::encode(command));
            }
            bytes.extend(test_support::resp::encode(marker));
            client.send_raw(&bytes).expect("send");
            let mut received = Vec::new();
            loop {
                let frame = client.read_raw().expect("reply");
                let end = String::from_utf8_lossy(&frame).contains("__end__");
                received.push(String::from_utf8_lossy(&frame).into_owned());
                if end {
                    return received;
                }
            }
        };
        let expected = run(self.direct.port());
        let got = run(self.proxy_port);
        assert_eq!(got, expected, "script {name}, pipelined");
    }

    fn both(&self, name: &str, script: &[&[&str]]) {
        self.one_by_one(name, script);
        self.pipelined(name, script, &["ECHO", "__end__"]);
    }
}

#[test]
fn data_commands_and_their_errors_match_redis() {
    let twin = Twin::start();
    twin.both(
        "strings",
        &[
            &["SET", "{t}a", "1"],
            &["GET", "{t}a"],
            &["INCR", "{t}a"],
            &["INCRBY", "{t}a", "x"],
            &["APPEND", "{t}a", "tail"],
            &["GETRANGE", "{t}a", "0", "2"],
            &["GET", "{t}missing"],
            &["SET", "{t}f", "1.5"],
            &["INCRBYFLOAT", "{t}f", "0.25"],
            &["MSET", "{t}b", "2", "{t}c", "3"],
            &["MGET", "{t}a", "{t}b", "{t}nope", "{t}c"],
            &["EXISTS", "{t}a", "{t}b", "{t}nope"],
            &["DEL", "{t}a", "{t}nope"],
            &["SET", "{t}k", "v", "NX"],
            &["SET", "{t}k", "v", "XX", "GET"],
            &["STRLEN", "{t}k"],
        ],
    );
    twin.both(
        "collections",
        &[
            &["RPUSH", "{t}l", "a", "b", "c"],
            &["LRANGE", "{t}l", "0", "-1"],
            &["LPOP", "{t}l", "2"],
            &["HSET", "{t}h", "f1", "v1", "f2", "v2"],
            &["HGETALL", "{t}h"],
            &["HMGET", "{t}h", "f1", "nope"],
            &["SADD", "{t}s", "x", "y"],
            &["SISMEMBER", "{t}s", "x"],
            &["SINTERCARD", "1", "{t}s"],
            &["ZADD", "{t}z", "1", "one", "2.5", "two"],
            &["ZRANGE", "{t}z", "0", "-1", "WITHSCORES"],
            &["ZSCORE", "{t}z", "two"],
            &["ZPOPMIN", "{t}z"],
            &["XADD", "{t}x", "1-1", "f", "v"],
            &["XRANGE", "{t}x", "-", "+"],
            &["XLEN", "{t}x"],
            &["SUNIONSTORE", "{t}u", "{t}s", "{t}s"],
            &[
                "EVAL",
                "return {KEYS[1], ARGV[1], 3, redis.call('GET', KEYS[1])}",
                "1",
                "{t}k2",
                "arg",
            ],
        ],
    );
    twin.both(
        "errors",
        &[
            &["GET"],
            &["SET", "{t}k"],
            &["LPUSH", "{t}str", "x"],
            &["GET", "{t}str"],
            &["SET", "{t}str", "v"],
            &["LPUSH", "{t}str", "x"],
            &["HSET", "{t}h", "f"],
            &["NOSUCHCOMMAND", "{t}a", "b"],
            &["OBJECT", "NOSUCH"],
            &["CONFIG", "NOSUCH"],
            &["SET", "{t}k", "v", "EX", "-1"],
            &["ZADD", "{t}z", "notanumber", "m"],
        ],
    );
}

#[test]
fn transactions_match_redis() {
    let twin = Twin::start();
    twin.both(
        "multi-exec",
        &[
            &["MULTI"],
            &["SET", "{t}a", "1"],
            &["INCR", "{t}a"],
            &["GET", "{t}a"],
            &["EXEC"],
        ],
    );
    twin.both(
        "keyless commands first",
        &[
            &["MULTI"],
            &["PING"],
            &["ECHO", "hi"],
            &["SET", "{t}a", "1"],
            &["EXEC"],
            &["MULTI"],
            &["PING"],
            &["EXEC"],
            &["MULTI"],
            &["EXEC"],
        ],
    );
    twin.both(
        "errors",
        &[
            &["EXEC"],
            &["DISCARD"],
            &["MULTI"],
            &["MULTI"],
            &["SET", "{t}a", "1"],
            &["EXEC"],
            &["MULTI"],
            &["GET"],
            &["SET", "{t}a", "2"],
            &["EXEC"],
            &["GET", "{t}a"],
            &["MULTI"],
            &["PING", "a", "b"],
            &["EXEC"],
            &["MULTI"],
            &["SET", "{t}a", "3"],
            &["DISCARD"],
            &["GET", "{t}a"],
            &["MULTI"],
            &["WATCH", "{t}a"],
            &["INCR", "{t}a"],
            &["EXEC"],
        ],
    );
    twin.both(
        "watch",
        &[
            &["WATCH", "{t}a", "{t}b"],
            &["GET", "{t}a"],
            &["MULTI"],
            &["SET", "{t}a", "1"],
            &["EXEC"],
            &["WATCH", "{t}a"],
            &["UNWATCH"],
            &["UNWATCH"],
            &["MULTI"],
            &["INCR", "{t}a"],
            &["EXEC"],
            &["MULTI"],
            &["UNWATCH"],
            &["SET", "{t}a", "9"],
            &["EXEC"],
        ],
    );
}

#[test]
fn connection_commands_match_redis() {
    let twin = Twin::start();
    twin.both(
        "select and echo",
        &[
            &["SELECT", "1"],
            &["SET", "{t}a", "db1"],
            &["SELECT", "0"],
            &["GET", "{t}a"],
            &["SELECT", "1"],
            &["GET", "{t}a"],
            &["SELECT", "99"],
            &["SELECT", "abc"],
            &["SELECT"],
            &["PING"],
            &["PING", "x"],
            &["PING", "a", "b"],
            &["ECHO"],
            &["ECHO", "a", "b"],
            &["WATCH"],
            &["UNWATCH", "x"],
            &["SUBSCRIBE"],
            &["SLOWLOG"],
            &["CLIENT"],
            &["CLIENT", "SETNAME"],
            &["CLIENT", "SETNAME", "bad name"],
            &["CLIENT", "SETNAME", "good"],
            &["CLIENT", "GETNAME"],
            &["CLIENT", "NOSUCH"],
        ],
    );
    // Commands answered with silence can only be compared pipelined.
    twin.pipelined(
        "client reply",
        &[
            &["CLIENT", "REPLY", "OFF"],
            &["SET", "{t}a", "1"],
            &["CLIENT", "REPLY", "ON"],
            &["GET", "{t}a"],
            &["CLIENT", "REPLY", "SKIP"],
            &["INCR", "{t}a"],
            &["GET", "{t}a"],
        ],
        &["ECHO", "__end__"],
    );
}

#[test]
fn pubsub_matches_redis() {
    let twin = Twin::start();
    let script: &[&[&str]] = &[
        &["SUBSCRIBE", "news", "sport", "news"],
        &["PING"],
        &["PING", "hi"],
        &["GET", "x"],
        &["PSUBSCRIBE", "n*", "s?ort"],
        &["UNSUBSCRIBE", "sport"],
        &["PUNSUBSCRIBE"],
        &["SSUBSCRIBE", "shardy"],
        &["SUNSUBSCRIBE"],
        &["UNSUBSCRIBE"],
        &["UNSUBSCRIBE"],
        &["PUNSUBSCRIBE"],
    ];
    // Pipelined only: a SUBSCRIBE with three channels answers three times.
    // In subscribed mode PING is the end marker (ECHO is not allowed).
    twin.pipelined("pubsub", script, &["PING", "__end__"]);
}

#[test]
fn resp3_matches_redis() {
    let twin = Twin::start();
    let script: &[&[&str]] = &[
        &["SET", "{t}a", "1"],
        &["GET", "{t}missing"],
        &["HSET", "{t}h", "f", "v"],
        &["HGETALL", "{t}h"],
        &["SADD", "{t}s", "m"],
        &["SMEMBERS", "{t}s"],
        &["ZADD", "{t}z", "1.5", "m"],
        &["ZSCORE", "{t}z", "m"],
        &["ZRANGE", "{t}z", "0", "-1", "WITHSCORES"],
        &["MGET", "{t}a", "{t}missing"],
        &["EXISTS", "{t}a"],
        &["MULTI"],
        &["GET", "{t}a"],
        &["EXEC"],
        &["SUBSCRIBE", "news"],
        &["PING"],
        &["GET", "{t}a"],
        &["UNSUBSCRIBE"],
    ];
    twin.flush();
    let run = |port: u16| {
        let mut client = RespClient::connect(port).expect("connect");
        // HELLO's reply carries the connection id: checked separately.
        client.cmd_raw(&["HELLO", "3"]).expect("hello");
        script
            .iter()
            .map(|command| {
                String::from_utf8_lossy(&client.cmd_raw(command).expect("reply")).into_owned()
            })
            .collect::<Vec<_>>()
    };
    let expected = run(twin.direct.port());
    let got = run(twin.proxy_port);
    for ((command, got), expected) in script.iter().zip(&got).zip(&expected) {
        assert_eq!(got, expected, "RESP3 {command:?}");
    }
}

#[test]
fn hello_replies_have_redis_shape() {
    let twin = Twin::start();
    let mut direct = RespClient::connect(twin.direct.port()).expect("direct");
    let mut proxy = RespClient::connect(twin.proxy_port).expect("proxy");
    for version in ["2", "3"] {
        let expected =
            String::from_utf8(direct.cmd_raw(&["HELLO", version]).expect("hello")).expect("utf8");
        let got =
            String::from_utf8(proxy.cmd_raw(&["HELLO", version]).expect("hello")).expect("utf8");
        // Identical except the connection id's digits.
        let mask = |s: &str| {
            let mut parts: Vec<String> = s.split("\r\n").map(str::to_string).collect();
            if let Some(i) = parts.iter().position(|p| p == "id") {
                parts[i + 1] = ":ID".into();
            }
            parts.join("\r\n")
        };
        assert_eq!(mask(&got), mask(&expected), "HELLO {version}");
    }
    for bad in [
        &["HELLO", "4"][..],
        &["HELLO", "x"],
        &["HELLO", "3", "SETNAME", "a b"],
    ] {
        let expected = direct.cmd_raw(bad).expect("reply");
        let got = proxy.cmd_raw(bad).expect("reply");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected),
            "{bad:?}"
        );
    }
}

#[test]
fn authentication_and_permissions_match_redis() {
    // The reference: requirepass plus an ACL user, as a Redis admin would set them.
    let direct = RedisServer::builder().password("top").start();
    direct.cmd(&[
        "ACL",
        "SETUSER",
        "reader",
        "on",
        ">r",
        "~app:*",
        "&*",
        "+@read",
        "+@connection",
    ]);
    let twin = Twin::start_with(
        direct,
        "  password: top\n  users:\n    - name: reader\n      password: r\n      commands: \"+@read +@connection\"\n      keys: [\"app:*\"]\n",
    );
    let script: &[&[&str]] = &[
        &["GET", "app:1"],
        &["PING"],
        &["HELLO", "3"],
        &["AUTH", "wrong"],
        &["AUTH", "reader", "wrong"],
        &["AUTH", "ghost", "r"],
        &["AUTH", "reader", "r"],
        &["GET", "app:1"],
        &["GET", "other"],
        &["MGET", "app:1", "other"],
        &["SET", "app:1", "x"],
        &["FLUSHALL"],
        &["ACL", "WHOAMI"],
        &["ACL", "DRYRUN", "reader", "get", "app:1"],
        &["ACL", "DRYRUN", "reader", "get", "other"],
        &["AUTH", "top"],
        &["SET", "app:1", "x"],
        &["GET", "app:1"],
        // The proxy's users, shown as Redis shows its own.
        &["ACL", "WHOAMI"],
        &["ACL", "USERS"],
        &["ACL", "LIST"],
        &["ACL", "GETUSER", "reader"],
        &["ACL", "GETUSER", "default"],
        &["ACL", "GETUSER", "nobody"],
        &["ACL", "CAT"],
        &["ACL", "DRYRUN", "reader", "get", "app:1"],
        &["ACL", "DRYRUN", "reader", "set", "app:1", "x"],
        &["ACL", "DRYRUN", "reader", "mget", "app:1", "other"],
        &["ACL", "DRYRUN", "reader", "get"],
        &["ACL", "DRYRUN", "nobody", "get", "x"],
        &["ACL", "DRYRUN", "reader", "nosuchcommand"],
        &["ACL", "GENPASS", "0"],
        &["ACL", "CAT", "nosuchcategory"],
    ];
    let run = |port: u16| {
        let mut client = RespClient::connect(port).expect("connect");
        script
            .iter()
            .map(|command| {
                String::from_utf8_lossy(&client.cmd_raw(command).expect("reply")).into_owned()
            })
            .collect::<Vec<_>>()
    };
    let expected = run(twin.direct.port());
    let got = run(twin.proxy_port);
    for ((command, got), expected) in script.iter().zip(&got).zip(&expected) {
        assert_eq!(got, expected, "{command:?}");
    }
    // Categories' commands come in Redis's hash order: compared as sets;
    // GENPASS is random: its length.
    let mut direct = RespClient::connect(twin.direct.port()).expect("direct");
    let mut proxy = RespClient::connect(twin.proxy_port).expect("proxy");
    for client in [&mut direct, &mut proxy] {
        client.cmd(&["AUTH", "top"]).expect("auth");
    }
    for category in ["string", "connection", "scripting", "blocking"] {
        let sorted = |client: &mut RespClient| match client.cmd(&["ACL", "CAT", category]) {
            Ok(Reply::Array(mut names)) => {
                names.sort_by_key(|n| format!("{n:?}"));
                names
            }
            other => panic!("ACL CAT {category}: {other:?}"),
        };
        assert_eq!(
            sorted(&mut proxy),
            sorted(&mut direct),
            "ACL CAT {category}"
        );
    }
    for (bits, chars) in [(None, 64), (Some("5"), 2), (Some("4096"), 1024)] {
        let mut command = vec!["ACL", "GENPASS"];
        command.extend(bits);
        let Ok(Reply::Bulk(pass)) = proxy.cmd(&command) else {
            panic!("ACL GENPASS {bits:?}");
        };
        assert_eq!(pass.len(), chars);
        assert!(pass.iter().all(u8::is_ascii_hexdigit));
    }
    // RESP3 shapes (HELLO's reply carries the connection id: not compared).
    for client in [&mut direct, &mut proxy] {
        client.cmd_raw(&["HELLO", "3"]).expect("hello");
    }
    for command in [
        &["ACL", "GETUSER", "reader"][..],
        &["ACL", "GETUSER", "nobody"],
        &["ACL", "LIST"],
    ] {
        assert_eq!(
            String::from_utf8_lossy(&proxy.cmd_raw(command).expect("proxy")),
            String::from_utf8_lossy(&direct.cmd_raw(command).expect("direct")),
            "RESP3 {command:?}"
        );
    }
    let Ok(Reply::Error(refused)) = proxy.cmd(&["ACL", "SETUSER", "reader", "off"]) else {
        panic!("ACL SETUSER was not refused");
    };
    assert!(
        refused.contains("not supported through the proxy"),
        "{refused}"
    );
}

#[test]
fn deep_replies_and_errors_from_every_shard_match_redis() {
    let twin = Twin::start();
    twin.both(
        "deeply nested script replies",
        &[
            // Redis nests these until Lua's stack limit, then ends in an error.
            &[
                "EVAL",
                "local a = {}; local b = {a}; a[1] = b; return a",
                "0",
            ],
            &[
                "EVAL",
                "local a = {}; local b = {a, 1}; a[1] = b; return {a, 2}",
                "0",
            ],
            &["SET", "{t}after", "1"],
            &["GET", "{t}after"],
        ],
    );
    // Sent to every shard: when every shard fails alike, the error is
    // Redis's own text, with no shard named in it.
    twin.both(
        "errors of commands sent to every shard",
        &[
            &["FUNCTION", "RESTORE", "junk"],
            &["FUNCTION", "RESTORE", "junk", "FLUSH", "extra"],
            &["FUNCTION", "DELETE", "nosuchlib"],
            &["SCRIPT", "LOAD"],
            &["SCRIPT", "EXISTS"],
            &["SCRIPT", "KILL"],
            &["FUNCTION", "KILL"],
            &["CONFIG", "SET", "nosuchsetting", "1"],
            &["MODULE", "LIST"],
        ],
    );
}

#[test]
fn pubsub_confirmations_ignore_client_reply_as_in_redis() {
    let twin = Twin::start();
    // Redis sends Pub/Sub confirmations even with replies off (they are
    // pushes), and SKIP is used up by the SUBSCRIBE all the same.
    for (name, script) in [
        (
            "RESP2, replies off",
            &[
                &["CLIENT", "REPLY", "OFF"][..],
                &["SUBSCRIBE", "a", "b"],
                &["PING"],
            ][..],
        ),
        (
            "RESP3, replies off",
            &[
                &["CLIENT", "REPLY", "OFF"][..],
                &["HELLO", "3"],
                &["SUBSCRIBE", "a", "b"],
                &["UNSUBSCRIBE", "zz"],
                &["PING"],
            ][..],
        ),
        (
            "RESP3, skip",
            &[
                &["CLIENT", "REPLY", "OFF"][..],
                &["HELLO", "3"],
                &["CLIENT", "REPLY", "ON"],
                &["CLIENT", "REPLY", "SKIP"],
                &["SUBSCRIBE", "a", "b"],
                &["PING"],
            ][..],
        ),
        (
            "RESP2, skip",
            &[
                &["CLIENT", "REPLY", "SKIP"][..],
                &["SUBSCRIBE", "a", "b"],
                &["PING"],
            ][..],
        ),
    ] {
        let received = |port: u16| {
            let mut client = RespClient::connect(port).expect("connect");
            client.set_read_timeout(Some(std::time::Duration::from_millis(500)));
            let bytes: Vec<u8> = script
                .iter()
                .flat_map(|c| test_support::resp::encode(c))
                .collect();
            client.send_raw(&bytes).expect("send");
            let mut frames = Vec::new();
            while let Ok(frame) = client.read_raw() {
                frames.push(String::from_utf8_lossy(&frame).into_owned());
            }
            frames
        };
        let expected = received(twin.direct.port());
        assert!(!expected.is_empty(), "{name}: Redis sent nothing");
        assert_eq!(received(twin.proxy_port), expected, "{name}");
    }
}

#[test]
fn blocked_clients_are_visible_and_can_be_unblocked_as_in_redis() {
    let twin = Twin::start();
    for how in [None, Some("TIMEOUT"), Some("ERROR")] {
        let outcome = |port: u16| {
            let mut blocked = RespClient::connect(port).expect("connect");
            let Ok(Reply::Integer(id)) = blocked.cmd(&["CLIENT", "ID"]) else {
                panic!("CLIENT ID");
            };
            blocked.send(&["BLPOP", "{t}nothing", "30"]).expect("send");
            let mut other = RespClient::connect(port).expect("connect");
            test_support::assert_eventually!(
                matches!(other.cmd(&["INFO", "clients"]), Ok(Reply::Bulk(info)) if String::from_utf8_lossy(&info).contains("blocked_clients:1\r\n")),
                "INFO clients never showed the blocked client"
            );
            let line = other.cmd(&["CLIENT", "LIST", "ID", &id.to_string()]);
            assert!(
                matches!(&line, Ok(Reply::Bulk(l)) if String::from_utf8_lossy(l).contains(" flags=b ")),
                "{line:?}"
            );
            let id = id.to_string();
            let mut unblock = vec!["CLIENT", "UNBLOCK", &id];
            unblock.extend(how);
            let answered = other.cmd_raw(&unblock).expect("unblock");
            let reply = blocked.read_raw().expect("the blocked call's reply");
            let again = other.cmd_raw(&unblock).expect("unblock again");
            (
                String::from_utf8_lossy(&answered).into_owned(),
                String::from_utf8_lossy(&reply).into_owned(),
                String::from_utf8_lossy(&again).into_owned(),
            )
        };
        let expected = outcome(twin.direct.port());
        assert_eq!(outcome(twin.proxy_port), expected, "CLIENT UNBLOCK {how:?}");
    }
    // A client that is not blocked, and bad arguments.
    twin.one_by_one(
        "client unblock errors",
        &[
            &["CLIENT", "UNBLOCK", "123456789"],
            &["CLIENT", "UNBLOCK", "abc"],
            &["CLIENT", "UNBLOCK", "1", "SOMETIMES"],
            &["CLIENT", "PAUSE", "-1"],
            &["CLIENT", "PAUSE", "abc"],
            &["CLIENT", "PAUSE", "10", "SOMETIMES"],
            &["CLIENT", "UNPAUSE", "x"],
        ],
    );
}

#[test]
fn client_list_has_redis_fields_in_redis_order() {
    let twin = Twin::start();
    let fields = |port: u16| {
        let mut client = RespClient::connect(port).expect("connect");
        let Ok(Reply::Bulk(line)) = client.cmd(&["CLIENT", "INFO"]) else {
            panic!("CLIENT INFO");
        };
        let line = String::from_utf8_lossy(&line).into_owned();
        let names: Vec<String> = line
            .split_whitespace()
            .map(|f| f.split('=').next().unwrap_or_default().to_string())
            .collect();
        let fd: i64 = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("fd="))
            .and_then(|v| v.parse().ok())
            .expect("fd");
        (names, fd)
    };
    let (expected, _) = fields(twin.direct.port());
    let (got, fd) = fields(twin.proxy_port);
    assert_eq!(got, expected);
    assert!(fd > 2, "the client's own socket: fd={fd}");
}
