//! One client connection: read every ready request, dispatch each, write
//! the replies back in order, one `writev` per batch.
//!
//! The loop is strictly read batch -> dispatch -> collect -> write. While a
//! batch's replies are written the session reads nothing more, so a client
//! that does not read its replies stops being read (TCP pushes back on it)
//! instead of growing the proxy's memory; replies it leaves unread beyond
//! `client_output_limit` get it disconnected.
//!
//! Dispatching is synchronous: sending to a backend connection queues the
//! frame and returns a reply slot, so a batch of a thousand pipelined
//! requests is routed without yielding once. A request that changes which
//! backend connection the client's traffic uses (a transaction's first
//! key, a blocking call, EXEC, SELECT) is a *barrier*: the replies before
//! it are collected first, so the client's commands still run in order.
//!
//! # Layout
//! - `client`: the client's own state (database, protocol, name, user).
//! - `pending`: a reply that is ready or will be, and how it resolves.
//! - `dispatch`: one request -> where it goes (shard, split, broadcast, scan).
//! - `transaction`: MULTI / EXEC / WATCH on a leased connection.
//! - `moving`: resharding: requests on moving keys run where the keys are.
//! - `redirect`: cluster pools: MOVED, ASK, TRYAGAIN, CLUSTERDOWN followed.
//! - `scripts`: EVAL bodies remembered, EVALSHA loaded ahead or retried
//!   after NOSCRIPT.
//! - `cmd`: commands the proxy answers itself, one module per family.
//! - `reply`: replies the proxy encodes itself.
//! - `pubsub`: Pub/Sub and MONITOR over push links.
//! - `handoff`: a binary upgrade: a session handed to the new process, or
//!   taken from the old one.
//! - `stream`: the client socket (TCP or unix).

mod client;
mod cmd;
mod dispatch;
mod handoff;
mod idle;
mod moving;
mod pending;
mod pubsub;
mod redirect;
mod reply;
mod scripts;
pub mod stream;
mod transaction;

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use resp::{Limits, ProtocolError, Request, RequestParser};
use tokio::io::AsyncReadExt;

use crate::backend::SessionWaker;
use crate::config::PoolConfig;
use crate::frontend::Endpoint;
use crate::io::{write_all_queued, write_queued_now};
use crate::pool::clients::{ClientEntry, HANDOFF, KILLED, SHUTDOWN};
use crate::view::{PoolView, PoolWorker};
use client::Client;
pub use handoff::Restore;
use idle::Idle;
use pending::Pending;
use pubsub::{LinkActivity, PubSub};
pub use stream::ClientStream;
use transaction::Transaction;

/// Requests dispatched before their replies are collected; the rest wait
/// in the read buffer (this bounds the replies one batch holds).
const MAX_BATCH: usize = 1024;
/// Reply bytes gathered before trying to write them out mid-batch.
const FLUSH_AT: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;
/// An empty read buffer's first allocation: most requests are small, and
/// a connection holding a partial request costs what it holds, not a
/// whole chunk. The buffer doubles from there up to chunks of
/// [`READ_CHUNK`].
const FIRST_READ: usize = 1024;
/// The largest empty read buffer a busy client keeps between requests (a
/// pipeline's bigger buffer is released, as an idle client's is).
const KEEP_WHILE_BUSY: usize = 4 * FIRST_READ;

/// Room for the next read: a small first allocation, then doubling, then
/// a chunk at a time.
///
/// An empty buffer first takes back the room its requests used, which
/// costs nothing once they are all dropped (and is skipped while any is
/// still held). Without it a busy client's next pipeline was read in two
/// calls, split where the last one ended in the allocation: half of the
/// batches at `-P 16` (576 bytes read as 448 + 128).
fn make_room(read_buf: &mut BytesMut) {
    if read_buf.is_empty() && read_buf.capacity() < KEEP_WHILE_BUSY {
        // A reclaim that succeeds takes back the whole allocation, and
        // succeeds when the allocation holds the size asked for: asked
        // from the largest a kept buffer has down to the first allocation.
        for size in [KEEP_WHILE_BUSY, 2 * FIRST_READ, FIRST_READ] {
            if read_buf.try_reclaim(size) {
                break;
            }
        }
    }
    let capacity = read_buf.capacity();
    if capacity - read_buf.len() < FIRST_READ / 4 {
        read_buf.reserve(capacity.clamp(FIRST_READ, READ_CHUNK));
    }
}

