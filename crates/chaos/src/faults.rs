//! The fault model and the scheduler.
//!
//! Faults come one at a time, in cycles that contain every kind once in a
//! seeded random order, on seeded random targets. After each, the
//! scheduler starts a new epoch (the fault's end), waits for every client
//! to be served again (recording how long each took), then for the
//! topology to heal (`Cluster::healed`), each with a deadline, and pauses
//! briefly before the next fault. A killed master is restarted only after
//! Sentinel has failed its shard over (or 30 s passed): a master without
//! persistence that came back empty before the failover would have its
//! replica resync to nothing, a loss no proxy could prevent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use test_support::relay::Direction;

use crate::clock::{now, secs, wait_for};
use crate::cluster::{Cluster, PROXIES, SHARDS};
use crate::journal::{Check, ClientStats, Epoch, FaultKind, FaultRecord, Journal, Recovery};

/// Killed masters wait this long for Sentinel's failover before restarting
/// (a Sentinel in TILT mode, after the machine stalled, starts none for
/// 30 s).
const FAILOVER_DEADLINE: Duration = Duration::from_secs(60);

pub struct Scheduler<'a> {
    pub cluster: &'a mut Cluster,
    pub journal: Arc<Journal>,
    pub epoch: Arc<Epoch>,
    pub clients: Vec<Arc<ClientStats>>,
    pub rng: fastrand::Rng,
    /// Every client must be served again within this after a fault ends.
    pub recovery_bound: Duration,
    /// The topology must heal within this after a fault ends.
    pub heal_deadline: Duration,
    cycle: Vec<FaultKind>,
}

