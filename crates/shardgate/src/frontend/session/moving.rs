//! Keys moving between servers (resharding, `docs/resharding.md`): a
//! request on moving keys runs **where its keys are**. It goes first to
//! their source wrapped in a short script that runs it there, atomically,
//! if all its keys are still there; if none is, the source answers so and
//! the request runs on the destination; if some are, `-TRYAGAIN` (the
//! mover is between two of them). Only the mover moves keys (`MIGRATE`,
//! one at a time), so no two servers ever wait on each other, and a key
//! is never created on its source: a key that is nowhere is created on
//! its destination.
//!
//! Two shortcuts, both safe for that reason: a GET goes to the source as
//! it is (a null there means the key is not there), and a key the source
//! said is gone goes straight to the destination for the rest of the
//! migration (`view::GoneFromSource`).
//!
//! Replies come back in request order, and a client's requests on one key
//! run in order (the source's answers come in order, and the requests
//! that follow them go out in that order); a request on a moving key may
//! run after a later request of the same pipeline on another key, as
//! with two servers of a Redis Cluster. In a migration's
//! first phase, while other proxies may still route moving keys straight
//! to their source, requests on them wait for the next phase (briefly) or
//! are refused with `-TRYAGAIN`. Transactions, scripts, blocking calls and
//! requests split over several shards cannot follow keys that move under
//! them: on moving keys they are refused with `-TRYAGAIN`.

use bytes::Bytes;
use resp::Request;

use super::pending::{Absent, AtSource as AtSourceReply, Pending};
use super::{ClientStream, Flow, Session};
use crate::command::{AclCategories, Resolution};
use crate::route::{Refusal, Route};

/// How long a request on a moving key waits for a migration's first
/// phase to end before it is refused.
pub(super) const HOLD: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs the request (ARGV) if every key (KEYS) is on this server; says
/// `SGABSENT` if none is; refuses if only some are.
macro_rules! where_it_is {
    () => {
        "\
local present = 0 \
for _, key in ipairs(KEYS) do present = present + redis.call('EXISTS', key) end \
if present == 0 then return redis.error_reply('SGABSENT the keys are not on this server') end \
if present < #KEYS then return redis.error_reply('TRYAGAIN shardgate: some keys of this request \
moved to another server and some did not yet (resharding); retry') end \
return redis.pcall(unpack(ARGV))"
    };
}
const WHERE_IT_IS: &str = where_it_is!();
/// The same for a RESP3 client (both are constants: nothing is built per
/// request).
const WHERE_IT_IS_RESP3: &str = concat!("redis.setresp(3) ", where_it_is!());

/// A request held while a migration's first phase ends.
#[derive(Default)]
pub(super) struct AtSource {
    /// Since when the held request waits for that phase to end.
    held_since: Option<std::time::Instant>,
    /// This client's requests queued for a source's answer (a count, not
    /// a walk of the queue per request: pipelines are long).
    pub waiting: usize,
}

impl AtSource {
    /// Nothing held, nothing waited for.
    pub fn is_empty(&self) -> bool {
        self.held_since.is_none() && self.waiting == 0
    }
}

