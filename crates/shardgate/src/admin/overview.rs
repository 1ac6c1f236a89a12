//! `/topology` (pools, shards, nodes with role, health, lag, connections,
//! the certificates each pool presents) and `/api/overview` (the same
//! with traffic counters and recent events, for the status page, which
//! turns counters into rates and warns of certificates about to expire).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

use serde_json::{json, Value};

use super::Admin;
use crate::pool::tls::EXPIRY_WARNING;
use crate::pool::PoolState;
use crate::proxy_info::ProxyInfo;

pub fn topology(admin: &Admin) -> Value {
    Value::Array(
        admin
            .pools()
            .iter()
            .map(|pool| pool_json(pool, false))
            .collect(),
    )
}

pub fn overview(admin: &Admin) -> Value {
    json!({
        "version": ProxyInfo::version(),
        "pid": std::process::id(),
        "uptime_seconds": admin.proxy.uptime().as_secs(),
        "workers": admin.proxy.workers,
        "instance": &*admin.proxy.instance,
        "pools": admin.pools().iter().map(|pool| pool_json(pool, true)).collect::<Vec<_>>(),
        "events": admin.events.recent(50),
    })
}

/// The certificates the pool presents, each with its expiry and whether
/// it is within [`EXPIRY_WARNING`] of it (or past it).
fn certificates(pool: &PoolState) -> Vec<Value> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let warning = EXPIRY_WARNING.as_secs() as i64;
    pool.tls
        .presented()
        .iter()
        .map(|cert| {
            let left = cert.summary.not_after - now;
            json!({
                "use": cert.used_for.key(),
                "path": cert.path,
                "serial": cert.summary.serial,
                "subject": cert.summary.common_name,
                "not_after": cert.summary.not_after,
                "not_after_utc": shardgate_tls::x509::utc(cert.summary.not_after),
                "expires_in_seconds": left,
                "expires_soon": left < warning,
            })
        })
        .collect()
}

#[derive(Default)]
struct Traffic {
    requests: u64,
    errors: u64,
    connections: u64,
    latency_sum_us: u64,
    latency_count: u64,
}

fn pool_json(pool: &PoolState, traffic: bool) -> Value {
    let config = pool.config();
    let status = pool.status();
    let mut by_node: BTreeMap<SocketAddr, Traffic> = BTreeMap::new();
    for (addr, stats) in pool.node_stats() {
        let t = by_node.entry(addr).or_default();
        t.requests += stats.requests.get();
        t.errors += stats.errors.get();
        t.connections += stats.connections.get();
        let latency = stats.latency.snapshot();
        t.latency_sum_us += latency.sum_us;
        t.latency_count += latency.count();
    }
    let shards: Vec<Value> = status
        .shards
        .iter()
        .map(|shard| {
            let nodes: Vec<Value> = shard
                .nodes
                .iter()
                .map(|node| {
                    let mut value = serde_json::to_value(node).unwrap_or(Value::Null);
                    let addr = node.addr.parse::<SocketAddr>().ok();
                    let t = addr.and_then(|a| by_node.get(&a));
                    if let (Value::Object(map), Some(t)) = (&mut value, t) {
                        map.insert("connections".into(), json!(t.connections));
                        if traffic {
                            map.insert("requests".into(), json!(t.requests));
                            map.insert("errors".into(), json!(t.errors));
                            let avg = t.latency_sum_us.checked_div(t.latency_count).unwrap_or(0);
                            map.insert("latency_avg_us".into(), json!(avg));
                        }
                    }
                    value
                })
                .collect();
            json!({
                "name": &*shard.name,
                "master": shard.master.as_deref(),
                "down": shard.down,
                "ejected": shard.ejected,
                "nodes": nodes,
            })
        })
        .collect();
    let mut value = json!({
        "pool": config.name,
        "listen": config.listen.as_ref().map(ToString::to_string),
        "tls_listen": config.tls_listen.as_ref().map(ToString::to_string),
        "tls_readonly_listen": config.tls_readonly_listen.as_ref().map(ToString::to_string),
        "readonly_listen": config.readonly_listen.as_ref().map(ToString::to_string),
        "distribution": config.distribution.name(),
        "hash": config.hash.name(),
        "failover": status.failover,
        "read_policy": config.read_policy.name(),
        "topology_version": pool.topology().version,
        "clients": pool.admitted.load(Relaxed),
        "shards": shards,
        "certificates": certificates(pool),
    });
    if config.cluster {
        if let Value::Object(map) = &mut value {
            map.insert("cluster".into(), cluster_json(pool));
        }
    }
    if traffic {
        let workers = pool.worker_stats();
        let (mut requests, mut errors) = (0u64, 0u64);
        for worker in &workers {
            for (_, command) in worker.commands() {
                requests += command.requests.get();
                errors += command.errors.get();
            }
        }
        if let Value::Object(map) = &mut value {
            map.insert("requests".into(), json!(requests));
            map.insert("errors".into(), json!(errors));
            map.insert(
                "replica_reads".into(),
                json!(workers.iter().map(|w| w.replica_reads.get()).sum::<u64>()),
            );
            map.insert(
                "failovers".into(),
                json!(pool.stats.failovers.load(Relaxed)),
            );
        }
    }
    value
}

/// A cluster pool's believed slot map (its shards as routed) and what its
/// data path and controller met: redirections and refreshes.
fn cluster_json(pool: &PoolState) -> Value {
    let topology = pool.topology();
    let stats = &pool.cluster.stats;
    // Slots per shard in one pass over the slot table.
    let mut slots = vec![0usize; topology.shards.len()];
    for slot in 0..keyspace::SLOT_COUNT {
        if let Some(count) = topology.shard_of_slot(slot).and_then(|i| slots.get_mut(i)) {
            *count += 1;
        }
    }
    let shards: Vec<Value> = (topology.shards.iter().zip(slots))
        .map(|(shard, slots)| {
            json!({
                "name": &*shard.name,
                "primary": shard.master.as_ref().map(|m| m.addr.to_string()),
                "replicas": shard.replicas.iter().map(|r| r.addr.to_string()).collect::<Vec<_>>(),
                "slots": slots,
                "down": shard.down.as_deref(),
            })
        })
        .collect();
    json!({
        "shards": shards,
        "moved": stats.moved.load(Relaxed),
        "ask": stats.ask.load(Relaxed),
        "tryagain": stats.tryagain.load(Relaxed),
        "clusterdown": stats.clusterdown.load(Relaxed),
        "retried": stats.retried.load(Relaxed),
        "redirect_loops": stats.loops.load(Relaxed),
        "refreshes": stats.refreshes.load(Relaxed),
        "maps_believed": stats.maps_believed.load(Relaxed),
        "unconfirmed": stats.unconfirmed.load(Relaxed),
    })
}
