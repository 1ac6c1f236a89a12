//! Reloading the configuration file while the proxy runs (see
//! `docs/reload.md`). One thread takes reload requests in order (SIGHUP,
//! `POST /reload`), so reloads never interleave. Each reads and validates
//! the whole file, compares it with the active one
//! ([`shardgate_core::change::Plan`]), binds any new listener, and only
//! then applies the change, pool by pool, through the [`Runtime`]. A file
//! that is invalid, a refused change or a listener that will not bind
//! changes nothing.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use sha2::Digest;
use shardgate_core::change::Plan;
use tokio::sync::oneshot;

use std::collections::HashMap;

use shardgate_core::reshard::{Effective, MigrationRecord, PlacementRecord};

use crate::config::{self, Config, PoolConfig};
use crate::control::KeyPlacement;
use crate::pool::PoolState;
use crate::proxy_info::{unix_now, ConfigRecord, ReloadAttempt, ReloadResult};
use crate::reshard::MigrateError;
use crate::runtime::PoolStart;
use crate::runtime::Runtime;

/// What a reload did.
#[derive(Debug, Clone)]
pub struct ReloadOutcome {
    pub result: ReloadResult,
    /// The configuration epoch after it.
    pub epoch: u64,
    /// What changed (applied), or every problem (otherwise).
    pub lines: Vec<String>,
}

/// Why the reload thread did not start an upgrade.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeRefused {
    #[error("shutting down")]
    ShuttingDown,
    #[error("this process cannot upgrade (it did not start from a binary and a config file)")]
    CannotUpgrade,
    #[error("already upgraded")]
    AlreadyUpgraded,
    #[error(transparent)]
    Failed(#[from] crate::upgrade::UpgradeError),
}

/// What the reload thread is asked for: everything that changes the
/// running shape, one at a time.
enum Request {
    Reload(oneshot::Sender<ReloadOutcome>),
    /// A binary upgrade: the new process's pid, or why not.
    Upgrade(oneshot::Sender<Result<u32, UpgradeRefused>>),
    /// Route the pool with this migration record (its coordinator asks).
    Migrate(
        String,
        Box<MigrationRecord>,
        oneshot::Sender<Result<(), MigrateError>>,
    ),
    /// The migrations to the placements a configuration gives (the
    /// given text, or the file).
    ReshardPlan(
        Option<String>,
        oneshot::Sender<Result<Vec<MigrationRecord>, Vec<String>>>,
    ),
}

/// Asks the reload thread for reloads and upgrades.
#[derive(Clone)]
pub struct ReloadHandle {
    requests: std::sync::mpsc::Sender<Request>,
    /// The binary and arguments an upgrade starts (None: upgrades are off).
    executable: Option<Arc<(PathBuf, Vec<OsString>)>>,
}

/// The reload thread's end of the requests.
pub struct ReloadRequests {
    incoming: std::sync::mpsc::Receiver<Request>,
    executable: Option<Arc<(PathBuf, Vec<OsString>)>>,
}

impl ReloadHandle {
    /// A handle and the requests it sends (for [`Reloader::spawn`]);
    /// upgrades start `executable` (the binary and its arguments).
    pub fn channel(executable: Option<(PathBuf, Vec<OsString>)>) -> (ReloadHandle, ReloadRequests) {
        let (requests, incoming) = std::sync::mpsc::channel();
        let executable = executable.map(Arc::new);
        (
            ReloadHandle {
                requests,
                executable: executable.clone(),
            },
            ReloadRequests {
                incoming,
                executable,
            },
        )
    }

    /// Starts a binary upgrade and waits until the new process serves
    /// (a blocking call): its pid, or why there is none.
    pub fn upgrade(&self) -> Result<u32, UpgradeRefused> {
        if self.executable.is_none() {
            return Err(UpgradeRefused::CannotUpgrade);
        }
        let (reply, outcome) = oneshot::channel();
        self.requests
            .send(Request::Upgrade(reply))
            .map_err(|_| UpgradeRefused::ShuttingDown)?;
        outcome
            .blocking_recv()
            .unwrap_or(Err(UpgradeRefused::ShuttingDown))
    }

    /// Reloads and waits for the outcome (a blocking call).
    pub fn reload(&self) -> Option<ReloadOutcome> {
        self.request()?.blocking_recv().ok()
    }

    /// Reloads; the outcome is awaited.
    pub async fn reload_async(&self) -> Option<ReloadOutcome> {
        self.request()?.await.ok()
    }

