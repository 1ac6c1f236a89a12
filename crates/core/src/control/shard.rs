//! One shard's controller state: its replication group and the
//! bookkeeping failover decisions need, in one struct.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::sentinel::Claims;
use crate::topology::group::{Group, Health, Masters};
use crate::topology::info::Role;
use crate::topology::NodeAddr;

/// One shard as the controller knows it.
#[derive(Debug, Clone)]
pub struct ShardState {
    pub group: Group,
    /// When its master was found unusable (failover timing).
    pub lost_master_at: Option<Instant>,
    /// The last managed attempt (one per health interval).
    pub last_attempt: Option<Instant>,
    /// When it was ejected, and the master it had then.
    pub ejected_at: Option<(Instant, SocketAddr)>,
    /// The older managed proxy this one last deferred to (so the event is
    /// recorded once, not at every attempt).
    pub deferred_to: Option<String>,
    /// Replicas last published as fit (to log changes).
    pub fit: Vec<SocketAddr>,
    /// What the pool's Sentinels say about its master.
    pub claims: Claims,
    /// A Sentinel named its master (for the end of startup).
    pub heard_from_sentinel: bool,
    /// Nodes a Sentinel named master, being asked their ROLE.
    pub verifying: Vec<SocketAddr>,
    /// A managed operation is under way (peers asked, a promotion, a
    /// re-pointing): no other starts meanwhile.
    pub busy: bool,
    /// REPLICAOF commands still out.
    pub repointing: usize,
}

impl ShardState {
    pub fn new(group: Group, sentinels: usize) -> ShardState {
        ShardState {
            group,
            lost_master_at: None,
            last_attempt: None,
            ejected_at: None,
            deferred_to: None,
            fit: Vec::new(),
            claims: Claims::new(sentinels),
            heard_from_sentinel: false,
            verifying: Vec::new(),
            busy: false,
            repointing: 0,
        }
    }

    /// Moves the shard's writes to `addr`. The node they leave is deposed:
    /// should it report master again, it is the old master coming back.
    pub fn set_master(&mut self, addr: SocketAddr) {
        let old = self.group.master;
        if old == addr {
            return;
        }
        if let Some(node) = self.group.node_mut(old) {
            node.deposed = true;
        }
        if let Some(node) = self.group.node_mut(addr) {
            node.deposed = false;
        }
        self.group.master = addr;
    }

    /// A node just verified (or made) master counts as up and as master;
    /// probes sent before `now` are stale.
    pub fn mark_master(&mut self, addr: SocketAddr, now: Instant) {
        if let Some(node) = self.group.node_mut(addr) {
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

    /// A node just told to replicate from `master`: not a master any more
    /// (the next probe has the details); probes sent before `now` are stale.
    pub fn mark_replica_of(&mut self, addr: SocketAddr, master: &NodeAddr, now: Instant) {
        let (host, port) = super::split_label(master);
        if let Some(node) = self.group.node_mut(addr) {
            node.trust_since = Some(now);
            if let Some(probe) = &mut node.last {
                probe.replication.role = Role::Replica {
                    master_host: host,
                    master_port: port,
                    master_addr: Some(master.addr),
                    link_up: false,
                    last_io_seconds: None,
                    offset: 0,
                };
            }
        }
    }

    /// Managed mode: decides which master holds the data when several
    /// nodes report master. Returns the event for a conflict that begins
    /// or ends, and for writes moved to the node that holds the data.
    pub fn choose_master(&mut self) -> (Option<String>, Option<String>) {
        let verdict = self.group.masters();
        let conflict = match &verdict {
            Masters::Conflict(why) => Some(why.clone()),
            Masters::One | Masters::Resolved { .. } => None,
        };
        // Once per conflict, not at every probe (offsets in the text move).
        let flipped = match (&self.group.conflict, &conflict) {
            (None, Some(why)) => Some(why.clone()),
            (Some(_), None) => Some("the conflict is over: one master holds the data".into()),
            _ => None,
        };
        self.group.conflict = conflict;
        let Masters::Resolved { keep, stale } = verdict else {
            return (flipped, None);
        };
        if keep == self.group.master {
            return (flipped, None);
        }
        let label = |addr: SocketAddr| {
            self.group
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
        self.set_master(keep);
        (flipped, Some(message))
    }

    /// Whether a managed attempt was made within `interval` of `now`.
    pub fn recently_attempted(&self, now: Instant, interval: Duration) -> bool {
        self.last_attempt
            .is_some_and(|t| now.saturating_duration_since(t) < interval)
    }

    /// Healthy nodes, to look for other proxies among their clients.
    pub fn healthy_nodes(&self) -> Vec<SocketAddr> {
        self.group
            .nodes
            .iter()
            .filter(|n| n.health == Health::Up)
            .map(|n| n.addr.addr)
            .collect()
    }

    /// Healthy nodes that do not follow the master: masters themselves, or
    /// replicas of another node.
    pub fn strays(&self) -> Vec<NodeAddr> {
        let master = self.group.master;
        if self.group.master_node().is_none() {
            return Vec::new();
        }
        self.group
            .nodes
            .iter()
            .filter(|n| n.addr.addr != master && n.health == Health::Up)
            .filter(|n| n.reports_master() || n.replicates_from() != Some(master))
            .map(|n| n.addr.clone())
            .collect()
    }
}
