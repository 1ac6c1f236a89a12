//! Transactions: MULTI / EXEC / DISCARD / WATCH / UNWATCH on a connection
//! leased for the client alone.
//!
//! A transaction runs on one shard: the shard of its first key (or of the
//! keys WATCHed before it). Until a key says which shard, commands without
//! keys are queued by the proxy (answered `+QUEUED` after the same arity
//! check Redis makes); when the first key arrives, the proxy leases a
//! connection to that shard and replays MULTI and the queued commands on
//! it. A key on another shard is refused with CROSSSLOT and dooms the
//! transaction: EXEC then answers EXECABORT, as Redis does after any
//! queueing error. EXEC and DISCARD give the connection back clean; a
//! client that leaves mid-transaction has it closed.

use bytes::Bytes;
use resp::Request;

use super::pending::Pending;
use super::{ClientStream, Flow, Session};
use crate::backend::Lease;
use crate::command::Resolution;
use crate::fanout;
use crate::route::{Merge, Refusal, Route, SessionCommand, CROSSSLOT};

const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
const EXEC: &[u8] = b"*1\r\n$4\r\nEXEC\r\n";
const DISCARD: &[u8] = b"*1\r\n$7\r\nDISCARD\r\n";
const UNWATCH: &[u8] = b"*1\r\n$7\r\nUNWATCH\r\n";
const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
const EXECABORT_MOVED: &str = "EXECABORT Transaction discarded: keys of the pool started or stopped moving between servers (resharding) since MULTI; retry it";

/// A connection leased for WATCH / MULTI and the shard it reaches.
struct Pinned {
    shard: usize,
    lease: Lease,
}

/// Inside MULTI.
#[derive(Default)]
struct Multi {
    /// The placement epoch at MULTI: keys that started or stopped moving
    /// since may be elsewhere now, so EXEC does not run.
    epoch: u64,
    /// Commands without keys queued before the shard was known.
    early: Vec<Request>,
    /// Their size: counted as the client's memory.
    early_bytes: usize,
    /// A command failed to queue: EXEC answers EXECABORT.
    dirty: bool,
    /// Commands queued (for CLIENT LIST's `multi=`).
    queued: i32,
}

/// The client's transaction state.
#[derive(Default)]
pub struct Transaction {
    pinned: Option<Pinned>,
    multi: Option<Multi>,
    /// The placement epoch at the first WATCH (see [`Multi::epoch`]).
    watch_epoch: Option<u64>,
}

impl Transaction {
    pub fn in_multi(&self) -> bool {
        self.multi.is_some()
    }

    /// Nothing at all: no MULTI, no WATCH, no epoch kept.
    pub fn is_empty(&self) -> bool {
        self.is_idle() && self.watch_epoch.is_none()
    }

    /// Neither inside MULTI nor holding a connection for WATCH.
    pub fn is_idle(&self) -> bool {
        self.multi.is_none() && self.pinned.is_none()
    }

    /// The leased connection, if the client has one to `shard` (WATCH).
    pub fn pinned_to(&self, shard: usize) -> Option<&Lease> {
        self.pinned
            .as_ref()
            .filter(|p| p.shard == shard)
            .map(|p| &p.lease)
    }

    /// The client's pinned connection, if any.
    pub fn pinned_lease(&self) -> Option<&Lease> {
        self.pinned.as_ref().map(|p| &p.lease)
    }

    /// SELECT or HELLO while pinned (WATCH): Redis keeps the WATCHes, so
    /// the pinned connection follows the client: `command` runs on it too
    /// (its reply dropped: the proxy answers the client), and it is closed
    /// rather than reused afterwards.
    pub fn follow_on_pinned(&mut self, command: Bytes) {
        if let Some(pinned) = &mut self.pinned {
            drop(pinned.lease.conn().send(command));
            pinned.lease.mark_key_changed();
        }
    }

    /// Drops all transaction state; a leased connection is closed.
    pub fn reset(&mut self) {
        *self = Transaction::default();
    }
}

