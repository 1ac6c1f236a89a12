//! One worker's connections to one node: shared pipelined connection sets
//! per connection key, and a pool of idle leased connections.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use super::conn::{Conn, ConnSettings};
use super::episode::EpisodeLog;
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
/// Extra shared connections a worker opens per node and key while its
/// connections are stuck behind long commands (see [`Node::with_shared`]).
const MAX_SPARES: usize = 2;

/// One worker's connections to one node.
pub struct Node {
    pub addr: SocketAddr,
    /// `host:port`.
    pub label: Arc<str>,
    pub stats: Arc<NodeStats>,
    /// Trouble with the node, logged once per episode.
    episode: Rc<EpisodeLog>,
    /// Settings for a connection with the pool's default key.
    base: ConnSettings,
    default_key: ConnKey,
    per_key: usize,
    /// The default key's shared connections, created with the node.
    default: Vec<Conn>,
    /// Shared connections for other keys, created on first use.
    others: RefCell<Vec<(ConnKey, Rc<[Conn]>)>>,
    idle_leases: RefCell<Vec<(ConnKey, Conn)>>,
    /// Shared connections opened while the others were stuck, by key.
    spares: RefCell<Vec<(ConnKey, Conn)>>,
    /// Connections for commands that must not queue behind traffic
    /// (SCRIPT KILL, FUNCTION KILL, CLIENT UNBLOCK): RESP2 and RESP3.
    side: RefCell<Side>,
}

impl Node {
    /// Whether this node connects with `settings` and `per_key` shared
    /// connections (a reload that changed neither keeps the node).
    pub fn has_settings(&self, settings: &ConnSettings, per_key: usize) -> bool {
        self.base == *settings && self.per_key == per_key.max(1)
    }

    /// Opens `per_key` shared connections with the default key at once
    /// (so the first requests need not wait for a connect).
    pub fn new(
        base: ConnSettings,
        label: Arc<str>,
        per_key: usize,
        stats: Arc<NodeStats>,
        episode: Rc<EpisodeLog>,
    ) -> Node {
        let default_key = ConnKey {
            db: base.handshake.db,
            resp3: base.handshake.resp3,
        };
        let per_key = per_key.max(1);
        let default = (0..per_key)
            .map(|_| Conn::spawn(base.clone(), stats.clone(), episode.clone()))
            .collect();
        Node {
            addr: base.addr,
            label,
            stats,
            episode,
            base,
            default_key,
            per_key,
            default,
            others: RefCell::new(Vec::new()),
            idle_leases: RefCell::new(Vec::new()),
            spares: RefCell::new(Vec::new()),
            side: RefCell::default(),
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

    /// Runs `f` with the shared connection client `client_id` uses for
    /// `key`: its own one of the set (chosen by id), unless that one is
    /// down or stuck behind a long command, in which case another ready
    /// one, or a spare opened for the purpose (at most [`MAX_SPARES`]).
    ///
    /// Ordering holds: a session sends a batch only once the replies to
    /// the one before are in, so nothing of the client's is in flight
    /// when the choice changes, and within a batch the choice is stable
    /// (connections change state only between batches, on their tasks).
    #[inline]
    pub fn with_shared<R>(&self, key: ConnKey, client_id: u64, f: impl FnOnce(&Conn) -> R) -> R {
        let index = (client_id % self.per_key as u64) as usize;
        if key == self.default_key {
            if let Some(conn) = self.default.get(index) {
                if conn.is_ready() {
                    return f(conn);
                }
                return self.with_unstuck(key, &self.default, index, f);
            }
        }
        let set = self.shared_set(key);
        match set.get(index) {
            Some(conn) if conn.is_ready() => f(conn),
            _ => self.with_unstuck(key, &set, index, f),
        }
    }

    /// `with_shared` when the client's own connection is down or stuck.
    #[cold]
    fn with_unstuck<R>(
        &self,
        key: ConnKey,
        set: &[Conn],
        index: usize,
        f: impl FnOnce(&Conn) -> R,
    ) -> R {
        if let Some(conn) = set.iter().find(|c| c.is_ready()) {
            return f(conn);
        }
        let spare = {
            let spares = self.spares.borrow();
            spares
                .iter()
                .find(|(k, c)| *k == key && c.is_ready())
                .map(|(_, c)| c.clone())
        };
        if let Some(spare) = spare {
            return f(&spare);
        }
        let home = set.get(index).or_else(|| set.first());
        let stuck = home.is_some_and(Conn::is_stuck);
        let spares = self
            .spares
            .borrow()
            .iter()
            .filter(|(k, _)| *k == key)
            .count();
        if stuck && spares < MAX_SPARES {
            let spare = Conn::spawn(
                self.settings_for(key),
                self.stats.clone(),
                self.episode.clone(),
            );
            self.spares.borrow_mut().push((key, spare.clone()));
            self.stats.spares.inc();
            return f(&spare);
        }
        match home {
            Some(conn) => f(conn),
            // The set is never empty (per_key >= 1); an own connection
            // then, rather than a panic.
            None => f(&self.side(key.resp3)),
        }
    }

    fn shared_set(&self, key: ConnKey) -> Rc<[Conn]> {
        if let Some((_, set)) = self.others.borrow().iter().find(|(k, _)| *k == key) {
            return set.clone();
        }
        let settings = self.settings_for(key);
        let set: Rc<[Conn]> = (0..self.per_key)
            .map(|_| Conn::spawn(settings.clone(), self.stats.clone(), self.episode.clone()))
            .collect();
        self.others.borrow_mut().push((key, set.clone()));
        set
    }

    /// A connection that carries only the proxy's own urgent commands
    /// (SCRIPT KILL, FUNCTION KILL, CLIENT UNBLOCK), so they never wait
    /// behind the long command they are meant to stop. Its handshake is
    /// only AUTH (and HELLO 3): commands a busy server still serves.
    pub fn side(&self, resp3: bool) -> Conn {
        let mut side = self.side.borrow_mut();
        let slot = if resp3 {
            &mut side.resp3
        } else {
            &mut side.resp2
        };
        if let Some(conn) = slot {
            return conn.clone();
        }
        let mut settings = self.base.clone();
        settings.handshake.db = 0;
        settings.handshake.resp3 = resp3;
        settings.handshake.client_name = None;
        settings.handshake.ask_id = false;
        let conn = Conn::spawn(settings, self.stats.clone(), self.episode.clone());
        *slot = Some(conn.clone());
        conn
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
        let conn = reused.unwrap_or_else(|| {
            let mut settings = self.settings_for(key);
            // Its id on the server, to unblock it (CLIENT UNBLOCK).
            settings.handshake.ask_id = true;
            Conn::spawn_leased(settings, self.stats.clone(), self.episode.clone())
        });
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
        if conn.is_usable()
            && !conn.is_retired()
            && conn.in_flight() == 0
            && idle.len() < MAX_IDLE_LEASES
        {
            idle.push((key, conn));
        } else {
            conn.close();
        }
    }
}

/// A node's side connections, by protocol.
#[derive(Default)]
struct Side {
    resp2: Option<Conn>,
    resp3: Option<Conn>,
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
    /// blocking call that answered). One that cannot be reused (down,
    /// busy, [retired](Conn::retire), or the pool full) is closed.
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
