//! Starting and stopping the proxy: bind every listener first (a bad
//! address stops startup before anything is served), start the workers,
//! and on shutdown stop accepting, let sessions finish within a grace
//! period, and join the workers.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

use crate::admin::Admin;
use crate::config::{Config, ListenAddr};
use crate::control::Controller;
use crate::frontend::listener::{bind_tcp, bind_unix};
use crate::frontend::Endpoint;
use crate::pool::PoolState;
use crate::proxy_info::ProxyInfo;
use crate::topology::Events;
use crate::worker::{self, WorkerListener, WorkerSetup};

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
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("pool '{pool}': cannot listen on {addr}: {source}")]
    Bind {
        pool: String,
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot listen for the admin server on {addr}: {source}")]
    Admin {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
}

/// A running proxy.
pub struct Proxy {
    pools: Vec<Arc<PoolState>>,
    events: Arc<Events>,
    shutdown: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
    control: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Binds every pool's listener and starts the workers.
    pub fn start(config: Config, options: Options) -> Result<Proxy, StartError> {
        let workers = options.workers.max(1);
        let proxy = Arc::new(ProxyInfo::new(workers));
        let pools: Vec<Arc<PoolState>> = config
            .pools
            .into_iter()
            .map(|pool| Arc::new(PoolState::new(pool)))
            .collect();
        proxy.set_pools(&pools);
        let mut per_worker: Vec<Vec<WorkerListener>> = (0..workers).map(|_| Vec::new()).collect();
        for (index, pool) in pools.iter().enumerate() {
            let config = &pool.config;
            let endpoints = std::iter::once((&config.listen, Endpoint::ReadWrite)).chain(
                config
                    .readonly_listen
                    .iter()
                    .map(|l| (l, Endpoint::ReadOnly)),
            );
            for (listen, endpoint) in endpoints {
                let bind_error = |source| StartError::Bind {
                    pool: config.name.clone(),
                    addr: listen.to_string(),
                    source,
                };
                match listen {
                    ListenAddr::Tcp(addr) => {
                        for listeners in per_worker.iter_mut() {
                            let listener = bind_tcp(*addr, config.backlog).map_err(bind_error)?;
                            listeners.push(WorkerListener {
                                pool: index,
                                listener,
                                endpoint,
                            });
                        }
                    }
                    ListenAddr::Unix { path, mode } => {
                        let listener = bind_unix(path, *mode).map_err(bind_error)?;
                        if let Some(first) = per_worker.first_mut() {
                            first.push(WorkerListener {
                                pool: index,
                                listener,
                                endpoint,
                            });
                        }
                    }
                }
            }
            tracing::info!(
                pool = %config.name,
                listen = %config.listen,
                servers = config.servers.len(),
                distribution = config.distribution.name(),
                hash = config.hash.name(),
                "pool ready"
            );
        }
        let admin_listener = match options.admin {
            Some(addr) => Some(
                std::net::TcpListener::bind(addr)
                    .map_err(|source| StartError::Admin { addr, source })?,
            ),
            None => None,
        };
        if let Some(listener) = &admin_listener {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!("admin server on http://{addr}/ (metrics at /metrics)");
            }
        }
        let (shutdown, receiver) = watch::channel(false);
        let events = Arc::new(Events::default());
        let admin = admin_listener.map(|listener| {
            let admin = Arc::new(Admin {
                pools: pools.clone(),
                events: events.clone(),
                proxy: proxy.clone(),
                hosts: options.admin_hosts.clone(),
            });
            (listener, admin)
        });
        let (ready, settled) = std::sync::mpsc::channel();
        let control = spawn_control(
            pools.clone(),
            events.clone(),
            proxy.instance.clone(),
            admin,
            ready,
            receiver.clone(),
        )
        .map_err(StartError::Thread)?;
        // Serve only once every pool knows its nodes' roles (bounded: a
        // controller gives up waiting after its settle budget).
        let wait_until = std::time::Instant::now() + Duration::from_secs(6);
        for _ in &pools {
            let left = wait_until.saturating_duration_since(std::time::Instant::now());
            if settled.recv_timeout(left).is_err() {
                tracing::warn!(
                    "the first health checks took too long; serving with the configured roles"
                );
                break;
            }
        }
        let mut handles = Vec::with_capacity(workers);
        for (id, listeners) in per_worker.into_iter().enumerate() {
            let setup = WorkerSetup {
                id,
                pools: pools.clone(),
                proxy: proxy.clone(),
                listeners,
                shutdown: receiver.clone(),
                grace: options.shutdown_grace,
                metrics: options.metrics,
            };
            handles.push(worker::spawn(setup).map_err(StartError::Thread)?);
        }
        Ok(Proxy {
            pools,
            events,
            shutdown,
            workers: handles,
            control: Some(control),
        })
    }

    pub fn pools(&self) -> &[Arc<PoolState>] {
        &self.pools
    }

    pub fn events(&self) -> &Arc<Events> {
        &self.events
    }

    /// Stops accepting, lets sessions finish (up to the grace period), and
    /// waits for every worker.
    pub fn shutdown(self) {
        let _ = self.shutdown.send(true);
        // Every session finishes what it has read, then ends.
        for pool in &self.pools {
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
        for pool in &self.pools {
            if let crate::config::ListenAddr::Unix { path, .. } = &pool.config.listen {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// The control thread: every pool's controller (health checks, Sentinel,
/// failover) on one current-thread runtime, off the workers' hot path.
fn spawn_control(
    pools: Vec<Arc<PoolState>>,
    events: Arc<Events>,
    instance: Arc<str>,
    admin: Option<(std::net::TcpListener, Arc<Admin>)>,
    ready: std::sync::mpsc::Sender<()>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<JoinHandle<()>> {
    crate::worker::spawn_thread("shardgate-control".into(), move || async move {
        for pool in pools {
            let controller = Controller::new(pool, events.clone(), instance.clone());
            tokio::task::spawn_local(controller.run(ready.clone(), shutdown.clone()));
        }
        if let Some((listener, admin)) = admin {
            tokio::task::spawn_local(crate::admin::serve(listener, admin, shutdown.clone()));
        }
        crate::shutdown::until_shutdown(&mut shutdown).await;
    })
}