impl<S: ClientStream> Session<S> {
    /// WATCH key... (its arity checked by `dispatch_route`).
    pub(super) fn watch(&mut self, request: Request) -> Flow {
        let topology = self.view.topology.clone();
        let mut shard = None;
        for key in request.args().skip(1) {
            if topology.moving(key).is_some() {
                return self.refuse(Refusal::Moving);
            }
            match (topology.shard_of(key), shard) {
                (None, _) => return self.refuse(Refusal::NoShard),
                (Some(s), None) => shard = Some(s),
                (Some(s), Some(first)) if s != first => return self.refuse(Refusal::CrossSlot),
                _ => {}
            }
        }
        let shard = shard.unwrap_or(0);
        self.tx
            .watch_epoch
            .get_or_insert(topology.placement_epoch());
        match &self.tx.pinned {
            Some(pinned) if pinned.shard == shard => {
                let slot = pinned.lease.conn().send(request.raw);
                self.push(Pending::Reply(slot));
                Flow::Next
            }
            Some(_) => self.refuse(Refusal::CrossSlot),
            None => match self.pin(shard, request) {
                Ok(()) => Flow::Next,
                Err(flow) => flow,
            },
        }
    }

    /// Leases a connection to `shard` and sends `first` on it. Earlier
    /// replies are collected first (a barrier), so the client's earlier
    /// commands have run. Err: what the caller returns meanwhile.
    fn pin(&mut self, shard: usize, first: Request) -> Result<(), Flow> {
        if !self.queue.is_empty() {
            self.held = Some(first);
            return Err(Flow::Barrier);
        }
        let node = match self.node_for(shard, false) {
            Ok(node) => node,
            Err(error) => {
                self.push_error(&error.client_message());
                if let Some(multi) = &mut self.tx.multi {
                    multi.dirty = true;
                }
                return Err(Flow::Next);
            }
        };
        let lease = self.lease(&node);
        if let Some(multi) = &mut self.tx.multi {
            // The proxy answered MULTI and the early commands already.
            drop(lease.conn().send(Bytes::from_static(MULTI)));
            for early in multi.early.drain(..) {
                drop(lease.conn().send(early.raw));
            }
            multi.early_bytes = 0;
            self.client.entry.set_multi(multi.queued, 0);
        }
        let slot = lease.conn().send(first.raw);
        self.push(Pending::Reply(slot));
        self.tx.pinned = Some(Pinned { shard, lease });
        Ok(())
    }

    pub(super) fn unwatch(&mut self) -> Flow {
        self.tx.watch_epoch = None;
        self.end_pinned(UNWATCH)
    }

    /// Ends the client's pinned connection with `command` (UNWATCH,
    /// DISCARD), which leaves it clean: it goes back to its pool once
    /// answered. Without one, the proxy answers `+OK` itself.
    fn end_pinned(&mut self, command: &'static [u8]) -> Flow {
        match self.tx.pinned.take() {
            Some(pinned) => {
                let slot = pinned.lease.conn().send(Bytes::from_static(command));
                self.push(Pending::Leased {
                    slot,
                    lease: pinned.lease,
                    instead: None,
                    blocking: false,
                });
                Flow::Barrier
            }
            None => {
                self.push(Pending::Ready(Bytes::from_static(b"+OK\r\n")));
                Flow::Next
            }
        }
    }

    pub(super) fn multi(&mut self) -> Flow {
        self.tx.multi = Some(Multi {
            epoch: self.view.topology.placement_epoch(),
            ..Multi::default()
        });
        self.client.entry.set_multi(0, 0);
        match &self.tx.pinned {
            Some(pinned) => {
                let slot = pinned.lease.conn().send(Bytes::from_static(MULTI));
                self.push(Pending::Reply(slot));
            }
            None => self.push(Pending::Ready(Bytes::from_static(b"+OK\r\n"))),
        }
        Flow::Next
    }

