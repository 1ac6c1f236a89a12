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
use test_support::cluster::cluster_state;
use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::{assert_eventually, RedisCluster, RedisServer, RespClient, Shardgate};

/// The proxy in front of `cluster` (every node a seed); `extra` lines go
/// into the pool.
fn proxy(cluster: &RedisCluster, extra: &[&str]) -> (Shardgate, u16) {
    proxy_with_seeds(&cluster.seeds(), extra)
}

/// A cluster pool with these `host:port:weight` seeds.
fn proxy_with_seeds(seeds: &[String], extra: &[&str]) -> (Shardgate, u16) {
    let port = free_port();
    let mut yaml = format!("c:\n  listen: 127.0.0.1:{port}\n  cluster: true\n");
    for line in extra {
        yaml.push_str(&format!("  {line}\n"));
    }
    yaml.push_str("  servers:\n");
    for seed in seeds {
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
    // Clients see one plain Redis: no cluster topology to switch to, and
    // nothing that would change a shared connection's cluster state.
    for command in [&["CLUSTER", "SLOTS"][..], &["ASKING"], &["READWRITE"]] {
        assert_eq!(
            c.cmd(command).expect("a cluster command"),
            Reply::Error("ERR This instance has cluster support disabled".into()),
            "{command:?}"
        );
    }
    assert_eq!(c.cmd(&["DBSIZE"]).expect("DBSIZE"), Reply::Integer(10_002));
    // SCAN walks every primary: it finds every key once.
    let mut cursor = "0".to_string();
    let mut scanned = std::collections::HashSet::new();
    loop {
        let reply = c.cmd(&["SCAN", &cursor, "COUNT", "1000"]).expect("SCAN");
        let Reply::Array(parts) = reply else {
            panic!("SCAN: {reply:?}")
        };
        cursor = parts[0].bulk_str().expect("cursor");
        let Reply::Array(keys) = &parts[1] else {
            panic!("SCAN keys: {parts:?}")
        };
        scanned.extend(keys.iter().filter_map(Reply::bulk_str));
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(scanned.len(), 10_002);
    // A transaction on one slot runs on its primary.
    assert_eq!(c.cmd(&["MULTI"]).expect("MULTI"), ok());
    assert_eq!(
        c.cmd(&["INCR", "{u}n"]).expect("INCR"),
        Reply::Simple("QUEUED".into())
    );
    assert_eq!(
        c.cmd(&["GET", "{u}a"]).expect("GET"),
        Reply::Simple("QUEUED".into())
    );
    assert_eq!(
        c.cmd(&["EXEC"]).expect("EXEC"),
        Reply::Array(vec![Reply::Integer(1), bulk("1")])
    );
    assert_eq!(c.cmd(&["DEL", "{u}n"]).expect("DEL"), Reply::Integer(1));
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
    // The status the admin API (and the status page) shows: each shard's
    // primary and replica, as the cluster reports them.
    let (_, body) = proxy.admin_get("/topology").expect("GET /topology");
    let pools: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(pools[0]["failover"], "cluster", "{body}");
    let shards = pools[0]["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 3, "{body}");
    for shard in shards {
        let nodes = shard["nodes"].as_array().expect("nodes");
        assert_eq!(nodes.len(), 2, "{body}");
        assert_eq!(nodes[0]["role"], "master");
        assert_eq!(nodes[1]["role"], "replica");
    }
}

/// `name`'s slot, the node serving it now, and another primary to move
/// it to.
fn slot_and_another_primary(cluster: &RedisCluster, name: &str) -> (u16, usize, usize) {
    let slot = cluster.slot_of(name);
    let source = cluster.index_of_port(cluster.slot_ports(0)[usize::from(slot)]);
    let target = *cluster
        .primaries()
        .iter()
        .find(|&&p| p != source)
        .expect("another primary");
    (slot, source, target)
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
    let (slot, source, target) = slot_and_another_primary(&cluster, a);
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
    // A SCAN begun under this map...
    let Reply::Array(scan) = c.cmd(&["SCAN", "0", "COUNT", "1"]).expect("SCAN") else {
        panic!("SCAN")
    };
    let scan_cursor = scan[0].bulk_str().expect("cursor");
    assert_ne!(scan_cursor, "0");
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
    // ...cannot go on under the new one: keys could be skipped or repeated.
    let reply = c.cmd(&["SCAN", &scan_cursor]).expect("SCAN");
    assert!(
        matches!(&reply, Reply::Error(e) if e.contains("slot map changed during this SCAN")),
        "{reply:?}"
    );
    // A refresh confirmed the map with a second node.
    assert_eventually!(
        stat(&proxy, "maps_believed") >= 2,
        "no refresh believed the new map: {}",
        cluster_stats(&proxy)
    );
    assert_eq!(stat(&proxy, "redirect_loops"), 0);
    // The same counters on /metrics.
    let (status, metrics) = proxy.admin_get("/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    let value = |line: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    assert!(
        value("shardgate_cluster_redirects_total{pool=\"c\",kind=\"ask\"}") >= Some(3),
        "{metrics}"
    );
    assert!(value("shardgate_cluster_refreshes_total{pool=\"c\"}") >= Some(2));
}

/// A key whose slot node `node` serves.
fn key_on(cluster: &RedisCluster, node: usize, prefix: &str) -> String {
    let owners = cluster.slot_ports(0);
    let port = cluster.node(node).port();
    let keys: Vec<String> = (0..1000).map(|i| format!("{prefix}{i}")).collect();
    let slots = slots_of(cluster, &keys);
    keys.into_iter()
        .zip(slots)
        .find(|(_, slot)| owners[usize::from(*slot)] == port)
        .map(|(key, _)| key)
        .expect("a key on that node")
}

#[test]
fn a_killed_primary_is_followed_within_half_a_second_of_the_clusters_own_failover() {
    let mut cluster = RedisCluster::start(3, 1, 2000);
    let (proxy, port) = proxy(&cluster, &[]);
    let mut c = client(port);
    let victim = cluster.primaries()[0];
    let key = key_on(&cluster, victim, "failover:");
    let other = key_on(&cluster, cluster.primaries()[1], "failover:");
    assert_eq!(c.cmd(&["SET", &key, "before"]).expect("SET"), ok());
    let refreshes_before = stat(&proxy, "refreshes");

    // The cluster's own failover time, watched on the victim's replica
    // directly: when it is a primary and its cluster state is ok.
    let victim_id = cluster.id(victim);
    let heir = (0..cluster.len())
        .find(|&i| {
            cluster.node(i).role().as_deref() == Some("slave")
                && cluster
                    .node(i)
                    .cmd(&["CLUSTER", "MYID"])
                    .bulk_str()
                    .is_some_and(|id| {
                        let nodes = cluster.node(i).cmd(&["CLUSTER", "NODES"]).bulk_str();
                        nodes.unwrap_or_default().lines().any(|l| {
                            l.starts_with(&id) && l.split(' ').nth(3) == Some(victim_id.as_str())
                        })
                    })
        })
        .expect("the victim's replica");
    let heir_port = cluster.node(heir).port();

    cluster.node_mut(victim).kill();
    let killed = std::time::Instant::now();
    let watcher = std::thread::spawn(move || {
        let promoted = |port| {
            let mut c = RespClient::connect(port).ok()?;
            let role = c.cmd(&["ROLE"]).ok()?;
            let info = c.cmd(&["CLUSTER", "INFO"]).ok()?.bulk_str()?;
            let master = matches!(&role, Reply::Array(r) if r.first() == Some(&bulk("master")));
            Some(master && info.contains("cluster_state:ok"))
        };
        test_support::eventually::wait_until(std::time::Duration::from_secs(30), || {
            promoted(heir_port) == Some(true)
        })
    });
    let deadline = cluster.node_timeout() + std::time::Duration::from_secs(15);
    let mut errors = Vec::new();
    let took = loop {
        let reply = c
            .cmd(&["SET", &key, "after"])
            .expect("the client connection broke");
        assert_not_redirect(&reply, "SET during failover");
        if reply == ok() {
            break killed.elapsed();
        }
        errors.push(format!("{:?}: {reply:?}", killed.elapsed()));
        assert!(
            killed.elapsed() < deadline,
            "no write succeeded; last: {:?}",
            errors.last()
        );
        // Writes to the other shards are not held up for long.
        let reply = c.cmd(&["GET", &other]).expect("GET");
        assert_not_redirect(&reply, "GET of another shard's key");
    };
    let refreshes = stat(&proxy, "refreshes") - refreshes_before;
    println!(
        "first successful write {took:?} after kill -9 (node timeout {:?}); {} failed writes; {refreshes} refreshes meanwhile",
        cluster.node_timeout(),
        errors.len()
    );
    let cluster_took = watcher
        .join()
        .expect("the watcher")
        .expect("the replica was never promoted");
    println!("the cluster itself: replica promoted and cluster ok {cluster_took:?} after kill -9");
    errors.dedup();
    let errors = &errors[..errors.len().min(5)];
    // The proxy follows the cluster within a few retries (100 ms apart),
    // not a map refresh later...
    assert!(
        took <= cluster_took + std::time::Duration::from_millis(500),
        "first write {took:?} after kill -9, the cluster's own failover {cluster_took:?}; errors: {errors:?}"
    );
    // (The target, node-timeout + 2 s, then holds whenever the
    // cluster's own election does: the proxy adds at most 500 ms to it,
    // which is what this test asserts; the election is Redis's.)
    assert!(
        refreshes <= took.as_secs() + 2,
        "{refreshes} refreshes in {took:?}: more than one a second"
    );
    assert_eq!(c.cmd(&["GET", &key]).expect("GET"), bulk("after"));
    // A refresh puts the promoted replica in the proxy's map.
    let promoted = format!("127.0.0.1:{heir_port}");
    assert_eventually!(
        within = std::time::Duration::from_secs(5),
        cluster_stats(&proxy)["shards"]
            .as_array()
            .expect("shards")
            .iter()
            .any(|s| s["primary"].as_str() == Some(promoted.as_str())),
        "the promoted replica never entered the map: {}",
        cluster_stats(&proxy)
    );
}

/// Clients doing SET then GET (checked) and split MGETs through the
/// proxy, until told to stop; returns (operations, failures seen).
fn checked_load(
    port: u16,
    thread: usize,
    stop: &std::sync::atomic::AtomicBool,
) -> (u64, Vec<String>) {
    let mut c = client(port);
    let (mut ops, mut failures) = (0u64, Vec::new());
    let mut i = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let key = format!("load:{thread}:{}", i % 2000);
        let value = i.to_string();
        let set = c.cmd(&["SET", &key, &value]).expect("SET");
        let get = c.cmd(&["GET", &key]).expect("GET");
        if set != ok() || get != bulk(&value) {
            failures.push(format!("{key}: SET {set:?}, GET {get:?}"));
        }
        if i.is_multiple_of(10) {
            let other = format!("load:{thread}:{}", (i + 1000) % 2000);
            let mget = c.cmd(&["MGET", &key, &other]).expect("MGET");
            match &mget {
                Reply::Array(values) if values.len() == 2 && values[0] == bulk(&value) => {}
                _ => failures.push(format!("MGET {key} {other}: {mget:?}")),
            }
        }
        ops += 1;
        i += 1;
    }
    (ops, failures)
}

#[test]
fn a_resharding_under_load_reaches_no_client() {
    let cluster = RedisCluster::start(3, 1, 2000);
    let (proxy, port) = proxy(&cluster, &[]);
    let primaries = cluster.primaries();
    let (from, to) = (cluster.id(primaries[0]), cluster.id(primaries[1]));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|thread| {
            let stop = stop.clone();
            std::thread::spawn(move || checked_load(port, thread, &stop))
        })
        .collect();
    // Let the load fill every slot range first.
    assert_eventually!(
        primaries.iter().all(|&p| cluster.node(p).dbsize() > 500),
        "the load never reached every primary"
    );
    let refreshes_before = stat(&proxy, "refreshes");
    let started = std::time::Instant::now();
    let seed = cluster.node(0).addr();
    cluster.cli(&[
        "reshard",
        &seed,
        "--cluster-from",
        &from,
        "--cluster-to",
        &to,
        "--cluster-slots",
        "2000",
        "--cluster-yes",
        "--cluster-pipeline",
        "10",
    ]);
    let took = started.elapsed();
    // The proxy learns the final map too.
    assert_eventually!(
        {
            let shards = cluster_stats(&proxy)["shards"].clone();
            shards
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["slots"].as_u64().unwrap_or(0) > 7000))
        },
        "the proxy never believed the resharded map: {}",
        cluster_stats(&proxy)
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ops, mut failures) = (0, Vec::new());
    for thread in load {
        let (n, f) = thread.join().expect("a load thread");
        ops += n;
        failures.extend(f);
    }
    let stats = cluster_stats(&proxy);
    let refreshes = stat(&proxy, "refreshes") - refreshes_before;
    println!(
        "resharded 2000 slots in {took:?} under {ops} checked operations: {} failures; \
         {refreshes} refreshes; moved {} ask {} tryagain {}",
        failures.len(),
        stats["moved"],
        stats["ask"],
        stats["tryagain"]
    );
    assert!(
        failures.is_empty(),
        "clients saw: {:?}",
        &failures[..failures.len().min(10)]
    );
    assert!(ops > 1000, "too little load: {ops}");
    assert!(
        stats["moved"].as_u64().unwrap_or(0) > 0,
        "the load never met a moved slot"
    );
    assert!(
        refreshes <= took.as_secs() + 12,
        "{refreshes} refreshes in {took:?}: more than one a second"
    );
    assert_eq!(stat(&proxy, "redirect_loops"), 0);
}

