//! The pool controller's decisions, as a pure function of state and input:
//! [`Kernel::decide`] takes what happened (a probe's result, a Sentinel's
//! word, the outcome of a command the controller asked for) and returns
//! what to do ([`Action`]s). It never waits and never touches the network;
//! an executor (the proxy's `control` module) runs the actions, each
//! concurrently, and feeds their results back as inputs. So a slow node
//! never holds up another shard's decisions, and every decision that
//! failover correctness rests on is tested here with a fake clock.
//!
//! What it decides: each node's health (from `rise`/`fall` probes), each
//! shard's master (following Sentinel after a ROLE check, or failing over
//! by itself in managed mode), which replicas serve reads, ejection
//! (twemproxy's `auto_eject_hosts`), and when to publish a new topology.
//!
//! # Layout
//! - `shard`: [`ShardState`], one shard's group and failover bookkeeping.
//! - `reconfigure`: [`Kernel::reconfigure`], a reload's new configuration.
//! - `sentinel`: [`sentinel::Claims`], which Sentinel to believe.
//! - `tests`: table-driven tests of the decisions.

mod reconfigure;
pub mod sentinel;
mod shard;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Failover, PoolConfig, ShardDown};
use crate::error::NodeError;
use crate::topology::group::{Health, Origin};
use crate::topology::info::Role;
use crate::topology::probe::Probe;
use crate::topology::{NodeAddr, NodeStatus, PoolStatus, Shard, ShardStatus};
pub use shard::ShardState;

/// Learned nodes that stay down this long are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60);
/// An event is not recorded again within this long (every Sentinel
/// reports the same thing).
const EVENT_DEDUP: Duration = Duration::from_secs(5);

/// Health connections of managed-mode proxies are named this plus the
/// instance id: managed proxies defer to older ones by it, and must not
/// mistake a proxy that only watches (`failover: none` or `sentinel`,
/// named [`WATCHER_NAME`]) for one that would fail over.
pub const MANAGED_NAME: &str = "shardgate-managed-";
pub const WATCHER_NAME: &str = "shardgate-health-";

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A health probe's outcome; `started` is when it was sent (a probe
    /// older than a role change the proxy made is stale).
    Probed {
        addr: SocketAddr,
        started: Instant,
        result: Result<Probe, NodeError>,
        /// The node is known to be busy on the proxy's own behalf (a big
        /// key being moved): a probe it did not answer counts as busy,
        /// not as a failure.
        busy_with: Option<String>,
    },
    /// Sentinel number `sentinel` (in the pool's list) names the shard's
    /// master: from a query, with its config epoch, or from
    /// `+switch-master` (no epoch).
    SentinelMaster {
        sentinel: usize,
        shard: usize,
        addr: NodeAddr,
        epoch: Option<u64>,
        /// Which Sentinel said it, and how (for events).
        via: String,
    },
    /// A Sentinel lists `addr` as a replica of the shard.
    SentinelReplica { shard: usize, addr: NodeAddr },
    /// The outcome of [`Action::Verify`].
    Verified {
        shard: usize,
        addr: NodeAddr,
        via: String,
        result: Result<(), NodeError>,
    },
    /// The outcome of [`Action::FindPeers`]: the oldest managed proxy
    /// older than this one connected to the group, if any.
    Peers {
        shard: usize,
        result: Result<Option<String>, NodeError>,
        then: AfterPeers,
    },
    /// The outcome of [`Action::Promote`].
    Promoted {
        shard: usize,
        node: NodeAddr,
        result: Result<(), NodeError>,
    },
    /// The outcome of [`Action::Repoint`].
    Repointed {
        shard: usize,
        node: NodeAddr,
        result: Result<(), NodeError>,
    },
    /// Startup is over (the first probes are in, or their time is up):
    /// from now on the controller decides and publishes.
    Settled,
    /// About once a second: housekeeping (forgetting long-gone nodes).
    Tick,
}

