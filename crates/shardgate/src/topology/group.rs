//! A replication group as the controller sees it: its nodes, their health
//! (with rise/fall), their reported roles, which one is master, and which
//! replicas are fit to serve reads. Pure: probes go in, decisions come out.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::info::Role;
use super::probe::Probe;
use super::NodeAddr;
use crate::config::ReplicaLag;

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

/// One node of a group.
#[derive(Debug, Clone)]
pub struct NodeHealth {
    pub addr: NodeAddr,
    pub origin: Origin,
    pub health: Health,
    ok_streak: u32,
    fail_streak: u32,
    /// The last successful probe.
    pub last: Option<Probe>,
    pub last_error: Option<String>,
    /// When `health` last changed.
    pub since: Instant,
    /// Probes started before this are stale: the proxy changed the node's
    /// role (or verified it) after they were sent.
    pub trust_since: Option<Instant>,
    /// When the current streak of failed probes began.
    pub failing_since: Option<Instant>,
}

impl NodeHealth {
    pub fn new(addr: NodeAddr, origin: Origin) -> NodeHealth {
        NodeHealth {
            addr,
            origin,
            health: Health::Unknown,
            ok_streak: 0,
            fail_streak: 0,
            last: None,
            last_error: None,
            since: Instant::now(),
            trust_since: None,
            failing_since: None,
        }
    }

