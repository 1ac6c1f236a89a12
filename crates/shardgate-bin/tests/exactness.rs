//! Byte-for-byte equivalence with a single Redis: the same scripts run
//! against one redis-server directly and through shardgate over a 3-shard
//! pool, and every reply must be identical, in RESP2 and RESP3, one
//! command at a time and pipelined.
//!
//! Keys carry the hash tag `{t}` so each script's keys share a shard (the
//! cross-shard rules have their own tests); Pub/Sub channels deliberately
//! do not, so subscriptions span shards.

mod common;

use test_support::ports::free_port;
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
        &["AUTH", "top"],
        &["SET", "app:1", "x"],
        &["GET", "app:1"],
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
}
