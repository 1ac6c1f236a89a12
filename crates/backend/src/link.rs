//! A push link: a backend connection one client owns, over which the
//! server sends frames nobody asked for: Pub/Sub messages, or MONITOR's
//! stream.
//!
//! The link keeps what it is subscribed to, so after a reconnect (the
//! server restarted, or the shard failed over to a new master) it
//! subscribes again on its own. It hands the session an ordered stream of
//! events: messages, and acknowledgements of the session's own commands
//! (a confirmation per channel, MONITOR's `+OK`). Acknowledgements of its
//! own re-subscriptions it swallows. If the connection breaks with
//! acknowledgements outstanding, it delivers them anyway, since the
//! subscriptions they confirm will be restored: a client never waits
//! forever on a dead shard.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use crate::read_buffer;
use crate::stream::Stream;
use bytes::Bytes;
use resp::{Limits, ReplyScanner, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::sleep;

use shardgate_core::error::NodeError;

use super::handshake::{self, Handshake};
use super::wake::TaskWake;
use shardgate_core::frames::{aggregate, string};

/// What the link carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    PubSub,
    Monitor,
}

/// The subscription families, as the link names its commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Channel,
    Pattern,
    Shard,
}

impl Family {
    fn subscribe(self) -> &'static str {
        match self {
            Family::Channel => "SUBSCRIBE",
            Family::Pattern => "PSUBSCRIBE",
            Family::Shard => "SSUBSCRIBE",
        }
    }

    fn unsubscribe(self) -> &'static str {
        match self {
            Family::Channel => "UNSUBSCRIBE",
            Family::Pattern => "PUNSUBSCRIBE",
            Family::Shard => "SUNSUBSCRIBE",
        }
    }
}

/// What a link is subscribed to, per family.
#[derive(Debug, Clone, Default)]
struct Subscribed {
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    shard_channels: BTreeSet<Bytes>,
}

impl Subscribed {
    fn of(&mut self, family: Family) -> &mut BTreeSet<Bytes> {
        match family {
            Family::Channel => &mut self.channels,
            Family::Pattern => &mut self.patterns,
            Family::Shard => &mut self.shard_channels,
        }
    }

    fn get(&self, family: Family) -> &BTreeSet<Bytes> {
        match family {
            Family::Channel => &self.channels,
            Family::Pattern => &self.patterns,
            Family::Shard => &self.shard_channels,
        }
    }
}

/// What the session learns from a link, in the order it happened.
#[derive(Debug)]
pub enum LinkEvent {
    /// A frame to pass on to the client as it is.
    Message(Bytes),
    /// One acknowledgement of a command the session sent.
    Ack,
}

/// Wakes the session that owns the links.
#[derive(Default)]
pub struct SessionWaker(RefCell<Option<Waker>>);

impl SessionWaker {
    pub fn register(&self, waker: &Waker) {
        let mut slot = self.0.borrow_mut();
        match &*slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    fn wake(&self) {
        if let Some(waker) = self.0.borrow_mut().take() {
            waker.wake();
        }
    }
}

/// Where and how a link connects.
pub struct LinkSettings {
    /// `pool 'p' shard 's'`, for logs.
    pub name: Arc<str>,
    pub handshake: Handshake,
    pub connect_timeout: Duration,
    pub max_backoff: Duration,
    /// Bytes of undelivered events after which the link stops reading
    /// (the client is not keeping up; the session disconnects it).
    pub max_queued: usize,
    /// The node to connect to now (the shard's master can change).
    pub resolve: Box<dyn Fn() -> Option<SocketAddr>>,
    /// Changes when the pool's topology does: an open link then checks
    /// that `resolve` still names the node it is connected to (after a
    /// failover the old master may stay reachable for a while, and what
    /// is published on the new one would never reach the link).
    pub topology_changes: tokio::sync::watch::Receiver<u64>,
}

/// Who waits for an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Session,
    /// The link's own re-subscription (after a reconnect, or the session
    /// moving a shard channel to this link): the client is not told.
    Restore,
}

/// A command sent and not fully answered yet.
#[derive(Debug)]
struct Awaited {
    owner: Owner,
    /// Confirmations still to come: one per name, MONITOR's one `+OK`.
    acks: usize,
    /// The shard channel of an SSUBSCRIBE (sent one channel per command,
    /// since a cluster node refuses channels of several slots together).
    /// A node that refuses it (`-MOVED`: the slot is another node's now)
    /// makes it a dropped channel, which the session routes again.
    shard_channel: Option<Bytes>,
}

