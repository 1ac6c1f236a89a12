//! What all workers share about one pool.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::{ArcSwap, ArcSwapOption};

use super::clients::{ClientPause, Clients};
use crate::auth::{CommandRules, User, Users};
use crate::backend::{Episode, NodeStats};
use crate::config::{ClusterFace, PoolConfig};
use crate::metrics::{PoolStats, SlowLog};
use crate::scripts::Scripts;
use crate::topology::{KeyPlacement, PoolStatus, Topology};
use shardgate_core::cluster::FaceView;

/// A pool's published topology (which carries its configuration), its
/// users and clients, and its counters. Lives as long as the pool: a
/// reload swaps what changes and keeps the rest.
pub struct PoolState {
    /// The pool's name (a pool renamed by a reload is a new pool).
    pub name: Arc<str>,
    topology: ArcSwap<Topology>,
    /// Clients connected to this pool, across workers (`client_connections`).
    pub admitted: AtomicU32,
    /// Every connected client, for CLIENT LIST / KILL.
    pub clients: Clients,
    /// CLIENT PAUSE, for every client of the pool.
    pub pause: ClientPause,
    /// Who may connect, and what they may run (swapped by a reload).
    users: ArcSwap<Users>,
    /// Clients turned away at `client_connections`.
    pub rejected_clients: AtomicU64,
    /// Clients closed by `--maxmemory-clients`, and what the pool's
    /// clients held at the last sweep (`client_memory`).
    pub evicted_clients: AtomicU64,
    pub client_memory: AtomicU64,
    /// Counts kept by the controller.
    pub stats: ControlStats,
    /// Cluster pools: what sessions tell the controller (unused otherwise).
    pub cluster: super::ClusterHints,
    /// Requests slower than the threshold through the proxy.
    pub slowlog: SlowLog,
    /// Scripts seen, to load them where EVALSHA finds them missing.
    pub scripts: Scripts,
    /// The controller's view of every node, for the admin API.
    status: ArcSwap<PoolStatus>,
    /// The proxy lost the coordination store of a pool whose keys may
    /// move: it refuses the pool's requests until it is back in step.
    out_of_step: std::sync::atomic::AtomicBool,
    /// A resharding mover (this proxy's or another's) moves a big key:
    /// the pool's servers may not answer health checks meanwhile (the two
    /// it moves between are blocked, and so is any that MIGRATEs to them).
    kept_busy: std::sync::atomic::AtomicBool,
    /// Every worker's counters for this pool, summed at scrape time.
    worker_stats: Mutex<Vec<Arc<PoolStats>>>,
    /// Every worker's per-node counters, by node address.
    node_stats: Mutex<Vec<(SocketAddr, Arc<NodeStats>)>>,
    /// Each node's trouble episode, shared by the workers.
    episodes: Mutex<std::collections::HashMap<SocketAddr, Arc<Episode>>>,
    /// Certificates and TLS configurations (listeners, servers,
    /// Sentinels), swapped by reloads.
    pub tls: super::tls::PoolTls,
    /// `cluster_proxies`: the cluster clients are shown, as the peer
    /// watcher last divided it (with the proxies it was divided for).
    face: ArcSwapOption<(ClusterFace, FaceView)>,
    /// The version of each topology published, for those who wait.
    published: tokio::sync::watch::Sender<u64>,
}

/// Kinds of resharding mover errors counted apart
/// (`reshard::mover::MoverErrorKind::ALL` has this many).
pub const MOVER_ERROR_KINDS: usize = 5;

