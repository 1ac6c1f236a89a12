//! A cluster pool's controller (`cluster: true`, `docs/cluster.md`): it
//! owns the believed slot map, refreshes it when the schedule of
//! `shardgate_core::cluster::refresh` says so (each refresh a task of its
//! own, `query`), patches slots the data path saw `MOVED`, and publishes
//! every change as a topology snapshot.
//!
//! # Layout
//! - `query`: one refresh: a node's map, and a second node's to confirm it.

mod query;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::PoolCommand;
use crate::backend::Handshake;
use crate::cluster::refresh::{judge, Reason, Schedule, Verdict};
use crate::cluster::SlotMap;
use crate::config::PoolConfig;
use crate::pool::PoolState;
use crate::topology::{Events, Topology};
use query::{Asking, Outcome};

/// The longest one refresh may take.
const REFRESH_LIMIT: Duration = Duration::from_secs(10);

/// How long startup waits for a first believed map before the pool starts
/// serving: until a map is believed, requests get an error saying why.
const SETTLE: Duration = Duration::from_secs(5);

/// One cluster pool's controller.
pub struct ClusterController {
    state: Arc<PoolState>,
    config: Arc<PoolConfig>,
    events: Arc<Events>,
    pool: Arc<str>,
    schedule: Schedule,
    /// The believed map (None until one is).
    map: Option<SlotMap>,
    /// Rotates the node asked first, so one slow node does not answer every refresh.
    turn: usize,
    /// Why the last refresh believed nothing, for the error clients get
    /// while no map is believed.
    last_failure: Option<String>,
    /// Bumped whenever a slot changes hands (the snapshots' placement
    /// epoch): SCAN cursors and transactions begun before are refused.
    epoch: u64,
    client_name: String,
}

impl ClusterController {
    pub fn new(state: Arc<PoolState>, events: Arc<Events>, instance: &str) -> ClusterController {
        let config = state.config();
        ClusterController {
            pool: config.name.as_str().into(),
            client_name: format!("shardgate-{instance}"),
            state,
            config,
            events,
            schedule: Schedule::new(Instant::now()),
            map: None,
            turn: 0,
            last_failure: None,
            epoch: 0,
        }
    }

    /// Runs until the proxy stops or the pool is removed; `ready` is told
    /// once a map is believed or [`SETTLE`] passed.
    pub async fn run(
        mut self,
        ready: std::sync::mpsc::Sender<()>,
        mut commands: mpsc::UnboundedReceiver<PoolCommand>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let (tx, mut outcomes) = mpsc::channel::<(Reason, Outcome)>(1);
        let settle_by = Instant::now() + SETTLE;
        let mut ready = Some(ready);
        loop {
            let (moved, wanted) = self.state.cluster.drain();
            self.patch(&moved);
            if let Some(reason) = wanted {
                self.schedule.want(reason);
            }
            let now = Instant::now();
            if let Some(reason) = self.schedule.start(now) {
                self.start_refresh(reason, tx.clone());
            }
            if ready.is_some() && (self.map.is_some() || now >= settle_by) {
                if self.map.is_none() {
                    // Never guess: seeds that are not cluster nodes would
                    // otherwise serve as a static pool, silently.
                    tracing::error!(pool = %self.pool, "no slot map believed yet: requests get errors until one is ({})", self.why_no_map());
                    self.publish();
                }
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
            }
            let wake = self
                .schedule
                .next_start(now)
                .map_or(settle_by.max(now + Duration::from_secs(1)), |at| at);
            let wake = if ready.is_some() {
                wake.min(settle_by)
            } else {
                wake
            };
            tokio::select! {
                outcome = outcomes.recv() => if let Some((reason, outcome)) = outcome {
                    self.judge(reason, outcome);
                },
                () = self.state.cluster.asked() => {}
                () = tokio::time::sleep_until(wake.into()) => {}
                command = commands.recv() => match command {
                    Some(PoolCommand::Reconfigure(config, _, done)) => {
                        self.config = config;
                        self.publish();
                        let _ = done.send(());
                    }
                    Some(PoolCommand::Stop) | None => break,
                },
                () = crate::shutdown::until_shutdown(&mut shutdown) => break,
            }
        }
    }

    /// Starts one refresh in a task of its own; its outcome comes back on `tx`.
    fn start_refresh(&mut self, reason: Reason, tx: mpsc::Sender<(Reason, Outcome)>) {
        self.state.cluster.stats.refreshes.fetch_add(1, Relaxed);
        tracing::debug!(pool = %self.pool, reason = reason.name(), "refreshing the slot map");
        let asking = Asking {
            handshake: Handshake {
                auth: self.config.redis_auth.clone(),
                db: 0,
                resp3: false,
                client_name: Some(self.client_name.clone()),
                ask_id: false,
                readonly: false,
                tls: self.state.tls.backend(),
            },
            connect_timeout: self.config.connect_timeout,
            timeout: self.config.timeout,
        };
        let candidates = self.candidates();
        let current = self.map.clone();
        tokio::task::spawn_local(async move {
            // Each query is bounded, but a refresh tries several nodes:
            // bound it as a whole, so a run of dead nodes cannot hold the
            // next refresh back for long.
            let outcome =
                tokio::time::timeout(REFRESH_LIMIT, query::refresh(asking, candidates, current))
                    .await
                    .unwrap_or_else(|_| Outcome {
                        found: None,
                        witness: None,
                        others: 0,
                        failures: vec![format!("no map within {REFRESH_LIMIT:?}")],
                    });
            let _ = tx.send((reason, outcome)).await;
        });
    }

