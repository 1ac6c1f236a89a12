//! Pub/Sub and MONITOR through the proxy.
//!
//! A channel lives on the shard its name hashes to: PUBLISH goes there
//! (routed like a key) and so does the client's SUBSCRIBE, over a push
//! link the client owns to that shard. Patterns can match channels on
//! any shard, so PSUBSCRIBE goes to every shard. Messages are passed on
//! byte for byte (RESP2 arrays or RESP3 pushes, as the client speaks).
//!
//! Confirmations are the proxy's own, with the counts a single Redis
//! would give (the client's subscriptions across all shards); each is
//! sent only once every shard concerned has confirmed, and in command
//! order, so a message never arrives before its channel's confirmation
//! nor after its unsubscription.
//!
//! MONITOR opens a link to every shard and merges their streams.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use resp::Request;

use super::pending::{LinkRef, Pending};
use super::{ClientStream, End, Flow, Session};
use crate::backend::{Family, Handshake, Link, LinkMode, LinkSettings, SessionWaker};
use crate::route::{Refusal, SubKind};
use crate::view::PoolWorker;

/// The client's subscriptions and links.
#[derive(Default)]
pub struct PubSub {
    /// Channel -> the shard it was subscribed on.
    channels: BTreeMap<Bytes, usize>,
    patterns: BTreeMap<Bytes, Vec<usize>>,
    shard_channels: BTreeMap<Bytes, usize>,
    links: BTreeMap<usize, Link>,
    monitors: BTreeMap<usize, Link>,
    /// Shard channels the client is subscribed to that no link carries
    /// (their slot moved to another node), and when to route them again.
    homeless: BTreeSet<Bytes>,
    rehome: Option<Rehome>,
}

/// When homeless shard channels are routed again: once the pool's map
/// has changed since they were dropped, or [`REHOME_AFTER`] has passed
/// (the map may not have changed yet: a node refused the channel because
/// the proxy's map was older than the node's).
#[derive(Debug, Clone, Copy)]
pub(super) struct Rehome {
    version: u64,
    at: Instant,
}

/// A cluster pool refreshes its map at most once a second.
const REHOME_AFTER: Duration = Duration::from_secs(1);

impl PubSub {
    /// What Redis counts in (P)SUBSCRIBE confirmations.
    fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// Subscriptions of every kind: in RESP2, the client is in subscribed
    /// mode while this is not zero.
    pub fn total(&self) -> usize {
        self.count() + self.shard_channels.len()
    }

    pub fn link(&self, link: LinkRef) -> Option<&Link> {
        match link {
            LinkRef::Shard(i) => self.links.get(&i),
            LinkRef::Monitor(i) => self.monitors.get(&i),
        }
    }

    /// The names subscribed to: channels, patterns, shard channels.
    pub fn names(&self) -> [Vec<Vec<u8>>; 3] {
        fn owned<'a>(keys: impl Iterator<Item = &'a Bytes>) -> Vec<Vec<u8>> {
            keys.map(|k| k.to_vec()).collect()
        }
        [
            owned(self.channels.keys()),
            owned(self.patterns.keys()),
            owned(self.shard_channels.keys()),
        ]
    }

    /// In MONITOR mode.
    pub fn monitoring(&self) -> bool {
        !self.monitors.is_empty()
    }

    pub fn all_links(&self) -> impl Iterator<Item = &Link> {
        self.links.values().chain(self.monitors.values())
    }
}

fn family(kind: SubKind) -> Family {
    match kind {
        SubKind::Channel => Family::Channel,
        SubKind::Pattern => Family::Pattern,
        SubKind::Shard => Family::Shard,
    }
}

fn names(kind: SubKind, subscribe: bool) -> &'static str {
    match (kind, subscribe) {
        (SubKind::Channel, true) => "subscribe",
        (SubKind::Pattern, true) => "psubscribe",
        (SubKind::Shard, true) => "ssubscribe",
        (SubKind::Channel, false) => "unsubscribe",
        (SubKind::Pattern, false) => "punsubscribe",
        (SubKind::Shard, false) => "sunsubscribe",
    }
}

impl<S: ClientStream> Session<S> {
    fn pubsub_mut(&mut self) -> &mut PubSub {
        self.pubsub.get_or_insert_with(Box::default)
    }

