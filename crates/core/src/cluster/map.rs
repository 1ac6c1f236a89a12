//! A Redis Cluster's slot map as one node reports it (`CLUSTER SHARDS`, or
//! `CLUSTER SLOTS` before 7.0), and the topology snapshot it becomes.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use keyspace::{Distribution, SLOT_COUNT};
use resp::Value;

use crate::config::PoolConfig;
use crate::topology::{NodeAddr, Shard, Topology};

/// How a node reports another's health (`CLUSTER SHARDS`' `health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeHealth {
    Online,
    /// Loading its data set (a replica after a full sync): not fit to serve.
    Loading,
    Failed,
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: Arc<str>,
    pub addr: NodeAddr,
    pub health: NodeHealth,
}

/// One primary and its replicas, and the slots the primary serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterShard {
    /// None while a shard's slots have no primary (the reply listed none).
    pub primary: Option<ClusterNode>,
    pub replicas: Vec<ClusterNode>,
}

/// Which of a node's ports the proxy dials: `port`, or `tls-port` when the
/// pool has `backend_tls` (`CLUSTER SHARDS` lists both; a TLS-only node
/// has no `port`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodePort {
    Plain,
    Tls,
}

/// A slot map reply that does not read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// Not the shape the command's reply has.
    #[error("{0}")]
    Shape(&'static str),
    #[error("slot range {start}-{end} is out of bounds")]
    OutOfBounds { start: u16, end: u16 },
}

/// The cluster's shards, and which one serves each slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    pub shards: Vec<ClusterShard>,
    /// Nodes the cluster lists in shards that serve no slot yet (a primary
    /// just added, about to receive its first slots), in address order: a
    /// redirection to one is followed, though no request is routed there.
    pub spares: Vec<SocketAddr>,
    /// `owners[slot]`: index into `shards`, or [`NO_OWNER`].
    owners: Box<[u16]>,
}

/// A slot no shard serves.
const NO_OWNER: u16 = u16::MAX;

impl SlotMap {
    fn empty() -> SlotMap {
        SlotMap {
            shards: Vec::new(),
            spares: Vec::new(),
            owners: vec![NO_OWNER; usize::from(SLOT_COUNT)].into_boxed_slice(),
        }
    }

    /// The shard serving `slot`.
    pub fn owner(&self, slot: u16) -> Option<usize> {
        let owner = *self.owners.get(usize::from(slot))?;
        (owner != NO_OWNER).then_some(usize::from(owner))
    }

    /// The address of the primary serving `slot`.
    pub fn primary_of(&self, slot: u16) -> Option<SocketAddr> {
        let shard = self.shards.get(self.owner(slot)?)?;
        shard.primary.as_ref().map(|p| p.addr.addr)
    }

    /// Whether both maps give every slot the same primary: what two
    /// nodes must agree on before a changed map is believed (health
    /// flags may differ between two nodes' views for a moment).
    pub fn same_placement(&self, other: &SlotMap) -> bool {
        (0..SLOT_COUNT).all(|slot| self.primary_of(slot) == other.primary_of(slot))
    }

    /// Every node, primaries first.
    pub fn nodes(&self) -> impl Iterator<Item = &ClusterNode> {
        let primaries = self.shards.iter().filter_map(|s| s.primary.as_ref());
        primaries.chain(self.shards.iter().flat_map(|s| s.replicas.iter()))
    }

    /// Slots some shard serves.
    pub fn served_slots(&self) -> usize {
        self.owners.iter().filter(|&&o| o != NO_OWNER).count()
    }

    /// This map with `slot` served by the shard whose primary is `addr`
    /// (what a `MOVED` says); None when no shard's primary is `addr`.
    pub fn with_moved(&self, slot: u16, addr: SocketAddr) -> Option<SlotMap> {
        let shard = self
            .shards
            .iter()
            .position(|s| s.primary.as_ref().is_some_and(|p| p.addr.addr == addr))?;
        let mut map = self.clone();
        *map.owners.get_mut(usize::from(slot))? = u16::try_from(shard).ok()?;
        Some(map)
    }