#[test]
fn a_seed_serving_another_map_is_not_believed_without_a_second_node() {
    let cluster = RedisCluster::start(3, 1, 2000);
    // A node that claims every slot, alone: as a node cut off on the
    // minority side of a partition serves a map no other node has.
    let rogue = RedisServer::builder()
        .arg("cluster-enabled", "yes")
        .arg("cluster-config-file", "nodes.conf")
        .start();
    assert_eq!(rogue.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]), ok());
    assert_eventually!(
        cluster_state(&rogue).as_deref() == Some("ok"),
        "the one-node cluster never became ok"
    );
    // It is the first seed: the first node asked.
    let mut seeds = vec![format!("{}:1", rogue.addr())];
    seeds.extend(cluster.seeds());
    let (proxy, port) = proxy_with_seeds(&seeds, &[]);
    assert_eventually!(
        cluster_stats(&proxy)["shards"].as_array().map(Vec::len) == Some(3),
        "the real map was never believed: {}",
        cluster_stats(&proxy)
    );
    assert!(
        stat(&proxy, "unconfirmed") >= 1,
        "the rogue's map was not even asked about: {}",
        cluster_stats(&proxy)
    );
    let mut c = client(port);
    for i in 0..1000 {
        let reply = c.cmd(&["SET", &format!("p:{i}"), "v"]).expect("SET");
        assert_eq!(reply, ok(), "SET p:{i}");
    }
    assert_eq!(rogue.dbsize(), 0, "a key went to the rogue node");
    let total: i64 = (cluster.primaries().iter())
        .map(|&i| cluster.node(i).dbsize())
        .sum();
    assert_eq!(total, 1000);
}