/// What to do after the peers are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterPeers {
    Promote(NodeAddr),
    Repoint(Vec<NodeAddr>),
}

/// What the executor does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start health probes of a node (every group member is probed).
    Probe(NodeAddr),
    StopProbing(SocketAddr),
    /// Ask `addr` its ROLE; answer with [`Input::Verified`].
    Verify {
        shard: usize,
        addr: NodeAddr,
        via: String,
    },
    /// Look for older managed proxies among the clients of `nodes`
    /// (CLIENT LIST); answer with [`Input::Peers`].
    FindPeers {
        shard: usize,
        nodes: Vec<SocketAddr>,
        then: AfterPeers,
    },
    /// `REPLICAOF NO ONE` on the node, then check its ROLE; answer with
    /// [`Input::Promoted`].
    Promote {
        shard: usize,
        node: NodeAddr,
    },
    /// `REPLICAOF host port` on the node; answer with [`Input::Repointed`].
    Repoint {
        shard: usize,
        node: NodeAddr,
        host: String,
        port: u16,
    },
    /// Something worth an event (and a log line).
    Event {
        shard: Option<usize>,
        kind: EventKind,
        message: String,
    },
    /// A shard got a usable master back after `outage` without one.
    FailedOver {
        outage: Duration,
    },
    /// A node went down or came back up.
    HealthFlipped,
    /// A replica stopped serving reads.
    ReplicaExcluded,
    /// Routing must change: publish these shards as topology `version`.
    Publish {
        version: u64,
        shards: Vec<Shard>,
    },
}

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Health,
    Busy,
    Role,
    Replica,
    Sentinel,
    Master,
    Failover,
    TwoMasters,
    Eject,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Health => "health",
            EventKind::Busy => "busy",
            EventKind::Role => "role",
            EventKind::Replica => "replica",
            EventKind::Sentinel => "sentinel",
            EventKind::Master => "master",
            EventKind::Failover => "failover",
            EventKind::TwoMasters => "two-masters",
            EventKind::Eject => "eject",
        }
    }
}

/// One pool's controller state.
pub struct Kernel {
    config: Arc<PoolConfig>,
    /// This proxy's instance id (managed proxies defer to older ones).
    instance: Arc<str>,
    shards: Vec<ShardState>,
    /// Probes in a row that mark a node down.
    fall: u32,
    /// Startup is over: decisions and publishing are on.
    settled: bool,
    version: u64,
    published: Vec<Shard>,
    /// Events recorded lately (see [`EVENT_DEDUP`]).
    recent: VecDeque<(String, Instant)>,
    /// Nodes a reload removed: not learned again from a master's INFO or
    /// from Sentinel (they may still replicate; the file says they no
    /// longer serve).
    retired: BTreeSet<SocketAddr>,
    /// The configuration changed: publish even if routing did not.
    republish: bool,
    actions: Vec<Action>,
}

impl Kernel {
    /// The pool's configured groups; `published` is the topology workers
    /// start with.
    pub fn new(config: Arc<PoolConfig>, instance: Arc<str>, now: Instant) -> Kernel {
        let shards = (config.servers.iter().zip(&config.replicas))
            .map(|(server, replicas)| {
                let group = reconfigure::new_group(server, replicas, now);
                ShardState::new(group, config.sentinels.len())
            })
            .collect();
        let fall = fall_of(&config);
        let published = crate::topology::Topology::from_config(&config).shards;
        Kernel {
            config,
            instance,
            shards,
            fall,
            settled: false,
            version: 0,
            published,
            recent: VecDeque::new(),
            retired: BTreeSet::new(),
            republish: false,
            actions: Vec::new(),
        }
    }

    /// The name the health checks' connections carry (see [`MANAGED_NAME`]).
    pub fn client_name(&self) -> String {
        match self.config.failover {
            Failover::Managed => format!("{MANAGED_NAME}{}", self.instance),
            Failover::None | Failover::Sentinel => format!("{WATCHER_NAME}{}", self.instance),
        }
    }

