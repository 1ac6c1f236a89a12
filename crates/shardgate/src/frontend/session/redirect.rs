//! Cluster pools: a reply that is a redirection never reaches the client
//! (`docs/cluster.md`). `MOVED` is followed to the new owner and reported
//! to the controller, which patches the slot and refreshes the map; `ASK`
//! sends `ASKING` and the request back to back on one connection to the
//! importing node (nothing else can come between them: sending is
//! synchronous on the worker's one thread) and changes nothing;
//! `TRYAGAIN`, `CLUSTERDOWN` for reads, and a primary that refused the
//! connection are retried, with backoff, on the slot's owner in the
//! newest snapshot for as long as the pool's `timeout`, from the first
//! retry.
//!
//! While the slot's primary is unreachable, retries go to one of its
//! replicas instead: a replica never runs a command for a slot it does
//! not serve (it answers `MOVED` to its primary, which here means "not
//! promoted yet" and is retried), so this is safe, and it finds the
//! promoted replica as soon as the cluster promotes it, instead of after
//! the next refresh of the map (at most one a second).
//!
//! A blocking call follows redirections too, on a connection leased for
//! it at each node (it may wait there as long as the client asked).
//!
//! Requests that cannot follow a redirection (on a transaction's pinned
//! connection, EVALSHA) get [`unredirected`]'s error instead of the
//! `MOVED` or `ASK`: nothing ran, so `TRYAGAIN` says what to do; a
//! `MOVED` inside MULTI also makes the server abort the EXEC.
//!
//! Replies still resolve in request order: a redirected request is
//! resent and awaited before the next reply is collected, so a client's
//! pipelined writes to one key, all redirected, run in the order sent.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::backend::{
    BackendError, BackendErrorKind, ConnKey, Lease, Node, ReplyResult, ReplySlot,
};
use crate::cluster::refresh::Reason;
use crate::cluster::{redirect, Redirect, MAX_REDIRECTS};
use crate::fanout::encode_error;
use crate::view::PoolWorker;

const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// A request sent to a cluster node on the client's shared connection,
/// kept in the reply queue with what following a redirection of its
/// reply needs besides the session. Inline: almost no reply is a
/// redirection, so the rest ([`Follow`]) is built only for one that is.
pub struct Sent {
    pub request: Bytes,
    /// Where its first key is in `request` (None for a command without
    /// keys).
    pub key_at: Option<std::ops::Range<usize>>,
    pub node: Rc<Node>,
    /// Only reads: safe to resend after a connection was lost.
    pub read: bool,
}

/// Whose request it is: the session's side of a redirection.
#[derive(Clone, Copy)]
pub struct Origin<'a> {
    pub pool: &'a Rc<PoolWorker>,
    pub conn_key: ConnKey,
    pub client: u64,
}

impl Sent {
    /// The reply the client gets: the first, or after redirections the
    /// final node's.
    pub async fn resolve(self, first: ReplySlot, origin: Origin<'_>) -> (ReplyResult, Bytes) {
        let reply = first.await;
        if settled(&reply) {
            return (reply, self.request);
        }
        let request = self.request.clone();
        let timeout = origin.pool.view().topology.config.timeout;
        let follow = Box::new(Follow::new(origin, self, timeout));
        (Box::pin(follow.follow(reply)).await, request)
    }
}

/// A request sent to a cluster node, and what is needed to send it again.
pub struct Follow {
    pub pool: Rc<PoolWorker>,
    pub conn_key: ConnKey,
    pub client: u64,
    pub request: Bytes,
    /// Where its first key is in `request` (None for a command without
    /// keys): its slot is computed only if a redirection needs it.
    pub key_at: Option<std::ops::Range<usize>>,
    /// Only reads: safe to resend after a connection was lost.
    pub read: bool,
    /// The node it was sent to.
    pub node: SocketAddr,
    /// How long retries may go on, from the first one (the pool's
    /// `timeout`; no clock is read for requests that need no retry).
    pub timeout: Duration,
    /// The node that last failed to answer (a primary down), if any.
    pub failed: Option<SocketAddr>,
    /// Retries so far (which replica a retry tries).
    pub retries: usize,
    pub carrier: Carrier,
}

/// What carries the request to a node.
#[derive(Debug, Clone, Copy)]
pub enum Carrier {
    /// The client's shared connection to the node.
    Shared,
    /// A blocking call: a connection leased for it at each node, with the
    /// call's own bound (None: it may wait forever, as asked).
    Leased(Option<Duration>),
}