/// Serves one client session to its end, holding `guard` until then.
///
/// What an idle client costs is what its task holds, and a future keeps
/// every local it ever held (moved or not) and, for an `async fn`, its
/// arguments twice (as passed and as bound): so the session is made here,
/// outside the future, and the future is an `async` block that captures
/// each value once.
pub fn run<S: ClientStream, G: 'static>(
    stream: S,
    pool: Rc<PoolWorker>,
    entry: Arc<ClientEntry>,
    endpoint: Endpoint,
    restore: Option<Box<Restore>>,
    guard: G,
) -> impl std::future::Future<Output = ()> {
    let mut session = Box::new(Session::new(stream, pool, entry, endpoint));
    async move {
        // What happens once per session (an upgrade's restore and handoff,
        // the graceful close) is boxed or kept off the stack: a future is
        // as large as its largest state.
        let mut ended = Ok(());
        if let Some(restore) = restore {
            ended = Box::pin(session.restore(*restore)).await;
        }
        // Served in a boxed future, dropped whenever the client is idle:
        // an idle client between requests keeps only its `Idle` record
        // (the `Session` is made again when it sends); one idle with state
        // (inside MULTI, a partial request) keeps its `Session`.
        while ended.is_ok() {
            ended = Box::pin(session.serve()).await;
            if ended.is_err() {
                break;
            }
            if session.is_plain() {
                (session, ended) = session.into_idle().wake().await;
            } else {
                // Boxed: rare (a partial request, an idle MULTI), and
                // inline it would be the task's largest state.
                ended = Box::pin(session.park()).await;
            }
        }
        Box::pin(session.end(ended)).await;
        drop(guard);
    }
}

impl<S: ClientStream> Session<S> {
    /// The session's last steps, by why it ended.
    async fn end(&mut self, mut ended: Result<(), End>) {
        if let Err(End::HandOff) = &ended {
            // Never shut the socket down: the new process holds it now.
            if let Err(end) = Box::pin(self.hand_off()).await {
                ended = Err(end);
            }
        }
        if let Err(End::Shutdown | End::Quit | End::Protocol(_)) = &ended {
            self.close_gracefully().await;
        }
        match ended {
            Err(End::Protocol(_)) => self.pool.stats.protocol_errors.inc(),
            Err(End::CrossProtocol) => {
                self.pool.stats.protocol_errors.inc();
                warn_cross_protocol(&self.pool.state.name, &self.client.entry.addr);
            }
            Err(reason @ End::SlowReader(_)) => {
                self.pool.stats.slow_clients.inc();
                tracing::warn!(pool = %self.pool.state.name, client = self.client.id(), "client {reason}")
            }
            Err(reason) => {
                tracing::debug!(client = self.client.id(), "client session ended: {reason}")
            }
            Ok(()) => {}
        }
    }
}

/// With `tls.user_from_cert`, the proxy user named by the client
/// certificate's common name (Redis 7.2's `tls-auth-clients-user CN`):
/// the client starts authenticated as that user. A name that is no user
/// (or a disabled one) gives nothing: the client authenticates as usual.
fn certificate_user<S: ClientStream>(
    stream: &S,
    config: &PoolConfig,
    users: &crate::auth::Users,
) -> Option<Arc<crate::auth::User>> {
    config.tls.as_ref()?.user_from_cert?;
    let name = stream.peer_common_name()?;
    match users.get(name.as_bytes()).filter(|u| users.is_enabled(u)) {
        Some(user) => Some(user.clone()),
        None => {
            tracing::debug!(pool = %config.name, "client certificate names '{name}', which is no user of the pool: the client must AUTH");
            None
        }
    }
}

/// What the signals raised mean for a session about to wait for its
/// client (`between_requests`: nothing read is unanswered): Err ends it;
/// Ok is the signal level the wait wakes for (a handoff that waits for
/// the request being read waits for a stronger signal only).
fn signal_before_waiting<S: ClientStream>(
    entry: &ClientEntry,
    between_requests: bool,
) -> Result<u8, End> {
    match entry.signal() {
        KILLED => Err(End::Killed),
        // Everything read is answered; nothing more is read.
        SHUTDOWN => Err(End::Shutdown),
        HANDOFF if S::CAN_HAND_OVER && between_requests => Err(End::HandOff),
        0 => Ok(HANDOFF),
        _ => Ok(SHUTDOWN),
    }
}

/// Reads what the client has sent into `read_buf` (see [`make_room`]),
/// without waiting: false when nothing was there after all (a TLS record
/// that carried no data, a spurious wake-up), so the caller waits again,
/// still watching its signals. The client closing ends the session.
///
/// A read that fills the buffer is followed by another (the buffer
/// growing) until the socket has nothing more or a chunk was read: a
/// pipeline is dispatched as one batch, as Redis reads it, though the
/// buffer starts small.
fn read_ready<S: ClientStream>(stream: &mut S, read_buf: &mut BytesMut) -> Result<bool, End> {
    let mut read = false;
    loop {
        make_room(read_buf);
        let room = read_buf.capacity() - read_buf.len();
        match crate::io::read_now(stream, read_buf) {
            // The end (or an error) after some bytes: those are served
            // first; the next read meets it again.
            Some(Ok(0)) if !read => return Err(End::ClientClosed),
            Some(Err(e)) if !read => return Err(End::Io(e)),
            Some(Ok(n)) if n == room && read_buf.len() < READ_CHUNK => {
                // More is waiting: room for a whole chunk at once, not
                // doubling from the small first read (one more read, at
                // most one copy of it).
                read_buf.reserve(READ_CHUNK);
                read = true;
            }
            Some(Ok(_)) => return Ok(true),
            Some(Err(_)) | None => return Ok(read),
        }
    }
}