    /// Routes `pool` with `record` (a blocking call, for its coordinator).
    pub fn migrate(&self, pool: &str, record: MigrationRecord) -> Result<(), MigrateError> {
        let (reply, outcome) = oneshot::channel();
        self.requests
            .send(Request::Migrate(pool.to_string(), Box::new(record), reply))
            .map_err(|_| MigrateError::ShuttingDown)?;
        outcome
            .blocking_recv()
            .unwrap_or(Err(MigrateError::ShuttingDown))
    }

    /// The migrations that would take each pool to the placement its
    /// entry in the configuration file gives (or in `text`, a
    /// configuration to compare with: see `reshard plan`; their
    /// `generation` is the coordinator's to set), or every reason why not.
    pub async fn reshard_plan(
        &self,
        text: Option<String>,
    ) -> Result<Vec<(String, MigrationRecord)>, Vec<String>> {
        let (reply, outcome) = oneshot::channel();
        self.requests
            .send(Request::ReshardPlan(text, reply))
            .map_err(|_| vec!["shutting down".to_string()])?;
        let records = outcome
            .await
            .unwrap_or_else(|_| Err(vec!["shutting down".into()]))?;
        Ok(records.into_iter().map(|r| (r.pool.clone(), r)).collect())
    }

    fn request(&self) -> Option<oneshot::Receiver<ReloadOutcome>> {
        let (reply, outcome) = oneshot::channel();
        self.requests.send(Request::Reload(reply)).ok()?;
        Some(outcome)
    }
}

/// The active configuration and how to apply a new one.
pub struct Reloader {
    runtime: Runtime,
    /// The configuration file as last applied (each pool's placement may
    /// be a migration's instead: see `migrations`).
    active: Config,
    /// The file reloads read (None: started without one; reloads fail).
    path: Option<PathBuf>,
    /// Each pool's migration record, as this proxy routes with it.
    migrations: HashMap<String, MigrationRecord>,
}

impl Reloader {
    /// `text` is the file `active` was read from (its hash and redacted
    /// form are shown by `GET /config`).
    pub fn new(runtime: Runtime, active: Config, path: Option<PathBuf>, text: &str) -> Reloader {
        runtime.proxy().set_config(record(0, text));
        Reloader {
            runtime,
            active,
            path,
            migrations: HashMap::new(),
        }
    }

    /// Starts the configuration's pools (reading their migrations first).
    pub fn start_pools(&mut self, configs: Vec<PoolConfig>) -> Vec<Arc<PoolState>> {
        let instance = self.runtime.proxy().instance.clone();
        let starts: Vec<PoolStart> = (configs.into_iter())
            .map(|config| PoolStart::read(config, &instance))
            .collect();
        for start in &starts {
            if let Some(record) = &start.record {
                self.migrations
                    .insert(start.config.name.clone(), record.clone());
            }
        }
        self.runtime.start_pools(starts)
    }

    /// Routes `pool` with `record`: its servers and placement (both while
    /// keys move). When keys start moving, waits until nothing sent under
    /// the previous placement is still in flight.
    fn migrate(&mut self, pool: &str, record: MigrationRecord) -> Result<(), MigrateError> {
        if self.migrations.get(pool) == Some(&record) {
            return Ok(());
        }
        let no_pool = || MigrateError::NoPool(pool.to_string());
        let base = (self.active.pools.iter())
            .find(|p| p.name == pool)
            .ok_or_else(no_pool)?;
        let state = self.runtime.pool(pool).ok_or_else(no_pool)?;
        let effective = record.effective(base)?;
        // What it routes with now, to go back to if the new record cannot
        // be acknowledged: an error means nothing changed.
        let previous = match self.migrations.get(pool) {
            Some(applied) => applied.effective(base)?,
            None => Effective {
                config: base.clone(),
                placement: KeyPlacement::default(),
            },
        };
        // A new generation: requests routed before it may still reach a
        // key's source; wait for them before acknowledging.
        let starts = effective.placement.moving.is_some()
            && self
                .migrations
                .get(pool)
                .is_none_or(|r| r.generation != record.generation);
        self.runtime
            .reconfigure(&state, effective.config, effective.placement);
        if starts && !self.runtime.drain_older_batches(&state, DRAIN_WITHIN) {
            self.runtime
                .reconfigure(&state, previous.config, previous.placement);
            return Err(MigrateError::InFlight);
        }
        self.migrations.insert(pool.to_string(), record);
        Ok(())
    }