    /// The topology snapshot of this map: a shard per cluster shard, named
    /// after its primary, which serves its slots' writes; replicas
    /// reported `online` serve reads as the pool's read policy says.
    ///
    /// A primary the cluster reports failed stays the shard's master:
    /// only the cluster promotes, and until it does the data path finds
    /// the promoted replica itself (see `session::redirect`), by trying
    /// the shard's `standby` replicas: every one not reported failed,
    /// `loading` ones too (Redis 7.0 reports a replica whose replication
    /// offset is still 0 as `loading`, as on an idle cluster).
    pub fn topology(&self, config: &Arc<PoolConfig>, version: u64) -> Topology {
        let shards = self
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let primary = s.primary.as_ref();
                Shard {
                    name: primary.map_or_else(
                        || format!("no-primary-{i}").into(),
                        |p| p.addr.label.clone(),
                    ),
                    weight: 1,
                    master: primary.map(|p| p.addr.clone()),
                    replicas: (s.replicas.iter())
                        .filter(|r| r.health == NodeHealth::Online)
                        .map(|r| r.addr.clone())
                        .collect(),
                    standby: (s.replicas.iter())
                        .filter(|r| r.health != NodeHealth::Failed)
                        .map(|r| r.addr.clone())
                        .collect(),
                    down: primary
                        .is_none()
                        .then(|| "the cluster lists no primary for these slots".into()),
                    ejected: false,
                }
            })
            .collect();
        let owners: Vec<Option<usize>> = (0..SLOT_COUNT).map(|slot| self.owner(slot)).collect();
        Topology::with_distribution(
            config,
            version,
            shards,
            Distribution::from_slot_owners(&owners),
        )
    }

    /// Parses `CLUSTER SHARDS` as asked of `asked` (RESP2 flat arrays or
    /// RESP3 maps), each node at the port `dial` names. A node that does
    /// not know its own address reports an empty one: it is `asked`'s.
    pub fn from_shards(
        reply: &Value,
        asked: SocketAddr,
        dial: NodePort,
    ) -> Result<SlotMap, MapError> {
        let shards = (reply.as_array()).ok_or(MapError::Shape("CLUSTER SHARDS: not an array"))?;
        let mut map = SlotMap::empty();
        for shard in shards {
            let fields =
                pairs(shard).ok_or(MapError::Shape("CLUSTER SHARDS: a shard is not a map"))?;
            let slots = field(&fields, "slots")
                .and_then(Value::as_array)
                .unwrap_or_default();
            let nodes = field(&fields, "nodes")
                .and_then(Value::as_array)
                .unwrap_or_default();
            let mut primary = None;
            let mut replicas = Vec::new();
            for node in nodes {
                let fields =
                    pairs(node).ok_or(MapError::Shape("CLUSTER SHARDS: a node is not a map"))?;
                let text = |name| field(&fields, name).and_then(as_text);
                let ip = text("ip").unwrap_or_default();
                let number = |name| field(&fields, name).and_then(as_number).filter(|&p| p != 0);
                // A TLS pool dials `tls-port`; a cluster that lists only
                // one port (no `tls-cluster`) is dialled there.
                let port = match dial {
                    NodePort::Plain => number("port"),
                    NodePort::Tls => number("tls-port").or_else(|| number("port")),
                }
                .unwrap_or(0);
                let Some(addr) = node_addr(&ip, port, asked) else {
                    // No such port (a node without plaintext, or without
                    // TLS, as the pool dials), or an address this proxy
                    // cannot reach. Not routable.
                    continue;
                };
                let health = match text("health").as_deref() {
                    Some("online") => NodeHealth::Online,
                    Some("loading") => NodeHealth::Loading,
                    _ => NodeHealth::Failed,
                };
                let node = ClusterNode {
                    id: text("id").unwrap_or_default().into(),
                    addr,
                    health,
                };
                if text("role").as_deref() == Some("master") {
                    primary = Some(node);
                } else {
                    replicas.push(node);
                }
            }
            // A shard without slots owns no keys: a failed primary whose
            // replica took its slots over is listed as one, and commands
            // sent to every shard (DBSIZE, FLUSHALL) must not go there.
            if slots.is_empty() {
                map.spares
                    .extend((primary.iter().chain(&replicas)).map(|node| node.addr.addr));
                continue;
            }
            let index = map.shards.len();
            map.assign(slots.chunks(2), index)?;
            map.shards.push(ClusterShard { primary, replicas });
        }
        Ok(map.normalized())
    }

    /// Parses `CLUSTER SLOTS` (servers before 7.0): ranges, each with its
    /// primary then its replicas; health is not reported (online assumed).
    /// Ranges served by the same primary form one shard.
    pub fn from_slots(reply: &Value, asked: SocketAddr) -> Result<SlotMap, MapError> {
        let ranges = (reply.as_array()).ok_or(MapError::Shape("CLUSTER SLOTS: not an array"))?;
        let mut map = SlotMap::empty();
        for range in ranges {
            let items = range
                .as_array()
                .ok_or(MapError::Shape("CLUSTER SLOTS: a range is not an array"))?;
            let [start, end, nodes @ ..] = items else {
                return Err(MapError::Shape("CLUSTER SLOTS: a range without its bounds"));
            };
            let mut nodes = nodes.iter().filter_map(|node| {
                let fields = node.as_array()?;
                let ip = fields.first().and_then(as_text).unwrap_or_default();
                let port = fields.get(1).and_then(as_number)?;
                Some(ClusterNode {
                    addr: node_addr(&ip, port, asked)?,
                    id: fields.get(2).and_then(as_text).unwrap_or_default().into(),
                    health: NodeHealth::Online,
                })
            });
            let Some(primary) = nodes.next() else {
                continue;
            };
            let replicas: Vec<ClusterNode> = nodes.collect();
            let index = match (map.shards.iter())
                .position(|s| s.primary.as_ref().is_some_and(|p| p.addr == primary.addr))
            {
                Some(index) => index,
                None => {
                    map.shards.push(ClusterShard {
                        primary: Some(primary),
                        replicas,
                    });
                    map.shards.len() - 1
                }
            };
            map.assign(
                std::iter::once([start.clone(), end.clone()].as_slice()),
                index,
            )?;
        }
        Ok(map.normalized())
    }

    /// Puts shards in primary-address order and replicas in address
    /// order: each node lists them in its own order, and a map must
    /// compare equal whichever node gave it (else every refresh would
    /// look like a change, asking a witness and publishing for nothing).
    fn normalized(mut self) -> SlotMap {
        self.spares.sort_unstable();
        self.spares.dedup();
        for shard in &mut self.shards {
            shard.replicas.sort_by_key(|r| r.addr.addr);
        }
        let mut order: Vec<usize> = (0..self.shards.len()).collect();
        order.sort_by_key(|&i| {
            self.shards
                .get(i)
                .and_then(|s| s.primary.as_ref())
                .map(|p| p.addr.addr)
        });
        // Old shard index -> new one.
        let mut new_index = vec![NO_OWNER; order.len()];
        for (new, &old) in order.iter().enumerate() {
            if let (Some(slot), Ok(new)) = (new_index.get_mut(old), u16::try_from(new)) {
                *slot = new;
            }
        }
        for owner in self.owners.iter_mut() {
            if let Some(&new) = new_index.get(usize::from(*owner)) {
                *owner = new;
            }
        }
        let mut shards: Vec<Option<ClusterShard>> = self.shards.into_iter().map(Some).collect();
        self.shards = order
            .iter()
            .filter_map(|&i| shards.get_mut(i).and_then(Option::take))
            .collect();
        self
    }

    /// Gives `shard` every `[start, end]` range.
    fn assign<'a>(
        &mut self,
        ranges: impl Iterator<Item = &'a [Value]>,
        shard: usize,
    ) -> Result<(), MapError> {
        let shard = u16::try_from(shard).map_err(|_| MapError::Shape("too many shards"))?;
        for range in ranges {
            let (Some(start), Some(end)) = (
                range.first().and_then(as_number),
                range.get(1).and_then(as_number),
            ) else {
                return Err(MapError::Shape("a slot range is not two numbers"));
            };
            if start > end || end >= SLOT_COUNT {
                return Err(MapError::OutOfBounds { start, end });
            }
            for slot in start..=end {
                if let Some(owner) = self.owners.get_mut(usize::from(slot)) {
                    *owner = shard;
                }
            }
        }
        Ok(())
    }
}