    /// What to do at start: probe every configured node.
    pub fn start(&mut self) -> Vec<Action> {
        self.shards
            .iter()
            .flat_map(|s| s.group.nodes.iter())
            .map(|n| Action::Probe(n.addr.clone()))
            .collect()
    }

    /// Whether startup may end: every node probed once and, with
    /// Sentinel, every shard's master heard of.
    pub fn ready(&self) -> bool {
        let probed = self
            .shards
            .iter()
            .all(|s| s.group.nodes.iter().all(|n| n.health != Health::Unknown));
        let heard = self.config.failover != Failover::Sentinel
            || self.shards.iter().all(|s| s.heard_from_sentinel);
        probed && heard
    }

    /// The shards' groups (for tests and diagnostics).
    pub fn shards(&self) -> &[ShardState] {
        &self.shards
    }

    /// Decides what `input` calls for, at `now`.
    pub fn decide(&mut self, now: Instant, input: Input) -> Vec<Action> {
        match input {
            Input::Probed {
                addr,
                started,
                result,
                busy_with,
            } => self.probed(addr, started, result, busy_with, now),
            Input::SentinelMaster {
                sentinel,
                shard,
                addr,
                epoch,
                via,
            } => self.sentinel_master(sentinel, shard, addr, epoch, via, now),
            Input::SentinelReplica { shard, addr } => self.sentinel_replica(shard, addr, now),
            Input::Verified {
                shard,
                addr,
                via,
                result,
            } => self.verified(shard, addr, via, result, now),
            Input::Peers {
                shard,
                result,
                then,
            } => self.peers(shard, result, then),
            Input::Promoted {
                shard,
                node,
                result,
            } => self.promoted(shard, node, result, now),
            Input::Repointed {
                shard,
                node,
                result,
            } => self.repointed(shard, node, result, now),
            Input::Settled => self.settled = true,
            Input::Tick => self.forget_stale(now),
        }
        if self.settled {
            for shard in 0..self.shards.len() {
                self.reconcile(shard, now);
            }
            self.publish(now);
        }
        std::mem::take(&mut self.actions)
    }

    fn event(&mut self, shard: Option<usize>, kind: EventKind, message: String) {
        self.actions.push(Action::Event {
            shard,
            kind,
            message,
        });
    }

    /// An event, unless the same was recorded in the last few seconds.
    fn event_once(&mut self, shard: Option<usize>, kind: EventKind, message: String, now: Instant) {
        self.recent
            .retain(|(_, at)| now.saturating_duration_since(*at) < EVENT_DEDUP);
        if self.recent.iter().any(|(seen, _)| *seen == message) {
            return;
        }
        self.recent.push_back((message.clone(), now));
        self.event(shard, kind, message);
    }

    fn shard_of(&self, addr: SocketAddr) -> Option<usize> {
        self.shards
            .iter()
            .position(|s| s.group.node(addr).is_some())
    }