struct Shared {
    settings: LinkSettings,
    mode: LinkMode,
    events: RefCell<VecDeque<LinkEvent>>,
    queued_bytes: Cell<usize>,
    overflow: Cell<bool>,
    session: Rc<SessionWaker>,
    outbox: RefCell<VecDeque<Bytes>>,
    /// Commands awaiting their acknowledgements, in order.
    owners: RefCell<VecDeque<Awaited>>,
    /// What the link is subscribed to, restored on reconnect.
    subscribed: RefCell<Subscribed>,
    monitoring: Cell<bool>,
    task: TaskWake,
    closed: Cell<bool>,
    /// Shard channels the server unsubscribed by itself (their slot moved
    /// to another node) or refused, not yet told to the session.
    dropped: RefCell<Vec<Bytes>>,
}

impl Shared {
    fn wake_task(&self) {
        self.task.wake();
    }

    fn push_event(&self, event: LinkEvent) {
        if let LinkEvent::Message(bytes) = &event {
            self.queued_bytes.set(self.queued_bytes.get() + bytes.len());
            if self.queued_bytes.get() > self.settings.max_queued {
                self.overflow.set(true);
            }
        }
        self.events.borrow_mut().push_back(event);
        self.session.wake();
    }

    fn send(&self, args: &[&[u8]], awaited: Awaited) {
        self.outbox
            .borrow_mut()
            .push_back(Request::from_args(args).raw);
        self.owners.borrow_mut().push_back(awaited);
        self.wake_task();
    }

    /// Sends `family`'s (un)subscribe command for `names`, shard channels
    /// one per command.
    fn subscription(&self, family: Family, subscribe: bool, names: &[Bytes], owner: Owner) {
        let command = match subscribe {
            true => family.subscribe(),
            false => family.unsubscribe(),
        };
        if family == Family::Shard {
            for name in names {
                let shard_channel = subscribe.then(|| name.clone());
                let awaited = Awaited {
                    owner,
                    acks: 1,
                    shard_channel,
                };
                self.send(&[command.as_bytes(), name], awaited);
            }
            return;
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(names.len() + 1);
        args.push(command.as_bytes());
        args.extend(names.iter().map(|n| n.as_ref()));
        let awaited = Awaited {
            owner,
            acks: names.len(),
            shard_channel: None,
        };
        self.send(&args, awaited);
    }

    /// Takes `channel` off the link's shard channels and tells the
    /// session; false if it was not there (the session asked it to go).
    fn drop_shard_channel(&self, channel: &Bytes) -> bool {
        let removed = self.subscribed.borrow_mut().shard_channels.remove(channel);
        if removed {
            self.dropped.borrow_mut().push(channel.clone());
            self.session.wake();
        }
        removed
    }
}

/// The session's handle to a link; dropping it closes the connection.
pub struct Link {
    shared: Rc<Shared>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.closed.set(true);
        self.shared.wake_task();
    }
}

impl Link {
    pub fn spawn(settings: LinkSettings, mode: LinkMode, session: Rc<SessionWaker>) -> Link {
        let shared = Rc::new(Shared {
            settings,
            mode,
            events: RefCell::new(VecDeque::new()),
            queued_bytes: Cell::new(0),
            overflow: Cell::new(false),
            session,
            outbox: RefCell::new(VecDeque::new()),
            owners: RefCell::new(VecDeque::new()),
            subscribed: RefCell::new(Default::default()),
            monitoring: Cell::new(false),
            task: TaskWake::default(),
            closed: Cell::new(false),
            dropped: RefCell::new(Vec::new()),
        });
        tokio::task::spawn_local(run(shared.clone()));
        Link { shared }
    }

    /// Subscribes to `names`; one acknowledgement per name follows.
    pub fn subscribe(&self, family: Family, names: &[Bytes]) {
        self.shared
            .subscribed
            .borrow_mut()
            .of(family)
            .extend(names.iter().cloned());
        self.shared
            .subscription(family, true, names, Owner::Session);
    }

    /// Subscribes to shard channels the client already has (moved here
    /// from another link): no acknowledgement reaches the session.
    pub fn resubscribe_shard_channels(&self, names: &[Bytes]) {
        self.shared
            .subscribed
            .borrow_mut()
            .shard_channels
            .extend(names.iter().cloned());
        self.shared
            .subscription(Family::Shard, true, names, Owner::Restore);
    }

    /// Unsubscribes from `names`; one acknowledgement per name follows.
    pub fn unsubscribe(&self, family: Family, names: &[Bytes]) {
        let mut subscribed = self.shared.subscribed.borrow_mut();
        for name in names {
            subscribed.of(family).remove(name);
        }
        drop(subscribed);
        self.shared
            .subscription(family, false, names, Owner::Session);
    }

