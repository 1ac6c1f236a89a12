//! The registry of a pool's clients, for CLIENT LIST, CLIENT KILL and the
//! client counts in INFO and metrics.
//!
//! A session registers on connect and leaves on disconnect (one mutex
//! lock each); while it runs it updates its own entry with relaxed atomic
//! stores (one writer), so listing clients never touches the hot path.

use std::collections::BTreeMap;
use std::sync::atomic::{
    AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering, Ordering::Relaxed,
};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;

use crate::command::CommandId;

/// What CLIENT LIST shows about one client. Kept small: one per
/// connection, idle ones included (boxed strings, not `String`s, the
/// listener's address and the user's name shared, 32-bit buffer sizes,
/// an 8-byte clock: 216 bytes with its `Arc`, the allocator's 224-byte
/// class, down from 288).
pub struct ClientEntry {
    pub id: u64,
    pub addr: Box<str>,
    /// Shared by the clients of one listener.
    pub laddr: Arc<str>,
    /// Milliseconds after the process's first client (see [`clock_ms`]):
    /// 8 bytes, not an `Instant`'s 16.
    created_ms: u64,
    /// Seconds after the same start of the last command.
    last_active_s: AtomicU32,
    pub db: AtomicU32,
    pub resp: AtomicU32,
    /// The last command's id + 1 (0: none yet).
    last_command: AtomicU16,
    pub subscriptions: AtomicU32,
    pub patterns: AtomicU32,
    pub shard_subscriptions: AtomicU32,
    /// Commands queued in MULTI, or -1 outside a transaction (as Redis).
    pub multi: std::sync::atomic::AtomicI32,
    /// The client socket's file descriptor (-1: none).
    pub fd: i32,
    /// The session's buffers, for CLIENT LIST (updated once per batch).
    pub buffers: Buffers,
    /// Waiting in a blocking call (BLPOP, XREAD BLOCK, WAIT...).
    blocked: AtomicBool,
    /// The topology version the session's current batch is routed with,
    /// plus one (0: between batches). A migration waits until no batch
    /// runs with an older one.
    batch_version: AtomicU64,
    /// CLIENT UNBLOCK asked for: [`UNBLOCK_TIMEOUT`] or [`UNBLOCK_ERROR`].
    unblock: AtomicU8,
    pub name: Mutex<Option<Box<str>>>,
    pub user: Mutex<Arc<str>>,
    /// 0: nothing; [`HANDOFF`]: go to the new process when idle;
    /// [`SHUTDOWN`]: finish and leave; [`KILLED`]: leave now.
    signal: AtomicU8,
    /// Wakes the session for a signal (lock-free: the session registers
    /// on every wait).
    waker: AtomicWaker,
}

/// Milliseconds from a fixed start (the first call) to `at`.
fn clock_ms(at: Instant) -> u64 {
    u64::try_from(since_clock_start(at).as_millis()).unwrap_or(u64::MAX)
}

/// The time from a fixed start (the first call) to `at`.
fn since_clock_start(at: Instant) -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    at.saturating_duration_since(*START.get_or_init(Instant::now))
}

/// The name every client starts with, shared.
fn default_user() -> Arc<str> {
    static DEFAULT: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(|| Arc::from("default")).clone()
}

/// A binary upgrade: the session hands its connection to the new process
/// at its next idle moment (between requests).
pub const HANDOFF: u8 = 1;
/// The proxy is shutting down: the session serves what it has read, then ends.
pub const SHUTDOWN: u8 = 2;
/// CLIENT KILL: the session ends now.
pub const KILLED: u8 = 3;

/// CLIENT UNBLOCK id TIMEOUT: the call answers as if it timed out.
pub const UNBLOCK_TIMEOUT: u8 = 1;
/// CLIENT UNBLOCK id ERROR: the call answers `-UNBLOCKED`.
pub const UNBLOCK_ERROR: u8 = 2;

