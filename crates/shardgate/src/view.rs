//! A worker's view of one pool: the current topology snapshot and this
//! worker's connections to each node in it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use crate::backend::{ConnSettings, EpisodeLog, Handshake, Node, NodeStats};
use crate::config::{PoolConfig, ReadBalance, ReadPolicy, ReplicaFallback};
use crate::metrics::PoolStats;
use crate::pool::PoolState;
use crate::proxy_info::ProxyInfo;
use crate::topology::{NodeAddr, Topology};

/// Round-robin hands each node this many picks in a row: the reads a
/// worker sends in one turn of its event loop then mostly share one
/// backend connection and one write, as they would to the master alone,
/// instead of costing a syscall per node. Over a run of reads the nodes
/// still share them evenly (a run is short next to any measured window).
const ROUND_ROBIN_RUN: usize = 32;

/// Nodes a worker connects to per pool, at most: a bound on what
/// redirections to unlisted nodes can open (a cluster has at most a
/// thousand nodes by Redis's own advice).
const MAX_NODES: usize = 1024;

/// One shard as a worker routes to it.
pub struct ShardView {
    pub master: Option<Rc<Node>>,
    /// Replicas fit to serve reads.
    pub replicas: Vec<Rc<Node>>,
    /// Cluster pools: replicas to try while the master is unreachable.
    pub standby: Vec<Rc<Node>>,
    /// Round-robin position among readers.
    next_reader: Cell<usize>,
}

/// Where a read goes.
pub enum Reader<'a> {
    /// To the shard's master (as for a write).
    Master,
    Node(&'a Rc<Node>),
    /// `read_policy: replica` with `replica_fallback: error`, and no fit replica.
    NoReplica,
}

impl ShardView {
    /// Picks the node a read goes to under `policy`, balancing with
    /// `balance` among the nodes the policy allows.
    pub fn reader(
        &self,
        policy: ReadPolicy,
        balance: ReadBalance,
        fallback: ReplicaFallback,
    ) -> Reader<'_> {
        let with_master = policy == ReadPolicy::Any;
        let count = self.replicas.len() + usize::from(with_master && self.master.is_some());
        if policy == ReadPolicy::Master || count == 0 {
            return match (policy, fallback) {
                (ReadPolicy::Replica, ReplicaFallback::Error) => Reader::NoReplica,
                _ => Reader::Master,
            };
        }
        let candidate = |i: usize| -> Option<&Rc<Node>> {
            match self.replicas.get(i) {
                Some(node) => Some(node),
                None => self.master.as_ref(),
            }
        };
        let start = self.next_reader.get();
        self.next_reader.set(start.wrapping_add(1));
        let chosen = match balance {
            ReadBalance::RoundRobin => start / ROUND_ROBIN_RUN % count,
            // Ties go round-robin, so equal nodes share the load.
            ReadBalance::LeastOutstanding => (0..count)
                .map(|k| (start + k) % count)
                .min_by_key(|&i| candidate(i).map_or(u64::MAX, |n| n.stats.outstanding.get()))
                .unwrap_or(0),
            // A node without a sample yet counts as fastest, so it gets one.
            ReadBalance::LowestLatency => (0..count)
                .map(|k| (start + k) % count)
                .min_by(|&a, &b| {
                    let latency = |i| candidate(i).map_or(f64::MAX, |n| n.stats.latency_us());
                    latency(a).total_cmp(&latency(b))
                })
                .unwrap_or(0),
        };
        match candidate(chosen) {
            Some(node) => Reader::Node(node),
            None => Reader::Master,
        }
    }
}

/// What a worker keeps per node address across topology changes: a
/// replica readmitted or a master back opens a new `Node`, but must not
/// register new counters each time (they would pile up forever), and its
/// trouble episode must end when the node answers again.
#[derive(Clone)]
struct Kept {
    stats: Arc<NodeStats>,
    episode: Rc<EpisodeLog>,
}

