//! A worker's view of one pool: the current topology snapshot and this
//! worker's backend connections to each of its servers.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use crate::backend::{self, BackendConn, BackendSettings};
use crate::config::PoolConfig;
use crate::topology::{PoolState, PoolTopology, Server};

/// This worker's connections to one server (`server_connections` of them),
/// used round-robin.
pub struct ServerConns {
    pub server: Server,
    conns: Vec<BackendConn>,
    next: Cell<usize>,
}

impl ServerConns {
    fn open(config: &PoolConfig, server: &Server) -> ServerConns {
        let settings = BackendSettings {
            addr: server.addr,
            name: format!("pool '{}' server {}", config.name, server.label).into(),
            auth: config.redis_auth.clone(),
            db: config.redis_db,
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            max_backoff: config.server_retry_timeout,
            tcp_keepalive: config.tcpkeepalive,
        };
        let conns = (0..config.server_connections)
            .map(|_| backend::spawn(settings.clone()))
            .collect();
        ServerConns {
            server: server.clone(),
            conns,
            next: Cell::new(0),
        }
    }

    /// The next connection, round-robin.
    pub fn pick(&self) -> &BackendConn {
        let i = self.next.get();
        self.next.set(i.wrapping_add(1));
        // `conns` is never empty: server_connections >= 1 is validated.
        &self.conns[i % self.conns.len()]
    }
}

/// The snapshot a session routes a batch with.
pub struct PoolView {
    pub topology: Arc<PoolTopology>,
    pub servers: Vec<Rc<ServerConns>>,
}

/// One pool inside one worker.
pub struct PoolWorker {
    pub state: Arc<PoolState>,
    view: RefCell<Rc<PoolView>>,
}

impl PoolWorker {
    /// Opens this worker's backend connections to every server of the pool.
    /// Must run inside the worker's `LocalSet`.
    pub fn new(state: Arc<PoolState>) -> PoolWorker {
        let topology = state.topology();
        let servers = topology
            .servers
            .iter()
            .map(|s| Rc::new(ServerConns::open(&state.config, s)))
            .collect();
        PoolWorker {
            state,
            view: RefCell::new(Rc::new(PoolView { topology, servers })),
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.state.config
    }

    /// The current view, rebuilt first if a new topology was published.
    /// Connections to servers that stay are kept.
    pub fn view(&self) -> Rc<PoolView> {
        let current = self.view.borrow().clone();
        if self.state.topology_version() == current.topology.version {
            return current;
        }
        let published = self.state.topology();
        let servers = published
            .servers
            .iter()
            .map(|server| {
                current
                    .servers
                    .iter()
                    .find(|c| c.server.addr == server.addr)
                    .cloned()
                    .unwrap_or_else(|| Rc::new(ServerConns::open(&self.state.config, server)))
            })
            .collect();
        let view = Rc::new(PoolView {
            topology: published,
            servers,
        });
        *self.view.borrow_mut() = view.clone();
        view
    }
}
