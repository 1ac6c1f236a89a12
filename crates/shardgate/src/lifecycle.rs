//! Starting and stopping the proxy: bind every listener first (a bad
//! address stops startup before anything is served), start the control
//! thread and the workers, start the pools, and on shutdown stop
//! accepting, let sessions finish within a grace period, and join every
//! thread.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::admin::Admin;
use crate::config::Config;
use crate::pool::PoolState;
use crate::proxy_info::ProxyInfo;
use crate::reload::{ReloadHandle, ReloadOutcome, Reloader};
use crate::runtime::{BindError, Runtime};
use crate::topology::Events;
use crate::worker::{self, WorkerSetup};

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
    /// The configuration file (reloads read it again) and its text.
    pub config_file: Option<(PathBuf, String)>,
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
        let workers = options.workers.max(1);
        let proxy = Arc::new(ProxyInfo::new(workers));
        let (worker_txs, worker_rxs): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| mpsc::unbounded_channel()).unzip();
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let runtime = Runtime::new(
            proxy.clone(),
            worker_txs,
            control_tx,
            options.shutdown_grace,
        );
        let mut bound = Vec::new();
        for pool in &config.pools {
            bound.extend(runtime.bind(pool)?);
        }
        let admin_listener = match options.admin {
            Some(addr) => Some(
                std::net::TcpListener::bind(addr)
                    .map_err(|source| StartError::Admin { addr, source })?,
            ),
            None => None,
        };
        let (shutdown, receiver) = watch::channel(false);
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
        let (reloads, requests) = ReloadHandle::channel();
        let admin = admin_listener.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!("admin server on http://{addr}/ (metrics at /metrics)");
            }
            let admin = Arc::new(Admin {
                events: events.clone(),
                proxy: proxy.clone(),
                hosts: options.admin_hosts.clone(),
                reloads: reloads.clone(),
            });
            (listener, admin)
        });
        let admin_shutdown = receiver.clone();
        let control = crate::control::spawn(
            events.clone(),
            proxy.instance.clone(),
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
        let runtime = reloader.runtime_mut();
        let states = runtime.start_pools(config.pools);
        runtime.listen(bound);
        for state in &states {
            log_pool(state);
        }
        let reloader = reloader.spawn(requests).map_err(StartError::Thread)?;
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

    /// Reloads the configuration file (SIGHUP); waits for the outcome.
    pub fn reload(&self) -> Option<ReloadOutcome> {
        self.reloads.reload()
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

fn log_pool(state: &PoolState) {
    let config = state.config();
    tracing::info!(
        pool = %config.name,
        listen = %config.listen,
        servers = config.servers.len(),
        distribution = config.distribution.name(),
        hash = config.hash.name(),
        "pool ready"
    );
}
