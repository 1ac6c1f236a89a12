//! What a reload changes: the new file compared with the active one,
//! pool by pool. Pure: the reload applies the plan, this only says what
//! it is and whether it may be applied at all.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::config::{Config, PoolConfig};
use crate::topology::Topology;

/// Sample keys measured to say how much of a cache pool's keyspace a
/// reload moves.
const MOVE_SAMPLE: u32 = 65_536;

/// A reload, pool by pool (by name).
#[derive(Debug, Default)]
pub struct Plan {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Pools in both files whose configuration differs.
    pub changed: Vec<(String, PoolChange)>,
}

impl Plan {
    /// Compares the active configuration with the new one. Err: why the
    /// reload is refused (changes that would move keys), one line each.
    pub fn new(active: &Config, next: &Config) -> Result<Plan, Vec<String>> {
        let names = |c: &Config| {
            c.pools
                .iter()
                .map(|p| p.name.clone())
                .collect::<BTreeSet<_>>()
        };
        let (before, after) = (names(active), names(next));
        let mut plan = Plan {
            added: after.difference(&before).cloned().collect(),
            removed: before.difference(&after).cloned().collect(),
            changed: Vec::new(),
        };
        let mut refusals = Vec::new();
        for new in &next.pools {
            let Some(old) = active.pools.iter().find(|p| p.name == new.name) else {
                continue;
            };
            let change = PoolChange::new(old, new);
            if let Some(refusal) = &change.refusal {
                refusals.push(refusal.clone());
            } else if !change.is_empty() {
                plan.changed.push((new.name.clone(), change));
            }
        }
        if refusals.is_empty() {
            Ok(plan)
        } else {
            Err(refusals)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// One line per pool, for the log and the admin answer.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.extend(self.added.iter().map(|p| format!("pool '{p}' added")));
        lines.extend(self.removed.iter().map(|p| format!("pool '{p}' removed")));
        for (pool, change) in &self.changed {
            lines.push(format!("pool '{pool}': {}", change.what.join("; ")));
        }
        lines
    }
}

/// What changes in one pool.
#[derive(Debug, Default)]
pub struct PoolChange {
    /// What changes, a few words each (`timeout`, `replicas of s1: +a -b`).
    pub what: Vec<String>,
    /// Why it cannot be applied: keys of a sharded pool would move.
    pub refusal: Option<String>,
    /// With `keys_may_move`: the share of keys that move (0.0..=1.0).
    pub moved: Option<f64>,
    /// Where the pool listens changed (listeners are reopened).
    pub listen: bool,
}

impl PoolChange {
    pub fn new(old: &PoolConfig, new: &PoolConfig) -> PoolChange {
        let mut change = PoolChange {
            what: settings_changed(old, new),
            listen: old.listeners() != new.listeners(),
            ..PoolChange::default()
        };
        if old.cluster && new.cluster {
            // Seeds place no keys: the cluster's slot map does.
            if old.servers != new.servers {
                change.what.push("seeds (servers)".into());
            }
            return change;
        }
        change.what.extend(servers_changed(old, new));
        change.what.extend(replicas_changed(old, new));
        let placement = placement_changes(old, new);
        if placement.is_empty() {
            return change;
        }
        if new.keys_may_move {
            let moved = moved_share(old, new);
            change.moved = Some(moved);
            change.what.push(format!(
                "key placement ({}): {:.1}% of keys move (keys_may_move)",
                placement.join(", "),
                moved * 100.0
            ));
        } else {
            change.refusal = Some(format!(
                "pool '{}': refused, keys would move ({}). Their data would not \
                 follow them: reads would miss and writes would split old and new \
                 values. Move them online with `shardgate reshard start` (the \
                 file's placement becomes the target), or set `keys_may_move: true` \
                 if the pool is a cache.",
                new.name,
                placement.join(", ")
            ));
        }
        change
    }

