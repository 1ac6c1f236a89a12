//! One request -> where it goes: a shard (master or replica), a split
//! across shards, every shard, or a SCAN step; session commands go to
//! `local` and `transaction`.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use resp::Request;

use super::cmd::info::InfoPlan;
use super::pending::{Combine, FanoutPart, Pending};
use super::redirect::{Carrier, Follow, Origin, Sent};
use super::{ClientStream, End, Flow, Session};
use crate::auth;
use crate::backend::{BackendError, BackendErrorKind, Node, ReplySlot};
use crate::command::{self, AclCategories, CommandFlags, CommandSpec, Resolution};
use crate::config::ReadPolicy;
use crate::fanout::{scan, split};
use crate::metrics::UNKNOWN_COMMAND;
use crate::route::{self, default_shard_index, Merge, Route, SessionCommand, SplitKind};
use crate::scripts::{self, ScriptUse};
use crate::view::{Reader, ShardView};

impl<S: ClientStream> Session<S> {
    /// Routes one request and starts it on its way.
    pub(super) fn dispatch(&mut self, request: Request) -> Flow {
        let flow = self.dispatch_request(request);
        self.slow_node = None;
        flow
    }

    fn dispatch_request(&mut self, request: Request) -> Flow {
        let resolution = self.resolver.resolve(&request);
        if matches!(resolution, Resolution::Unknown) && is_http(&request) {
            // Never forwarded: Redis would close the connection carrying it.
            return Flow::Close(End::CrossProtocol);
        }
        self.command = match resolution {
            Resolution::Known(id, _) => {
                self.client.entry.set_command(id);
                id.0
            }
            _ => UNKNOWN_COMMAND,
        };
        // A request held behind a barrier was counted when first seen.
        if self.metrics && !self.redispatching_held {
            if let Some(stats) = self.pool.stats.command(self.command) {
                stats.requests.inc();
            }
        }
        if let Some(flow) = self.check_permissions(&request, &resolution) {
            return flow;
        }
        if self.pool.state.pause.holds(pause_writes(&resolution)) {
            self.held = Some(request);
            return Flow::Pause;
        }
        self.note_script(&request);
        if self.client.readonly || !self.config().read_your_writes.is_zero() {
            let writes = writes(&resolution);
            if writes && self.client.readonly {
                self.push_error("READONLY You can't write against a read only replica.");
                return Flow::Next;
            }
            if writes {
                self.client.last_write = Some(std::time::Instant::now());
            }
        }
        if self.tx.in_multi() {
            return self.dispatch_in_multi(request, resolution);
        }
        if self.in_subscribed_mode() {
            if let Some(flow) = self.refuse_in_subscribed_mode(&resolution) {
                return flow;
            }
        }
        let route = self.route(&request, &resolution);
        if self.pool.state.out_of_step() && !matches!(route, Route::Session(_)) {
            return self.refuse(route::Refusal::OutOfStep);
        }
        if !self.view.topology.is_moving() {
            return self.dispatch_route(route, request, resolution);
        }
        let request = match self.run_where_it_is(request, &route, &resolution) {
            Ok(request) => request,
            Err(flow) => return flow,
        };
        self.dispatch_route(route, request, resolution)
    }

    /// Where `request` goes with this batch's topology.
    pub(super) fn route(&mut self, request: &Request, resolution: &Resolution) -> Route {
        route::route(request, resolution, &self.view.topology, &mut self.keys)
    }

    pub(super) fn dispatch_route(
        &mut self,
        route: Route,
        request: Request,
        resolution: Resolution,
    ) -> Flow {
        match route {
            Route::Shard {
                shard,
                read,
                blocking,
                ..
            } => self.forward(shard, read, blocking, request, resolution.spec()),
            Route::Session(command) => {
                // Redis checks the table's arity before anything else.
                if let Some(spec) = resolution.spec().filter(|s| !s.arity_ok(request.argc())) {
                    self.push_error(&crate::error::CommandError::Arity(spec.name()).to_string());
                    return Flow::Next;
                }
                self.session_command(command, request, &resolution)
            }
            Route::Split(kind) => {
                let read = resolution.spec().is_some_and(CommandSpec::is_readonly);
                self.split(kind, read, request)
            }
            Route::Broadcast(merge) => self.broadcast(merge, request),
            Route::Scan => self.scan(request),
            Route::ConfigGet { shard } => {
                let slot = self.send_to_shard(shard, false, request.raw);
                self.push(Pending::ConfigGet(slot));
                Flow::Next
            }
            Route::Refuse(refusal) => {
                let message = refusal.message(&self.config().name);
                self.push_error(&message);
                Flow::Next
            }
        }
    }

