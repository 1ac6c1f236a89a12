//! Redis Cluster behind the proxy (`docs/cluster.md`), with real
//! processes: a 6-node cluster (3 primaries, 3 replicas) from `redis-cli
//! --cluster create`, the real shardgate binary in front with
//! `cluster: true`, and clients that must never see `MOVED` or `ASK`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use common::{bulk, ok};
use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::{assert_eventually, RedisCluster, RespClient, Shardgate};

/// The proxy in front of `cluster` (every node a seed); `extra` lines go
/// into the pool.
fn proxy(cluster: &RedisCluster, extra: &[&str]) -> (Shardgate, u16) {
    let port = free_port();
    let mut yaml = format!("c:\n  listen: 127.0.0.1:{port}\n  cluster: true\n");
    for line in extra {
        yaml.push_str(&format!("  {line}\n"));
    }
    yaml.push_str("  servers:\n");
    for seed in cluster.seeds() {
        yaml.push_str(&format!("    - {seed}\n"));
    }
    let proxy = Shardgate::builder(common::BIN, &yaml)
        .wait_port(port)
        .start();
    (proxy, port)
}

fn client(port: u16) -> RespClient {
    RespClient::connect(port).expect("connect to shardgate")
}

/// The pool's `cluster` section of `/topology`.
fn cluster_stats(proxy: &Shardgate) -> serde_json::Value {
    let (status, body) = proxy.admin_get("/topology").expect("GET /topology");
    assert_eq!(status, 200, "{body}");
    let pools: serde_json::Value = serde_json::from_str(&body).expect("json");
    pools[0]["cluster"].clone()
}

fn stat(proxy: &Shardgate, name: &str) -> u64 {
    cluster_stats(proxy)[name].as_u64().unwrap_or(0)
}

