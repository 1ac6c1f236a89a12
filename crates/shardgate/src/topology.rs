//! Immutable topology snapshots: which servers a pool has and how keys map
//! to them.
//!
//! A snapshot is built off the hot path and published by swapping one
//! `Arc` (see [`PoolState`]); a worker compares the pointer it holds with
//! the published one between batches and rebuilds its backend table when it
//! changed, so readers never see half an update.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use keyspace::{Distribution, HashTag, Node};

use crate::config::PoolConfig;

/// One backend server as routing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub addr: SocketAddr,
    /// How logs and client errors name it: `host:port`.
    pub label: String,
    pub ring_name: String,
    pub weight: u32,
    /// False while ejected (twemproxy's `auto_eject_hosts`).
    pub live: bool,
}

/// A pool's servers and key placement at one moment.
#[derive(Debug)]
pub struct PoolTopology {
    /// Bumped by every change; workers compare it to rebuild their tables.
    pub version: u64,
    pub servers: Vec<Server>,
    hash_tag: HashTag,
    distribution: Distribution,
}

impl PoolTopology {
    /// The initial snapshot of a pool: every server live.
    pub fn from_config(config: &PoolConfig) -> PoolTopology {
        let servers = config
            .servers
            .iter()
            .map(|s| Server {
                addr: s.addr,
                label: format!("{}:{}", s.host, s.port),
                ring_name: s.ring_name(),
                weight: s.weight,
                live: true,
            })
            .collect();
        PoolTopology::build(config, 0, servers)
    }

    /// A snapshot with the given servers (liveness included).
    pub fn build(config: &PoolConfig, version: u64, servers: Vec<Server>) -> PoolTopology {
        let nodes: Vec<Node> = servers
            .iter()
            .map(|s| Node {
                name: s.ring_name.clone(),
                weight: s.weight,
                live: s.live,
            })
            .collect();
        let distribution = Distribution::build(config.distribution, config.hash, &nodes);
        PoolTopology {
            version,
            servers,
            hash_tag: config.hash_tag.clone(),
            distribution,
        }
    }

    /// Index of the server that owns `key`, or None when no server is live.
    pub fn shard_of(&self, key: &[u8]) -> Option<usize> {
        self.distribution.locate(self.hash_tag.apply(key))
    }

    pub fn shard_count(&self) -> usize {
        self.servers.len()
    }
}

/// What all workers share about one pool.
pub struct PoolState {
    pub config: Arc<PoolConfig>,
    topology: ArcSwap<PoolTopology>,
    /// Clients connected to this pool, across workers (`client_connections`).
    pub clients: AtomicU32,
    /// Clients turned away at `client_connections`.
    pub rejected_clients: AtomicU64,
}

impl PoolState {
    pub fn new(config: PoolConfig) -> PoolState {
        let topology = PoolTopology::from_config(&config);
        PoolState {
            config: Arc::new(config),
            topology: ArcSwap::from_pointee(topology),
            clients: AtomicU32::new(0),
            rejected_clients: AtomicU64::new(0),
        }
    }

    /// The current snapshot.
    pub fn topology(&self) -> Arc<PoolTopology> {
        self.topology.load_full()
    }

    /// The current snapshot's version, without touching its reference count
    /// (cheap enough to check on every batch).
    pub fn topology_version(&self) -> u64 {
        self.topology.load().version
    }

    /// Publishes a new snapshot; workers pick it up at their next batch.
    pub fn publish(&self, topology: PoolTopology) {
        self.topology.store(Arc::new(topology));
    }

    /// Counts a new client unless the pool is full. Returns false when full.
    pub fn admit_client(&self) -> bool {
        let limit = self.config.client_connections;
        let admitted = self
            .clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (limit == 0 || n < limit).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            self.rejected_clients.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    pub fn release_client(&self) {
        self.clients.fetch_sub(1, Ordering::AcqRel);
    }
}