    /// A push link to `shard`'s current master, connected in the client's
    /// protocol.
    fn new_link(&self, shard: usize, mode: LinkMode) -> Link {
        let config = self.config();
        let pool: Rc<PoolWorker> = self.pool.clone();
        let settings = LinkSettings {
            name: format!("pool '{}' shard {shard}", config.name).into(),
            handshake: Handshake {
                auth: config.redis_auth.clone(),
                db: 0,
                resp3: self.client.resp3 && mode == LinkMode::PubSub,
                client_name: None,
                ask_id: false,
                readonly: false,
                tls: self.pool.state.tls.backend(),
            },
            connect_timeout: config.connect_timeout,
            max_backoff: config.reconnect_backoff_max,
            max_queued: config.client_output_limit,
            resolve: Box::new(move || {
                let view = pool.view();
                view.shards
                    .get(shard)?
                    .master
                    .as_ref()
                    .map(|node| node.addr)
            }),
            topology_changes: self.pool.state.topology_changes(),
        };
        Link::spawn(settings, mode, self.waker.clone())
    }

    fn ensure_link(&mut self, shard: usize) {
        if self
            .pubsub
            .as_ref()
            .is_some_and(|p| p.links.contains_key(&shard))
        {
            return;
        }
        let link = self.new_link(shard, LinkMode::PubSub);
        self.pubsub_mut().links.insert(shard, link);
    }

    /// The confirmation Redis sends for one channel.
    fn confirmation(&self, kind: &str, name: Option<&[u8]>, count: usize) -> Bytes {
        let mut out = BytesMut::with_capacity(32 + name.map_or(0, <[u8]>::len));
        if self.client.resp3 {
            resp::encode::push_header(&mut out, 3);
        } else {
            resp::encode::array_header(&mut out, 3);
        }
        resp::encode::bulk(&mut out, kind.as_bytes());
        match name {
            Some(name) => resp::encode::bulk(&mut out, name),
            None if self.client.resp3 => resp::encode::null(&mut out),
            None => resp::encode::null_bulk(&mut out),
        }
        resp::encode::integer(&mut out, count as i64);
        out.freeze()
    }

    pub(super) fn subscribe(&mut self, kind: SubKind, request: Request) -> Flow {
        let requested: Vec<Bytes> = (1..request.argc())
            .filter_map(|i| request.args.get(i).map(|r| request.raw.slice(r.clone())))
            .collect();
        let topology = self.view.topology.clone();
        let shards: Vec<usize> = match kind {
            SubKind::Pattern => topology.live_shards().map(|(i, _)| i).collect(),
            _ => Vec::new(),
        };
        // Which shard each name goes to (patterns: every shard).
        let mut targets = Vec::with_capacity(requested.len());
        for name in &requested {
            let target = match kind {
                SubKind::Pattern => shards.clone(),
                _ => match topology.shard_of(name) {
                    Some(shard) => vec![shard],
                    None => return self.refuse(Refusal::NoShard),
                },
            };
            targets.push(target);
        }
        let mut per_shard: BTreeMap<usize, Vec<Bytes>> = BTreeMap::new();
        for (name, target) in requested.iter().zip(&targets) {
            for &shard in target {
                per_shard.entry(shard).or_default().push(name.clone());
            }
        }
        for (shard, batch) in &per_shard {
            self.ensure_link(*shard);
            if let Some(link) = self.pubsub.as_ref().and_then(|p| p.links.get(shard)) {
                link.subscribe(family(kind), batch);
            }
        }
        for (name, target) in requested.into_iter().zip(targets) {
            let pubsub = self.pubsub_mut();
            let count = match kind {
                SubKind::Channel => {
                    if let Some(&shard) = target.first() {
                        pubsub.channels.entry(name.clone()).or_insert(shard);
                    }
                    pubsub.count()
                }
                SubKind::Pattern => {
                    pubsub
                        .patterns
                        .entry(name.clone())
                        .or_insert_with(|| target.clone());
                    pubsub.count()
                }
                SubKind::Shard => {
                    if let Some(&shard) = target.first() {
                        pubsub.shard_channels.entry(name.clone()).or_insert(shard);
                    }
                    pubsub.shard_channels.len()
                }
            };
            let reply = self.confirmation(names(kind, true), Some(&name), count);
            self.push(Pending::Confirm {
                links: target.into_iter().map(LinkRef::Shard).collect(),
                reply,
            });
        }
        self.publish_counts();
        Flow::Next
    }

