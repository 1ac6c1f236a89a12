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
    /// Cluster pools: every replica the cluster may promote (`loading`
    /// ones too), tried while the master is unreachable. Empty otherwise.
    pub standby: Vec<NodeAddr>,
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
    placement: Placement,
    /// The placement this snapshot was built with.
    key_placement: KeyPlacement,
}

/// Where keys live: one ring, or two while keys move from one to the other.
#[derive(Debug)]
enum Placement {
    /// Every shard is on the ring, in order.
    Stable {
        hash_tag: HashTag,
        distribution: Distribution,
    },
    Moving(Box<Move>),
}

/// Keys moving from one placement to another (see `docs/resharding.md`).
#[derive(Debug)]
pub struct Move {
    /// Where keys were, and where they go (shard indexes of this snapshot).
    from: Ring,
    to: Ring,
    /// An abort: keys go back from `to` to `from`.
    pub back: bool,
}

/// One placement over some of the snapshot's shards.
#[derive(Debug)]
struct Ring {
    hash_tag: HashTag,
    distribution: Distribution,
    /// Ring node -> shard index.
    shards: Vec<usize>,
}

impl Ring {
    /// A ring over the snapshot's shards named by `placement`, in its order.
    fn build(placement: &PlacementSpec, shards: &[Shard]) -> Ring {
        let mut nodes = Vec::with_capacity(placement.servers.len());
        let mut indexes = Vec::with_capacity(placement.servers.len());
        for (name, weight) in &placement.servers {
            let index = shards.iter().position(|s| &*s.name == name.as_str());
            nodes.push(RingNode {
                name: name.clone(),
                weight: *weight,
                live: index
                    .and_then(|i| shards.get(i))
                    .is_some_and(|s| !s.ejected),
            });
            indexes.push(index.unwrap_or(usize::MAX));
        }
        Ring {
            hash_tag: placement.hash_tag.clone(),
            distribution: Distribution::build(placement.distribution, placement.hash, &nodes),
            shards: indexes,
        }
    }

    #[inline]
    fn owner(&self, key: &[u8]) -> Option<usize> {
        if self.shards.len() == 1 {
            return self.shards.first().copied().filter(|&s| s != usize::MAX);
        }
        let node = self.distribution.locate(self.hash_tag.apply(key))?;
        self.shards.get(node).copied().filter(|&s| s != usize::MAX)
    }
}

/// A pool's key placement as its configuration gives it: the servers on
/// the ring (ring name, weight), the hash, the distribution and the tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementSpec {
    pub servers: Vec<(String, u32)>,
    pub hash: keyspace::HashFunction,
    pub distribution: keyspace::DistributionKind,
    pub hash_tag: HashTag,
}

impl PlacementSpec {
    pub fn of(config: &PoolConfig) -> PlacementSpec {
        PlacementSpec {
            servers: (config.servers.iter())
                .map(|s| (s.ring_name(), s.weight))
                .collect(),
            hash: config.hash,
            distribution: config.distribution,
            hash_tag: config.hash_tag.clone(),
        }
    }
}

/// Where a pool's keys are: moving between two placements (from, to,
/// back) or not, and the epoch that changes whenever they start or stop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPlacement {
    pub moving: Option<(PlacementSpec, PlacementSpec, bool)>,
    /// Requests on moving keys are refused (a migration's first phase:
    /// another proxy may still route them to their source).
    pub refuse: bool,
    pub epoch: u64,
}

