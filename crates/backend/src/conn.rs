//! One pipelined backend connection.
//!
//! Sessions of one worker send requests through [`Conn`] handles; one task
//! owns the socket. [`Conn::send`] is synchronous: it appends the frame to
//! the outbox and a reply slot to the FIFO, and wakes the task, which writes
//! everything queued with one `writev` and matches replies to slots by
//! order. So a connection carries as many requests in flight as its
//! clients send, and many clients' requests share one write.
//!
//! When the connection breaks or a request outlives its deadline, every
//! waiting request gets an error at once and the task reconnects with
//! exponential backoff; while it is down, new requests fail fast.
//!
//! The same type serves shared connections (many sessions, picked per
//! client) and leased ones (one session: transactions, blocking calls).
//! A leased connection lives for one TCP connection only: the session
//! state on it (WATCH, MULTI, a blocking call) dies with the socket, so
//! reconnecting would carry on as if nothing happened; it stays closed
//! and every later request on it fails.
//! When the last handle is dropped the task answers what is in flight,
//! then closes; [`Conn::close`] closes at once (a client that left in the
//! middle of a blocking call).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use resp::{Limits, ReplyScanner};
use shardgate_core::error::NodeError;
use tokio::time::{sleep_until, Instant};

use super::episode::EpisodeLog;
use super::error::{BackendError, BackendErrorKind};
use super::handshake::{self, Handshake};
use super::read_buffer;
use super::slices;
use super::slot::{slot, ReplySlot, SlotSender};
use super::stats::NodeStats;
use super::stream::Stream;
use super::wake::TaskWake;

/// A shared connection whose oldest request has waited this long is
/// *stuck* (behind a long script, a frozen server...): clients then send
/// new requests over another connection to the node (see
/// [`super::Node::with_shared`]), so one long command holds up only the
/// requests already queued behind it.
pub const STUCK_AFTER: Duration = Duration::from_millis(100);
/// Script SHAs remembered per connection (see [`Conn::first_use_of_script`]);
/// beyond it the set starts over, which costs only redundant SCRIPT LOADs.
const MAX_SCRIPTS_PER_CONN: usize = 1024;

/// How a connection is doing, as its senders see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Connecting,
    Up,
    /// Failed; requests are refused until this instant, then it reconnects.
    Down {
        until: Instant,
    },
    /// A leased connection that failed: it never reconnects.
    Closed,
}

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnSettings {
    pub addr: std::net::SocketAddr,
    /// `pool 'alpha' server 127.0.0.1:6379`, for logs and client errors.
    pub name: Arc<str>,
    /// AUTH / SELECT / HELLO run on every new connection.
    pub handshake: Handshake,
    /// Bound on one request (the pool's `timeout`).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Longest wait between reconnects.
    pub max_backoff: Duration,
    pub tcp_keepalive: bool,
}

struct InFlight {
    slot: SlotSender,
    /// The request once written, handed back with its reply (see `slot`).
    request: Option<Bytes>,
    /// When it was written (one clock read per write, not per request).
    sent: Option<Instant>,
    /// None: no deadline (a blocking call with timeout 0).
    timeout: Option<Duration>,
}

impl InFlight {
    /// Written requests wait until `sent + timeout`; unwritten ones have no
    /// deadline yet (a connect that hangs is bounded by `connect_timeout`).
    fn deadline(&self) -> Option<Instant> {
        Some(self.sent? + self.timeout?)
    }
}

#[derive(Default)]
struct Queue {
    /// Frames not yet written, in order.
    outbox: VecDeque<Bytes>,
    /// One entry per request, written or not, in order.
    fifo: VecDeque<InFlight>,
    /// How many entries at the back of `fifo` are still in `outbox`.
    unsent: usize,
    /// Bytes of the outbox's first frame already written.
    written: usize,
}

struct Shared {
    settings: ConnSettings,
    stats: Arc<NodeStats>,
    /// Trouble with the node, logged once per episode.
    episode: Rc<EpisodeLog>,
    /// The connection's id on the server (asked for by leased connections).
    server_id: Cell<Option<i64>>,
    /// The oldest request has waited longer than [`STUCK_AFTER`].
    stuck: Cell<bool>,
    queue: RefCell<Queue>,
    status: Cell<Status>,
    last_error: RefCell<Option<Arc<str>>>,
    task: TaskWake,
    handles: Cell<usize>,
    close_now: Cell<bool>,
    /// Never to be given back to an idle pool (see [`Conn::retire`]).
    retired: Cell<bool>,
    /// Reconnect after a failure (shared connections) or stay closed (leased).
    reconnects: bool,
    /// Lowercase SHAs of scripts loaded through this TCP connection.
    scripts: RefCell<std::collections::HashSet<Box<[u8]>>>,
}

