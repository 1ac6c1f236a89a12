use resp::Request;

use super::*;
use crate::command::resolve;
use crate::config::parse;

fn topology(servers: usize) -> Topology {
    let mut yaml = String::from(
        "p:\n  listen: 127.0.0.1:1\n  hash: fnv1a_64\n  distribution: ketama\n  servers:\n",
    );
    for i in 0..servers {
        yaml.push_str(&format!("   - 127.0.0.1:{}:1\n", 7000 + i));
    }
    let config = parse(&yaml).expect("config");
    Topology::from_config(&std::sync::Arc::new(config.pools[0].clone()))
}

fn route_of(topology: &Topology, args: &[&str]) -> Route {
    let request = Request::from_args(args);
    let resolution = resolve(&request);
    route(&request, &resolution, topology, &mut Vec::new())
}

/// Two keys that hash to different shards of `topology`.
fn keys_on_two_shards(topology: &Topology) -> (String, String) {
    let first = topology.shard_of(b"k0").expect("shard");
    let other = (1..1000)
        .map(|i| format!("k{i}"))
        .find(|k| topology.shard_of(k.as_bytes()) != Some(first))
        .expect("a key on another shard");
    ("k0".into(), other)
}

#[test]
fn keyed_commands_go_to_their_keys_shard() {
    let t = topology(3);
    for key in ["a", "user:1", "zzz"] {
        let shard = t.shard_of(key.as_bytes()).expect("shard");
        assert_eq!(
            route_of(&t, &["GET", key]),
            Route::Shard {
                shard,
                read: true,
                blocking: false,
                keyless: false
            }
        );
        assert_eq!(
            route_of(&t, &["set", key, "v"]),
            Route::Shard {
                shard,
                read: false,
                blocking: false,
                keyless: false
            }
        );
    }
}

#[test]
fn multi_key_commands_on_one_shard_are_forwarded_else_crossslot() {
    let t = topology(3);
    let (a, b) = keys_on_two_shards(&t);
    assert_eq!(
        route_of(&t, &["SUNION", &a, &b]),
        Route::Refuse(Refusal::CrossSlot)
    );
    assert_eq!(
        route_of(&t, &["RENAME", &a, &b]),
        Route::Refuse(Refusal::CrossSlot)
    );
    assert_eq!(
        route_of(&t, &["MSETNX", &a, "1", &b, "2"]),
        Route::Refuse(Refusal::CrossSlot)
    );
    assert_eq!(
        route_of(&t, &["EVAL", "return 1", "2", &a, &b]),
        Route::Refuse(Refusal::CrossSlot)
    );
    assert_eq!(
        route_of(&t, &["XREAD", "STREAMS", &a, &b, "0", "0"]),
        Route::Refuse(Refusal::CrossSlot)
    );
    let shard = t.shard_of(a.as_bytes()).expect("shard");
    assert_eq!(
        route_of(&t, &["SUNION", &a, &a]),
        Route::Shard {
            shard,
            read: true,
            blocking: false,
            keyless: false
        }
    );
}

#[test]
fn mget_and_friends_split_only_across_shards() {
    let t = topology(3);
    let (a, b) = keys_on_two_shards(&t);
    assert_eq!(
        route_of(&t, &["MGET", &a, &b]),
        Route::Split(SplitKind::Mget)
    );
    assert_eq!(
        route_of(&t, &["MSET", &a, "1", &b, "2"]),
        Route::Split(SplitKind::Mset)
    );
    assert_eq!(
        route_of(&t, &["DEL", &a, &b]),
        Route::Split(SplitKind::Count)
    );
    assert_eq!(
        route_of(&t, &["exists", &a, &b]),
        Route::Split(SplitKind::Count)
    );
    // One shard: no split.
    assert!(matches!(
        route_of(&t, &["MGET", &a, &a]),
        Route::Shard { .. }
    ));
    // Malformed: forwarded whole for the server's own error.
    assert!(matches!(
        route_of(&t, &["MSET", &a, "1", &b]),
        Route::Shard { .. } | Route::Refuse(_)
    ));
}