    /// Applies one probe result. Returns the new health when it flipped.
    /// The first result decides at once; afterwards `rise` successes or
    /// `fall` failures in a row are needed.
    pub fn apply(&mut self, result: Result<Probe, String>, rise: u32, fall: u32) -> Option<Health> {
        let next = match result {
            Ok(probe) => {
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
                self.failing_since.get_or_insert_with(Instant::now);
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
            self.since = Instant::now();
        }
        next
    }

    /// Consecutive failed probes.
    pub fn fail_streak(&self) -> u32 {
        self.fail_streak
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
            Role::Replica {
                master_host,
                master_port,
                ..
            } => resolve(master_host, *master_port),
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

/// `host:port` from INFO to an address (IP literals; names resolved).
pub fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    use std::net::ToSocketAddrs;
    (host, port).to_socket_addrs().ok()?.next()
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
}

impl Group {
    pub fn node(&self, addr: SocketAddr) -> Option<&NodeHealth> {
        self.nodes.iter().find(|n| n.addr.addr == addr)
    }

    pub fn node_mut(&mut self, addr: SocketAddr) -> Option<&mut NodeHealth> {
        self.nodes.iter_mut().find(|n| n.addr.addr == addr)
    }

    /// Adds a node unless it is already a member. True when added.
    pub fn add(&mut self, addr: NodeAddr, origin: Origin) -> bool {
        if self.node(addr.addr).is_some() {
            return false;
        }
        self.nodes.push(NodeHealth::new(addr, origin));
        true
    }

    pub fn master_node(&self) -> Option<&NodeHealth> {
        self.node(self.master)
    }

    /// The master if writes may go to it; else why not. A node that
    /// reports a replica role is never written to.
    pub fn usable_master(&self) -> Result<&NodeAddr, String> {
        let Some(node) = self.master_node() else {
            return Err("no master known".into());
        };
        if node.health == Health::Down {
            let reason = node
                .last_error
                .as_deref()
                .unwrap_or("health checks failing");
            return Err(format!("master {} is down ({reason})", node.addr.label));
        }
        if node.reports_replica() {
            return Err(format!("{} reports a replica role", node.addr.label));
        }
        Ok(&node.addr)
    }

    /// Replicas fit to serve reads, and the others with the reason.
    pub fn replica_fitness(&self, max_lag: ReplicaLag) -> (Vec<NodeAddr>, Vec<(NodeAddr, String)>) {
        let master_offset = self.master_node().map(NodeHealth::offset);
        let mut fit = Vec::new();
        let mut unfit = Vec::new();
        for node in self.nodes.iter().filter(|n| n.addr.addr != self.master) {
            match self.unfit_reason(node, max_lag, master_offset) {
                None => fit.push(node.addr.clone()),
                Some(reason) => unfit.push((node.addr.clone(), reason)),
            }
        }
        (fit, unfit)
    }

    fn unfit_reason(
        &self,
        node: &NodeHealth,
        max_lag: ReplicaLag,
        master_offset: Option<u64>,
    ) -> Option<String> {
        if node.health != Health::Up {
            return Some(format!("health {:?}", node.health).to_lowercase());
        }
        let Some(Role::Replica {
            link_up,
            last_io_seconds,
            offset,
            ..
        }) = node.role()
        else {
            return Some("not a replica".into());
        };
        if node.replicates_from() != Some(self.master) {
            return Some("replicates from another master".into());
        }
        if !link_up {
            return Some("master link down".into());
        }
        if let (Some(limit), Some(seconds)) = (max_lag.seconds, last_io_seconds) {
            if *seconds > limit {
                return Some(format!("lag {seconds}s > {limit}s"));
            }
        }
        if let (Some(limit), Some(master)) = (max_lag.bytes, master_offset) {
            let behind = master.saturating_sub(*offset);
            if behind > limit {
                return Some(format!("{behind} bytes behind > {limit}"));
            }
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
    pub fn forget_stale(&mut self, after: Duration) -> Vec<NodeAddr> {
        let master = self.master;
        let mut forgotten = Vec::new();
        self.nodes.retain(|n| {
            let stale = matches!(n.origin, Origin::Discovered | Origin::Sentinel)
                && n.addr.addr != master
                && n.health == Health::Down
                && n.since.elapsed() > after;
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
    use crate::topology::info::{ReplicaInfo, Replication};

    fn addr(port: u16) -> NodeAddr {
        NodeAddr::new(
            SocketAddr::from(([127, 0, 0, 1], port)),
            format!("127.0.0.1:{port}"),
        )
    }

    fn master_probe(offset: u64) -> Result<Probe, String> {
        Ok(Probe {
            latency: Duration::from_micros(100),
            replication: Replication {
                role: Role::Master {
                    replicas: vec![ReplicaInfo {
                        ip: "127.0.0.1".into(),
                        port: 2,
                        online: true,
                        offset,
                        lag: 0,
                    }],
                },
                master_repl_offset: offset,
            },
        })
    }

    fn replica_probe(
        master_port: u16,
        link_up: bool,
        io: u64,
        offset: u64,
    ) -> Result<Probe, String> {
        Ok(Probe {
            latency: Duration::from_micros(100),
            replication: Replication {
                role: Role::Replica {
                    master_host: "127.0.0.1".into(),
                    master_port,
                    link_up,
                    last_io_seconds: Some(io),
                    offset,
                },
                master_repl_offset: offset,
            },
        })
    }

    fn group() -> Group {
        let mut g = Group {
            name: "s".into(),
            weight: 1,
            nodes: vec![NodeHealth::new(addr(1), Origin::Configured)],
            master: addr(1).addr,
            ejected: false,
        };
        g.add(addr(2), Origin::Declared);
        g.add(addr(3), Origin::Declared);
        g
    }

    #[test]
    fn rise_and_fall_flip_health_after_streaks() {
        let mut node = NodeHealth::new(addr(1), Origin::Configured);
        assert_eq!(node.apply(master_probe(0), 2, 3), Some(Health::Up));
        assert_eq!(node.apply(Err("x".into()), 2, 3), None);
        assert_eq!(node.apply(Err("x".into()), 2, 3), None);
        assert_eq!(node.apply(Err("x".into()), 2, 3), Some(Health::Down));
        assert_eq!(node.apply(master_probe(0), 2, 3), None);
        assert_eq!(node.apply(master_probe(0), 2, 3), Some(Health::Up));
    }

    #[test]
    fn a_master_that_reports_a_replica_role_is_not_usable() {
        let mut g = group();
        g.nodes[0].apply(master_probe(10), 2, 3);
        assert!(g.usable_master().is_ok());
        g.nodes[0].apply(replica_probe(2, true, 0, 10), 2, 3);
        assert!(g
            .usable_master()
            .expect_err("replica")
            .contains("replica role"));
    }

    #[test]
    fn replicas_are_fit_only_when_linked_to_the_master_and_close_enough() {
        let mut g = group();
        g.nodes[0].apply(master_probe(1000), 2, 3);
        g.nodes[1].apply(replica_probe(1, true, 0, 1000), 2, 3);
        g.nodes[2].apply(replica_probe(1, false, 0, 1000), 2, 3);
        let (fit, unfit) = g.replica_fitness(ReplicaLag::default());
        assert_eq!(fit, vec![addr(2)]);
        assert_eq!(unfit[0].1, "master link down");
        g.nodes[2].apply(replica_probe(1, true, 0, 100), 2, 3);
        let lag = ReplicaLag {
            seconds: Some(5),
            bytes: Some(500),
        };
        let (fit, unfit) = g.replica_fitness(lag);
        assert_eq!(fit, vec![addr(2)]);
        assert_eq!(unfit[0].1, "900 bytes behind > 500");
        g.nodes[1].apply(replica_probe(1, true, 9, 1000), 2, 3);
        let (fit, _) = g.replica_fitness(lag);
        assert!(fit.is_empty());
        g.nodes[1].apply(replica_probe(7, true, 0, 1000), 2, 3);
        let (_, unfit) = g.replica_fitness(ReplicaLag::default());
        assert!(unfit
            .iter()
            .any(|(_, r)| r == "replicates from another master"));
    }

    #[test]
    fn the_most_advanced_healthy_replica_is_promoted() {
        let mut g = group();
        g.nodes[1].apply(replica_probe(1, false, 0, 50), 2, 3);
        g.nodes[2].apply(replica_probe(1, false, 0, 70), 2, 3);
        assert_eq!(
            g.promotion_candidate().map(|n| n.addr.clone()),
            Some(addr(3))
        );
        g.nodes[2].apply(Err("down".into()), 2, 1);
        assert_eq!(
            g.promotion_candidate().map(|n| n.addr.clone()),
            Some(addr(2))
        );
    }
}
