//! A reload's new configuration, taken by a running kernel: shards are
//! matched by their name on the ring, so a shard that stays keeps
//! everything it learned (health, roles, failover bookkeeping); only the
//! nodes the file lists change.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::{Action, EventKind, Kernel, ShardState};
use crate::config::{Failover, NodeConfig, PoolConfig, ServerConfig};
use crate::topology::group::{Group, NodeHealth, Origin};
use crate::topology::NodeAddr;

impl Kernel {
    /// Takes `config` (already checked: a sharded pool's ring is the same
    /// unless it may move keys). Nodes no longer listed are no longer
    /// probed and are not learned again from INFO or Sentinel; new ones
    /// are probed; a named server whose address changed becomes its
    /// shard's master at the new address. A topology with the new
    /// configuration is published even when routing did not change.
    pub fn reconfigure(&mut self, now: Instant, config: Arc<PoolConfig>) -> Vec<Action> {
        let before = self.all_nodes();
        let sentinels_changed = config.sentinels != self.config.sentinels;
        let mut old: HashMap<Arc<str>, ShardState> = std::mem::take(&mut self.shards)
            .into_iter()
            .map(|state| (state.group.name.clone(), state))
            .collect();
        let mut retired = Vec::new();
        let mut moves = Vec::new();
        let mut shards = Vec::with_capacity(config.servers.len());
        for (index, (server, replicas)) in config.servers.iter().zip(&config.replicas).enumerate() {
            let name: Arc<str> = server.ring_name().into();
            let state = match old.remove(&name) {
                Some(mut state) => {
                    state.group.weight = server.weight;
                    if sentinels_changed {
                        state.claims = super::sentinel::Claims::new(config.sentinels.len());
                    }
                    if let Some((from, to)) = relocate(&mut state, server, config.failover, now) {
                        retired.push(from.addr);
                        let message = format!(
                            "server '{name}' moved from {} to {} by a reload (its keys stay with it)",
                            from.label, to.label
                        );
                        moves.push((index, message));
                    }
                    retired.extend(redeclare(&mut state.group, replicas, now));
                    state
                }
                None => ShardState::new(new_group(server, replicas, now), config.sentinels.len()),
            };
            shards.push(state);
        }
        // Shards no longer configured (a pool whose keys may move).
        retired.extend(
            old.values()
                .flat_map(|s| s.group.nodes.iter().map(|n| n.addr.addr)),
        );
        self.shards = shards;
        self.config = config;
        self.fall = super::fall_of(&self.config);
        let after = self.all_nodes();
        // A node still listed somewhere (moved between shards, or listed
        // again) is not retired.
        self.retired
            .extend(retired.into_iter().filter(|a| !after.contains(a)));
        self.retired.retain(|a| !after.contains(a));
        for addr in before.difference(&after) {
            self.actions.push(Action::StopProbing(*addr));
        }
        for state in &self.shards {
            for node in &state.group.nodes {
                if !before.contains(&node.addr.addr) {
                    self.actions.push(Action::Probe(node.addr.clone()));
                }
            }
        }
        for (shard, message) in moves {
            self.event(Some(shard), EventKind::Master, message);
        }
        self.republish = true;
        if self.settled {
            for shard in 0..self.shards.len() {
                self.reconcile(shard, now);
            }
            self.publish(now);
        }
        std::mem::take(&mut self.actions)
    }

    /// Every node address of every shard.
    fn all_nodes(&self) -> BTreeSet<SocketAddr> {
        self.shards
            .iter()
            .flat_map(|s| s.group.nodes.iter().map(|n| n.addr.addr))
            .collect()
    }
}

/// Points the shard at its server's configured address. Returns the
/// old and new address when a named server moved.
fn relocate(
    state: &mut ShardState,
    server: &ServerConfig,
    failover: Failover,
    now: Instant,
) -> Option<(NodeAddr, NodeAddr)> {
    let to = NodeAddr::new(server.addr, format!("{}:{}", server.host, server.port));
    let group = &mut state.group;
    let from = group
        .nodes
        .iter()
        .find(|n| n.origin == Origin::Configured)
        .map(|n| n.addr.clone());
    if from.as_ref().is_some_and(|f| f.addr == to.addr) {
        return None;
    }
    match group.node_mut(to.addr) {
        Some(node) => node.origin = Origin::Configured,
        None => group
            .nodes
            .push(NodeHealth::new(to.clone(), Origin::Configured, now)),
    }
    if let Some(from) = &from {
        group.nodes.retain(|n| n.addr.addr != from.addr);
    }
    // With Sentinel the master is whoever Sentinel names; otherwise
    // the configured address is where the shard's data lives now.
    // What was learned of the node before (say, as a replica the data
    // was copied to) is stale: the operator says it is the master now.
    if failover != Failover::Sentinel {
        state.set_master(to.addr);
        state.mark_master(to.addr, now);
        state.lost_master_at = None;
        state.ejected_at = None;
    }
    from.map(|from| (from, to))
}

/// A new shard's group: its server (the master) and declared replicas.
pub(super) fn new_group(server: &ServerConfig, declared: &[NodeConfig], now: Instant) -> Group {
    let master = NodeAddr::new(server.addr, format!("{}:{}", server.host, server.port));
    let mut group = Group {
        name: server.ring_name().into(),
        weight: server.weight,
        nodes: vec![NodeHealth::new(master.clone(), Origin::Configured, now)],
        master: master.addr,
        ejected: false,
        conflict: None,
    };
    for replica in declared {
        group.add(
            NodeAddr::new(replica.addr, replica.label()),
            Origin::Declared,
            now,
        );
    }
    group
}

/// Makes the group's declared replicas `declared`: new ones join, ones no
/// longer listed leave (returned, so they are not learned again), unless
/// one is the shard's master now: it stays, as a node learned along the
/// way, until the shard has another master.
fn redeclare(group: &mut Group, declared: &[NodeConfig], now: Instant) -> Vec<SocketAddr> {
    let master = group.master;
    let mut gone = Vec::new();
    for node in &mut group.nodes {
        let listed = declared.iter().any(|d| d.addr == node.addr.addr);
        if node.origin == Origin::Declared && !listed {
            if node.addr.addr == master {
                node.origin = Origin::Discovered;
            } else {
                gone.push(node.addr.addr);
            }
        }
    }
    group.nodes.retain(|n| !gone.contains(&n.addr.addr));
    for replica in declared {
        match group.node_mut(replica.addr) {
            Some(node) if node.origin != Origin::Configured => node.origin = Origin::Declared,
            Some(_) => {}
            None => {
                group.add(
                    NodeAddr::new(replica.addr, replica.label()),
                    Origin::Declared,
                    now,
                );
            }
        }
    }
    gone
}