/// What the request parser accepts under `config`.
fn limits_of(config: &PoolConfig) -> Limits {
    Limits {
        max_bulk_len: config.max_request_bytes,
        ..Limits::default()
    }
}

/// Resolves when the client's connection fails, or when it closes and
/// `cancel_on_close`, reading whatever it sends meanwhile into `read_buf`
/// for later (up to a bound; past it, the client is no longer watched
/// until its replies are out). A close is seen again by the next read.
async fn watch_client<S: ClientStream>(
    stream: &mut S,
    read_buf: &mut BytesMut,
    cancel_on_close: bool,
    entry: &ClientEntry,
) -> End {
    const WATCH_LIMIT: usize = 1 << 20;
    loop {
        if read_buf.len() >= WATCH_LIMIT {
            return std::future::pending().await;
        }
        if let Err(e) = stream.ready_to_read().await {
            return End::Io(e);
        }
        // Shutting down: what arrives now is not read (nor answered).
        if entry.signal() >= SHUTDOWN {
            return std::future::pending().await;
        }
        make_room(read_buf);
        match stream.read_buf(read_buf).await {
            Ok(0) if cancel_on_close => return End::ClientClosed,
            Ok(0) => return std::future::pending().await,
            Ok(_) => {}
            Err(e) => return End::Io(e),
        }
    }
}

/// A reply to write, in request order.
struct Queued {
    pending: Pending,
    /// CLIENT REPLY OFF / SKIP: resolved (so ordering holds) but not written.
    silent: bool,
    /// The command's metrics index (a command id, or `UNKNOWN_COMMAND`).
    command: u16,
    /// With the slow log on: the node the request went to, to name it.
    node: Option<Rc<crate::backend::Node>>,
}

/// A client whose last [`BUSY_BATCHES`] batches each came within this
/// of the one before is busy: it waits for its next request inside the
/// serving future. Any other is parked between requests (the serving
/// future dropped, re-made when it sends again: about 4 % more of the
/// proxy's instructions per request at `-P 1`, paid only by clients that
/// are not busy).
const BUSY_GAP: Duration = Duration::from_millis(10);
const BUSY_BATCHES: u8 = 16;

/// What waiting for the client found.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    Bytes,
    /// Nothing to read and nothing else to wait for.
    Idle,
}

pub(crate) struct Session<S> {
    stream: S,
    pool: Rc<PoolWorker>,
    /// The topology view this batch is routed with.
    view: Rc<PoolView>,
    client: Client,
    parser: RequestParser,
    read_buf: BytesMut,
    queue: VecDeque<Queued>,
    out: VecDeque<Bytes>,
    out_len: usize,
    /// A request parsed but not dispatched: it waits behind a barrier.
    held: Option<Request>,
    /// The held request is being dispatched again (already counted).
    redispatching_held: bool,
    tx: Transaction,
    /// Subscriptions and MONITOR, with the links that carry them.
    pubsub: Option<Box<PubSub>>,
    /// Woken by this client's push links.
    waker: Rc<SessionWaker>,
    /// Scratch space for key positions.
    keys: Vec<usize>,
    /// The metrics index of the command being dispatched.
    command: u16,
    /// Resolves command names, remembering the one a pipeline repeats.
    resolver: crate::command::Resolver,
    /// Per shard, the node this batch's reads go to (chosen on first use).
    batch_readers: std::cell::RefCell<Vec<(usize, dispatch::BatchReader)>>,
    /// The slow log is on (it needs the metrics' timings).
    slowlog: bool,
    /// With the slow log on: the node the request being dispatched went to.
    slow_node: Option<Rc<crate::backend::Node>>,
    /// When the current batch was read (request latency starts there).
    batch_started: Instant,
    /// Whether per-command metrics are kept (`--no-metrics` turns them off).
    metrics: bool,
    /// Batches in a row that came within [`BUSY_GAP`] of the one before
    /// (counted with the metrics' clock; 0 without it).
    busy: u8,
    /// A request held while a migration's first phase ends (resharding).
    at_source: moving::AtSource,
}