/// The snapshot a session routes a batch with.
pub struct PoolView {
    pub topology: Arc<Topology>,
    pub shards: Vec<ShardView>,
}

/// One pool inside one worker.
pub struct PoolWorker {
    pub state: Arc<PoolState>,
    /// The process (INFO's proxy section lists its pools).
    pub proxy: Arc<ProxyInfo>,
    /// This worker's counters for the pool.
    pub stats: Arc<PoolStats>,
    /// Whether sessions keep per-command metrics.
    pub metrics: bool,
    view: RefCell<Rc<PoolView>>,
    nodes: RefCell<HashMap<SocketAddr, Rc<Node>>>,
    /// What this worker keeps per node address when the node leaves the
    /// view (see [`Kept`]).
    kept: RefCell<HashMap<SocketAddr, Kept>>,
    /// Fast hashes of script bodies this worker has already recorded, so
    /// a repeated EVAL costs a hash, not a SHA1 and a lock.
    seen_scripts: RefCell<std::collections::HashSet<u64>>,
    /// Moving keys this worker found gone from their source.
    pub gone: RefCell<GoneFromSource>,
}

/// Moving keys found gone from their source during one migration (one
/// placement epoch): its source answered that they are not there. Only
/// the mover moves keys, from source to destination, and no key is
/// created on its source while it moves, so such a key stays gone from
/// its source until the migration ends: its next requests go straight to
/// the destination instead of asking the source first. Bounded; a new
/// epoch (the migration finished, was aborted, or another began) forgets
/// them all.
#[derive(Default)]
pub struct GoneFromSource {
    epoch: u64,
    keys: std::collections::HashSet<Bytes, foldhash::fast::RandomState>,
}

impl GoneFromSource {
    /// Keys remembered per worker and pool, at most (about 7 MB).
    const MAX: usize = 100_000;

    /// Forgets the keys of any other epoch (a published topology's).
    fn keep_only(&mut self, epoch: u64) {
        if self.epoch != epoch {
            *self = GoneFromSource {
                epoch,
                keys: Default::default(),
            };
        }
    }

    /// Whether `key` was found gone from its source in `epoch`.
    pub fn knows(&self, epoch: u64, key: &[u8]) -> bool {
        self.epoch == epoch && self.keys.contains(key)
    }

    /// Remembers `key` as gone from its source in `epoch`.
    pub fn learn(&mut self, epoch: u64, key: &[u8]) {
        self.keep_only(epoch);
        if self.keys.len() < Self::MAX {
            // A copy: a slice would hold the client's whole read buffer.
            self.keys.insert(Bytes::copy_from_slice(key));
        }
    }
}

impl PoolWorker {
    /// Opens this worker's connections to every node of the pool. Must run
    /// inside the worker's `LocalSet`.
    pub fn new(state: Arc<PoolState>, proxy: Arc<ProxyInfo>, metrics: bool) -> PoolWorker {
        let topology = state.topology();
        let mut nodes = HashMap::new();
        let mut kept = HashMap::new();
        let shards = build_shards(&state, &topology, &HashMap::new(), &mut nodes, &mut kept);
        PoolWorker {
            stats: state.new_worker_stats(),
            metrics,
            state,
            proxy,
            view: RefCell::new(Rc::new(PoolView { topology, shards })),
            nodes: RefCell::new(nodes),
            kept: RefCell::new(kept),
            seen_scripts: RefCell::new(std::collections::HashSet::new()),
            gone: RefCell::default(),
        }
    }

    /// The configuration of the current view.
    pub fn config(&self) -> Arc<PoolConfig> {
        self.view.borrow().topology.config.clone()
    }

    /// True the first time this worker sees a script body.
    pub fn first_sight_of_script(&self, body: &[u8]) -> bool {
        use std::hash::BuildHasher;
        let hash = foldhash::fast::FixedState::with_seed(0x5ca1ab1e).hash_one(body);
        let mut seen = self.seen_scripts.borrow_mut();
        if seen.len() > 100_000 {
            seen.clear();
        }
        seen.insert(hash)
    }