/// What the controller counts, for metrics.
#[derive(Debug, Default)]
pub struct ControlStats {
    /// Shards that got a usable master again after losing it.
    pub failovers: AtomicU64,
    /// Total time without a usable master over those, in microseconds.
    pub failover_micros: AtomicU64,
    /// Replicas taken out of the read rotation (down, unlinked, lagging).
    pub replica_exclusions: AtomicU64,
    /// Nodes that went down or came back up (health flips).
    pub health_flips: AtomicU64,
    /// Keys and bytes the resharding mover moved (this proxy's mover).
    pub keys_moved: AtomicU64,
    pub bytes_moved: AtomicU64,
    /// Times the mover stopped on an error (it retries), by kind (in the
    /// order of `reshard::mover::MoverErrorKind::ALL`).
    pub mover_errors: [AtomicU64; MOVER_ERROR_KINDS],
    /// The migration's phase (an index into `reshard::PHASES`).
    pub reshard_phase: AtomicU64,
    /// Proxies that have not acknowledged the migration yet.
    pub reshard_waiting: AtomicU64,
}

impl PoolState {
    /// A pool starting with `config`, its keys placed as `placement` says
    /// (a migration may be under way).
    pub fn new(config: PoolConfig, placement: &KeyPlacement) -> PoolState {
        let config = Arc::new(config);
        let shards = Topology::from_config(&config).shards;
        let topology = Topology::placed(&config, 0, shards, placement);
        let users = users_of(&config);
        let slowlog = SlowLog::new(config.slowlog_threshold, config.slowlog_max_len);
        let tls = super::tls::PoolTls::new(&config);
        PoolState {
            name: config.name.as_str().into(),
            topology: ArcSwap::from_pointee(topology),
            admitted: AtomicU32::new(0),
            clients: Clients::default(),
            pause: ClientPause::default(),
            users: ArcSwap::from_pointee(users),
            rejected_clients: AtomicU64::new(0),
            evicted_clients: AtomicU64::new(0),
            client_memory: AtomicU64::new(0),
            stats: ControlStats::default(),
            cluster: super::ClusterHints::default(),
            slowlog,
            scripts: Scripts::default(),
            status: ArcSwap::from_pointee(PoolStatus::default()),
            out_of_step: std::sync::atomic::AtomicBool::new(false),
            kept_busy: std::sync::atomic::AtomicBool::new(false),
            worker_stats: Mutex::new(Vec::new()),
            node_stats: Mutex::new(Vec::new()),
            episodes: Mutex::new(std::collections::HashMap::new()),
            tls,
            face: ArcSwapOption::empty(),
            published: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The cluster clients are shown now (None without `cluster_proxies`).
    /// Until the peer watcher has divided the slots for the configured
    /// proxies (at start, after a reload), every proxy counts as live, at
    /// the epoch the watcher's division will carry.
    pub fn face(&self) -> Option<FaceView> {
        let face = self.config().cluster_face.clone()?;
        match &*self.face.load() {
            Some(current) if current.0 == face => Some(current.1.clone()),
            shown => {
                let epoch = shown.as_ref().map_or(0, |c| c.1.epoch) + 1;
                Some(FaceView::new(&face, |_| true, epoch))
            }
        }
    }

    /// The peer watcher's new division for `face`: it carries the next
    /// epoch, so epochs only grow for the pool's life (reloads included).
    pub fn set_face(&self, face: ClusterFace, mut view: FaceView) -> FaceView {
        view.epoch = self.face.load().as_ref().map_or(0, |c| c.1.epoch) + 1;
        self.face.store(Some(Arc::new((face, view.clone()))));
        view
    }

    /// The configuration of the current snapshot.
    pub fn config(&self) -> Arc<PoolConfig> {
        self.topology.load().config.clone()
    }

    /// The pool's users now.
    pub fn users(&self) -> Arc<Users> {
        self.users.load_full()
    }

    /// A reload's settings that are not in the topology: users (sessions
    /// see them at their next batch) and the slow log's. The controller
    /// publishes the rest with the next topology.
    pub fn reconfigure(&self, config: &PoolConfig) {
        let users = users_of(config);
        users.carry_counts_from(&self.users.load());
        self.users.store(Arc::new(users));
        self.slowlog
            .configure(config.slowlog_threshold, config.slowlog_max_len);
    }

    /// Whether the proxy is out of step with the pool's migrations (see
    /// `reshard`): requests are refused meanwhile.
    #[inline]
    pub fn out_of_step(&self) -> bool {
        self.out_of_step.load(Ordering::Relaxed)
    }

    pub fn set_out_of_step(&self, out: bool) {
        self.out_of_step.store(out, Ordering::Relaxed);
    }

    /// A big key moves (see the field), or no longer.
    pub fn keep_busy(&self, busy: bool) {
        self.kept_busy.store(busy, Ordering::Relaxed);
    }

    /// Why a node may not answer health checks now, if a big key moves.
    pub fn kept_busy(&self, _addr: SocketAddr) -> Option<String> {
        self.kept_busy
            .load(Ordering::Relaxed)
            .then(|| "busy: a big key moves between servers (resharding)".to_string())
    }

    /// The trouble episode of the node at `addr` (one per node, shared by
    /// every worker; `name` names it in logs).
    pub fn episode(&self, addr: SocketAddr, name: &Arc<str>) -> Arc<Episode> {
        lock(&self.episodes)
            .entry(addr)
            .or_insert_with(|| Arc::new(Episode::new(name.clone())))
            .clone()
    }

    /// The current snapshot.
    pub fn topology(&self) -> Arc<Topology> {
        self.topology.load_full()
    }

    /// The current snapshot's version, without touching its reference
    /// count (cheap enough to check on every batch).
    #[inline]
    pub fn topology_version(&self) -> u64 {
        self.topology.load().version
    }

    /// Publishes a new snapshot; workers pick it up at their next batch,
    /// and whatever waits for [`PoolState::topology_changes`] is woken.
    pub fn publish(&self, topology: Topology) {
        let version = topology.version;
        self.topology.store(Arc::new(topology));
        self.published.send_replace(version);
    }

    /// Changes whenever a new topology is published (push links wait on
    /// it to follow their shard's master, instead of polling).
    pub fn topology_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// The controller's latest view of the pool's nodes.
    pub fn status(&self) -> Arc<PoolStatus> {
        self.status.load_full()
    }

    pub fn set_status(&self, status: PoolStatus) {
        self.status.store(Arc::new(status));
    }

    /// A new worker's counters, registered for scrapes.
    pub fn new_worker_stats(&self) -> Arc<PoolStats> {
        let stats = Arc::new(PoolStats::default());
        lock(&self.worker_stats).push(stats.clone());
        stats
    }

    /// A worker's new counters for one node, registered for scrapes.
    /// Entries are never removed, so a worker asks once per node and
    /// keeps them across topology changes (see `worker::pool`).
    pub fn new_node_stats(&self, addr: SocketAddr) -> Arc<NodeStats> {
        let stats = Arc::new(NodeStats::default());
        lock(&self.node_stats).push((addr, stats.clone()));
        stats
    }

    pub fn worker_stats(&self) -> Vec<Arc<PoolStats>> {
        lock(&self.worker_stats).clone()
    }

    pub fn node_stats(&self) -> Vec<(SocketAddr, Arc<NodeStats>)> {
        lock(&self.node_stats).clone()
    }

    /// Counts a new client unless the pool is full. Returns false when full.
    pub fn admit_client(&self) -> bool {
        let limit = self.topology.load().config.client_connections;
        let admitted = self
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (limit == 0 || n < limit).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            self.rejected_clients.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    /// Counts a client handed over by the old process (a binary upgrade):
    /// it was admitted there.
    pub fn admit_adopted(&self) {
        self.admitted.fetch_add(1, Ordering::AcqRel);
    }

    pub fn release_client(&self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

fn users_of(config: &PoolConfig) -> Users {
    let named = config
        .users
        .iter()
        .map(|u| {
            // Validated at load: the rules parse.
            let rules = CommandRules::parse(&u.commands).unwrap_or_else(|_| CommandRules::all());
            let keys = u
                .keys
                .as_ref()
                .map(|k| k.iter().map(|p| p.as_bytes().to_vec()).collect());
            User::new(&u.name, Some(u.password.clone()), rules, keys)
        })
        .collect();
    Users::new(
        config.password.clone(),
        named,
        config.auth_failures_per_second,
    )
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
