//! A replication group as the controller sees it: its nodes, their health
//! (with rise/fall), their reported roles, which one is master, and which
//! replicas are fit to serve reads. Pure: probes go in, decisions come out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::info::Role;
use super::probe::Probe;
use super::NodeAddr;
use crate::config::ReplicaLag;
use crate::error::NodeError;

/// How the controller knows about a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A `servers:` line.
    Configured,
    /// A `replicas:` entry.
    Declared,
    /// Listed by its master's INFO replication, or named as a master by a replica.
    Discovered,
    /// Reported by Sentinel.
    Sentinel,
}

/// A node's health after rise/fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not probed yet.
    Unknown,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// One node of a group.
#[derive(Debug, Clone)]
pub struct NodeHealth {
    pub addr: NodeAddr,
    pub origin: Origin,
    pub health: Health,
    ok_streak: u32,
    fail_streak: u32,
    /// Failed `fall` probes in a row since it was last up: lost, in the
    /// sense a failover needs (one answer in between does not undo it;
    /// coming back up does).
    fell: bool,
    /// The last successful probe.
    pub last: Option<Probe>,
    pub last_error: Option<NodeError>,
    /// When `health` last changed.
    pub since: Instant,
    /// Probes started before this are stale: the proxy changed the node's
    /// role (or verified it) after they were sent.
    pub trust_since: Option<Instant>,
    /// When the current streak of failed probes began.
    pub failing_since: Option<Instant>,
    /// The proxy moved writes away from this node (it failed over from
    /// it, or followed another master): if it reports master again it is
    /// the old master coming back, whatever its offset says. Cleared once
    /// it reports a replica role.
    pub deposed: bool,
    /// Seen turning from replica into master on the same probe
    /// connection, and not by this proxy: someone promoted it on purpose
    /// (an operator's switchover, another tool), so the proxy never
    /// demotes it by itself. A replica that restarted as a master (a
    /// runtime REPLICAOF is not saved in its config) comes back on a new
    /// connection and is judged by its data like any other master.
    /// Cleared once it reports a replica role.
    pub seen_promoted: bool,
}

impl NodeHealth {
    pub fn new(addr: NodeAddr, origin: Origin, now: Instant) -> NodeHealth {
        NodeHealth {
            addr,
            origin,
            health: Health::Unknown,
            ok_streak: 0,
            fail_streak: 0,
            fell: false,
            last: None,
            last_error: None,
            since: now,
            trust_since: None,
            failing_since: None,
            deposed: false,
            seen_promoted: false,
        }
    }

    /// Applies one probe result. Returns the new health when it flipped.
    /// The first result decides at once; afterwards `rise` successes or
    /// `fall` failures in a row are needed.
    pub fn apply(
        &mut self,
        result: Result<Probe, NodeError>,
        rise: u32,
        fall: u32,
        now: Instant,
    ) -> Option<Health> {
        let next = match result {
            Ok(probe) => {
                if probe.replication.is_master() {
                    if self.reports_replica()
                        && self.health == Health::Up
                        && self.fail_streak == 0
                        && !probe.new_connection
                    {
                        self.seen_promoted = true;
                    }
                } else {
                    self.deposed = false;
                    self.seen_promoted = false;
                }
                self.ok_streak += 1;
                self.fail_streak = 0;
                self.failing_since = None;
                self.last = Some(probe);
                self.last_error = None;
                match self.health {
                    Health::Up => None,
                    Health::Unknown => Some(Health::Up),
                    Health::Down => (self.ok_streak >= rise).then_some(Health::Up),
                }
            }
            Err(reason) => {
                self.fail_streak += 1;
                self.fell |= self.fail_streak >= fall;
                self.failing_since.get_or_insert(now);
                self.ok_streak = 0;
                self.last_error = Some(reason);
                match self.health {
                    Health::Down => None,
                    Health::Unknown => Some(Health::Down),
                    Health::Up => (self.fail_streak >= fall).then_some(Health::Down),
                }
            }
        };
        if let Some(health) = next {
            self.health = health;
            self.since = now;
            if health == Health::Up {
                self.fell = false;
            }
        }
        next
    }

