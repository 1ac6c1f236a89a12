//! Starting and stopping the proxy: bind every listener first (a bad
//! address stops startup before anything is served), start the control
//! thread and the workers, start the pools, and on shutdown stop
//! accepting, let sessions finish within a grace period, and join every
//! thread.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::admin::Admin;
use crate::config::Config;
use crate::pool::PoolState;
use crate::proxy_info::ProxyInfo;
use crate::reload::{ReloadHandle, Reloader};
use crate::runtime::{BindError, Runtime};
use crate::topology::Events;
use crate::upgrade::{notify_systemd, Adoption, Inheritance};
use crate::worker::{self, WorkerCommand, WorkerSetup};

/// How the proxy runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Worker threads (each with its own listeners and backend connections).
    pub workers: usize,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Per-command metrics (off only to measure what they cost).
    pub metrics: bool,
    /// Where the admin HTTP server listens (None: no admin server).
    pub admin: Option<std::net::SocketAddr>,
    /// Host names the admin server answers to, besides IP addresses,
    /// `localhost` and the machine's name.
    pub admin_hosts: Vec<String>,
    /// The admin server's bearer token (`--admin-token-file`).
    pub admin_token: Option<crate::secrets::Secret>,
    /// The admin server's certificate and key (HTTPS).
    pub admin_tls: Option<crate::config::ListenTls>,
    /// The configuration file (reloads read it again) and its text.
    pub config_file: Option<(PathBuf, String)>,
    /// The binary and arguments a binary upgrade starts (None: no upgrades).
    pub executable: Option<(PathBuf, Vec<OsString>)>,
    /// This process is the upgrade of the one listening at this path: it
    /// takes that one's sockets and clients.
    pub inherit: Option<PathBuf>,
    /// What all clients together may hold in the proxy's buffers, in bytes
    /// (0: no limit); beyond it the heaviest are closed.
    pub maxmemory_clients: u64,
}

