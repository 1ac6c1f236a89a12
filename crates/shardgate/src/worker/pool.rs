//! A worker's view of one pool: the current topology snapshot and this
//! worker's connections to each node in it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use crate::backend::{ConnSettings, Handshake, Node, NodeStats};
use crate::config::PoolConfig;
use crate::route::PoolRules;
use crate::topology::{NodeAddr, PoolState, Topology};

/// One shard as a worker routes to it.
pub struct ShardView {
    pub master: Option<Rc<Node>>,
    /// Replicas fit to serve reads.
    pub replicas: Vec<Rc<Node>>,
    /// Round-robin position among readers.
    next_reader: Cell<usize>,
}

impl ShardView {
    /// The next replica, round-robin (None without replicas).
    pub fn next_replica(&self) -> Option<&Rc<Node>> {
        if self.replicas.is_empty() {
            return None;
        }
        let i = self.next_reader.get();
        self.next_reader.set(i.wrapping_add(1));
        self.replicas.get(i % self.replicas.len())
    }
}

/// The snapshot a session routes a batch with.
pub struct PoolView {
    pub topology: Arc<Topology>,
    pub shards: Vec<ShardView>,
}

/// One pool inside one worker.
pub struct PoolWorker {
    pub state: Arc<PoolState>,
    pub rules: PoolRules,
    view: RefCell<Rc<PoolView>>,
    nodes: RefCell<HashMap<SocketAddr, Rc<Node>>>,
}

impl PoolWorker {
    /// Opens this worker's connections to every node of the pool. Must run
    /// inside the worker's `LocalSet`.
    pub fn new(state: Arc<PoolState>) -> PoolWorker {
        let rules = PoolRules {
            manages_replication: state.config.failover != crate::config::Failover::None,
        };
        let topology = state.topology();
        let mut nodes = HashMap::new();
        let shards = build_shards(&state.config, &topology, &HashMap::new(), &mut nodes);
        PoolWorker {
            state,
            rules,
            view: RefCell::new(Rc::new(PoolView { topology, shards })),
            nodes: RefCell::new(nodes),
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.state.config
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

    #[cold]
    fn rebuild(&self) -> Rc<PoolView> {
        let topology = self.state.topology();
        let old = std::mem::take(&mut *self.nodes.borrow_mut());
        let mut nodes = HashMap::new();
        let shards = build_shards(&self.state.config, &topology, &old, &mut nodes);
        *self.nodes.borrow_mut() = nodes;
        let view = Rc::new(PoolView { topology, shards });
        *self.view.borrow_mut() = view.clone();
        view
    }
}

fn build_shards(
    config: &PoolConfig,
    topology: &Topology,
    old: &HashMap<SocketAddr, Rc<Node>>,
    nodes: &mut HashMap<SocketAddr, Rc<Node>>,
) -> Vec<ShardView> {
    let mut node = |addr: &NodeAddr| -> Rc<Node> {
        if let Some(node) = nodes.get(&addr.addr) {
            return node.clone();
        }
        let node = old
            .get(&addr.addr)
            .cloned()
            .unwrap_or_else(|| Rc::new(open_node(config, addr)));
        nodes.insert(addr.addr, node.clone());
        node
    };
    topology
        .shards
        .iter()
        .map(|shard| ShardView {
            master: shard.master.as_ref().map(&mut node),
            replicas: shard.replicas.iter().map(&mut node).collect(),
            next_reader: Cell::new(0),
        })
        .collect()
}

fn open_node(config: &PoolConfig, addr: &NodeAddr) -> Node {
    let settings = ConnSettings {
        addr: addr.addr,
        name: format!("pool '{}' server {}", config.name, addr.label).into(),
        handshake: Handshake {
            auth: config.redis_auth.clone(),
            db: config.redis_db,
            resp3: false,
            client_name: None,
        },
        timeout: config.timeout,
        connect_timeout: config.connect_timeout,
        max_backoff: config.reconnect_backoff_max,
        tcp_keepalive: config.tcpkeepalive,
    };
    Node::new(
        settings,
        addr.label.clone(),
        config.server_connections as usize,
        Arc::new(NodeStats::default()),
    )
}