    /// Consecutive failed probes.
    pub fn fail_streak(&self) -> u32 {
        self.fail_streak
    }

    /// The last probe was answered `BUSY` (a long script runs).
    pub fn is_busy(&self) -> bool {
        self.last.as_ref().is_some_and(|p| p.busy.is_some())
    }

    pub fn role(&self) -> Option<&Role> {
        self.last.as_ref().map(|p| &p.replication.role)
    }

    pub fn reports_master(&self) -> bool {
        matches!(self.role(), Some(Role::Master { .. }))
    }

    pub fn reports_replica(&self) -> bool {
        matches!(self.role(), Some(Role::Replica { .. }))
    }

    /// The master this node replicates from, when it reports one.
    pub fn replicates_from(&self) -> Option<SocketAddr> {
        match self.role()? {
            Role::Replica { master_addr, .. } => *master_addr,
            Role::Master { .. } => None,
        }
    }

    /// The replication offset it reports (a replica's processed offset, a
    /// master's stream position).
    pub fn offset(&self) -> u64 {
        match (self.role(), &self.last) {
            (Some(Role::Replica { offset, .. }), _) => *offset,
            (_, Some(probe)) => probe.replication.master_repl_offset,
            _ => 0,
        }
    }
}

/// A replica's lag, from its master's `INFO replication`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// The `lag=` of its `slaveN` line (seconds since its last ACK; it
    /// acknowledges every second), plus how long the master has not
    /// answered probes.
    pub seconds: u64,
    /// The master's `master_repl_offset` minus the `offset=` it lists for
    /// the replica, both from the same INFO.
    pub bytes: u64,
}

/// Which node holds the data when several report role master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Masters {
    /// At most one healthy node reports master: nothing to decide.
    One,
    /// `keep` holds the data; every node in `stale` is clearly behind it
    /// and can be made its replica.
    Resolved {
        keep: SocketAddr,
        stale: Vec<SocketAddr>,
    },
    /// More than one could hold data the others lack; only an operator
    /// can tell which to keep. Says which nodes and why.
    Conflict(String),
}

/// Why a shard's writes have nowhere to go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// Two nodes may both hold data as masters (see `ReplicationGroup::conflict`).
    #[error("{0}")]
    Conflict(String),
    #[error("no master known")]
    NoMaster,
    /// Its health checks fail; `error` is the last one, if any.
    #[error("master {} is down ({})", .master.label, .error.as_ref().map_or_else(|| "health checks failing".to_string(), NodeError::to_string))]
    Down {
        master: NodeAddr,
        error: Option<NodeError>,
    },
    #[error("{} reports a replica role", .0.label)]
    ReportsReplica(NodeAddr),
}

/// One shard's replication group.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: Arc<str>,
    pub weight: u32,
    pub nodes: Vec<NodeHealth>,
    /// The node writes go to, when usable.
    pub master: SocketAddr,
    /// Taken off the ring (`shard_down: eject`).
    pub ejected: bool,
    /// Managed mode: set while several nodes report master and the proxy
    /// cannot tell which holds the data; the shard refuses writes meanwhile.
    pub conflict: Option<String>,
}

impl Group {
    pub fn node(&self, addr: SocketAddr) -> Option<&NodeHealth> {
        self.nodes.iter().find(|n| n.addr.addr == addr)
    }

    pub fn node_mut(&mut self, addr: SocketAddr) -> Option<&mut NodeHealth> {
        self.nodes.iter_mut().find(|n| n.addr.addr == addr)
    }

    /// Adds a node unless it is already a member. True when added.
    pub fn add(&mut self, addr: NodeAddr, origin: Origin, now: Instant) -> bool {
        if self.node(addr.addr).is_some() {
            return false;
        }
        self.nodes.push(NodeHealth::new(addr, origin, now));
        true
    }

    pub fn master_node(&self) -> Option<&NodeHealth> {
        self.node(self.master)
    }