#[test]
fn keyless_commands_go_to_the_default_shard() {
    let t = topology(3);
    assert_eq!(
        route_of(&t, &["TIME"]),
        Route::Shard {
            shard: 0,
            read: false,
            blocking: false,
            keyless: true
        }
    );
    assert_eq!(
        route_of(&t, &["EVAL", "return 1", "0"]),
        Route::Shard {
            shard: 0,
            read: false,
            blocking: false,
            keyless: true
        }
    );
    // CONFIG GET goes to the master, its reply redacted of secrets.
    assert_eq!(
        route_of(&t, &["CONFIG", "GET", "maxmemory"]),
        Route::ConfigGet { shard: 0 }
    );
}

#[test]
fn blocking_calls_are_marked() {
    let t = topology(1);
    assert!(matches!(
        route_of(&t, &["BLPOP", "q", "0"]),
        Route::Shard { blocking: true, .. }
    ));
    assert!(matches!(
        route_of(&t, &["XREAD", "BLOCK", "10", "STREAMS", "s", "$"]),
        Route::Shard { blocking: true, .. }
    ));
    assert!(matches!(
        route_of(&t, &["LPOP", "q"]),
        Route::Shard {
            blocking: false,
            ..
        }
    ));
}

#[test]
fn whole_keyspace_commands_broadcast_on_several_shards_only() {
    let t3 = topology(3);
    let t1 = topology(1);
    assert_eq!(route_of(&t3, &["FLUSHALL"]), Route::Broadcast(Merge::AllOk));
    assert_eq!(route_of(&t3, &["DBSIZE"]), Route::Broadcast(Merge::Sum));
    assert_eq!(
        route_of(&t3, &["KEYS", "*"]),
        Route::Broadcast(Merge::Concat)
    );
    assert_eq!(route_of(&t3, &["SCAN", "0"]), Route::Scan);
    assert!(matches!(
        route_of(&t1, &["FLUSHALL"]),
        Route::Shard { shard: 0, .. }
    ));
    assert!(matches!(
        route_of(&t1, &["SCAN", "0"]),
        Route::Shard { shard: 0, .. }
    ));
}

#[test]
fn unsound_commands_are_refused_on_several_shards() {
    let t3 = topology(3);
    let t1 = topology(1);
    assert_eq!(
        route_of(&t3, &["SWAPDB", "0", "1"]),
        Route::Refuse(Refusal::MultiShard("swapdb"))
    );
    // CLUSTER is the proxies' own (`cluster_proxies`) or refused as by a
    // non-cluster Redis, however many shards.
    for t in [&t1, &t3] {
        for command in [&["CLUSTER", "INFO"][..], &["READONLY"], &["ASKING"]] {
            assert_eq!(route_of(t, command), Route::Refuse(Refusal::NotCluster));
        }
    }
    assert!(matches!(
        route_of(&t1, &["SWAPDB", "0", "1"]),
        Route::Shard { .. }
    ));
    // Whatever the pool: these change the server under every client.
    for (command, name) in [
        (&["REPLICAOF", "NO", "ONE"][..], "replicaof"),
        (&["SHUTDOWN", "NOSAVE"][..], "shutdown"),
        (&["DEBUG", "SLEEP", "0"][..], "debug"),
        (&["SCRIPT", "DEBUG", "YES"][..], "script|debug"),
        (&["FAILOVER"][..], "failover"),
    ] {
        assert_eq!(
            route_of(&t1, command),
            Route::Refuse(Refusal::ServerOnly(name))
        );
    }
    assert_eq!(
        route_of(
            &t3,
            &["CONFIG", "SET", "maxmemory", "1mb", "requirepass", "x"]
        ),
        Route::Refuse(Refusal::ProtectedConfig("requirepass"))
    );
    assert_eq!(
        route_of(&t1, &["CONFIG", "SET", "TLS-port", "1"]),
        Route::Refuse(Refusal::ProtectedConfig("tls-*"))
    );
    assert_eq!(
        route_of(&t3, &["CONFIG", "SET", "maxmemory", "1mb"]),
        Route::Broadcast(Merge::AllOk)
    );
    assert!(matches!(
        route_of(&t3, &["CONFIG", "GET", "*"]),
        Route::ConfigGet { .. }
    ));
    assert!(Refusal::CrossSlot.message("p").starts_with("CROSSSLOT "));
    // Even on one shard with no managed replication: these would shift
    // a shared connection's reply queue.
    for (command, name) in [
        (&["REPLCONF", "ACK", "0"][..], "replconf"),
        (&["SYNC"][..], "sync"),
        (&["PSYNC", "?", "-1"][..], "psync"),
    ] {
        assert_eq!(
            route_of(&t1, command),
            Route::Refuse(Refusal::ReplicaLink(name))
        );
    }
}