impl Follow {
    /// Following `sent`, for `origin`, retrying for up to `timeout`.
    pub fn new(origin: Origin<'_>, sent: Sent, timeout: Duration) -> Follow {
        Follow {
            pool: origin.pool.clone(),
            conn_key: origin.conn_key,
            client: origin.client,
            request: sent.request,
            key_at: sent.key_at,
            read: sent.read,
            node: sent.node.addr,
            timeout,
            failed: None,
            retries: 0,
            carrier: Carrier::Shared,
        }
    }
}

/// A reply that is the command's answer: nothing to follow.
#[inline]
/// A reply that is the answer: not a redirection to follow.
pub(super) fn settled(reply: &ReplyResult) -> bool {
    matches!(reply, Ok(frame) if redirect(frame).is_none())
}

/// What to do with a reply.
enum Step {
    Answer,
    Resend { to: SocketAddr, asking: bool },
    Retry,
}

impl Follow {
    /// The reply the client gets: `first`'s, or after redirections the
    /// final node's.
    pub async fn resolve(self: Box<Self>, first: &mut ReplySlot) -> ReplyResult {
        let reply = first.await;
        if settled(&reply) {
            return reply;
        }
        // Boxed: the retry loop's state is large, and only redirected
        // requests need it (every other reply's future stays small).
        Box::pin(self.follow(reply)).await
    }

    /// As [`Follow::resolve`], for a blocking call sent on `lease`.
    pub async fn resolve_leased(self: Box<Self>, first: ReplySlot, lease: Lease) -> ReplyResult {
        let reply = first.await;
        if reply.is_ok() {
            lease.release();
        }
        if settled(&reply) {
            return reply;
        }
        Box::pin(self.follow(reply)).await
    }

    async fn follow(mut self: Box<Self>, mut reply: ReplyResult) -> ReplyResult {
        let mut redirects = 0;
        let mut backoff = FIRST_BACKOFF;
        let mut deadline = None;
        loop {
            let step = match &reply {
                Ok(frame) => match redirect(frame) {
                    None => Step::Answer,
                    Some(redirect) => match self.step(redirect) {
                        Ok(step) => step,
                        Err(answer) => return Ok(answer),
                    },
                },
                Err(error) => {
                    self.failed = Some(self.node);
                    self.after_failure(error)
                }
            };
            reply = match step {
                Step::Answer => return reply,
                Step::Resend { to, asking } => {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        self.stats()
                            .loops
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return Ok(self.too_many());
                    }
                    self.send(to, asking).await
                }
                Step::Retry => {
                    let now = Instant::now();
                    if now + backoff > *deadline.get_or_insert(now + self.timeout) {
                        // Out of time on a replica's MOVED to its dead
                        // primary: still not a redirection for the client
                        // (nor inside a split's merged reply).
                        return reply.map(|frame| unredirected(&self.pool, frame));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    self.retries += 1;
                    let to = self.owner();
                    self.send(to, false).await
                }
            };
        }
    }

    /// The slot of the request's keys (routing made sure they share one).
    fn slot(&self) -> Option<u16> {
        let key = self.request.get(self.key_at.clone()?)?;
        Some(keyspace::cluster_slot(key))
    }

    fn stats(&self) -> &crate::pool::cluster::RedirectStats {
        &self.pool.state.cluster.stats
    }

    /// What a redirection asks; Err: the reply the client gets instead.
    fn step(&self, redirect: Redirect) -> Result<Step, Bytes> {
        use std::sync::atomic::Ordering::Relaxed;
        let hints = &self.pool.state.cluster;
        Ok(match redirect {
            // A replica tried while its primary is down still points to
            // it: not promoted yet.
            Redirect::Moved { to, .. } if Some(to) == self.failed => Step::Retry,
            Redirect::Moved { to, .. } | Redirect::Ask { to, .. } if !self.pool.in_map(to) => {
                hints.want(Reason::Moved);
                Step::Retry
            }
            Redirect::Moved { slot, to } => {
                hints.moved(slot, to);
                Step::Resend { to, asking: false }
            }
            Redirect::Ask { to, .. } => {
                hints.stats.ask.fetch_add(1, Relaxed);
                Step::Resend { to, asking: true }
            }
            Redirect::Elsewhere { .. } => {
                hints.want(Reason::Moved);
                Step::Retry
            }
            Redirect::TryAgain => {
                hints.stats.tryagain.fetch_add(1, Relaxed);
                Step::Retry
            }
            Redirect::ClusterDown => {
                hints.stats.clusterdown.fetch_add(1, Relaxed);
                hints.want(Reason::ClusterDown);
                if !self.read {
                    return Err(self.cluster_down());
                }
                Step::Retry
            }
        })
    }