impl<'a> Scheduler<'a> {
    pub fn new(
        cluster: &'a mut Cluster,
        journal: Arc<Journal>,
        epoch: Arc<Epoch>,
        clients: Vec<Arc<ClientStats>>,
        seed: u64,
        recovery_bound: Duration,
    ) -> Scheduler<'a> {
        Scheduler {
            cluster,
            journal,
            epoch,
            clients,
            rng: fastrand::Rng::with_seed(seed),
            recovery_bound,
            heal_deadline: Duration::from_secs(60),
            cycle: Vec::new(),
        }
    }

    /// Applies faults until `end` (the fault under way is finished).
    pub fn run_until(&mut self, end: Instant) {
        while Instant::now() < end {
            if self.cycle.is_empty() {
                self.cycle = FaultKind::ALL.to_vec();
                self.rng.shuffle(&mut self.cycle);
            }
            let kind = self.cycle.remove(0);
            let record = self.apply(kind);
            let index = self.journal.fault(record.clone());
            self.journal.note(format!(
                "fault {index}: {} {} ({} s): {}",
                kind.name(),
                record.node.map(|p| p.to_string()).unwrap_or_default(),
                secs(record.end - record.start),
                record.detail
            ));
            self.await_recovery(index, record.end);
            self.await_heal(&format!("fault {index} ({})", kind.name()));
            let pause = Duration::from_millis(self.rng.u64(500..2000));
            std::thread::sleep(pause.min(end.saturating_duration_since(Instant::now())));
        }
    }

    /// Starts a new epoch at the fault's end and waits until every client
    /// has succeeded in it (up to the bound, then a little longer to tell
    /// "late" from "never").
    fn await_recovery(&self, fault: usize, end: u64) {
        let epoch = self.epoch.next();
        let deadline = self.recovery_bound + Duration::from_secs(5);
        wait_for(deadline, || {
            self.clients.iter().all(|c| c.served_in(epoch).is_some())
        });
        for client in &self.clients {
            self.journal.recovery(Recovery {
                fault,
                client: client.name.clone(),
                kind: client.kind,
                after: client.served_in(epoch).map(|at| at.saturating_sub(end)),
            });
        }
    }

    /// Waits until the topology is whole again; a violation if it is not
    /// within the deadline.
    pub fn await_heal(&self, after: &str) {
        let mut last = String::new();
        let healed = wait_for(self.heal_deadline, || match self.cluster.healed() {
            Ok(()) => true,
            Err(why) => {
                last = why;
                false
            }
        });
        if !healed {
            self.journal.violation(
                Check::Heal,
                format!("not healed {:?} after {after}: {last}", self.heal_deadline),
            );
        }
    }

    /// Restarts a killed node as a replica of the master Sentinel names
    /// (as a server whose config file Sentinel rewrote would come back;
    /// ours run from the command line, so Sentinel's CONFIG REWRITE cannot
    /// keep it). Started with its first role instead, an old master would
    /// come back as an empty master, and an old replica as the replica of a
    /// node that is a replica now.
    fn restart_as_sentinel_says(&mut self, node: usize, shard: usize) {
        let own = self.cluster.nodes[node].port();
        let master = self
            .cluster
            .sentinel_master(shard)
            .filter(|&m| m != own)
            .or_else(|| {
                let other = self.cluster.master_of(shard).filter(|&m| m != node)?;
                Some(self.cluster.nodes[other].port())
            });
        match master {
            Some(master) => self.cluster.nodes[node]
                .server
                .restart_replicating(Some(master)),
            // Nobody to follow: as it was first started.
            None => self.cluster.nodes[node].server.restart(),
        }
    }

    fn hold(&mut self, range: std::ops::Range<u64>) -> Duration {
        let held = Duration::from_millis(self.rng.u64(range));
        std::thread::sleep(held);
        held
    }

    fn apply(&mut self, kind: FaultKind) -> FaultRecord {
        let shard = self.rng.usize(..SHARDS);
        let mut record = FaultRecord {
            kind,
            shard: None,
            node: None,
            start: now(),
            end: 0,
            detail: String::new(),
        };
        match kind {
            FaultKind::KillMaster
            | FaultKind::StopMaster
            | FaultKind::KillReplica
            | FaultKind::StopReplica => {
                let master = self.cluster.master_of(shard);
                let node = match (kind, master) {
                    (FaultKind::KillMaster | FaultKind::StopMaster, Some(m)) => m,
                    (_, Some(m)) => self
                        .cluster
                        .shard_nodes(shard)
                        .map(|(i, _)| i)
                        .find(|&i| i != m)
                        .unwrap_or(m),
                    (_, None) => {
                        record.detail = format!("skipped: shard{} has no master", shard + 1);
                        record.end = now();
                        return record;
                    }
                };
                let port = self.cluster.nodes[node].port();
                record.shard = Some(shard);
                record.node = Some(port);
                record.start = now();
                match kind {
                    FaultKind::KillMaster => {
                        self.cluster.nodes[node].server.kill();
                        let start = record.start;
                        let journal = &self.journal;
                        let failed_over = wait_for(FAILOVER_DEADLINE, || {
                            journal
                                .failovers()
                                .iter()
                                .any(|f| f.shard == shard && f.from == port && f.at >= start)
                        });
                        record.detail = if failed_over {
                            self.restart_as_sentinel_says(node, shard);
                            format!(
                                "failed over after {} s, then restarted",
                                secs(now() - start)
                            )
                        } else {
                            // Sentinel still names it master: it comes back
                            // as one, empty (its replica resyncs to nothing).
                            self.cluster.nodes[node].server.restart_replicating(None);
                            self.journal.note(format!(
                                "no failover of shard{} within {FAILOVER_DEADLINE:?}: {port} restarted empty as its master; the shard's data is lost, by the harness",
                                shard + 1
                            ));
                            format!("no failover within {FAILOVER_DEADLINE:?}: restarted empty as master")
                        };
                    }
                    FaultKind::KillReplica => {
                        self.cluster.nodes[node].server.kill();
                        let held = self.hold(1000..3000);
                        self.restart_as_sentinel_says(node, shard);
                        record.detail = format!("down {held:?}");
                    }
                    _ => {
                        self.cluster.nodes[node].server.pause();
                        let held = self.hold(500..3500);
                        self.cluster.nodes[node].server.resume();
                        record.detail = format!("frozen {held:?}");
                    }
                }
            }
            FaultKind::KillSentinel => {
                let index = self.rng.usize(..self.cluster.sentinels.len());
                record.start = now();
                self.cluster.sentinels[index].kill();
                let held = self.hold(2000..5000);
                self.cluster.sentinels[index].restart();
                record.detail = format!(
                    "Sentinel {} down {held:?}",
                    self.cluster.sentinels[index].port()
                );
            }
            FaultKind::RestartProxy => {
                // Proxy 0 lives the whole run, so its memory is measured
                // over all of it; proxy 1 is the one restarted.
                let index = PROXIES - 1;
                record.start = now();
                record.detail = format!(
                    "proxy {index}: {}",
                    self.cluster.proxies.restart_proxy(index, &self.journal)
                );
            }
            FaultKind::LinkDelay | FaultKind::LinkStall | FaultKind::LinkReset => {
                let node = self.rng.usize(..self.cluster.nodes.len());
                let port = self.cluster.nodes[node].port();
                record.shard = Some(self.cluster.nodes[node].shard);
                record.node = Some(port);
                let role = if Some(node) == self.cluster.master_of(self.cluster.nodes[node].shard) {
                    "master"
                } else {
                    "replica"
                };
                record.start = now();
                let relay = &self.cluster.nodes[node].relay;
                match kind {
                    FaultKind::LinkDelay => {
                        let delay = Duration::from_millis(self.rng.u64(50..300));
                        relay.set_delay(delay);
                        let held = self.hold(2000..5000);
                        self.cluster.nodes[node].relay.heal();
                        record.detail = format!("{role}: +{delay:?} each way for {held:?}");
                    }
                    FaultKind::LinkStall => {
                        let direction = if self.rng.bool() {
                            Direction::ToServer
                        } else {
                            Direction::ToClient
                        };
                        relay.stall(direction, true);
                        let held = self.hold(500..3000);
                        self.cluster.nodes[node].relay.heal();
                        record.detail = format!("{role}: {direction:?} stalled {held:?}");
                    }
                    _ => {
                        let open = relay.connections();
                        relay.reset();
                        record.detail = format!("{role}: {open} connections reset");
                    }
                }
            }
        }
        record.end = now();
        record
    }
}
