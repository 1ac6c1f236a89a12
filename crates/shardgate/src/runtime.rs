//! The running proxy's shape, as startup builds it and reloads change it:
//! which pools exist, where each endpoint listens, and the channels to the
//! workers and the control thread. Every step waits until it is applied
//! everywhere, so a caller that goes on to the next step never races the
//! previous one.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::config::{ListenAddr, PoolConfig};
use crate::control::{ControlCommand, KeyPlacement};
use crate::frontend::listener::{bind_for_workers, bind_tcp, BoundListener};
use crate::frontend::Endpoint;
use crate::pool::PoolState;
use crate::proxy_info::ProxyInfo;
use crate::reshard::Store;
use crate::upgrade::{start_successor, Inheritance, Inherited, UpgradeError};
use crate::worker::WorkerCommand;
use shardgate_core::reshard::MigrationRecord;

/// How long a new pool's first health checks may take before it serves
/// with its configured roles (a controller's own settle budget is less).
const SETTLE_WAIT: Duration = Duration::from_secs(6);
/// How long a controller may take to publish a reload's configuration.
const RECONFIGURE_WAIT: Duration = Duration::from_secs(10);

/// A pool about to start: its configuration as it runs (a migration
/// adds the servers keys move to), where its keys are, and the migration
/// it starts with.
pub struct PoolStart {
    pub config: PoolConfig,
    pub placement: KeyPlacement,
    pub record: Option<MigrationRecord>,
    /// The coordination store could not be read: refuse the pool's
    /// requests until it can.
    pub out_of_step: bool,
}

impl PoolStart {
    /// Reads the pool's migration from its coordination store first (a
    /// proxy started during a migration routes with it from its first
    /// request), registering as `instance` in the same step: a migration
    /// started from then on waits for this proxy, which may serve as soon
    /// as this returns. Blocking.
    pub fn read(config: PoolConfig, instance: &str) -> PoolStart {
        let plain = |config, out_of_step| PoolStart {
            config,
            placement: KeyPlacement::default(),
            record: None,
            out_of_step,
        };
        if config.coordination.is_none() {
            return plain(config, false);
        }
        let mut store = Store::for_pool(&config);
        let read = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|runtime| {
                runtime
                    .block_on(async {
                        let registered = store.heartbeat(instance, 0);
                        tokio::time::timeout(Duration::from_secs(3), registered).await
                    })
                    .map_err(|_| "timed out".to_string())?
                    .map(|heartbeat| heartbeat.record)
                    .map_err(|e| e.to_string())
            });
        match read {
            Ok(None) => plain(config, false),
            Ok(Some(record)) => match record.effective(&config) {
                Ok(effective) => PoolStart {
                    config: effective.config,
                    placement: effective.placement,
                    record: Some(record),
                    out_of_step: false,
                },
                Err(e) => {
                    tracing::error!(pool = %config.name, "the pool's migration cannot be applied ({e}): refusing its requests");
                    plain(config, true)
                }
            },
            Err(e) => {
                tracing::error!(pool = %config.name, "cannot read the pool's migration from its coordination store ({e}): refusing its requests until it can");
                plain(config, true)
            }
        }
    }
}

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
    /// Where each pool's endpoints listen now, with a descriptor of each
    /// worker's socket (to hand them to a new process).
    listening: HashMap<(Arc<str>, Endpoint), Listening>,
    /// The admin server's address and socket (for a new process).
    admin: Option<(String, OwnedFd)>,
    /// Sockets taken from the old process (this one is its upgrade).
    inheritance: Option<Inheritance>,
    /// A new process took over: its sockets are not this one's to remove.
    handed_over: bool,
    /// How long a removed pool's clients get to finish.
    grace: Duration,
    /// Turns true when the proxy shuts down: an upgrade still waiting for
    /// its successor gives up (and stops it) rather than hold the exit.
    stopping: watch::Receiver<bool>,
}

/// An endpoint's address and sockets.
struct Listening {
    addr: ListenAddr,
    fds: Vec<Option<OwnedFd>>,
}

/// A pool's endpoints and their addresses under `config`.
fn endpoints(config: &PoolConfig) -> [(Endpoint, Option<&ListenAddr>); 4] {
    Endpoint::ALL.map(|endpoint| (endpoint, endpoint.addr(config)))
}