    /// After the node failed to answer: retried when that is safe (nothing
    /// was sent, or only a read was) and a refresh asked for.
    fn after_failure(&self, error: &BackendError) -> Step {
        let safe = match error.kind {
            BackendErrorKind::Unavailable(_) => true,
            BackendErrorKind::ConnectionLost(_) => self.read,
            BackendErrorKind::Timeout(_) | BackendErrorKind::Protocol(_) => false,
        };
        self.pool.state.cluster.want(Reason::PrimaryFailed);
        if !safe {
            return Step::Answer;
        }
        self.stats()
            .retried
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Step::Retry
    }

    /// Where a retry goes: the slot's primary now (or, while that is the
    /// node that failed, one of its replicas), or the same node.
    fn owner(&self) -> SocketAddr {
        let Some(slot) = self.slot() else {
            return self.node;
        };
        match self.pool.primary_of_slot(slot) {
            Some(primary) if Some(primary.addr) == self.failed => self
                .pool
                .replica_of_slot(slot, self.retries)
                .map_or(primary.addr, |replica| replica.addr),
            Some(primary) => primary.addr,
            None => self.node,
        }
    }

    /// Sends the request to `to` (after `ASKING`) and awaits its reply.
    async fn send(&mut self, to: SocketAddr, asking: bool) -> ReplyResult {
        let Some(node) = self.pool.node_at(to) else {
            return Err(BackendError {
                server: format!("pool '{}' server {to}", self.pool.state.name).into(),
                kind: BackendErrorKind::Unavailable("too many cluster nodes".into()),
            });
        };
        self.node = to;
        let request = self.request.clone();
        // Its `+OK` is not needed; it only has to come first.
        let asking = |conn: &crate::backend::Conn| {
            if asking {
                drop(conn.send(Bytes::from_static(ASKING)));
            }
        };
        match self.carrier {
            Carrier::Shared => {
                let slot = node.with_shared(self.conn_key, self.client, |conn| {
                    asking(conn);
                    conn.send(request)
                });
                slot.await
            }
            Carrier::Leased(timeout) => {
                self.pool.stats.leases.inc();
                let lease = node.lease(self.conn_key);
                asking(lease.conn());
                let reply = lease.conn().send_with_timeout(request, timeout).await;
                if reply.is_ok() {
                    lease.release();
                }
                reply
            }
        }
    }

    fn too_many(&self) -> Bytes {
        encode_error(&format!(
            "ERR shardgate: pool '{}': more than {MAX_REDIRECTS} cluster redirections for one request{}; the nodes disagree about where it belongs: retry",
            self.pool.state.name,
            self.slot().map_or(String::new(), |s| format!(" (slot {s})")),
        ))
    }

    fn cluster_down(&self) -> Bytes {
        encode_error(&format!(
            "CLUSTERDOWN shardgate: pool '{}': the cluster cannot serve{} now (a failed primary not replaced yet, or a partition); the write was not run: retry",
            self.pool.state.name,
            self.slot().map_or(String::new(), |s| format!(" slot {s}")),
        ))
    }
}

/// A reply about to reach the client, with a `MOVED` or `ASK` (from a
/// path that does not follow them) turned into a `TRYAGAIN` error; a
/// `MOVED` is also reported to the controller.
#[inline]
pub fn unredirected(pool: &PoolWorker, reply: Bytes) -> Bytes {
    match reply.first() {
        Some(b'-') => unredirected_error(pool, reply),
        _ => reply,
    }
}

#[cold]
fn unredirected_error(pool: &PoolWorker, reply: Bytes) -> Bytes {
    let (slot, what) = match redirect(&reply) {
        // Not patched into the map at once (as a followed MOVED is): on
        // these paths the reply may be a script's own words, so only a
        // confirmed refresh may move the slot.
        Some(Redirect::Moved { slot, .. }) => {
            pool.state.cluster.want(Reason::Moved);
            (slot, "moved to another node")
        }
        Some(Redirect::Ask { slot, .. }) => (slot, "is migrating to another node"),
        Some(Redirect::Elsewhere { slot }) => {
            pool.state.cluster.want(Reason::Moved);
            (slot, "moved to another node")
        }
        _ => return reply,
    };
    encode_error(&format!(
        "TRYAGAIN shardgate: pool '{}': slot {slot} {what}; a transaction or EVALSHA on it cannot follow it (nothing ran; a transaction is aborted): retry",
        pool.state.name
    ))
}