    pub(super) fn unsubscribe(&mut self, kind: SubKind, request: Request) -> Flow {
        let topology = self.view.topology.clone();
        let mut requested: Vec<Bytes> = (1..request.argc())
            .filter_map(|i| request.args.get(i).map(|r| request.raw.slice(r.clone())))
            .collect();
        if requested.is_empty() {
            requested = match (&self.pubsub, kind) {
                (None, _) => Vec::new(),
                (Some(p), SubKind::Channel) => p.channels.keys().cloned().collect(),
                (Some(p), SubKind::Pattern) => p.patterns.keys().cloned().collect(),
                (Some(p), SubKind::Shard) => p.shard_channels.keys().cloned().collect(),
            };
            if requested.is_empty() {
                let count = self.pubsub.as_ref().map_or(0, |p| match kind {
                    SubKind::Shard => p.shard_channels.len(),
                    _ => p.count(),
                });
                let reply = self.confirmation(names(kind, false), None, count);
                self.push(Pending::Confirm {
                    links: Vec::new(),
                    reply,
                });
                return Flow::Next;
            }
        }
        let mut per_shard: BTreeMap<usize, Vec<Bytes>> = BTreeMap::new();
        let mut targets = Vec::with_capacity(requested.len());
        for name in &requested {
            let known = self.pubsub.as_ref().and_then(|p| match kind {
                SubKind::Channel => p.channels.get(name).map(|s| vec![*s]),
                SubKind::Pattern => p.patterns.get(name).cloned(),
                SubKind::Shard => p.shard_channels.get(name).map(|s| vec![*s]),
            });
            // Not subscribed: ask the shard it would be on (patterns: the
            // shards that have a link), which confirms as Redis would.
            let target = known.unwrap_or_else(|| match kind {
                SubKind::Pattern => self
                    .pubsub
                    .as_ref()
                    .map(|p| p.links.keys().copied().collect())
                    .filter(|v: &Vec<usize>| !v.is_empty())
                    .unwrap_or_else(|| vec![self.default_shard()]),
                _ => vec![topology.shard_of(name).unwrap_or(0)],
            });
            for &shard in &target {
                per_shard.entry(shard).or_default().push(name.clone());
            }
            targets.push(target);
        }
        for (shard, batch) in &per_shard {
            self.ensure_link(*shard);
            if let Some(link) = self.pubsub.as_ref().and_then(|p| p.links.get(shard)) {
                link.unsubscribe(family(kind), batch);
            }
        }
        for (name, target) in requested.into_iter().zip(targets) {
            let pubsub = self.pubsub_mut();
            let count = match kind {
                SubKind::Channel => {
                    pubsub.channels.remove(&name);
                    pubsub.count()
                }
                SubKind::Pattern => {
                    pubsub.patterns.remove(&name);
                    pubsub.count()
                }
                SubKind::Shard => {
                    pubsub.shard_channels.remove(&name);
                    pubsub.homeless.remove(&name);
                    pubsub.shard_channels.len()
                }
            };
            let reply = self.confirmation(names(kind, false), Some(&name), count);
            self.push(Pending::Confirm {
                links: target.into_iter().map(LinkRef::Shard).collect(),
                reply,
            });
        }
        self.publish_counts();
        Flow::Next
    }

    fn publish_counts(&self) {
        let entry = &self.client.entry;
        let (channels, patterns, shard) = self.pubsub.as_ref().map_or((0, 0, 0), |p| {
            (p.channels.len(), p.patterns.len(), p.shard_channels.len())
        });
        entry.subscriptions.store(channels as u32, Relaxed);
        entry.patterns.store(patterns as u32, Relaxed);
        entry.shard_subscriptions.store(shard as u32, Relaxed);
    }

    /// RESP2 subscribed mode: Redis allows only these commands.
    pub(super) fn in_subscribed_mode(&self) -> bool {
        !self.client.resp3 && self.pubsub.as_ref().is_some_and(|p| p.total() > 0)
    }

    /// MONITOR: a link to every shard, their streams merged.
    pub(super) fn monitor(&mut self) -> Flow {
        let shards: Vec<usize> = self.view.topology.live_shards().map(|(i, _)| i).collect();
        let mut links = Vec::with_capacity(shards.len());
        for shard in shards {
            if self
                .pubsub
                .as_ref()
                .is_some_and(|p| p.monitors.contains_key(&shard))
            {
                continue;
            }
            let link = self.new_link(shard, LinkMode::Monitor);
            link.monitor();
            self.pubsub_mut().monitors.insert(shard, link);
            links.push(LinkRef::Monitor(shard));
        }
        self.push(Pending::Confirm {
            links,
            reply: Bytes::from_static(b"+OK\r\n"),
        });
        Flow::Next
    }

    /// Moves every message waiting on the links into the output; ends the
    /// session if the client does not keep up.
    pub(super) fn drain_links(&mut self) -> Result<(), End> {
        let Some(pubsub) = &self.pubsub else {
            return Ok(());
        };
        let mut out = std::mem::take(&mut self.out);
        let mut added = 0;
        let mut dropped = Vec::new();
        for link in pubsub.all_links() {
            if link.overflowed() {
                return Err(End::SlowReader(self.out_len));
            }
            link.drain_messages(&mut |bytes| {
                added += bytes.len();
                out.push_back(bytes);
            });
            dropped.extend(link.take_dropped());
        }
        self.out = out;
        self.out_len += added;
        self.shard_channels_dropped(dropped);
        self.rehome();
        Ok(())
    }

