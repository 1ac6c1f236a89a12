//! Starting and stopping the proxy: bind every listener first (a bad
//! address stops startup before anything is served), start the workers,
//! and on shutdown stop accepting, let sessions finish within a grace
//! period, and join the workers.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{Config, ListenAddr};
use crate::frontend::listener::{bind_tcp, bind_unix, BoundListener};
use crate::topology::PoolState;
use crate::worker::{self, WorkerSetup};

/// How the proxy runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Worker threads (each with its own listeners and backend connections).
    pub workers: usize,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace: Duration,
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
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
}

/// A running proxy.
pub struct Proxy {
    pools: Vec<Arc<PoolState>>,
    shutdown: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Binds every pool's listener and starts the workers.
    pub fn start(config: Config, options: Options) -> Result<Proxy, StartError> {
        let workers = options.workers.max(1);
        let pools: Vec<Arc<PoolState>> = config
            .pools
            .into_iter()
            .map(|pool| Arc::new(PoolState::new(pool)))
            .collect();
        let mut per_worker: Vec<Vec<(usize, BoundListener)>> =
            (0..workers).map(|_| Vec::new()).collect();
        for (index, pool) in pools.iter().enumerate() {
            let config = &pool.config;
            let bind_error = |source| StartError::Bind {
                pool: config.name.clone(),
                addr: config.listen.to_string(),
                source,
            };
            match &config.listen {
                ListenAddr::Tcp(addr) => {
                    for listeners in per_worker.iter_mut() {
                        listeners
                            .push((index, bind_tcp(*addr, config.backlog).map_err(bind_error)?));
                    }
                }
                ListenAddr::Unix { path, mode } => {
                    let listener = bind_unix(path, *mode).map_err(bind_error)?;
                    if let Some(first) = per_worker.first_mut() {
                        first.push((index, listener));
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
        let (shutdown, receiver) = watch::channel(false);
        let mut handles = Vec::with_capacity(workers);
        for (id, listeners) in per_worker.into_iter().enumerate() {
            let setup = WorkerSetup {
                id,
                pools: pools.clone(),
                listeners,
                shutdown: receiver.clone(),
                grace: options.shutdown_grace,
            };
            handles.push(worker::spawn(setup).map_err(StartError::Thread)?);
        }
        Ok(Proxy {
            pools,
            shutdown,
            workers: handles,
        })
    }

    pub fn pools(&self) -> &[Arc<PoolState>] {
        &self.pools
    }

    /// Stops accepting, lets sessions finish (up to the grace period), and
    /// waits for every worker.
    pub fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for handle in self.workers {
            let _ = handle.join();
        }
        for pool in &self.pools {
            if let crate::config::ListenAddr::Unix { path, .. } = &pool.config.listen {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
