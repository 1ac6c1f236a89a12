//! The pool controller: the one owner of a pool's replication groups. It
//! runs a health checker per node, listens to Sentinel (in Sentinel mode),
//! fails over by itself (in managed mode), ejects shards (with
//! `shard_down: eject`), and publishes a new [`Topology`] whenever what
//! routing needs to know changed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use resp::Value;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::sentinel::{self, SentinelReport};
use super::Input;
use crate::backend::probe::Prober;
use crate::backend::Handshake;
use crate::config::{Failover, PoolConfig, ShardDown};
use crate::pool::PoolState;
use crate::topology::group::{Group, Health, Masters, NodeHealth, Origin};
use crate::topology::info::Role;
use crate::topology::probe::Probe;
use crate::topology::Events;
use crate::topology::{NodeAddr, Shard, Topology};
use crate::topology::{NodeStatus, PoolStatus, ShardStatus};

/// Learned nodes that stay down this long are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// Health connections of managed-mode proxies are named this plus the
/// instance id: managed proxies defer to older ones by it, and must not
/// mistake a proxy that only watches (`failover: none` or `sentinel`,
/// named [`WATCHER_NAME`]) for one that would fail over.
const MANAGED_NAME: &str = "shardgate-managed-";
const WATCHER_NAME: &str = "shardgate-health-";

pub struct Controller {
    state: Arc<PoolState>,
    config: Arc<PoolConfig>,
    pool: Arc<str>,
    groups: Vec<Group>,
    events: Arc<Events>,
    /// This proxy's id; health connections are named after it so managed
    /// proxies can see each other (see [`Controller::is_failover_leader`]).
    instance: Arc<str>,
    /// The health-check connection's handshake.
    handshake: Handshake,
    tx: mpsc::UnboundedSender<Input>,
    rx: mpsc::UnboundedReceiver<Input>,
    checkers: HashMap<SocketAddr, AbortHandle>,
    /// Per shard: when its master was found unusable (failover timing).
    lost_master_at: Vec<Option<Instant>>,
    /// Per shard: the last failover attempt (one per health interval).
    last_attempt: Vec<Option<Instant>>,
    /// Per shard: when it was ejected, and the master it had then.
    ejected_at: Vec<Option<(Instant, SocketAddr)>>,
    /// Per shard: the older managed proxy this one last deferred to (so
    /// the event is recorded once, not at every attempt).
    deferred_to: Vec<Option<String>>,
    /// Replicas last published as fit, per shard (to log changes).
    fit: Vec<Vec<SocketAddr>>,
    version: u64,
    published: Vec<Shard>,
    fall: u32,
}

impl Controller {
    pub fn new(state: Arc<PoolState>, events: Arc<Events>, instance: Arc<str>) -> Controller {
        let config = state.config.clone();
        let groups: Vec<Group> = config
            .servers
            .iter()
            .zip(&config.replicas)
            .map(|(server, replicas)| {
                let master = NodeAddr::new(server.addr, format!("{}:{}", server.host, server.port));
                let mut group = Group {
                    name: server.ring_name().into(),
                    weight: server.weight,
                    nodes: vec![NodeHealth::new(master.clone(), Origin::Configured)],
                    master: master.addr,
                    ejected: false,
                    conflict: None,
                };
                for replica in replicas {
                    group.add(
                        NodeAddr::new(replica.addr, replica.label()),
                        Origin::Declared,
                    );
                }
                group
            })
            .collect();
        let (tx, rx) = mpsc::unbounded_channel();
        let handshake = Handshake {
            auth: config.redis_auth.clone(),
            db: 0,
            resp3: false,
            client_name: Some(match config.failover {
                Failover::Managed => format!("{MANAGED_NAME}{instance}"),
                Failover::None | Failover::Sentinel => format!("{WATCHER_NAME}{instance}"),
            }),
            ask_id: false,
        };
        let shards = groups.len();
        // twemproxy ejects after `server_failure_limit` failures in a row.
        let fall = match config.shard_down {
            ShardDown::Eject => config.server_failure_limit,
            ShardDown::Fail => config.health_check.fall,
        };
        Controller {
            pool: config.name.as_str().into(),
            published: state.topology().shards.clone(),
            state,
            config,
            groups,
            events,
            instance,
            handshake,
            tx,
            rx,
            checkers: HashMap::new(),
            lost_master_at: vec![None; shards],
            last_attempt: vec![None; shards],
            ejected_at: vec![None; shards],
            deferred_to: vec![None; shards],
            fit: vec![Vec::new(); shards],
            version: 0,
            fall,
        }
    }