#[test]
fn unknown_commands_are_writes_routed_by_their_first_argument() {
    let t = topology(3);
    let shard = t.shard_of(b"somekey").expect("shard");
    assert_eq!(
        route_of(&t, &["MYRENAMEDGET", "somekey"]),
        Route::Shard {
            shard,
            read: false,
            blocking: false,
            keyless: false
        }
    );
    assert_eq!(
        route_of(&t, &["NOSUCHCOMMAND"]),
        Route::Shard {
            shard: 0,
            read: false,
            blocking: false,
            keyless: true
        }
    );
}

#[test]
fn publish_goes_to_the_channels_shard_and_session_commands_to_the_session() {
    let t = topology(3);
    let shard = t.shard_of(b"news").expect("shard");
    assert_eq!(
        route_of(&t, &["PUBLISH", "news", "hi"]),
        Route::Shard {
            shard,
            read: false,
            blocking: false,
            keyless: false
        }
    );
    assert_eq!(
        route_of(&t, &["MULTI"]),
        Route::Session(SessionCommand::Multi)
    );
    assert_eq!(
        route_of(&t, &["PSUBSCRIBE", "n*"]),
        Route::Session(SessionCommand::Subscribe(SubKind::Pattern))
    );
}

/// A one-shard cluster pool before its slot map arrives: every slot on
/// its one seed.
fn cluster_topology() -> Topology {
    let yaml = "p:\n  listen: 127.0.0.1:1\n  cluster: true\n  servers: [\"127.0.0.1:7000:1\"]\n";
    let config = parse(yaml).expect("config");
    Topology::from_config(&std::sync::Arc::new(config.pools[0].clone()))
}

#[test]
fn a_cluster_pool_needs_one_slot_not_only_one_shard() {
    let t = cluster_topology();
    assert!(t.is_cluster());
    // One node serves both, but a cluster node refuses two slots.
    assert_ne!(keyspace::cluster_slot(b"a"), keyspace::cluster_slot(b"b"));
    assert_eq!(
        route_of(&t, &["MGET", "a", "b"]),
        Route::Split(SplitKind::Mget)
    );
    assert_eq!(
        route_of(&t, &["MSETNX", "a", "1", "b", "2"]),
        Route::Refuse(Refusal::CrossSlot)
    );
    assert!(matches!(
        route_of(&t, &["MSETNX", "{u}a", "1", "{u}b", "2"]),
        Route::Shard { shard: 0, .. }
    ));
}

#[test]
fn a_cluster_split_groups_keys_by_slot() {
    let request = Request::from_args(&["MGET", "a", "{a}x", "b"]);
    let plan = crate::fanout::split::plan_grouped(SplitKind::Mget, &request, |k| {
        Some((0, keyspace::cluster_slot(k)))
    })
    .expect("plan");
    assert_eq!(plan.parts.len(), 2);
    assert_eq!(plan.parts[0].positions, vec![0, 1]);
    assert_eq!(plan.parts[1].positions, vec![2]);
}

#[test]
fn a_cluster_pool_is_one_plain_redis_to_its_clients() {
    let t = cluster_topology();
    for args in [
        &["CLUSTER", "SLOTS"][..],
        &["CLUSTER", "NOSUCH"],
        &["ASKING"],
        &["READONLY"],
        &["READWRITE"],
    ] {
        assert_eq!(
            route_of(&t, args),
            Route::Refuse(Refusal::NotCluster),
            "{args:?}"
        );
    }
    assert_eq!(
        Refusal::NotCluster.message("p"),
        "ERR This instance has cluster support disabled"
    );
}
