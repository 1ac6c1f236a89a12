//! A pool's controller: the executor of the decisions
//! [`shardgate_core::control::Kernel`] makes. It probes every node (a task
//! per node), runs the Sentinel watchers, and carries out each action
//! (ROLE checks, looking for other proxies, REPLICAOF) in a task of its
//! own whose outcome comes back as an input, so no command to one node
//! holds up what the pool learns from the others. It publishes the
//! topologies the kernel builds, records its events, keeps the counters,
//! and stops with the proxy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use resp::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use super::sentinel;
use crate::backend::probe::Prober;
use crate::backend::Handshake;
use crate::config::{Failover, PoolConfig};
use crate::error::NodeError;
use crate::pool::PoolState;
use crate::topology::{Events, KeyPlacement, Topology};
use shardgate_core::control::{Action, Input, Kernel, MANAGED_NAME};

/// What the control thread tells a running controller.
pub enum PoolCommand {
    /// A reload's (or a migration's) configuration for the pool; `done`
    /// is told once the topology carrying it is published.
    Reconfigure(Arc<PoolConfig>, KeyPlacement, std::sync::mpsc::Sender<()>),
    /// The pool was removed: stop probing and watching.
    Stop,
}

/// One pool's controller.
pub struct Controller {
    state: Arc<PoolState>,
    config: Arc<PoolConfig>,
    events: Arc<Events>,
    kernel: Kernel,
    /// The pool's name, for events.
    pool: Arc<str>,
    /// This proxy's instance id (managed proxies defer to older ones).
    instance: Arc<str>,
    /// The handshake of the controller's connections to the nodes (named
    /// so managed proxies can see each other).
    handshake: Handshake,
    tx: mpsc::UnboundedSender<Input>,
    rx: mpsc::UnboundedReceiver<Input>,
    probers: HashMap<SocketAddr, AbortHandle>,
    /// The Sentinel watchers' tasks.
    watchers: Vec<AbortHandle>,
    /// Where the keys are (a migration may be moving them).
    placement: KeyPlacement,
}

impl Controller {
    pub fn new(state: Arc<PoolState>, events: Arc<Events>, instance: Arc<str>) -> Controller {
        let config = state.config();
        let placement = state.topology().key_placement();
        let kernel = Kernel::new(config.clone(), instance.clone(), Instant::now());
        let handshake = Handshake {
            auth: config.redis_auth.clone(),
            db: 0,
            resp3: false,
            client_name: Some(kernel.client_name()),
            ask_id: false,
            readonly: false,
            tls: state.tls.backend(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        Controller {
            pool: config.name.as_str().into(),
            state,
            config,
            events,
            kernel,
            instance,
            handshake,
            tx,
            rx,
            probers: HashMap::new(),
            watchers: Vec::new(),
            placement,
        }
    }

    /// Runs until the proxy stops or the pool is removed. `ready` is told
    /// once startup is over (every node probed and, with Sentinel, every
    /// master heard of; or [`Controller::settle_budget`] spent) and the
    /// first view published. Commands wait until then.
    pub async fn run(
        mut self,
        ready: std::sync::mpsc::Sender<()>,
        mut commands: mpsc::UnboundedReceiver<PoolCommand>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let start = self.kernel.start();
        self.execute(start);
        self.watch_sentinels();
        let settle = tokio::time::sleep(self.settle_budget());
        tokio::pin!(settle);
        while !self.kernel.ready() {
            tokio::select! {
                input = self.rx.recv() => match input {
                    Some(input) => self.apply(input),
                    None => return,
                },
                () = &mut settle => break,
                () = crate::shutdown::until_shutdown(&mut shutdown) => return self.stop(),
            }
        }
        self.apply(Input::Settled);
        let _ = ready.send(());
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                input = self.rx.recv() => match input {
                    Some(input) => self.apply(input),
                    None => break,
                },
                command = commands.recv() => match command {
                    Some(PoolCommand::Reconfigure(config, placement, done)) => {
                        self.placement = placement;
                        self.reconfigure(config);
                        let _ = done.send(());
                    }
                    Some(PoolCommand::Stop) | None => break,
                },
                _ = housekeeping.tick() => self.apply(Input::Tick),
                () = crate::shutdown::until_shutdown(&mut shutdown) => break,
            }
        }
        self.stop();
    }

    fn stop(&mut self) {
        for (_, prober) in self.probers.drain() {
            prober.abort();
        }
        for watcher in self.watchers.drain(..) {
            watcher.abort();
        }
    }