    /// Runs until the proxy stops (the task is dropped with its runtime).
    /// `ready` is told once the first view of the pool is published.
    pub async fn run(mut self, ready: std::sync::mpsc::Sender<()>) {
        for group in self.groups.clone() {
            for node in &group.nodes {
                self.start_checker(node.addr.addr);
            }
        }
        if self.config.failover == Failover::Sentinel {
            let names: Vec<Arc<str>> = self.groups.iter().map(|g| g.name.clone()).collect();
            sentinel::spawn_watchers(&self.config, names, self.tx.clone(), self.events.clone());
        }
        self.settle().await;
        self.reconcile().await;
        self.publish();
        let _ = ready.send(());
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                input = self.rx.recv() => match input {
                    Some(input) => self.handle(input).await,
                    None => return,
                },
                _ = housekeeping.tick() => self.forget_stale(),
            }
            self.reconcile().await;
            self.publish();
        }
    }

    /// Before serving: learn every node's role (and, with Sentinel, each
    /// master's address), so the first write never goes to a node that
    /// turns out to be a replica. Bounded by [`Controller::settle_budget`].
    /// Nothing is decided meanwhile (no failover, no REPLICAOF): decisions
    /// need the whole group's view, and one slow first probe is no outage.
    async fn settle(&mut self) {
        let deadline = tokio::time::Instant::now() + self.settle_budget();
        let mut heard_from_sentinel =
            vec![self.config.failover != Failover::Sentinel; self.groups.len()];
        loop {
            let probed = self
                .groups
                .iter()
                .all(|g| g.nodes.iter().all(|n| n.health != Health::Unknown));
            if probed && heard_from_sentinel.iter().all(|h| *h) {
                return;
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(input)) => {
                    if let Input::Sentinel(SentinelReport::Master { shard, .. }) = &input {
                        if let Some(heard) = heard_from_sentinel.get_mut(*shard) {
                            *heard = true;
                        }
                    }
                    self.handle(input).await;
                }
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// How long startup waits for the first probes and Sentinel answers.
    pub fn settle_budget(&self) -> Duration {
        let config = &self.config;
        (config.health_check.timeout.max(config.connect_timeout) * 2).min(Duration::from_secs(5))
    }

    fn start_checker(&mut self, addr: SocketAddr) {
        if self.checkers.contains_key(&addr) {
            return;
        }
        let tx = self.tx.clone();
        let mut prober = Prober::new(
            addr,
            self.handshake.clone(),
            self.config.health_check.timeout,
        );
        let interval = self.config.health_check.interval;
        let task = tokio::task::spawn_local(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let started = Instant::now();
                let result = prober.probe().await;
                if tx
                    .send(Input::Probed {
                        addr,
                        started,
                        result,
                    })
                    .is_err()
                {
                    return;
                }
            }
        });
        self.checkers.insert(addr, task.abort_handle());
    }

    fn stop_checker(&mut self, addr: SocketAddr) {
        if let Some(task) = self.checkers.remove(&addr) {
            task.abort();
        }
    }

    fn group_of(&self, addr: SocketAddr) -> Option<usize> {
        self.groups.iter().position(|g| g.node(addr).is_some())
    }

    async fn handle(&mut self, input: Input) {
        match input {
            Input::Probed {
                addr,
                started,
                result,
            } => self.probed(addr, started, result),
            Input::Sentinel(report) => self.sentinel_report(report).await,
        }
    }

    fn record(&self, shard: usize, kind: &'static str, message: String) {
        let name = self.groups.get(shard).map(|g| g.name.clone());
        self.events.record(&self.pool, name.as_ref(), kind, message);
    }

    fn probed(&mut self, addr: SocketAddr, started: Instant, result: Result<Probe, String>) {
        let Some(shard) = self.group_of(addr) else {
            return;
        };
        let (rise, fall) = (self.config.health_check.rise, self.fall);
        let Some(node) = self.groups[shard].node_mut(addr) else {
            return;
        };
        if node.trust_since.is_some_and(|since| started < since) {
            return;
        }
        let label = node.addr.label.clone();
        let before = node.role().map(role_name);
        let was_busy = node.is_busy();
        let error = result.as_ref().err().cloned();
        let flipped = node.apply(result, rise, fall);
        let after = node.role().map(role_name);
        let busy = node
            .is_busy()
            .then(|| node.last.as_ref().and_then(|p| p.busy.clone()));
        let learned = self.learn_nodes(shard, addr);
        if let Some(health) = flipped {
            self.state.stats.health_flips.fetch_add(1, Relaxed);
            let message = match (health, error) {
                (Health::Down, Some(reason)) => format!("node {label} is down: {reason}"),
                (health, _) => format!("node {label} is {}", format!("{health:?}").to_lowercase()),
            };
            self.record(shard, "health", message);
        }
        match (was_busy, busy) {
            (false, Some(reason)) => self.record(
                shard,
                "busy",
                format!(
                    "node {label} is busy (alive, but answering {}); SCRIPT KILL or FUNCTION KILL through the proxy ends it",
                    reason.unwrap_or_default()
                ),
            ),
            (true, None) => self.record(shard, "busy", format!("node {label} is no longer busy")),
            _ => {}
        }
        if before.is_some() && before != after {
            self.record(
                shard,
                "role",
                format!(
                    "node {label} now reports role {}",
                    after.unwrap_or("unknown")
                ),
            );
        }
        for node in learned {
            self.record(
                shard,
                "replica",
                format!("node {} joined the shard", node.label),
            );
            self.start_checker(node.addr);
        }
    }

    /// Nodes a probe reveals: a master's replicas, a replica's master.
    fn learn_nodes(&mut self, shard: usize, addr: SocketAddr) -> Vec<NodeAddr> {
        if !self.config.discover_replicas {
            return Vec::new();
        }
        let Some(node) = self.groups[shard].node(addr) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        match node.role() {
            Some(Role::Master { replicas }) => {
                for replica in replicas {
                    if let Some(addr) = crate::topology::group::resolve(&replica.ip, replica.port) {
                        found.push(NodeAddr::new(
                            addr,
                            format!("{}:{}", replica.ip, replica.port),
                        ));
                    }
                }
            }
            Some(Role::Replica {
                master_host,
                master_port,
                ..
            }) => {
                if let Some(addr) = crate::topology::group::resolve(master_host, *master_port) {
                    found.push(NodeAddr::new(addr, format!("{master_host}:{master_port}")));
                }
            }
            None => {}
        }
        let mut added = Vec::new();
        for node in found {
            if self.group_of(node.addr).is_none()
                && self.groups[shard].add(node.clone(), Origin::Discovered)
            {
                added.push(node);
            }
        }
        added
    }

    async fn sentinel_report(&mut self, report: SentinelReport) {
        match report {
            SentinelReport::Master { shard, addr, via } => {
                let Some(group) = self.groups.get(shard) else {
                    return;
                };
                if group.master == addr.addr {
                    return;
                }
                // Never move writes on a word alone: the node must say it
                // is a master.
                match self.verify_master(addr.addr).await {
                    Ok(()) => {
                        let old = self.groups[shard]
                            .master_node()
                            .map_or_else(|| "none".into(), |n| n.addr.label.to_string());
                        if self.groups[shard].add(addr.clone(), Origin::Sentinel) {
                            self.start_checker(addr.addr);
                        }
                        self.set_master(shard, addr.addr);
                        self.mark_master(shard, addr.addr);
                        self.record(
                            shard,
                            "sentinel",
                            format!(
                                "{via}: master moved from {old} to {} (verified with ROLE)",
                                addr.label
                            ),
                        );
                        self.finish_failover(shard);
                    }
                    Err(reason) => self.record(
                        shard,
                        "sentinel",
                        format!(
                            "{via} names {} as master, but it is not: {reason}; ignored",
                            addr.label
                        ),
                    ),
                }
            }
            SentinelReport::Replica { shard, addr } => {
                if self.group_of(addr.addr).is_none() && self.groups.get(shard).is_some() {
                    self.groups[shard].add(addr.clone(), Origin::Sentinel);
                    self.record(
                        shard,
                        "replica",
                        format!("Sentinel reports replica {}", addr.label),
                    );
                    self.start_checker(addr.addr);
                }
            }
        }
    }

    /// Moves the shard's writes to `addr`. The node they leave is deposed:
    /// should it report master again, it is the old master coming back.
    fn set_master(&mut self, shard: usize, addr: SocketAddr) {
        let group = &mut self.groups[shard];
        let old = group.master;
        if old == addr {
            return;
        }
        if let Some(node) = group.node_mut(old) {
            node.deposed = true;
        }
        if let Some(node) = group.node_mut(addr) {
            node.deposed = false;
        }
        group.master = addr;
    }

    /// A node just verified (or made) master counts as up and as master;
    /// probes sent before now are stale.
    fn mark_master(&mut self, shard: usize, addr: SocketAddr) {
        if let Some(node) = self.groups[shard].node_mut(addr) {
            let now = Instant::now();
            node.trust_since = Some(now);
            if node.health != Health::Up {
                node.health = Health::Up;
                node.since = now;
            }
            if let Some(probe) = &mut node.last {
                if !matches!(probe.replication.role, Role::Master { .. }) {
                    probe.replication.role = Role::Master {
                        replicas: Vec::new(),
                    };
                }
            }
        }
    }

    async fn verify_master(&self, addr: SocketAddr) -> Result<(), String> {
        let mut prober = Prober::new(
            addr,
            self.handshake.clone(),
            self.config
                .health_check
                .timeout
                .max(Duration::from_millis(200)),
        );
        match prober.command(&[b"ROLE"]).await? {
            Value::Array(items) => match items.first().and_then(Value::as_bytes) {
                Some(b"master") => Ok(()),
                Some(role) => Err(format!("ROLE says {}", String::from_utf8_lossy(role))),
                None => Err("ROLE: empty reply".into()),
            },
            other => Err(format!("ROLE: unexpected reply {other:?}")),
        }
    }

    /// Decisions that follow from the groups' state: ejection, and in
    /// managed mode failover, following another proxy's failover, and
    /// re-pointing stray nodes at the master.
    async fn reconcile(&mut self) {
        for shard in 0..self.groups.len() {
            if self.config.failover == Failover::Managed {
                self.choose_master(shard);
            }
            let usable = self.groups[shard].usable_master().is_ok();
            if usable {
                self.finish_failover(shard);
            } else if self.lost_master_at[shard].is_none() {
                // The outage began with the first failed probe, not when
                // the failures added up to `fall`.
                let since = self.groups[shard]
                    .master_node()
                    .and_then(|n| n.failing_since);
                self.lost_master_at[shard] = Some(since.unwrap_or_else(Instant::now));
            }
            if self.config.shard_down == ShardDown::Eject {
                self.eject_or_readmit(shard);
            }
            if self.config.failover == Failover::Managed {
                self.manage(shard, usable).await;
            }
        }
    }

    /// twemproxy's ejection: a shard whose master failed
    /// `server_failure_limit` probes in a row leaves the ring (its keys
    /// hash to the others); it comes back once healthy again, and no
    /// sooner than `server_retry_timeout` after it left, unless it has
    /// another master by then (a failover): `server_retry_timeout` guards
    /// against a flapping node, and keeping a shard that works off the
    /// ring would only send its keys to the wrong shards.
    fn eject_or_readmit(&mut self, shard: usize) {
        let down = self.groups[shard]
            .master_node()
            .is_some_and(|n| n.health == Health::Down);
        let failed_over = self.groups[shard].usable_master().is_ok()
            && self.ejected_at[shard]
                .is_some_and(|(_, master)| master != self.groups[shard].master);
        let group = &mut self.groups[shard];
        match (group.ejected, down) {
            (false, true) => {
                group.ejected = true;
                self.ejected_at[shard] = Some((Instant::now(), group.master));
                self.record(shard, "eject", "shard ejected from the ring".into());
            }
            (true, false)
                if failed_over
                    || self.ejected_at[shard]
                        .is_none_or(|(at, _)| at.elapsed() >= self.config.server_retry_timeout) =>
            {
                group.ejected = false;
                self.ejected_at[shard] = None;
                self.record(shard, "eject", "shard back in the ring".into());
            }
            _ => {}
        }
    }

    fn finish_failover(&mut self, shard: usize) {
        if let Some(lost) = self.lost_master_at[shard].take() {
            self.deferred_to[shard] = None;
            let took = lost.elapsed();
            if self.groups[shard]
                .master_node()
                .is_some_and(|n| n.health != Health::Unknown)
            {
                self.state.stats.failovers.fetch_add(1, Relaxed);
                self.state
                    .stats
                    .failover_micros
                    .fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
                let label = self.groups[shard]
                    .master_node()
                    .map(|n| n.addr.label.clone());
                self.record(
                    shard,
                    "master",
                    format!(
                        "writes go to {} again, {} ms after the master was lost",
                        label.as_deref().unwrap_or("?"),
                        took.as_millis()
                    ),
                );
            }
        }
    }

    /// Managed mode: when several nodes report master, writes go to the
    /// one that holds the data ([`Group::masters`]); when that is unclear,
    /// the shard refuses writes and an operator decides.
    fn choose_master(&mut self, shard: usize) {
        let verdict = self.groups[shard].masters();
        let conflict = match &verdict {
            Masters::Conflict(why) => Some(why.clone()),
            Masters::One | Masters::Resolved { .. } => None,
        };
        // Once per conflict, not at every probe (offsets in the text move).
        match (&self.groups[shard].conflict, &conflict) {
            (None, Some(why)) => self.record(shard, "two-masters", why.clone()),
            (Some(_), None) => self.record(
                shard,
                "two-masters",
                "the conflict is over: one master holds the data".into(),
            ),
            _ => {}
        }
        self.groups[shard].conflict = conflict;
        if let Masters::Resolved { keep, stale } = verdict {
            if keep != self.groups[shard].master {
                let label = |addr| {
                    self.groups[shard]
                        .node(addr)
                        .map_or_else(|| addr.to_string(), |n| n.addr.label.to_string())
                };
                let message = format!(
                    "several nodes report master; writes go to {}, which holds the data \
                     (most replicas, then highest offset); stale: {}",
                    label(keep),
                    stale
                        .iter()
                        .map(|a| label(*a))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                self.record(shard, "two-masters", message);
                self.set_master(shard, keep);
            }
        }
    }

    async fn manage(&mut self, shard: usize, usable: bool) {
        // Two masters that might both hold data: no REPLICAOF at all.
        if self.groups[shard].conflict.is_some() {
            return;
        }
        if usable {
            self.repoint_strays(shard).await;
            return;
        }
        // Like a failover of its own, following another node needs the
        // master lost for `fall` probes (or saying it is a replica): one
        // slow answer must not move writes to an empty node.
        if !self.groups[shard].master_lost() {
            return;
        }
        // Someone (another proxy, an operator) already promoted a node.
        if let Some(other) = self.groups[shard].other_master().map(|n| n.addr.clone()) {
            self.set_master(shard, other.addr);
            self.record(
                shard,
                "failover",
                format!("following {} which reports role master", other.label),
            );
            return;
        }
        if self.last_attempt[shard].is_some_and(|t| t.elapsed() < self.config.health_check.interval)
        {
            return;
        }
        self.last_attempt[shard] = Some(Instant::now());
        let Some(candidate) = self.groups[shard]
            .promotion_candidate()
            .map(|n| n.addr.clone())
        else {
            return;
        };
        match self.older_peer(shard).await {
            Ok(None) => {}
            Ok(Some(peer)) => {
                self.defer_to(shard, peer);
                return;
            }
            Err(e) => {
                self.record(
                    shard,
                    "failover",
                    format!("cannot check for other proxies: {e}; not promoting"),
                );
                return;
            }
        }
        self.record(
            shard,
            "failover",
            format!(
                "master lost; promoting {} (highest replication offset)",
                candidate.label
            ),
        );
        let mut prober = Prober::new(
            candidate.addr,
            self.handshake.clone(),
            self.config.health_check.timeout,
        );
        if let Err(e) = prober.command(&[b"REPLICAOF", b"NO", b"ONE"]).await {
            self.record(
                shard,
                "failover",
                format!("REPLICAOF NO ONE on {} failed: {e}", candidate.label),
            );
            return;
        }
        if let Err(e) = self.verify_master(candidate.addr).await {
            self.record(
                shard,
                "failover",
                format!("{} did not become master: {e}", candidate.label),
            );
            return;
        }
        self.set_master(shard, candidate.addr);
        self.mark_master(shard, candidate.addr);
        self.last_attempt[shard] = None;
        self.repoint_strays(shard).await;
    }

    /// Points healthy nodes that do not follow the master at it: replicas
    /// of the old master, or the old master itself when it comes back (so
    /// there is never more than one master). Only the failover leader acts.
    async fn repoint_strays(&mut self, shard: usize) {
        let master = self.groups[shard].master;
        let Some(master_node) = self.groups[shard].master_node() else {
            return;
        };
        let master_label = master_node.addr.label.clone();
        let strays: Vec<NodeAddr> = self.groups[shard]
            .nodes
            .iter()
            .filter(|n| n.addr.addr != master && n.health == Health::Up)
            .filter(|n| n.reports_master() || n.replicates_from() != Some(master))
            .map(|n| n.addr.clone())
            .collect();
        if strays.is_empty()
            || self.last_attempt[shard]
                .is_some_and(|t| t.elapsed() < self.config.health_check.interval)
        {
            return;
        }
        self.last_attempt[shard] = Some(Instant::now());
        match self.older_peer(shard).await {
            Ok(None) => {}
            Ok(Some(peer)) => return self.defer_to(shard, peer),
            Err(_) => return,
        }
        let (host, port) = split_label(&master_label, master);
        for stray in strays {
            let mut prober = Prober::new(
                stray.addr,
                self.handshake.clone(),
                self.config.health_check.timeout,
            );
            match prober
                .command(&[b"REPLICAOF", host.as_bytes(), port.as_bytes()])
                .await
            {
                Ok(_) => {
                    if let Some(node) = self.groups[shard].node_mut(stray.addr) {
                        // Not a master any more; the next probe has the details.
                        node.trust_since = Some(Instant::now());
                        if let Some(probe) = &mut node.last {
                            probe.replication.role = Role::Replica {
                                master_host: host.clone(),
                                master_port: master.port(),
                                link_up: false,
                                last_io_seconds: None,
                                offset: 0,
                            };
                        }
                    }
                    self.record(
                        shard,
                        "failover",
                        format!("{} now replicates from {master_label}", stray.label),
                    );
                }
                Err(e) => self.record(
                    shard,
                    "failover",
                    format!("REPLICAOF on {} failed: {e}", stray.label),
                ),
            }
        }
    }

    /// Records that this proxy leaves the group to an older managed proxy,
    /// once per peer until the shard has a usable master again.
    fn defer_to(&mut self, shard: usize, peer: String) {
        if self.deferred_to[shard].as_ref() != Some(&peer) {
            self.record(
                shard,
                "failover",
                format!(
                    "not acting: the older managed proxy {MANAGED_NAME}{peer} is connected \
                     to the group and acts; following the roles it sets"
                ),
            );
            self.deferred_to[shard] = Some(peer);
        }
    }

    /// Managed mode with several proxies: only the oldest managed proxy
    /// that can reach the group acts (promotes, re-points); the others
    /// follow the roles it sets. Proxies see each other through the names
    /// of their health connections (`CLIENT LIST` on the group's reachable
    /// nodes); instance ids sort by start time. Returns the oldest peer
    /// older than this proxy, if any: then this proxy does not act.
    async fn older_peer(&self, shard: usize) -> Result<Option<String>, String> {
        let mut reached = 0;
        let mut last_error = None;
        for node in self.groups[shard]
            .nodes
            .iter()
            .filter(|n| n.health == Health::Up)
        {
            let mut prober = Prober::new(
                node.addr.addr,
                self.handshake.clone(),
                self.config.health_check.timeout,
            );
            match prober
                .command(&[b"CLIENT", b"LIST", b"TYPE", b"normal"])
                .await
            {
                Ok(list) => {
                    reached += 1;
                    let text = crate::backend::wire::text(&list).unwrap_or_default();
                    let prefix = format!("name={MANAGED_NAME}");
                    let older = text
                        .split_whitespace()
                        .filter_map(|field| field.strip_prefix(prefix.as_str()))
                        .filter(|id| *id < &*self.instance)
                        .min();
                    if let Some(id) = older {
                        return Ok(Some(id.to_string()));
                    }
                }
                Err(e) => last_error = Some(e),
            }
        }
        match (reached, last_error) {
            (0, Some(e)) => Err(e),
            _ => Ok(None),
        }
    }

    fn forget_stale(&mut self) {
        for shard in 0..self.groups.len() {
            for node in self.groups[shard].forget_stale(FORGET_AFTER) {
                self.stop_checker(node.addr);
                self.record(
                    shard,
                    "replica",
                    format!("node {} left the shard (down for a minute)", node.label),
                );
            }
        }
    }

    /// Publishes a new topology if what routing needs changed; always
    /// refreshes the status the admin server shows.
    fn publish(&mut self) {
        let lag = self.config.max_replica_lag;
        let mut shards = Vec::with_capacity(self.groups.len());
        let mut changes = Vec::new();
        for (i, group) in self.groups.iter().enumerate() {
            let (master, down) = match group.usable_master() {
                Ok(addr) => (Some(addr.clone()), None),
                Err(reason) => (None, Some(Arc::<str>::from(reason))),
            };
            let (fit, unfit) = group.replica_fitness(lag);
            let fit_addrs: Vec<SocketAddr> = fit.iter().map(|n| n.addr).collect();
            for (node, reason) in &unfit {
                if self.fit[i].contains(&node.addr) {
                    changes.push((
                        i,
                        format!("replica {} no longer serves reads: {reason}", node.label),
                    ));
                    self.state.stats.replica_exclusions.fetch_add(1, Relaxed);
                }
            }
            for node in &fit {
                if !self.fit[i].contains(&node.addr) {
                    changes.push((i, format!("replica {} serves reads", node.label)));
                }
            }
            self.fit[i] = fit_addrs;
            shards.push(Shard {
                name: group.name.clone(),
                weight: group.weight,
                master,
                replicas: fit,
                down,
                ejected: group.ejected,
            });
        }
        for (shard, message) in changes {
            self.record(shard, "replica", message);
        }
        self.state.set_status(self.status());
        if shards == self.published {
            return;
        }
        self.version += 1;
        self.published = shards.clone();
        self.state
            .publish(Topology::build(&self.config, self.version, shards));
    }

    fn status(&self) -> PoolStatus {
        let lag = self.config.max_replica_lag;
        PoolStatus {
            pool: self.pool.clone(),
            failover: format!("{:?}", self.config.failover).to_lowercase(),
            version: self.version,
            shards: self
                .groups
                .iter()
                .map(|group| {
                    let (_, unfit) = group.replica_fitness(lag);
                    ShardStatus {
                        name: group.name.clone(),
                        master: group.usable_master().ok().map(|a| a.label.clone()),
                        down: group.usable_master().err(),
                        ejected: group.ejected,
                        nodes: group
                            .nodes
                            .iter()
                            .map(|node| {
                                let unfit_reason = unfit
                                    .iter()
                                    .find(|(n, _)| n.addr == node.addr.addr)
                                    .map(|(_, r)| r.clone());
                                NodeStatus::new(
                                    node,
                                    node.addr.addr == group.master,
                                    unfit_reason,
                                    group.replica_lag(node.addr.addr),
                                )
                            })
                            .collect(),
                    }
                })
                .collect(),
        }
    }
}

fn role_name(role: &Role) -> &'static str {
    match role {
        Role::Master { .. } => "master",
        Role::Replica { .. } => "replica",
    }
}

/// `host` and `port` of a `host:port` label (the address's if it does not parse).
fn split_label(label: &str, addr: SocketAddr) -> (String, String) {
    match label.rsplit_once(':') {
        Some((host, port)) => (host.to_string(), port.to_string()),
        None => (addr.ip().to_string(), addr.port().to_string()),
    }
}