/// What the session does after dispatching one request.
#[derive(Debug)]
pub(crate) enum Flow {
    /// Dispatch the next request.
    Next,
    /// Collect every reply queued so far before dispatching more.
    Barrier,
    /// CLIENT PAUSE holds the held request: collect the replies queued so
    /// far, wait for the pause to end, then dispatch it.
    Pause,
    /// Write the replies queued so far, then end the session.
    Close(End),
    /// The held request's keys start moving and may not be touched yet
    /// (a migration's first phase): wait for the next topology, briefly.
    AwaitPlacement,
}

/// Why a session ends.
#[derive(Debug)]
pub(crate) enum End {
    Io(io::Error),
    ClientClosed,
    Quit,
    Protocol(ProtocolError),
    /// `POST` or `Host:`: an HTTP request sent to Redis's port, which Redis
    /// answers by closing the connection (its guard against cross-protocol
    /// scripting).
    CrossProtocol,
    SlowReader(usize),
    Shutdown,
    Killed,
    /// A reload removed the user the client is authenticated as.
    UserRemoved,
    /// A binary upgrade: the connection goes to the new process.
    HandOff,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Io(e) => write!(f, "i/o error: {e}"),
            End::ClientClosed => f.write_str("client closed the connection"),
            End::Quit => f.write_str("QUIT"),
            End::Protocol(e) => write!(f, "protocol error: {e}"),
            End::CrossProtocol => f.write_str("it sent an HTTP request (POST or Host:)"),
            End::SlowReader(n) => write!(f, "disconnected: client left {n} reply bytes unread"),
            End::Shutdown => f.write_str("proxy shutting down"),
            End::Killed => f.write_str("killed by CLIENT KILL"),
            End::UserRemoved => f.write_str("its user was removed by a reload"),
            End::HandOff => f.write_str("handed over to the new process"),
        }
    }
}

impl<S: ClientStream> Session<S> {
    fn new(stream: S, pool: Rc<PoolWorker>, entry: Arc<ClientEntry>, endpoint: Endpoint) -> Self {
        let view = pool.view();
        let config = view.topology.config.clone();
        let mut client = Client::new(entry, &config, None);
        client.set_user(pool.state.users().initial());
        if let Some(user) = certificate_user(&stream, &config, &pool.state.users()) {
            client.set_user(Some(user));
        }
        client.readonly = endpoint.readonly();
        let metrics = pool.metrics;
        let slowlog = metrics && pool.state.slowlog.threshold().is_some();
        Session::resume(
            Idle {
                stream,
                pool,
                view,
                client,
                batch_started: Instant::now(),
                slowlog,
                metrics,
                busy: 0,
            },
            BytesMut::new(),
        )
    }

    /// The configuration this batch runs with (its snapshot's).
    fn config(&self) -> &PoolConfig {
        &self.view.topology.config
    }