    /// NOAUTH before authentication (but for AUTH, HELLO, QUIT... which
    /// Redis flags `no-auth`), NOPERM for what the user may not run or touch.
    fn check_permissions(&mut self, request: &Request, resolution: &Resolution) -> Option<Flow> {
        let spec = resolution.spec();
        let Some(user) = &self.client.user else {
            if spec.is_some_and(|s| s.flags().contains(CommandFlags::NO_AUTH)) {
                return None;
            }
            self.push_error(auth::NOAUTH);
            return Some(Flow::Next);
        };
        if user.unrestricted {
            return None;
        }
        let id = match resolution {
            Resolution::Known(id, _) => Some(*id),
            _ => None,
        };
        if !user.commands.allows(id) {
            let name = match spec {
                Some(spec) => spec.name().to_string(),
                None => String::from_utf8_lossy(request.arg(0).unwrap_or_default()).to_lowercase(),
            };
            self.push_error(&auth::denied_command(&name));
            return Some(Flow::Next);
        }
        if user.keys.is_some() {
            let user = user.clone();
            let mut keys = std::mem::take(&mut self.keys);
            keys.clear();
            match spec {
                Some(spec) => {
                    spec.keys(request, &mut keys);
                }
                // Not in the table: argument 1 is taken for its key, as routing does.
                None if request.argc() > 1 => keys.push(1),
                None => {}
            }
            let denied = keys
                .iter()
                .any(|&i| !user.may_access(request.arg(i).unwrap_or_default()));
            self.keys = keys;
            if denied {
                self.push_error(auth::DENIED_KEY);
                return Some(Flow::Next);
            }
        }
        None
    }

