//! redis-py, a real client library from PyPI, driven from a Python script
//! (`tests/python/redis_py_suite.py`) through a 3-shard pool: pipelines,
//! WATCH conflicts, blocking pops, pattern subscriptions across shards,
//! SELECT, CLIENT LIST, RESP3, and a user denied a category.
//! `make test` installs redis-py (scripts/install-deps.sh).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::process::Command;

use test_support::ports::free_port;
use test_support::{RedisServer, Shardgate};

#[test]
fn redis_py_behaves_as_against_a_single_redis() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let (port, auth_port) = (free_port(), free_port());
    let mut servers_yaml = String::new();
    for (i, server) in servers.iter().enumerate() {
        servers_yaml.push_str(&format!("    - {}:1 shard{i}\n", server.addr()));
    }
    let yaml = format!(
        "data:\n  listen: 127.0.0.1:{port}\n  hash: murmur\n  servers:\n{servers_yaml}\
         guarded:\n  listen: 127.0.0.1:{auth_port}\n  hash: murmur\n  users:\n    - name: reader\n      password: r\n      commands: \"+@read +@connection\"\n  servers:\n{servers_yaml}"
    );
    let _proxy = Shardgate::builder(common::BIN, &yaml)
        .wait_port(port)
        .wait_port(auth_port)
        .start();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/redis_py_suite.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .arg(auth_port.to_string())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'redis'"),
        "redis-py is not installed: python3 -m pip install redis (or run `make test`, which does)"
    );
    assert!(
        output.status.success(),
        "redis-py suite failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all redis-py checks passed"), "{stdout}");
}