/// A session's buffer sizes, as CLIENT LIST reports them (`qbuf`, `rbs`,
/// `oll`, `omem`...). One writer (the session), relaxed stores.
#[derive(Debug, Default)]
pub struct Buffers {
    /// Bytes read and not yet parsed into requests.
    pub query: AtomicU32,
    /// The read buffer's capacity (at most a chunk past the largest
    /// request allowed: 32 bits).
    pub read_capacity: AtomicU32,
    /// The largest read buffer capacity so far.
    pub read_peak: AtomicU32,
    /// Replies waiting to be written.
    pub replies: AtomicU32,
    /// Requests queued inside MULTI before a shard was known, in bytes.
    pub multi: AtomicU64,
    /// Replies waiting to be written, in bytes (not bounded by a request
    /// size: 64 bits).
    pub reply_bytes: AtomicU64,
}

/// `n` in 32 bits, saturated.
fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Buffers {
    /// Records the session's buffers after a batch.
    pub fn record(&self, query: usize, read_capacity: usize, replies: usize, reply_bytes: usize) {
        self.query.store(u32_of(query), Relaxed);
        self.read_capacity.store(u32_of(read_capacity), Relaxed);
        self.read_peak.fetch_max(u32_of(read_capacity), Relaxed);
        self.replies.store(u32_of(replies), Relaxed);
        self.reply_bytes.store(reply_bytes as u64, Relaxed);
    }

    /// Replies waiting to be written, in bytes (between batches).
    pub fn holds_replies(&self, bytes: usize) {
        self.reply_bytes.store(bytes as u64, Relaxed);
    }

    /// The read buffer's capacity (released while idle).
    pub fn holds_read_buffer(&self, capacity: usize) {
        self.read_capacity.store(u32_of(capacity), Relaxed);
    }
}

/// What a session costs besides its buffers (its state, its task), for
/// CLIENT LIST's `tot-mem`.
const SESSION_BASE_BYTES: u64 = 2048;
impl ClientEntry {
    /// The client's transaction, for CLIENT LIST and `--maxmemory-clients`:
    /// commands queued (-1: not in MULTI) and the bytes the proxy holds for
    /// them (commands queued before the transaction's shard was known).
    pub fn set_multi(&self, queued: i32, held_bytes: usize) {
        self.multi.store(queued, Relaxed);
        self.buffers.multi.store(held_bytes as u64, Relaxed);
    }

    /// Notes activity at `now` (once per batch: no clock read here).
    pub fn touch(&self, now: Instant) {
        // Whole seconds are the duration's own field: no division (this
        // runs once per batch).
        let seconds = since_clock_start(now).as_secs();
        self.last_active_s
            .store(u32::try_from(seconds).unwrap_or(u32::MAX), Relaxed);
    }

    /// Notes the command being run (CLIENT LIST's `cmd=`).
    #[inline]
    pub fn set_command(&self, id: CommandId) {
        self.last_command.store(id.0.saturating_add(1), Relaxed);
    }

    pub fn name(&self) -> Option<String> {
        lock(&self.name).as_deref().map(str::to_string)
    }

    pub fn set_name(&self, name: Option<String>) {
        *lock(&self.name) = name.map(String::into_boxed_str);
    }

    pub fn set_user(&self, user: Arc<str>) {
        *lock(&self.user) = user;
    }

    /// The user the client is authenticated as ("" when it is not).
    pub fn user(&self) -> Arc<str> {
        lock(&self.user).clone()
    }

    /// Asks the session to close now (CLIENT KILL).
    pub fn kill(&self) {
        self.raise(KILLED);
    }

    /// The session is about to take a topology snapshot for a batch: from
    /// now until [`ClientEntry::routed_with`], a migration counts it as
    /// routed with an old one. A full barrier: either the migration's
    /// drain sees this, or the session sees the new snapshot.
    #[inline]
    pub fn start_batch(&self) {
        self.batch_version.swap(1, Ordering::SeqCst);
    }

    /// The batch is routed with topology `version`.
    #[inline]
    pub fn routed_with(&self, version: u64) {
        self.batch_version.store(version.saturating_add(1), Relaxed);
    }

    /// The session answered its batch.
    #[inline]
    pub fn end_batch(&self) {
        self.batch_version.store(0, Relaxed);
    }

    /// Whether the session runs a batch routed with a topology older than
    /// `version`.
    pub fn routed_before(&self, version: u64) -> bool {
        match self.batch_version.load(Ordering::SeqCst) {
            0 => false,
            routed => routed - 1 < version,
        }
    }

