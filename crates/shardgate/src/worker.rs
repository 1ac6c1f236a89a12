//! Workers: one OS thread each, running a current-thread tokio runtime
//! with its own listeners and its own backend connections, so the hot path
//! takes no cross-thread lock and makes no cross-thread hop.

use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::LocalSet;

use crate::frontend::listener::{accept_loop, BoundListener, SessionTracker};
use crate::frontend::Endpoint;
use crate::pool::PoolState;
use crate::proxy_info::ProxyInfo;
use crate::view::PoolWorker;

/// A listening socket a worker accepts on.
pub struct WorkerListener {
    /// Index into the pools.
    pub pool: usize,
    pub listener: BoundListener,
    pub endpoint: Endpoint,
}

/// Everything one worker thread starts with.
pub struct WorkerSetup {
    pub id: usize,
    pub pools: Vec<Arc<PoolState>>,
    /// The process, for INFO.
    pub proxy: Arc<ProxyInfo>,
    pub listeners: Vec<WorkerListener>,
    pub shutdown: watch::Receiver<bool>,
    /// How long sessions may take to finish once shutdown starts.
    pub grace: Duration,
    pub metrics: bool,
}

/// Starts a worker thread.
pub fn spawn(setup: WorkerSetup) -> std::io::Result<JoinHandle<()>> {
    spawn_thread(format!("shardgate-worker-{}", setup.id), move || run(setup))
}

/// An OS thread running `make()`'s future on its own current-thread
/// runtime and `LocalSet` (so tasks may be `!Send`): workers and the
/// control thread.
pub fn spawn_thread<F, Fut>(name: String, make: F) -> std::io::Result<JoinHandle<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => LocalSet::new().block_on(&runtime, make()),
                Err(e) => tracing::error!("{name}: cannot start its runtime: {e}"),
            }
        })
}

async fn run(setup: WorkerSetup) {
    let WorkerSetup {
        id,
        pools,
        proxy,
        listeners,
        mut shutdown,
        grace,
        metrics,
    } = setup;
    let pools: Vec<Rc<PoolWorker>> = pools
        .into_iter()
        .map(|state| Rc::new(PoolWorker::new(state, proxy.clone(), metrics)))
        .collect();
    let tracker = Rc::new(SessionTracker::default());
    for WorkerListener {
        pool,
        listener,
        endpoint,
    } in listeners
    {
        let Some(pool) = pools.get(pool).cloned() else {
            continue;
        };
        let shutdown = shutdown.clone();
        let tracker = tracker.clone();
        tokio::task::spawn_local(async move {
            let name = pool.config().name.clone();
            if let Err(e) = accept_loop(listener, endpoint, pool, shutdown, tracker).await {
                tracing::error!(pool = %name, "listener failed: {e}");
            }
        });
    }
    crate::shutdown::until_shutdown(&mut shutdown).await;
    if tokio::time::timeout(grace, tracker.wait_idle())
        .await
        .is_err()
    {
        tracing::warn!(
            worker = id,
            "sessions still open after the {grace:?} shutdown grace; closing them"
        );
    }
}
