//! The registry of a pool's clients, for CLIENT LIST, CLIENT KILL and the
//! client counts in INFO and metrics.
//!
//! A session registers on connect and leaves on disconnect (one mutex
//! lock each); while it runs it updates its own entry with relaxed atomic
//! stores (one writer), so listing clients never touches the hot path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures_util::task::AtomicWaker;

use crate::command::CommandId;

/// What CLIENT LIST shows about one client.
pub struct ClientEntry {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    created: Instant,
    /// Milliseconds after `created` of the last command.
    last_active_ms: AtomicU64,
    pub db: AtomicU32,
    pub resp: AtomicU32,
    /// The last command's id + 1 (0: none yet).
    last_command: AtomicU16,
    pub subscriptions: AtomicU32,
    pub patterns: AtomicU32,
    pub shard_subscriptions: AtomicU32,
    /// Commands queued in MULTI, or -1 outside a transaction (as Redis).
    pub multi: std::sync::atomic::AtomicI32,
    pub name: Mutex<Option<String>>,
    pub user: Mutex<String>,
    /// 0: nothing; [`SHUTDOWN`]: finish and leave; [`KILLED`]: leave now.
    signal: AtomicU8,
    /// Wakes the session for a signal (lock-free: the session registers
    /// on every wait).
    waker: AtomicWaker,
}

/// The proxy is shutting down: the session serves what it has read, then ends.
pub const SHUTDOWN: u8 = 1;
/// CLIENT KILL: the session ends now.
pub const KILLED: u8 = 2;

impl ClientEntry {
    /// Notes activity at `now` (once per batch: no clock read here).
    pub fn touch(&self, now: Instant) {
        let ms = u64::try_from(now.saturating_duration_since(self.created).as_millis())
            .unwrap_or(u64::MAX);
        self.last_active_ms.store(ms, Relaxed);
    }

    /// Notes the command being run (CLIENT LIST's `cmd=`).
    #[inline]
    pub fn set_command(&self, id: CommandId) {
        self.last_command.store(id.0.saturating_add(1), Relaxed);
    }

    pub fn name(&self) -> Option<String> {
        lock(&self.name).clone()
    }

    pub fn set_name(&self, name: Option<String>) {
        *lock(&self.name) = name;
    }

    pub fn set_user(&self, user: &str) {
        *lock(&self.user) = user.to_string();
    }

    /// Asks the session to close now (CLIENT KILL).
    pub fn kill(&self) {
        self.raise(KILLED);
    }

    /// Asks the session to finish what it has read and close (shutdown).
    pub fn request_shutdown(&self) {
        self.raise(SHUTDOWN);
    }

    fn raise(&self, signal: u8) {
        self.signal.fetch_max(signal, Ordering::AcqRel);
        self.waker.wake();
    }

    /// The strongest signal raised so far (0: none).
    pub fn signal(&self) -> u8 {
        self.signal.load(Ordering::Acquire)
    }

    /// Resolves with the signal once one is raised.
    pub fn signalled(&self) -> impl std::future::Future<Output = u8> + '_ {
        std::future::poll_fn(move |cx| {
            self.waker.register(cx.waker());
            match self.signal() {
                0 => std::task::Poll::Pending,
                signal => std::task::Poll::Ready(signal),
            }
        })
    }

    /// One CLIENT LIST line (Redis's field names, without the trailing newline).
    pub fn line(&self) -> String {
        let age = self.created.elapsed().as_secs();
        let idle = self
            .created
            .elapsed()
            .as_millis()
            .saturating_sub(u128::from(self.last_active_ms.load(Relaxed)))
            / 1000;
        let sub = self.subscriptions.load(Relaxed);
        let psub = self.patterns.load(Relaxed);
        let ssub = self.shard_subscriptions.load(Relaxed);
        let multi = self.multi.load(Relaxed);
        let flags = if multi >= 0 {
            "x"
        } else if sub + psub + ssub > 0 {
            "P"
        } else {
            "N"
        };
        let cmd = match self.last_command.load(Relaxed) {
            0 => "NULL",
            n => CommandId(n - 1).spec().map_or("NULL", |s| s.name()),
        };
        format!(
            "id={} addr={} laddr={} fd=-1 name={} age={age} idle={idle} flags={flags} db={} sub={sub} psub={psub} ssub={ssub} multi={multi} cmd={cmd} user={} resp={}",
            self.id,
            self.addr,
            self.laddr,
            self.name().unwrap_or_default(),
            self.db.load(Relaxed),
            lock(&self.user),
            self.resp.load(Relaxed),
        )
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every live client of a pool, by id.
#[derive(Default)]
pub struct Clients {
    entries: Mutex<BTreeMap<u64, Arc<ClientEntry>>>,
}

/// Client ids are unique across the process, as Redis's are per server.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Clients {
    /// Registers a new client.
    pub fn register(&self, addr: String, laddr: String, db: u32) -> Arc<ClientEntry> {
        let id = NEXT_ID.fetch_add(1, Relaxed);
        let entry = Arc::new(ClientEntry {
            id,
            addr,
            laddr,
            created: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            db: AtomicU32::new(db),
            resp: AtomicU32::new(2),
            last_command: AtomicU16::new(0),
            subscriptions: AtomicU32::new(0),
            patterns: AtomicU32::new(0),
            shard_subscriptions: AtomicU32::new(0),
            multi: std::sync::atomic::AtomicI32::new(-1),
            name: Mutex::new(None),
            user: Mutex::new("default".into()),
            signal: AtomicU8::new(0),
            waker: AtomicWaker::new(),
        });
        lock(&self.entries).insert(id, entry.clone());
        entry
    }

    pub fn unregister(&self, id: u64) {
        lock(&self.entries).remove(&id);
    }

    /// A copy of the current entries, by id.
    pub fn list(&self) -> Vec<Arc<ClientEntry>> {
        lock(&self.entries).values().cloned().collect()
    }

    pub fn count(&self) -> usize {
        lock(&self.entries).len()
    }
}
