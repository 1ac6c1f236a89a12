//! Workers: one OS thread each, running a current-thread tokio runtime
//! with its own listeners and its own backend connections, so the hot path
//! takes no cross-thread lock and makes no cross-thread hop.
//!
//! What a worker serves is told to it by [`WorkerCommand`]s, at start and
//! by reloads: pools to serve, listeners to accept on or to close, pools
//! to stop serving. A command is applied between two of the worker's
//! tasks; sessions are never interrupted by one.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle as Task;

use crate::frontend::listener::{accept_loop, adopt_session, BoundListener, SessionTracker};
use crate::frontend::Endpoint;
use crate::pool::PoolState;
use crate::proxy_info::ProxyInfo;
use crate::upgrade::Adoption;
use crate::view::PoolWorker;

/// What a worker is told to do.
pub enum WorkerCommand {
    /// Serve this pool (its listeners follow as `Listen`).
    AddPool(Arc<PoolState>),
    /// Accept the pool's clients of `endpoint` on `listener`, instead of
    /// the listener it had (None: stop accepting them here).
    Listen {
        pool: Arc<str>,
        endpoint: Endpoint,
        listener: Option<BoundListener>,
    },
    /// Stop serving the pool: its listeners close; its sessions carry on
    /// until the pool's clients are told to end.
    RemovePool(Arc<str>),
    /// Stop accepting on every listener (a new process serves now).
    StopAccepting,
    /// Serve a connection the old process handed over (binary upgrade).
    Adopt(Box<Adoption>),
    /// Answered once every command sent before it is applied.
    Barrier(std::sync::mpsc::Sender<()>),
}

/// Everything one worker thread starts with.
pub struct WorkerSetup {
    pub id: usize,
    /// The process, for INFO.
    pub proxy: Arc<ProxyInfo>,
    pub commands: mpsc::UnboundedReceiver<WorkerCommand>,
    pub shutdown: watch::Receiver<bool>,
    /// How long sessions may take to finish once shutdown starts.
    pub grace: Duration,
    pub metrics: bool,
}

/// Starts a worker thread.
pub fn spawn(setup: WorkerSetup) -> std::io::Result<JoinHandle<()>> {
    crate::thread::spawn_thread(format!("shardgate-worker-{}", setup.id), move || run(setup))
}

/// A worker's pools and accept loops.
struct Worker {
    proxy: Arc<ProxyInfo>,
    metrics: bool,
    shutdown: watch::Receiver<bool>,
    tracker: Rc<SessionTracker>,
    pools: HashMap<Arc<str>, Rc<PoolWorker>>,
    accepting: HashMap<(Arc<str>, Endpoint), Task<()>>,
    /// Accept loops aborted: their listeners close once the tasks are
    /// dropped, which a barrier waits for.
    closing: Vec<Task<()>>,
}

impl Worker {
    async fn apply(&mut self, command: WorkerCommand) {
        match command {
            WorkerCommand::AddPool(state) => {
                let pool = Rc::new(PoolWorker::new(state, self.proxy.clone(), self.metrics));
                self.pools.insert(pool.state.name.clone(), pool);
            }
            WorkerCommand::Listen {
                pool,
                endpoint,
                listener,
            } => {
                if let Some(old) = self.accepting.remove(&(pool.clone(), endpoint)) {
                    self.stop(old);
                }
                let (Some(listener), Some(worker)) = (listener, self.pools.get(&pool)) else {
                    return;
                };
                let accepting = accept_loop(
                    listener,
                    endpoint,
                    worker.clone(),
                    self.shutdown.clone(),
                    self.tracker.clone(),
                );
                let name = pool.clone();
                let task = tokio::task::spawn_local(async move {
                    if let Err(e) = accepting.await {
                        tracing::error!(pool = %name, "listener failed: {e}");
                    }
                });
                self.accepting.insert((pool, endpoint), task);
            }
            WorkerCommand::RemovePool(name) => {
                let removed: Vec<_> = (self.accepting.keys())
                    .filter(|(pool, _)| *pool == name)
                    .cloned()
                    .collect();
                for key in removed {
                    if let Some(task) = self.accepting.remove(&key) {
                        self.stop(task);
                    }
                }
                self.pools.remove(&name);
            }
            WorkerCommand::StopAccepting => {
                let tasks: Vec<_> = self.accepting.drain().map(|(_, task)| task).collect();
                for task in tasks {
                    self.stop(task);
                }
            }
            WorkerCommand::Adopt(adoption) => {
                let Some(pool) = self.pools.get(adoption.state.pool.as_str()) else {
                    tracing::warn!(
                        pool = %adoption.state.pool,
                        "upgrade: a client of a pool this configuration does not have is closed"
                    );
                    return;
                };
                let adopted = adopt_session(*adoption, pool, &self.shutdown, &self.tracker);
                if let Err(e) = adopted {
                    tracing::warn!("upgrade: cannot adopt a client connection: {e}");
                }
            }
            WorkerCommand::Barrier(done) => {
                // Answered once the listeners of aborted accept loops are
                // closed: a reload that removed a pool reports it applied
                // only when its port refuses connections.
                for task in self.closing.drain(..) {
                    let _ = task.await;
                }
                let _ = done.send(());
            }
        }
    }

    fn stop(&mut self, task: Task<()>) {
        task.abort();
        self.closing.push(task);
    }
}

async fn run(setup: WorkerSetup) {
    let WorkerSetup {
        id,
        proxy,
        mut commands,
        mut shutdown,
        grace,
        metrics,
    } = setup;
    let mut worker = Worker {
        proxy,
        metrics,
        shutdown: shutdown.clone(),
        tracker: Rc::new(SessionTracker::default()),
        pools: HashMap::new(),
        accepting: HashMap::new(),
        closing: Vec::new(),
    };
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => worker.apply(command).await,
                None => break,
            },
            () = crate::shutdown::until_shutdown(&mut shutdown) => break,
        }
    }
    // Stop accepting at once; sessions get the grace period to finish.
    for (_, task) in worker.accepting.drain() {
        task.abort();
    }
    if tokio::time::timeout(grace, worker.tracker.wait_idle())
        .await
        .is_err()
    {
        tracing::warn!(
            worker = id,
            "sessions still open after the {grace:?} shutdown grace; closing them"
        );
    }
}
