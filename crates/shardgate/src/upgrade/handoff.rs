//! What a client session carries from the old process to the new one:
//! everything Redis would remember about the connection between two
//! commands. The connection itself travels as a file descriptor.

use serde::{Deserialize, Serialize};

/// A session between two requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionState {
    pub pool: String,
    /// Connected to the pool's read-only endpoint.
    pub readonly: bool,
    /// A unix socket client (else TCP).
    pub unix: bool,
    /// `CLIENT LIST`'s `addr` and `laddr`.
    pub addr: String,
    pub laddr: String,
    pub db: u32,
    pub resp3: bool,
    /// `CLIENT SETNAME`.
    pub name: Option<String>,
    /// The user it authenticated as (None: not authenticated).
    pub user: Option<String>,
    /// `CLIENT REPLY`: "on", "off" (a pending SKIP is used up by the
    /// command that follows it, which has run).
    pub reply_off: bool,
    /// Milliseconds since its last write (`read_your_writes`).
    pub last_write_ms_ago: Option<u64>,
    /// Pub/Sub subscriptions, as names.
    pub channels: Vec<Vec<u8>>,
    pub patterns: Vec<Vec<u8>>,
    pub shard_channels: Vec<Vec<u8>>,
}

impl SessionState {
    pub fn subscribed(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shard_channels.is_empty())
    }
}