impl Shared {
    fn wake_task(&self) {
        self.task.wake();
    }

    fn error(&self, kind: BackendErrorKind) -> BackendError {
        BackendError {
            server: self.settings.name.clone(),
            kind,
        }
    }

    fn unavailable(&self) -> BackendError {
        let reason = self
            .last_error
            .borrow()
            .clone()
            .unwrap_or_else(|| "not connected".into());
        self.error(BackendErrorKind::Unavailable(reason))
    }

    /// Fails every request: those never written as `unsent`, the rest as
    /// `sent`. Returns how many failed.
    fn fail_all(&self, sent: &BackendErrorKind, unsent: &BackendErrorKind) -> usize {
        let (fifo, unsent_count) = {
            let mut queue = self.queue.borrow_mut();
            queue.outbox.clear();
            queue.written = 0;
            let unsent_count = std::mem::take(&mut queue.unsent);
            (std::mem::take(&mut queue.fifo), unsent_count)
        };
        let written = fifo.len() - unsent_count;
        self.stats.outstanding.sub(fifo.len() as u64);
        self.stats.errors.add(fifo.len() as u64);
        let failed = fifo.len();
        for (i, entry) in fifo.into_iter().enumerate() {
            let kind = if i < written { sent } else { unsent };
            entry.slot.complete(Err(self.error(kind.clone())));
        }
        self.stuck.set(false);
        failed
    }
}

/// A handle to one connection task. Cloning shares the connection.
pub struct Conn {
    shared: Rc<Shared>,
}

impl Clone for Conn {
    fn clone(&self) -> Self {
        self.shared.handles.set(self.shared.handles.get() + 1);
        Conn {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let left = self.shared.handles.get() - 1;
        self.shared.handles.set(left);
        if left == 0 {
            self.shared.wake_task();
        }
    }
}

impl Conn {
    /// Starts a shared connection's task on the current worker
    /// (`spawn_local`); it reconnects after failures.
    pub fn spawn(settings: ConnSettings, stats: Arc<NodeStats>, episode: Rc<EpisodeLog>) -> Conn {
        Conn::start(settings, stats, episode, true)
    }

    /// Starts a leased connection's task: after its socket fails it stays
    /// [`Status::Closed`].
    pub fn spawn_leased(
        settings: ConnSettings,
        stats: Arc<NodeStats>,
        episode: Rc<EpisodeLog>,
    ) -> Conn {
        Conn::start(settings, stats, episode, false)
    }

    fn start(
        settings: ConnSettings,
        stats: Arc<NodeStats>,
        episode: Rc<EpisodeLog>,
        reconnects: bool,
    ) -> Conn {
        let shared = Rc::new(Shared {
            settings,
            stats,
            episode,
            server_id: Cell::new(None),
            stuck: Cell::new(false),
            queue: RefCell::new(Queue::default()),
            status: Cell::new(Status::Connecting),
            last_error: RefCell::new(None),
            task: TaskWake::default(),
            handles: Cell::new(1),
            close_now: Cell::new(false),
            retired: Cell::new(false),
            reconnects,
            scripts: RefCell::default(),
        });
        tokio::task::spawn_local(run(shared.clone()));
        Conn { shared }
    }

    /// Queues one request frame, bounded by the connection's `timeout`.
    pub fn send(&self, frame: Bytes) -> ReplySlot {
        self.send_with_timeout(frame, Some(self.shared.settings.timeout))
    }

    /// Queues one request frame with its own bound (`None`: wait as long
    /// as it takes, for a blocking call with timeout 0). Fails at once,
    /// without queueing, while the connection is down.
    pub fn send_with_timeout(&self, frame: Bytes, timeout: Option<Duration>) -> ReplySlot {
        let shared = &self.shared;
        if !self.is_usable() {
            shared.stats.requests.inc();
            shared.stats.errors.inc();
            return ReplySlot::ready(Err(shared.unavailable()));
        }
        let (sender, receiver) = slot();
        {
            let mut queue = shared.queue.borrow_mut();
            queue.outbox.push_back(frame);
            queue.fifo.push_back(InFlight {
                slot: sender,
                request: None,
                sent: None,
                timeout,
            });
            queue.unsent += 1;
        }
        shared.stats.outstanding.add(1);
        shared.stats.requests.inc();
        shared.wake_task();
        receiver
    }