    /// RESP2 subscribed mode allows only (P|S)(UN)SUBSCRIBE, PING, QUIT
    /// and RESET, as in Redis; anything else is refused in Redis's words.
    fn refuse_in_subscribed_mode(&mut self, resolution: &Resolution) -> Option<Flow> {
        let Resolution::Known(id, spec) = resolution else {
            return None;
        };
        let allowed = matches!(
            route::class_of(*id),
            route::Class::Session(
                SessionCommand::Subscribe(_)
                    | SessionCommand::Unsubscribe(_)
                    | SessionCommand::Ping
                    | SessionCommand::Quit
                    | SessionCommand::Reset
            )
        );
        if allowed {
            return None;
        }
        self.push_error(&format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            spec.name()
        ));
        Some(Flow::Next)
    }

    /// Sends a request to one shard: on the client's pinned connection if
    /// it has one there (WATCH), on a leased connection if it blocks, else
    /// on the client's shared connection to the shard's node.
    fn forward(
        &mut self,
        shard: usize,
        read: bool,
        blocking: bool,
        request: Request,
        spec: Option<&'static CommandSpec>,
    ) -> Flow {
        if let Some(lease) = self.tx.pinned_to(shard) {
            let timeout = self.blocking_timeout(blocking, spec, &request);
            let slot = lease.conn().send_with_timeout(request.raw, timeout);
            self.push(if blocking {
                Pending::PinnedBlocking(slot)
            } else {
                Pending::Reply(slot)
            });
            return Flow::Next;
        }
        let node = match self.node_for(shard, read) {
            Ok(node) => node,
            Err(error) => {
                self.push(Pending::Reply(ReplySlot::ready(Err(error))));
                return Flow::Next;
            }
        };
        if blocking {
            // Earlier commands must have run (LPUSH then BLPOP), and later
            // ones must wait for it: a barrier on both sides.
            if !self.queue.is_empty() {
                self.held = Some(request);
                return Flow::Barrier;
            }
            let timeout = self.blocking_timeout(true, spec, &request);
            let lease = self.lease(&node);
            let slot = lease.conn().send_with_timeout(request.raw.clone(), timeout);
            if self.config().cluster {
                let key = self.first_key_at(&request);
                let mut follow = self.follow(&node, request.raw, key, read);
                follow.carrier = Carrier::Leased(timeout);
                self.push(Pending::ClusterBlocking {
                    slot,
                    lease,
                    follow,
                });
                return Flow::Barrier;
            }
            self.push(Pending::Leased {
                slot,
                lease,
                instead: None,
                blocking: true,
            });
            return Flow::Barrier;
        }
        if self.script_use() == ScriptUse::Sha {
            return self.evalsha(&node, request);
        }
        // A script's or function's error reply is the client's own text: a
        // redirection in it is not followed (it would run the code again,
        // elsewhere); it reaches the client as TRYAGAIN (`unredirected`).
        if self.config().cluster && !scripts::runs_client_code(command::CommandId(self.command)) {
            let key_at = self.first_key_at(&request);
            let Request { raw, args } = request;
            let reply = node.with_shared(self.client.conn_key(), self.client.id(), |conn| {
                conn.send(raw.clone())
            });
            self.parser.recycle(args);
            if self.slowlog {
                self.slow_node = Some(node.clone());
            }
            let sent = Sent {
                request: raw,
                key_at,
                node,
                read,
            };
            self.push(Pending::Cluster(reply, sent));
            return Flow::Next;
        }
        let Request { raw, args } = request;
        let slot = node.with_shared(self.client.conn_key(), self.client.id(), |conn| {
            conn.send(raw)
        });
        self.parser.recycle(args);
        if self.slowlog {
            self.slow_node = Some(node);
        }
        self.push(Pending::Reply(slot));
        Flow::Next
    }

    /// Where the request's first key is in its frame.
    fn first_key_at(&self, request: &Request) -> Option<std::ops::Range<usize>> {
        self.keys
            .first()
            .and_then(|&i| request.args.get(i))
            .cloned()
    }

    /// Cluster pools: how to follow a redirection of `frame`, sent to `node`
    /// on the client's shared connection.
    fn follow(
        &self,
        node: &Rc<Node>,
        frame: Bytes,
        key_at: Option<std::ops::Range<usize>>,
        read: bool,
    ) -> Box<Follow> {
        let sent = Sent {
            request: frame,
            key_at,
            node: node.clone(),
            read,
        };
        Box::new(Follow::new(self.origin(), sent, self.config().timeout))
    }

    /// Whose requests these are, for following redirections.
    pub(super) fn origin(&self) -> Origin<'_> {
        Origin {
            pool: &self.pool,
            conn_key: self.client.conn_key(),
            client: self.client.id(),
        }
    }

    /// A connection to `node` for this client alone (counted).
    pub(super) fn lease(&self, node: &Rc<Node>) -> crate::backend::Lease {
        self.pool.stats.leases.inc();
        node.lease(self.client.conn_key())
    }

    /// How long a call may take: the pool's `timeout`, plus a blocking
    /// call's own timeout (None: it may wait forever, as asked).
    fn blocking_timeout(
        &self,
        blocking: bool,
        spec: Option<&CommandSpec>,
        request: &Request,
    ) -> Option<Duration> {
        let timeout = self.config().timeout;
        if !blocking {
            return Some(timeout);
        }
        match spec.map(|spec| spec.block_timeout(request)) {
            Some(Some(Some(own))) => Some(own + timeout),
            Some(Some(None)) => None,
            // Unparseable: the server answers with an error at once.
            _ => Some(timeout),
        }
    }

    /// The node a request for `shard` goes to: the master, or for a read a
    /// replica as the pool's read policy says.
    pub(super) fn node_for(&self, shard: usize, read: bool) -> Result<Rc<Node>, BackendError> {
        let Some(view) = self.view.shards.get(shard) else {
            return Err(self.shard_unavailable(shard));
        };
        if read && self.reads_may_use_replicas() {
            match self.batch_reader(shard, view) {
                BatchReader::Node(node) => {
                    if !view.master.as_ref().is_some_and(|m| Rc::ptr_eq(m, &node)) {
                        self.pool.stats.replica_reads.inc();
                    }
                    return Ok(node);
                }
                BatchReader::Master => {}
                BatchReader::NoReplica => return Err(self.no_replica(shard)),
            }
        }
        match &view.master {
            Some(node) => Ok(node.clone()),
            None => Err(self.shard_unavailable(shard)),
        }
    }

    /// The node this batch reads `shard` from: chosen once per batch (by
    /// the pool's policy and balancing), so a client's pipelined reads go
    /// to one node, seeing one consistent replica, and a worker's backend
    /// writes stay as batched as with reads from the master alone.
    fn batch_reader(&self, shard: usize, view: &ShardView) -> BatchReader {
        let mut readers = self.batch_readers.borrow_mut();
        if let Some((_, chosen)) = readers.iter().find(|(s, _)| *s == shard) {
            return chosen.clone();
        }
        let config = self.config();
        let chosen = match view.reader(
            self.read_policy(),
            config.read_balance,
            config.replica_fallback,
        ) {
            Reader::Node(node) => BatchReader::Node(node.clone()),
            Reader::Master => BatchReader::Master,
            Reader::NoReplica => BatchReader::NoReplica,
        };
        readers.push((shard, chosen.clone()));
        chosen
    }

    /// The pool's read policy; a read-only endpoint reads from replicas
    /// even when the pool's own policy is `master`.
    fn read_policy(&self) -> ReadPolicy {
        match self.config().read_policy {
            ReadPolicy::Master if self.client.readonly => ReadPolicy::PreferReplica,
            policy => policy,
        }
    }

    /// False within `read_your_writes` of the client's last write.
    fn reads_may_use_replicas(&self) -> bool {
        let window = self.config().read_your_writes;
        window.is_zero()
            || self
                .client
                .last_write
                .is_none_or(|at| at.elapsed() >= window)
    }

    fn no_replica(&self, shard: usize) -> BackendError {
        let name = self.shard_name(shard);
        BackendError {
            server: format!("pool '{}' shard '{name}'", self.config().name).into(),
            kind: BackendErrorKind::Unavailable(
                "no replica fit to serve reads (read_policy: replica)".into(),
            ),
        }
    }

    fn shard_unavailable(&self, shard: usize) -> BackendError {
        let topology = &self.view.topology;
        let (name, reason) = match topology.shards.get(shard) {
            Some(s) => (
                s.name.clone(),
                s.down.clone().unwrap_or_else(|| "no master".into()),
            ),
            None => ("?".into(), "no such shard".into()),
        };
        BackendError {
            server: format!("pool '{}' shard '{name}'", self.config().name).into(),
            kind: BackendErrorKind::Unavailable(reason),
        }
    }

    /// Sends `frame` to the shard's node on the client's shared connection,
    /// or on its pinned one there (WATCH), so it stays in order with the
    /// client's other commands to that shard.
    pub(super) fn send_to_master(&self, shard: usize, frame: Bytes) -> ReplySlot {
        self.send_to_shard(shard, false, frame)
    }

    fn send_to_shard(&self, shard: usize, read: bool, frame: Bytes) -> ReplySlot {
        if let Some(lease) = self.tx.pinned_to(shard) {
            return lease.conn().send(frame);
        }
        match self.node_for(shard, read) {
            Ok(node) => node.with_shared(self.client.conn_key(), self.client.id(), |conn| {
                conn.send(frame)
            }),
            Err(error) => ReplySlot::ready(Err(error)),
        }
    }

    fn shard_name(&self, shard: usize) -> Arc<str> {
        self.view
            .topology
            .shards
            .get(shard)
            .map_or_else(|| "?".into(), |s| s.name.clone())
    }

    /// MGET, MSET, DEL... with keys on several shards: one request per
    /// shard (`read`: the command is read-only, so the parts go where the
    /// read policy says).
    fn split(&mut self, kind: SplitKind, read: bool, request: Request) -> Flow {
        let topology = self.view.topology.clone();
        let cluster = topology.is_cluster();
        let planned = if cluster {
            split::plan_grouped(kind, &request, |key| {
                Some((topology.shard_of(key)?, keyspace::cluster_slot(key)))
            })
        } else {
            split::plan(kind, &request, |key| topology.shard_of(key))
        };
        let plan = match planned {
            Ok(plan) => plan,
            Err(refusal) => {
                let message = refusal.message(&self.config().name);
                self.push_error(&message);
                return Flow::Next;
            }
        };
        let parts = plan
            .parts
            .iter()
            .map(|part| {
                let name = self.shard_name(part.shard);
                if cluster && self.tx.pinned_to(part.shard).is_none() {
                    return self.send_part_to_cluster(name, part, read);
                }
                FanoutPart::shared(
                    name,
                    self.send_to_shard(part.shard, read, part.request.raw.clone()),
                )
            })
            .collect();
        self.pool.stats.fanouts.inc();
        self.push(Pending::Fanout {
            parts,
            combine: Box::new(Combine::Split(plan)),
        });
        Flow::Next
    }

    /// Cluster pools: one slot's part of a split, redirections followed.
    fn send_part_to_cluster(&self, name: Arc<str>, part: &split::Part, read: bool) -> FanoutPart {
        let node = match self.node_for(part.shard, read) {
            Ok(node) => node,
            Err(error) => return FanoutPart::shared(name, ReplySlot::ready(Err(error))),
        };
        let frame = part.request.raw.clone();
        let key = part.request.args.get(1).cloned();
        let follow = self.follow(&node, frame.clone(), key, read);
        let reply = node.with_shared(self.client.conn_key(), self.client.id(), |conn| {
            conn.send(frame)
        });
        FanoutPart {
            shard: name,
            slot: reply,
            lease: None,
            follow: Some(follow),
        }
    }

    /// A command for the whole keyspace: sent to every shard that owns
    /// keys, replies merged.
    fn broadcast(&mut self, merge: Merge, request: Request) -> Flow {
        let mut shards: Vec<usize> = self.view.topology.live_shards().map(|(i, _)| i).collect();
        if shards.is_empty() {
            let message = route::Refusal::NoShard.message(&self.config().name);
            self.push_error(&message);
            return Flow::Next;
        }
        match merge {
            Merge::RandomKey => fastrand::shuffle(&mut shards),
            Merge::Wait => return self.wait(request, &shards),
            _ => {}
        }
        let info = match merge {
            Merge::Info => match self.info_plan(&request) {
                InfoPlan::ProxyOnly(reply) => {
                    self.push(Pending::Ready(reply));
                    return Flow::Next;
                }
                InfoPlan::Shards(patch) => Some(Box::new(patch)),
            },
            _ => None,
        };
        // SCRIPT KILL and FUNCTION KILL must not queue behind the script
        // they are meant to stop: they go over side connections.
        let urgent = merge == Merge::AnyOk;
        let parts = shards
            .into_iter()
            .map(|shard| {
                let slot = if urgent {
                    self.send_urgent(shard, request.raw.clone())
                } else {
                    self.send_to_shard(shard, false, request.raw.clone())
                };
                FanoutPart::shared(self.shard_name(shard), slot)
            })
            .collect();
        self.pool.stats.fanouts.inc();
        self.push(Pending::Fanout {
            parts,
            combine: Box::new(Combine::Broadcast { merge, info }),
        });
        Flow::Next
    }

    /// Sends `frame` to the shard's master over its side connection (see
    /// [`crate::backend::Node::side`]).
    fn send_urgent(&self, shard: usize, frame: Bytes) -> ReplySlot {
        match self.node_for(shard, false) {
            Ok(node) => node.side(self.client.resp3).send(frame),
            Err(error) => ReplySlot::ready(Err(error)),
        }
    }

    /// WAIT: on every shard, how many replicas have the client's writes.
    ///
    /// The client's writes went through shared connections, whose
    /// replication offset other clients move too, and WAIT there would stall
    /// them. So each shard gets a leased connection that first publishes to
    /// an internal channel (a write every replica receives, so the
    /// connection's offset passes the client's last write, which has run:
    /// WAIT is a barrier), then WAITs; the reply is the smallest count.
    fn wait(&mut self, request: Request, shards: &[usize]) -> Flow {
        if request.argc() != 3 {
            let shard = self.default_shard();
            return self.forward(shard, false, false, request, None);
        }
        if !self.queue.is_empty() {
            self.held = Some(request);
            return Flow::Barrier;
        }
        let spec = command::lookup_name(b"wait");
        let timeout = self.blocking_timeout(true, spec, &request);
        let mut parts = Vec::with_capacity(shards.len());
        for &shard in shards {
            let name = self.shard_name(shard);
            let node = match self.node_for(shard, false) {
                Ok(node) => node,
                Err(error) => {
                    parts.push(FanoutPart::shared(name, ReplySlot::ready(Err(error))));
                    continue;
                }
            };
            let lease = self.lease(&node);
            // Its reply (a receiver count) is not needed.
            drop(lease.conn().send(Bytes::from_static(WAIT_MARKER)));
            let slot = lease.conn().send_with_timeout(request.raw.clone(), timeout);
            parts.push(FanoutPart {
                shard: name,
                slot,
                lease: Some(lease),
                follow: None,
            });
        }
        self.push(Pending::Fanout {
            parts,
            combine: Box::new(Combine::Broadcast {
                merge: Merge::Wait,
                info: None,
            }),
        });
        Flow::Barrier
    }

    /// One SCAN step: the cursor says which shard, and that shard's own cursor.
    fn scan(&mut self, request: Request) -> Flow {
        let topology = self.view.topology.clone();
        let Some(cursor) = request.arg(1) else {
            // Arity error, in the server's words.
            return self.forward(0, true, false, request, None);
        };
        let codec = scan::Codec {
            epoch: topology.is_cluster().then(|| topology.placement_epoch()),
        };
        let position = match codec.decode(cursor, topology.shard_count()) {
            Ok(position) => position,
            Err(scan::CursorError::Invalid) => {
                self.push_error("ERR invalid cursor");
                return Flow::Next;
            }
            Err(scan::CursorError::MapChanged) => {
                let message = format!(
                    "ERR shardgate: pool '{}': the cluster's slot map changed during this SCAN (slots moved between nodes, so keys could be skipped or repeated): start it again from cursor 0",
                    self.config().name
                );
                self.push_error(&message);
                return Flow::Next;
            }
        };
        let live = |i: usize| topology.shards.get(i).is_some_and(|s| !s.ejected);
        let (shard, cursor) = if live(position.shard) {
            (position.shard, position.cursor)
        } else {
            match (position.shard..topology.shard_count()).find(|&i| live(i)) {
                Some(next) => (next, 0),
                None => {
                    self.push(Pending::Ready(Bytes::from_static(
                        b"*2\r\n$1\r\n0\r\n*0\r\n",
                    )));
                    return Flow::Next;
                }
            }
        };
        let next_shard = (shard + 1..topology.shard_count()).find(|&i| live(i));
        let shard_request = scan::shard_request(&request, cursor);
        let slot = self.send_to_shard(shard, true, shard_request.raw);
        self.push(Pending::Scan {
            slot,
            shard,
            next_shard,
            codec,
        });
        Flow::Next
    }

    /// The pool's default shard, for commands without keys.
    pub(super) fn default_shard(&self) -> usize {
        default_shard_index(&self.view.topology).unwrap_or(0)
    }
}