impl<S: ClientStream> Session<S> {
    /// The moving keys of the request just routed (`self.keys` holds its
    /// key positions), as `(source, destination, where in the request)`.
    fn moving<'a>(
        &'a self,
        request: &'a Request,
    ) -> impl Iterator<Item = (usize, usize, std::ops::Range<usize>)> + 'a {
        let topology = &self.view.topology;
        (self.keys.iter()).filter_map(move |&index| {
            let range = request.args.get(index)?;
            let (source, destination) = topology.moving(request.raw.get(range.clone())?)?;
            Some((source, destination, range.clone()))
        })
    }

    /// The moving keys of the request just routed, as `(source,
    /// destination, key)`.
    fn moving_keys(&self, request: &Request) -> Vec<(usize, usize, Bytes)> {
        (self.moving(request))
            .map(|(source, destination, range)| (source, destination, request.raw.slice(range)))
            .collect()
    }

    /// Whether the request just routed touches a moving key.
    pub(super) fn touches_moving_key(&self, request: &Request) -> bool {
        self.view.topology.is_moving() && self.moving(request).next().is_some()
    }

    /// Before a routed request (outside a transaction) is sent: a request
    /// on moving keys goes to their source (Err: the flow to return), or
    /// is refused when it cannot follow them. Ok: send it as routed.
    pub(super) fn run_where_it_is(
        &mut self,
        request: Request,
        route: &Route,
        resolution: &Resolution,
    ) -> Result<Request, Flow> {
        let moving = self.moving_keys(&request);
        let Some(&(source, destination, _)) = moving.first() else {
            return Ok(request);
        };
        let script = resolution
            .spec()
            .is_some_and(|s| s.acl_categories().contains(AclCategories::SCRIPTING));
        let blocking = matches!(route, Route::Shard { blocking: true, .. });
        let one_place = moving.len() == self.keys.len()
            && moving
                .iter()
                .all(|(s, d, _)| (*s, *d) == (source, destination));
        if script || blocking || !one_place || !matches!(route, Route::Shard { .. }) {
            return Err(self.refuse(Refusal::Moving));
        }
        // In a migration's first phase another proxy may still route the
        // keys to their source: wait for the next phase, briefly.
        if self.view.topology.refuses_moving_keys() {
            let since = *self
                .at_source
                .held_since
                .get_or_insert_with(std::time::Instant::now);
            if since.elapsed() >= HOLD {
                self.at_source.held_since = None;
                return Err(self.refuse(Refusal::Moving));
            }
            self.held = Some(request);
            return Err(Flow::AwaitPlacement);
        }
        self.at_source.held_since = None;
        let epoch = self.view.topology.placement_epoch();
        let one_key = match moving.as_slice() {
            [(_, _, key)] => Some(key),
            _ => None,
        };
        // A key found gone from its source goes straight to the
        // destination, unless one of this client's earlier requests still
        // waits on the source (it would then run after this one).
        if one_key.is_some_and(|key| self.pool.gone.borrow().knows(epoch, key))
            && self.at_source.waiting == 0
        {
            let slot = self.send_to_master(destination, request.raw);
            self.pool.stats.moving_key_requests.inc();
            self.push(Pending::Reply(slot));
            return Err(Flow::Next);
        }
        let learn = one_key
            .and_then(|_| self.keys.first())
            .and_then(|&index| request.args.get(index))
            .map(|range| (range.clone(), epoch, self.pool.clone()));
        // A GET needs no script: on its source, a key that is there is the
        // live copy, and a null says it is not (GET answers an existing key
        // with a value or WRONGTYPE), so the destination has it, or nobody.
        let plain_get = resolution.spec().is_some_and(|s| s.name() == "get");
        let (frame, absent) = if plain_get {
            (request.raw.clone(), Absent::Null)
        } else {
            let keys: Vec<&[u8]> = moving.iter().map(|(_, _, k)| &k[..]).collect();
            (self.where_it_is_frame(&keys, &request), Absent::Script)
        };
        // The destination's master (a key just moved may not be on its
        // replicas yet), on the client's own shared connection to it.
        let (key, id) = (self.client.conn_key(), self.client.id());
        let destination = self
            .node_for(destination, false)
            .map(|node| node.with_shared(key, id, |conn| conn.clone()));
        let slot = self.send_to_master(source, frame);
        self.pool.stats.moving_key_requests.inc();
        self.at_source.waiting += 1;
        self.push(Pending::AtSource(Box::new(AtSourceReply {
            slot,
            destination,
            request: request.raw,
            learn,
            absent,
        })));
        Err(Flow::Next)
    }

    /// `EVAL <script> numkeys keys... request...`.
    fn where_it_is_frame(&self, keys: &[&[u8]], request: &Request) -> Bytes {
        let script = if self.client.resp3 {
            WHERE_IT_IS_RESP3
        } else {
            WHERE_IT_IS
        };
        let numkeys = keys.len().to_string();
        let mut args: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), numkeys.as_bytes()];
        args.extend(keys);
        args.extend(request.args());
        Request::from_args(&args).raw
    }
}
