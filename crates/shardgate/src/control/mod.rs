//! The control plane: the one owner of each pool's replication groups.
//! It probes every node, listens to Redis Sentinel, fails over by itself
//! (managed mode), ejects shards, and publishes a new topology whenever
//! what routing needs to know changed.
//!
//! # Layout
//! - `controller`: [`Controller`], one pool's control loop.
//! - `sentinel`: watchers that follow Redis Sentinel.
//! - `cluster`: [`ClusterController`], a Redis Cluster pool's slot map.
//! - `peers`: which of the other proxies answer (`cluster_proxies`).
//!
//! What to do is decided by `shardgate_core::control` (pure); this module
//! carries it out. Everything runs on one thread, off the workers' hot
//! path; [`ControlCommand`]s start, reconfigure and stop pools' controllers.

mod cluster;
mod controller;
mod peers;
mod sentinel;

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, watch};

pub use crate::topology::KeyPlacement;
pub use cluster::ClusterController;
pub use controller::{Controller, PoolCommand};

use crate::config::PoolConfig;
use crate::pool::PoolState;
use crate::reshard::{Coordinator, ReshardCommand};
use crate::topology::Events;
use shardgate_core::reshard::MigrationRecord;

/// What the control thread is told.
pub enum ControlCommand {
    /// Start the pool's controller and resharding coordinator (which
    /// starts from `record`); `ready` is told once the controller settled.
    Start {
        state: Arc<PoolState>,
        ready: std::sync::mpsc::Sender<()>,
        record: Option<MigrationRecord>,
    },
    /// A reload's (or a migration's) configuration; `done` is told once
    /// it is published.
    Reconfigure {
        pool: Arc<str>,
        config: Arc<PoolConfig>,
        placement: KeyPlacement,
        done: std::sync::mpsc::Sender<()>,
    },
    /// The pool was removed.
    Stop(Arc<str>),
    /// An operator's word about the pool's migration.
    Reshard(Arc<str>, ReshardCommand),
}

/// Starts the control thread: every pool's controller on one
/// current-thread runtime, plus `extra` (the admin server).
pub fn spawn(
    events: Arc<Events>,
    instance: Arc<str>,
    apply: impl Fn(&str, MigrationRecord) -> Result<(), crate::reshard::MigrateError>
        + Send
        + Sync
        + 'static,
    mut commands: mpsc::UnboundedReceiver<ControlCommand>,
    mut shutdown: watch::Receiver<bool>,
    extra: impl FnOnce() -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>>
        + Send
        + 'static,
) -> std::io::Result<JoinHandle<()>> {
    crate::thread::spawn_thread("shardgate-control".into(), move || async move {
        if let Some(task) = extra() {
            tokio::task::spawn_local(task);
        }
        let apply = Arc::new(apply);
        let mut pools: HashMap<Arc<str>, mpsc::UnboundedSender<PoolCommand>> = HashMap::new();
        let mut coordinators: HashMap<Arc<str>, mpsc::UnboundedSender<ReshardCommand>> =
            HashMap::new();
        loop {
            let command = tokio::select! {
                command = commands.recv() => command,
                () = crate::shutdown::until_shutdown(&mut shutdown) => None,
            };
            let Some(command) = command else {
                break;
            };
            match command {
                ControlCommand::Start {
                    state,
                    ready,
                    record,
                } => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    pools.insert(state.name.clone(), tx);
                    // Idle unless the pool has `cluster_proxies` (a reload
                    // may add them); ends with the pool.
                    tokio::task::spawn_local(peers::watch(
                        Arc::downgrade(&state),
                        shutdown.clone(),
                    ));
                    if state.config().cluster {
                        // The cluster moves its own slots: no coordinator.
                        let controller = ClusterController::new(state, events.clone(), &instance);
                        tokio::task::spawn_local(controller.run(ready, rx, shutdown.clone()));
                        continue;
                    }
                    let pool = state.name.clone();
                    let applying = apply.clone();
                    let coordinator = Coordinator::new(
                        state.clone(),
                        events.clone(),
                        instance.clone(),
                        Arc::new(move |record| applying(&pool, record)),
                        record,
                    );
                    let (reshard_tx, reshard_rx) = mpsc::unbounded_channel();
                    coordinators.insert(state.name.clone(), reshard_tx);
                    tokio::task::spawn_local(coordinator.run(reshard_rx, shutdown.clone()));
                    let controller = Controller::new(state, events.clone(), instance.clone());
                    tokio::task::spawn_local(controller.run(ready, rx, shutdown.clone()));
                }
                ControlCommand::Reshard(pool, command) => {
                    if let Some(coordinator) = coordinators.get(&pool) {
                        let _ = coordinator.send(command);
                    }
                }
                ControlCommand::Reconfigure {
                    pool,
                    config,
                    placement,
                    done,
                } => {
                    if let Some(controller) = pools.get(&pool) {
                        let _ = controller.send(PoolCommand::Reconfigure(config, placement, done));
                    }
                }
                ControlCommand::Stop(pool) => {
                    if let Some(controller) = pools.remove(&pool) {
                        let _ = controller.send(PoolCommand::Stop);
                    }
                    // Dropping its channel ends the coordinator.
                    coordinators.remove(&pool);
                }
            }
        }
        // Controllers see the shutdown themselves; give them a moment to
        // stop their probes.
        tokio::task::yield_now().await;
    })
}