impl Runtime {
    pub fn new(
        proxy: Arc<ProxyInfo>,
        workers: Vec<mpsc::UnboundedSender<WorkerCommand>>,
        control: mpsc::UnboundedSender<ControlCommand>,
        grace: Duration,
        stopping: watch::Receiver<bool>,
    ) -> Runtime {
        Runtime {
            proxy,
            workers,
            control,
            listening: HashMap::new(),
            admin: None,
            inheritance: None,
            handed_over: false,
            grace,
            stopping,
        }
    }

    /// This process is an upgrade: its listeners come from the old one
    /// where the addresses match.
    pub fn inherit(&mut self, inheritance: Inheritance) {
        self.inheritance = Some(inheritance);
    }

    /// The inheritance, once every listener is bound (to adopt clients).
    pub fn take_inheritance(&mut self) -> Option<Inheritance> {
        self.inheritance.take()
    }

    /// The admin server's socket: inherited if the old process listened
    /// on `addr`, else bound. A descriptor is kept for a future upgrade.
    pub fn admin_listener(
        &mut self,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<std::net::TcpListener> {
        let label = addr.to_string();
        let listener = match self.inheritance.as_mut().and_then(|i| i.admin(&label)) {
            Some(fd) => std::net::TcpListener::from(fd),
            None => std::net::TcpListener::bind(addr)?,
        };
        self.admin = Some((label, listener.as_fd().try_clone_to_owned()?));
        Ok(listener)
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
    pub fn bind(&mut self, config: &PoolConfig) -> Result<Vec<Bound>, BindError> {
        let pool: Arc<str> = config.name.as_str().into();
        let mut bound = Vec::new();
        for (endpoint, addr) in endpoints(config) {
            let now = self
                .listening
                .get(&(pool.clone(), endpoint))
                .map(|l| &l.addr);
            if now == addr {
                continue;
            }
            let inherited = addr.and_then(|a| {
                self.inheritance
                    .as_mut()?
                    .listeners(&config.name, endpoint.index(), &a.to_string())
            });
            let per_worker = match (addr, inherited) {
                (Some(addr), Some(fds)) => self.adopt_listeners(addr, fds, config.backlog),
                (Some(addr), None) => bind_for_workers(addr, config.backlog, self.workers.len()),
                (None, _) => Ok((0..self.workers.len()).map(|_| None).collect()),
            }
            .map_err(|source| BindError {
                pool: config.name.clone(),
                addr: addr.map(ToString::to_string).unwrap_or_default(),
                source,
            })?;
            bound.push(Bound {
                pool: pool.clone(),
                endpoint,
                addr: addr.cloned(),
                per_worker,
            });
        }
        Ok(bound)
    }

    /// The old process's sockets of one endpoint, one per worker: if this
    /// process has more workers, the others bind their own; if fewer, the
    /// extra sockets close.
    fn adopt_listeners(
        &self,
        addr: &ListenAddr,
        fds: Vec<OwnedFd>,
        backlog: u32,
    ) -> std::io::Result<Vec<Option<BoundListener>>> {
        let unix = matches!(addr, ListenAddr::Unix { .. });
        let mut fds = fds.into_iter();
        let mut listeners = Vec::with_capacity(self.workers.len());
        for index in 0..self.workers.len() {
            let listener = match (fds.next(), addr) {
                (Some(fd), _) => Some(BoundListener::inherited(fd, unix)?),
                (None, ListenAddr::Tcp(addr)) => Some(bind_tcp(*addr, backlog)?),
                (None, ListenAddr::Unix { .. }) if index == 0 => {
                    return Err(std::io::Error::other("no unix socket inherited"))
                }
                (None, ListenAddr::Unix { .. }) => None,
            };
            listeners.push(listener);
        }
        Ok(listeners)
    }

    /// Starts pools: each controller settles (its first health checks,
    /// bounded by [`SETTLE_WAIT`] for all of them together), then every
    /// worker serves them. Their listeners follow with [`Runtime::listen`].
    pub fn start_pools(&mut self, pools: Vec<PoolStart>) -> Vec<Arc<PoolState>> {
        let mut states = Vec::with_capacity(pools.len());
        let (ready, settled) = std::sync::mpsc::channel();
        for pool in pools {
            let state = Arc::new(PoolState::new(pool.config, &pool.placement));
            state.set_out_of_step(pool.out_of_step);
            let _ = self.control.send(ControlCommand::Start {
                state: state.clone(),
                ready: ready.clone(),
                record: pool.record,
            });
            states.push(state);
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
            let mut fds = Vec::with_capacity(per_worker.len());
            for (worker, listener) in self.workers.iter().zip(per_worker) {
                fds.push(listener.as_ref().and_then(|l| l.duplicate().ok()));
                let _ = worker.send(WorkerCommand::Listen {
                    pool: pool.clone(),
                    endpoint,
                    listener,
                });
            }
            let key = (pool, endpoint);
            let old = match addr {
                Some(addr) => self.listening.insert(key, Listening { addr, fds }),
                None => self.listening.remove(&key),
            };
            self.remove_stale_socket(old.map(|l| l.addr));
        }
        self.barrier();
    }

    /// A reload's (or a migration's) configuration for an existing pool:
    /// users and slow log at once, then the controller publishes a
    /// topology carrying the rest; sessions whose user is gone are closed.
    pub fn reconfigure(
        &mut self,
        state: &Arc<PoolState>,
        config: PoolConfig,
        placement: KeyPlacement,
    ) {
        state.reconfigure(&config);
        let (done, published) = std::sync::mpsc::channel();
        let _ = self.control.send(ControlCommand::Reconfigure {
            pool: state.name.clone(),
            config: Arc::new(config),
            placement,
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

    /// Waits until no session of the pool runs a batch routed with a
    /// snapshot older than the current one (a session blocked in a call
    /// is unblocked: its key may be about to move). After this, no request
    /// sent under an older placement can still reach a server. False if
    /// `within` passed first.
    pub fn drain_older_batches(&self, state: &PoolState, within: Duration) -> bool {
        // A full barrier after the publish (see `ClientEntry::start_batch`).
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let current = state.topology_version();
        let deadline = Instant::now() + within;
        loop {
            let mut waiting = 0;
            for client in state.clients.list() {
                if client.routed_before(current) {
                    waiting += 1;
                    if client.is_blocked() {
                        client.unblock(crate::pool::clients::UNBLOCK_ERROR);
                    }
                }
            }
            if waiting == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                tracing::warn!(pool = %state.name, "{waiting} session(s) still run requests routed before the change");
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
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
        for endpoint in Endpoint::ALL {
            let old = self.listening.remove(&(pool.clone(), endpoint));
            self.remove_stale_socket(old.map(|l| l.addr));
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

    /// Stops listening everywhere (shutdown): the unix socket files go,
    /// unless a new process took them over.
    pub fn remove_socket_files(&mut self) {
        let addrs: Vec<ListenAddr> = self.listening.drain().map(|(_, l)| l.addr).collect();
        if self.handed_over {
            return;
        }
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
                .any(|l| matches!(&l.addr, ListenAddr::Unix { path: p, .. } if p == path));
            if !in_use {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// A binary upgrade: starts `exe args`, gives it every listening
    /// socket, and once it serves, stops accepting here and asks every
    /// session to hand itself over between two requests. Returns the new
    /// process's pid. On error nothing changed here.
    pub fn hand_over(&mut self, exe: &PathBuf, args: &[OsString]) -> Result<u32, UpgradeError> {
        let mut inherited = Vec::new();
        for ((pool, endpoint), listening) in &self.listening {
            for (index, fd) in listening.fds.iter().enumerate() {
                if let Some(fd) = fd {
                    inherited.push(Inherited {
                        pool,
                        endpoint: endpoint.index(),
                        index,
                        addr: listening.addr.to_string(),
                        fd,
                    });
                }
            }
        }
        let admin = self.admin.as_ref().map(|(addr, fd)| (addr.clone(), fd));
        let stopping = &self.stopping;
        let (pid, handoff) = start_successor(exe, args, &inherited, admin, || *stopping.borrow())?;
        self.tell_workers(|| WorkerCommand::StopAccepting);
        self.barrier();
        self.handed_over = true;
        self.proxy.retire(handoff);
        let mut clients = 0;
        for pool in self.proxy.pools().iter() {
            for client in pool.clients.list() {
                client.request_handoff();
                clients += 1;
            }
        }
        tracing::info!(
            "upgrade: pid {pid} serves now; handing over {clients} client connection(s) between their requests"
        );
        Ok(pid)
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
