//! The client's own state: what a Redis server keeps per connection and
//! the proxy must keep per client instead (its connections are shared).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::auth::User;
use crate::backend::ConnKey;
use crate::config::PoolConfig;
use crate::pool::ClientEntry;

/// CLIENT REPLY's modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// Skip the reply to the next command only.
    SkipNext,
}

pub struct Client {
    pub entry: Arc<ClientEntry>,
    pub db: u32,
    pub resp3: bool,
    pub reply_mode: ReplyMode,
    /// The user the client authenticated as (None: not authenticated on a
    /// pool that requires it).
    pub user: Option<Arc<User>>,
    /// Failed authentications on this connection (they are slowed down).
    pub auth_failures: u32,
    /// Connected to the pool's read-only endpoint: writes are refused.
    pub readonly: bool,
    /// When the client last wrote (tracked with `read_your_writes`).
    pub last_write: Option<std::time::Instant>,
}

impl Client {
    pub fn new(entry: Arc<ClientEntry>, config: &PoolConfig, user: Option<Arc<User>>) -> Client {
        Client {
            entry,
            db: config.redis_db,
            resp3: false,
            reply_mode: ReplyMode::On,
            user,
            auth_failures: 0,
            readonly: false,
            last_write: None,
        }
    }

    /// Authenticated as `user` from now on.
    pub fn set_user(&mut self, user: Option<Arc<User>>) {
        self.entry.set_user(
            user.as_ref()
                .map_or_else(|| Arc::from(""), |u| u.name.clone()),
        );
        self.user = user;
    }

    pub fn id(&self) -> u64 {
        self.entry.id
    }

    /// Which shared backend connections this client can use.
    #[inline]
    pub fn conn_key(&self) -> ConnKey {
        ConnKey {
            db: self.db,
            resp3: self.resp3,
        }
    }

    pub fn set_db(&mut self, db: u32) {
        self.db = db;
        self.entry.db.store(db, Relaxed);
    }

    pub fn set_resp3(&mut self, resp3: bool) {
        self.resp3 = resp3;
        self.entry.resp.store(if resp3 { 3 } else { 2 }, Relaxed);
    }

    /// Whether the reply being queued now is to be dropped (CLIENT REPLY
    /// OFF, or the command after CLIENT REPLY SKIP).
    #[inline]
    pub fn take_reply_silence(&mut self) -> bool {
        match self.reply_mode {
            ReplyMode::On => false,
            ReplyMode::Off => true,
            ReplyMode::SkipNext => {
                self.reply_mode = ReplyMode::On;
                true
            }
        }
    }
}