    pub fn status(&self) -> Status {
        self.shared.status.get()
    }

    /// True while the connection can take requests (up or connecting).
    pub fn is_usable(&self) -> bool {
        match self.shared.status.get() {
            Status::Down { until } => Instant::now() >= until,
            Status::Closed => false,
            Status::Connecting | Status::Up => true,
        }
    }

    /// Usable and not stuck behind a long command: a good choice for new
    /// requests.
    #[inline]
    pub fn is_ready(&self) -> bool {
        !self.shared.stuck.get() && self.is_usable()
    }

    /// The oldest request has waited longer than [`STUCK_AFTER`].
    pub fn is_stuck(&self) -> bool {
        self.shared.stuck.get()
    }

    /// The connection's id on its server, when the handshake asked for it.
    pub fn server_id(&self) -> Option<i64> {
        self.shared.server_id.get()
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.shared.queue.borrow().fifo.len()
    }

    /// Closes the connection now: pending requests get an error and the
    /// socket is closed (a blocking call on it ends on the server).
    pub fn close(&self) {
        self.shared.close_now.set(true);
        self.shared.wake_task();
    }

    /// Marks a leased connection as not to be reused once its client is
    /// done with it: something about it may still be on its way to the
    /// server (a CLIENT UNBLOCK for its id), which must not reach the
    /// next client's call on it.
    pub fn retire(&self) {
        self.shared.retired.set(true);
    }

    pub(crate) fn is_retired(&self) -> bool {
        self.shared.retired.get()
    }

    pub fn name(&self) -> &Arc<str> {
        &self.shared.settings.name
    }

    /// True the first time script `sha` is used on this TCP connection, and
    /// records it. The server behind a new connection may be a restarted or
    /// promoted one without the script, so EVALSHA loads the script first
    /// then (rather than retrying after NOSCRIPT, which would run it after
    /// the client's later commands).
    pub fn first_use_of_script(&self, sha: &[u8]) -> bool {
        // Clients send lowercase SHAs (SCRIPT LOAD's answer): no copy then.
        let lowered;
        let sha = if sha.iter().any(u8::is_ascii_uppercase) {
            lowered = sha.to_ascii_lowercase();
            &lowered[..]
        } else {
            sha
        };
        let mut scripts = self.shared.scripts.borrow_mut();
        if scripts.contains(sha) {
            return false;
        }
        if scripts.len() >= MAX_SCRIPTS_PER_CONN {
            scripts.clear();
        }
        scripts.insert(sha.into());
        true
    }