    /// A command inside MULTI: queued on the transaction's connection, or
    /// by the proxy until a key says which shard.
    pub(super) fn dispatch_in_multi(&mut self, request: Request, resolution: Resolution) -> Flow {
        let route = self.route(&request, &resolution);
        let flow = match route {
            Route::Session(SessionCommand::Exec) => return self.exec(),
            Route::Session(SessionCommand::Discard) => return self.discard(),
            Route::Session(SessionCommand::Quit | SessionCommand::Reset) => {
                return self.dispatch_route(route, request, resolution)
            }
            Route::Session(SessionCommand::Multi) => {
                self.nested(request, "ERR MULTI calls can not be nested")
            }
            Route::Session(SessionCommand::Watch) => {
                self.nested(request, "ERR WATCH inside MULTI is not allowed")
            }
            Route::Session(
                SessionCommand::Ping | SessionCommand::Echo | SessionCommand::Unwatch,
            ) => self.queue_keyless(request, resolution),
            Route::Session(other) => {
                let name = resolution.spec().map_or("?", |s| s.name());
                let _ = other;
                self.doom(&format!(
                    "ERR shardgate: '{name}' inside MULTI is not supported"
                ))
            }
            Route::Shard { keyless: true, .. } | Route::Broadcast(Merge::Info | Merge::Wait) => {
                self.queue_keyless(request, resolution)
            }
            Route::Shard { .. } if self.touches_moving_key(&request) => {
                let message = Refusal::Moving.message(&self.config().name);
                self.doom(&message)
            }
            Route::Shard { shard, .. } => self.queue_on(shard, request),
            // Secrets are redacted from CONFIG GET's own reply only.
            Route::ConfigGet { .. }
                if request
                    .args()
                    .skip(2)
                    .any(crate::secrets::may_match_secret_config) =>
            {
                self.doom(
                    "ERR shardgate: CONFIG GET of a password setting inside MULTI is not supported",
                )
            }
            Route::ConfigGet { shard } => self.queue_on(shard, request),
            Route::Split(_) => self.doom(CROSSSLOT),
            Route::Broadcast(_) | Route::Scan => {
                let name = resolution.spec().map_or("?", |s| s.name());
                let message = Refusal::MultiShard(name).message(&self.config().name);
                self.doom(&message)
            }
            Route::Refuse(refusal) => {
                let message = refusal.message(&self.config().name);
                self.doom(&message)
            }
        };
        if let Some(multi) = &mut self.tx.multi {
            multi.queued += 1;
            self.client.entry.set_multi(multi.queued, multi.early_bytes);
        }
        flow
    }

    /// MULTI or WATCH inside MULTI: Redis's own error, which does not doom
    /// the transaction; from the server when the connection is leased.
    fn nested(&mut self, request: Request, error: &str) -> Flow {
        match &self.tx.pinned {
            Some(pinned) => {
                let slot = pinned.lease.conn().send(request.raw);
                self.push(Pending::Reply(slot));
            }
            None => self.push_error(error),
        }
        Flow::Next
    }

    /// Refuses a command inside MULTI; EXEC will answer EXECABORT.
    fn doom(&mut self, message: &str) -> Flow {
        if let Some(multi) = &mut self.tx.multi {
            multi.dirty = true;
        }
        self.push_error(message);
        Flow::Next
    }

    fn queue_on(&mut self, shard: usize, request: Request) -> Flow {
        match &self.tx.pinned {
            Some(pinned) if pinned.shard == shard => {
                let slot = pinned.lease.conn().send(request.raw);
                self.push(Pending::Reply(slot));
                Flow::Next
            }
            Some(_) => self.doom(CROSSSLOT),
            None => match self.pin(shard, request) {
                Ok(()) => Flow::Next,
                Err(flow) => flow,
            },
        }
    }