    /// Marks the client as waiting in a blocking call, or done waiting.
    pub fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, Relaxed);
        if !blocked {
            self.unblock.store(0, Relaxed);
        }
    }

    pub fn is_blocked(&self) -> bool {
        self.blocked.load(Relaxed)
    }

    /// CLIENT UNBLOCK: asks the session to end its blocking call the way
    /// `how` says. False when the client is not blocked.
    pub fn unblock(&self, how: u8) -> bool {
        if !self.is_blocked() {
            return false;
        }
        self.unblock.store(how, Relaxed);
        self.waker.wake();
        true
    }

    /// The pending CLIENT UNBLOCK request, taken (0: none).
    pub fn take_unblock(&self) -> u8 {
        self.unblock.swap(0, Relaxed)
    }

    /// Resolves once CLIENT UNBLOCK asks for this client.
    pub fn unblock_requested(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            self.waker.register(cx.waker());
            if self.unblock.load(Relaxed) != 0 {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    }

    /// Asks the session to finish what it has read and close (shutdown).
    pub fn request_shutdown(&self) {
        self.raise(SHUTDOWN);
    }

    /// Asks the session to hand its connection to the new process (upgrade).
    pub fn request_handoff(&self) {
        self.raise(HANDOFF);
    }

    fn raise(&self, signal: u8) {
        self.signal.fetch_max(signal, Ordering::AcqRel);
        self.waker.wake();
    }

    /// The strongest signal raised so far (0: none).
    pub fn signal(&self) -> u8 {
        self.signal.load(Ordering::Acquire)
    }

    /// Resolves with the signal once one of at least `level` is raised.
    pub fn raised(&self, level: u8) -> impl std::future::Future<Output = u8> + '_ {
        std::future::poll_fn(move |cx| self.poll_raised(level, cx))
    }

    /// [`ClientEntry::raised`] as a poll.
    pub fn poll_raised(&self, level: u8, cx: &mut std::task::Context<'_>) -> std::task::Poll<u8> {
        self.waker.register(cx.waker());
        match self.signal() {
            signal if signal >= level => std::task::Poll::Ready(signal),
            _ => std::task::Poll::Pending,
        }
    }

    /// What the session holds for this client now: its read buffer,
    /// requests queued in MULTI, replies not yet written (what
    /// `--maxmemory-clients` counts).
    pub fn memory(&self) -> u64 {
        let b = &self.buffers;
        u64::from(b.read_capacity.load(Relaxed))
            + b.multi.load(Relaxed)
            + b.reply_bytes.load(Relaxed)
    }

    /// One CLIENT LIST line (Redis's field names, without the trailing newline).
    pub fn line(&self) -> String {
        let now_ms = clock_ms(Instant::now());
        let age = now_ms.saturating_sub(self.created_ms) / 1000;
        let idle = (now_ms / 1000)
            .saturating_sub(u64::from(self.last_active_s.load(Relaxed)))
            .min(age);
        let sub = self.subscriptions.load(Relaxed);
        let psub = self.patterns.load(Relaxed);
        let ssub = self.shard_subscriptions.load(Relaxed);
        let multi = self.multi.load(Relaxed);
        let flags = if multi >= 0 {
            "x"
        } else if self.is_blocked() {
            "b"
        } else if sub + psub + ssub > 0 {
            "P"
        } else {
            "N"
        };
        let cmd = match self.last_command.load(Relaxed) {
            0 => "NULL",
            n => CommandId(n - 1).spec().map_or("NULL", |s| s.name()),
        };
        let b = &self.buffers;
        let qbuf = b.query.load(Relaxed);
        let rbs = b.read_capacity.load(Relaxed);
        // The request is parsed in place in the read buffer (`qbuf`).
        let argv = 0;
        let multi_mem = b.multi.load(Relaxed);
        let oll = b.replies.load(Relaxed);
        let omem = b.reply_bytes.load(Relaxed);
        let tot = SESSION_BASE_BYTES + self.memory();
        let events = if omem > 0 { "rw" } else { "r" };
        // Redis 7.0's fields in Redis's order; `obl` (a fixed reply buffer
        // in Redis) is 0: the proxy queues replies (`oll`, `omem`).
        format!(
            "id={} addr={} laddr={} fd={} name={} age={age} idle={idle} flags={flags} db={} sub={sub} psub={psub} ssub={ssub} multi={multi} qbuf={qbuf} qbuf-free={} argv-mem={argv} multi-mem={multi_mem} rbs={rbs} rbp={} obl=0 oll={oll} omem={omem} tot-mem={tot} events={events} cmd={cmd} user={} redir=-1 resp={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            self.name().unwrap_or_default(),
            self.db.load(Relaxed),
            rbs.saturating_sub(qbuf),
            b.read_peak.load(Relaxed),
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
    /// Registers a new client (`fd`: its socket's descriptor).
    pub fn register(&self, addr: String, laddr: Arc<str>, fd: i32, db: u32) -> Arc<ClientEntry> {
        let id = NEXT_ID.fetch_add(1, Relaxed);
        let entry = Arc::new(ClientEntry {
            id,
            addr: addr.into_boxed_str(),
            laddr,
            created_ms: clock_ms(Instant::now()),
            last_active_s: AtomicU32::new(0),
            db: AtomicU32::new(db),
            resp: AtomicU32::new(2),
            last_command: AtomicU16::new(0),
            subscriptions: AtomicU32::new(0),
            patterns: AtomicU32::new(0),
            shard_subscriptions: AtomicU32::new(0),
            multi: std::sync::atomic::AtomicI32::new(-1),
            fd,
            buffers: Buffers::default(),
            blocked: AtomicBool::new(false),
            batch_version: AtomicU64::new(0),
            unblock: AtomicU8::new(0),
            name: Mutex::new(None),
            user: Mutex::new(default_user()),
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

    /// Clients waiting in a blocking call.
    pub fn blocked(&self) -> usize {
        lock(&self.entries)
            .values()
            .filter(|c| c.is_blocked())
            .count()
    }

    /// The client with this id.
    pub fn get(&self, id: u64) -> Option<Arc<ClientEntry>> {
        lock(&self.entries).get(&id).cloned()
    }
}

/// CLIENT PAUSE for a pool: while it lasts, sessions hold the commands
/// it covers (every command, or those that write) before running them,
/// as Redis holds its clients. Checked once per request: one relaxed load
/// while nothing is paused.
#[derive(Default)]
pub struct ClientPause {
    /// 0: not paused; [`PAUSE_WRITE`] or [`PAUSE_ALL`].
    mode: AtomicU8,
    until: Mutex<Option<Instant>>,
    changed: tokio::sync::Notify,
}

/// CLIENT PAUSE ... WRITE: commands that write wait.
pub const PAUSE_WRITE: u8 = 1;
/// CLIENT PAUSE ... ALL (the default): every command waits.
pub const PAUSE_ALL: u8 = 2;

impl ClientPause {
    /// Pauses until `until` (a pause already in place lasts the longer of
    /// the two, in the stricter mode, as in Redis).
    pub fn pause(&self, until: Instant, mode: u8) {
        let mut current = lock(&self.until);
        let end = current.map_or(until, |c| c.max(until));
        *current = Some(end);
        self.mode.fetch_max(mode, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    pub fn unpause(&self) {
        *lock(&self.until) = None;
        self.mode.store(0, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Whether a command (`writes`: it may change data) must wait now.
    #[inline]
    pub fn holds(&self, writes: bool) -> bool {
        match self.mode.load(Ordering::Acquire) {
            0 => false,
            mode if mode == PAUSE_ALL || writes => self.in_effect(),
            _ => false,
        }
    }

    #[cold]
    fn in_effect(&self) -> bool {
        let mut until = lock(&self.until);
        match *until {
            Some(end) if Instant::now() < end => true,
            _ => {
                *until = None;
                self.mode.store(0, Ordering::Release);
                false
            }
        }
    }

    /// Resolves when the pause ends (its deadline, or CLIENT UNPAUSE).
    pub async fn ended(&self) {
        loop {
            let changed = self.changed.notified();
            let end = *lock(&self.until);
            match end {
                None => return,
                Some(end) if Instant::now() >= end => return,
                Some(end) => {
                    let _ = tokio::time::timeout_at(end.into(), changed).await;
                }
            }
        }
    }
}