    /// Starts MONITOR; one acknowledgement (`+OK`) follows.
    pub fn monitor(&self) {
        self.shared.monitoring.set(true);
        self.shared
            .send(&[b"MONITOR"], monitor_awaited(Owner::Session));
    }

    /// True when the next event is an acknowledgement.
    pub fn front_is_ack(&self) -> bool {
        matches!(self.shared.events.borrow().front(), Some(LinkEvent::Ack))
    }

    /// The next event, if any.
    pub fn pop(&self) -> Option<LinkEvent> {
        let event = self.shared.events.borrow_mut().pop_front();
        if let Some(LinkEvent::Message(bytes)) = &event {
            let left = self.shared.queued_bytes.get().saturating_sub(bytes.len());
            self.shared.queued_bytes.set(left);
            if self.shared.overflow.get() && left <= self.shared.settings.max_queued / 2 {
                self.shared.overflow.set(false);
                self.shared.wake_task();
            }
        }
        event
    }

    /// Pops the messages in front of the next acknowledgement.
    pub fn drain_messages(&self, out: &mut impl FnMut(Bytes)) {
        while !self.front_is_ack() {
            match self.pop() {
                Some(LinkEvent::Message(bytes)) => out(bytes),
                Some(LinkEvent::Ack) | None => return,
            }
        }
    }

    /// Shard channels the server unsubscribed by itself since the last
    /// call (a Redis Cluster node does when the channel's slot leaves it),
    /// or refused to subscribe (`-MOVED`): no longer on this link.
    pub fn take_dropped(&self) -> Vec<Bytes> {
        std::mem::take(&mut *self.shared.dropped.borrow_mut())
    }

    /// The client is not keeping up with this link's messages.
    pub fn overflowed(&self) -> bool {
        self.shared.overflow.get()
    }
}

async fn run(shared: Rc<Shared>) {
    let mut backoff = crate::backoff::Backoff::new();
    let mut first = true;
    while !shared.closed.get() {
        match connect(&shared).await {
            Ok((stream, addr)) => {
                backoff.reset();
                if !first {
                    restore(&shared);
                }
                first = false;
                let reason = serve(&shared, stream, addr).await;
                if shared.closed.get() {
                    return;
                }
                tracing::info!(link = %shared.settings.name, "push link lost ({reason}); reconnecting");
            }
            Err(reason) => {
                tracing::debug!(link = %shared.settings.name, "push link cannot connect: {reason}");
                first = false;
            }
        }
        // What was not sent is dropped; what the session waits for is
        // acknowledged anyway, and restored once connected again.
        shared.outbox.borrow_mut().clear();
        let owners = std::mem::take(&mut *shared.owners.borrow_mut());
        for awaited in owners {
            if awaited.owner == Owner::Session {
                for _ in 0..awaited.acks {
                    shared.push_event(LinkEvent::Ack);
                }
            }
        }
        tokio::select! {
            () = sleep(backoff.next(shared.settings.max_backoff)) => {}
            () = shared.task.next() => {}
        }
    }
}

/// Queues the commands that put a new connection back in the state the
/// session asked for.
fn restore(shared: &Shared) {
    let subscribed = shared.subscribed.borrow().clone();
    for family in [Family::Channel, Family::Pattern, Family::Shard] {
        let names: Vec<Bytes> = subscribed.get(family).iter().cloned().collect();
        if !names.is_empty() {
            shared.subscription(family, true, &names, Owner::Restore);
        }
    }
    if shared.monitoring.get() {
        shared.send(&[b"MONITOR"], monitor_awaited(Owner::Restore));
    }
}

fn monitor_awaited(owner: Owner) -> Awaited {
    Awaited {
        owner,
        acks: 1,
        shard_channel: None,
    }
}

async fn connect(shared: &Shared) -> Result<(Stream, SocketAddr), NodeError> {
    let settings = &shared.settings;
    let addr = (settings.resolve)()
        .ok_or_else(|| NodeError::Unexpected("the shard has no master".into()))?;
    let stream =
        handshake::connect(addr, &settings.handshake, settings.connect_timeout, false).await?;
    Ok((stream, addr))
}