/// `ip:port` as a node address; an empty or `?` ip is `asked`'s.
fn node_addr(ip: &str, port: u16, asked: SocketAddr) -> Option<NodeAddr> {
    if port == 0 {
        return None;
    }
    let ip: IpAddr = match ip {
        "" | "?" => asked.ip(),
        ip => ip.parse().ok()?,
    };
    let addr = SocketAddr::new(ip, port);
    Some(NodeAddr::new(addr, addr.to_string()))
}

/// A map's `(name, value)` pairs: RESP3 maps, or RESP2's flat arrays.
fn pairs(value: &Value) -> Option<Vec<(&Value, &Value)>> {
    if let Some(map) = value.as_map() {
        return Some(map.iter().map(|(k, v)| (k, v)).collect());
    }
    let items = value.as_array()?;
    Some(
        items
            .chunks(2)
            .filter_map(|p| Some((p.first()?, p.get(1)?)))
            .collect(),
    )
}

fn field<'a>(pairs: &[(&Value, &'a Value)], name: &str) -> Option<&'a Value> {
    (pairs.iter())
        .find(|(k, _)| k.as_bytes() == Some(name.as_bytes()))
        .map(|(_, v)| *v)
}

fn as_text(value: &Value) -> Option<String> {
    value
        .as_bytes()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

/// An integer reply, or a number written as a string.
fn as_number(value: &Value) -> Option<u16> {
    match value.as_integer() {
        Some(n) => u16::try_from(n).ok(),
        None => std::str::from_utf8(value.as_bytes()?).ok()?.parse().ok(),
    }
}

#[cfg(test)]
mod tests;