    pub fn settings(&self) -> &ConnSettings {
        &self.shared.settings
    }
}

/// Why `serve` returned.
enum Stop {
    /// Every handle is gone and nothing is in flight, or `close()`.
    Closed,
    Failed(BackendErrorKind),
}

/// A connection that lived this long before it was lost is reconnected at
/// once: one lost connection (a timeout behind a long script, a server
/// that closed it) must not fail the requests of the next moments. One
/// that dies sooner waits out the backoff (a server that accepts and
/// closes at once must not be hammered).
const RECONNECT_AT_ONCE_AFTER: Duration = Duration::from_secs(1);

async fn run(shared: Rc<Shared>) {
    let mut backoff = crate::backoff::Backoff::new();
    loop {
        if finished(&shared) {
            break;
        }
        shared.status.set(Status::Connecting);
        let mut lived = Duration::ZERO;
        let failure: Arc<str> = match connect(&shared.settings).await {
            Ok((stream, greeting)) => {
                // "Restored" is logged at the first reply, not here: a
                // frozen server still completes TCP connects.
                shared.last_error.borrow_mut().take();
                shared.server_id.set(greeting.id);
                shared.status.set(Status::Up);
                shared.scripts.borrow_mut().clear();
                shared.stats.connections.add(1);
                backoff.reset();
                let up_since = Instant::now();
                let stop = serve(&shared, stream).await;
                lived = up_since.elapsed();
                shared.stats.connections.sub(1);
                match stop {
                    Stop::Closed => break,
                    Stop::Failed(kind) => {
                        shared.stats.connection_failures.inc();
                        let lost = BackendErrorKind::ConnectionLost(kind.reason());
                        let failed = shared.fail_all(&kind, &lost);
                        if shared.reconnects {
                            shared.episode.trouble(&kind.to_string(), failed);
                        }
                        kind.reason()
                    }
                }
            }
            Err(error) => {
                shared.stats.connection_failures.inc();
                // Rendered once: every request queued meanwhile shares it.
                let reason: Arc<str> = error.to_string().into();
                let kind = BackendErrorKind::Unavailable(reason.clone());
                let failed = shared.fail_all(&kind, &kind);
                shared
                    .episode
                    .trouble(&format!("cannot connect: {reason}"), failed);
                reason
            }
        };
        *shared.last_error.borrow_mut() = Some(failure);
        if !shared.reconnects {
            shared.status.set(Status::Closed);
            break;
        }
        if lived >= RECONNECT_AT_ONCE_AFTER {
            // Requests sent meanwhile wait for the new connection.
            continue;
        }
        let until = Instant::now() + backoff.next(shared.settings.max_backoff);
        shared.status.set(Status::Down { until });
        if !wait_while_down(&shared, until).await {
            break;
        }
    }
    let closed = BackendErrorKind::ConnectionLost("connection closed by the proxy".into());
    shared.fail_all(&closed, &closed);
}

fn finished(shared: &Shared) -> bool {
    shared.close_now.get() || (shared.handles.get() == 0 && shared.queue.borrow().fifo.is_empty())
}

async fn connect(settings: &ConnSettings) -> Result<(Stream, handshake::Greeting), NodeError> {
    handshake::connect_greeted(
        settings.addr,
        &settings.handshake,
        settings.connect_timeout,
        settings.tcp_keepalive,
    )
    .await
}

/// While down, fails whatever is queued until `until`. Returns false when
/// the connection is finished.
async fn wait_while_down(shared: &Shared, until: Instant) -> bool {
    let sleep = sleep_until(until);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return !finished(shared),
            () = shared.task.next() => {
                if finished(shared) {
                    return false;
                }
                let reason = shared.last_error.borrow().clone().unwrap_or_else(|| "not connected".into());
                let kind = BackendErrorKind::Unavailable(reason);
                shared.fail_all(&kind, &kind);
            }
        }
    }
}

/// What woke the connection task.
enum Woken {
    Readable(io::Result<()>),
    Writable(io::Result<()>),
    Task,
    Timer,
}

/// Carries traffic until the connection fails or is finished.
async fn serve(shared: &Shared, mut stream: Stream) -> Stop {
    let mut scanner = ReplyScanner::new(Limits::replies());
    let mut read_buf = read_buffer::new();
    let timer = sleep_until(Instant::now());
    tokio::pin!(timer);
    let mut armed_for: Option<Instant> = None;
    loop {
        if finished(shared) {
            return Stop::Closed;
        }
        if !shared.queue.borrow().outbox.is_empty() {
            yield_to_other_tasks().await;
        }
        if let Err(e) = flush(shared, &mut stream) {
            return Stop::Failed(BackendErrorKind::ConnectionLost(e.to_string().into()));
        }
        let (want_write, deadline, sent) = {
            let queue = shared.queue.borrow();
            let front = queue.fifo.front();
            (
                !queue.outbox.is_empty() || stream.has_unsent(),
                front.and_then(InFlight::deadline),
                front.and_then(|f| f.sent),
            )
        };
        // The timer wakes at the front request's deadline, or earlier to
        // mark the connection stuck.
        let wake_at = match sent {
            Some(sent) if !shared.stuck.get() => {
                let stuck_at = sent + STUCK_AFTER;
                Some(deadline.map_or(stuck_at, |d| d.min(stuck_at)))
            }
            _ => deadline,
        };
        if wake_at != armed_for {
            if let Some(at) = wake_at {
                timer.as_mut().reset(at);
            }
            armed_for = wake_at;
        }
        read_buffer::make_room(&mut read_buf);
        let woken = tokio::select! {
            biased;
            readable = std::future::poll_fn(|cx| stream.poll_readable(cx)) => Woken::Readable(readable),
            writable = std::future::poll_fn(|cx| stream.poll_writable(cx)), if want_write => Woken::Writable(writable),
            () = shared.task.next() => Woken::Task,
            () = &mut timer, if armed_for.is_some() => Woken::Timer,
        };
        match woken {
            Woken::Readable(readable) => {
                let read = readable.and_then(|()| stream.try_read_buf(&mut read_buf));
                match read {
                    Ok(0) => {
                        return Stop::Failed(BackendErrorKind::ConnectionLost(
                            "closed by the server".into(),
                        ))
                    }
                    Ok(n) => {
                        shared.stats.bytes_in.add(n as u64);
                        if let Err(kind) = deliver(shared, &mut scanner, &mut read_buf) {
                            return Stop::Failed(kind);
                        }
                    }
                    // Readiness that was not (or a TLS record with no data).
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        return Stop::Failed(BackendErrorKind::ConnectionLost(e.to_string().into()))
                    }
                }
            }
            Woken::Writable(writable) => {
                if let Err(e) = writable {
                    return Stop::Failed(BackendErrorKind::ConnectionLost(e.to_string().into()));
                }
            }
            Woken::Task => {}
            Woken::Timer => {
                let now = Instant::now();
                let (expired, waited_long) = {
                    let queue = shared.queue.borrow();
                    let front = queue.fifo.front();
                    (
                        front.and_then(InFlight::deadline).is_some_and(|d| d <= now),
                        front
                            .and_then(|f| f.sent)
                            .is_some_and(|s| s + STUCK_AFTER <= now),
                    )
                };
                if expired {
                    let ms = shared.settings.timeout.as_millis() as u64;
                    return Stop::Failed(BackendErrorKind::Timeout(ms));
                }
                if waited_long {
                    shared.stuck.set(true);
                }
                armed_for = None;
            }
        }
    }
}