    /// Serves requests until the session ends (Err) or the client is idle
    /// with nothing else to wait for (Ok: the caller parks it).
    async fn serve(&mut self) -> Result<(), End> {
        loop {
            let flow = self.dispatch_batch();
            // What the parser has seen: bytes read while replies were
            // awaited (see `watch_client`) are dispatched before reading more.
            let parsed = self.read_buf.len();
            if !self.queue.is_empty() {
                self.collect_replies().await?;
            }
            match flow {
                Flow::Close(end) => return Err(end),
                Flow::Pause => self.wait_unpaused().await?,
                Flow::AwaitPlacement => self.await_placement().await?,
                Flow::Barrier => {}
                Flow::Next if self.read_buf.len() > parsed => {}
                Flow::Next => {
                    if self.read_more().await? == Read::Idle {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Waits, outside the serving future, until the client sends more
    /// (Ok: bytes were read) or a signal ends the session.
    async fn park(&mut self) -> Result<(), End> {
        // What the serving future used is released too (it is empty); a
        // parked client is not busy, so re-making it is rare enough.
        if self.queue.is_empty() {
            self.queue = VecDeque::new();
        }
        if self.out.is_empty() {
            self.out = VecDeque::new();
        }
        self.keys = Vec::new();
        *self.batch_readers.get_mut() = Vec::new();
        let entry = self.client.entry.clone();
        loop {
            let level = self.signal_before_waiting(&entry)?;
            tokio::select! {
                biased;
                _ = entry.raised(level) => {}
                readable = self.stream.ready_to_read() => {
                    readable.map_err(End::Io)?;
                    if self.read_ready()? {
                        return Ok(());
                    }
                    self.release_empty_read_buffer();
                }
            }
        }
    }

    /// What the signals raised mean for this session about to wait for
    /// its client (see the free [`signal_before_waiting`]).
    fn signal_before_waiting(&self, entry: &ClientEntry) -> Result<u8, End> {
        signal_before_waiting::<S>(entry, self.between_requests())
    }

    /// An idle client holds no read buffer (reading allocates one).
    fn release_empty_read_buffer(&mut self) {
        if self.read_buf.is_empty() && self.read_buf.capacity() > 0 {
            self.read_buf = BytesMut::new();
            self.client.entry.buffers.holds_read_buffer(0);
        }
    }

    /// Waits for more bytes from the client (or, with nothing but the
    /// client to wait for, says it is idle: the session is parked). While
    /// idle the read buffer is released, so an idle client costs no
    /// buffer memory; a busy client keeps a small one for its next
    /// request (re-making it costs two allocations and two frees per
    /// request at `-P 1`: the buffer and its shared header).
    async fn read_more(&mut self) -> Result<Read, End> {
        if self.busy < BUSY_BATCHES || self.read_buf.capacity() > KEEP_WHILE_BUSY {
            self.release_empty_read_buffer();
        }
        self.client.entry.end_batch();
        let entry = self.client.entry.clone();
        loop {
            let level = self.signal_before_waiting(&entry)?;
            // Messages that arrived meanwhile go out before waiting.
            if self.pubsub.is_some() {
                self.drain_links()?;
                self.flush_out().await?;
            } else if self.busy < BUSY_BATCHES {
                // Nothing but the client to wait for: parked (`park` reads
                // what is already there).
                return Ok(Read::Idle);
            }
            enum Woken {
                Readable(io::Result<()>),
                Signal,
                Link,
            }
            let waker = self.waker.clone();
            let has_links = self.pubsub.is_some();
            // A signal first: a killed client's next request, arriving as
            // the kill does, is not served.
            let rehome = pubsub::rehome_time(&self.pool, self.rehome_due());
            let woken = tokio::select! {
                biased;
                _ = entry.raised(level) => Woken::Signal,
                readable = self.stream.ready_to_read() => Woken::Readable(readable),
                () = LinkActivity::new(&waker), if has_links => Woken::Link,
                () = rehome, if has_links => Woken::Link,
            };
            match woken {
                Woken::Readable(readable) => {
                    readable.map_err(End::Io)?;
                    if self.read_ready()? {
                        return Ok(Read::Bytes);
                    }
                }
                Woken::Signal | Woken::Link => {}
            }
        }
    }

    /// Waits (up to [`moving::HOLD`]) for the pool's topology to change:
    /// a migration's first phase ends within a few heartbeats, then the
    /// held request pulls its keys; if it has not, the request is refused.
    async fn await_placement(&mut self) -> Result<(), End> {
        let entry = self.client.entry.clone();
        entry.end_batch();
        let version = self.view.topology.version;
        let mut changes = self.pool.state.topology_changes();
        let waited = async {
            // Woken by each publication (not polled); Err: the pool is gone.
            let changed = changes.wait_for(|&published| published != version);
            let _ = tokio::time::timeout(moving::HOLD, changed).await;
        };
        tokio::select! {
            () = waited => Ok(()),
            signal = entry.raised(SHUTDOWN) => Err(if signal == KILLED { End::Killed } else { End::Shutdown }),
        }
    }

    /// Waits for CLIENT PAUSE to end (or the client to be killed, or the
    /// proxy to stop).
    async fn wait_unpaused(&mut self) -> Result<(), End> {
        let entry = self.client.entry.clone();
        entry.end_batch();
        tokio::select! {
            () = self.pool.state.pause.ended() => Ok(()),
            signal = entry.raised(SHUTDOWN) => Err(if signal == KILLED { End::Killed } else { End::Shutdown }),
        }
    }

    /// Closes the connection so that the replies written last still
    /// arrive: closing a socket with unread bytes makes the kernel send a
    /// reset, which discards replies not yet delivered. So the write side
    /// is shut first (the client sees the end after its replies), and
    /// what the client still sends is read and dropped for a moment.
    async fn close_gracefully(&mut self) {
        use tokio::io::AsyncWriteExt;
        const LINGER: Duration = Duration::from_millis(500);
        let _ = self.stream.shutdown().await;
        let mut sink = vec![0u8; 4096];
        let drain = async {
            while let Ok(n) = self.stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }

    /// Reads what the client has sent into the read buffer, without
    /// waiting (see the free [`read_ready`]).
    fn read_ready(&mut self) -> Result<bool, End> {
        read_ready(&mut self.stream, &mut self.read_buf)
    }

    /// Parses and dispatches requests until the read buffer has no complete
    /// request left (`Next`), the batch is full or a barrier is reached
    /// (`Barrier`), or the session must end (`Close`).
    fn dispatch_batch(&mut self) -> Flow {
        let flow = self.dispatch_ready();
        self.client.entry.buffers.record(
            self.read_buf.len(),
            self.read_buf.capacity(),
            self.queue.len(),
            self.out_len,
        );
        flow
    }

    fn dispatch_ready(&mut self) -> Flow {
        // Before the snapshot is taken (see `ClientEntry::start_batch`).
        self.client.entry.start_batch();
        let view = self.pool.view();
        let reconfigured = !Arc::ptr_eq(&view.topology.config, &self.view.topology.config);
        self.view = view;
        // A migration waits for batches routed with older snapshots.
        self.client.entry.routed_with(self.view.topology.version);
        if reconfigured {
            if let Some(end) = self.reconfigured() {
                return Flow::Close(end);
            }
        }
        self.batch_readers.get_mut().clear();
        if self.metrics {
            let now = Instant::now();
            self.busy = match now.saturating_duration_since(self.batch_started) < BUSY_GAP {
                true => self.busy.saturating_add(1),
                false => 0,
            };
            self.batch_started = now;
            self.client.entry.touch(self.batch_started);
        }
        if let Some(request) = self.held.take() {
            self.redispatching_held = true;
            let flow = self.dispatch(request);
            self.redispatching_held = false;
            match flow {
                Flow::Next => {}
                other => return other,
            }
        }
        while self.queue.len() < MAX_BATCH {
            let request = match self.parser.next(&mut self.read_buf) {
                Ok(Some(request)) => request,
                Ok(None) => return Flow::Next,
                Err(e) => {
                    let mut out = BytesMut::new();
                    resp::encode::protocol_error(&mut out, &e);
                    self.push(Pending::Ready(out.freeze()));
                    return Flow::Close(End::Protocol(e));
                }
            };
            match self.dispatch(request) {
                Flow::Next => {}
                other => return other,
            }
        }
        Flow::Barrier
    }

    /// A reload changed the pool's configuration: from this batch on the
    /// session runs with the new one. Its user is looked up again (new
    /// permissions apply now; a password change does not log it out, as
    /// in Redis); a user that no longer exists ends the session, as Redis
    /// closes the connections of a deleted user.
    fn reconfigured(&mut self) -> Option<End> {
        let config = self.view.topology.config.clone();
        self.parser.set_limits(limits_of(&config));
        self.slowlog = self.metrics && self.pool.state.slowlog.threshold().is_some();
        let users = self.pool.state.users();
        let Some(user) = &self.client.user else {
            // No password any more: like Redis, a client that had not
            // authenticated may now run commands as the default user.
            self.client.set_user(users.initial());
            return None;
        };
        match users.get(user.name.as_bytes()) {
            Some(current) => {
                let current = current.clone();
                self.client.set_user(Some(current));
                None
            }
            None => Some(End::UserRemoved),
        }
    }

    /// Queues a reply, honouring CLIENT REPLY OFF / SKIP. Pub/Sub
    /// confirmations are sent whatever the reply mode, as Redis sends
    /// them (a SKIP is used up by the command all the same).
    fn push(&mut self, pending: Pending) {
        let silent = self.client.take_reply_silence() && !pending.is_push();
        self.queue.push_back(Queued {
            pending,
            silent,
            command: self.command,
            node: self.slow_node.take(),
        });
    }

    /// Queues an error reply; `message` carries its prefix (`ERR ...`).
    fn push_error(&mut self, message: &str) {
        self.push(Pending::error(message));
    }

    /// Awaits every queued reply in order and writes them out.
    async fn collect_replies(&mut self) -> Result<(), End> {
        let limit = self.config().client_output_limit;
        // One clock read per wake-up, not per reply: replies that were
        // already in when their turn came share the last reading, and the
        // time since the batch started that it gives.
        let mut elapsed = None;
        while let Some(Queued {
            mut pending,
            silent,
            command,
            node,
        }) = self.queue.pop_front()
        {
            if matches!(pending, Pending::AtSource(_)) {
                self.at_source.waiting = self.at_source.waiting.saturating_sub(1);
            }
            let (reply, request, waited) = match pending.take_if_in() {
                Some((reply, request)) => (reply, request, false),
                None => self.await_reply(pending).await?,
            };
            // What cannot follow a redirection (a transaction's pinned
            // connection, EVALSHA) must not pass it on.
            let reply = match self.view.topology.is_cluster() {
                true => redirect::unredirected(&self.pool, reply),
                false => reply,
            };
            if self.metrics {
                if waited || elapsed.is_none() {
                    elapsed = Some(Instant::now().saturating_duration_since(self.batch_started));
                }
                if let (Some(stats), Some(elapsed)) = (self.pool.stats.command(command), elapsed) {
                    if matches!(reply.first(), Some(b'-' | b'!')) {
                        stats.errors.inc();
                    }
                    stats.latency.record(elapsed);
                    if let Some(request) =
                        request.filter(|_| self.pool.state.slowlog.is_slow(elapsed))
                    {
                        self.record_slow(&request, node.as_deref(), elapsed);
                    }
                }
            }
            if silent {
                continue;
            }
            self.out_len += reply.len();
            self.out.push_back(reply);
            if self.out_len >= FLUSH_AT {
                let written = write_queued_now(&mut self.stream, &mut self.out).map_err(End::Io)?;
                self.out_len -= written;
                if self.out_len > limit {
                    return Err(End::SlowReader(self.out_len));
                }
                // What it holds, for --maxmemory-clients (a big reply).
                self.client.entry.buffers.holds_replies(self.out_len);
            }
        }
        if self.pubsub.is_some() {
            self.drain_links()?;
        }
        self.flush_out().await
    }

    /// Waits for a reply that was not in at its turn: the reply, the
    /// request (for the slow log), and whether it had to wait (the clock
    /// is read again after a wait).
    async fn await_reply(&mut self, pending: Pending) -> Result<(Bytes, Option<Bytes>, bool), End> {
        Ok(match pending {
            Pending::Confirm { links, reply } => {
                self.await_acks(links).await?;
                (reply, None, true)
            }
            other => {
                // While a reply is awaited, the client is watched: one
                // that leaves during a blocking call ends the session at
                // once, cancelling the call (its lease closed). Other
                // replies are bounded by the pool's timeout and still
                // written: a client that only half-closed (`nc -N`)
                // reads them, as from Redis.
                let blocking = other.is_blocking();
                let unblock = if blocking {
                    self.client.entry.set_blocked(true);
                    self.blocking_targets(&other)
                } else {
                    Vec::new()
                };
                let entry = self.client.entry.clone();
                let origin = redirect::Origin {
                    pool: &self.pool,
                    conn_key: self.client.conn_key(),
                    client: self.client.id(),
                };
                let resolving = other.resolve(origin);
                let mut resolving = std::pin::pin!(resolving);
                let watch = watch_client(&mut self.stream, &mut self.read_buf, blocking, &entry);
                let mut watch = std::pin::pin!(watch);
                let mut unblocked = std::pin::pin!(entry.unblock_requested());
                // Alive while a blocking call waits: the CLIENT UNBLOCK
                // task for it stops when it is gone. (Only for blocking
                // calls: other replies must not cost an allocation.)
                let waiting = blocking.then(|| Rc::new(()));
                let mut waited = false;
                let outcome = std::future::poll_fn(|cx| {
                    if let std::task::Poll::Ready(reply) = resolving.as_mut().poll(cx) {
                        return std::task::Poll::Ready(Ok(reply));
                    }
                    waited = true;
                    if let Some(waiting) = &waiting {
                        if unblocked.as_mut().poll(cx).is_ready() {
                            unblocked.set(entry.unblock_requested());
                            let how = entry.take_unblock();
                            // One task per call at a time: a client that
                            // repeats CLIENT UNBLOCK must not multiply the
                            // requests on the node's side connection.
                            // (Redis, too, keeps the first one's reason.)
                            if Rc::weak_count(waiting) == 0 {
                                let task =
                                    unblock_calls(unblock.clone(), how, Rc::downgrade(waiting));
                                tokio::task::spawn_local(task);
                            }
                        }
                    }
                    watch.as_mut().poll(cx).map(Err)
                })
                .await;
                drop(waiting);
                if blocking {
                    entry.set_blocked(false);
                }
                let (reply, request) = outcome?;
                (reply, request, waited)
            }
        })
    }

    fn record_slow(
        &self,
        request: &bytes::Bytes,
        node: Option<&crate::backend::Node>,
        elapsed: Duration,
    ) {
        let node = node.map_or_else(|| "".into(), |n| n.label.clone());
        let entry = &self.client.entry;
        self.pool.state.slowlog.record(
            request,
            elapsed,
            entry.addr.to_string(),
            entry.name().unwrap_or_default(),
            node,
        );
    }

    /// The connections a blocking call waits on, with their nodes (for
    /// CLIENT UNBLOCK).
    fn blocking_targets(
        &self,
        pending: &Pending,
    ) -> Vec<(Rc<crate::backend::Node>, crate::backend::Conn)> {
        let of = |lease: &crate::backend::Lease| (lease.node().clone(), lease.conn().clone());
        match pending {
            // (After a redirection, the call waits on another connection,
            // which CLIENT UNBLOCK does not reach.)
            Pending::Leased { lease, .. } | Pending::ClusterBlocking { lease, .. } => {
                vec![of(lease)]
            }
            Pending::PinnedBlocking(_) => self.tx.pinned_lease().map(of).into_iter().collect(),
            Pending::Fanout { parts, .. } => parts
                .iter()
                .filter_map(|p| p.lease.as_ref())
                .map(of)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Writes everything in the output queue. A client that does not read
    /// holds its replies until it does, or until it is closed (CLIENT
    /// KILL, `--maxmemory-clients`, which then sees what it holds).
    async fn flush_out(&mut self) -> Result<(), End> {
        let (entry, held) = (&self.client.entry, self.out_len);
        let mut waited = false;
        let mut write = std::pin::pin!(write_all_queued(&mut self.stream, &mut self.out));
        let written = std::future::poll_fn(|cx| {
            if let Poll::Ready(written) = write.as_mut().poll(cx) {
                return Poll::Ready(written.map_err(End::Io));
            }
            if !waited {
                waited = true;
                entry.buffers.holds_replies(held);
            }
            match std::pin::pin!(entry.raised(KILLED)).poll(cx) {
                Poll::Ready(_) => Poll::Ready(Err(End::Killed)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        if waited {
            entry.buffers.holds_replies(0);
        }
        written?;
        self.out_len = 0;
        Ok(())
    }
}

/// Redis logs this once per attempt; the proxy at most once a minute.
fn warn_cross_protocol(pool: &str, addr: &str) {
    static LIMIT: crate::log_limit::LogLimit = crate::log_limit::LogLimit::new(60);
    if LIMIT.allow() {
        tracing::warn!(
            pool,
            client = addr,
            "possible security attack: a client sent an HTTP request (POST or Host:) to the Redis port; connection closed, as Redis does"
        );
    }
}

/// CLIENT UNBLOCK for a blocked session: each connection its blocking
/// call waits on is unblocked on its server (`CLIENT UNBLOCK <its id>
/// TIMEOUT|ERROR`, sent on a connection of its own), so the call answers
/// exactly as Redis answers an unblocked client.
///
/// The proxy counts its client as blocked once the call is sent; the
/// server only once the call has reached it. Before that the server
/// answers 0 (and a connection still opening has no id to name), so each
/// connection is asked again, a few milliseconds apart, until its server
/// answers 1 or the call has answered (`waiting` is gone). The asking
/// ends, too, once the call must have arrived or failed: its connection
/// had `connect_timeout` to open (its handshake included) and `timeout`
/// for the call's write, and one more `timeout` is left to spare. (A call that followed a redirection waits
/// elsewhere, and its first node answers 0 until then.) The connections
/// are retired: a CLIENT UNBLOCK still on its way when the call answers
/// must not reach the next client's call on them.
async fn unblock_calls(
    mut targets: Vec<(Rc<crate::backend::Node>, crate::backend::Conn)>,
    how: u8,
    waiting: std::rc::Weak<()>,
) {
    let how: &[u8] = match how {
        crate::pool::clients::UNBLOCK_ERROR => b"ERROR",
        crate::pool::clients::UNBLOCK_TIMEOUT => b"TIMEOUT",
        _ => return,
    };
    let now = Instant::now();
    let mut arrived_by = now;
    for (_, conn) in &targets {
        conn.retire();
        let settings = conn.settings();
        arrived_by = arrived_by.max(now + settings.connect_timeout + settings.timeout * 2);
    }
    let mut pause = Duration::from_millis(1);
    while waiting.strong_count() > 0 && Instant::now() < arrived_by {
        let asked: Vec<_> = targets
            .drain(..)
            .map(|(node, conn)| {
                let reply = conn.server_id().map(|id| {
                    let id = id.to_string();
                    let request =
                        Request::from_args(&[&b"CLIENT"[..], b"UNBLOCK", id.as_bytes(), how]);
                    node.side(false).send(request.raw)
                });
                (node, conn, reply)
            })
            .collect();
        for (node, conn, reply) in asked {
            let unblocked = match reply {
                Some(reply) => matches!(reply.await, Ok(r) if r[..] == b":1\r\n"[..]),
                None => false,
            };
            // (A connection that closed has ended its call.)
            if !unblocked && conn.is_usable() {
                targets.push((node, conn));
            }
        }
        if targets.is_empty() {
            break;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::{make_room, BytesMut, FIRST_READ};

    #[test]
    fn an_empty_buffer_takes_back_the_room_its_requests_used() {
        let mut read_buf = BytesMut::new();
        make_room(&mut read_buf);
        let allocated = read_buf.capacity();
        assert!(allocated >= FIRST_READ);
        // A pipeline of 576 bytes, parsed and split off the front.
        read_buf.extend_from_slice(&[b'x'; 576]);
        let batch = read_buf.split_to(576).freeze();
        // While the batch is held (in flight), nothing is taken back.
        make_room(&mut read_buf);
        assert_eq!(read_buf.capacity(), allocated - 576);
        // Once it is dropped, the next read has the whole allocation: the
        // next pipeline is not split where the last one ended.
        drop(batch);
        make_room(&mut read_buf);
        assert_eq!(read_buf.capacity(), allocated);
    }
}