    /// The current view, rebuilt first if a new topology was published.
    /// Connections to nodes that stay are kept.
    #[inline]
    pub fn view(&self) -> Rc<PoolView> {
        let current = self.view.borrow().clone();
        if self.state.topology_version() == current.topology.version {
            return current;
        }
        self.rebuild()
    }

    /// Cluster pools: this worker's node at `addr`, opened if the view
    /// does not have it (a `MOVED` or `ASK` to a node the map does not
    /// list yet). Such a node lives until the next view is built, which
    /// keeps it only if the new map lists it. None past [`MAX_NODES`].
    pub fn node_at(&self, addr: SocketAddr) -> Option<Rc<Node>> {
        if let Some(node) = self.nodes.borrow().get(&addr) {
            return Some(node.clone());
        }
        let mut nodes = self.nodes.borrow_mut();
        if nodes.len() >= MAX_NODES {
            return None;
        }
        let config = self.config();
        let addr = NodeAddr::new(addr, addr.to_string());
        let settings = settings_of(&self.state, &config, &addr);
        let per_node = config.server_connections as usize;
        let node = open_node(
            &self.state,
            settings,
            &addr,
            per_node,
            &mut self.kept.borrow_mut(),
        );
        nodes.insert(addr.addr, node.clone());
        Some(node)
    }

    /// Cluster pools: whether the believed slot map lists a node at `addr`
    /// (a redirection elsewhere is not followed: a reply can be a client's
    /// own words, and a node the map does not list gets no connection, and
    /// no credentials, until a confirmed refresh names it).
    pub fn in_map(&self, addr: SocketAddr) -> bool {
        let view = self.view();
        view.topology.shards.iter().any(|shard| {
            shard.master.as_ref().is_some_and(|m| m.addr == addr)
                || shard.replicas.iter().any(|r| r.addr == addr)
        }) || self.state.cluster.is_spare(addr)
    }

    /// Cluster pools: the primary serving `slot` in the newest snapshot
    /// (a request retried after a failover goes to the promoted replica).
    pub fn primary_of_slot(&self, slot: u16) -> Option<Rc<Node>> {
        let view = self.view();
        let shard = view.topology.shard_of_slot(slot)?;
        view.shards.get(shard)?.master.clone()
    }

    /// Cluster pools: a standby replica of the shard serving `slot` (the
    /// `turn`th, wrapping), to try while its primary is unreachable.
    pub fn replica_of_slot(&self, slot: u16, turn: usize) -> Option<Rc<Node>> {
        let view = self.view();
        let shard = view.shards.get(view.topology.shard_of_slot(slot)?)?;
        let count = shard.standby.len();
        shard.standby.get(turn.checked_rem(count)?).cloned()
    }

    #[cold]
    fn rebuild(&self) -> Rc<PoolView> {
        let topology = self.state.topology();
        let old = std::mem::take(&mut *self.nodes.borrow_mut());
        let mut nodes = HashMap::new();
        let shards = build_shards(
            &self.state,
            &topology,
            &old,
            &mut nodes,
            &mut self.kept.borrow_mut(),
        );
        *self.nodes.borrow_mut() = nodes;
        self.gone.borrow_mut().keep_only(topology.placement_epoch());
        let view = Rc::new(PoolView { topology, shards });
        *self.view.borrow_mut() = view.clone();
        view
    }
}