#[test]
fn a_manual_failover_then_kill_of_the_old_primary_reaches_no_client() {
    let mut cluster = RedisCluster::start(3, 1, 2000);
    let (proxy, port) = proxy(&cluster, &[]);
    let mut c = client(port);
    let old = cluster.primaries()[0];
    let key = key_on(&cluster, old, "manual:");
    assert_eq!(c.cmd(&["SET", &key, "1"]).expect("SET"), ok());
    // Its replica takes over, gracefully (CLUSTER FAILOVER on the replica).
    let old_id = cluster.id(old);
    let heir = (0..cluster.len())
        .find(|&i| {
            let nodes = cluster.node(i).cmd(&["CLUSTER", "NODES"]).bulk_str();
            let id = cluster.id(i);
            nodes.unwrap_or_default().lines().any(|l| {
                l.starts_with(&id)
                    && l.contains("slave")
                    && l.split(' ').nth(3) == Some(old_id.as_str())
            })
        })
        .expect("the primary's replica");
    assert_eq!(cluster.node(heir).cmd(&["CLUSTER", "FAILOVER"]), ok());
    assert_eventually!(
        cluster.node(heir).role().as_deref() == Some("master"),
        "the replica never took over"
    );
    // The old primary answers MOVED now; the client never sees it.
    for i in 0..50 {
        let reply = c.cmd(&["INCR", &key]).expect("INCR");
        assert_not_redirect(&reply, "INCR after CLUSTER FAILOVER");
        assert_eq!(reply, Reply::Integer(i + 2));
    }
    // Once the proxy routes to the new primary, the old one can die.
    let heir_addr = cluster.node(heir).addr();
    assert_eventually!(
        cluster_stats(&proxy)["shards"].as_array().is_some_and(|s| s
            .iter()
            .any(|s| s["primary"].as_str() == Some(heir_addr.as_str()))),
        "the new primary never entered the map: {}",
        cluster_stats(&proxy)
    );
    cluster.node_mut(old).kill();
    for i in 0..50 {
        let reply = c.cmd(&["INCR", &key]).expect("INCR");
        assert_not_redirect(&reply, "INCR after the old primary died");
        assert_eq!(
            reply,
            Reply::Integer(i + 52),
            "INCR with the old primary dead"
        );
    }
}