    /// With `failover: sentinel`, one watcher per Sentinel.
    fn watch_sentinels(&mut self) {
        for watcher in self.watchers.drain(..) {
            watcher.abort();
        }
        if self.config.failover != Failover::Sentinel {
            return;
        }
        let names = self
            .kernel
            .shards()
            .iter()
            .map(|s| s.group.name.clone())
            .collect();
        self.watchers = sentinel::spawn_watchers(
            &self.config,
            names,
            self.tx.clone(),
            self.events.clone(),
            self.state.tls.sentinel(),
        );
    }

    /// Takes a reload's configuration: the kernel reconciles its groups
    /// and publishes a topology carrying it; probes restart when how they
    /// connect or how often changed, Sentinel watchers when the Sentinels,
    /// their credentials or the shards did.
    fn reconfigure(&mut self, config: Arc<PoolConfig>) {
        let old = std::mem::replace(&mut self.config, config.clone());
        let names = |c: &PoolConfig| c.servers.iter().map(|s| s.ring_name()).collect::<Vec<_>>();
        let reprobe = old.redis_auth != config.redis_auth
            || old.backend_tls != config.backend_tls
            || old.health_check != config.health_check
            || old.failover != config.failover;
        let rewatch = old.sentinels != config.sentinels
            || old.sentinel_auth != config.sentinel_auth
            || old.sentinel_tls != config.sentinel_tls
            || old.failover != config.failover
            || old.connect_timeout != config.connect_timeout
            || names(&old) != names(&config);
        self.handshake.auth = config.redis_auth.clone();
        let actions = self.kernel.reconfigure(Instant::now(), config.clone());
        self.handshake.client_name = Some(self.kernel.client_name());
        if reprobe {
            let addrs: Vec<SocketAddr> = self.probers.keys().copied().collect();
            for addr in addrs {
                if let Some(prober) = self.probers.remove(&addr) {
                    prober.abort();
                }
                self.start_prober(addr);
            }
        }
        self.execute(actions);
        if rewatch {
            self.watch_sentinels();
        }
        self.state.set_status(self.kernel.status(Instant::now()));
    }

    /// How long startup waits for the first probes and Sentinel answers.
    pub fn settle_budget(&self) -> Duration {
        let config = &self.config;
        (config.health_check.timeout.max(config.connect_timeout) * 2).min(Duration::from_secs(5))
    }

    fn apply(&mut self, input: Input) {
        let now = Instant::now();
        let actions = self.kernel.decide(now, input);
        self.execute(actions);
        self.state.set_status(self.kernel.status(now));
    }

    fn execute(&mut self, mut actions: Vec<Action>) {
        // Routing changes first: whoever reads an event or a log line the
        // same decision produced finds the published topology agreeing.
        actions.sort_by_key(|a| !matches!(a, Action::Publish { .. }));
        for action in actions {
            match action {
                Action::Probe(node) => self.start_prober(node.addr),
                Action::StopProbing(addr) => {
                    if let Some(prober) = self.probers.remove(&addr) {
                        prober.abort();
                    }
                }
                Action::Verify { shard, addr, via } => {
                    let mut prober = self.prober(addr.addr, self.verify_timeout());
                    self.spawn(async move {
                        let result = is_master(&mut prober).await;
                        Input::Verified {
                            shard,
                            addr,
                            via,
                            result,
                        }
                    });
                }
                Action::FindPeers { shard, nodes, then } => {
                    let probers: Vec<Prober> = nodes
                        .iter()
                        .map(|&addr| self.prober(addr, self.config.health_check.timeout))
                        .collect();
                    let instance = self.instance.clone();
                    self.spawn(async move {
                        let result = older_peer(probers, &instance).await;
                        Input::Peers {
                            shard,
                            result,
                            then,
                        }
                    });
                }
                Action::Promote { shard, node } => {
                    let mut prober = self.prober(node.addr, self.config.health_check.timeout);
                    self.spawn(async move {
                        let result = promote(&mut prober).await;
                        Input::Promoted {
                            shard,
                            node,
                            result,
                        }
                    });
                }
                Action::Repoint {
                    shard,
                    node,
                    host,
                    port,
                } => {
                    let mut prober = self.prober(node.addr, self.config.health_check.timeout);
                    self.spawn(async move {
                        let port = port.to_string();
                        let result = prober
                            .command(&[b"REPLICAOF", host.as_bytes(), port.as_bytes()])
                            .await
                            .map(|_| ());
                        Input::Repointed {
                            shard,
                            node,
                            result,
                        }
                    });
                }
                Action::Event {
                    shard,
                    kind,
                    message,
                } => {
                    let name = shard
                        .and_then(|s| self.kernel.shards().get(s))
                        .map(|s| s.group.name.clone());
                    self.events
                        .record(&self.pool, name.as_ref(), kind.as_str(), message);
                }
                Action::FailedOver { outage } => {
                    let stats = &self.state.stats;
                    stats.failovers.fetch_add(1, Relaxed);
                    let micros = u64::try_from(outage.as_micros()).unwrap_or(u64::MAX);
                    stats.failover_micros.fetch_add(micros, Relaxed);
                }
                Action::HealthFlipped => {
                    self.state.stats.health_flips.fetch_add(1, Relaxed);
                }
                Action::ReplicaExcluded => {
                    self.state.stats.replica_exclusions.fetch_add(1, Relaxed);
                }
                Action::Publish { version, shards } => {
                    let topology = Topology::placed(&self.config, version, shards, &self.placement);
                    self.state.publish(topology);
                }
            }
        }
    }

