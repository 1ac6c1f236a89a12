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

use crate::config::{self, Config};
use crate::proxy_info::{unix_now, ConfigRecord, ReloadAttempt, ReloadResult};
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

/// What the reload thread is asked for: everything that changes the
/// running shape, one at a time.
enum Request {
    Reload(oneshot::Sender<ReloadOutcome>),
    /// A binary upgrade: the new process's pid, or why not.
    Upgrade(oneshot::Sender<Result<u32, String>>),
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
    pub fn upgrade(&self) -> Result<u32, String> {
        if self.executable.is_none() {
            return Err(
                "this process cannot upgrade (it did not start from a binary and a config file)"
                    .into(),
            );
        }
        let (reply, outcome) = oneshot::channel();
        self.requests
            .send(Request::Upgrade(reply))
            .map_err(|_| "shutting down".to_string())?;
        outcome
            .blocking_recv()
            .unwrap_or_else(|_| Err("shutting down".into()))
    }

    /// Reloads and waits for the outcome (a blocking call).
    pub fn reload(&self) -> Option<ReloadOutcome> {
        self.request()?.blocking_recv().ok()
    }

    /// Reloads; the outcome is awaited.
    pub async fn reload_async(&self) -> Option<ReloadOutcome> {
        self.request()?.await.ok()
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
    active: Config,
    /// The file reloads read (None: started without one; reloads fail).
    path: Option<PathBuf>,
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
        }
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
                        Request::Upgrade(reply) if upgraded => {
                            let _ = reply.send(Err("already upgraded".into()));
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
                            let _ = reply.send(outcome.map_err(|e| e.to_string()));
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
        let plan =
            Plan::new(&self.active, &next).map_err(|refusals| (ReloadResult::Refused, refusals))?;
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
        let by_name = |name: &str| next.pools.iter().find(|p| p.name == name).cloned();
        let added = plan.added.iter().filter_map(|name| by_name(name)).collect();
        self.runtime.start_pools(added);
        for (name, _) in &plan.changed {
            if let (Some(state), Some(config)) = (self.runtime.pool(name), by_name(name)) {
                self.runtime.reconfigure(&state, config);
            }
        }
        self.runtime.listen(bound);
        for name in &plan.removed {
            self.runtime.remove_pool(name);
        }
        let summary = plan.summary();
        let epoch = self.runtime.proxy().config().epoch + 1;
        self.runtime.proxy().set_config(record(epoch, &text));
        self.active = next;
        Ok(summary)
    }
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