#[test]
fn a_slot_moving_under_an_open_transaction_aborts_it_cleanly() {
    let cluster = RedisCluster::start(3, 1, 2000);
    let (_proxy, port) = proxy(&cluster, &[]);
    let mut c = client(port);
    let (x, y) = ("{tx}x", "{tx}y");
    let (slot, source, target) = slot_and_another_primary(&cluster, x);
    assert_eq!(c.cmd(&["MULTI"]).expect("MULTI"), ok());
    let queued = Reply::Simple("QUEUED".into());
    assert_eq!(c.cmd(&["SET", x, "1"]).expect("SET"), queued);
    // The (empty) slot moves while the transaction is open on its old node.
    assign_slot(&cluster, slot, source, target);
    let reply = c.cmd(&["SET", y, "2"]).expect("SET");
    assert_not_redirect(&reply, "a command queued after its slot moved");
    assert!(
        matches!(&reply, Reply::Error(e) if e.starts_with("TRYAGAIN")),
        "{reply:?}"
    );
    // The server discards the transaction and redirects EXEC itself: the
    // client gets an error for EXEC, not a MOVED.
    let exec = c.cmd(&["EXEC"]).expect("EXEC");
    assert_not_redirect(&exec, "EXEC after its slot moved");
    assert!(
        matches!(&exec, Reply::Error(e) if e.starts_with("EXECABORT") || e.starts_with("TRYAGAIN")),
        "{exec:?}"
    );
    // Nothing ran; outside the transaction the slot is followed.
    assert_eq!(c.cmd(&["GET", x]).expect("GET"), Reply::Nil);
    assert_eq!(c.cmd(&["SET", x, "1"]).expect("SET"), ok());
    assert_eq!(cluster.node(target).cmd(&["GET", x]), bulk("1"));
}

