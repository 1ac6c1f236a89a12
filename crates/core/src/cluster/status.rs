//! What the admin API, the status page and `shardgate status` show about a
//! cluster pool: its shards and nodes as the believed slot map has them
//! (roles and health as the cluster reports them; the proxy does not
//! probe cluster nodes itself).

use std::sync::Arc;

use super::map::{ClusterNode, NodeHealth, SlotMap};
use crate::topology::{Health, NodeStatus, Origin, PoolStatus, ShardStatus};

impl SlotMap {
    /// The pool's status for the admin API (`version`: the snapshot's).
    pub fn status(&self, pool: &Arc<str>, version: u64) -> PoolStatus {
        let shards = self
            .shards
            .iter()
            .map(|shard| {
                let primary = shard.primary.as_ref();
                let mut nodes: Vec<NodeStatus> =
                    primary.map(|p| node(p, true)).into_iter().collect();
                nodes.extend(shard.replicas.iter().map(|r| node(r, false)));
                ShardStatus {
                    name: primary.map_or_else(|| "no primary".into(), |p| p.addr.label.clone()),
                    master: primary.map(|p| p.addr.label.clone()),
                    down: match primary.map(|p| p.health) {
                        None => Some("the cluster lists no primary for these slots".into()),
                        Some(NodeHealth::Failed) => {
                            Some("the cluster reports the primary failed".into())
                        }
                        Some(_) => None,
                    },
                    ejected: false,
                    nodes,
                }
            })
            .collect();
        PoolStatus {
            pool: pool.clone(),
            failover: "cluster".into(),
            version,
            shards,
        }
    }
}

fn node(node: &ClusterNode, primary: bool) -> NodeStatus {
    let health = match node.health {
        NodeHealth::Online | NodeHealth::Loading => Health::Up,
        NodeHealth::Failed => Health::Down,
    };
    NodeStatus {
        addr: node.addr.label.clone(),
        socket: node.addr.addr,
        is_master: primary,
        role: if primary { "master" } else { "replica" },
        health,
        busy: false,
        origin: Origin::Discovered,
        link_up: None,
        lag_seconds: None,
        behind_bytes: None,
        offset: 0,
        probe_latency_us: None,
        // Cluster pools read from primaries (docs/cluster.md).
        serves_reads: false,
        excluded: (!primary).then(|| match node.health {
            NodeHealth::Loading => {
                "loading (as the cluster reports it); cluster pools read from primaries".to_string()
            }
            _ => "cluster pools read from primaries".to_string(),
        }),
        last_error: None,
    }
}
