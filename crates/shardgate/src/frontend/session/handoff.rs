//! A binary upgrade, seen by one session: in the old process, the session
//! hands its connection and state to the new process between two requests
//! ([`Session::hand_off`]); in the new one, a session starts from that
//! state ([`Session::restore`]). A subscribed client is subscribed again
//! in the new process before the old one stops writing to it, so no
//! message published meanwhile is lost (one published in the instant
//! between may arrive twice).

use std::time::{Duration, Instant};

use bytes::BytesMut;
use resp::{Limits, RequestParser};
use tokio::sync::oneshot;

use super::client::ReplyMode;
use super::pubsub::LinkActivity;
use super::{ClientStream, End, Flow, Session};
use crate::route::SubKind;
use crate::upgrade::{SessionState, Subscribed};

/// How long an old session keeps writing a subscribed client's messages
/// while the new process subscribes; how long the new one waits for the
/// old one to stop.
const SUBSCRIBE_WITHIN: Duration = Duration::from_secs(5);

/// What a session taken from the old process starts from.
pub struct Restore {
    pub state: SessionState,
    /// Fires once the old process no longer writes to the connection.
    pub released: Option<oneshot::Receiver<()>>,
    pub subscribed: Subscribed,
}

impl<S: ClientStream> Session<S> {
    /// Nothing is half done: no request read but unanswered, no reply
    /// unwritten, no transaction, no MONITOR. Only then may the
    /// connection change process.
    pub(super) fn between_requests(&self) -> bool {
        self.read_buf.is_empty()
            && self.queue.is_empty()
            && self.out.is_empty()
            && self.held.is_none()
            && self.tx.is_idle()
            && !self.pubsub.as_ref().is_some_and(|p| p.monitoring())
    }

    /// What the new process needs to go on as this session.
    fn handoff_state(&self) -> SessionState {
        let client = &self.client;
        let [channels, patterns, shard_channels] =
            self.pubsub.as_ref().map(|p| p.names()).unwrap_or_default();
        SessionState {
            pool: self.pool.state.name.to_string(),
            readonly: client.readonly,
            unix: S::UNIX,
            addr: client.entry.addr.to_string(),
            laddr: client.entry.laddr.to_string(),
            db: client.db,
            resp3: client.resp3,
            name: client.entry.name(),
            user: client.user.as_ref().map(|u| u.name.to_string()),
            reply_off: client.reply_mode == ReplyMode::Off,
            last_write_ms_ago: client
                .last_write
                .map(|at| u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX)),
            channels,
            patterns,
            shard_channels,
        }
    }

    /// Hands the connection to the new process. A subscribed session goes
    /// on writing its messages until the new process has subscribed.
    pub(super) async fn hand_off(&mut self) -> Result<(), End> {
        let Some(handoff) = self.pool.proxy.handoff() else {
            return Err(End::Shutdown);
        };
        let state = self.handoff_state();
        let subscribed = state.subscribed();
        let key = self.client.id();
        let fd = self.stream.as_fd().try_clone_to_owned().map_err(End::Io)?;
        let ack = match handoff.send(key, state, &fd, !subscribed) {
            Ok(ack) => ack,
            Err(e) => {
                tracing::warn!(
                    client = key,
                    "upgrade: cannot hand the client over ({e}); closing it"
                );
                return Err(End::Shutdown);
            }
        };
        drop(fd);
        let Some(mut ack) = ack else {
            return Ok(());
        };
        let deadline = tokio::time::sleep(SUBSCRIBE_WITHIN);
        tokio::pin!(deadline);
        let waker = self.waker.clone();
        loop {
            tokio::select! {
                _ = &mut ack => break,
                () = &mut deadline => break,
                () = LinkActivity::new(&waker) => {
                    self.drain_links()?;
                    self.flush_out().await?;
                }
            }
        }
        self.drain_links()?;
        self.flush_out().await?;
        handoff.release(key);
        Ok(())
    }

    /// Takes over a session from the old process: its database, protocol,
    /// name, user, reply mode and read-your-writes window; its
    /// subscriptions are made again (their confirmations were sent long
    /// ago, so they are not sent again). Nothing is written to the client
    /// before the old process stops writing to it.
    pub(super) async fn restore(&mut self, restore: Restore) -> Result<(), End> {
        let Restore {
            state,
            released,
            subscribed,
        } = restore;
        self.client.set_db(state.db);
        self.client.set_resp3(state.resp3);
        self.client.entry.set_name(state.name.clone());
        if state.reply_off {
            self.client.reply_mode = ReplyMode::Off;
        }
        self.client.last_write = state
            .last_write_ms_ago
            .and_then(|ms| Instant::now().checked_sub(Duration::from_millis(ms)));
        match &state.user {
            Some(name) => {
                let users = self.pool.state.users();
                let user = users
                    .get(name.as_bytes())
                    .cloned()
                    .ok_or(End::UserRemoved)?;
                self.client.set_user(Some(user));
            }
            None => self.client.set_user(None),
        }
        let kinds = [
            (SubKind::Channel, "SUBSCRIBE", &state.channels),
            (SubKind::Pattern, "PSUBSCRIBE", &state.patterns),
            (SubKind::Shard, "SSUBSCRIBE", &state.shard_channels),
        ];
        for (kind, command, names) in kinds {
            if names.is_empty() {
                continue;
            }
            let Some(request) = request(command, names) else {
                continue;
            };
            self.view = self.pool.view();
            if let Flow::Close(end) = self.subscribe(kind, request) {
                return Err(end);
            }
        }
        for queued in self.queue.iter_mut() {
            queued.silent = true;
        }
        if !self.queue.is_empty() {
            self.collect_replies().await?;
        }
        subscribed.done();
        if let Some(released) = released {
            let _ = tokio::time::timeout(SUBSCRIBE_WITHIN, released).await;
        }
        Ok(())
    }
}

/// `command names...` as a parsed request.
fn request(command: &str, names: &[Vec<u8>]) -> Option<resp::Request> {
    let mut raw = BytesMut::new();
    resp::encode::array_header(&mut raw, names.len() + 1);
    resp::encode::bulk(&mut raw, command.as_bytes());
    for name in names {
        resp::encode::bulk(&mut raw, name);
    }
    RequestParser::new(Limits::default())
        .next(&mut raw)
        .ok()
        .flatten()
}