#[test]
fn seeds_that_are_not_cluster_nodes_get_a_clear_error_not_a_static_pool() {
    let plain = RedisServer::start();
    let (proxy, port) = proxy_with_seeds(&[format!("{}:1", plain.addr())], &[]);
    let mut c = client(port);
    let reply = c.cmd(&["SET", "k", "v"]).expect("SET");
    let Reply::Error(error) = &reply else {
        panic!("a write through a pool with no slot map: {reply:?}")
    };
    assert!(
        error.contains("no slot map from the cluster yet"),
        "{error}"
    );
    assert!(error.contains("cluster support disabled"), "{error}");
    assert_eq!(
        plain.dbsize(),
        0,
        "nothing was written as if the pool were static"
    );
    assert!(proxy.log().contains("no slot map believed yet"));
}

/// The index of the replica of primary `primary`.
fn replica_of(cluster: &RedisCluster, primary: usize) -> usize {
    let primary_id = cluster.id(primary);
    (0..cluster.len())
        .find(|&i| {
            let id = cluster.id(i);
            let nodes = cluster.node(i).cmd(&["CLUSTER", "NODES"]).bulk_str();
            nodes.unwrap_or_default().lines().any(|l| {
                l.starts_with(&id)
                    && l.contains("slave")
                    && l.split(' ').nth(3) == Some(primary_id.as_str())
            })
        })
        .expect("the primary's replica")
}