    fn probed(
        &mut self,
        addr: SocketAddr,
        started: Instant,
        result: Result<Probe, NodeError>,
        busy_with: Option<String>,
        now: Instant,
    ) {
        let Some(shard) = self.shard_of(addr) else {
            return;
        };
        // Silent because the proxy keeps it busy: alive, as with BUSY.
        let result = match (result, busy_with) {
            (Err(_), Some(reason)) => {
                let last = self
                    .shards
                    .get(shard)
                    .and_then(|s| s.group.node(addr))
                    .and_then(|n| n.last.clone());
                match last {
                    Some(last) => Ok(Probe {
                        busy: Some(reason),
                        new_connection: false,
                        ..last
                    }),
                    None => Err(NodeError::Unexpected(reason)),
                }
            }
            (result, _) => result,
        };
        let (rise, fall) = (self.config.health_check.rise, self.fall);
        let Some(node) = self
            .shards
            .get_mut(shard)
            .and_then(|s| s.group.node_mut(addr))
        else {
            return;
        };
        if node.trust_since.is_some_and(|since| started < since) {
            return;
        }
        let label = node.addr.label.clone();
        let before = node.role().map(role_name);
        let was_busy = node.is_busy();
        let error = result.as_ref().err().cloned();
        let flipped = node.apply(result, rise, fall, now);
        let after = node.role().map(role_name);
        let busy = node
            .is_busy()
            .then(|| node.last.as_ref().and_then(|p| p.busy.clone()));
        let learned = self.learn_nodes(shard, addr, now);
        if let Some(health) = flipped {
            self.actions.push(Action::HealthFlipped);
            let message = match (health, error) {
                (Health::Down, Some(reason)) => format!("node {label} is down: {reason}"),
                (health, _) => format!("node {label} is {}", health.as_str()),
            };
            self.event(Some(shard), EventKind::Health, message);
        }
        match (was_busy, busy) {
            (false, Some(reason)) => self.event(
                Some(shard),
                EventKind::Busy,
                format!(
                    "node {label} is busy (alive, but answering {}); SCRIPT KILL or FUNCTION KILL through the proxy ends it",
                    reason.unwrap_or_default()
                ),
            ),
            (true, None) => self.event(
                Some(shard),
                EventKind::Busy,
                format!("node {label} is no longer busy"),
            ),
            _ => {}
        }
        if before.is_some() && before != after {
            self.event(
                Some(shard),
                EventKind::Role,
                format!(
                    "node {label} now reports role {}",
                    after.unwrap_or("unknown")
                ),
            );
        }
        for node in learned {
            self.event(
                Some(shard),
                EventKind::Replica,
                format!("node {} joined the shard", node.label),
            );
            self.actions.push(Action::Probe(node));
        }
    }

    /// Nodes a probe reveals (a master's replicas, a replica's master),
    /// added to the shard. Addresses come resolved with the probe.
    fn learn_nodes(&mut self, shard: usize, addr: SocketAddr, now: Instant) -> Vec<NodeAddr> {
        if !self.config.discover_replicas {
            return Vec::new();
        }
        let Some(node) = self.shards.get(shard).and_then(|s| s.group.node(addr)) else {
            return Vec::new();
        };
        let found: Vec<NodeAddr> = match node.role() {
            Some(Role::Master { replicas }) => replicas
                .iter()
                .filter_map(|r| Some(NodeAddr::new(r.addr?, format!("{}:{}", r.ip, r.port))))
                .collect(),
            Some(Role::Replica {
                master_host,
                master_port,
                master_addr: Some(master),
                ..
            }) => vec![NodeAddr::new(
                *master,
                format!("{master_host}:{master_port}"),
            )],
            _ => Vec::new(),
        };
        let mut added = Vec::new();
        for node in found {
            if self.shard_of(node.addr).is_some() || self.retired.contains(&node.addr) {
                continue;
            }
            if let Some(state) = self.shards.get_mut(shard) {
                if state.group.add(node.clone(), Origin::Discovered, now) {
                    added.push(node);
                }
            }
        }
        added
    }

    fn sentinel_master(
        &mut self,
        sentinel: usize,
        shard: usize,
        addr: NodeAddr,
        epoch: Option<u64>,
        via: String,
        now: Instant,
    ) {
        let Some(state) = self.shards.get_mut(shard) else {
            return;
        };
        match epoch {
            Some(epoch) => {
                if let Err(newest) = state.claims.judge(sentinel, epoch, addr.addr, now) {
                    let message = format!(
                        "{via} names {} (config epoch {epoch}) as master, but {} (epoch {}) is newer or came first, and most Sentinels do not agree; not followed",
                        addr.label, newest.addr, newest.epoch
                    );
                    self.event_once(Some(shard), EventKind::Sentinel, message, now);
                    return;
                }
            }
            None => state.claims.switched(sentinel, addr.addr, now),
        }
        if state.group.master == addr.addr {
            state.heard_from_sentinel = true;
            return;
        }
        // Never move writes on a word alone: the node must say it is a
        // master (one ROLE check at a time per node).
        if state.verifying.contains(&addr.addr) {
            return;
        }
        state.verifying.push(addr.addr);
        self.actions.push(Action::Verify { shard, addr, via });
    }