    /// Shard channels a cluster node unsubscribed by itself (their slot
    /// moved) or refused (`-MOVED`): the client stays subscribed, as it
    /// would to one Redis; the map is refreshed at once and the channels
    /// are subscribed again where it says (see [`Rehome`]). Messages
    /// published in between are not heard, as after a failover.
    fn shard_channels_dropped(&mut self, dropped: Vec<Bytes>) {
        if dropped.is_empty() {
            return;
        }
        self.pool
            .state
            .cluster
            .want(crate::cluster::refresh::Reason::Moved);
        let version = self.pool.view().topology.version;
        let Some(pubsub) = self.pubsub.as_mut() else {
            return;
        };
        for channel in dropped {
            if pubsub.shard_channels.contains_key(&channel) {
                pubsub.homeless.insert(channel);
            }
        }
        if !pubsub.homeless.is_empty() && pubsub.rehome.is_none() {
            pubsub.rehome = Some(Rehome {
                version,
                at: Instant::now() + REHOME_AFTER,
            });
        }
    }

    /// When homeless shard channels are due to be routed again, if any.
    pub(super) fn rehome_due(&self) -> Option<Rehome> {
        self.pubsub.as_ref().and_then(|p| p.rehome)
    }

    /// Subscribes homeless shard channels again where the newest map
    /// says, if it is time.
    fn rehome(&mut self) {
        let Some(due) = self.rehome_due() else {
            return;
        };
        let view = self.pool.view();
        if view.topology.version == due.version && Instant::now() < due.at {
            return;
        }
        let Some(pubsub) = self.pubsub.as_mut() else {
            return;
        };
        pubsub.rehome = None;
        let mut per_shard: BTreeMap<usize, Vec<Bytes>> = BTreeMap::new();
        for channel in std::mem::take(&mut pubsub.homeless) {
            match view.topology.shard_of(&channel) {
                Some(shard) => {
                    pubsub.shard_channels.insert(channel.clone(), shard);
                    per_shard.entry(shard).or_default().push(channel);
                }
                // No node serves its slot now: tried again later.
                None => {
                    pubsub.homeless.insert(channel);
                }
            }
        }
        if !pubsub.homeless.is_empty() {
            pubsub.rehome = Some(Rehome {
                version: view.topology.version,
                at: Instant::now() + REHOME_AFTER,
            });
        }
        for (shard, channels) in per_shard {
            self.ensure_link(shard);
            if let Some(link) = self.pubsub.as_ref().and_then(|p| p.links.get(&shard)) {
                link.resubscribe_shard_channels(&channels);
            }
        }
    }

    /// Waits until every link in `links` has acknowledged (passing on the
    /// messages that came before each acknowledgement).
    pub(super) async fn await_acks(&mut self, links: Vec<LinkRef>) -> Result<(), End> {
        let mut remaining = links;
        loop {
            let Some(pubsub) = &self.pubsub else {
                return Ok(());
            };
            let mut out = std::mem::take(&mut self.out);
            let mut added = 0;
            remaining.retain(|&link| {
                let Some(link) = pubsub.link(link) else {
                    return false;
                };
                link.drain_messages(&mut |bytes| {
                    added += bytes.len();
                    out.push_back(bytes);
                });
                if link.front_is_ack() {
                    let _ = link.pop();
                    return false;
                }
                true
            });
            self.out = out;
            self.out_len += added;
            if remaining.is_empty() {
                return Ok(());
            }
            LinkActivity::new(&self.waker).await;
        }
    }
}

/// Resolves when homeless shard channels are due to be routed again:
/// the pool publishes a map other than `due`'s, or its time comes. Never,
/// without any.
pub(super) async fn rehome_time(pool: &PoolWorker, due: Option<Rehome>) {
    let Some(due) = due else {
        return std::future::pending().await;
    };
    let mut changes = pool.state.topology_changes();
    let changed = changes.wait_for(|&published| published != due.version);
    let _ = tokio::time::timeout_at(due.at.into(), changed).await;
}

/// Resolves once after a link wakes the session.
pub(super) struct LinkActivity<'a> {
    waker: &'a SessionWaker,
    registered: bool,
}

impl<'a> LinkActivity<'a> {
    pub fn new(waker: &'a Rc<SessionWaker>) -> LinkActivity<'a> {
        LinkActivity {
            waker,
            registered: false,
        }
    }
}

impl std::future::Future for LinkActivity<'_> {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.registered {
            return std::task::Poll::Ready(());
        }
        self.registered = true;
        self.waker.register(cx.waker());
        std::task::Poll::Pending
    }
}