/// Lets every task already scheduled on this worker run first: sessions
/// woken with this one queue their frames too, and one write carries them
/// all. (Not `tokio::task::yield_now`, which waits for the next poll of the
/// I/O driver.)
async fn yield_to_other_tasks() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// Writes as much of the outbox as the socket takes now (over TLS,
/// records an earlier write left go first).
fn flush(shared: &Shared, stream: &mut Stream) -> io::Result<()> {
    match stream.push_unsent() {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
        Err(e) => return Err(e),
    }
    let mut queue = shared.queue.borrow_mut();
    let mut now = None;
    while !queue.outbox.is_empty() {
        let wrote = slices::with_head(&queue.outbox, queue.written, |slices| {
            stream.try_write_vectored(slices)
        });
        match wrote {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                shared.stats.bytes_out.add(n as u64);
                let now = *now.get_or_insert_with(Instant::now);
                written(&mut queue, n, now);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Takes `n` written bytes off the outbox; each frame written whole moves
/// to its request's FIFO entry (kept for the slot) with its send time.
fn written(queue: &mut Queue, mut n: usize, now: Instant) {
    while n > 0 {
        let Some(front) = queue.outbox.front() else {
            return;
        };
        let left = front.len() - queue.written;
        if n < left {
            queue.written += n;
            return;
        }
        n -= left;
        queue.written = 0;
        let frame = queue.outbox.pop_front();
        let index = queue.fifo.len() - queue.unsent;
        queue.unsent -= 1;
        if let Some(entry) = queue.fifo.get_mut(index) {
            entry.sent = Some(now);
            entry.request = frame;
        }
    }
}

fn deliver(
    shared: &Shared,
    scanner: &mut ReplyScanner,
    read_buf: &mut BytesMut,
) -> Result<(), BackendErrorKind> {
    let mut now = None;
    // The last send time seen and the latency it gave.
    let mut last: Option<(Instant, Duration)> = None;
    loop {
        let frame = match scanner.scan(read_buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                if now.is_some() {
                    // Replies came: the front moved, and the node answers.
                    shared.stuck.set(false);
                    shared.episode.answered();
                }
                return Ok(());
            }
            Err(e) => return Err(BackendErrorKind::Protocol(e.to_string().into())),
        };
        let reply = read_buf.split_to(frame.len).freeze();
        let entry = {
            let mut queue = shared.queue.borrow_mut();
            // A reply to a frame not fully written yet cannot exist.
            if queue.fifo.len() <= queue.unsent {
                None
            } else {
                queue.fifo.pop_front()
            }
        };
        let Some(entry) = entry else {
            return Err(BackendErrorKind::Protocol(
                "a reply arrived with no request waiting for it".into(),
            ));
        };
        let now = *now.get_or_insert_with(Instant::now);
        shared.stats.outstanding.sub(1);
        // Frames written together share their send time: their latency
        // is worked out once.
        let latency = match (entry.sent, last) {
            (Some(sent), Some((at, latency))) if sent == at => latency,
            (Some(sent), _) => {
                let latency = now.saturating_duration_since(sent);
                last = Some((sent, latency));
                latency
            }
            (None, _) => Duration::ZERO,
        };
        shared.stats.record_latency(latency);
        entry.slot.complete_with(Ok(reply), entry.request);
    }
}
