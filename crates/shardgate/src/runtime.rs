//! The running proxy's shape, as startup builds it and reloads change it:
//! which pools exist, where each endpoint listens, and the channels to the
//! workers and the control thread. Every step waits until it is applied
//! everywhere, so a caller that goes on to the next step never races the
//! previous one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::config::{ListenAddr, PoolConfig};
use crate::control::ControlCommand;
use crate::frontend::listener::{bind_for_workers, BoundListener};
use crate::frontend::Endpoint;
use crate::pool::PoolState;
use crate::proxy_info::ProxyInfo;
use crate::worker::WorkerCommand;

/// How long a new pool's first health checks may take before it serves
/// with its configured roles (a controller's own settle budget is less).
const SETTLE_WAIT: Duration = Duration::from_secs(6);
/// How long a controller may take to publish a reload's configuration.
const RECONFIGURE_WAIT: Duration = Duration::from_secs(10);

/// Why listening sockets could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("pool '{pool}': cannot listen on {addr}: {source}")]
pub struct BindError {
    pub pool: String,
    pub addr: String,
    pub source: std::io::Error,
}

/// One endpoint's new listening sockets (one per worker), bound ahead of
/// a change so a bind error stops the change before anything moved.
pub struct Bound {
    pool: Arc<str>,
    endpoint: Endpoint,
    /// None: the endpoint is gone (its listeners close).
    addr: Option<ListenAddr>,
    per_worker: Vec<Option<BoundListener>>,
}

pub struct Runtime {
    proxy: Arc<ProxyInfo>,
    workers: Vec<mpsc::UnboundedSender<WorkerCommand>>,
    control: mpsc::UnboundedSender<ControlCommand>,
    /// Where each pool's endpoints listen now.
    listening: HashMap<(Arc<str>, Endpoint), ListenAddr>,
    /// How long a removed pool's clients get to finish.
    grace: Duration,
}

/// A pool's endpoints and their addresses under `config`.
fn endpoints(config: &PoolConfig) -> [(Endpoint, Option<&ListenAddr>); 2] {
    [
        (Endpoint::ReadWrite, Some(&config.listen)),
        (Endpoint::ReadOnly, config.readonly_listen.as_ref()),
    ]
}

impl Runtime {
    pub fn new(
        proxy: Arc<ProxyInfo>,
        workers: Vec<mpsc::UnboundedSender<WorkerCommand>>,
        control: mpsc::UnboundedSender<ControlCommand>,
        grace: Duration,
    ) -> Runtime {
        Runtime {
            proxy,
            workers,
            control,
            listening: HashMap::new(),
            grace,
        }
    }

    pub fn proxy(&self) -> &Arc<ProxyInfo> {
        &self.proxy
    }

    /// The pool called `name`, if it exists.
    pub fn pool(&self, name: &str) -> Option<Arc<PoolState>> {
        self.proxy
            .pools()
            .iter()
            .find(|p| &*p.name == name)
            .cloned()
    }

    /// Binds the endpoints of `config` that do not listen where it says
    /// yet (all of a new pool's). Nothing is served on them until
    /// [`Runtime::listen`].
    pub fn bind(&self, config: &PoolConfig) -> Result<Vec<Bound>, BindError> {
        let pool: Arc<str> = config.name.as_str().into();
        let mut bound = Vec::new();
        for (endpoint, addr) in endpoints(config) {
            let now = self.listening.get(&(pool.clone(), endpoint));
            if now == addr {
                continue;
            }
            let per_worker = match addr {
                Some(addr) => bind_for_workers(addr, config.backlog, self.workers.len()).map_err(
                    |source| BindError {
                        pool: config.name.clone(),
                        addr: addr.to_string(),
                        source,
                    },
                )?,
                None => (0..self.workers.len()).map(|_| None).collect(),
            };
            bound.push(Bound {
                pool: pool.clone(),
                endpoint,
                addr: addr.cloned(),
                per_worker,
            });
        }
        Ok(bound)
    }

    /// Starts pools: each controller settles (its first health checks,
    /// bounded by [`SETTLE_WAIT`] for all of them together), then every
    /// worker serves them. Their listeners follow with [`Runtime::listen`].
    pub fn start_pools(&mut self, configs: Vec<PoolConfig>) -> Vec<Arc<PoolState>> {
        let states: Vec<Arc<PoolState>> = configs
            .into_iter()
            .map(|config| Arc::new(PoolState::new(config)))
            .collect();
        let (ready, settled) = std::sync::mpsc::channel();
        for state in &states {
            let _ = self.control.send(ControlCommand::Start {
                state: state.clone(),
                ready: ready.clone(),
            });
        }
        let deadline = Instant::now() + SETTLE_WAIT;
        for _ in &states {
            let left = deadline.saturating_duration_since(Instant::now());
            if settled.recv_timeout(left).is_err() {
                tracing::warn!(
                    "the first health checks took too long; serving with the configured roles"
                );
                break;
            }
        }
        let mut pools = (*self.proxy.pools()).clone();
        pools.extend(states.iter().cloned());
        self.proxy.set_pools(pools);
        for state in &states {
            self.tell_workers(|| WorkerCommand::AddPool(state.clone()));
        }
        self.barrier();
        states
    }

