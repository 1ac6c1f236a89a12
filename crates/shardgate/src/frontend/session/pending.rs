//! A reply that is ready, or will be, and how it becomes the client's bytes.

use std::sync::Arc;

use bytes::Bytes;

use crate::backend::{Lease, ReplyResult, ReplySlot};
use crate::fanout::{self, encode_error, split::SplitPlan, PartReply};
use crate::route::Merge;

use super::redirect::{self, Follow, Origin, Sent};

/// Which link an acknowledgement comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRef {
    /// The Pub/Sub link to a shard.
    Shard(usize),
    /// The MONITOR link to a shard.
    Monitor(usize),
}

/// How the replies of a request sent to several shards become one.
pub enum Combine {
    Split(SplitPlan),
    Broadcast {
        merge: Merge,
        info: Option<Box<fanout::broadcast::InfoPatch>>,
    },
}

/// One shard's share of a request sent to several shards.
pub struct FanoutPart {
    /// The shard's name, for errors.
    pub shard: Arc<str>,
    pub slot: ReplySlot,
    /// A connection leased for this part (WAIT), given back once it answered.
    pub lease: Option<Lease>,
    /// Cluster pools: how to follow a redirection of this part.
    pub follow: Option<Box<Follow>>,
}

impl FanoutPart {
    pub fn shared(shard: Arc<str>, slot: ReplySlot) -> FanoutPart {
        FanoutPart {
            shard,
            slot,
            lease: None,
            follow: None,
        }
    }

    /// Its reply has arrived, and is not a redirection to follow.
    fn is_in(&self) -> bool {
        self.slot
            .is_in_and(|reply| self.follow.is_none() || redirect::settled(reply))
    }

    /// Its reply as the merge takes it; a lease goes back to its pool
    /// once it answered (closed otherwise, when dropped).
    fn into_reply(self, result: ReplyResult) -> PartReply {
        if let (Ok(_), Some(lease)) = (&result, self.lease) {
            lease.release();
        }
        match result {
            Ok(frame) => PartReply::answered(self.shard, frame),
            Err(error) => PartReply::failed(self.shard, &error.client_message()),
        }
    }
}

impl Combine {
    /// The one reply the client gets.
    fn merge(self, replies: Vec<PartReply>) -> Bytes {
        match self {
            Combine::Split(plan) => fanout::split::merge(&plan, replies),
            Combine::Broadcast { merge, info } => {
                fanout::broadcast::merge(merge, replies, info.as_deref())
            }
        }
    }
}

/// How to retry an EVALSHA the node did not know (see `scripts`).
pub struct EvalShaRetry {
    pub(super) conn: crate::backend::Conn,
    pub(super) request: Bytes,
    pub(super) state: std::sync::Arc<crate::pool::PoolState>,
}

/// A request on moving keys sent to their source (see `moving`).
pub struct AtSource {
    pub slot: ReplySlot,
    /// The destination master's connection (or why there is none).
    pub destination: Result<crate::backend::Conn, crate::backend::BackendError>,
    /// The request, for the destination.
    pub request: Bytes,
    /// A request on one key: where that key is in `request`, and where to
    /// remember it should the source not have it.
    pub learn: Option<(
        std::ops::Range<usize>,
        u64,
        std::rc::Rc<crate::view::PoolWorker>,
    )>,
    pub absent: Absent,
}

/// How the source says that the keys are not there.
#[derive(Debug, Clone, Copy)]
pub enum Absent {
    /// The script's `-SGABSENT` error.
    Script,
    /// A GET sent as it is: its null.
    Null,
}

impl Absent {
    fn says(self, reply: &[u8]) -> bool {
        match self {
            Absent::Script => reply.starts_with(b"-SGABSENT "),
            Absent::Null => reply == b"$-1\r\n" || reply == b"_\r\n",
        }
    }
}