    pub fn is_empty(&self) -> bool {
        self.what.is_empty() && !self.listen
    }
}

/// Settings that change, by name (those that need no closer look).
fn settings_changed(old: &PoolConfig, new: &PoolConfig) -> Vec<String> {
    // Each field is compared below or by the placement, server and
    // replica checks: a field added to PoolConfig that no reload looks at
    // does not compile.
    let PoolConfig {
        name: _,
        listen: _,
        hash: _,
        hash_tag: _,
        distribution: _,
        cluster: _,
        timeout: _,
        backlog: _,
        preconnect: _,
        redis_auth: _,
        redis_db: _,
        databases: _,
        password: _,
        users: _,
        auth_failures_per_second: _,
        replicas: _,
        sentinels: _,
        sentinel_auth: _,
        failover: _,
        health_check: _,
        discover_replicas: _,
        keys_may_move: _,
        coordination: _,
        coordination_auth: _,
        reshard: _,
        shard_down: _,
        read_policy: _,
        read_balance: _,
        max_replica_lag: _,
        replica_fallback: _,
        read_your_writes: _,
        readonly_listen: _,
        tls_listen: _,
        tls_readonly_listen: _,
        tls: _,
        backend_tls: _,
        sentinel_tls: _,
        cluster_face: _,
        slowlog_threshold: _,
        slowlog_max_len: _,
        server_connections: _,
        client_connections: _,
        auto_eject_hosts: _,
        server_retry_timeout: _,
        server_failure_limit: _,
        tcpkeepalive: _,
        servers: _,
        connect_timeout: _,
        reconnect_backoff_max: _,
        client_output_limit: _,
        max_request_bytes: _,
    } = old;
    let mut what = Vec::new();
    macro_rules! compare {
        ($($field:ident),* $(,)?) => {
            $( if old.$field != new.$field { what.push(stringify!($field).to_string()); } )*
        };
    }
    compare!(
        listen,
        readonly_listen,
        tls_listen,
        tls_readonly_listen,
        tls,
        backend_tls,
        sentinel_tls,
        cluster_face,
        timeout,
        backlog,
        preconnect,
        redis_auth,
        redis_db,
        databases,
        password,
        users,
        auth_failures_per_second,
        sentinels,
        sentinel_auth,
        failover,
        health_check,
        discover_replicas,
        keys_may_move,
        coordination,
        coordination_auth,
        reshard,
        shard_down,
        read_policy,
        read_balance,
        max_replica_lag,
        replica_fallback,
        read_your_writes,
        slowlog_threshold,
        slowlog_max_len,
        server_connections,
        client_connections,
        auto_eject_hosts,
        server_retry_timeout,
        server_failure_limit,
        tcpkeepalive,
        connect_timeout,
        reconnect_backoff_max,
        client_output_limit,
        max_request_bytes,
    );
    what
}

/// Servers that keep their name but change address (no key moves).
fn servers_changed(old: &PoolConfig, new: &PoolConfig) -> Vec<String> {
    let mut what = Vec::new();
    for server in &new.servers {
        let name = server.ring_name();
        let before = old.servers.iter().find(|s| s.ring_name() == name);
        if let Some(before) = before.filter(|b| b.addr != server.addr || b.host != server.host) {
            what.push(format!(
                "server '{name}' moves from {}:{} to {}:{}",
                before.host, before.port, server.host, server.port
            ));
        }
    }
    what
}

/// Replicas added to or removed from each server.
fn replicas_changed(old: &PoolConfig, new: &PoolConfig) -> Vec<String> {
    let mut what = Vec::new();
    for (server, replicas) in new.servers.iter().zip(&new.replicas) {
        let name = server.ring_name();
        let before: BTreeSet<String> = old
            .servers
            .iter()
            .zip(&old.replicas)
            .find(|(s, _)| s.ring_name() == name)
            .map(|(_, r)| r.iter().map(|n| n.label()).collect())
            .unwrap_or_default();
        let after: BTreeSet<String> = replicas.iter().map(|n| n.label()).collect();
        let added: Vec<_> = after.difference(&before).map(|l| format!("+{l}")).collect();
        let removed: Vec<_> = before.difference(&after).map(|l| format!("-{l}")).collect();
        if !added.is_empty() || !removed.is_empty() {
            what.push(format!(
                "replicas of '{name}': {}",
                added
                    .into_iter()
                    .chain(removed)
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
    }
    what
}

/// What changes where keys live. A pool of one server on both sides has
/// no placement to change (every key is on its one server).
fn placement_changes(old: &PoolConfig, new: &PoolConfig) -> Vec<String> {
    let mut what = Vec::new();
    // A cluster pool's keys are where the cluster puts them, whatever the
    // number of seeds: turning it on or off changes where keys are.
    if old.cluster != new.cluster {
        what.push(format!("cluster: {} -> {}", old.cluster, new.cluster));
    }
    if old.servers.len() <= 1 && new.servers.len() <= 1 {
        return what;
    }
    let ring = |c: &PoolConfig| -> Vec<(String, u32)> {
        c.servers
            .iter()
            .map(|s| (s.ring_name(), s.weight))
            .collect()
    };
    let (before, after) = (ring(old), ring(new));
    let names = |r: &[(String, u32)]| r.iter().map(|(n, _)| n.clone()).collect::<BTreeSet<_>>();
    let (was, is) = (names(&before), names(&after));
    let added: Vec<_> = is.difference(&was).cloned().collect();
    let removed: Vec<_> = was.difference(&is).cloned().collect();
    if !added.is_empty() {
        what.push(format!("servers added: {}", added.join(", ")));
    }
    if !removed.is_empty() {
        what.push(format!("servers removed: {}", removed.join(", ")));
    }
    for (name, weight) in &after {
        if let Some((_, w)) = before.iter().find(|(n, w)| n == name && w != weight) {
            what.push(format!("weight of '{name}': {w} -> {weight}"));
        }
    }
    if added.is_empty() && removed.is_empty() && what.is_empty() && before != after {
        what.push("server order".into());
    }
    if old.hash != new.hash {
        what.push(format!("hash: {} -> {}", old.hash.name(), new.hash.name()));
    }
    if old.distribution != new.distribution {
        what.push(format!(
            "distribution: {} -> {}",
            old.distribution.name(),
            new.distribution.name()
        ));
    }
    if old.hash_tag != new.hash_tag {
        what.push("hash_tag".into());
    }
    what
}

/// The share of [`MOVE_SAMPLE`] sample keys whose server (by ring name)
/// differs between the two configurations.
fn moved_share(old: &PoolConfig, new: &PoolConfig) -> f64 {
    let before = Topology::from_config(&Arc::new(old.clone()));
    let after = Topology::from_config(&Arc::new(new.clone()));
    let owner = |t: &Topology, key: &[u8]| {
        t.shard_of(key)
            .and_then(|i| t.shards.get(i))
            .map(|s| s.name.clone())
    };
    let moved = (0..MOVE_SAMPLE)
        .filter(|i| {
            let key = format!("key:{i}");
            owner(&before, key.as_bytes()) != owner(&after, key.as_bytes())
        })
        .count();
    moved as f64 / f64::from(MOVE_SAMPLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pools: &str) -> Config {
        match crate::config::parse(pools) {
            Ok(config) => config,
            Err(problems) => panic!("{problems:?}"),
        }
    }

    const TWO: &str = "a:\n  listen: 127.0.0.1:1\n  servers:\n    - 127.0.0.1:7001:1 s1\n    - 127.0.0.1:7002:1 s2\n";

    #[test]
    fn settings_and_replicas_are_listed_and_applied() {
        let next = format!("{TWO}  timeout: 900\n  replicas:\n    s1: [127.0.0.1:7003]\n");
        let plan = Plan::new(&config(TWO), &config(&next)).expect("no key moves");
        assert_eq!(
            plan.summary(),
            vec!["pool 'a': timeout; replicas of 's1': +127.0.0.1:7003"]
        );
    }

    #[test]
    fn a_named_server_may_move_an_unnamed_one_may_not() {
        let moved = TWO.replace("7001:1 s1", "7009:1 s1");
        let plan = Plan::new(&config(TWO), &config(&moved)).expect("a name keeps its keys");
        assert_eq!(
            plan.summary(),
            vec!["pool 'a': server 's1' moves from 127.0.0.1:7001 to 127.0.0.1:7009"]
        );
        let unnamed = TWO.replace(" s1\n", "\n");
        let moved = unnamed.replace("7001:1", "7009:1");
        let refused = Plan::new(&config(&unnamed), &config(&moved)).expect_err("keys move");
        assert!(refused[0].contains("pool 'a': refused, keys would move"));
        assert!(refused[0].contains("servers added: 127.0.0.1:7009"));
    }

    #[test]
    fn turning_a_one_seed_pool_into_a_cluster_pool_is_refused() {
        let one = "a:\n  listen: 127.0.0.1:1\n  servers:\n    - 127.0.0.1:7001:1\n";
        let cluster = format!("{one}  cluster: true\n");
        let refused = Plan::new(&config(one), &config(&cluster)).expect_err("keys move");
        assert!(refused[0].contains("cluster: false -> true"), "{refused:?}");
    }

    #[test]
    fn weights_hash_and_new_servers_are_refused_unless_keys_may_move() {
        let weighted = TWO.replace("7002:1 s2", "7002:2 s2");
        let refused = Plan::new(&config(TWO), &config(&weighted)).expect_err("keys move");
        assert!(refused[0].contains("weight of 's2': 1 -> 2"), "{refused:?}");
        let hashed = format!("{TWO}  hash: murmur\n");
        let refused = Plan::new(&config(TWO), &config(&hashed)).expect_err("keys move");
        assert!(
            refused[0].contains("hash: fnv1a_64 -> murmur"),
            "{refused:?}"
        );
        let grown = format!("{TWO}    - 127.0.0.1:7003:1 s3\n  keys_may_move: true\n");
        let plan = Plan::new(&config(TWO), &config(&grown)).expect("a cache may move keys");
        let (_, change) = &plan.changed[0];
        // ketama: a third server takes about a third of the keys.
        let moved = change.moved.expect("measured");
        assert!((0.2..0.45).contains(&moved), "{moved}");
    }

    #[test]
    fn a_cluster_pool_may_change_its_seeds_but_not_stop_being_a_cluster() {
        let cluster =
            "c:\n  listen: 127.0.0.1:1\n  cluster: true\n  servers:\n    - 127.0.0.1:7001:1\n";
        let more = format!("{cluster}    - 127.0.0.1:7002:1\n");
        let plan = Plan::new(&config(cluster), &config(&more)).expect("seeds place no keys");
        assert_eq!(plan.summary(), vec!["pool 'c': seeds (servers)"]);
        let plain = more.replace("  cluster: true\n", "");
        let refused = Plan::new(&config(&more), &config(&plain)).expect_err("keys move");
        assert!(refused[0].contains("cluster: true -> false"), "{refused:?}");
    }

    #[test]
    fn pools_added_and_removed_are_named() {
        let other = "b:\n  listen: 127.0.0.1:2\n  servers:\n    - 127.0.0.1:7001:1\n";
        let plan = Plan::new(&config(TWO), &config(other)).expect("plan");
        assert_eq!(plan.added, vec!["b"]);
        assert_eq!(plan.removed, vec!["a"]);
    }
}
