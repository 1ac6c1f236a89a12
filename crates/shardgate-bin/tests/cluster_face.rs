//! The proxy tier as a Redis Cluster (`cluster_proxies`, docs/cluster.md):
//! three proxies in front of a static 3-shard pool answer CLUSTER SLOTS,
//! SHARDS, NODES, MYID and INFO as one cluster whose nodes are the
//! proxies; redis-py's RedisCluster spreads its load over all three and,
//! when one is killed, goes on through the other two.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::{assert_eventually, RedisServer, RespClient, Shardgate};

fn pool(port: u16, ports: &[u16], servers: &[RedisServer]) -> String {
    let mut yaml = format!("data:\n  listen: 127.0.0.1:{port}\n  cluster_proxies:\n");
    for p in ports {
        yaml.push_str(&format!("    - 127.0.0.1:{p}\n"));
    }
    yaml.push_str("  servers:\n");
    for (i, server) in servers.iter().enumerate() {
        yaml.push_str(&format!("    - {}:1 s{i}\n", server.addr()));
    }
    yaml
}

/// The three proxies, each in front of the same three servers.
fn three_proxies(servers: &[RedisServer]) -> (Vec<u16>, Vec<Shardgate>) {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let proxies = ports
        .iter()
        .map(|&port| {
            Shardgate::builder(common::BIN, &pool(port, &ports, servers))
                .wait_port(port)
                .start()
        })
        .collect();
    (ports, proxies)
}

