use super::*;

fn bulk(s: &str) -> Value {
    Value::Bulk(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

fn node(id: &str, ip: &str, port: i64, role: &str, health: &str) -> Value {
    Value::Array(vec![
        bulk("id"),
        bulk(id),
        bulk("port"),
        Value::Integer(port),
        bulk("ip"),
        bulk(ip),
        bulk("endpoint"),
        bulk(ip),
        bulk("role"),
        bulk(role),
        bulk("replication-offset"),
        Value::Integer(1),
        bulk("health"),
        bulk(health),
    ])
}

fn shard(ranges: &[(i64, i64)], nodes: Vec<Value>) -> Value {
    let slots = ranges
        .iter()
        .flat_map(|&(a, b)| [Value::Integer(a), Value::Integer(b)])
        .collect();
    Value::Array(vec![
        bulk("slots"),
        Value::Array(slots),
        bulk("nodes"),
        Value::Array(nodes),
    ])
}

fn asked() -> SocketAddr {
    "127.0.0.1:7000".parse().expect("addr")
}

fn three_shards(third_primary: i64, third_health: &str) -> Value {
    Value::Array(vec![
        shard(
            &[(0, 5460)],
            vec![
                node("a", "127.0.0.1", 7000, "master", "online"),
                node("d", "127.0.0.1", 7003, "replica", "online"),
            ],
        ),
        shard(
            &[(5461, 10922)],
            vec![
                node("b", "127.0.0.1", 7001, "master", "online"),
                node("e", "127.0.0.1", 7004, "replica", "loading"),
            ],
        ),
        shard(
            &[(10923, 16383)],
            vec![node(
                "c",
                "127.0.0.1",
                third_primary,
                "master",
                third_health,
            )],
        ),
    ])
}

#[test]
fn cluster_shards_gives_slots_roles_and_health() {
    let map =
        SlotMap::from_shards(&three_shards(7002, "online"), asked(), NodePort::Plain).expect("map");
    assert_eq!(map.shards.len(), 3);
    assert_eq!(map.served_slots(), 16384);
    assert_eq!(map.owner(0), Some(0));
    assert_eq!(map.owner(5461), Some(1));
    assert_eq!(
        map.primary_of(16383),
        Some("127.0.0.1:7002".parse().expect("a"))
    );
    assert_eq!(map.shards[1].replicas[0].health, NodeHealth::Loading);
    // The snapshot: keys go to the slot's primary; only online replicas are fit.
    let config = Arc::new(
        crate::config::parse(
            "p:\n  listen: 127.0.0.1:1\n  cluster: true\n  servers: [\"127.0.0.1:7000:1\"]\n",
        )
        .expect("config")
        .pools
        .remove(0),
    );
    let topology = map.topology(&config, 3);
    assert_eq!(topology.version, 3);
    assert_eq!(topology.shard_of(b"foo"), Some(2), "slot 12182");
    assert_eq!(topology.shards[0].replicas.len(), 1);
    assert!(
        topology.shards[1].replicas.is_empty(),
        "a loading replica serves no reads"
    );
    assert_eq!(
        topology.shards[1].standby.len(),
        1,
        "but may be the one promoted"
    );
}

#[test]
fn a_failed_primary_keeps_its_slots_until_the_cluster_promotes() {
    let map =
        SlotMap::from_shards(&three_shards(7002, "fail"), asked(), NodePort::Plain).expect("map");
    let config = Arc::new(
        crate::config::parse(
            "p:\n  listen: 127.0.0.1:1\n  cluster: true\n  servers: [\"127.0.0.1:7000:1\"]\n",
        )
        .expect("config")
        .pools
        .remove(0),
    );
    let topology = map.topology(&config, 1);
    assert_eq!(topology.shard_of(b"foo"), Some(2));
    assert_eq!(
        topology.shards[2].master.as_ref().map(|m| m.addr.port()),
        Some(7002),
        "only the cluster promotes"
    );
}

#[test]
fn placement_compares_primaries_per_slot_only() {
    let a =
        SlotMap::from_shards(&three_shards(7002, "online"), asked(), NodePort::Plain).expect("a");
    let b = SlotMap::from_shards(&three_shards(7002, "fail"), asked(), NodePort::Plain).expect("b");
    let c =
        SlotMap::from_shards(&three_shards(7005, "online"), asked(), NodePort::Plain).expect("c");
    assert!(a.same_placement(&b));
    assert_ne!(a, b);
    assert!(!a.same_placement(&c));
}

#[test]
fn moved_patches_one_slot_to_a_known_primary_only() {
    let map =
        SlotMap::from_shards(&three_shards(7002, "online"), asked(), NodePort::Plain).expect("map");
    let moved = map
        .with_moved(0, "127.0.0.1:7001".parse().expect("a"))
        .expect("known primary");
    assert_eq!(moved.owner(0), Some(1));
    assert_eq!(moved.owner(1), Some(0));
    assert!(map
        .with_moved(0, "127.0.0.1:9999".parse().expect("a"))
        .is_none());
}

#[test]
fn cluster_slots_groups_ranges_by_primary() {
    let entry = |a: i64, b: i64, port: i64| {
        Value::Array(vec![
            Value::Integer(a),
            Value::Integer(b),
            Value::Array(vec![bulk("127.0.0.1"), Value::Integer(port), bulk("id")]),
            Value::Array(vec![bulk(""), Value::Integer(port + 3), bulk("r")]),
        ])
    };
    let reply = Value::Array(vec![
        entry(0, 99, 7000),
        entry(100, 16383, 7001),
        entry(50, 60, 7000),
    ]);
    let map = SlotMap::from_slots(&reply, asked()).expect("map");
    assert_eq!(map.shards.len(), 2);
    assert_eq!(map.owner(55), Some(0));
    assert_eq!(map.owner(16383), Some(1));
    // An empty ip is the address asked.
    assert_eq!(
        map.shards[0].replicas[0].addr.addr,
        "127.0.0.1:7003".parse().expect("a")
    );
}

#[test]
fn bad_ranges_are_errors_not_panics() {
    let reply = Value::Array(vec![shard(
        &[(10, 20_000)],
        vec![node("a", "127.0.0.1", 7000, "master", "online")],
    )]);
    assert!(SlotMap::from_shards(&reply, asked(), NodePort::Plain).is_err());
    assert!(SlotMap::from_shards(&bulk("x"), asked(), NodePort::Plain).is_err());
    assert!(SlotMap::from_slots(&Value::Array(vec![Value::Array(vec![])]), asked()).is_err());
}

#[test]
fn a_shard_without_slots_is_left_out() {
    // After a failover Redis lists the dead primary as a shard of its own.
    let mut shards = match three_shards(7002, "online") {
        Value::Array(shards) => shards,
        _ => unreachable!(),
    };
    shards.push(shard(
        &[],
        vec![node("dead", "127.0.0.1", 7009, "master", "fail")],
    ));
    let map = SlotMap::from_shards(&Value::Array(shards), asked(), NodePort::Plain).expect("map");
    assert_eq!(map.shards.len(), 3);
    assert!(map.nodes().all(|n| n.addr.addr.port() != 7009));
}

#[test]
fn a_map_compares_equal_whichever_node_listed_it() {
    let reply = three_shards(7002, "online");
    let Value::Array(mut shards) = reply.clone() else {
        unreachable!()
    };
    shards.reverse();
    let a = SlotMap::from_shards(&reply, asked(), NodePort::Plain).expect("a");
    let b = SlotMap::from_shards(&Value::Array(shards), asked(), NodePort::Plain).expect("b");
    assert_eq!(a, b);
    assert_eq!(b.owner(0), Some(0));
    assert_eq!(b.primary_of(0), Some("127.0.0.1:7000".parse().expect("a")));
    assert_eq!(
        b.primary_of(16383),
        Some("127.0.0.1:7002".parse().expect("a"))
    );
}

#[test]
fn a_tls_pool_dials_each_nodes_tls_port_and_a_plain_one_skips_tls_only_nodes() {
    // Node a has both ports; node b serves TLS only (Redis lists no `port`).
    let with_tls = |node: Value, tls_port: i64| match node {
        Value::Array(mut fields) => {
            fields.extend([bulk("tls-port"), Value::Integer(tls_port)]);
            Value::Array(fields)
        }
        other => other,
    };
    let reply = Value::Array(vec![
        shard(
            &[(0, 8191)],
            vec![with_tls(
                node("a", "127.0.0.1", 7000, "master", "online"),
                8000,
            )],
        ),
        shard(
            &[(8192, 16383)],
            vec![with_tls(
                node("b", "127.0.0.1", 0, "master", "online"),
                8001,
            )],
        ),
    ]);
    let tls = SlotMap::from_shards(&reply, asked(), NodePort::Tls).expect("map");
    // Shards come in the map's own (normalized) order.
    let mut ports: Vec<u16> = tls
        .shards
        .iter()
        .filter_map(|s| s.primary.as_ref().map(|p| p.addr.addr.port()))
        .collect();
    ports.sort_unstable();
    assert_eq!(ports, [8000, 8001]);
    let plain = SlotMap::from_shards(&reply, asked(), NodePort::Plain).expect("map");
    let mut primaries: Vec<Option<u16>> = plain
        .shards
        .iter()
        .map(|s| s.primary.as_ref().map(|p| p.addr.addr.port()))
        .collect();
    primaries.sort_unstable();
    assert_eq!(primaries, [None, Some(7000)]);
}

#[test]
fn a_shard_without_slots_lists_its_nodes_as_spares() {
    // A primary just added (and its replica) before its first slot.
    let reply = Value::Array(vec![
        shard(
            &[(0, 16383)],
            vec![node("a", "127.0.0.1", 7000, "master", "online")],
        ),
        shard(
            &[],
            vec![
                node("n", "127.0.0.1", 7009, "master", "online"),
                node("r", "127.0.0.1", 7008, "replica", "online"),
            ],
        ),
    ]);
    let map = SlotMap::from_shards(&reply, asked(), NodePort::Plain).expect("map");
    assert_eq!(map.shards.len(), 1, "a slotless shard serves nothing");
    let spares: Vec<u16> = map.spares.iter().map(|a| a.port()).collect();
    assert_eq!(spares, [7008, 7009]);
}