    /// Nodes to ask, in order: the believed map's online primaries (from
    /// a turn that moves each refresh), then its other nodes, then the
    /// seeds (before a map is believed, also from a moving turn: a seed
    /// that serves a stale map, never confirmed, must not be the only
    /// one ever asked first).
    fn candidates(&mut self) -> Vec<SocketAddr> {
        let mut nodes: Vec<SocketAddr> = Vec::new();
        if let Some(map) = &self.map {
            let mut primaries: Vec<SocketAddr> = (map.shards.iter())
                .filter_map(|s| s.primary.as_ref())
                .filter(|p| p.health == crate::cluster::NodeHealth::Online)
                .map(|p| p.addr.addr)
                .collect();
            if !primaries.is_empty() {
                let turn = self.turn % primaries.len();
                primaries.rotate_left(turn);
            }
            nodes.extend(primaries);
            nodes.extend(map.nodes().map(|n| n.addr.addr));
        }
        let mut seeds: Vec<SocketAddr> = self.config.servers.iter().map(|s| s.addr).collect();
        if self.map.is_none() && !seeds.is_empty() {
            let turn = self.turn % seeds.len();
            seeds.rotate_left(turn);
        }
        nodes.extend(seeds);
        self.turn = self.turn.wrapping_add(1);
        let mut seen = std::collections::HashSet::new();
        nodes.retain(|a| seen.insert(*a));
        nodes
    }

    /// A refresh ended: believe its map, or keep the old one and say why.
    fn judge(&mut self, reason: Reason, outcome: Outcome) {
        self.schedule.finished(Instant::now(), fastrand::f64());
        let Some((asked, found)) = outcome.found else {
            tracing::warn!(pool = %self.pool, reason = reason.name(), "slot map refresh failed: {}", outcome.failures.join("; "));
            self.last_failure = Some(outcome.failures.join("; "));
            return;
        };
        match judge(
            self.map.as_ref(),
            &found,
            outcome.witness.as_ref(),
            outcome.others,
        ) {
            Verdict::Unchanged => {}
            Verdict::Believe => {
                self.state.cluster.stats.maps_believed.fetch_add(1, Relaxed);
                let message = describe(self.map.as_ref(), &found, asked);
                if self.map.as_ref().is_none_or(|m| !m.same_placement(&found)) {
                    self.epoch += 1;
                }
                self.map = Some(found);
                self.publish();
                self.events.record(
                    &self.pool,
                    None,
                    "slot-map",
                    format!("{message} (refresh on {})", reason.name()),
                );
            }
            Verdict::Unconfirmed => {
                self.state.cluster.stats.unconfirmed.fetch_add(1, Relaxed);
                self.last_failure = Some(format!("{asked} reports a map no second node confirmed"));
                tracing::warn!(
                    pool = %self.pool,
                    "{asked} reports a changed slot map that no second node confirmed; keeping the believed one{}",
                    if outcome.failures.is_empty() { String::new() } else { format!(" ({})", outcome.failures.join("; ")) }
                );
                self.schedule.want(Reason::Unconfirmed);
            }
        }
    }

    /// Slots a node answered `MOVED` for: each patched to its new primary
    /// at once when that is a known primary (the refresh asked for with it
    /// confirms the rest).
    fn patch(&mut self, moved: &[(u16, SocketAddr)]) {
        let Some(map) = &self.map else { return };
        let mut patched: Option<SlotMap> = None;
        for &(slot, to) in moved {
            let current = patched.as_ref().unwrap_or(map);
            if current.primary_of(slot) == Some(to) {
                continue;
            }
            if let Some(next) = current.with_moved(slot, to) {
                patched = Some(next);
            }
        }
        if let Some(map) = patched {
            self.map = Some(map);
            self.epoch += 1;
            self.publish();
        }
    }

    fn why_no_map(&self) -> String {
        self.last_failure
            .clone()
            .unwrap_or_else(|| "no node answered yet".into())
    }

    /// Publishes the believed map (or, before one is, seeds without a
    /// master: requests get an error saying why), and its
    /// status for the admin API.
    fn publish(&self) {
        let version = self.state.topology_version() + 1;
        let topology = match &self.map {
            Some(map) => {
                self.state.set_status(map.status(&self.pool, version));
                self.state.cluster.set_spares(map.spares.clone());
                map.topology(&self.config, version)
                    .with_placement_epoch(self.epoch)
            }
            None => {
                let mut topology = Topology::from_config(&self.config);
                topology.version = version;
                let down: Arc<str> =
                    format!("no slot map from the cluster yet: {}", self.why_no_map()).into();
                for shard in &mut topology.shards {
                    shard.master = None;
                    shard.down = Some(down.clone());
                }
                topology
            }
        };
        self.state.publish(topology);
    }
}

/// A line for the event log: how many shards and slots, from whom.
fn describe(old: Option<&SlotMap>, new: &SlotMap, asked: SocketAddr) -> String {
    let primaries: Vec<String> = (new.shards.iter())
        .filter_map(|s| s.primary.as_ref())
        .map(|p| p.addr.label.to_string())
        .collect();
    let moved = old.map_or(usize::from(keyspace::SLOT_COUNT), |old| {
        (0..keyspace::SLOT_COUNT)
            .filter(|&s| old.primary_of(s) != new.primary_of(s))
            .count()
    });
    format!(
        "slot map from {asked}: {} shards (primaries {}), {} slots served, {moved} slots with a new primary",
        new.shards.len(),
        primaries.join(", "),
        new.served_slots()
    )
}