impl Topology {
    /// A snapshot of `shards` with keys placed as `placement` says.
    pub fn placed(
        config: &Arc<PoolConfig>,
        version: u64,
        shards: Vec<Shard>,
        placement: &KeyPlacement,
    ) -> Topology {
        let mut topology = match &placement.moving {
            Some((from, to, back)) => {
                Topology::build_moving(config, version, shards, from, to, *back)
            }
            None => Topology::build(config, version, shards),
        };
        topology.key_placement = placement.clone();
        topology
    }

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
                standby: Vec::new(),
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
            placement: Placement::Stable {
                hash_tag: config.hash_tag.clone(),
                distribution,
            },
            key_placement: KeyPlacement::default(),
        }
    }

    /// A snapshot whose keys are placed by `distribution` over `shards` (a
    /// Redis Cluster's slot map: see `cluster::SlotMap::topology`), with
    /// the pool's hash tag.
    pub fn with_distribution(
        config: &Arc<PoolConfig>,
        version: u64,
        shards: Vec<Shard>,
        distribution: Distribution,
    ) -> Topology {
        Topology {
            version,
            config: config.clone(),
            shards,
            placement: Placement::Stable {
                hash_tag: config.hash_tag.clone(),
                distribution,
            },
            key_placement: KeyPlacement::default(),
        }
    }

    /// This snapshot with placement epoch `epoch` (cluster pools: it
    /// changes whenever a slot changes hands, so transactions and SCAN
    /// cursors begun under another map are refused).
    pub fn with_placement_epoch(mut self, epoch: u64) -> Topology {
        self.key_placement.epoch = epoch;
        self
    }

    /// Whether keys must share a Redis Cluster slot (not only a shard) to
    /// go in one request: a cluster node refuses keys of two slots.
    #[inline]
    pub fn is_cluster(&self) -> bool {
        self.config.cluster
    }

    /// The shard serving a Redis Cluster `slot`, for slot-placed pools.
    pub fn shard_of_slot(&self, slot: u16) -> Option<usize> {
        match &self.placement {
            Placement::Stable { distribution, .. } => distribution.slot_owner(slot),
            Placement::Moving(_) => None,
        }
    }

    /// A snapshot while keys move from placement `from` to `to` (`back`:
    /// an abort, moving them back). `shards` holds every shard of both.
    pub fn build_moving(
        config: &Arc<PoolConfig>,
        version: u64,
        shards: Vec<Shard>,
        from: &PlacementSpec,
        to: &PlacementSpec,
        back: bool,
    ) -> Topology {
        let placement = Placement::Moving(Box::new(Move {
            from: Ring::build(from, &shards),
            to: Ring::build(to, &shards),
            back,
        }));
        Topology {
            version,
            config: config.clone(),
            shards,
            placement,
            key_placement: KeyPlacement::default(),
        }
    }

    /// Index of the shard requests for `key` go to (for a moving key, its
    /// destination: the request pulls it there first), or None when every
    /// shard is ejected.
    #[inline]
    pub fn shard_of(&self, key: &[u8]) -> Option<usize> {
        match &self.placement {
            Placement::Stable {
                hash_tag,
                distribution,
            } => {
                if self.shards.len() == 1 {
                    // twemproxy's short-circuit: a one-server pool needs no hash.
                    return (!self.shards.first()?.ejected).then_some(0);
                }
                distribution.locate(hash_tag.apply(key))
            }
            Placement::Moving(m) if m.back => m.from.owner(key),
            Placement::Moving(m) => m.to.owner(key),
        }
    }

    /// While keys move: `(source, destination)` when `key` is one of them.
    #[inline]
    pub fn moving(&self, key: &[u8]) -> Option<(usize, usize)> {
        let Placement::Moving(m) = &self.placement else {
            return None;
        };
        let (from, to) = (m.from.owner(key)?, m.to.owner(key)?);
        match (from == to, m.back) {
            (true, _) => None,
            (false, false) => Some((from, to)),
            (false, true) => Some((to, from)),
        }
    }

    /// Where keys are, as given to [`Topology::placed`].
    pub fn key_placement(&self) -> KeyPlacement {
        self.key_placement.clone()
    }

    /// Changes whenever keys start or stop moving (a migration started,
    /// aborted or finished): a transaction begun under another epoch is
    /// not run, since its keys may have moved meanwhile.
    #[inline]
    pub fn placement_epoch(&self) -> u64 {
        self.key_placement.epoch
    }

    /// Whether requests on moving keys are refused (see
    /// [`KeyPlacement::refuse`]) rather than pulled.
    #[inline]
    pub fn refuses_moving_keys(&self) -> bool {
        self.key_placement.refuse
    }

    /// Whether keys are moving in this snapshot.
    #[inline]
    pub fn is_moving(&self) -> bool {
        matches!(self.placement, Placement::Moving(_))
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Shards that own keys (not ejected).
    pub fn live_shards(&self) -> impl Iterator<Item = (usize, &Shard)> {
        self.shards.iter().enumerate().filter(|(_, s)| !s.ejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(servers: &[&str], extra: &str) -> PoolConfig {
        let mut yaml = format!("p:\n  listen: 127.0.0.1:1\n{extra}  servers:\n");
        for s in servers {
            yaml.push_str(&format!("    - {s}\n"));
        }
        crate::config::parse(&yaml).expect("config").pools.remove(0)
    }

    fn shards_of(config: &PoolConfig) -> Vec<Shard> {
        Topology::from_config(&Arc::new(config.clone())).shards
    }

    #[test]
    fn while_keys_move_each_has_one_source_and_one_destination() {
        let from = config(
            &[
                "127.0.0.1:7001:1 a",
                "127.0.0.1:7002:1 b",
                "127.0.0.1:7003:1 c",
            ],
            "",
        );
        let to = config(
            &[
                "127.0.0.1:7001:1 a",
                "127.0.0.1:7002:1 b",
                "127.0.0.1:7003:1 c",
                "127.0.0.1:7004:1 d",
            ],
            "",
        );
        let union = Arc::new(to.clone());
        let (a, b) = (PlacementSpec::of(&from), PlacementSpec::of(&to));
        let moving = Topology::build_moving(&union, 1, shards_of(&to), &a, &b, false);
        let old = Topology::from_config(&Arc::new(from));
        let new = Topology::from_config(&Arc::new(to));
        let mut moved = 0;
        for i in 0..10_000 {
            let key = format!("key:{i}");
            let key = key.as_bytes();
            let (was, will) = (old.shard_of(key), new.shard_of(key));
            assert_eq!(
                moving.shard_of(key),
                will,
                "requests go where the key will be"
            );
            match moving.moving(key) {
                Some((source, destination)) => {
                    moved += 1;
                    assert_eq!((Some(source), Some(destination)), (was, will));
                    assert_eq!(destination, 3, "ketama: new keys go to the new server only");
                }
                None => assert_eq!(was, will),
            }
        }
        // A fourth server takes about a quarter of the keys.
        assert!((2000..3000).contains(&moved), "{moved}");
        // Aborting sends them back.
        let back = Topology::build_moving(&union, 2, shards_of(&union), &a, &b, true);
        for i in 0..1000 {
            let key = format!("key:{i}");
            assert_eq!(back.shard_of(key.as_bytes()), old.shard_of(key.as_bytes()));
            if let Some((source, destination)) = moving.moving(key.as_bytes()) {
                assert_eq!(back.moving(key.as_bytes()), Some((destination, source)));
            }
        }
    }
}