    /// A migration for each pool whose placement in the file differs from
    /// the one it runs with. Only a plan: the pools' coordinators start
    /// them (never the reload thread, which their migrations go through).
    fn reshard_plan(&mut self, text: Option<String>) -> Result<Vec<MigrationRecord>, Vec<String>> {
        let text = match (text, &self.path) {
            (Some(text), _) => text,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?,
            (None, None) => {
                return Err(vec![
                    "the proxy was started without a configuration file".into()
                ])
            }
        };
        let next = config::parse(&text)?;
        let mut records = Vec::new();
        let mut problems = Vec::new();
        for target in &next.pools {
            let Some(active) = self.active.pools.iter().find(|p| p.name == target.name) else {
                continue;
            };
            let from = match self.migrations.get(&target.name) {
                Some(record) if record.done => record.destination().clone(),
                Some(record) => {
                    problems.push(format!(
                        "pool '{}': migration {} is under way",
                        target.name, record.generation
                    ));
                    continue;
                }
                None => PlacementRecord::of(active),
            };
            let to = PlacementRecord::of(target);
            if from == to {
                continue;
            }
            match from.apply(active) {
                Ok(from_config) => {
                    if let Some(why) = shardgate_core::reshard::refuse(&from_config, target) {
                        problems.push(why);
                        continue;
                    }
                }
                Err(e) => {
                    problems.push(format!("pool '{}': {e}", target.name));
                    continue;
                }
            }
            records.push(MigrationRecord::start(&target.name, from, to));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        if records.is_empty() {
            return Err(vec![
                "no pool's servers, hash or distribution differ from the ones it runs with: edit them in the file first".into(),
            ]);
        }
        Ok(records)
    }

    pub fn runtime_mut(&mut self) -> &mut Runtime {
        &mut self.runtime
    }

    /// Starts the reload thread, serving `requests` in order; it ends
    /// (handing the runtime back) when every handle is dropped.
    pub fn spawn(mut self, requests: ReloadRequests) -> std::io::Result<JoinHandle<Runtime>> {
        std::thread::Builder::new()
            .name("shardgate-reload".into())
            .spawn(move || {
                let mut upgraded = false;
                for request in requests.incoming {
                    match request {
                        Request::Reload(reply) if upgraded => {
                            let _ = reply.send(ReloadOutcome {
                                result: ReloadResult::Failed,
                                epoch: self.runtime.proxy().config().epoch,
                                lines: vec![
                                    "this process has handed over to a new one: reload that one"
                                        .into(),
                                ],
                            });
                        }
                        Request::Reload(reply) => {
                            let _ = reply.send(self.reload());
                        }
                        Request::Migrate(pool, record, reply) => {
                            let _ = reply.send(self.migrate(&pool, *record));
                        }
                        Request::ReshardPlan(text, reply) => {
                            let _ = reply.send(self.reshard_plan(text));
                        }
                        Request::Upgrade(reply) if upgraded => {
                            let _ = reply.send(Err(UpgradeRefused::AlreadyUpgraded));
                        }
                        Request::Upgrade(reply) => {
                            let outcome = match &requests.executable {
                                Some(exe) => self.runtime.hand_over(&exe.0, &exe.1),
                                None => Err(crate::upgrade::UpgradeError::Channel(
                                    std::io::Error::other("no binary to start"),
                                )),
                            };
                            upgraded = outcome.is_ok();
                            if let Err(e) = &outcome {
                                tracing::error!("upgrade failed, this process carries on: {e}");
                            }
                            let _ = reply.send(outcome.map_err(UpgradeRefused::Failed));
                        }
                    }
                }
                self.runtime
            })
    }

    /// Reads the file again and applies it; logs and records the outcome.
    pub fn reload(&mut self) -> ReloadOutcome {
        let (result, lines) = match self.try_reload() {
            Ok(lines) => (ReloadResult::Applied, lines),
            Err((result, lines)) => (result, lines),
        };
        let proxy = self.runtime.proxy();
        proxy.record_attempt(ReloadAttempt {
            at_unix: unix_now(),
            result,
            lines: lines.clone(),
        });
        let epoch = proxy.config().epoch;
        match result {
            ReloadResult::Applied if lines.is_empty() => {
                tracing::info!(epoch, "configuration reloaded: nothing changed");
            }
            ReloadResult::Applied => {
                tracing::info!(epoch, "configuration reloaded: {}", lines.join("; "));
            }
            _ => tracing::error!(
                "configuration reload {}: nothing changed: {}",
                result.as_str(),
                lines.join("; ")
            ),
        }
        ReloadOutcome {
            result,
            epoch,
            lines,
        }
    }

    fn try_reload(&mut self) -> Result<Vec<String>, (ReloadResult, Vec<String>)> {
        let invalid = |problems| (ReloadResult::Invalid, problems);
        let Some(path) = &self.path else {
            return Err(invalid(vec![
                "the proxy was started without a configuration file".into(),
            ]));
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(vec![format!("{}: cannot read: {e}", path.display())]))?;
        let next = config::parse(&text).map_err(invalid)?;
        // A pool with a migration record is placed by it, not by the file.
        let mut compared = next.clone();
        for pool in compared.pools.iter_mut() {
            let active = self.active.pools.iter().find(|p| p.name == pool.name);
            if let (Some(_), Some(active)) = (self.migrations.get(&pool.name), active) {
                keep_placement(pool, active);
            }
        }
        let plan = Plan::new(&self.active, &compared)
            .map_err(|refusals| (ReloadResult::Refused, refusals))?;
        // Every certificate and key read again (docs/tls.md).
        let proxy = self.runtime.proxy();
        let certificates =
            crate::pool::tls::Reread::prepare(&proxy.pools(), proxy.admin_tls(), &next)
                .map_err(invalid)?;
        // Every listener the new file needs, bound before anything changes.
        let mut bound = Vec::new();
        for pool in &next.pools {
            let listens = plan.added.contains(&pool.name)
                || plan
                    .changed
                    .iter()
                    .any(|(name, change)| *name == pool.name && change.listen);
            if listens {
                let more = self
                    .runtime
                    .bind(pool)
                    .map_err(|e| (ReloadResult::Failed, vec![e.to_string()]))?;
                bound.extend(more);
            }
        }
        // Everything that can fail is worked out before anything changes:
        // a failed reload leaves the proxy as it was.
        let by_name = |name: &str| compared.pools.iter().find(|p| p.name == name).cloned();
        let mut reconfigured = Vec::new();
        for (name, _) in &plan.changed {
            let (Some(state), Some(config)) = (self.runtime.pool(name), by_name(name)) else {
                continue;
            };
            let (config, placement) = match self.migrations.get(name).map(|r| r.effective(&config))
            {
                Some(Ok(effective)) => (effective.config, effective.placement),
                Some(Err(e)) => return Err((ReloadResult::Failed, vec![e.to_string()])),
                None => (config, KeyPlacement::default()),
            };
            reconfigured.push((state, config, placement));
        }
        let certificates = certificates.apply();
        let added: Vec<PoolConfig> = plan.added.iter().filter_map(|name| by_name(name)).collect();
        self.start_pools(added);
        for (state, config, placement) in reconfigured {
            self.runtime.reconfigure(&state, config, placement);
        }
        self.runtime.listen(bound);
        for name in &plan.removed {
            self.runtime.remove_pool(name);
        }
        let mut summary = plan.summary();
        summary.extend(certificates);
        let epoch = self.runtime.proxy().config().epoch + 1;
        self.runtime.proxy().set_config(record(epoch, &text));
        self.migrations
            .retain(|pool, _| !plan.removed.contains(pool));
        self.active = compared;
        Ok(summary)
    }
}

/// How long a migration's start waits for requests sent before it.
const DRAIN_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// `pool` with `active`'s placement (servers, replicas, hash,
/// distribution, tag): a migration places its keys, not the file.
fn keep_placement(pool: &mut PoolConfig, active: &PoolConfig) {
    pool.servers = active.servers.clone();
    pool.replicas = active.replicas.clone();
    pool.hash = active.hash;
    pool.distribution = active.distribution;
    pool.hash_tag = active.hash_tag.clone();
}

/// What `GET /config` shows of a file applied as `epoch`.
fn record(epoch: u64, text: &str) -> ConfigRecord {
    let hash = sha2::Sha256::digest(text.as_bytes());
    ConfigRecord {
        epoch,
        hash: hash.iter().map(|b| format!("{b:02x}")).collect(),
        redacted: config::redacted(text)
            .and_then(|yaml| serde_json::to_value(yaml).ok())
            .unwrap_or_default(),
        applied_unix: unix_now(),
        last_attempt: None,
    }
}