    fn verified(
        &mut self,
        shard: usize,
        addr: NodeAddr,
        via: String,
        result: Result<(), NodeError>,
        now: Instant,
    ) {
        let Some(state) = self.shards.get_mut(shard) else {
            return;
        };
        state.verifying.retain(|a| *a != addr.addr);
        state.heard_from_sentinel = true;
        if let Err(reason) = result {
            let message = format!(
                "{via} names {} as master, but it is not: {reason}; ignored",
                addr.label
            );
            self.event(Some(shard), EventKind::Sentinel, message);
            return;
        }
        // The newest word may have moved on while ROLE was asked.
        if state.claims.newest.is_some_and(|c| c.addr != addr.addr) {
            return;
        }
        let old = state
            .group
            .master_node()
            .map_or_else(|| "none".into(), |n| n.addr.label.to_string());
        if state.group.add(addr.clone(), Origin::Sentinel, now) {
            self.actions.push(Action::Probe(addr.clone()));
        }
        state.set_master(addr.addr);
        state.mark_master(addr.addr, now);
        self.event(
            Some(shard),
            EventKind::Sentinel,
            format!(
                "{via}: master moved from {old} to {} (verified with ROLE)",
                addr.label
            ),
        );
        self.finish_failover(shard, now);
    }

    fn sentinel_replica(&mut self, shard: usize, addr: NodeAddr, now: Instant) {
        if self.shard_of(addr.addr).is_some() || self.retired.contains(&addr.addr) {
            return;
        }
        let Some(state) = self.shards.get_mut(shard) else {
            return;
        };
        state.group.add(addr.clone(), Origin::Sentinel, now);
        self.event(
            Some(shard),
            EventKind::Replica,
            format!("Sentinel reports replica {}", addr.label),
        );
        self.actions.push(Action::Probe(addr));
    }

    /// Decisions that follow from a shard's state: its master (managed
    /// mode), the failover clock, ejection, and managed actions.
    fn reconcile(&mut self, shard: usize, now: Instant) {
        let managed = self.config.failover == Failover::Managed;
        if managed {
            self.choose_master(shard);
        }
        let Some(state) = self.shards.get_mut(shard) else {
            return;
        };
        let usable = state.group.usable_master().is_ok();
        if usable {
            self.finish_failover(shard, now);
        } else if state.lost_master_at.is_none() {
            // The outage began with the first failed probe, not when the
            // failures added up to `fall`.
            let since = state.group.master_node().and_then(|n| n.failing_since);
            state.lost_master_at = Some(since.unwrap_or(now));
        }
        if self.config.shard_down == ShardDown::Eject {
            self.eject_or_readmit(shard, now);
        }
        if managed {
            self.manage(shard, usable, now);
        }
    }

    /// twemproxy's ejection: a shard whose master failed
    /// `server_failure_limit` probes in a row leaves the ring (its keys
    /// hash to the others); it comes back once healthy again, and no
    /// sooner than `server_retry_timeout` after it left, unless it has
    /// another master by then (a failover): `server_retry_timeout` guards
    /// against a flapping node, and keeping a shard that works off the
    /// ring would only send its keys to the wrong shards.
    fn eject_or_readmit(&mut self, shard: usize, now: Instant) {
        let retry = self.config.server_retry_timeout;
        let Some(state) = self.shards.get_mut(shard) else {
            return;
        };
        let down = state
            .group
            .master_node()
            .is_some_and(|n| n.health == Health::Down);
        let failed_over = state.group.usable_master().is_ok()
            && state
                .ejected_at
                .is_some_and(|(_, master)| master != state.group.master);
        match (state.group.ejected, down) {
            (false, true) => {
                state.group.ejected = true;
                state.ejected_at = Some((now, state.group.master));
                self.event(
                    Some(shard),
                    EventKind::Eject,
                    "shard ejected from the ring".into(),
                );
            }
            (true, false)
                if failed_over
                    || state
                        .ejected_at
                        .is_none_or(|(at, _)| now.saturating_duration_since(at) >= retry) =>
            {
                state.group.ejected = false;
                state.ejected_at = None;
                self.event(
                    Some(shard),
                    EventKind::Eject,
                    "shard back in the ring".into(),
                );
            }
            _ => {}
        }
    }