    /// The master if writes may go to it; else why not. A node that
    /// reports a replica role is never written to.
    pub fn usable_master(&self) -> Result<&NodeAddr, Unusable> {
        if let Some(conflict) = &self.conflict {
            return Err(Unusable::Conflict(conflict.clone()));
        }
        let Some(node) = self.master_node() else {
            return Err(Unusable::NoMaster);
        };
        if node.health == Health::Down {
            return Err(Unusable::Down {
                master: node.addr.clone(),
                error: node.last_error.clone(),
            });
        }
        if node.reports_replica() {
            return Err(Unusable::ReportsReplica(node.addr.clone()));
        }
        Ok(&node.addr)
    }

    /// Managed failover: the master is lost once it has failed `fall`
    /// probes in a row and not come back up since (or says it is a
    /// replica). A node that is down after its first probe only (at
    /// startup the first result decides health at once) is not lost yet:
    /// one slow answer must not move data. Nor does a lost master that
    /// answers now and then count as back: it must be up again (`rise`).
    pub fn master_lost(&self) -> bool {
        self.master_node()
            .is_none_or(|n| (n.health == Health::Down && n.fell) || n.reports_replica())
    }

    /// Healthy nodes that report replicating from `master`, plus the
    /// online replicas it lists that are not members (not probed, so its
    /// word is all there is).
    fn followers(&self, master: &NodeHealth) -> usize {
        let members = self
            .nodes
            .iter()
            .filter(|n| n.health == Health::Up && n.replicates_from() == Some(master.addr.addr))
            .count();
        let listed = match master.role() {
            Some(Role::Master { replicas }) => replicas
                .iter()
                .filter(|r| r.online)
                .filter(|r| r.addr.is_none_or(|a| self.node(a).is_none()))
                .count(),
            _ => 0,
        };
        members + listed
    }

