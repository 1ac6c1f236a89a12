//! The immutable topology snapshot.

use std::net::SocketAddr;
use std::sync::Arc;

use keyspace::{Distribution, HashTag, Node as RingNode};

use crate::config::PoolConfig;

/// A node's address and how errors and logs name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeAddr {
    pub addr: SocketAddr,
    /// `host:port` as configured (or as Sentinel / INFO reported it).
    pub label: Arc<str>,
}

impl NodeAddr {
    pub fn new(addr: SocketAddr, label: impl Into<Arc<str>>) -> NodeAddr {
        NodeAddr {
            addr,
            label: label.into(),
        }
    }
}

/// One shard: a replication group owning part of the keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The name on the hash ring (twemproxy's rule: the server's name, or
    /// `host:port`); with Sentinel, the Sentinel master name.
    pub name: Arc<str>,
    pub weight: u32,
    /// The node writes go to. None while the shard has no usable master;
    /// `down` says why.
    pub master: Option<NodeAddr>,
    /// Replicas fit to serve reads (healthy, linked, within the lag bound).
    pub replicas: Vec<NodeAddr>,
    /// Why there is no master, for client errors.
    pub down: Option<Arc<str>>,
    /// Taken off the ring (twemproxy's `auto_eject_hosts`): its keys hash
    /// to the other shards.
    pub ejected: bool,
}

/// A pool's shards, key placement and configuration at one moment: a
/// session routes and bounds a whole batch with one snapshot, so a reload
/// never mixes two configurations in one request.
#[derive(Debug)]
pub struct Topology {
    /// Bumped by every change; workers compare it to rebuild their views.
    pub version: u64,
    /// The configuration this snapshot was built with (a reload publishes
    /// a snapshot with the new one).
    pub config: Arc<PoolConfig>,
    pub shards: Vec<Shard>,
    hash_tag: HashTag,
    distribution: Distribution,
}

impl Topology {
    /// The initial snapshot of a pool: every configured server a shard
    /// whose master is that server.
    pub fn from_config(config: &Arc<PoolConfig>) -> Topology {
        let shards = config
            .servers
            .iter()
            .map(|s| Shard {
                name: s.ring_name().into(),
                weight: s.weight,
                master: Some(NodeAddr::new(s.addr, format!("{}:{}", s.host, s.port))),
                replicas: Vec::new(),
                down: None,
                ejected: false,
            })
            .collect();
        Topology::build(config, 0, shards)
    }

    /// A snapshot of `shards`; ejected shards own no keys.
    pub fn build(config: &Arc<PoolConfig>, version: u64, shards: Vec<Shard>) -> Topology {
        let nodes: Vec<RingNode> = shards
            .iter()
            .map(|s| RingNode {
                name: s.name.to_string(),
                weight: s.weight,
                live: !s.ejected,
            })
            .collect();
        let distribution = Distribution::build(config.distribution, config.hash, &nodes);
        Topology {
            version,
            config: config.clone(),
            shards,
            hash_tag: config.hash_tag.clone(),
            distribution,
        }
    }

    /// Index of the shard that owns `key`, or None when every shard is ejected.
    #[inline]
    pub fn shard_of(&self, key: &[u8]) -> Option<usize> {
        if self.shards.len() == 1 {
            // twemproxy's short-circuit: a one-server pool needs no hash.
            return (!self.shards.first()?.ejected).then_some(0);
        }
        self.distribution.locate(self.hash_tag.apply(key))
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Shards that own keys (not ejected).
    pub fn live_shards(&self) -> impl Iterator<Item = (usize, &Shard)> {
        self.shards.iter().enumerate().filter(|(_, s)| !s.ejected)
    }
}