#[test]
fn a_dead_primary_whose_replica_never_takes_over_gives_errors_but_never_a_redirection() {
    let mut cluster = RedisCluster::start(3, 1, 2000);
    let (_proxy, port) = proxy(&cluster, &["timeout: 500"]);
    let mut c = client(port);
    let victim = cluster.primaries()[0];
    let replica = replica_of(&cluster, victim);
    assert_eq!(
        cluster
            .node(replica)
            .cmd(&["CONFIG", "SET", "cluster-replica-no-failover", "yes"]),
        ok()
    );
    let key = key_on(&cluster, victim, "stuck:");
    let other = key_on(&cluster, cluster.primaries()[1], "stuck:");
    assert_eq!(c.cmd(&["SET", &key, "1"]).expect("SET"), ok());
    // The replica has the write before its primary dies (replication is
    // asynchronous: the read below checks what the replica serves).
    let offset = |node: usize| -> u64 {
        cluster
            .node(node)
            .info_field("replication", "master_repl_offset")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let written = offset(victim);
    assert_eventually!(
        offset(replica) >= written,
        "the replica never caught up with offset {written}"
    );
    cluster.node_mut(victim).kill();
    // Retried on the replica, which keeps answering MOVED to its dead
    // primary until the timeout: the client gets an error, not the MOVED.
    let reply = c.cmd(&["SET", &key, "2"]).expect("SET");
    assert_not_redirect(&reply, "SET with the primary dead");
    assert!(reply.is_error(), "{reply:?}");
    // So does a write split over slots.
    let reply = c.cmd(&["MSET", &key, "3", &other, "3"]).expect("MSET");
    assert_not_redirect(&reply, "MSET with a primary dead");
    assert!(reply.is_error(), "{reply:?}");
    // A read retried on the replica is served there (READONLY), with what
    // it had replicated.
    let reply = c.cmd(&["MGET", &key, &other]).expect("MGET");
    let Reply::Array(values) = &reply else {
        panic!("MGET: {reply:?}")
    };
    assert_eq!(values[0], bulk("1"), "{reply:?}");
}

#[test]
fn reads_go_to_replicas_the_cluster_reports_online_over_readonly_connections() {
    let cluster = RedisCluster::start(3, 1, 2000);
    let (proxy, port) = proxy(&cluster, &["read_policy: replica"]);
    let mut c = client(port);
    let keys: Vec<String> = (0..300).map(|i| format!("read:{i}")).collect();
    for key in &keys {
        assert_eq!(c.cmd(&["SET", key, key]).expect("SET"), ok());
    }
    // Redis 7.0 reports a replica whose offset is still 0 as `loading`;
    // after these writes, a refresh (the timer's, at most 12 s) finds
    // every replica online and fit to read.
    assert_eventually!(
        within = std::time::Duration::from_secs(30),
        cluster_stats(&proxy)["shards"]
            .as_array()
            .is_some_and(|shards| {
                shards
                    .iter()
                    .all(|s| s["replicas"].as_array().map(Vec::len) == Some(1))
            }),
        "the replicas never became fit: {}",
        cluster_stats(&proxy)
    );
    let primaries = cluster.primaries();
    let replicas: Vec<usize> = primaries.iter().map(|&p| replica_of(&cluster, p)).collect();
    let gets = |nodes: &[usize]| -> u64 {
        nodes
            .iter()
            .map(|&i| cluster.node(i).command_calls("get"))
            .sum()
    };
    let (on_primaries, on_replicas) = (gets(&primaries), gets(&replicas));
    // Replication is asynchronous: read until every value arrived.
    assert_eventually!(
        keys.iter()
            .all(|key| c.cmd(&["GET", key]).expect("GET") == bulk(key)),
        "reads from the replicas never matched the writes"
    );
    assert_eq!(gets(&primaries), on_primaries, "a read went to a primary");
    assert!(gets(&replicas) - on_replicas >= 300);
    // A write still goes to the primary, whatever the read policy.
    assert_eq!(c.cmd(&["SET", "read:new", "1"]).expect("SET"), ok());
}

#[test]
fn a_scripts_fake_redirection_is_not_followed_and_dials_nothing() {
    let cluster = RedisCluster::start(3, 1, 2000);
    let (proxy, port) = proxy(&cluster, &["slowlog_log_slower_than: 0"]);
    let mut c = client(port);
    // An address a fake redirection names: the proxy must never dial it
    // (its connections would carry the pool's credentials).
    let bait = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    bait.set_nonblocking(true).unwrap();
    let bait_addr = bait.local_addr().unwrap().to_string();
    let mut targets = vec![bait_addr];
    targets.extend((0..3).map(|i| cluster.node(i).addr()));
    for (i, to) in targets.iter().enumerate() {
        for kind in ["MOVED 1 ", "ASK 1 "] {
            let script =
                format!("redis.call('INCR', KEYS[1]) return redis.error_reply('{kind}{to}')");
            let reply = c.cmd(&["EVAL", &script, "1", "{fake}runs"]).unwrap();
            assert_not_redirect(&reply, &format!("EVAL answering {kind}{to}"));
            assert!(
                matches!(&reply, Reply::Error(e) if e.starts_with("TRYAGAIN")),
                "{reply:?}"
            );
            let ran = 2 * i as i64 + if kind.starts_with("MOVED") { 1 } else { 2 };
            assert_eq!(
                c.cmd(&["GET", "{fake}runs"]).unwrap(),
                bulk(&ran.to_string()),
                "the script ran again elsewhere"
            );
        }
    }
    assert!(
        matches!(bait.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the proxy dialled the address a script named"
    );
    // Nothing was patched into the slot map from a client's words.
    assert_eq!(stat(&proxy, "moved"), 0);
    assert_eq!(stat(&proxy, "ask"), 0);
    // A cluster pool's requests reach the slow log like a static pool's.
    let Reply::Array(entries) = c.cmd(&["SLOWLOG", "GET", "100"]).unwrap() else {
        panic!("SLOWLOG GET");
    };
    let get = Reply::Array(vec![bulk("GET"), bulk("{fake}runs")]);
    assert!(
        entries
            .iter()
            .any(|e| matches!(e, Reply::Array(fields) if fields.get(3) == Some(&get))),
        "no GET in the slow log: {entries:?}"
    );
}

/// SSUBSCRIBE through the proxy: the confirmation a single Redis gives.
fn ssubscribe(subscriber: &mut RespClient, channel: &str, count: i64) {
    assert_eq!(
        subscriber
            .cmd(&["SSUBSCRIBE", channel])
            .expect("SSUBSCRIBE"),
        Reply::Array(vec![
            bulk("ssubscribe"),
            bulk(channel),
            Reply::Integer(count)
        ])
    );
}

/// SPUBLISHes `word-N` on `channel` until one subscriber is reached, then
/// checks that the subscriber's next frame is that very message: nothing
/// came before it (no `sunsubscribe`, no redirection, no earlier word).
fn publish_until_heard(
    publisher: &mut RespClient,
    subscriber: &mut RespClient,
    channel: &str,
    word: &str,
) {
    let mut sent = 0;
    let mut heard_by = 0;
    assert_eventually!(
        within = std::time::Duration::from_secs(10),
        {
            sent += 1;
            let reply = publisher
                .cmd(&["SPUBLISH", channel, &format!("{word}-{sent}")])
                .expect("SPUBLISH");
            assert_not_redirect(&reply, "SPUBLISH");
            heard_by = match reply {
                Reply::Integer(n) => n,
                other => panic!("SPUBLISH: {other:?}"),
            };
            heard_by > 0
        },
        "nobody subscribed to {channel} after {sent} SPUBLISH"
    );
    assert_eq!(heard_by, 1, "one subscriber");
    assert_eq!(
        subscriber.read_reply().expect("message"),
        Reply::Array(vec![
            bulk("smessage"),
            bulk(channel),
            bulk(&format!("{word}-{sent}"))
        ])
    );
}

/// A shard channel whose slot moves: the node unsubscribes the proxy's
/// link by itself; the proxy subscribes again on the new owner without
/// telling the client (who stays subscribed, as to one Redis), after
/// refreshing its map at once.
#[test]
fn a_shard_channel_whose_slot_moves_is_subscribed_again_on_the_new_owner() {
    let cluster = RedisCluster::start(3, 0, 2000);
    let (proxy, port) = proxy(&cluster, &[]);
    let channel = "{moving}news";
    let (mut subscriber, mut publisher) = (client(port), client(port));
    ssubscribe(&mut subscriber, channel, 1);
    publish_until_heard(&mut publisher, &mut subscriber, channel, "before");
    // The slot moves to another primary (it holds no keys).
    let (slot, source, target) = slot_and_another_primary(&cluster, channel);
    let believed = stat(&proxy, "maps_believed");
    assign_slot(&cluster, slot, source, target);
    // The drop asked for a refresh: the proxy believes the new map well
    // before its 10 s timer would have come.
    assert_eventually!(
        within = std::time::Duration::from_secs(3),
        stat(&proxy, "maps_believed") > believed,
        "no new map after the drop: {}",
        cluster_stats(&proxy)
    );
    // The subscriber hears the new owner, told nothing in between.
    publish_until_heard(&mut publisher, &mut subscriber, channel, "after");
    let target_port = cluster.node(target).port();
    assert_eq!(
        cluster
            .node(target)
            .cmd(&["PUBSUB", "SHARDNUMSUB", channel]),
        Reply::Array(vec![bulk(channel), Reply::Integer(1)]),
        "the new owner (port {target_port}) carries the subscription"
    );
    // Still one subscription in the client's count.
    ssubscribe(&mut subscriber, "{moving}more", 2);
}

/// SSUBSCRIBE reaching a node that no longer owns the channel's slot
/// (the proxy's map is older than the cluster's): the node's `-MOVED`
/// is the answer; the client gets its confirmation, and the channel is
/// subscribed on the owner once the map is refreshed. Channels of several
/// slots in one SSUBSCRIBE (refused together by a cluster node) work as
/// on one Redis.
#[test]
fn ssubscribe_follows_a_slot_the_proxy_has_not_seen_move_and_takes_channels_of_several_slots() {
    let cluster = RedisCluster::start(3, 0, 2000);
    let (_proxy, port) = proxy(&cluster, &[]);
    let (mut subscriber, mut publisher) = (client(port), client(port));
    let channel = "{stale}news";
    let (slot, source, target) = slot_and_another_primary(&cluster, channel);
    let moved_before = errors_answered(&cluster, source, "MOVED");
    assign_slot(&cluster, slot, source, target);
    ssubscribe(&mut subscriber, channel, 1);
    publish_until_heard(&mut publisher, &mut subscriber, channel, "moved");
    // (The old owner answered MOVED, unless the proxy's 10 s timer
    // refreshed its map in the instant between.)
    let moved = errors_answered(&cluster, source, "MOVED") - moved_before;
    eprintln!("the old owner answered {moved} MOVED");

    // Two channels of different slots on one node, in one command.
    let owner_of = |name: &str| {
        cluster.index_of_port(cluster.slot_ports(0)[usize::from(cluster.slot_of(name))])
    };
    let names: Vec<String> = (0..200).map(|i| format!("chan-{i}")).collect();
    let (a, b) = names
        .iter()
        .enumerate()
        .find_map(|(i, a)| {
            names[i + 1..].iter().find_map(|b| {
                (owner_of(a) == owner_of(b) && cluster.slot_of(a) != cluster.slot_of(b))
                    .then_some((a.clone(), b.clone()))
            })
        })
        .expect("two channels of one node in different slots");
    let mut other = client(port);
    other.send(&["SSUBSCRIBE", &a, &b]).expect("send");
    for (name, count) in [(&a, 1), (&b, 2)] {
        assert_eq!(
            other.read_reply().expect("confirmation"),
            Reply::Array(vec![bulk("ssubscribe"), bulk(name), Reply::Integer(count)])
        );
    }
    publish_until_heard(&mut publisher, &mut other, &a, "first");
    publish_until_heard(&mut publisher, &mut other, &b, "second");
}

/// A blocking call whose slot moves while it waits: the node unblocks it
/// with `MOVED`; the proxy sends it again to the new owner, on a
/// connection leased there, and the client gets what is pushed there.
#[test]
fn a_blocking_call_follows_its_slot_to_the_new_owner() {
    let cluster = RedisCluster::start(3, 0, 2000);
    let (_proxy, port) = proxy(&cluster, &[]);
    let list = "{blocked}jobs";
    let (slot, source, target) = slot_and_another_primary(&cluster, list);
    let blocked_on = |node: usize| {
        cluster
            .node(node)
            .info_field("clients", "blocked_clients")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut waiter = client(port);
    waiter.send(&["BLPOP", list, "0"]).expect("send BLPOP");
    assert_eventually!(blocked_on(source) == 1, "BLPOP never blocked on its owner");
    assign_slot(&cluster, slot, source, target);
    assert_eventually!(
        blocked_on(target) == 1,
        "the BLPOP was not sent again to the new owner (source blocked: {})",
        blocked_on(source)
    );
    assert_eq!(
        cluster.node(target).cmd(&["LPUSH", list, "job-1"]),
        Reply::Integer(1)
    );
    assert_eq!(
        waiter.read_reply().expect("BLPOP reply"),
        Reply::Array(vec![bulk(list), bulk("job-1")])
    );
}