    /// The shard has a usable master again: the outage's length is
    /// counted (unless the master was never known to be up).
    fn finish_failover(&mut self, shard: usize, now: Instant) {
        let Some(state) = self.shards.get_mut(shard) else {
            return;
        };
        let Some(lost) = state.lost_master_at.take() else {
            return;
        };
        state.deferred_to = None;
        let Some(master) = state
            .group
            .master_node()
            .filter(|n| n.health != Health::Unknown)
        else {
            return;
        };
        let outage = now.saturating_duration_since(lost);
        let label = master.addr.label.clone();
        self.actions.push(Action::FailedOver { outage });
        self.event(
            Some(shard),
            EventKind::Master,
            format!(
                "writes go to {label} again, {} ms after the master was lost",
                outage.as_millis()
            ),
        );
    }

    /// Managed mode: when several nodes report master, writes go to the
    /// one that holds the data; when that is unclear, the shard refuses
    /// writes and an operator decides.
    fn choose_master(&mut self, shard: usize) {
        let Some(state) = self.shards.get_mut(shard) else {
            return;
        };
        let (message, changed) = state.choose_master();
        if let Some(message) = message {
            self.event(Some(shard), EventKind::TwoMasters, message);
        }
        if let Some(message) = changed {
            self.event(Some(shard), EventKind::TwoMasters, message);
        }
    }

    fn manage(&mut self, shard: usize, usable: bool, now: Instant) {
        let interval = self.config.health_check.interval;
        let Some(state) = self.shards.get_mut(shard) else {
            return;
        };
        // Two masters that might both hold data: no REPLICAOF at all; and
        // one operation at a time.
        if state.group.conflict.is_some() || state.busy {
            return;
        }
        if usable {
            self.repoint_strays(shard, now);
            return;
        }
        // Like a failover of its own, following another node needs the
        // master lost for `fall` probes (or saying it is a replica): one
        // slow answer must not move writes to an empty node.
        if !state.group.master_lost() {
            return;
        }
        // Someone (another proxy, an operator) already promoted a node.
        if let Some(other) = state.group.other_master().map(|n| n.addr.clone()) {
            state.set_master(other.addr);
            self.event(
                Some(shard),
                EventKind::Failover,
                format!("following {} which reports role master", other.label),
            );
            return;
        }
        if state.recently_attempted(now, interval) {
            return;
        }
        state.last_attempt = Some(now);
        let Some(candidate) = state.group.promotion_candidate().map(|n| n.addr.clone()) else {
            return;
        };
        state.busy = true;
        let nodes = state.healthy_nodes();
        self.actions.push(Action::FindPeers {
            shard,
            nodes,
            then: AfterPeers::Promote(candidate),
        });
    }

    /// Points healthy nodes that do not follow the master at it: replicas
    /// of the old master, or the old master itself when it comes back (so
    /// there is never more than one master). Only the failover leader acts.
    fn repoint_strays(&mut self, shard: usize, now: Instant) {
        let interval = self.config.health_check.interval;
        let Some(state) = self.shards.get_mut(shard) else {
            return;
        };
        let strays = state.strays();
        if strays.is_empty() || state.recently_attempted(now, interval) {
            return;
        }
        state.last_attempt = Some(now);
        state.busy = true;
        let nodes = state.healthy_nodes();
        self.actions.push(Action::FindPeers {
            shard,
            nodes,
            then: AfterPeers::Repoint(strays),
        });
    }