/// What a program that embeds the proxy starts from (the demo, tests that
/// run it in process): one worker, metrics on, a 1 s shutdown grace, no
/// admin server, no configuration file to reload, no binary upgrade, no
/// limit on client memory.
impl Default for Options {
    fn default() -> Options {
        Options {
            workers: 1,
            shutdown_grace: Duration::from_secs(1),
            metrics: true,
            admin: None,
            admin_hosts: Vec::new(),
            admin_token: None,
            admin_tls: None,
            config_file: None,
            executable: None,
            inherit: None,
            maxmemory_clients: 0,
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("cannot listen for the admin server on {addr}: {source}")]
    Admin {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot take over from the old process: {0}")]
    Inherit(std::io::Error),
    #[error("{}", .0.join("; "))]
    Tls(Vec<String>),
}

/// A running proxy.
pub struct Proxy {
    proxy: Arc<ProxyInfo>,
    events: Arc<Events>,
    shutdown: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
    control: Option<JoinHandle<()>>,
    reloads: ReloadHandle,
    reloader: JoinHandle<Runtime>,
}

impl Proxy {
    /// Binds every pool's listeners, starts the threads, then the pools.
    pub fn start(config: Config, options: Options) -> Result<Proxy, StartError> {
        shardgate_tls::install_provider();
        // Certificates and keys are read before anything listens.
        let problems = crate::pool::tls::check(&config);
        if !problems.is_empty() {
            return Err(StartError::Tls(problems));
        }
        let admin_tls = match &options.admin_tls {
            Some(settings) => Some(
                crate::pool::tls::AdminTls::load(settings)
                    .map_err(|e| StartError::Tls(vec![format!("admin server: {e}")]))?,
            ),
            None => None,
        };
        let workers = options.workers.max(1);
        let proxy = Arc::new(ProxyInfo::new(workers));
        if let Some(tls) = admin_tls {
            proxy.set_admin_tls(tls);
        }
        let (worker_txs, worker_rxs): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| mpsc::unbounded_channel()).unzip();
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (shutdown, receiver) = watch::channel(false);
        let mut runtime = Runtime::new(
            proxy.clone(),
            worker_txs.clone(),
            control_tx.clone(),
            options.shutdown_grace,
            receiver.clone(),
        );
        if let Some(path) = &options.inherit {
            let inheritance = Inheritance::take(path).map_err(StartError::Inherit)?;
            runtime.inherit(inheritance);
        }
        let mut bound = Vec::new();
        for pool in &config.pools {
            bound.extend(runtime.bind(pool)?);
        }
        let admin_listener = match options.admin {
            Some(addr) => Some(
                runtime
                    .admin_listener(addr)
                    .map_err(|source| StartError::Admin { addr, source })?,
            ),
            None => None,
        };
        let events = Arc::new(Events::default());
        let (config_path, text) = options.config_file.clone().unzip();
        // The runtime goes to the reload thread once the pools are up.
        let mut reloader = Reloader::new(
            runtime,
            config.clone(),
            config_path,
            text.as_deref().unwrap_or(""),
        );
        let mut handles = Vec::with_capacity(workers);
        for (id, commands) in worker_rxs.into_iter().enumerate() {
            let setup = WorkerSetup {
                id,
                proxy: proxy.clone(),
                commands,
                shutdown: receiver.clone(),
                grace: options.shutdown_grace,
                metrics: options.metrics,
            };
            handles.push(worker::spawn(setup).map_err(StartError::Thread)?);
        }
        let (reloads, requests) = ReloadHandle::channel(options.executable.clone());
        let scheme = if options.admin_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let access = crate::admin::Access {
            token: options.admin_token.clone(),
            exposed: options.admin.is_some_and(|addr| !addr.ip().is_loopback()),
        };
        if access.exposed && access.token.is_none() {
            tracing::warn!(
                "the admin server listens beyond loopback without --admin-token-file: anyone who reaches it reads metrics and topology; reload, upgrade and resharding through it are refused"
            );
        }
        let admin = admin_listener.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!("admin server on {scheme}://{addr}/ (metrics at /metrics)");
            }
            let admin = Arc::new(Admin {
                events: events.clone(),
                proxy: proxy.clone(),
                hosts: options.admin_hosts.clone(),
                reloads: reloads.clone(),
                control: control_tx,
                history: Default::default(),
                access,
            });
            (listener, admin)
        });
        let admin_shutdown = receiver.clone();
        if options.maxmemory_clients > 0 {
            let pools = proxy.clone();
            crate::pool::client_memory::spawn(
                options.maxmemory_clients,
                move || pools.pools(),
                receiver.clone(),
            )
            .map_err(StartError::Thread)?;
        }
        let migrations = reloads.clone();
        let control = crate::control::spawn(
            events.clone(),
            proxy.instance.clone(),
            move |pool: &str, record| migrations.migrate(pool, record),
            control_rx,
            receiver,
            move || {
                admin.map(|(listener, admin)| {
                    Box::pin(crate::admin::serve(listener, admin, admin_shutdown))
                        as std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>
                })
            },
        )
        .map_err(StartError::Thread)?;
        let states = reloader.start_pools(config.pools);
        let runtime = reloader.runtime_mut();
        runtime.listen(bound);
        for state in &states {
            log_pool(state);
        }
        match runtime.take_inheritance() {
            Some(inheritance) => {
                // Serving: the old process hands its clients over now.
                inheritance
                    .serve(adopter(worker_txs))
                    .map_err(StartError::Inherit)?;
                notify_systemd(&format!("MAINPID={}\nREADY=1", std::process::id()));
            }
            None => notify_systemd("READY=1"),
        }
        let reloader = reloader.spawn(requests).map_err(StartError::Thread)?;
        proxy.set_serving();
        Ok(Proxy {
            proxy,
            events,
            shutdown,
            workers: handles,
            control: Some(control),
            reloads,
            reloader,
        })
    }

    pub fn pools(&self) -> Arc<Vec<Arc<PoolState>>> {
        self.proxy.pools()
    }

    pub fn events(&self) -> &Arc<Events> {
        &self.events
    }

    /// Asks for reloads of the configuration file (SIGHUP) and binary
    /// upgrades (SIGUSR2: [`ReloadHandle::upgrade`] starts the new binary,
    /// hands it the listening sockets, and once it serves, every client
    /// between two requests; this process should then [`Proxy::drain`] and
    /// exit). A handle may wait for its outcome on any thread: a shutdown
    /// does not wait for it, and answers it once the proxy stopped.
    pub fn reloads(&self) -> ReloadHandle {
        self.reloads.clone()
    }

    /// Turns true once a new process serves in this one's place (an
    /// upgrade, however it was asked for): this process should then
    /// [`Proxy::drain`] and exit.
    pub fn retired(&self) -> watch::Receiver<bool> {
        self.proxy.retired()
    }

    /// After an upgrade: waits until every client went to the new process
    /// (or `grace` passed; the rest are closed by [`Proxy::shutdown`]).
    pub fn drain(&self, grace: Duration) {
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            let left: usize = self.proxy.pools().iter().map(|p| p.clients.count()).sum();
            if left == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops accepting, lets sessions finish (up to the grace period), and
    /// waits for every thread.
    pub fn shutdown(self) {
        let _ = self.shutdown.send(true);
        // Every session finishes what it has read, then ends.
        for pool in self.proxy.pools().iter() {
            for client in pool.clients.list() {
                client.request_shutdown();
            }
        }
        for handle in self.workers {
            let _ = handle.join();
        }
        if let Some(control) = self.control {
            let _ = control.join();
        }
        // The admin server's handle went with the control thread.
        drop(self.reloads);
        if let Ok(mut runtime) = self.reloader.join() {
            runtime.remove_socket_files();
        }
    }
}

/// Hands each adopted client to the next worker in turn.
fn adopter(
    workers: Vec<mpsc::UnboundedSender<WorkerCommand>>,
) -> impl Fn(Adoption) + Send + 'static {
    let next = std::sync::atomic::AtomicUsize::new(0);
    move |adoption| {
        let turn = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(worker) = workers.get(turn % workers.len().max(1)) {
            let _ = worker.send(WorkerCommand::Adopt(Box::new(adoption)));
        }
    }
}

fn log_pool(state: &PoolState) {
    let config = state.config();
    tracing::info!(
        pool = %config.name,
        listen = %config.main_listener().map(ToString::to_string).unwrap_or_default(),
        tls = config.tls_listen.is_some() || config.tls_readonly_listen.is_some(),
        servers = config.servers.len(),
        distribution = config.distribution.name(),
        hash = config.hash.name(),
        "pool ready"
    );
}