/// A reply in the making.
pub enum Pending {
    /// Made by the proxy.
    Ready(Bytes),
    /// Made by the proxy, held back (a failed AUTH, slowed down).
    Delayed {
        reply: Bytes,
        delay: std::time::Duration,
    },
    /// One backend reply, passed through untouched.
    Reply(ReplySlot),
    /// Cluster pools: one backend reply, redirections followed.
    Cluster(ReplySlot, Sent),
    /// A blocking call's reply on the client's pinned connection (WATCH,
    /// then BLPOP): as `Reply`, but a client that leaves cancels it (the
    /// session ends, closing the pinned connection).
    PinnedBlocking(ReplySlot),
    /// A reply on a leased connection; once it is in, the lease goes back
    /// to its pool (or is closed, when no reply came). With `instead`, the
    /// client gets that reply rather than the server's (EXECABORT for a
    /// transaction the proxy discarded).
    Leased {
        slot: ReplySlot,
        lease: Lease,
        instead: Option<Bytes>,
        /// A blocking call: it may wait as long as the client asked, so a
        /// client that leaves cancels it.
        blocking: bool,
    },
    /// Cluster pools: a blocking call on a leased connection, redirections
    /// followed (on a connection leased at the new node).
    ClusterBlocking {
        slot: ReplySlot,
        lease: Lease,
        follow: Box<Follow>,
    },
    /// Replies from several shards, merged.
    Fanout {
        parts: Vec<FanoutPart>,
        combine: Box<Combine>,
    },
    /// A Pub/Sub confirmation or MONITOR's `+OK`, sent once every link in
    /// `links` has acknowledged (the session resolves it, see `pubsub`).
    Confirm { links: Vec<LinkRef>, reply: Bytes },
    /// EVALSHA: if the node answers NOSCRIPT and the proxy has seen the
    /// script, it is loaded there and the call retried.
    EvalSha {
        slot: ReplySlot,
        retry: Box<EvalShaRetry>,
    },
    /// A request on moving keys (resharding): the source's answer, or
    /// when the keys are not there, the destination's.
    AtSource(Box<AtSource>),
    /// CONFIG GET's reply, with the values of secret settings redacted.
    ConfigGet(ReplySlot),
    /// One shard's SCAN reply, its cursor rewritten to say which shard is next.
    Scan {
        slot: ReplySlot,
        shard: usize,
        next_shard: Option<usize>,
        codec: fanout::scan::Codec,
    },
}

impl Pending {
    /// An error reply; `message` carries its prefix (`ERR ...`).
    pub fn error(message: &str) -> Pending {
        Pending::Ready(encode_error(message))
    }

    /// A Pub/Sub confirmation: sent whatever CLIENT REPLY says, as Redis
    /// sends them.
    pub fn is_push(&self) -> bool {
        matches!(self, Pending::Confirm { .. })
    }

    /// Whether the reply may take as long as the client asked (a blocking
    /// call, WAIT): if the client leaves meanwhile, it is cancelled rather
    /// than awaited.
    pub fn is_blocking(&self) -> bool {
        match self {
            Pending::Leased { blocking, .. } => *blocking,
            Pending::PinnedBlocking(_) | Pending::ClusterBlocking { .. } => true,
            Pending::Fanout { parts, .. } => parts.iter().any(|part| part.lease.is_some()),
            _ => false,
        }
    }

    /// The reply, if it is in already (one made by the proxy, a plain or
    /// cluster pool's reply that is no redirection, a split or broadcast
    /// whose parts have all answered), as [`Pending::resolve`] would
    /// return it: most replies of a pipeline are in by their turn, and
    /// this spares them the wait's machinery. Taken in place (a pending
    /// reply is large to move): once it returns `Some`, what is left is
    /// spent, to be dropped.
    #[inline]
    pub fn take_if_in(&mut self) -> Option<(Bytes, Option<Bytes>)> {
        match self {
            Pending::Ready(bytes) => Some((std::mem::take(bytes), None)),
            Pending::Reply(slot) => {
                let reply = slot.try_take()?;
                Some((reply_bytes(reply), slot.take_request()))
            }
            // A redirection is followed by `resolve`; any other reply is
            // the answer.
            Pending::Cluster(slot, sent) => {
                let reply = slot.try_take_if(redirect::settled)?;
                Some((reply_bytes(reply), Some(std::mem::take(&mut sent.request))))
            }
            Pending::Fanout { .. } => self.take_fanout_if_in(),
            _ => None,
        }
    }