    /// Hands bound listeners to the workers (closing the ones they
    /// replace), and waits until every worker took them.
    pub fn listen(&mut self, bound: Vec<Bound>) {
        for Bound {
            pool,
            endpoint,
            addr,
            per_worker,
        } in bound
        {
            for (worker, listener) in self.workers.iter().zip(per_worker) {
                let _ = worker.send(WorkerCommand::Listen {
                    pool: pool.clone(),
                    endpoint,
                    listener,
                });
            }
            let key = (pool, endpoint);
            let old = match addr {
                Some(addr) => self.listening.insert(key, addr),
                None => self.listening.remove(&key),
            };
            self.remove_stale_socket(old);
        }
        self.barrier();
    }

    /// A reload's configuration for an existing pool: users and slow log
    /// at once, then the controller publishes a topology carrying the
    /// rest; sessions whose user is gone are closed.
    pub fn reconfigure(&mut self, state: &Arc<PoolState>, config: PoolConfig) {
        state.reconfigure(&config);
        let (done, published) = std::sync::mpsc::channel();
        let _ = self.control.send(ControlCommand::Reconfigure {
            pool: state.name.clone(),
            config: Arc::new(config),
            done,
        });
        if published.recv_timeout(RECONFIGURE_WAIT).is_err() {
            tracing::warn!(pool = %state.name, "the controller took too long to publish the new configuration");
        }
        let users = state.users();
        let mut closed = 0;
        for client in state.clients.list() {
            let user = client.user();
            if !user.is_empty() && users.get(user.as_bytes()).is_none() {
                client.kill();
                closed += 1;
            }
        }
        if closed > 0 {
            tracing::info!(pool = %state.name, "closed {closed} client connection(s) whose user the reload removed");
        }
    }

    /// Stops serving a pool: its listeners close at once; its clients are
    /// answered what they sent, then closed (any left after the grace
    /// period are closed then); its controller stops.
    pub fn remove_pool(&mut self, name: &str) {
        let Some(state) = self.pool(name) else {
            return;
        };
        let pool = state.name.clone();
        self.tell_workers(|| WorkerCommand::RemovePool(pool.clone()));
        self.barrier();
        let _ = self.control.send(ControlCommand::Stop(pool.clone()));
        let pools = self
            .proxy
            .pools()
            .iter()
            .filter(|p| p.name != pool)
            .cloned()
            .collect();
        self.proxy.set_pools(pools);
        for endpoint in [Endpoint::ReadWrite, Endpoint::ReadOnly] {
            let old = self.listening.remove(&(pool.clone(), endpoint));
            self.remove_stale_socket(old);
        }
        let clients = state.clients.list();
        tracing::info!(
            pool = %pool,
            "pool removed by a reload: its listeners are closed; its {} client(s) are answered what they sent, then closed",
            clients.len()
        );
        for client in &clients {
            client.request_shutdown();
        }
        let grace = self.grace;
        let _ = std::thread::Builder::new()
            .name("shardgate-drain".into())
            .spawn(move || {
                std::thread::sleep(grace);
                for client in state.clients.list() {
                    client.kill();
                }
            });
    }

    /// Stops listening everywhere (shutdown): the unix socket files go.
    pub fn remove_socket_files(&mut self) {
        let addrs: Vec<ListenAddr> = self.listening.drain().map(|(_, a)| a).collect();
        for addr in addrs {
            if let ListenAddr::Unix { path, .. } = addr {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// A unix socket file no endpoint listens on any more is removed.
    fn remove_stale_socket(&self, old: Option<ListenAddr>) {
        if let Some(ListenAddr::Unix { path, .. }) = &old {
            let in_use = (self.listening.values())
                .any(|a| matches!(a, ListenAddr::Unix { path: p, .. } if p == path));
            if !in_use {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    fn tell_workers(&self, command: impl Fn() -> WorkerCommand) {
        for worker in &self.workers {
            let _ = worker.send(command());
        }
    }

    /// Waits until every worker applied every command sent so far (a
    /// worker that stopped counts as done).
    fn barrier(&self) {
        let (done, applied) = std::sync::mpsc::channel();
        self.tell_workers(|| WorkerCommand::Barrier(done.clone()));
        drop(done);
        for _ in &self.workers {
            if applied.recv().is_err() {
                break;
            }
        }
    }
}