    /// When several healthy nodes report master (an old master restarted
    /// empty, an operator's switchover half done), decides by evidence
    /// which one holds the data: a master the proxy moved writes away from
    /// is stale; among the others, the one replicas follow, then the one
    /// with the higher `master_repl_offset`. Another is stale only if it
    /// has no replicas and a lower offset, and nobody promoted it while the
    /// proxy watched; otherwise it is a conflict.
    pub fn masters(&self) -> Masters {
        let masters: Vec<&NodeHealth> = self
            .nodes
            .iter()
            .filter(|n| n.health == Health::Up && n.reports_master())
            .collect();
        if masters.len() < 2 {
            return Masters::One;
        }
        let (deposed, mut candidates): (Vec<&NodeHealth>, Vec<&NodeHealth>) =
            masters.iter().partition(|n| n.deposed);
        // By evidence, best first; ties keep configuration order.
        candidates.sort_by_key(|n| std::cmp::Reverse((self.followers(n), n.offset())));
        let describe = |n: &NodeHealth| {
            format!(
                "{} ({} replicas, offset {})",
                n.addr.label,
                self.followers(n),
                n.offset()
            )
        };
        let Some((keep, others)) = candidates.split_first() else {
            return Masters::Conflict(format!(
                "two masters: {}; the proxy failed over from each of them",
                masters
                    .iter()
                    .map(|n| describe(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let is_stale = |n: &NodeHealth| {
            self.followers(n) == 0 && n.offset() < keep.offset() && !n.seen_promoted
        };
        if let Some(rival) = others.iter().find(|n| !is_stale(n)) {
            return Masters::Conflict(format!(
                "two masters: {} and {}; not knowing which holds the data, the proxy \
                 refuses writes until one is made a replica (REPLICAOF)",
                describe(keep),
                describe(rival)
            ));
        }
        Masters::Resolved {
            keep: keep.addr.addr,
            stale: deposed
                .iter()
                .chain(others.iter())
                .map(|n| n.addr.addr)
                .collect(),
        }
    }

    /// `replica`'s lag as the current master last reported it, from one
    /// `INFO replication` (offsets probed at different moments would not
    /// compare). The master lists a replica by the address it sees, which
    /// behind NAT or with `replica-announce-ip` is not the proxy's: then
    /// the one online entry on the same port, and failing that the
    /// replica's own view (its offset against the master's, and the seconds
    /// since it heard from its master), less exact. None when neither says.
    pub fn replica_lag(&self, replica: SocketAddr, now: Instant) -> Option<Lag> {
        let master = self.master_node()?;
        let probe = master.last.as_ref()?;
        let Role::Master { replicas } = &probe.replication.role else {
            return None;
        };
        let online = || replicas.iter().filter(|r| r.online);
        // On the replica's port, and not another member's entry.
        let same_port = || {
            online().filter(|r| {
                r.port == replica.port()
                    && r.addr
                        .is_none_or(|a| a == replica || self.node(a).is_none())
            })
        };
        let listed = online()
            .find(|r| r.addr == Some(replica))
            .or_else(|| same_port().next().filter(|_| same_port().count() == 1));
        // While the master does not answer, what it last said grows stale.
        let silent = master
            .failing_since
            .map_or(0, |t| now.saturating_duration_since(t).as_secs());
        let master_offset = probe.replication.master_repl_offset;
        let (seconds, offset) = match listed {
            Some(listed) => (listed.lag, listed.offset),
            None => match self.node(replica)?.role()? {
                Role::Replica {
                    last_io_seconds: Some(seconds),
                    offset,
                    ..
                } => (*seconds, *offset),
                _ => return None,
            },
        };
        Some(Lag {
            seconds: seconds.saturating_add(silent),
            bytes: master_offset.saturating_sub(offset),
        })
    }

    /// Replicas fit to serve reads, and the others with the reason.
    pub fn replica_fitness(
        &self,
        max_lag: ReplicaLag,
        now: Instant,
    ) -> (Vec<NodeAddr>, Vec<(NodeAddr, String)>) {
        let mut fit = Vec::new();
        let mut unfit = Vec::new();
        for node in self.nodes.iter().filter(|n| n.addr.addr != self.master) {
            match self.unfit_reason(node, max_lag, now) {
                None => fit.push(node.addr.clone()),
                Some(reason) => unfit.push((node.addr.clone(), reason)),
            }
        }
        (fit, unfit)
    }

    fn unfit_reason(&self, node: &NodeHealth, max_lag: ReplicaLag, now: Instant) -> Option<String> {
        if node.health != Health::Up {
            return Some(format!("health {:?}", node.health).to_lowercase());
        }
        if node.is_busy() {
            return Some("busy running a script".into());
        }
        let Some(Role::Replica { link_up, .. }) = node.role() else {
            return Some("not a replica".into());
        };
        if node.replicates_from() != Some(self.master) {
            return Some("replicates from another master".into());
        }
        if !link_up {
            return Some("master link down".into());
        }
        if max_lag.seconds.is_none() && max_lag.bytes.is_none() {
            return None;
        }
        let Some(lag) = self.replica_lag(node.addr.addr, now) else {
            return Some("lag unknown: neither its master nor itself says".into());
        };
        if let Some(limit) = max_lag.seconds.filter(|limit| lag.seconds > *limit) {
            return Some(format!("lag {}s > {limit}s", lag.seconds));
        }
        if let Some(limit) = max_lag.bytes.filter(|limit| lag.bytes > *limit) {
            return Some(format!("lag {} bytes > {limit}", lag.bytes));
        }
        None
    }

    /// For managed failover: the healthy replica with the most data
    /// (highest offset; ties: configuration order).
    pub fn promotion_candidate(&self) -> Option<&NodeHealth> {
        self.nodes
            .iter()
            .filter(|n| n.addr.addr != self.master && n.health == Health::Up && n.reports_replica())
            .fold(None, |best: Option<&NodeHealth>, n| match best {
                Some(b) if b.offset() >= n.offset() => Some(b),
                _ => Some(n),
            })
    }

    /// Another healthy node that reports master: after someone else's
    /// failover, the one to follow (preferring the one replicas follow).
    pub fn other_master(&self) -> Option<&NodeHealth> {
        let followed = |n: &NodeHealth| {
            self.nodes
                .iter()
                .filter(|r| r.replicates_from() == Some(n.addr.addr))
                .count()
        };
        self.nodes
            .iter()
            .filter(|n| n.addr.addr != self.master && n.health == Health::Up && n.reports_master())
            .max_by_key(|n| followed(n))
    }

    /// Nodes learned along the way that have been down this long are forgotten.
    pub fn forget_stale(&mut self, after: Duration, now: Instant) -> Vec<NodeAddr> {
        let master = self.master;
        let mut forgotten = Vec::new();
        self.nodes.retain(|n| {
            let stale = matches!(n.origin, Origin::Discovered | Origin::Sentinel)
                && n.addr.addr != master
                && n.health == Health::Down
                && now.saturating_duration_since(n.since) > after;
            if stale {
                forgotten.push(n.addr.clone());
            }
            !stale
        });
        forgotten
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed clock: these decisions do not depend on elapsed time.
    fn now() -> Instant {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *START.get_or_init(Instant::now)
    }
    use crate::topology::info::{ReplicaInfo, Replication};

    fn addr(port: u16) -> NodeAddr {
        NodeAddr::new(
            SocketAddr::from(([127, 0, 0, 1], port)),
            format!("127.0.0.1:{port}"),
        )
    }

    /// A master at `offset` listing replicas as `(port, offset, lag)`.
    fn master_with(offset: u64, replicas: &[(u16, u64, u64)]) -> Result<Probe, NodeError> {
        Ok(Probe {
            latency: Duration::from_micros(100),
            replication: Replication {
                role: Role::Master {
                    replicas: replicas
                        .iter()
                        .map(|&(port, offset, lag)| ReplicaInfo {
                            ip: "127.0.0.1".into(),
                            port,
                            addr: Some(addr(port).addr),
                            online: true,
                            offset,
                            lag,
                        })
                        .collect(),
                },
                master_repl_offset: offset,
            },
            new_connection: false,
            busy: None,
        })
    }

    /// `probe` (a master's) with its first listed replica at `ip`: how a
    /// master behind NAT, or on another host, lists it.
    fn first_listed_as(probe: Result<Probe, NodeError>, ip: &str) -> Result<Probe, NodeError> {
        probe.map(|mut p| {
            if let Role::Master { replicas } = &mut p.replication.role {
                replicas[0].ip = ip.into();
                replicas[0].addr = crate::topology::info::literal(ip, replicas[0].port);
            }
            p
        })
    }

    fn master_probe(offset: u64) -> Result<Probe, NodeError> {
        master_with(offset, &[(2, offset, 0)])
    }

    fn replica_probe(
        master_port: u16,
        link_up: bool,
        io: u64,
        offset: u64,
    ) -> Result<Probe, NodeError> {
        Ok(Probe {
            latency: Duration::from_micros(100),
            replication: Replication {
                role: Role::Replica {
                    master_host: "127.0.0.1".into(),
                    master_port,
                    master_addr: Some(addr(master_port).addr),
                    link_up,
                    last_io_seconds: Some(io),
                    offset,
                },
                master_repl_offset: offset,
            },
            new_connection: false,
            busy: None,
        })
    }

    fn group() -> Group {
        let mut g = Group {
            name: "s".into(),
            weight: 1,
            nodes: vec![NodeHealth::new(addr(1), Origin::Configured, now())],
            master: addr(1).addr,
            ejected: false,
            conflict: None,
        };
        g.add(addr(2), Origin::Declared, now());
        g.add(addr(3), Origin::Declared, now());
        g
    }

    #[test]
    fn rise_and_fall_flip_health_after_streaks() {
        let mut node = NodeHealth::new(addr(1), Origin::Configured, now());
        assert_eq!(node.apply(master_probe(0), 2, 3, now()), Some(Health::Up));
        assert_eq!(
            node.apply(Err(NodeError::Io("x".into())), 2, 3, now()),
            None
        );
        assert_eq!(
            node.apply(Err(NodeError::Io("x".into())), 2, 3, now()),
            None
        );
        assert_eq!(
            node.apply(Err(NodeError::Io("x".into())), 2, 3, now()),
            Some(Health::Down)
        );
        assert_eq!(node.apply(master_probe(0), 2, 3, now()), None);
        assert_eq!(node.apply(master_probe(0), 2, 3, now()), Some(Health::Up));
    }

    #[test]
    fn a_master_that_reports_a_replica_role_is_not_usable() {
        let mut g = group();
        g.nodes[0].apply(master_probe(10), 2, 3, now());
        assert!(g.usable_master().is_ok());
        g.nodes[0].apply(replica_probe(2, true, 0, 10), 2, 3, now());
        assert!(g
            .usable_master()
            .expect_err("replica")
            .to_string()
            .contains("replica role"));
    }

    #[test]
    fn a_master_down_at_its_first_probe_is_not_lost_before_fall_failures() {
        let mut g = group();
        // At startup the first result decides health at once...
        assert_eq!(
            g.nodes[0].apply(Err(NodeError::Io("timeout".into())), 2, 3, now()),
            Some(Health::Down)
        );
        assert!(g.usable_master().is_err());
        // ...but only `fall` failures in a row justify a failover.
        assert!(!g.master_lost());
        g.nodes[0].apply(Err(NodeError::Io("timeout".into())), 2, 3, now());
        assert!(!g.master_lost());
        g.nodes[0].apply(Err(NodeError::Io("timeout".into())), 2, 3, now());
        assert!(g.master_lost());
        // A flapping master (one answer, then failing again) stays lost...
        g.nodes[0].apply(master_probe(0), 2, 3, now());
        assert!(g.master_lost());
        g.nodes[0].apply(Err(NodeError::Io("timeout".into())), 2, 3, now());
        assert!(g.master_lost());
        // ...until it is up again: `rise` answers in a row.
        g.nodes[0].apply(master_probe(0), 2, 3, now());
        g.nodes[0].apply(master_probe(0), 2, 3, now());
        assert!(!g.master_lost());
    }

    #[test]
    fn replicas_are_fit_only_when_linked_to_the_master_and_close_enough() {
        let mut g = group();
        g.nodes[0].apply(
            master_with(1000, &[(2, 1000, 0), (3, 1000, 0)]),
            2,
            3,
            now(),
        );
        g.nodes[1].apply(replica_probe(1, true, 0, 1000), 2, 3, now());
        g.nodes[2].apply(replica_probe(1, false, 0, 1000), 2, 3, now());
        let (fit, unfit) = g.replica_fitness(ReplicaLag::default(), now());
        assert_eq!(fit, vec![addr(2)]);
        assert_eq!(unfit[0].1, "master link down");
        g.nodes[1].apply(replica_probe(7, true, 0, 1000), 2, 3, now());
        let (_, unfit) = g.replica_fitness(ReplicaLag::default(), now());
        assert!(unfit
            .iter()
            .any(|(_, r)| r == "replicates from another master"));
    }

    #[test]
    fn lag_comes_from_one_info_of_the_master() {
        let mut g = group();
        let lag = ReplicaLag {
            seconds: Some(5),
            bytes: Some(500),
        };
        // The replicas' own offsets (probed at other moments) and their
        // `master_last_io_seconds_ago` (which counts up to 10 s on an idle
        // master) must not matter: only what the master lists does.
        g.nodes[0].apply(
            master_with(10_000, &[(2, 9_900, 1), (3, 9_000, 0)]),
            2,
            3,
            now(),
        );
        g.nodes[1].apply(replica_probe(1, true, 9, 0), 2, 3, now());
        g.nodes[2].apply(replica_probe(1, true, 0, 10_000), 2, 3, now());
        assert_eq!(
            g.replica_lag(addr(2).addr, now()),
            Some(Lag {
                seconds: 1,
                bytes: 100
            })
        );
        let (fit, unfit) = g.replica_fitness(lag, now());
        assert_eq!(fit, vec![addr(2)]);
        assert_eq!(unfit, vec![(addr(3), "lag 1000 bytes > 500".to_string())]);
        g.nodes[0].apply(
            master_with(10_000, &[(2, 10_000, 7), (3, 10_000, 0)]),
            2,
            3,
            now(),
        );
        let (fit, unfit) = g.replica_fitness(lag, now());
        assert_eq!(fit, vec![addr(3)]);
        assert_eq!(unfit, vec![(addr(2), "lag 7s > 5s".to_string())]);
        // A replica its master lists under an address the proxy does not
        // know (NAT, announce-ip): the one entry on its port...
        let listing = master_with(10_000, &[(2, 9_990, 0), (3, 10_000, 0)]);
        g.nodes[0].apply(first_listed_as(listing, "10.9.9.9"), 2, 3, now());
        assert_eq!(
            g.replica_lag(addr(2).addr, now()).map(|l| l.bytes),
            Some(10)
        );
        // ...and with none, the replica's own view.
        g.nodes[0].apply(master_with(10_000, &[(3, 10_000, 0)]), 2, 3, now());
        g.nodes[1].apply(replica_probe(1, true, 0, 9_950), 2, 3, now());
        assert_eq!(
            g.replica_lag(addr(2).addr, now()),
            Some(Lag {
                seconds: 0,
                bytes: 50
            })
        );
        let (fit, _) = g.replica_fitness(lag, now());
        assert_eq!(fit, vec![addr(2), addr(3)]);
        // Without a bound, lag is not needed.
        let (fit, _) = g.replica_fitness(ReplicaLag::default(), now());
        assert_eq!(fit, vec![addr(2), addr(3)]);
    }

    #[test]
    fn another_members_entry_on_the_same_port_is_not_taken_for_a_replicas_lag() {
        let mut g = group();
        let other = NodeAddr::new(
            SocketAddr::from(([127, 0, 0, 2], 2)),
            "127.0.0.2:2".to_string(),
        );
        g.add(other, Origin::Declared, now());
        // The master lists only the other host's replica on port 2.
        let listing = master_with(10_000, &[(2, 10_000, 0)]);
        g.nodes[0].apply(first_listed_as(listing, "127.0.0.2"), 2, 3, now());
        g.nodes[1].apply(replica_probe(1, true, 40, 1_000), 2, 3, now());
        assert_eq!(
            g.replica_lag(addr(2).addr, now()),
            Some(Lag {
                seconds: 40,
                bytes: 9_000
            })
        );
    }

    #[test]
    fn the_most_advanced_healthy_replica_is_promoted() {
        let mut g = group();
        g.nodes[1].apply(replica_probe(1, false, 0, 50), 2, 3, now());
        g.nodes[2].apply(replica_probe(1, false, 0, 70), 2, 3, now());
        assert_eq!(
            g.promotion_candidate().map(|n| n.addr.clone()),
            Some(addr(3))
        );
        g.nodes[2].apply(Err(NodeError::Io("down".into())), 2, 1, now());
        assert_eq!(
            g.promotion_candidate().map(|n| n.addr.clone()),
            Some(addr(2))
        );
    }

    #[test]
    fn an_empty_master_loses_to_the_master_its_replicas_follow() {
        // The configured server (1) came back empty; 2 was promoted and 3
        // follows it.
        let mut g = group();
        g.nodes[0].apply(master_with(0, &[]), 2, 3, now());
        g.nodes[1].apply(master_with(5000, &[(3, 5000, 0)]), 2, 3, now());
        g.nodes[2].apply(replica_probe(2, true, 0, 5000), 2, 3, now());
        assert_eq!(
            g.masters(),
            Masters::Resolved {
                keep: addr(2).addr,
                stale: vec![addr(1).addr]
            }
        );
        // With no replica anywhere, the higher offset decides.
        g.nodes[2].apply(Err(NodeError::Io("down".into())), 2, 1, now());
        g.nodes[1].apply(master_with(5000, &[]), 2, 3, now());
        assert!(matches!(g.masters(), Masters::Resolved { keep, .. } if keep == addr(2).addr));
    }

    #[test]
    fn masters_that_may_both_hold_data_are_a_conflict() {
        let mut g = group();
        // Both have replicas following them.
        g.nodes
            .push(NodeHealth::new(addr(4), Origin::Declared, now()));
        g.nodes[0].apply(master_with(100, &[]), 2, 3, now());
        g.nodes[1].apply(master_with(200, &[]), 2, 3, now());
        g.nodes[2].apply(replica_probe(1, true, 0, 100), 2, 3, now());
        g.nodes[3].apply(replica_probe(2, true, 0, 200), 2, 3, now());
        assert!(matches!(g.masters(), Masters::Conflict(why) if why.contains("two masters")));
        // Neither has replicas, same offset.
        g.nodes[2].apply(Err(NodeError::Io("down".into())), 2, 1, now());
        g.nodes[3].apply(Err(NodeError::Io("down".into())), 2, 1, now());
        g.nodes[1].apply(master_with(100, &[]), 2, 3, now());
        assert!(matches!(g.masters(), Masters::Conflict(_)));
        // A master the proxy failed over from is stale, whatever it says.
        g.nodes[0].deposed = true;
        g.nodes[0].apply(master_with(900, &[]), 2, 3, now());
        assert_eq!(
            g.masters(),
            Masters::Resolved {
                keep: addr(2).addr,
                stale: vec![addr(1).addr]
            }
        );
    }

    #[test]
    fn a_switchover_by_an_operator_is_never_undone() {
        // 1 is master with replicas 2 and 3; the operator runs REPLICAOF
        // NO ONE on 2 while writes still reach 1.
        let mut g = group();
        g.nodes[0].apply(
            master_with(1000, &[(2, 1000, 0), (3, 1000, 0)]),
            2,
            3,
            now(),
        );
        g.nodes[1].apply(replica_probe(1, true, 0, 1000), 2, 3, now());
        g.nodes[2].apply(replica_probe(1, true, 0, 1000), 2, 3, now());
        assert_eq!(g.masters(), Masters::One);
        g.nodes[1].apply(master_with(1000, &[]), 2, 3, now());
        g.nodes[0].apply(master_with(1200, &[(3, 1200, 0)]), 2, 3, now());
        assert!(g.nodes[1].seen_promoted);
        // No replica and a lower offset, yet promoted on purpose: conflict.
        assert!(matches!(g.masters(), Masters::Conflict(_)));
        // Then REPLICAOF 2 on 1: one master again, and it is 2.
        g.nodes[0].apply(replica_probe(2, true, 0, 1200), 2, 3, now());
        assert_eq!(g.masters(), Masters::One);
        assert!(!g.nodes[0].deposed && !g.nodes[0].seen_promoted);
    }

    #[test]
    fn a_replica_that_restarted_as_a_master_is_judged_by_its_data() {
        // 2 is a replica the proxy made with a runtime REPLICAOF; it restarts
        // between two probes and comes back an empty master (its config has
        // no replicaof). The probe that sees it is on a new connection.
        let mut g = group();
        g.nodes[0].apply(master_with(1000, &[(3, 1000, 0)]), 2, 3, now());
        g.nodes[1].apply(replica_probe(1, true, 0, 1000), 2, 3, now());
        g.nodes[2].apply(replica_probe(1, true, 0, 1000), 2, 3, now());
        let mut restarted = master_with(0, &[]);
        if let Ok(probe) = &mut restarted {
            probe.new_connection = true;
        }
        g.nodes[1].apply(restarted, 2, 3, now());
        assert!(!g.nodes[1].seen_promoted);
        assert_eq!(
            g.masters(),
            Masters::Resolved {
                keep: addr(1).addr,
                stale: vec![addr(2).addr]
            }
        );
    }
}