fn build_shards(
    state: &PoolState,
    topology: &Topology,
    old: &HashMap<SocketAddr, Rc<Node>>,
    nodes: &mut HashMap<SocketAddr, Rc<Node>>,
    kept: &mut HashMap<SocketAddr, Kept>,
) -> Vec<ShardView> {
    let config = &topology.config;
    let per_node = config.server_connections as usize;
    let mut node = |addr: &NodeAddr| -> Rc<Node> {
        if let Some(node) = nodes.get(&addr.addr) {
            return node.clone();
        }
        // A node whose settings a reload changed (credentials, timeouts,
        // connection count) is opened anew; the old one answers what it
        // has in flight, then closes.
        let settings = settings_of(state, config, addr);
        let same = old
            .get(&addr.addr)
            .filter(|n| n.has_settings(&settings, per_node));
        let node = same
            .cloned()
            .unwrap_or_else(|| open_node(state, settings, addr, per_node, kept));
        nodes.insert(addr.addr, node.clone());
        node
    };
    topology
        .shards
        .iter()
        .map(|shard| ShardView {
            master: shard.master.as_ref().map(&mut node),
            replicas: shard.replicas.iter().map(&mut node).collect(),
            standby: shard.standby.iter().map(&mut node).collect(),
            next_reader: Cell::new(0),
        })
        .collect()
}

/// A new `Node` (its connections open at once), with the counters and
/// trouble episode this worker keeps for its address.
fn open_node(
    state: &PoolState,
    settings: ConnSettings,
    addr: &NodeAddr,
    per_node: usize,
    kept: &mut HashMap<SocketAddr, Kept>,
) -> Rc<Node> {
    let kept = kept.entry(addr.addr).or_insert_with(|| Kept {
        stats: state.new_node_stats(addr.addr),
        episode: Rc::new(EpisodeLog::new(
            state.episode(addr.addr, &node_name(state, addr)),
        )),
    });
    Rc::new(Node::new(
        settings,
        addr.label.clone(),
        per_node,
        kept.stats.clone(),
        kept.episode.clone(),
    ))
}

/// How errors and logs name a node: `pool 'p' server host:port`.
fn node_name(state: &PoolState, addr: &NodeAddr) -> Arc<str> {
    format!("pool '{}' server {}", state.name, addr.label).into()
}

/// How this pool's connections to `addr` are made under `config`.
fn settings_of(state: &PoolState, config: &PoolConfig, addr: &NodeAddr) -> ConnSettings {
    ConnSettings {
        addr: addr.addr,
        name: node_name(state, addr),
        handshake: Handshake {
            auth: config.redis_auth.clone(),
            db: config.redis_db,
            resp3: false,
            client_name: None,
            ask_id: false,
            // Cluster pools read from replicas: READONLY lets them serve.
            readonly: config.cluster,
            tls: state.tls.backend(),
        },
        timeout: config.timeout,
        connect_timeout: config.connect_timeout,
        max_backoff: config.reconnect_backoff_max,
        tcp_keepalive: config.tcpkeepalive,
    }
}

#[cfg(test)]
mod tests {
    use super::GoneFromSource;

    #[test]
    fn keys_gone_from_their_source_are_known_only_in_their_migration() {
        let mut gone = GoneFromSource::default();
        gone.learn(7, b"k1");
        assert!(gone.knows(7, b"k1"));
        assert!(!gone.knows(7, b"k2"));
        assert!(!gone.knows(8, b"k1"), "another migration");
        // A published topology of another epoch forgets them.
        gone.keep_only(8);
        assert!(!gone.knows(7, b"k1"));
        gone.learn(8, b"k2");
        gone.keep_only(8);
        assert!(gone.knows(8, b"k2"), "the same epoch keeps them");
    }

    #[test]
    fn at_most_max_keys_are_remembered() {
        let mut gone = GoneFromSource::default();
        for i in 0..GoneFromSource::MAX + 10 {
            gone.learn(1, format!("key:{i}").as_bytes());
        }
        assert_eq!(gone.keys.len(), GoneFromSource::MAX);
        let last = format!("key:{}", GoneFromSource::MAX + 5);
        assert!(!gone.knows(1, last.as_bytes()));
    }
}