    fn peers(&mut self, shard: usize, result: Result<Option<String>, NodeError>, then: AfterPeers) {
        let Some(state) = self.shards.get_mut(shard) else {
            return;
        };
        state.busy = false;
        match (result, then) {
            (Ok(Some(peer)), _) => self.defer_to(shard, peer),
            (Err(e), AfterPeers::Promote(_)) => self.event(
                Some(shard),
                EventKind::Failover,
                format!("cannot check for other proxies: {e}; not promoting"),
            ),
            (Err(_), AfterPeers::Repoint(_)) => {}
            (Ok(None), AfterPeers::Promote(candidate)) => {
                // Things may have moved while the peers were asked.
                let still = state.group.conflict.is_none()
                    && state.group.master_lost()
                    && state
                        .group
                        .promotion_candidate()
                        .is_some_and(|n| n.addr == candidate);
                if !still {
                    return;
                }
                state.busy = true;
                self.event(
                    Some(shard),
                    EventKind::Failover,
                    format!(
                        "master lost; promoting {} (highest replication offset)",
                        candidate.label
                    ),
                );
                self.actions.push(Action::Promote {
                    shard,
                    node: candidate,
                });
            }
            (Ok(None), AfterPeers::Repoint(strays)) => {
                let Some(master) = state.group.master_node() else {
                    return;
                };
                let (host, port) = split_label(&master.addr);
                state.repointing = strays.len();
                state.busy = !strays.is_empty();
                for node in strays {
                    self.actions.push(Action::Repoint {
                        shard,
                        node,
                        host: host.clone(),
                        port,
                    });
                }
            }
        }
    }

    fn promoted(
        &mut self,
        shard: usize,
        node: NodeAddr,
        result: Result<(), NodeError>,
        now: Instant,
    ) {
        let Some(state) = self.shards.get_mut(shard) else {
            return;
        };
        state.busy = false;
        if let Err(e) = result {
            self.event(
                Some(shard),
                EventKind::Failover,
                format!("promoting {} failed: {e}", node.label),
            );
            return;
        }
        state.set_master(node.addr);
        state.mark_master(node.addr, now);
        // The strays are re-pointed right away.
        state.last_attempt = None;
    }

    fn repointed(
        &mut self,
        shard: usize,
        node: NodeAddr,
        result: Result<(), NodeError>,
        now: Instant,
    ) {
        let Some(state) = self.shards.get_mut(shard) else {
            return;
        };
        state.repointing = state.repointing.saturating_sub(1);
        state.busy = state.repointing > 0;
        let master = state.group.master_node().map(|m| m.addr.clone());
        match (result, master) {
            (Ok(()), Some(master)) => {
                state.mark_replica_of(node.addr, &master, now);
                self.event(
                    Some(shard),
                    EventKind::Failover,
                    format!("{} now replicates from {}", node.label, master.label),
                );
            }
            (Ok(()), None) => {}
            (Err(e), _) => self.event(
                Some(shard),
                EventKind::Failover,
                format!("REPLICAOF on {} failed: {e}", node.label),
            ),
        }
    }

    /// Records that this proxy leaves the group to an older managed proxy,
    /// once per peer until the shard has a usable master again.
    fn defer_to(&mut self, shard: usize, peer: String) {
        let Some(state) = self.shards.get_mut(shard) else {
            return;
        };
        if state.deferred_to.as_ref() == Some(&peer) {
            return;
        }
        state.deferred_to = Some(peer.clone());
        self.event(
            Some(shard),
            EventKind::Failover,
            format!(
                "not acting: the older managed proxy {MANAGED_NAME}{peer} is connected \
                 to the group and acts; following the roles it sets"
            ),
        );
    }