/// `errorstat_<KIND>` of a node (MOVED, ASK, TRYAGAIN...): how many such
/// errors it answered.
fn errors_answered(cluster: &RedisCluster, node: usize, kind: &str) -> u64 {
    cluster
        .node(node)
        .info_field("errorstats", &format!("errorstat_{kind}"))
        .and_then(|v| v.strip_prefix("count=")?.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// Each key's slot as the cluster computes it (`CLUSTER KEYSLOT`,
/// pipelined), not as the proxy does.
fn slots_of(cluster: &RedisCluster, keys: &[String]) -> Vec<u16> {
    let mut direct = cluster.node(0).client();
    for key in keys {
        direct.send(&["CLUSTER", "KEYSLOT", key]).expect("send");
    }
    keys.iter()
        .map(|key| match direct.read_reply().expect("reply") {
            Reply::Integer(slot) => u16::try_from(slot).expect("slot"),
            other => panic!("CLUSTER KEYSLOT {key}: {other:?}"),
        })
        .collect()
}

/// No reply a client got may be a redirection.
fn assert_not_redirect(reply: &Reply, context: &str) {
    if let Reply::Error(e) = reply {
        assert!(
            !(e.starts_with("MOVED") || e.starts_with("ASK")),
            "{context}: the client saw {e}"
        );
    }
}

#[test]
fn ten_thousand_keys_land_on_their_slot_owner_and_commands_keep_cluster_semantics() {
    let cluster = RedisCluster::start(3, 1, 2000);
    let (proxy, port) = proxy(&cluster, &[]);
    let mut c = client(port);
    // Pipelined: 10,000 SETs, then their replies.
    for i in 0..10_000 {
        c.send(&["SET", &format!("key:{i}"), &i.to_string()])
            .expect("send");
    }
    for i in 0..10_000 {
        let reply = c.read_reply().expect("reply");
        assert_eq!(reply, ok(), "SET key:{i}");
    }
    // Each key is on the node that serves its slot, read directly.
    let owners = cluster.slot_ports(0);
    let keys: Vec<String> = (0..10_000).map(|i| format!("key:{i}")).collect();
    let slots = slots_of(&cluster, &keys);
    let mut per_node = std::collections::HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        let port = owners[usize::from(slots[i])];
        per_node
            .entry(port)
            .or_insert_with(Vec::new)
            .push((key.clone(), i));
    }
    assert_eq!(per_node.len(), 3, "three primaries serve the keys");
    for (node_port, keys) in &per_node {
        let mut direct = RespClient::connect(*node_port).expect("connect to the owner");
        for (key, _) in keys {
            direct.send(&["GET", key]).expect("send");
        }
        for (key, i) in keys {
            let reply = direct.read_reply().expect("reply");
            assert_eq!(
                reply,
                bulk(&i.to_string()),
                "{key} on its owner {node_port}"
            );
        }
    }
    let total: i64 = cluster
        .primaries()
        .iter()
        .map(|&i| cluster.node(i).dbsize())
        .sum();
    assert_eq!(total, 10_000);
    // Steady state: the proxy knew the map, so no node redirected it.
    let moved: u64 = (0..cluster.len())
        .map(|i| errors_answered(&cluster, i, "MOVED"))
        .sum();
    assert_eq!(moved, 0, "no MOVED once the slot map is known");
    // Multi-key commands over several slots are split per slot.
    let reply = c
        .cmd(&["MGET", "key:1", "key:2", "key:3", "nope"])
        .expect("MGET");
    assert_eq!(
        reply,
        Reply::Array(vec![bulk("1"), bulk("2"), bulk("3"), Reply::Nil])
    );
    assert_eq!(
        c.cmd(&["MSET", "a", "1", "b", "2", "c", "3"])
            .expect("MSET"),
        ok()
    );
    assert_eq!(
        c.cmd(&["DEL", "a", "b", "c", "zz"]).expect("DEL"),
        Reply::Integer(3)
    );
    // What cannot split is refused as Redis Cluster refuses it.
    let reply = c.cmd(&["MSETNX", "a", "1", "b", "2"]).expect("MSETNX");
    assert_eq!(
        reply,
        Reply::Error("CROSSSLOT Keys in request don't hash to the same slot".into())
    );
    assert_eq!(
        c.cmd(&["MSETNX", "{u}a", "1", "{u}b", "2"])
            .expect("MSETNX"),
        Reply::Integer(1)
    );
    assert_eq!(
        c.cmd(&["SELECT", "1"]).expect("SELECT"),
        Reply::Error("ERR SELECT is not allowed in cluster mode".into())
    );
    assert_eq!(c.cmd(&["SELECT", "0"]).expect("SELECT"), ok());
    assert_eq!(c.cmd(&["DBSIZE"]).expect("DBSIZE"), Reply::Integer(10_002));
    // The slot map: three shards, every slot served. (Replicas are not
    // checked: Redis 7.0 reports a replica whose replication offset is
    // still 0 as `loading`, so on an idle cluster none is fit yet.)
    let stats = cluster_stats(&proxy);
    let shards = stats["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 3, "{stats}");
    let slots: u64 = shards
        .iter()
        .map(|s| s["slots"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(slots, 16384);
    assert_eq!(stat(&proxy, "moved"), 0, "{stats}");
}

/// Moves `slot` from node `source` to node `target` for good: `CLUSTER
/// SETSLOT <slot> NODE <target-id>` on the target, the source, then the
/// other primaries (the order Redis's documentation gives).
fn assign_slot(cluster: &RedisCluster, slot: u16, source: usize, target: usize) {
    let target_id = cluster.id(target);
    let slot = slot.to_string();
    for node in [target, source] {
        let reply = cluster
            .node(node)
            .cmd(&["CLUSTER", "SETSLOT", &slot, "NODE", &target_id]);
        assert_eq!(reply, ok(), "SETSLOT NODE on node {node}");
    }
    for node in cluster.primaries() {
        if node != source && node != target {
            cluster
                .node(node)
                .cmd(&["CLUSTER", "SETSLOT", &slot, "NODE", &target_id]);
        }
    }
}

#[test]
fn a_migrating_slot_is_followed_with_ask_and_tryagain_then_moved_once_it_moved() {
    let cluster = RedisCluster::start(3, 1, 2000);
    let (proxy, port) = proxy(&cluster, &[]);
    let mut c = client(port);
    let (a, b) = ("{mig}a", "{mig}b");
    assert_eq!(c.cmd(&["SET", a, "A"]).expect("SET"), ok());
    assert_eq!(c.cmd(&["SET", b, "B"]).expect("SET"), ok());
    let slot = cluster.slot_of(a);
    let source = cluster.index_of_port(cluster.slot_ports(0)[usize::from(slot)]);
    let target = *cluster
        .primaries()
        .iter()
        .find(|&&p| p != source)
        .expect("another primary");
    let (source_id, target_id) = (cluster.id(source), cluster.id(target));
    let slot_arg = slot.to_string();
    let target_port = cluster.node(target).port().to_string();
    let on = |node: usize, args: &[&str]| cluster.node(node).cmd(args);
    assert_eq!(
        on(
            target,
            &["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING", &source_id]
        ),
        ok()
    );
    assert_eq!(
        on(
            source,
            &["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &target_id]
        ),
        ok()
    );
    assert_eq!(
        on(
            source,
            &["MIGRATE", "127.0.0.1", &target_port, a, "0", "5000"]
        ),
        ok()
    );

    // ASK: the moved key is read from the target (after ASKING), the
    // other from the source; the map does not change, so every GET of
    // the moved key still asks the source first.
    let asks = errors_answered(&cluster, source, "ASK");
    let askings = cluster.node(target).command_calls("asking");
    for _ in 0..3 {
        let reply = c.cmd(&["GET", a]).expect("GET");
        assert_not_redirect(&reply, "GET of a migrated key");
        assert_eq!(reply, bulk("A"));
    }
    assert_eq!(c.cmd(&["GET", b]).expect("GET"), bulk("B"));
    assert_eq!(
        errors_answered(&cluster, source, "ASK") - asks,
        3,
        "ASK never updates the map"
    );
    assert_eq!(cluster.node(target).command_calls("asking") - askings, 3);
    assert!(stat(&proxy, "ask") >= 3);

    // TRYAGAIN: an MGET of both keys while they are split between the two
    // nodes is retried until the migration moves on.
    let mget = std::thread::spawn(move || client(port).cmd(&["MGET", a, b]).expect("MGET"));
    assert_eventually!(
        errors_answered(&cluster, source, "TRYAGAIN") >= 1,
        "the source never answered TRYAGAIN to the proxy's MGET"
    );
    assert_eq!(
        on(
            source,
            &["MIGRATE", "127.0.0.1", &target_port, b, "0", "5000"]
        ),
        ok()
    );
    assign_slot(&cluster, slot, source, target);
    let reply = mget.join().expect("the MGET thread");
    assert_eq!(
        reply,
        Reply::Array(vec![bulk("A"), bulk("B")]),
        "MGET across TRYAGAIN"
    );
    assert!(stat(&proxy, "tryagain") >= 1);

    // MOVED: the slot is the target's now. The proxy follows the MOVED,
    // patches the slot, and stops asking the source.
    let reply = c.cmd(&["GET", b]).expect("GET");
    assert_not_redirect(&reply, "GET after the slot moved");
    assert_eq!(reply, bulk("B"));
    assert_eventually!(
        {
            let before = errors_answered(&cluster, source, "MOVED");
            let reply = c.cmd(&["GET", a]).expect("GET");
            assert_eq!(reply, bulk("A"));
            errors_answered(&cluster, source, "MOVED") == before
        },
        "the proxy kept sending the moved slot to its old owner"
    );
    assert!(stat(&proxy, "moved") >= 1);
    // A refresh confirmed the map with a second node.
    assert_eventually!(
        stat(&proxy, "maps_believed") >= 2,
        "no refresh believed the new map: {}",
        cluster_stats(&proxy)
    );
    assert_eq!(stat(&proxy, "redirect_loops"), 0);
}
