//! One worker's connections to one node: shared pipelined connection sets
//! per connection key, and a pool of idle leased connections.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use super::conn::{Conn, ConnSettings};
use super::stats::NodeStats;

/// What a backend connection's session state must be for a client to use
/// it: the database it has selected and the protocol it speaks. Clients
/// with the same key share connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub db: u32,
    pub resp3: bool,
}

/// Idle leased connections kept per node and key; more are closed.
const MAX_IDLE_LEASES: usize = 16;

/// One worker's connections to one node.
pub struct Node {
    pub addr: SocketAddr,
    /// `host:port`.
    pub label: Arc<str>,
    pub stats: Arc<NodeStats>,
    /// Settings for a connection with the pool's default key.
    base: ConnSettings,
    default_key: ConnKey,
    per_key: usize,
    /// The default key's shared connections, created with the node.
    default: Vec<Conn>,
    /// Shared connections for other keys, created on first use.
    others: RefCell<Vec<(ConnKey, Rc<[Conn]>)>>,
    idle_leases: RefCell<Vec<(ConnKey, Conn)>>,
}

impl Node {
    /// Opens `per_key` shared connections with the default key at once
    /// (so the first requests need not wait for a connect).
    pub fn new(base: ConnSettings, label: Arc<str>, per_key: usize, stats: Arc<NodeStats>) -> Node {
        let default_key = ConnKey {
            db: base.handshake.db,
            resp3: base.handshake.resp3,
        };
        let per_key = per_key.max(1);
        let default = (0..per_key)
            .map(|_| Conn::spawn(base.clone(), stats.clone()))
            .collect();
        Node {
            addr: base.addr,
            label,
            stats,
            base,
            default_key,
            per_key,
            default,
            others: RefCell::new(Vec::new()),
            idle_leases: RefCell::new(Vec::new()),
        }
    }

    pub fn default_key(&self) -> ConnKey {
        self.default_key
    }

    fn settings_for(&self, key: ConnKey) -> ConnSettings {
        let mut settings = self.base.clone();
        settings.handshake.db = key.db;
        settings.handshake.resp3 = key.resp3;
        settings
    }

    /// Runs `f` with the shared connection client `client_id` uses for `key`.
    /// A client always gets the same connection, so its commands to this
    /// node stay in order.
    #[inline]
    pub fn with_shared<R>(&self, key: ConnKey, client_id: u64, f: impl FnOnce(&Conn) -> R) -> R {
        let index = (client_id % self.per_key as u64) as usize;
        if key == self.default_key {
            if let Some(conn) = self.default.get(index) {
                return f(conn);
            }
        }
        let set = self.shared_set(key);
        match set.get(index) {
            Some(conn) => f(conn),
            // per_key >= 1, so index < len: unreachable, but never panic.
            None => f(&set[0]),
        }
    }

    fn shared_set(&self, key: ConnKey) -> Rc<[Conn]> {
        if let Some((_, set)) = self.others.borrow().iter().find(|(k, _)| *k == key) {
            return set.clone();
        }
        let settings = self.settings_for(key);
        let set: Rc<[Conn]> = (0..self.per_key)
            .map(|_| Conn::spawn(settings.clone(), self.stats.clone()))
            .collect();
        self.others.borrow_mut().push((key, set.clone()));
        set
    }

    /// A connection for one client alone, from the idle pool or new.
    pub fn lease(self: &Rc<Self>, key: ConnKey) -> Lease {
        let reused = {
            let mut idle = self.idle_leases.borrow_mut();
            // Drop idle connections that went down meanwhile.
            idle.retain(|(_, conn)| conn.is_usable());
            idle.iter()
                .position(|(k, _)| *k == key)
                .map(|i| idle.swap_remove(i).1)
        };
        let conn = reused
            .unwrap_or_else(|| Conn::spawn_leased(self.settings_for(key), self.stats.clone()));
        Lease {
            conn,
            node: self.clone(),
            key,
            released: false,
            changed_key: false,
        }
    }

    fn give_back(&self, key: ConnKey, conn: Conn) {
        let mut idle = self.idle_leases.borrow_mut();
        if conn.is_usable() && conn.in_flight() == 0 && idle.len() < MAX_IDLE_LEASES {
            idle.push((key, conn));
        } else {
            conn.close();
        }
    }
}

/// A connection leased to one client. Dropped without
/// [`release`](Lease::release), it is closed, never reused: its state is
/// unknown (a transaction half done, a blocking call still waiting).
pub struct Lease {
    conn: Conn,
    node: Rc<Node>,
    key: ConnKey,
    released: bool,
    /// Its database or protocol was changed for its client (SELECT or
    /// HELLO while pinned): it no longer matches `key`, so it is closed
    /// rather than given back.
    changed_key: bool,
}

impl Lease {
    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    pub fn node(&self) -> &Rc<Node> {
        &self.node
    }

    /// Records that the connection's database or protocol now differs
    /// from the key it was leased with.
    pub fn mark_key_changed(&mut self) {
        self.changed_key = true;
    }

    /// Returns the connection to the idle pool: the caller vouches that
    /// its session state is clean (after EXEC, DISCARD, UNWATCH, or a
    /// blocking call that answered).
    pub fn release(mut self) {
        if self.changed_key {
            return; // dropped unreleased: closed
        }
        self.released = true;
        self.node.give_back(self.key, self.conn.clone());
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released {
            self.conn.close();
        }
    }
}