/// SETs this proxy ran (from its metrics).
fn sets(proxy: &Shardgate) -> u64 {
    let (_, metrics) = proxy.admin_get("/metrics").unwrap();
    metrics
        .lines()
        .find(|l| l.starts_with("shardgate_requests_total{pool=\"data\",command=\"set\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn text(reply: Reply) -> String {
    match reply {
        Reply::Bulk(bytes) => String::from_utf8(bytes).unwrap(),
        other => panic!("not text: {other:?}"),
    }
}

#[test]
fn every_proxy_shows_the_same_cluster_of_proxies() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let (mut ports, _proxies) = three_proxies(&servers);
    let mut ids = Vec::new();
    let mut maps = Vec::new();
    for &port in &ports {
        let mut client = RespClient::connect(port).unwrap();
        let id = text(client.cmd(&["CLUSTER", "MYID"]).unwrap());
        assert_eq!(id.len(), 40, "{id}");
        let nodes = text(client.cmd(&["CLUSTER", "NODES"]).unwrap());
        let mine = nodes
            .lines()
            .find(|l| l.contains("myself"))
            .unwrap_or_else(|| panic!("no myself in {nodes}"));
        assert!(mine.starts_with(&id), "{mine}");
        assert!(mine.contains(&format!("127.0.0.1:{port}@")), "{mine}");
        let info = text(client.cmd(&["CLUSTER", "INFO"]).unwrap());
        assert!(info.contains("cluster_state:ok\r\n"), "{info}");
        assert!(info.contains("cluster_size:3\r\n"), "{info}");
        // Without the `myself` flag every proxy's list reads the same.
        maps.push(nodes.replace("myself,", ""));
        ids.push(id);
        assert_eq!(
            client.cmd(&["READONLY"]).unwrap(),
            Reply::Simple("OK".into())
        );
        assert_eq!(
            client.cmd(&["CLUSTER", "KEYSLOT", "foo"]).unwrap(),
            Reply::Integer(12182)
        );
        let Reply::Array(shards) = client.cmd(&["CLUSTER", "SHARDS"]).unwrap() else {
            panic!("CLUSTER SHARDS is not an array");
        };
        assert_eq!(shards.len(), 3);
    }
    // Each proxy's peer watcher settles on its own; they agree once each
    // has asked the others.
    let same_everywhere = |maps: &[String]| maps.windows(2).all(|w| w[0] == w[1]);
    if !same_everywhere(&maps) {
        let nodes_of = |port: u16| {
            let mut client = RespClient::connect(port).unwrap();
            text(client.cmd(&["CLUSTER", "NODES"]).unwrap()).replace("myself,", "")
        };
        assert_eventually!(
            {
                maps = ports.iter().map(|&port| nodes_of(port)).collect();
                same_everywhere(&maps)
            },
            "the proxies show different maps: {maps:#?}"
        );
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "node ids are not distinct");
    // CLUSTER SLOTS: the proxies in address order, every slot once.
    let mut client = RespClient::connect(ports[0]).unwrap();
    let Reply::Array(ranges) = client.cmd(&["CLUSTER", "SLOTS"]).unwrap() else {
        panic!("CLUSTER SLOTS is not an array");
    };
    ports.sort();
    let mut next = 0;
    for (range, port) in ranges.iter().zip(&ports) {
        let Reply::Array(fields) = range else {
            panic!("{range:?}")
        };
        assert_eq!(fields[0], Reply::Integer(next));
        let Reply::Integer(end) = fields[1] else {
            panic!("{fields:?}")
        };
        let Reply::Array(node) = &fields[2] else {
            panic!("{fields:?}")
        };
        assert_eq!(node[1], Reply::Integer(i64::from(*port)));
        next = end + 1;
    }
    assert_eq!(next, 16384);
    // HELLO says cluster, as a cluster node does.
    let Reply::Array(hello) = client.cmd(&["HELLO", "2"]).unwrap() else {
        panic!("HELLO is not an array");
    };
    let mode = hello
        .chunks(2)
        .find(|pair| pair[0] == Reply::Bulk(b"mode".to_vec()));
    assert_eq!(
        mode.map(|pair| &pair[1]),
        Some(&Reply::Bulk(b"cluster".to_vec()))
    );
}

#[test]
fn without_cluster_proxies_cluster_commands_get_redis_standalone_error() {
    let server = RedisServer::start();
    let port = free_port();
    let _proxy = Shardgate::builder(
        common::BIN,
        &format!(
            "plain:\n  listen: 127.0.0.1:{port}\n  servers:\n    - {}:1 s\n",
            server.addr()
        ),
    )
    .wait_port(port)
    .start();
    let mut client = RespClient::connect(port).unwrap();
    for command in [
        &["CLUSTER", "SLOTS"][..],
        &["READONLY"],
        &["CLUSTER", "INFO"],
    ] {
        assert_eq!(
            client.cmd(command).unwrap(),
            Reply::Error("ERR This instance has cluster support disabled".into()),
            "{command:?}"
        );
    }
}

#[test]
fn redis_py_cluster_client_spreads_over_the_proxies_and_survives_one_killed() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let (ports, mut proxies) = three_proxies(&servers);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/cluster_face.py"
    );
    let mut python = Command::new("python3")
        .arg(script)
        .args(ports.iter().map(u16::to_string))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut stdout = BufReader::new(python.stdout.take().unwrap());
    let mut printed = String::new();
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 {
        printed.push_str(&line);
        if line.contains("phase 1 done") {
            break;
        }
        line.clear();
    }
    if !printed.contains("phase 1 done") {
        let output = python.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("No module named 'redis'"),
            "redis-py is not installed: python3 -m pip install redis (or run `make test`, which does)"
        );
        panic!("phase 1 failed:\n{printed}\n{stderr}");
    }
    // The client spread its 3,000 SETs over every proxy by slot.
    let spread: Vec<u64> = proxies.iter().map(sets).collect();
    assert!(
        spread.iter().all(|&n| n >= 500),
        "SETs per proxy: {spread:?}"
    );
    assert_eq!(spread.iter().sum::<u64>(), 3000, "{spread:?}");

    // Kill the second proxy while the client goes on: until the others
    // stop showing it (seconds), the client meets a dead node.
    let killed = &mut proxies[1];
    killed.signal("KILL");
    killed
        .child()
        .wait_exit(std::time::Duration::from_secs(5))
        .expect("the killed proxy did not exit");
    python.stdin.take().unwrap().write_all(b"killed\n").unwrap();
    let mut client = RespClient::connect(ports[0]).unwrap();
    assert_eventually!(
        text(client.cmd(&["CLUSTER", "INFO"]).unwrap()).contains("cluster_size:2\r\n"),
        "the killed proxy is still shown"
    );
    assert!(proxies[0]
        .log()
        .contains("cluster view: proxy does not answer"));
    let status = python.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut python.stderr.take().unwrap(), &mut stderr).unwrap();
    println!("{rest}");
    assert!(status.success(), "phase 2 failed:\n{rest}\n{stderr}");
    assert!(rest.contains("all cluster-face checks passed"), "{rest}");
}
