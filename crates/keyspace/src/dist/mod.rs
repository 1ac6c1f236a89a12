//! Distributions: which live node owns a key.
//!
//! A [`Distribution`] is built once per topology change (off the hot path) from the pool's
//! nodes and is immutable afterwards; [`Distribution::locate`] only reads it.

mod ketama;
mod maglev;
mod modula;
mod random;
mod slots;

pub use maglev::MAGLEV_TABLE_SIZE;
pub use slots::{cluster_slot, SLOT_COUNT};

use crate::hash::HashFunction;
use crate::node::Node;

/// A distribution's kind, named as in twemproxy's `distribution:` setting (plus the two
/// that twemproxy lacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DistributionKind {
    /// twemproxy's consistent-hash ring (libmemcached ketama, 160 points per server).
    Ketama,
    /// `hash % total_weight` over a list where each server appears `weight` times, in
    /// twemproxy's server order (sorted by ring name: shorter first, then bytewise).
    Modula,
    /// A uniformly random live server per request.
    Random,
    /// Envoy-compatible Maglev (table of 65537 entries).
    Maglev,
    /// 16384 Redis Cluster slots split evenly, in node order, over the live nodes.
    Slots,
}

impl DistributionKind {
    /// Every kind, in declaration order.
    pub const ALL: [DistributionKind; 5] = [
        DistributionKind::Ketama,
        DistributionKind::Modula,
        DistributionKind::Random,
        DistributionKind::Maglev,
        DistributionKind::Slots,
    ];

    /// The kind for a config name (`"ketama"`, `"modula"`, `"random"`, `"maglev"`, `"slots"`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The config name, as accepted by [`DistributionKind::from_name`].
    pub fn name(self) -> &'static str {
        match self {
            DistributionKind::Ketama => "ketama",
            DistributionKind::Modula => "modula",
            DistributionKind::Random => "random",
            DistributionKind::Maglev => "maglev",
            DistributionKind::Slots => "slots",
        }
    }
}

impl std::fmt::Display for DistributionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An immutable key -> node map over a pool's live nodes.
#[derive(Debug, Clone)]
pub struct Distribution {
    kind: DistributionKind,
    hash: HashFunction,
    live: usize,
    table: Table,
}

/// The built lookup structure. Every stored index is an index into the `nodes` slice the
/// distribution was built from, so it is always a live node of that slice.
#[derive(Debug, Clone)]
enum Table {
    /// No live node: every lookup misses.
    Empty,
    Ketama(ketama::Continuum),
    Modula(modula::Modula),
    Random(random::Random),
    Maglev(maglev::Maglev),
    Slots(slots::Slots),
}

impl Distribution {
    /// Builds the distribution over the live `nodes` (dead ones own nothing, as in
    /// twemproxy with `auto_eject_hosts`). `hash` is the pool's key hash; slots ignore it
    /// (they always use CRC16), random never hashes.
    pub fn build(kind: DistributionKind, hash: HashFunction, nodes: &[Node]) -> Distribution {
        let mut live: Vec<(usize, &Node)> =
            nodes.iter().enumerate().filter(|(_, n)| n.live).collect();
        if matches!(kind, DistributionKind::Ketama | DistributionKind::Modula) {
            twemproxy_order(&mut live);
        }
        let table = if live.is_empty() {
            Table::Empty
        } else {
            match kind {
                DistributionKind::Ketama => Table::Ketama(ketama::Continuum::build(&live)),
                DistributionKind::Modula => Table::Modula(modula::Modula::build(&live)),
                DistributionKind::Random => Table::Random(random::Random::build(&live)),
                DistributionKind::Maglev => Table::Maglev(maglev::Maglev::build(&live)),
                DistributionKind::Slots => Table::Slots(slots::Slots::build(&live)),
            }
        };
        Distribution {
            kind,
            hash,
            live: live.len(),
            table,
        }
    }

    /// A slots distribution whose table is a Redis Cluster's slot map:
    /// `owners[slot]` is the index of the node serving `slot` (None: no
    /// node does; keys of that slot locate nowhere).
    pub fn from_slot_owners(owners: &[Option<usize>]) -> Distribution {
        let live = {
            let mut seen: Vec<usize> = owners.iter().flatten().copied().collect();
            seen.sort_unstable();
            seen.dedup();
            seen.len()
        };
        Distribution {
            kind: DistributionKind::Slots,
            hash: HashFunction::Crc16,
            live,
            table: Table::Slots(slots::Slots::from_owners(owners)),
        }
    }

    /// The kind this was built as.
    pub fn kind(&self) -> DistributionKind {
        self.kind
    }

    /// The pool's key hash function.
    pub fn hash_function(&self) -> HashFunction {
        self.hash
    }

    /// How many nodes were live at build time.
    pub fn live_count(&self) -> usize {
        self.live
    }

    /// Index into the `nodes` given to [`Distribution::build`] of the node owning `key`
    /// (the key *after* hash-tag extraction). `None` when no node is live.
    ///
    /// Ketama and modula hash as twemproxy does: the empty key hashes to 0, and only the
    /// low 32 bits of the hash count (all of a twemproxy hash). Maglev uses the full
    /// 64-bit hash; slots use CRC16 of the key; random picks any live node.
    pub fn locate(&self, key: &[u8]) -> Option<usize> {
        match &self.table {
            Table::Empty => None,
            Table::Ketama(c) => c.locate(self.twemproxy_hash(key)),
            Table::Modula(m) => m.locate(self.twemproxy_hash(key)),
            Table::Random(r) => r.pick(),
            Table::Maglev(m) => m.locate(self.hash.hash(key)),
            Table::Slots(s) => s.owner(slots::key_slot(key)),
        }
    }

    /// For a slots distribution: the node owning `slot` (0..16384). `None` for other
    /// kinds, an out-of-range slot, or no live node.
    pub fn slot_owner(&self, slot: u16) -> Option<usize> {
        match &self.table {
            Table::Slots(s) => s.owner(slot),
            _ => None,
        }
    }

    /// twemproxy's `server_pool_hash`: 0 for the empty key, else the 32-bit hash.
    fn twemproxy_hash(&self, key: &[u8]) -> u32 {
        if key.is_empty() {
            0
        } else {
            // twemproxy's hashes are 32-bit already; a 64-bit one is truncated on purpose.
            self.hash.hash(key) as u32
        }
    }
}

/// Puts nodes in the order twemproxy keeps its servers in: at config load it sorts them
/// by ring name (to reject duplicates), comparing length first, then bytes, and never
/// restores config order. Modula's list and ketama's tie order follow it.
fn twemproxy_order(live: &mut [(usize, &Node)]) {
    live.sort_by(|(ia, a), (ib, b)| {
        (a.name.len(), a.name.as_bytes(), ia).cmp(&(b.name.len(), b.name.as_bytes(), ib))
    });
}

/// A node index as stored in the tables (`u32` keeps them compact; pools are small).
type NodeIndex = u32;

fn to_stored(index: usize) -> NodeIndex {
    NodeIndex::try_from(index).unwrap_or(NodeIndex::MAX)
}

/// `NodeIndex::MAX` marks "no node" (a slot no node serves).
fn from_stored(index: NodeIndex) -> Option<usize> {
    (index != NodeIndex::MAX).then(|| usize::try_from(index).ok())?
}