/// Whether a command changes data (for the read-only endpoint and
/// read-your-writes): writes, admin commands, scripts that may write, and
/// commands the table does not know (renamed ones may write).
fn writes(resolution: &Resolution) -> bool {
    match resolution {
        Resolution::Known(_, spec) | Resolution::UnknownSubcommand(_, spec) => {
            !spec.is_readonly()
                && (spec.is_write()
                    || spec.is_admin()
                    || spec.acl_categories().contains(AclCategories::SCRIPTING)
                    || (spec.flags().contains(CommandFlags::MAY_REPLICATE) && !spec.is_pubsub()))
        }
        Resolution::Unknown => true,
    }
}

/// Whether CLIENT PAUSE WRITE holds a command: writes, scripts and
/// functions that may write, PUBLISH (Redis's `may-replicate` commands),
/// EXEC (it may carry writes), and commands the table does not know.
fn pause_writes(resolution: &Resolution) -> bool {
    match resolution {
        Resolution::Known(_, spec) | Resolution::UnknownSubcommand(_, spec) => {
            spec.is_write()
                || (!spec.is_readonly() && spec.acl_categories().contains(AclCategories::SCRIPTING))
                || matches!(spec.name(), "publish" | "spublish" | "exec")
        }
        Resolution::Unknown => true,
    }
}

/// `POST` and `Host:` as a command: an HTTP request sent to the port,
/// which Redis answers by closing the connection.
fn is_http(request: &Request) -> bool {
    request.arg(0).is_some_and(|name| {
        name.eq_ignore_ascii_case(b"post") || name.eq_ignore_ascii_case(b"host:")
    })
}

/// What WAIT publishes first: `PUBLISH __shardgate:wait ""`.
const WAIT_MARKER: &[u8] = b"*3\r\n$7\r\nPUBLISH\r\n$16\r\n__shardgate:wait\r\n$0\r\n\r\n";

/// Where a batch's reads of one shard go (see `batch_reader`).
#[derive(Clone)]
pub(super) enum BatchReader {
    Master,
    Node(Rc<Node>),
    NoReplica,
}