    fn forget_stale(&mut self, now: Instant) {
        for shard in 0..self.shards.len() {
            let forgotten = match self.shards.get_mut(shard) {
                Some(state) => state.group.forget_stale(FORGET_AFTER, now),
                None => Vec::new(),
            };
            for node in forgotten {
                self.actions.push(Action::StopProbing(node.addr));
                self.event(
                    Some(shard),
                    EventKind::Replica,
                    format!("node {} left the shard (down for a minute)", node.label),
                );
            }
        }
    }

    /// Publishes a new topology if what routing needs changed, and notes
    /// replicas that start or stop serving reads.
    fn publish(&mut self, now: Instant) {
        let lag = self.config.max_replica_lag;
        let mut shards = Vec::with_capacity(self.shards.len());
        // (shard, excluded, message) for replicas that change.
        let mut changes = Vec::new();
        for (i, state) in self.shards.iter_mut().enumerate() {
            let group = &state.group;
            let (master, down) = match group.usable_master() {
                Ok(addr) => (Some(addr.clone()), None),
                Err(reason) => (None, Some(Arc::<str>::from(reason.to_string()))),
            };
            let (fit, unfit) = group.replica_fitness(lag, now);
            for (node, reason) in &unfit {
                if state.fit.contains(&node.addr) {
                    let message =
                        format!("replica {} no longer serves reads: {reason}", node.label);
                    changes.push((i, true, message));
                }
            }
            for node in &fit {
                if !state.fit.contains(&node.addr) {
                    changes.push((i, false, format!("replica {} serves reads", node.label)));
                }
            }
            state.fit = fit.iter().map(|n| n.addr).collect();
            shards.push(Shard {
                name: group.name.clone(),
                weight: group.weight,
                master,
                replicas: fit,
                standby: Vec::new(),
                down,
                ejected: group.ejected,
            });
        }
        // Published before the events that describe it: whoever reads
        // an event ("replica ... serves reads") finds routing agreeing.
        if shards != self.published || self.republish {
            self.republish = false;
            self.version += 1;
            self.published = shards.clone();
            self.actions.push(Action::Publish {
                version: self.version,
                shards,
            });
        }
        for (shard, excluded, message) in changes {
            if excluded {
                self.actions.push(Action::ReplicaExcluded);
            }
            self.event(Some(shard), EventKind::Replica, message);
        }
    }

    /// What the admin API shows about the pool.
    pub fn status(&self, now: Instant) -> PoolStatus {
        let lag = self.config.max_replica_lag;
        PoolStatus {
            pool: self.config.name.as_str().into(),
            failover: self.config.failover.name().into(),
            version: self.version,
            shards: self
                .shards
                .iter()
                .map(|state| {
                    let group = &state.group;
                    let (_, unfit) = group.replica_fitness(lag, now);
                    ShardStatus {
                        name: group.name.clone(),
                        master: group.usable_master().ok().map(|a| a.label.clone()),
                        down: group.usable_master().err().map(|e| e.to_string()),
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
                                    group.replica_lag(node.addr.addr, now),
                                )
                            })
                            .collect(),
                    }
                })
                .collect(),
        }
    }
}

/// Probes in a row that mark a node down: twemproxy ejects after
/// `server_failure_limit` failures in a row.
fn fall_of(config: &PoolConfig) -> u32 {
    match config.shard_down {
        ShardDown::Eject => config.server_failure_limit,
        ShardDown::Fail => config.health_check.fall,
    }
}

fn role_name(role: &Role) -> &'static str {
    match role {
        Role::Master { .. } => "master",
        Role::Replica { .. } => "replica",
    }
}

/// The host and port a node goes by (its label as configured or reported,
/// `host:port`), for REPLICAOF; its address's when the label is not one.
fn split_label(node: &NodeAddr) -> (String, u16) {
    match node.label.rsplit_once(':') {
        Some((host, port)) => match port.parse() {
            Ok(port) => (host.to_string(), port),
            Err(_) => (node.addr.ip().to_string(), node.addr.port()),
        },
        None => (node.addr.ip().to_string(), node.addr.port()),
    }
}