    /// Runs `work` in a task of its own; its outcome comes back as an input.
    fn spawn(&self, work: impl std::future::Future<Output = Input> + 'static) {
        let tx = self.tx.clone();
        tokio::task::spawn_local(async move {
            let _ = tx.send(work.await);
        });
    }

    fn prober(&self, addr: SocketAddr, timeout: Duration) -> Prober {
        Prober::new(addr, self.handshake.clone(), timeout)
    }

    /// A ROLE check waits a little longer than a probe: it decides writes.
    fn verify_timeout(&self) -> Duration {
        self.config
            .health_check
            .timeout
            .max(Duration::from_millis(200))
    }

    /// A node's health checks: a probe every `health_check.interval`.
    fn start_prober(&mut self, addr: SocketAddr) {
        if self.probers.contains_key(&addr) {
            return;
        }
        let tx = self.tx.clone();
        let state = self.state.clone();
        let mut prober = self.prober(addr, self.config.health_check.timeout);
        let interval = self.config.health_check.interval;
        let task = tokio::task::spawn_local(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let started = Instant::now();
                let result = prober.probe().await;
                let probed = Input::Probed {
                    addr,
                    started,
                    result,
                    busy_with: state.kept_busy(addr),
                };
                if tx.send(probed).is_err() {
                    return;
                }
            }
        });
        self.probers.insert(addr, task.abort_handle());
    }
}

/// Whether the node says it is a master (ROLE).
async fn is_master(prober: &mut Prober) -> Result<(), NodeError> {
    match prober.command(&[b"ROLE"]).await? {
        Value::Array(items) => match items.first().and_then(Value::as_bytes) {
            Some(b"master") => Ok(()),
            Some(role) => Err(NodeError::Unexpected(format!(
                "ROLE says {}",
                String::from_utf8_lossy(role)
            ))),
            None => Err(NodeError::Unexpected("ROLE: empty reply".into())),
        },
        other => Err(NodeError::Unexpected(format!(
            "ROLE: unexpected reply {other:?}"
        ))),
    }
}

/// `REPLICAOF NO ONE`, then a check that the node is a master.
async fn promote(prober: &mut Prober) -> Result<(), NodeError> {
    prober.command(&[b"REPLICAOF", b"NO", b"ONE"]).await?;
    is_master(prober).await
}

/// Managed mode with several proxies: only the oldest managed proxy that
/// can reach the group acts (promotes, re-points); the others follow the
/// roles it sets. Proxies see each other through the names of their
/// health connections (`CLIENT LIST` on the group's reachable nodes);
/// instance ids sort by start time. Returns the oldest peer older than
/// this proxy, if any: then this proxy does not act.
async fn older_peer(probers: Vec<Prober>, instance: &str) -> Result<Option<String>, NodeError> {
    let mut reached = 0;
    let mut last_error = None;
    let prefix = format!("name={MANAGED_NAME}");
    for mut prober in probers {
        match prober
            .command(&[b"CLIENT", b"LIST", b"TYPE", b"normal"])
            .await
        {
            Ok(list) => {
                reached += 1;
                let text = crate::backend::wire::text(&list).unwrap_or_default();
                let older = text
                    .split_whitespace()
                    .filter_map(|field| field.strip_prefix(prefix.as_str()))
                    .filter(|id| *id < instance)
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