    fn queue_keyless(&mut self, request: Request, resolution: Resolution) -> Flow {
        if let Some(pinned) = &self.tx.pinned {
            let slot = pinned.lease.conn().send(request.raw);
            self.push(Pending::Reply(slot));
            return Flow::Next;
        }
        if let Some(spec) = resolution.spec() {
            if !spec.arity_ok(request.argc()) {
                return self.doom(&format!(
                    "ERR wrong number of arguments for '{}' command",
                    spec.name()
                ));
            }
        }
        if let Some(multi) = &mut self.tx.multi {
            multi.early_bytes += request.raw.len();
            multi.early.push(request);
        }
        self.push(Pending::Ready(Bytes::from_static(b"+QUEUED\r\n")));
        Flow::Next
    }

    fn exec(&mut self) -> Flow {
        let Some(multi) = self.tx.multi.take() else {
            self.push_error("ERR EXEC without MULTI");
            return Flow::Next;
        };
        self.client.entry.set_multi(-1, 0);
        let epoch = self.view.topology.placement_epoch();
        let watched = self.tx.watch_epoch.take();
        let moved = multi.epoch != epoch || watched.is_some_and(|w| w != epoch);
        if moved && !multi.dirty {
            // Keys started or stopped moving since MULTI (or WATCH): the
            // queued commands may name keys now elsewhere. A WATCHing
            // client sees its transaction fail as after a change to a
            // watched key, and retries; the others get EXECABORT.
            let instead = match watched {
                Some(_) if self.client.resp3 => Bytes::from_static(b"_\r\n"),
                Some(_) => Bytes::from_static(b"*-1\r\n"),
                None => fanout::encode_error(EXECABORT_MOVED),
            };
            match self.tx.pinned.take() {
                Some(pinned) => {
                    let slot = pinned.lease.conn().send(Bytes::from_static(DISCARD));
                    self.push(Pending::Leased {
                        slot,
                        lease: pinned.lease,
                        instead: Some(instead),
                        blocking: false,
                    });
                }
                None => self.push(Pending::Ready(instead)),
            }
            return Flow::Barrier;
        }
        if multi.dirty {
            // Discarded on the server too (which also drops its WATCHes),
            // after the replies still owed on that connection.
            match self.tx.pinned.take() {
                Some(pinned) => {
                    let slot = pinned.lease.conn().send(Bytes::from_static(DISCARD));
                    self.push(Pending::Leased {
                        slot,
                        lease: pinned.lease,
                        instead: Some(fanout::encode_error(EXECABORT)),
                        blocking: false,
                    });
                }
                None => self.push_error(EXECABORT),
            }
            return Flow::Barrier;
        }
        if let Some(pinned) = self.tx.pinned.take() {
            let slot = pinned.lease.conn().send(Bytes::from_static(EXEC));
            self.push(Pending::Leased {
                slot,
                lease: pinned.lease,
                instead: None,
                blocking: false,
            });
            return Flow::Barrier;
        }
        if multi.early.is_empty() {
            self.push(Pending::Ready(Bytes::from_static(b"*0\r\n")));
            return Flow::Next;
        }
        // Only commands without keys: run them on the default shard.
        let shard = self.default_shard();
        let node = match self.node_for(shard, false) {
            Ok(node) => node,
            Err(error) => {
                self.push_error(&error.client_message());
                return Flow::Next;
            }
        };
        let lease = self.lease(&node);
        drop(lease.conn().send(Bytes::from_static(MULTI)));
        for early in multi.early {
            drop(lease.conn().send(early.raw));
        }
        let slot = lease.conn().send(Bytes::from_static(EXEC));
        self.push(Pending::Leased {
            slot,
            lease,
            instead: None,
            blocking: false,
        });
        Flow::Barrier
    }

    fn discard(&mut self) -> Flow {
        self.tx.watch_epoch = None;
        if self.tx.multi.take().is_none() {
            self.push_error("ERR DISCARD without MULTI");
            return Flow::Next;
        }
        self.client.entry.set_multi(-1, 0);
        self.end_pinned(DISCARD)
    }

    pub(super) fn refuse(&mut self, refusal: Refusal) -> Flow {
        let message = refusal.message(&self.config().name);
        self.push_error(&message);
        Flow::Next
    }
}
