//! Helpers shared by the integration tests: a real redis-server (or
//! several) with the real shardgate binary in front.

#![allow(dead_code)]

use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::{assert_eventually, RedisServer, RespClient, Shardgate};

pub const BIN: &str = env!("CARGO_BIN_EXE_shardgate");

/// A running proxy in front of real servers.
pub struct Setup {
    pub servers: Vec<RedisServer>,
    pub proxy: Shardgate,
    pub port: u16,
}

impl Setup {
    pub fn client(&self) -> RespClient {
        RespClient::connect(self.port).expect("connect to shardgate")
    }

    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// `servers` fresh redis-servers behind one pool; `extra` is appended to
/// the pool's YAML (indented two spaces, e.g. "timeout: 300").
pub fn start(servers: usize, extra: &[&str]) -> Setup {
    let servers: Vec<RedisServer> = (0..servers).map(|_| RedisServer::start()).collect();
    start_with(servers, extra, &[])
}

/// Like [`start`], over given servers, with extra command-line arguments.
pub fn start_with(servers: Vec<RedisServer>, extra: &[&str], args: &[&str]) -> Setup {
    let addrs: Vec<String> = servers.iter().map(|s| s.addr()).collect();
    let (proxy, port) = start_proxy(&addrs, extra, args);
    Setup {
        servers,
        proxy,
        port,
    }
}

/// Like [`start`], over servers given by address (a relay in front of a
/// server, say), which the caller keeps running.
pub fn start_with_addrs(addrs: &[String], extra: &[&str]) -> Setup {
    let (proxy, port) = start_proxy(addrs, extra, &[]);
    Setup {
        servers: Vec::new(),
        proxy,
        port,
    }
}

fn start_proxy(addrs: &[String], extra: &[&str], args: &[&str]) -> (Shardgate, u16) {
    let port = free_port();
    let mut yaml = format!("test:\n  listen: 127.0.0.1:{port}\n  redis: true\n");
    for line in extra {
        yaml.push_str(&format!("  {line}\n"));
    }
    yaml.push_str("  servers:\n");
    for addr in addrs {
        yaml.push_str(&format!("    - {addr}:1\n"));
    }
    let mut builder = Shardgate::builder(BIN, &yaml).wait_port(port);
    for arg in args {
        builder = builder.arg(*arg);
    }
    (builder.start(), port)
}

pub fn ok() -> Reply {
    Reply::Simple("OK".into())
}

pub fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

/// A master with `replicas` replicas, all linked.
pub fn group(replicas: usize) -> (RedisServer, Vec<RedisServer>) {
    let master = RedisServer::start();
    let replicas: Vec<RedisServer> = (0..replicas)
        .map(|_| RedisServer::builder().replica_of(&master).start())
        .collect();
    for replica in &replicas {
        assert_eventually!(replica.linked(), "replica {} never linked", replica.port());
    }
    (master, replicas)
}