/// Carries the link until it fails (the reason), is closed, or its shard's
/// master is another node (it then reconnects there and subscribes again).
async fn serve(shared: &Shared, mut stream: Stream, addr: SocketAddr) -> String {
    let mut changes = shared.settings.topology_changes.clone();
    // A master that changed while the link connected counts too.
    changes.mark_changed();
    // Writes happen between reads, never during one: no split (and no
    // lock per poll) is needed.
    let mut scanner = ReplyScanner::new(Limits::replies());
    let mut buf = read_buffer::new();
    loop {
        if shared.closed.get() {
            return "closed".into();
        }
        let frames: Vec<Bytes> = shared.outbox.borrow_mut().drain(..).collect();
        for frame in &frames {
            if let Err(e) = stream.write_all(frame).await {
                return e.to_string();
            }
        }
        if !frames.is_empty() {
            if let Err(e) = stream.flush().await {
                return e.to_string();
            }
        }
        read_buffer::make_room(&mut buf);
        let reading = !shared.overflow.get();
        tokio::select! {
            read = stream.read_buf(&mut buf), if reading => match read {
                Ok(0) => return "closed by the server".into(),
                Ok(_) => loop {
                    match scanner.scan(&buf) {
                        Ok(Some(frame)) => {
                            let frame = buf.split_to(frame.len).freeze();
                            classify(shared, frame);
                        }
                        Ok(None) => break,
                        Err(e) => return format!("invalid reply: {e}"),
                    }
                },
                Err(e) => return e.to_string(),
            },
            () = shared.task.next() => {}
            // Err: the pool is gone (the branch stays off; the session
            // closes the link).
            Ok(()) = changes.changed() => match (shared.settings.resolve)() {
                Some(master) if master != addr => {
                    return format!("the shard's master is {master} now");
                }
                _ => {}
            },
        }
    }
}

/// The channel of a `sunsubscribe` push.
fn sunsubscribe_channel(frame: &Bytes) -> Option<Bytes> {
    let agg = aggregate(frame)?;
    let kind = agg.elements.first().and_then(string)?;
    if &kind[..] != b"sunsubscribe" {
        return None;
    }
    agg.elements.get(1).and_then(string)
}

/// An acknowledgement goes to whoever waits for it; anything else is a
/// message for the client.
fn classify(shared: &Shared, frame: Bytes) {
    let refused = frame.first() == Some(&b'-');
    let is_ack = match shared.mode {
        // An error is the answer to the command in front (a cluster
        // node's `-MOVED` to an SSUBSCRIBE): never a message.
        LinkMode::PubSub => {
            refused
                || aggregate(&frame)
                    .and_then(|agg| agg.elements.first().and_then(string))
                    .is_some_and(|kind| {
                        matches!(
                            &kind[..],
                            b"subscribe"
                                | b"unsubscribe"
                                | b"psubscribe"
                                | b"punsubscribe"
                                | b"ssubscribe"
                                | b"sunsubscribe"
                        )
                    })
        }
        // MONITOR's `+OK`; the stream itself is simple strings too, but
        // never before the first `+OK` is acknowledged.
        LinkMode::Monitor => {
            !shared.owners.borrow().is_empty() && (&frame[..] == b"+OK\r\n" || refused)
        }
    };
    if !is_ack {
        shared.push_event(LinkEvent::Message(frame));
        return;
    }
    // A channel still subscribed was not asked to go (`unsubscribe`
    // forgets a name before it sends SUNSUBSCRIBE): the node ended it (its
    // slot moved), whatever else is awaiting an answer.
    if let Some(channel) = sunsubscribe_channel(&frame) {
        if shared.drop_shard_channel(&channel) {
            return;
        }
    }
    let mut owners = shared.owners.borrow_mut();
    let Some(front) = owners.front_mut() else {
        return; // answers nothing sent: ignored
    };
    // A refusal answers the whole command at once.
    let answered = if refused { front.acks } else { 1 };
    front.acks = front.acks.saturating_sub(answered);
    let owner = front.owner;
    let finished = match front.acks {
        0 => owners.pop_front(),
        _ => None,
    };
    drop(owners);
    if refused {
        let channel = finished.and_then(|awaited| awaited.shard_channel);
        match channel {
            Some(channel) => {
                tracing::debug!(link = %shared.settings.name, "SSUBSCRIBE refused ({}); routed again", String::from_utf8_lossy(&frame).trim_end());
                shared.drop_shard_channel(&channel);
            }
            None => {
                // A client can repeat the command that is refused (a
                // channel the backend user may not use): limited.
                static REFUSED: shardgate_core::log_limit::LogLimit =
                    shardgate_core::log_limit::LogLimit::new(10);
                if REFUSED.allow() {
                    tracing::warn!(link = %shared.settings.name, "a subscription command was refused: {} (at most one such line every 10 s)", String::from_utf8_lossy(&frame).trim_end());
                }
            }
        }
    }
    if owner == Owner::Session {
        for _ in 0..answered {
            shared.push_event(LinkEvent::Ack);
        }
    }
}