    /// A split or broadcast whose parts have all answered (none with a
    /// redirection to follow), merged.
    #[inline(never)]
    fn take_fanout_if_in(&mut self) -> Option<(Bytes, Option<Bytes>)> {
        let Pending::Fanout { parts, .. } = self else {
            return None;
        };
        if !parts.iter().all(FanoutPart::is_in) {
            return None;
        }
        let Pending::Fanout { parts, combine } =
            std::mem::replace(self, Pending::Ready(Bytes::new()))
        else {
            return None;
        };
        // A loop, not `collect`: collecting in place into the parts' own
        // allocation would shrink it with a `realloc`.
        let mut replies = Vec::with_capacity(parts.len());
        for mut part in parts {
            replies.push(match part.slot.try_take() {
                Some(result) => part.into_reply(result),
                // (Not seen: every part was found in just now, on this
                // one thread.)
                None => PartReply::failed(part.shard, "ERR shardgate: reply lost"),
            });
        }
        Some(((*combine).merge(replies), None))
    }

    /// Waits for the reply and returns the bytes the client gets, with the
    /// request as a server received it when a connection handed it back
    /// (for the slow log).
    /// `origin`: whose request it is, should a redirection be followed.
    pub async fn resolve(self, origin: Origin<'_>) -> (Bytes, Option<Bytes>) {
        match self {
            Pending::Reply(mut slot) | Pending::PinnedBlocking(mut slot) => {
                let reply = (&mut slot).await;
                (reply_bytes(reply), slot.take_request())
            }
            Pending::Cluster(slot, sent) => {
                // The request, for the slow log (a cluster pool's too).
                let (reply, request) = sent.resolve(slot, origin).await;
                (reply_bytes(reply), Some(request))
            }
            other => (other.resolve_reply().await, None),
        }
    }

    async fn resolve_reply(self) -> Bytes {
        match self {
            Pending::Ready(bytes) | Pending::Confirm { reply: bytes, .. } => bytes,
            Pending::Delayed { reply, delay } => {
                tokio::time::sleep(delay).await;
                reply
            }
            Pending::Reply(slot) | Pending::PinnedBlocking(slot) => reply_bytes(slot.await),
            // (`resolve` answers it.)
            Pending::Cluster(slot, _) => reply_bytes(slot.await),
            Pending::ClusterBlocking {
                slot,
                lease,
                follow,
            } => reply_bytes(follow.resolve_leased(slot, lease).await),
            Pending::Leased {
                slot,
                lease,
                instead,
                ..
            } => {
                let result = slot.await;
                if result.is_ok() {
                    lease.release();
                }
                match instead {
                    Some(reply) => reply,
                    None => reply_bytes(result),
                }
            }
            Pending::Fanout { parts, combine } => {
                let mut replies = Vec::with_capacity(parts.len());
                for mut part in parts {
                    let result = match part.follow.take() {
                        Some(follow) => follow.resolve(&mut part.slot).await,
                        None => (&mut part.slot).await,
                    };
                    replies.push(part.into_reply(result));
                }
                (*combine).merge(replies)
            }
            Pending::EvalSha { slot, retry } => reply_bytes(retry.resolve(slot).await),
            Pending::AtSource(at) => {
                let AtSource {
                    slot,
                    destination,
                    request,
                    learn,
                    absent,
                } = *at;
                match slot.await {
                    Ok(reply) if absent.says(&reply) => {
                        if let Some((key_at, epoch, pool)) = learn {
                            if let Some(key) = request.get(key_at) {
                                pool.gone.borrow_mut().learn(epoch, key);
                            }
                        }
                        match destination {
                            Ok(conn) => reply_bytes(conn.send(request).await),
                            Err(error) => encode_error(&error.client_message()),
                        }
                    }
                    other => reply_bytes(other),
                }
            }
            Pending::ConfigGet(slot) => match slot.await {
                Ok(reply) => crate::secrets::redact_config_get(reply),
                Err(e) => encode_error(&e.client_message()),
            },
            Pending::Scan {
                slot,
                shard,
                next_shard,
                codec,
            } => match slot.await {
                Ok(reply) => {
                    fanout::scan::rewrite_reply(&reply, shard, next_shard, codec).unwrap_or(reply)
                }
                Err(e) => encode_error(&e.client_message()),
            },
        }
    }
}

fn reply_bytes(result: ReplyResult) -> Bytes {
    match result {
        Ok(bytes) => bytes,
        Err(error) => encode_error(&error.client_message()),
    }
}
